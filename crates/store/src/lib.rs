//! Vigil's storage family, free of burn and of the run config: everything that
//! writes files whole or not at all and reads them back verified.
//!
//! # Layout
//! - [`atomic`]: single files written whole or not at all (temporary, fsync, rename).
//! - [`checkpoint`]: the [`Store`](checkpoint::Store) trait, its local
//!   implementation, manifests, `step-<S>` checkpoints with verified resume,
//!   retention and background writes.
//! - [`storage`]: object storage (S3, GCS, Azure): the typed [`Location`]
//!   (a path or a bucket URL, parsed once), the bucket client, the bucket
//!   implementation of `Store`, the output lease.
//! - [`repo`]: versioned model repositories (`<export.dir>/<model>/<N>`), the file
//!   names of a version, and locating the version `--model`/`--version` mean.
//!
//! Callers pass typed values ([`Location`], [`RemoteUrl`](storage::RemoteUrl),
//! [`RetentionPolicy`](checkpoint::RetentionPolicy)), never a run config: this
//! crate never depends on `vigil-config` (checked by `scripts/check_arrows.py` in
//! `.ci/run`).

pub mod atomic;
pub mod checkpoint;
pub mod repo;
pub mod storage;

pub use storage::Location;
