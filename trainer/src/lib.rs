//! Vigil's trainer library: everything a worker process does.
//!
//! # Layout
//! - [`config`]: the YAML run config — schema, overrides, validation.
//! - [`logging`]: TensorBoard events and the `MetricLogger` trait.
//! - [`metrics`]: evaluation metrics and the evaluation report.
//! - [`train`]: the training loop and its parts (schedule, early stopping, timing).
//! - [`checkpoint`]: atomic checkpoints, verified resume, retention (no burn types).
//! - [`export`]: versioned serving exports and the champion/challenger gate.
//!
//! Later modules (data, model, training loop, metrics, TensorBoard, checkpoints)
//! plug into the config defined here; the launcher depends on this crate only for
//! the config and the `vigil worker` entry point, never for supervision.

pub mod checkpoint;
pub mod config;
pub mod export;
pub mod logging;
pub mod metrics;
pub mod train;
