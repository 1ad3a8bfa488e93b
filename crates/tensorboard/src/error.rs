//! [`Error`]: why an event could not be written or read back. I/O failures
//! name the file; bad inputs (a PR curve with mismatched lengths, an empty
//! histogram) name the tag, so the training loop can log a warning and go on.

use std::path::PathBuf;

use crate::record::RecordError;

/// Errors of the TensorBoard writer and reader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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

/// Why PR-curve inputs were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrCurveError {
    /// Fewer than two thresholds.
    #[error("num_thresholds must be at least 2, got {num_thresholds}")]
    Thresholds {
        /// The value given.
        num_thresholds: u32,
    },
    /// Labels and scores differ in length.
    #[error("{labels} labels but {scores} scores")]
    LengthMismatch {
        /// Number of labels.
        labels: usize,
        /// Number of scores.
        scores: usize,
    },
    /// A score is NaN or outside `[0, 1]`.
    #[error("score {index} is {score}, not a probability in [0, 1]")]
    Score {
        /// Index of the example.
        index: usize,
        /// The score.
        score: f32,
    },
}
