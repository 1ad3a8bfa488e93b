//! Checkpoints: atomic publishing, verified resume with fallback, retention, and
//! background writes — the storage half of checkpointing, free of burn types.
//!
//! Two promises: a crash never leaves a half-written checkpoint visible (nor
//! destroys the previous one), and a damaged checkpoint is detected before it is
//! loaded. Both rest on the same mechanism, shared with the serving export
//! ([`crate::repo`]): an *entry* is a set of files plus a `MANIFEST.json` with
//! each file's size and sha256, written last, and the entry becomes visible in one
//! atomic step.
//!
//! # Layout
//! - [`store`]: the [`Store`] trait (publish, list, open, delete, pointers) and
//!   verification over any store.
//! - [`local`]: [`LocalFs`], the POSIX implementation (staging dir, fsync, rename).
//! - [`manifest`]: the `MANIFEST.json` format.
//! - [`dir`]: [`CheckpointDir`] — `step-<S>` entries, `LATEST`, resume, retention.
//! - [`writer`]: [`AsyncCheckpointer`] — saves on a background thread, stall measured.
//! - [`retention`]: the keep-last/keep-best policy as a pure function.
//! - [`error`]: [`StoreError`] and [`Corruption`].
//!
//! Why a trait for two methods' worth of filesystem calls: clusters keep
//! checkpoints and model repositories in object stores as often as on shared
//! disks. There "atomic publish" is "upload every file, then the manifest"; the
//! code above the trait already treats an entry without a valid manifest as absent.

pub mod dir;
pub mod error;
pub mod local;
pub mod manifest;
pub mod retention;
pub mod store;
pub mod writer;

pub use dir::{
    CheckpointDir, CheckpointMeta, Found, LATEST, Loaded, SaveReport, config_hash,
    load_checkpoint_dir, load_dir, parse_step, step_entry,
};
pub use error::{Corruption, StoreError};
pub use local::LocalFs;
pub use manifest::{FileDigest, MANIFEST_FILE, Manifest};
pub use retention::{Action, Ranking, RetentionPolicy, Stored};
pub use store::{Files, IfExists, Store, WriteEvent, WriteHook, read_verified, verify};
pub use writer::{AsyncCheckpointer, AsyncSaveReport};
