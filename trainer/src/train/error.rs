//! Errors of a training run.

use std::path::PathBuf;

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run config is invalid.
    #[error(transparent)]
    Config(#[from] vigil_config::ConfigError),
    /// A collective operation or the group failed (a peer died, a timeout).
    #[error("collective communication failed")]
    Collective(#[from] vigil_collective::Error),
    /// A worker environment variable is missing or wrong.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// Replicas diverged: their parameters differ after the same updates.
    #[error("replicas diverged at step {step}: parameter checksums by rank {checksums:?}")]
    Diverged {
        /// Optimizer step.
        step: u64,
        /// Checksum reported by each rank.
        checksums: Vec<u64>,
    },
    /// The loss became NaN or infinite.
    #[error("loss is {value} at step {step}; lower optim.lr or enable optim.grad_clip")]
    NonFiniteLoss {
        /// Optimizer step.
        step: u64,
        /// The loss.
        value: f64,
    },
    /// This build lacks a cargo feature the config asks for.
    #[error(
        "this vigil was built without the `{feature}` feature (rebuild with --features {feature})"
    )]
    NotCompiledWith {
        /// The feature.
        feature: &'static str,
    },
    /// The device cannot train in `train.precision`.
    #[error("train.precision {precision}: {reason}")]
    Precision {
        /// The precision asked for.
        precision: String,
        /// burn's reason.
        reason: String,
    },
    /// The training device failed an operation (synchronising its queue, exposing a
    /// buffer to NCCL).
    #[error("device: {what}")]
    Device {
        /// What was being done.
        what: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The data could not be loaded (a bad row under `on_bad_row: fail`, a missing file).
    #[error(transparent)]
    Data(#[from] vigil_data::DataError),
    /// The model could not be built or loaded.
    #[error(transparent)]
    Model(#[from] vigil_model::ModelError),
    /// A checkpoint or export could not be written or read.
    #[error(transparent)]
    Store(#[from] vigil_store::checkpoint::StoreError),
    /// TensorBoard events could not be written.
    #[error(transparent)]
    Logging(#[from] crate::logging::LoggingError),
    /// A checkpoint does not fit this run.
    #[error("checkpoint step {step} {message}")]
    Checkpoint {
        /// Its step.
        step: u64,
        /// What is wrong.
        message: String,
    },
    /// `vigil export`'s source (a checkpoint or version directory) is not usable.
    #[error("{location}: {message}")]
    ExportSource {
        /// The directory, file or bucket URL.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// The model could not be written as ONNX.
    #[error(transparent)]
    Onnx(#[from] vigil_export::onnx::OnnxError),
    /// Ranks exchanged something malformed (a bug, not a user error).
    #[error("internal protocol error: {what}")]
    Protocol {
        /// What was malformed.
        what: &'static str,
    },
    /// A file of the run directory could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl TrainError {
    /// Whether the user must change something (the config, a data file, a path)
    /// rather than retry: `vigil` exits 2 for these.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::Config(_)
            | Self::NotCompiledWith { .. }
            | Self::ExportSource { .. }
            | Self::Precision { .. } => true,
            Self::Data(e) => e.is_user_error(),
            Self::Model(e) => e.is_user_error(),
            // An explicit `backend: nccl` this build or machine cannot serve, or a
            // CUDA_VISIBLE_DEVICES that hides the rank's GPU: restarting cannot help.
            Self::Collective(e) => matches!(
                e,
                vigil_collective::Error::NotCompiledWith { .. }
                    | vigil_collective::Error::Unavailable { .. }
                    | vigil_collective::Error::Env { .. }
                    | vigil_collective::Error::Config { .. }
            ),
            _ => false,
        }
    }
}
