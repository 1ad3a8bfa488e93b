//! Errors of the data layer, and the reasons a row is rejected.
//!
//! A bad row is a user's data problem, not a crash: [`BadRow`] carries a machine
//! word ([`BadRowKind`], used for counts and the rejects file) and a sentence for
//! people. Under `data.on_bad_row: fail` the first one becomes
//! [`DataError::BadRow`], printed as `FILE:LINE: reason`.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Why a row was rejected: one word per kind, stable (it appears in the rejects
/// file, logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRowKind {
    /// The line is not valid JSON (or not a JSON object).
    MalformedJson,
    /// Valid JSON, but a field is missing, of the wrong type, or unknown.
    MalformedRow,
    /// The `id` was already used by an earlier row of the file.
    DuplicateId,
    /// Neither text nor image.
    NoContent,
    /// The text is longer than `data.max_text_chars`.
    TextTooLong,
    /// A label name that is not in `model.labels`.
    UnknownLabel,
    /// A label value other than 0, 1, true, false or null.
    WrongLabelType,
    /// The image file does not exist.
    ImageNotFound,
    /// The image file cannot be decoded (or is of an unsupported format).
    CorruptImage,
    /// The image path is absolute or leaves the image root (`..`, a symlink).
    ImagePathEscape,
}

impl BadRowKind {
    /// Every kind, in report order.
    pub const ALL: [BadRowKind; 10] = [
        Self::MalformedJson,
        Self::MalformedRow,
        Self::DuplicateId,
        Self::NoContent,
        Self::TextTooLong,
        Self::UnknownLabel,
        Self::WrongLabelType,
        Self::ImageNotFound,
        Self::CorruptImage,
        Self::ImagePathEscape,
    ];

    /// The snake_case word used in the rejects file and in counts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::MalformedRow => "malformed_row",
            Self::DuplicateId => "duplicate_id",
            Self::NoContent => "no_content",
            Self::TextTooLong => "text_too_long",
            Self::UnknownLabel => "unknown_label",
            Self::WrongLabelType => "wrong_label_type",
            Self::ImageNotFound => "image_not_found",
            Self::CorruptImage => "corrupt_image",
            Self::ImagePathEscape => "image_path_escape",
        }
    }
}

impl fmt::Display for BadRowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected row's reason: a kind and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// The kind, for counting.
    pub kind: BadRowKind,
    /// What is wrong, e.g. `image 'img/3.png' not found`.
    pub message: String,
}

impl BadRow {
    /// A reason of `kind` with `message`.
    pub fn new(kind: BadRowKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn more_rows(more: &usize) -> String {
    match more {
        0 => String::new(),
        1 => " (and 1 more bad row; `data.on_bad_row: skip` drops and reports them)".into(),
        n => format!(" (and {n} more bad rows; `data.on_bad_row: skip` drops and reports them)"),
    }
}

/// Why loading, generating or auditing data failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A data file or image could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A bad row under `data.on_bad_row: fail`: `FILE:LINE: reason`.
    #[error("{}:{line}: {reason}{}", file.display(), more_rows(more))]
    BadRow {
        /// The data file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: BadRow,
        /// How many further bad rows the file has.
        more: usize,
    },
    /// An image that passed the load-time check failed to decode while batching.
    #[error("{}:{line}: {reason}", file.display())]
    ImageDecode {
        /// The data file.
        file: PathBuf,
        /// 1-based line number of the row.
        line: usize,
        /// What is wrong.
        reason: BadRow,
    },
    /// No usable rows are left.
    #[error("{}: no usable rows ({skipped} bad rows skipped)", file.display())]
    Empty {
        /// The data file.
        file: PathBuf,
        /// Rows dropped as bad.
        skipped: usize,
    },
    /// Settings that cannot work together (for example more ranks than rows).
    #[error("{message}")]
    Settings {
        /// What is wrong and which key to change.
        message: String,
    },
    /// An image could not be encoded while generating a dataset.
    #[error("cannot encode {}: {source}", path.display())]
    Encode {
        /// The image file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The generated tokenizer could not be built.
    #[error("cannot build the tokenizer: {message}")]
    Tokenizer {
        /// The tokenizers crate's message.
        message: String,
    },
    /// A loader thread could not be started.
    #[error("cannot start a data-loader thread: {source}")]
    Spawn {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A loader worker thread died (a bug, reported instead of hanging).
    #[error("a data-loader thread stopped unexpectedly")]
    LoaderStopped,
}

impl DataError {
    /// Whether the user must change a file or setting (exit code 2), as opposed to
    /// a runtime failure such as a full disk.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Read { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::IsADirectory
            ),
            Self::BadRow { .. }
            | Self::ImageDecode { .. }
            | Self::Empty { .. }
            | Self::Settings { .. } => true,
            Self::Write { .. }
            | Self::Encode { .. }
            | Self::Tokenizer { .. }
            | Self::Spawn { .. }
            | Self::LoaderStopped => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_row_reads_file_line_reason() {
        let e = DataError::BadRow {
            file: "datasets/x/train.jsonl".into(),
            line: 17,
            reason: BadRow::new(BadRowKind::ImageNotFound, "image 'img/3.png' not found"),
            more: 0,
        };
        assert_eq!(
            e.to_string(),
            "datasets/x/train.jsonl:17: image 'img/3.png' not found"
        );
        assert!(e.is_user_error());
        let e = DataError::BadRow {
            file: "t.jsonl".into(),
            line: 2,
            reason: BadRow::new(BadRowKind::NoContent, "neither text nor image"),
            more: 3,
        };
        assert!(
            e.to_string()
                .starts_with("t.jsonl:2: neither text nor image (and 3 more")
        );
    }

    #[test]
    fn kinds_have_distinct_words() {
        let mut words: Vec<_> = BadRowKind::ALL.iter().map(|k| k.as_str()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), BadRowKind::ALL.len());
    }
}
