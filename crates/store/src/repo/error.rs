//! [`LocateError`]: why `--model DIR [--version V]` names no usable version.
//!
//! Every variant but [`LocateError::Repo`] is the user's to fix (a path, a
//! `--version`, a damaged export): `vigil` exits 2 for them
//! ([`LocateError::is_user_error`]).

use std::path::PathBuf;

use crate::checkpoint::StoreError;

/// An error locating a model version in a repository (a directory or a bucket).
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
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
}

impl LocateError {
    /// Whether the user must change something (a path, `--version`, a damaged
    /// export) rather than retry.
    pub fn is_user_error(&self) -> bool {
        match self {
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
            _ => true,
        }
    }
}
