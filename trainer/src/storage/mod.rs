//! Object storage (S3, GCS, Azure) behind the checkpoint [`Store`](crate::checkpoint::Store),
//! through Apache Arrow's `object_store` crate.
//!
//! Anything that takes a path for run output, a model repository or data may be
//! given a URL instead: `s3://bucket/prefix`, `gs://…`, `az://…` (or `file://…`,
//! which is a local path). Credentials and endpoint come from the environment as
//! `object_store` reads them, never from the YAML.
//!
//! # Layout
//! - [`url`]: [`Location`] — parsing paths and URLs (pure), key-escape rules.
//! - [`client`]: [`Bucket`] — a synchronous handle on a bucket prefix, owning a
//!   small tokio runtime; bounded retries and timeouts.
//! - [`object`]: [`ObjectStoreStore`] — publication without rename (claim with a
//!   conditional create, files first, manifest last).
//! - [`mirror`]: datasets read from a bucket into a local cache directory.
//! - [`lease`]: [`Lease`](lease::Lease) — the output lock of a run directory on a
//!   bucket (conditional create, renewal, expiry).
//! - [`error`]: [`StorageError`], every variant naming the URL.
//!
//! Why a synchronous facade: the training loop, resume and the exporters are
//! synchronous and already run saves on a background thread
//! ([`AsyncCheckpointer`](crate::checkpoint::AsyncCheckpointer)); an upload there
//! stalls training no more than a local write does.

pub mod client;
pub mod error;
pub mod lease;
pub mod mirror;
pub mod object;
pub mod url;

use std::sync::Arc;

pub use client::Bucket;
pub use error::StorageError;
pub use object::ObjectStoreStore;
pub use url::{Location, RemoteUrl, check_key, is_url};

use crate::checkpoint::{LocalFs, Store, StoreError};

/// The [`Store`] at `location`: a [`LocalFs`] directory (created if needed) or a
/// bucket prefix.
pub fn open_store(location: &Location) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match location {
        Location::Local(path) => Arc::new(LocalFs::new(path)?),
        Location::Remote(url) => Arc::new(ObjectStoreStore::new(
            Bucket::open(url).map_err(storage_err)?,
        )),
    })
}

fn storage_err(e: StorageError) -> StoreError {
    StoreError::Storage(Box::new(e))
}

/// The bucket prefix `run.output_dir` names, as a [`Store`] (pointers there:
/// `config.resolved.yaml`); `None` when the run directory is local.
pub fn open_run_output(
    cfg: &crate::config::RunConfig,
) -> Result<Option<Arc<dyn Store>>, StoreError> {
    let Some(url) = cfg.output_url() else {
        return Ok(None);
    };
    Ok(Some(Arc::new(ObjectStoreStore::new(
        Bucket::open(&url).map_err(storage_err)?,
    ))))
}

/// The checkpoint store `<run.output_dir>/checkpoints` on a bucket; `None` when
/// the run directory is local (then [`CheckpointDir::new`](crate::checkpoint::CheckpointDir::new)).
pub fn open_checkpoints(
    cfg: &crate::config::RunConfig,
) -> Result<Option<Arc<dyn Store>>, StoreError> {
    let Some(url) = cfg.output_url() else {
        return Ok(None);
    };
    let url = url.join("checkpoints").map_err(storage_err)?;
    Ok(Some(Arc::new(ObjectStoreStore::new(
        Bucket::open(&url).map_err(storage_err)?,
    ))))
}

/// Uploads the local file `path` to `<run.output_dir>/<key>` when the run
/// directory is a bucket (eval reports); nothing otherwise.
pub fn upload_run_file(
    cfg: &crate::config::RunConfig,
    key: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let Some(url) = cfg.output_url() else {
        return Ok(());
    };
    let bucket = Bucket::open(&url).map_err(storage_err)?;
    bucket
        .put(key, bytes::Bytes::copy_from_slice(bytes))
        .map_err(storage_err)
}
