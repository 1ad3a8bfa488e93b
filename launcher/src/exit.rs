//! Exit codes of `vigil`, documented in README.md.
//!
//! Schedulers branch on them, so each has one meaning: 0 success, 1 a runtime
//! failure, 2 a usage or config error (the user must change something).

use vigil_trainer::config::ConfigError;
use vigil_trainer::data::DataError;

/// A runtime failure (a worker crashed, I/O failed).
pub const FAILURE: u8 = 1;
/// A usage or config error: bad flags, bad YAML, a missing file.
pub const USAGE: u8 = 2;
/// `vigil datasets audit --strict` found errors in the data.
pub const AUDIT_FINDINGS: u8 = 3;

/// The exit code for an error that ended the command.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|e| e.downcast_ref::<ConfigError>().is_some())
        || err.chain().any(|e| {
            e.downcast_ref::<DataError>()
                .is_some_and(DataError::is_user_error)
        })
    {
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
