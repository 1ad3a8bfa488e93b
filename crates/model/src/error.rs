//! [`ModelError`]: everything that can go wrong building, loading or feeding the model.
//!
//! A user mistake (a missing file, a checkpoint with the wrong tensors, a bad
//! tokenizer) is an error naming the file and, for weights, the tensor — never a
//! panic, so `vigil` can print it and exit with a usage code.

use std::path::PathBuf;

/// An error from the model module.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (a Hugging Face `config.json`) is not what we expect.
    #[error("{path}: not a valid model config: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A model config holds a value Vigil cannot build.
    #[error("{path}: {key}: {message}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// The key in that file.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The run config asks for something the model cannot do.
    #[error("{key}: {message}")]
    Config {
        /// The run-config key, e.g. `model.text.path`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A `tokenizer.json` could not be loaded or used.
    #[error("{path}: tokenizer: {source}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizers crate's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A weights file could not be parsed (truncated, corrupt, not that format).
    #[error("{path}: cannot read weights: {source}")]
    WeightsFile {
        /// The weights file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Tensors the model needs are not in the weights file.
    #[error("{path}: missing tensor(s): {}", tensors.join(", "))]
    MissingTensors {
        /// The weights file.
        path: PathBuf,
        /// Names as the file would spell them.
        tensors: Vec<String>,
    },
    /// Tensors in the weights file that the model has no place for.
    #[error("{path}: unexpected tensor(s) the model does not use: {}", tensors.join(", "))]
    UnusedTensors {
        /// The weights file.
        path: PathBuf,
        /// Names as the file spells them.
        tensors: Vec<String>,
    },
    /// A tensor in the weights file has the wrong shape.
    #[error("{path}: tensor {tensor} has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// Name as the file spells it.
        tensor: String,
        /// Shape the model expects (in the file's layout).
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor's bytes could not be decoded.
    #[error("{path}: tensor {tensor}: {message}")]
    TensorData {
        /// The weights file.
        path: PathBuf,
        /// Name as the file spells it.
        tensor: String,
        /// What went wrong.
        message: String,
    },
    /// An image could not be decoded.
    #[error("{path}: cannot decode image: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A batch handed to the model is inconsistent (lengths disagree).
    #[error("bad batch: {message}")]
    Batch {
        /// What disagrees.
        message: String,
    },
    /// `model.init_from` names no verifiable checkpoint or export version.
    #[error("model.init_from: {source_dir}: {message}")]
    InitFrom {
        /// The checkpoint or version named (a directory or a bucket URL).
        source_dir: String,
        /// What is wrong (missing, not a checkpoint, a failed checksum).
        message: String,
    },
    /// The feature is not compiled into this build.
    #[error("this build of vigil has no `{feature}` feature (rebuild with --features {feature})")]
    NotCompiledWith {
        /// The cargo feature.
        feature: &'static str,
    },
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(key: &str, message: impl Into<String>) -> Self {
        Self::Config {
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// A batch the model cannot take (a message for the user).
    pub fn batch(message: impl Into<String>) -> Self {
        Self::Batch {
            message: message.into(),
        }
    }
}

impl ModelError {
    /// Whether the user must fix something (a path, a config key, a weights or
    /// tokenizer file, an input row) rather than retry: `vigil` exits 2 for these.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::Io { .. }
                | Self::Json { .. }
                | Self::BadConfig { .. }
                | Self::Config { .. }
                | Self::Tokenizer { .. }
                | Self::WeightsFile { .. }
                | Self::MissingTensors { .. }
                | Self::UnusedTensors { .. }
                | Self::ShapeMismatch { .. }
                | Self::Image { .. }
                | Self::InitFrom { .. }
                | Self::NotCompiledWith { .. }
        )
    }
}
