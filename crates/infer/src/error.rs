//! [`ServeError`]: what can go wrong picking, loading and running an exported model.
//!
//! Most failures are the user's to fix — a model directory without a complete
//! version, a `--version` that is not there, a bad input row, a label name that
//! the model does not have — and `vigil` exits 2 for them
//! ([`ServeError::is_user_error`]). The variants keep their sources (store, data,
//! model errors) so the printed chain says exactly which file and row.

use std::path::PathBuf;

use vigil_data::DataError;
use vigil_export::ExportFileError;
use vigil_model::ModelError;
use vigil_store::repo::LocateError;

/// An error of `vigil predict` / `vigil eval`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `--model`/`--version` name no usable version.
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// A serving file of the version (`thresholds.json`, `config.json`) is not usable.
    #[error("{}: {message}", path.display())]
    BadExportFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `--rank-by` names a label the model does not have.
    #[error(transparent)]
    UnknownLabel(#[from] vigil_eval::rank::UnknownLabel),
    /// A flag value that cannot be used.
    #[error("{flag}: {message}")]
    BadOption {
        /// The flag, e.g. `--top`.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Loading the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Reading or batching the input rows failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Scored rows did not line up with the rows read (a bug, not a user error).
    #[error("internal error: {what}")]
    Internal {
        /// What did not line up.
        what: &'static str,
    },
    /// Writing an output file failed (a missing directory or no permission is the
    /// user's to fix; a full disk is not).
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ServeError {
    /// Whether the user must change something (a path, a flag, a row, a damaged
    /// export) rather than retry: `vigil` exits 2 for these.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::BadExportFile { .. } | Self::UnknownLabel(_) | Self::BadOption { .. } => true,
            Self::Locate(e) => e.is_user_error(),
            Self::Model(e) => e.is_user_error(),
            Self::Data(e) => e.is_user_error(),
            Self::Internal { .. } => false,
            Self::Write { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidInput
            ),
        }
    }
}

impl From<ExportFileError> for ServeError {
    fn from(e: ExportFileError) -> Self {
        Self::BadExportFile {
            path: e.path,
            message: e.message,
        }
    }
}
