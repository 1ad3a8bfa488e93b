//! Vigil's trainer library: everything a worker process does.
//!
//! # Layout
//! - [`atomic`]: files written whole or not at all (temporary, fsync, rename).
//! - [`config`]: the YAML run config — schema, overrides, validation.
//! - [`data`]: datasets, bad-row policy, sharding, the image pipeline.
//! - [`model`]: the multimodal moderation model (burn) and pretrained loading.
//! - [`backend`]: the burn backend types (CPU default, CUDA under `cuda`).
//! - [`logging`]: TensorBoard events and the `MetricLogger` trait.
//! - [`metrics`]: evaluation metrics and the evaluation report.
//! - [`train`]: the training loop and its parts (schedule, early stopping, timing).
//! - [`checkpoint`]: atomic checkpoints, verified resume, retention (no burn types).
//! - [`score`]: the scoring loop shared by evaluation and offline scoring.
//! - [`export`]: versioned serving exports, their file formats, and the
//!   champion/challenger gate.
//! - [`storage`]: object storage (S3, GCS, Azure) behind the checkpoint store;
//!   bucket URLs, the data mirror, the output lease.
//! - [`serve`]: offline use of exported models (`vigil predict`, `vigil eval`,
//!   `vigil embed`).
//! - [`report`]: the self-contained HTML evaluation report (`vigil report`).
//! - [`bench`]: the benchmarks behind `vigil bench`.
//!
//! The launcher depends on this crate only for the config and the `vigil worker`
//! entry point, never for supervision.

pub mod atomic;
pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod export;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod parallel;
pub mod report;
pub mod score;
pub mod serve;
pub mod storage;
pub mod train;
