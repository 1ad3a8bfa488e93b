//! `vigil launch`: the arguments and their resolution are `vigil_launch::resolve`'s,
//! the supervision `vigil_launch::supervise`'s; this file runs them and maps the
//! outcome onto the exit code.

use std::process::ExitCode;

use vigil_launch::exit;
use vigil_launch::resolve::{LaunchArgs, resolve};
use vigil_launch::supervise::{self, Outcome};

/// Runs the launch; the exit code is 0, 1 (failed), the worker's 2 or 65 (an error a
/// restart would repeat), or [`exit::PREEMPTED`].
pub fn run(args: LaunchArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    supervised(&args).map(ExitCode::from)
}

/// Logs `warn` and above to stderr (`RUST_LOG` to change), once per process.
pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves and supervises one launch (`vigil launch`, or one fold of `vigil
/// crossval`) and returns its exit code: 0, 1, the worker's 2 or 65, or
/// [`exit::PREEMPTED`].
pub(crate) fn supervised(args: &LaunchArgs) -> anyhow::Result<u8> {
    let spec = resolve(args, &|k| std::env::var(k).ok())?;
    let ending = match supervise::run(spec) {
        Ok(e) => e,
        Err(e @ supervise::LaunchError::Interrupted { .. }) => {
            eprintln!("vigil: {e}; exiting as preempted");
            return Ok(exit::PREEMPTED);
        }
        Err(e) => return Err(e.into()),
    };
    if !ending.summary.is_empty() {
        eprintln!("{}", ending.summary);
    }
    Ok(match ending.outcome {
        Outcome::Success => 0,
        // A failure the user must fix ends with the worker's own code (2, 65).
        Outcome::Failed { failure, .. } => failure
            .cause
            .final_code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(exit::FAILURE),
        Outcome::Preempted => exit::PREEMPTED,
    })
}
