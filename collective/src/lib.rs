//! Vigil's communication engine: what gloo is to PyTorch on CPU and NCCL on GPUs.
//!
//! It works on flat `f32` buffers and never depends on burn, so it can be tested
//! and benchmarked without a model. The trainer flattens gradients into buckets,
//! hands them here, and writes the reduced values back.

pub mod error;
pub mod store;

pub use error::{Error, Op, Result};
