//! Cluster environments: what Slurm or Kubeflow already decided about this node, mapped
//! onto the launcher's settings (node count, node rank, rendezvous host and port, workers
//! per node).
//!
//! Detection is automatic and overridable: `--cluster auto` (the default) looks for
//! Kubeflow's `PET_*` variables, then Slurm's `SLURM_PROCID` + `SLURM_JOB_NODELIST`, then
//! the older Kubeflow form (`MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK` with RANK
//! the pod index); `--cluster none|slurm|kubeflow` forces a choice. Values found here
//! override the run config; explicit command-line flags override both.
//!
//! The mappings are pure functions of an environment lookup so they are unit tested
//! without touching the process environment.
//!
//! # Layout
//! - `nodelist.rs`: Slurm's host-list syntax.
//! - `slurm.rs`, `kubeflow.rs`: the two mappings.

pub mod kubeflow;
pub mod nodelist;
pub mod slurm;

/// Default rendezvous port when the cluster names a host but no port (torchrun's).
pub const DEFAULT_PORT: u16 = 29500;

/// Which cluster environment to read (`--cluster`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterChoice {
    /// Detect from the environment.
    Auto,
    /// Ignore cluster variables.
    None,
    /// Slurm (`srun`).
    Slurm,
    /// Kubeflow PyTorchJob / TrainJob.
    Kubeflow,
}

/// What a cluster environment says about this launcher's place in the job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterEnv {
    /// `slurm` or `kubeflow`, for messages.
    pub kind: &'static str,
    /// Launchers ("nodes") in the job.
    pub nnodes: Option<u32>,
    /// This launcher's index.
    pub node_rank: Option<u32>,
    /// Host of the rendezvous store.
    pub master_addr: Option<String>,
    /// Port of the rendezvous store.
    pub master_port: Option<u16>,
    /// Workers this launcher starts.
    pub nproc_per_node: Option<u32>,
    /// When each Slurm task is its own launcher with one worker: that worker's
    /// `LOCAL_RANK` and the node's `LOCAL_WORLD_SIZE`.
    pub local: Option<(u32, u32)>,
}

/// A cluster variable that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A Slurm host list that does not parse.
    #[error("SLURM_JOB_NODELIST '{list}': {reason}")]
    Nodelist {
        /// The list as given.
        list: String,
        /// What is wrong.
        reason: String,
    },
    /// A variable with a value of the wrong form.
    #[error("environment variable {var}={value}: {reason}")]
    BadVar {
        /// Variable name.
        var: String,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// `--cluster X` was forced but X's variables are absent.
    #[error("--cluster {kind}: variable {var} is not set")]
    Missing {
        /// The forced cluster kind.
        kind: &'static str,
        /// The first missing variable.
        var: &'static str,
    },
}

/// Reads the cluster environment through `get` (normally `std::env::var`).
pub fn detect(
    choice: ClusterChoice,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ClusterEnv>, ClusterError> {
    match choice {
        ClusterChoice::None => Ok(None),
        ClusterChoice::Slurm => slurm::map(get).map(Some),
        ClusterChoice::Kubeflow => kubeflow::map(get).map(Some),
        ClusterChoice::Auto => {
            if kubeflow::present(get) {
                kubeflow::map(get).map(Some)
            } else if slurm::present(get) {
                slurm::map(get).map(Some)
            } else if kubeflow::legacy_present(get) {
                kubeflow::map(get).map(Some)
            } else {
                Ok(None)
            }
        }
    }
}

/// GPUs this process can see: `CUDA_VISIBLE_DEVICES` when set (its comma-separated
/// entries; empty, `-1` or `none` hide them all), else `NVIDIA_VISIBLE_DEVICES` when it
/// lists devices (the Kubernetes device plugin sets it), else `devices()` (the
/// `/dev/nvidiaN` files). `None` when there are none.
pub fn visible_gpus(
    get: &dyn Fn(&str) -> Option<String>,
    devices: &dyn Fn() -> u32,
) -> Option<u32> {
    let count = |list: &str| -> u32 {
        match list.trim() {
            "" | "-1" | "none" | "void" | "NoDevFiles" => 0,
            l => l.split(',').filter(|d| !d.trim().is_empty()).count() as u32,
        }
    };
    let n = match (get("CUDA_VISIBLE_DEVICES"), get("NVIDIA_VISIBLE_DEVICES")) {
        (Some(v), _) => count(&v),
        (None, Some(v)) if v.trim() != "all" => count(&v),
        _ => devices(),
    };
    (n > 0).then_some(n)
}

/// The `/dev/nvidiaN` device files on this machine.
pub fn dev_nvidia_count() -> u32 {
    std::fs::read_dir("/dev").map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name().to_str().is_some_and(|n| {
                    n.strip_prefix("nvidia")
                        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                })
            })
            .count() as u32
    })
}

/// Parses a numeric variable; absent gives `None`.
pub(crate) fn num<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    var: &str,
) -> Result<Option<T>, ClusterError> {
    match get(var) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| ClusterError::BadVar {
                var: var.to_string(),
                value: v.clone(),
                reason: "expected a non-negative integer".into(),
            }),
    }
}

#[cfg(test)]
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_kubeflow_then_slurm_then_legacy() {
        let both = env_of(&[
            ("PET_NNODES", "2"),
            ("PET_NODE_RANK", "1"),
            ("PET_MASTER_ADDR", "m"),
            ("PET_MASTER_PORT", "1234"),
            ("SLURM_PROCID", "0"),
            ("SLURM_JOB_NODELIST", "a"),
        ]);
        let c = detect(ClusterChoice::Auto, &both).unwrap().unwrap();
        assert_eq!(c.kind, "kubeflow");
        let c = detect(ClusterChoice::Slurm, &both).unwrap().unwrap();
        assert_eq!(c.kind, "slurm");
        assert_eq!(detect(ClusterChoice::None, &both).unwrap(), None);
        assert_eq!(detect(ClusterChoice::Auto, &env_of(&[])).unwrap(), None);
    }

    #[test]
    fn visible_gpus_from_the_environment_or_the_devices() {
        let none = || 0;
        let four = || 4;
        let gpus =
            |pairs: &[(&str, &str)], dev: &dyn Fn() -> u32| visible_gpus(&env_of(pairs), dev);
        assert_eq!(gpus(&[("CUDA_VISIBLE_DEVICES", "0,1")], &four), Some(2));
        assert_eq!(gpus(&[("CUDA_VISIBLE_DEVICES", "")], &four), None);
        assert_eq!(gpus(&[("CUDA_VISIBLE_DEVICES", "-1")], &four), None);
        assert_eq!(
            gpus(&[("NVIDIA_VISIBLE_DEVICES", "GPU-a,GPU-b,GPU-c")], &none),
            Some(3)
        );
        assert_eq!(gpus(&[("NVIDIA_VISIBLE_DEVICES", "all")], &four), Some(4));
        assert_eq!(gpus(&[], &none), None);
    }

    #[test]
    fn forcing_a_missing_cluster_names_the_variable() {
        let err = detect(ClusterChoice::Slurm, &env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("SLURM_JOB_NODELIST"), "{err}");
    }
}
