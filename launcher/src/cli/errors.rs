//! Which exit code an error that ended a command gets, and how it is printed.
//!
//! This sits above the subcommands because it knows their usage-error types; the codes
//! themselves are [`vigil_launch::exit`]'s, at the bottom of the crate, which the subcommands and
//! the supervision policy name without importing this module back.

use vigil_config::ConfigError;
use vigil_data::DataError;
use vigil_infer::ServeError;
use vigil_model::ModelError;
use vigil_report::ReportError;
use vigil_store::repo::LocateError;
use vigil_trainer::train::TrainError;

use super::{BenchUsageError, LaunchUsageError, RenderUsageError, ResolveError};
use vigil_launch::exit::{FAILURE, NON_FINITE_LOSS, USAGE};
use vigil_launch::supervise::LaunchError;

/// The exit code for an error that ended the command.
pub fn code_for(err: &anyhow::Error) -> u8 {
    let non_finite = |e: &(dyn std::error::Error + 'static)| {
        matches!(
            e.downcast_ref::<TrainError>(),
            Some(TrainError::NonFiniteLoss { .. })
        )
    };
    let usage = |e: &(dyn std::error::Error + 'static)| {
        e.downcast_ref::<ConfigError>().is_some()
            || e.downcast_ref::<LaunchUsageError>().is_some()
            || e.downcast_ref::<ResolveError>()
                .is_some_and(ResolveError::is_usage)
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
            || e.downcast_ref::<LocateError>()
                .is_some_and(LocateError::is_user_error)
            || e.downcast_ref::<ReportError>()
                .is_some_and(ReportError::is_user_error)
            || e.downcast_ref::<vigil_curate::CurateError>()
                .is_some_and(vigil_curate::CurateError::is_usage)
            || e.downcast_ref::<vigil_recall::RecallError>()
                .is_some_and(vigil_recall::RecallError::is_usage)
            || matches!(
                e.downcast_ref::<LaunchError>(),
                Some(LaunchError::NoToken { .. } | LaunchError::DuplicateNode { .. })
            )
    };
    if err.chain().any(non_finite) {
        NON_FINITE_LOSS
    } else if err.chain().any(usage) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_loss_exits_65_and_a_config_error_2() {
        let nan = anyhow::Error::new(TrainError::NonFiniteLoss {
            step: 7,
            value: f64::NAN,
        })
        .context("training failed");
        assert_eq!(code_for(&nan), NON_FINITE_LOSS);
        let usage = anyhow::Error::new(LaunchUsageError::NothingToRun);
        assert_eq!(code_for(&usage), USAGE);
        assert_eq!(code_for(&anyhow::anyhow!("disk on fire")), FAILURE);
        assert_eq!(
            render_chain(&nan),
            "training failed\n  caused by: loss is NaN at step 7; lower optim.lr or enable optim.grad_clip"
        );
    }
}
