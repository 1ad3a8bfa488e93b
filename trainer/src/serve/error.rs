//! [`ServeError`]: what can go wrong picking, loading and running an exported model.
//!
//! Most failures are the user's to fix — a model directory without a complete
//! version, a `--version` that is not there, a bad input row, a label name that
//! the model does not have — and `vigil` exits 2 for them
//! ([`ServeError::is_user_error`]). The variants keep their sources (store, data,
//! model errors) so the printed chain says exactly which file and row.

use std::path::PathBuf;

use crate::checkpoint::StoreError;
use crate::data::DataError;
use crate::export::ExportFileError;
use crate::model::ModelError;

/// An error of `vigil predict` / `vigil eval`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model directory has no version whose manifest verifies.
    #[error(
        "{}: no complete model version (expected integer version directories such as \
         {}/1 holding MANIFEST.json){}",
        dir.display(),
        dir.display(),
        if skipped.is_empty() { String::new() } else { format!("; damaged: {}", skipped.join("; ")) }
    )]
    NoVersion {
        /// The model repository directory.
        dir: PathBuf,
        /// Versions present but damaged, with why.
        skipped: Vec<String>,
    },
    /// `--version V` names a version that does not exist.
    #[error(
        "{}: version {version} does not exist (versions present: {})",
        dir.display(),
        if available.is_empty() { "none".to_string() } else {
            available.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        }
    )]
    VersionNotFound {
        /// The model repository directory.
        dir: PathBuf,
        /// The version asked for.
        version: u64,
        /// Versions that exist.
        available: Vec<u64>,
    },
    /// The version asked for (or the version directory given) does not verify.
    #[error("{}: version {version} is incomplete or damaged", dir.display())]
    VersionUnusable {
        /// The model repository or version directory.
        dir: PathBuf,
        /// The version.
        version: u64,
        /// What verification found.
        #[source]
        source: Box<StoreError>,
    },
    /// `--model` names a version directory and `--version` names another one.
    #[error(
        "{}: is version {found}, but --version {asked} was given (pass the model \
         repository, its parent, to choose a version)",
        dir.display()
    )]
    VersionConflict {
        /// The version directory.
        dir: PathBuf,
        /// Its version.
        found: u64,
        /// The `--version` value.
        asked: u64,
    },
    /// Reading the model repository failed.
    #[error("cannot read model repository {}", dir.display())]
    Repo {
        /// The directory.
        dir: PathBuf,
        /// The store error.
        #[source]
        source: Box<StoreError>,
    },
    /// A serving file of the version (`thresholds.json`, `config.json`) is not usable.
    #[error("{}: {message}", path.display())]
    BadExportFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `--rank-by` names a label the model does not have.
    #[error(
        "--rank-by {given}: the model has no label '{given}' (labels: {}; or 'uncertainty')",
        labels.join(", ")
    )]
    UnknownLabel {
        /// The value given.
        given: String,
        /// The model's labels.
        labels: Vec<String>,
    },
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
            Self::NoVersion { .. }
            | Self::VersionNotFound { .. }
            | Self::VersionUnusable { .. }
            | Self::VersionConflict { .. }
            | Self::BadExportFile { .. }
            | Self::UnknownLabel { .. }
            | Self::BadOption { .. } => true,
            Self::Repo { source, .. } => matches!(
                source.as_ref(),
                StoreError::Io { source, .. }
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::NotADirectory
                            | std::io::ErrorKind::PermissionDenied
                    )
            ),
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
