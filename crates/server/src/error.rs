//! [`ServerError`]: why `vigil serve` could not start or stopped.
//!
//! Starting problems are the user's to fix (a repository without a complete
//! version, an unknown model name, a bad flag, an unreadable token file, an
//! address in use): `vigil` exits 2 for them ([`ServerError::is_user_error`]).

use std::path::PathBuf;

use vigil_infer::ServeError;

/// An error of `vigil serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Picking or loading the model failed (no version, a damaged pinned one).
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// `--model-repository` / `--model` do not name a model.
    #[error("{dir}: {message}")]
    Repository {
        /// The directory or bucket URL.
        dir: String,
        /// What is wrong.
        message: String,
    },
    /// The bucket of `--model-repository s3://…` could not be listed (refused,
    /// down, timed out); the error names the URL.
    #[error(transparent)]
    Storage(#[from] vigil_store::storage::StorageError),
    /// Flag values that cannot be used, every one.
    #[error("{}", problems.join("; "))]
    BadOptions {
        /// One message per flag.
        problems: Vec<String>,
    },
    /// The `--auth-token-file` cannot be read or is empty.
    #[error("--auth-token-file {}: {message}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A non-loopback `--listen` without `--auth-token-file` or `--insecure`.
    #[error(
        "--listen {addr} is reachable from other hosts and no --auth-token-file is given: \
         give a token file, listen on a loopback address (127.0.0.1), or pass --insecure \
         to serve without authentication anyway"
    )]
    Exposed {
        /// The address.
        addr: String,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The `--recall-index` repository cannot be opened (it does not exist, or
    /// its bucket cannot be reached).
    #[error("--recall-index {index}")]
    Recall {
        /// The directory or bucket URL.
        index: String,
        /// Why.
        #[source]
        source: vigil_recall::RecallError,
    },
    /// The HTTP server or a worker thread failed.
    #[error("the server failed")]
    Io(#[from] std::io::Error),
}

impl ServerError {
    /// Whether the user must change something: `vigil` exits 2.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Serve(e) => e.is_user_error(),
            Self::Repository { .. }
            | Self::BadOptions { .. }
            | Self::TokenFile { .. }
            | Self::Exposed { .. }
            | Self::Bind { .. } => true,
            Self::Recall { source, .. } => source.is_usage(),
            Self::Io(_) | Self::Storage(_) => false,
        }
    }
}
