//! The crate's error: what went wrong, naming the file, line, id or URL.

use std::path::PathBuf;

/// Everything an index, a recall or a Milvus call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RecallError {
    /// Reading or writing a local file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A bad line of an input file (embeddings, ids).
    #[error("{path}:{line}: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A user mistake in the command's inputs: an unknown id, a dimension that does
    /// not match the index, an embedding model that is not the index's.
    #[error("{0}")]
    Usage(String),
    /// The approximate index library refused an operation.
    #[error("vector index: {0}")]
    Ann(String),
    /// A published index version that cannot be read (damaged, or not an index).
    #[error("index {location}: {reason}")]
    Damaged {
        /// The version's location.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Publishing or reading through the store.
    #[error(transparent)]
    Store(#[from] vigil_store::checkpoint::StoreError),
    /// The vector engine (Milvus) answered with an error or not at all.
    #[error("{url}: {reason}")]
    Engine {
        /// The request's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl RecallError {
    /// Whether the error is the user's to fix (exit code 2): a bad input line or an
    /// unusable request, as opposed to a failing disk, store or server.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::BadLine { .. } | Self::Usage(_))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
