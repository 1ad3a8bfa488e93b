//! Errors of making a report.

use std::path::PathBuf;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file of the run directory or export could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what the run writes.
    #[error("{}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The report file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The report file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A scores file is unreadable or bad.
    #[error(transparent)]
    Scores(#[from] vigil_eval::scored::ScoresError),
    /// The run directory has no evaluation to report on (or not the one asked for).
    #[error("{}: {message}", dir.display())]
    NoEvaluation {
        /// The run directory.
        dir: PathBuf,
        /// What is missing, and what exists.
        message: String,
    },
    /// The run's config could not be read.
    #[error(transparent)]
    Config(#[from] vigil_config::ConfigError),
    /// The run's TensorBoard events could not be read.
    #[error(transparent)]
    Logging(#[from] vigil_tensorboard::Error),
    /// `--slice-by` does not name a `meta` field.
    #[error(
        "--slice-by '{given}': expected meta.FIELD (e.g. meta.language), a field of each row's meta object"
    )]
    SliceBy {
        /// What was given.
        given: String,
    },
    /// A chart could not be drawn (a bug, not a user error).
    #[error("drawing the {chart} chart failed: {message}")]
    Chart {
        /// Which chart.
        chart: String,
        /// The plotting error.
        message: String,
    },
}

impl ReportError {
    /// Whether the user can fix it (a wrong directory, a damaged or missing file,
    /// a bad flag): exit code 2 rather than 1.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Chart { .. } | Self::Write { .. })
    }
}
