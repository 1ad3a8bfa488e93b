//! Errors of a training run.

use std::path::PathBuf;

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run config is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
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
