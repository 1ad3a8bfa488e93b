//! Exit codes of `vigil`, documented in README.md.
//!
//! Schedulers branch on them, so each has one meaning: 0 success, 1 a runtime
//! failure, 2 a usage or config error (the user must change something), 3 audit
//! findings (`vigil datasets audit --strict`), 75 preempted
//! (the workers were stopped on request after checkpointing: requeue the job).

use vigil_trainer::config::ConfigError;
use vigil_trainer::data::DataError;
use vigil_trainer::model::ModelError;
use vigil_trainer::serve::ServeError;
use vigil_trainer::train::TrainError;

use crate::cli::{BenchUsageError, LaunchUsageError, RenderUsageError};
use crate::supervise::LaunchError;

/// A runtime failure (a worker crashed, I/O failed).
pub const FAILURE: u8 = 1;
/// A usage or config error: bad flags, bad YAML, a missing file.
pub const USAGE: u8 = 2;
/// `vigil launch` was told to stop (SIGTERM/SIGINT, or another node was) and stopped its
/// workers: the run can resume from its checkpoint. `EX_TEMPFAIL` from `sysexits.h`
/// ("temporary failure, retry"), distinct from 128+N codes of processes killed by a signal,
/// so Slurm requeue scripts and Kubernetes `podFailurePolicy` can match it exactly.
pub const PREEMPTED: u8 = 75;
/// `vigil datasets audit --strict` found errors in the data.
pub const AUDIT_FINDINGS: u8 = 3;

/// The exit code for an error that ended the command.
pub fn code_for(err: &anyhow::Error) -> u8 {
    let usage = |e: &(dyn std::error::Error + 'static)| {
        e.downcast_ref::<ConfigError>().is_some()
            || e.downcast_ref::<LaunchUsageError>().is_some()
            || e.downcast_ref::<RenderUsageError>().is_some()
            || e.downcast_ref::<BenchUsageError>().is_some()
            || e.downcast_ref::<TrainError>()
                .is_some_and(TrainError::is_usage)
            || e.downcast_ref::<DataError>()
                .is_some_and(DataError::is_user_error)
            || e.downcast_ref::<ModelError>()
                .is_some_and(ModelError::is_user_error)
            || e.downcast_ref::<ServeError>()
                .is_some_and(ServeError::is_user_error)
            || matches!(
                e.downcast_ref::<LaunchError>(),
                Some(LaunchError::NoToken { .. } | LaunchError::DuplicateNode { .. })
            )
    };
    if err.chain().any(usage) {
        USAGE
    } else {
        FAILURE
    }
}

/// The error and its causes on one line each, without a backtrace.
pub fn render_chain(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        out.push_str("\n  caused by: ");
        out.push_str(&cause.to_string());
    }
    out
}
