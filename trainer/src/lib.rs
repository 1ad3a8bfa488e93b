//! Vigil's trainer library: everything a worker process does.
//!
//! # Layout
//! - [`config`]: the YAML run config — schema, overrides, validation.
//! - [`backend`]: the burn backend types (CPU default, CUDA under `cuda`).
//! - [`model`]: the moderation model — towers, fusion, head, loss, weight loading.
//!
//! Later modules (data, model, training loop, metrics, TensorBoard, checkpoints)
//! plug into the config defined here; the launcher depends on this crate only for
//! the config and the `vigil worker` entry point, never for supervision.

pub mod backend;
pub mod config;
pub mod model;
