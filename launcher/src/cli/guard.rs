//! `vigil __guard` (hidden): the orphan guard's process; see `supervise::guard`.

use std::process::ExitCode;

/// Runs the guard until its stdin closes.
pub fn run() -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(
        vigil_launch::supervise::guard::guard_main() as u8
    ))
}
