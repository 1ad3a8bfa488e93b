//! The data-parallel training loop and its parts.
//!
//! # Layout
//! - `schedule.rs`: learning-rate schedules (pure functions of the step).
//! - `early_stop.rs`: early stopping on a monitored metric.
//! - `timing.rs`: the per-step time split and throughput.
//! - `progress.rs`: rank 0's console progress (bar, text or JSON lines).

mod early_stop;
mod progress;
mod schedule;
mod timing;

pub use early_stop::{EarlyStopper, Verdict, is_better};
pub use progress::{Progress, ProgressMode, ProgressRecord};
pub use schedule::LrSchedule;
pub use timing::{IntervalStats, Phase, StepTimer};
