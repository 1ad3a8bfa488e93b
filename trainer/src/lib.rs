//! Vigil's trainer library: everything a worker process does.
//!
//! # Layout
//! - [`config`]: the YAML run config — schema, overrides, validation.
//! - [`logging`]: TensorBoard events and the `MetricLogger` trait.
//! - [`metrics`]: evaluation metrics and the evaluation report.
//! - [`train`]: the training loop and its parts (schedule, early stopping, timing).
//!
//! Later modules (data, model, training loop, metrics, TensorBoard, checkpoints)
//! plug into the config defined here; the launcher depends on this crate only for
//! the config and the `vigil worker` entry point, never for supervision.

pub mod config;
pub mod logging;
pub mod metrics;
pub mod train;
