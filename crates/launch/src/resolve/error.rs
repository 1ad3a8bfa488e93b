//! The errors of resolving a launch: usage mistakes (exit code 2) and the rest.

use vigil_config::ConfigError;

use crate::cluster::ClusterError;

/// A launch that cannot start as asked (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum LaunchUsageError {
    /// Neither a config nor a command.
    #[error("vigil launch needs a CONFIG, a command after `--`, or both")]
    NothingToRun,
    /// `--set` without a config.
    #[error("--set needs a CONFIG (without one, use the launch flags)")]
    SetWithoutConfig,
    /// A bad `HOST:PORT`.
    #[error("rendezvous endpoint '{value}' ({origin}): expected HOST:PORT")]
    Endpoint {
        /// The value.
        value: String,
        /// Where it came from.
        origin: String,
    },
    /// Settings that do not fit together.
    #[error("launch settings (config, cluster environment and flags) are invalid:\n  {}", problems.join("\n  "))]
    Invalid {
        /// `key: message` lines.
        problems: Vec<String>,
    },
    /// A cluster variable that cannot be used.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Why a launch cannot be resolved into an agent's spec.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The arguments or settings do not fit (exit code 2).
    #[error(transparent)]
    Usage(#[from] LaunchUsageError),
    /// The run config does not load (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A cluster variable that cannot be used (exit code 2).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// This executable's path, which workers run, is unknown.
    #[error("cannot find the vigil executable to start workers with")]
    CurrentExe(#[source] std::io::Error),
}

impl ResolveError {
    /// Whether the user must change the command line or the config (exit code 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, Self::CurrentExe(_))
    }
}
