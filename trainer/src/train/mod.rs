//! The data-parallel training loop and its parts.
//!
//! # Layout
//! - `comm.rs`: the worker's process group (or a single process).
//! - `error.rs`: [`TrainError`].
//! - `flat.rs`: trainable parameters and gradients as one flat vector (the
//!   bridge between burn modules and `vigil-collective`).
//! - `adamw.rs`: AdamW over flat vectors with parameter groups; gradient clipping.
//! - `bucket.rs`, `device_adamw.rs`: the device-resident step of non-host backends
//!   (CUDA): gradients flattened into a few device buckets, reduced in place, AdamW
//!   as tensor ops on the device ([`Trainer`] picks it; the CPU keeps the host path).
//! - `gather.rs`: distributed evaluation scores and replica checksums.
//! - `schedule.rs`: learning-rate schedules (pure functions of the step).
//! - `early_stop.rs`: early stopping on a monitored metric.
//! - `timing.rs`: the per-step time split and throughput.
//! - `setup/`: everything before the first step (datasets, model, broadcast,
//!   resume, feature cache, standardisation).
//! - `trainer.rs`: [`Trainer`] — model, optimizer, layout, gradient buffer,
//!   process group; one optimizer step with one collective.
//! - `precision.rs`: mixed precision (`train.precision`): the device's float dtype
//!   and f16's dynamic loss scaling.
//! - `plan.rs`: [`LoopPlan`] — after step S, what to do (pure).
//! - `worker.rs`: `vigil worker` — feeds micro-batches to the trainer.
//! - `training_loop.rs`: `Loop` — one method per action of the plan.
//! - `hooks.rs`: debug hooks, only with the `test-hooks` feature.
//! - `evaluate.rs`: distributed evaluation and the report files.
//! - `feature_cache/`: frozen towers' features, computed once per dataset (the
//!   tables themselves are [`vigil_model::SplitFeatures`]).
//! - `publish.rs`: the serving export behind the gate; `republish.rs`: `vigil
//!   export` (an existing checkpoint or version into a model repository).
//! - `resume.rs`: checkpoint save and restore; `state.rs`: what a checkpoint holds.
//! - `signals.rs`: stop signals and the launcher heartbeat.
//! - `progress.rs`: rank 0's console progress (bar, text or JSON lines).

mod adamw;
mod bucket;
mod comm;
mod device_adamw;
mod early_stop;
mod error;
mod evaluate;
mod feature_cache;
mod flat;
mod gather;
mod grid;
mod hooks;
mod plan;
mod precision;
mod progress;
mod publish;
mod republish;
mod resume;
mod schedule;
mod setup;
mod signals;
mod state;
mod timing;
mod trainer;
mod training_loop;
mod worker;

pub use adamw::{AdamWConfig, FlatAdamW, ParamGroup, clip_global_norm, global_norm};
pub use bucket::{BUCKET_CAP, Bucket, buckets, flatten_grads, write_params_from_buckets};
pub use comm::Comm;
pub use device_adamw::DeviceAdamW;
pub use early_stop::{EarlyStopper, Verdict};
pub use error::TrainError;
pub use evaluate::{EvalOutcome, evaluate, score_shard};
pub use feature_cache::{BuildReport, CachePlan};
pub use flat::{ParamLayout, ParamSlot, read_grads, read_params, write_params};
pub use gather::{ShardScores, checksum, merge};
pub use plan::{Action, EvalDecision, LoopPlan, Owed, Stop, owed_after};
pub use precision::{
    LossScaler, ScaleVerdict, cast_float_params, float_dtype, set_device_precision,
};
pub use progress::{Progress, ProgressMode, Ticker, UNDER_LAUNCHER};
pub use publish::{Exporter, version_files, write_triton_files};
pub use republish::{ExportSource, Republished, republish};
pub use schedule::LrSchedule;
pub use setup::{Setup, param_groups, setup, total_steps, verify_replicas};
pub use signals::{PREEMPTED_EXIT, install_stop_handler, stop_requested};
pub use state::LoopState;
pub use timing::{IntervalStats, Phase, StepTimer};
pub use trainer::{StepResult, Trainer};
pub use worker::{Outcome, run};
