//! Moderation datasets: formats, bad-row policy, sharding, batching, the bundled
//! sample's generator and the audit.
//!
//! Moderation data is messy (missing images, partial labels, duplicates with
//! conflicting labels, items leaking between splits), so this layer is strict and
//! says what it dropped: [`Dataset::load`] checks every row before training and
//! either stops at a bad one (`on_bad_row: fail`, `FILE:LINE: reason`) or drops,
//! counts and records it (`skip`, `data/rejects.jsonl`). It never panics on input.
//!
//! The rest of a worker sees three things:
//! - [`ShardSampler`]: which examples rank `r` of `W` trains on in each epoch
//!   (PyTorch `DistributedSampler` semantics, seeded by `(run.seed, epoch)`,
//!   positionable at `(epoch, batch)` for exact resume).
//! - [`Loader`]: an iterator of [`Batch`]es for `(rank, epoch, start batch)`,
//!   images decoded and resized ahead of time by a bounded thread pool.
//! - [`Batch`]: plain `Vec<f32>` buffers; the data layer knows nothing of burn,
//!   so it is tested and benchmarked without a backend.
//!
//! # Layout
//! - `error.rs`: [`DataError`], [`BadRow`] and its kinds.
//! - `format/`: one module per JSONL dialect (Vigil, Hateful Memes).
//! - `paths.rs`: image paths confined to the image root.
//! - `imaging/`: decode, resize and normalise as an [`ImageSpec`] says (Vigil's
//!   triangle filter, or Pillow's bilinear / bicubic byte for byte in `pil.rs`).
//! - `dataset.rs`: loading with the bad-row policy; the rejects file.
//! - `sampler.rs`, `batch.rs`, `loader.rs`: sharding, batches, prefetching.
//! - `stats.rs`: counts and text-length percentiles for logs.
//! - `audit.rs`: duplicates, conflicts, leakage, corrupt images.
//! - `synth/`: the generator of `datasets/sample`.
//! - `bench.rs`: loader throughput measurement.
//! - `rng.rs`: the data layer's own stable RNG.

mod audit;
mod batch;
mod bench;
mod dataset;
mod error;
pub mod format;
mod imaging;
mod loader;
mod paths;
mod remote;
pub mod rng;
mod sampler;
mod stats;
pub mod synth;

pub use audit::{AuditOptions, AuditReport, DuplicateGroup, Leakage, audit, normalise_text};
pub use batch::Batch;
pub use bench::{BenchOptions, BenchReport, bench};
pub use dataset::{Dataset, Example, LoadOptions, LoadReport, Reject, Split, write_rejects};
pub use error::{BadRow, BadRowKind, DataError};
pub use imaging::pil::{PilFilter, pil_resize};
pub use imaging::{
    IMAGENET_MEAN, IMAGENET_STD, ImageSpec, check_header, decode_rgb, load_normalised,
    load_transformed, normalise_chw, resize_normalise_chw, transform_chw,
};
pub use loader::{Loader, LoaderOptions};
pub use paths::ImageRoot;
pub use remote::localize;
pub use sampler::{Position, ShardSampler};
pub use stats::{DataStats, LabelCounts, Percentiles};
pub use synth::{SynthOptions, SynthReport, synth};
