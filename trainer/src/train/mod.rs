//! The data-parallel training loop and its parts.
//!
//! # Layout
//! - `comm.rs`: the worker's process group (or a single process).
//! - `error.rs`: [`TrainError`].
//! - `flat.rs`: trainable parameters and gradients as one flat vector (the
//!   bridge between burn modules and `vigil-collective`).
//! - `adamw.rs`: AdamW over flat vectors with parameter groups; gradient clipping.
//! - `gather.rs`: distributed evaluation scores and replica checksums.
//! - `schedule.rs`: learning-rate schedules (pure functions of the step).
//! - `early_stop.rs`: early stopping on a monitored metric.
//! - `timing.rs`: the per-step time split and throughput.
//! - `progress.rs`: rank 0's console progress (bar, text or JSON lines).

mod adamw;
mod comm;
mod early_stop;
mod error;
mod flat;
mod gather;
mod progress;
mod schedule;
mod timing;

pub use adamw::{AdamWConfig, FlatAdamW, ParamGroup, clip_global_norm, global_norm};
pub use comm::Comm;
pub use early_stop::{EarlyStopper, Verdict, is_better};
pub use error::TrainError;
pub use flat::{ParamLayout, ParamSlot, read_grads, read_params, write_params};
pub use gather::{ShardScores, checksum, merge};
pub use progress::{Progress, ProgressMode, ProgressRecord};
pub use schedule::LrSchedule;
pub use timing::{IntervalStats, Phase, StepTimer};
