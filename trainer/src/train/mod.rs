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
//! - `worker.rs`: `vigil worker` — the data-parallel loop.
//! - `evaluate.rs`: distributed evaluation and the report files.
//! - `feature_cache.rs`: frozen towers' features, computed once per dataset;
//!   `cache_bench.rs`: `vigil bench feature-cache`, what that buys.
//! - `publish.rs`: batches to tensors; the serving export behind the gate.
//! - `resume.rs`: checkpoint save and restore; `state.rs`: what a checkpoint holds.
//! - `signals.rs`: stop signals and the launcher heartbeat.
//! - `progress.rs`: rank 0's console progress (bar, text or JSON lines).

mod adamw;
pub mod cache_bench;
mod comm;
mod early_stop;
mod error;
mod evaluate;
mod feature_cache;
mod flat;
mod gather;
mod progress;
mod publish;
mod resume;
mod schedule;
mod signals;
mod state;
mod timing;
mod worker;

pub use adamw::{AdamWConfig, FlatAdamW, ParamGroup, clip_global_norm, global_norm};
pub use comm::Comm;
pub use early_stop::{EarlyStopper, Verdict, is_better};
pub use error::TrainError;
pub use evaluate::{EvalOutcome, evaluate, score_shard};
pub use feature_cache::{BuildReport, CachePlan, SplitFeatures, Table};
pub use flat::{ParamLayout, ParamSlot, read_grads, read_params, write_params};
pub use gather::{ShardScores, checksum, merge};
pub use progress::{
    EvalProgress, FeatureCacheProgress, Progress, ProgressMode, ProgressRecord, Ticker,
    UNDER_LAUNCHER,
};
pub use publish::{Exporter, batch_tensors};
pub use schedule::LrSchedule;
pub use signals::{PREEMPTED_EXIT, install_stop_handler, stop_requested};
pub use state::LoopState;
pub use timing::{IntervalStats, Phase, StepTimer};
pub use worker::{Outcome, param_groups, run, total_steps};
