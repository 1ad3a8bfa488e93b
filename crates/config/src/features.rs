//! Which optional cargo features this build has, and which a config needs of it.
//!
//! `vigil --version` prints [`BuildFeatures::compiled`]; `vigil launch` refuses a
//! config that needs a feature the binary lacks ([`missing_features`]) before it starts
//! any worker, naming the key and the build flag, instead of every worker failing
//! the same way (or, for `backend: auto`, silently training on the CPU transports).

use super::RunConfig;
use super::enums::{Backend, Device};
use super::validate::Problem;

/// The optional features of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildFeatures {
    /// burn's CUDA backend (`--features cuda`; implies `nccl`).
    pub cuda: bool,
    /// The NCCL transport (`--features nccl`).
    pub nccl: bool,
}

impl BuildFeatures {
    /// What this binary was compiled with.
    pub const fn compiled() -> Self {
        Self {
            cuda: cfg!(feature = "cuda"),
            nccl: vigil_collective::NCCL_COMPILED,
        }
    }

    /// `cuda, nccl`, or `none (CPU only)`.
    pub fn list(&self) -> String {
        let names: Vec<&str> = [("cuda", self.cuda), ("nccl", self.nccl)]
            .into_iter()
            .filter_map(|(n, on)| on.then_some(n))
            .collect();
        if names.is_empty() {
            "none (CPU only)".into()
        } else {
            names.join(", ")
        }
    }
}

/// The features `c` needs that `have` lacks, as problems on the keys that need them.
pub fn missing_features(c: &RunConfig, have: BuildFeatures) -> Vec<Problem> {
    let rebuild = "cargo build --release -p vigil-launcher --features cuda,nccl";
    let mut out = Vec::new();
    if c.launch.device == Device::Cuda && !have.cuda {
        out.push(Problem {
            key: "launch.device".into(),
            message: format!(
                "cuda needs a vigil built with the `cuda` feature (this one has: {}); \
                 build it with `{rebuild}`",
                have.list()
            ),
        });
    }
    if c.launch.backend == Backend::Nccl && !have.nccl {
        out.push(Problem {
            key: "launch.backend".into(),
            message: format!(
                "nccl needs a vigil built with the `nccl` feature (this one has: {}); \
                 build it with `{rebuild}`, or use backend: auto",
                have.list()
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: BuildFeatures = BuildFeatures {
        cuda: false,
        nccl: false,
    };
    const ALL: BuildFeatures = BuildFeatures {
        cuda: true,
        nccl: true,
    };

    #[test]
    fn lists_name_the_features() {
        assert_eq!(NONE.list(), "none (CPU only)");
        assert_eq!(ALL.list(), "cuda, nccl");
        let nccl_only = BuildFeatures {
            cuda: false,
            nccl: true,
        };
        assert_eq!(nccl_only.list(), "nccl");
    }

    #[test]
    fn a_gpu_config_on_a_cpu_build_names_both_keys_and_the_flag() {
        let mut c = RunConfig::default();
        c.launch.device = Device::Cuda;
        c.launch.backend = Backend::Nccl;
        let p = missing_features(&c, NONE);
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["launch.device", "launch.backend"]);
        assert!(
            p[0].message.contains("--features cuda,nccl"),
            "{}",
            p[0].message
        );
        assert!(
            p[0].message.contains("this one has: none"),
            "{}",
            p[0].message
        );
        assert!(missing_features(&c, ALL).is_empty());
    }

    #[test]
    fn cpu_configs_and_auto_need_nothing() {
        let mut c = RunConfig::default();
        assert!(missing_features(&c, NONE).is_empty());
        c.launch.device = Device::Cuda;
        let cuda_only = BuildFeatures {
            cuda: true,
            nccl: false,
        };
        // `auto` falls back to shm/tcp with a warning when NCCL is missing.
        assert!(missing_features(&c, cuda_only).is_empty());
    }
}
