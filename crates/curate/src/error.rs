//! The crate's error: user mistakes (a bad file, row or flag) exit 2 in the
//! binary; I/O failures exit 1.

use std::path::PathBuf;

/// What went wrong in the data loop.
#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of an input file is bad (the user's mistake).
    #[error("{}:{line}: {message}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A setting or combination of inputs is wrong (the user's mistake).
    #[error("{message}")]
    Usage {
        /// What is wrong, naming the flag, key or file.
        message: String,
    },
}

impl CurateError {
    /// Whether this is the user's mistake (exit 2) rather than a failure (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}
