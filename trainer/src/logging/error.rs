//! [`LoggingError`]: why an event could not be written or read back. I/O failures
//! name the file; bad inputs (a PR curve with mismatched lengths, an empty
//! histogram) name the tag, so the training loop can log a warning and go on.

use std::path::PathBuf;

use super::pr_curve::PrCurveError;
use super::record::RecordError;

/// Errors of the TensorBoard writer and reader.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// A file-system operation on an event file or its directory failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was attempted: `create directory`, `create`, `write`, `sync`, `read`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An event file's framing is cut short or fails a CRC.
    #[error("event file {} is damaged: {source}", path.display())]
    Record {
        /// The event file.
        path: PathBuf,
        /// Where and how.
        #[source]
        source: RecordError,
    },
    /// A record's payload is not an `Event` proto.
    #[error("event file {}: record at byte {offset} is not an Event: {source}", path.display())]
    Decode {
        /// The event file.
        path: PathBuf,
        /// Offset of the record.
        offset: usize,
        /// The protobuf error.
        #[source]
        source: prost::DecodeError,
    },
    /// A histogram was asked for with no finite values.
    #[error("histogram '{tag}' at step {step} has no finite values")]
    EmptyHistogram {
        /// The summary tag.
        tag: String,
        /// The step.
        step: u64,
    },
    /// PR-curve inputs are inconsistent.
    #[error("PR curve '{tag}' at step {step}: {source}")]
    PrCurve {
        /// The summary tag.
        tag: String,
        /// The step.
        step: u64,
        /// What is wrong with the inputs.
        #[source]
        source: PrCurveError,
    },
}
