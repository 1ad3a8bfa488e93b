//! Vigil's trainer: everything a worker process does that the other crates do not.
//!
//! # Layout
//! - [`train`]: the training loop and its parts (the pure plan, the loop that
//!   carries it out, schedule, early stopping, checkpoints and resume, evaluation,
//!   export, progress, the gradient all-reduce through `vigil-collective`).
//! - [`logging`]: the worker's TensorBoard logger (`vigil-tensorboard`) and the
//!   run config as hparams.
//! - [`bench`]: the benchmarks behind `vigil bench`.
//! - [`cpu`]: the monomorphic CPU entry points the `vigil` binary calls.
//!
//! The run config is `vigil-config`'s, data `vigil-data`'s, the model
//! `vigil-model`'s, checkpoints and repositories `vigil-store`'s, metrics and the
//! export gate `vigil-eval`'s, the files of a version `vigil-export`'s, and
//! evaluation's scoring loop `vigil-infer`'s. Neither the launcher's supervision
//! nor the server links this crate (checked in `.ci/run`).

pub mod bench;
pub mod cpu;
pub mod logging;
pub mod train;
