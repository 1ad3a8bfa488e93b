//! Errors of storing, verifying and loading checkpoints and exports.
//!
//! A damaged entry is its own variant ([`StoreError::Corrupt`]) carrying a
//! [`Corruption`], because resume must tell "this checkpoint is damaged, use the
//! previous one" apart from "the disk failed", and the warning it prints must say
//! exactly what was wrong.

use std::path::PathBuf;

/// What is wrong with a stored entry (a checkpoint or an export version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The entry does not exist.
    MissingEntry,
    /// The entry has no `MANIFEST.json` (a writer died before publishing it).
    MissingManifest,
    /// `MANIFEST.json` is not a valid manifest.
    BadManifest {
        /// The parser's message.
        message: String,
    },
    /// A file the manifest lists is absent.
    MissingFile {
        /// File name inside the entry.
        file: String,
    },
    /// A file's size differs from the manifest (a truncated write).
    SizeMismatch {
        /// File name inside the entry.
        file: String,
        /// Size in the manifest.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// A file's sha256 differs from the manifest (a flipped byte).
    HashMismatch {
        /// File name inside the entry.
        file: String,
        /// sha256 in the manifest (hex).
        expected: String,
        /// sha256 of the bytes found (hex).
        actual: String,
    },
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingEntry => write!(f, "it does not exist"),
            Self::MissingManifest => write!(f, "MANIFEST.json is missing (incomplete write)"),
            Self::BadManifest { message } => write!(f, "MANIFEST.json is unreadable: {message}"),
            Self::MissingFile { file } => {
                write!(f, "{file} is listed in MANIFEST.json but missing")
            }
            Self::SizeMismatch {
                file,
                expected,
                actual,
            } => write!(
                f,
                "{file} has {actual} bytes, MANIFEST.json says {expected} (truncated or overwritten)"
            ),
            Self::HashMismatch {
                file,
                expected,
                actual,
            } => write!(
                f,
                "{file} has sha256 {actual}, MANIFEST.json says {expected} (corrupted bytes)"
            ),
        }
    }
}

/// Why storing, verifying or loading failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation failed (disk full, permissions, an injected fault).
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "rename", "fsync", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An entry failed verification.
    #[error("{location} is not usable: {corruption}")]
    Corrupt {
        /// The entry, as a path or store location.
        location: String,
        /// What is wrong.
        corruption: Corruption,
    },
    /// Publishing would replace an entry that already exists.
    #[error("{location} already exists")]
    Exists {
        /// The entry, as a path or store location.
        location: String,
    },
    /// A name is not a plain file or entry name (empty, a path, dot-prefixed).
    #[error("{name:?} is not a valid {what} name (plain, not dot-prefixed, no path separators)")]
    InvalidName {
        /// The name given.
        name: String,
        /// "file" or "entry".
        what: &'static str,
    },
    /// An export lacks a file every serving version must have.
    #[error("an export must contain {file}, but it was not given")]
    MissingRequiredFile {
        /// The required file name.
        file: String,
    },
    /// Metadata could not be encoded or decoded.
    #[error("cannot {op} {what}: {source}")]
    Json {
        /// "encode" or "decode".
        op: &'static str,
        /// What was being encoded or decoded.
        what: String,
        /// The serde_json error.
        #[source]
        source: serde_json::Error,
    },
    /// Checkpoints exist but none verifies; starting over would discard them, so a
    /// person must look.
    #[error("no usable checkpoint in {location}:\n  {}", problems.join("\n  "))]
    NoValidCheckpoint {
        /// The checkpoints directory.
        location: String,
        /// What was wrong with each candidate, newest first.
        problems: Vec<String>,
    },
    /// A request to object storage failed (the message names the URL).
    #[error(transparent)]
    Storage(Box<crate::storage::StorageError>),
    /// The background checkpoint writer thread died (it panicked).
    #[error("the background checkpoint writer stopped unexpectedly")]
    WriterGone,
}

impl StoreError {
    /// An [`StoreError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The corruption, when this error is a failed verification.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            Self::Corrupt { corruption, .. } => Some(corruption),
            _ => None,
        }
    }
}

impl From<crate::storage::StorageError> for StoreError {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::Storage(Box::new(e))
    }
}
