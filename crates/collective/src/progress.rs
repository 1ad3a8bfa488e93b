//! The records a worker prints on stdout for its launcher: one JSON object per line,
//! `"event"` naming the kind (keys stable for log parsers). A worker prints them
//! when [`PROGRESS_JSON`](crate::group::env::var::PROGRESS_JSON) is set (`vigil
//! launch` sets it and renders them as its own bar, text lines or JSON lines); the
//! launcher's console parses them back. Part of the worker contract, like the
//! environment ([`WorkerEnv`](crate::WorkerEnv)) and the exit code
//! ([`PREEMPTED_EXIT`](crate::PREEMPTED_EXIT)).

use serde::Serialize;

/// One interval's progress, as printed (JSON keys are stable for log parsers).
#[derive(Debug, Clone, Serialize)]
pub struct ProgressRecord {
    /// Always `"train"`.
    pub event: &'static str,
    /// Optimizer steps done.
    pub step: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Mean loss over the interval.
    pub loss: f64,
    /// Encoder learning rate.
    pub lr: f64,
    /// Gradient global norm before clipping (last step).
    pub grad_norm: f64,
    /// Samples per second over all ranks.
    pub samples_per_sec: f64,
    /// Estimated seconds to the end.
    pub eta_s: f64,
    /// Collectives per optimizer step this process issued (1: gradients,
    /// counters and the stop flag share one all-reduce).
    pub collectives_per_step: f64,
    /// Mean milliseconds per step, by phase.
    pub time_ms: serde_json::Map<String, serde_json::Value>,
}

/// Evaluation progress of rank 0's shard (`{"event":"eval","done":..,"total":..}`).
#[derive(Debug, Clone, Serialize)]
pub struct EvalProgress {
    /// Always `"eval"`.
    pub event: &'static str,
    /// Rows of rank 0's shard scored so far.
    pub done: u64,
    /// Rows of rank 0's shard.
    pub total: u64,
}

/// Feature-cache build progress of rank 0's chunks
/// (`{"event":"feature_cache","split":..,"tower":..,"done":..,"total":..}`).
#[derive(Debug, Clone, Serialize)]
pub struct FeatureCacheProgress {
    /// Always `"feature_cache"`.
    pub event: &'static str,
    /// `train` or `val`.
    pub split: &'static str,
    /// `text` or `image`.
    pub tower: &'static str,
    /// Rows rank 0 encoded so far.
    pub done: u64,
    /// Rows rank 0 encodes.
    pub total: u64,
}
