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
//! - [`mirror`]: files and prefixes of a bucket copied into a local cache directory
//!   (datasets on a bucket; `vigil_data::localize` applies it to a `data` section).
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
        Location::Remote(url) => Arc::new(ObjectStoreStore::new(Bucket::open(url)?)),
    })
}

/// The bucket prefix `output` (a run directory on a bucket), as a [`Store`]
/// (pointers there: `config.resolved.yaml`).
pub fn open_run_output(output: &RemoteUrl) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(ObjectStoreStore::new(Bucket::open(output)?)))
}

/// The checkpoint store `<output>/checkpoints` of a run directory on a bucket
/// (a local run directory uses [`CheckpointDir::new`](crate::checkpoint::CheckpointDir::new)).
pub fn open_checkpoints(output: &RemoteUrl) -> Result<Arc<dyn Store>, StoreError> {
    let url = output.join("checkpoints")?;
    Ok(Arc::new(ObjectStoreStore::new(Bucket::open(&url)?)))
}

/// Uploads `bytes` to `<output>/<key>` of a run directory on a bucket (eval reports).
pub fn upload_run_file(output: &RemoteUrl, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let bucket = Bucket::open(output)?;
    bucket
        .put(key, bytes::Bytes::copy_from_slice(bytes))
        .map_err(StoreError::from)
}
