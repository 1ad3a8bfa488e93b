//! Pure decisions about where a rank runs and what carries its all-reduce: the CUDA
//! device of a rank (torchrun's rule: `LOCAL_RANK` among `CUDA_VISIBLE_DEVICES`) and
//! the transport `auto` resolves to. No I/O: the caller passes in what it found (the
//! environment variable, whether NCCL loaded), so every case is unit-tested on a
//! machine without a GPU.

use super::config::{Device, GroupConfig, TransportKind};
use crate::error::{Error, Result};

/// The CUDA device a rank uses, as the CUDA runtime numbers the devices it can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaChoice {
    /// Ordinal among the visible devices (what `cuInit`/`cudaSetDevice` take).
    pub ordinal: usize,
    /// The `CUDA_VISIBLE_DEVICES` entry it is (an index or a `GPU-…` UUID), when the
    /// variable is set; for logs.
    pub visible_as: Option<String>,
}

/// The device of the rank with `local_rank` of `local_world_size` on its node, given
/// `CUDA_VISIBLE_DEVICES` (`visible`, unset: every device is visible).
///
/// As torchrun users expect, local rank *i* takes the *i*-th visible device. One
/// visible device with several local ranks means the scheduler bound one GPU to each
/// process (Slurm `--gpu-bind`, one GPU per Kubernetes container): ordinal 0. More
/// ranks than visible devices otherwise is an error naming both variables.
pub fn cuda_device(
    local_rank: usize,
    local_world_size: usize,
    visible: Option<&str>,
) -> Result<CudaChoice> {
    let Some(visible) = visible else {
        return Ok(CudaChoice {
            ordinal: local_rank,
            visible_as: None,
        });
    };
    // CUDA stops at the first invalid entry; an empty list (or "-1", "NoDevFiles")
    // hides every device.
    let entries: Vec<&str> = visible
        .split(',')
        .map(str::trim)
        .take_while(|e| !e.is_empty() && !e.starts_with('-') && *e != "NoDevFiles")
        .collect();
    let env = |reason: String| Error::Env {
        var: "CUDA_VISIBLE_DEVICES".into(),
        reason,
    };
    if entries.is_empty() {
        return Err(env(format!(
            "{visible:?} makes no GPU visible, but launch.device is cuda"
        )));
    }
    if local_rank < entries.len() {
        return Ok(CudaChoice {
            ordinal: local_rank,
            visible_as: Some(entries[local_rank].to_string()),
        });
    }
    if entries.len() == 1 {
        return Ok(CudaChoice {
            ordinal: 0,
            visible_as: Some(entries[0].to_string()),
        });
    }
    Err(env(format!(
        "{visible:?} lists {} GPUs, but LOCAL_RANK is {local_rank} of LOCAL_WORLD_SIZE \
         {local_world_size}: start at most {} workers per node (launch.nproc_per_node) or \
         make more GPUs visible",
        entries.len(),
        entries.len()
    )))
}

/// What a transport choice resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The transport the group uses.
    pub kind: TransportKind,
    /// Set when `auto` wanted NCCL and fell back: why, for a warning.
    pub fallback: Option<String>,
}

/// The transport of `cfg`: `auto` picks NCCL on CUDA devices when `nccl` (the result of
/// loading it: [`crate::transport::nccl::check_libraries`]) is `Ok`, else what it picks
/// on the CPU (shm on one node, the hierarchy on several nodes with several ranks each,
/// else TCP) with a warning; an explicit `nccl` without it is that error (the launcher
/// exits 2 naming the feature or library). `nccl` is only consulted when the answer
/// depends on it.
pub fn resolve_transport(cfg: &GroupConfig, nccl: impl FnOnce() -> Result<()>) -> Result<Resolved> {
    let plain = |kind| Resolved {
        kind,
        fallback: None,
    };
    let cpu_choice = || {
        if cfg.world_size > 1 && cfg.single_node() {
            TransportKind::Shm
        } else if cfg.local_world_size > 1 && cfg.uniform_nodes().is_some() {
            TransportKind::Hierarchical
        } else {
            TransportKind::Tcp
        }
    };
    Ok(match cfg.transport {
        TransportKind::Auto => match cfg.device {
            Device::Cuda(_) => match nccl() {
                Ok(()) => plain(TransportKind::Nccl),
                Err(e) => {
                    let kind = cpu_choice();
                    Resolved {
                        kind,
                        fallback: Some(format!(
                            "backend auto on CUDA devices wants NCCL, but {e}; using {kind} \
                             (gradients go through host memory: slower)"
                        )),
                    }
                }
            },
            Device::Cpu => plain(cpu_choice()),
        },
        TransportKind::Nccl => {
            nccl()?;
            plain(TransportKind::Nccl)
        }
        TransportKind::Hierarchical if cfg.uniform_nodes().is_none() => {
            return Err(Error::Config {
                reason: "transport hier needs the same LOCAL_WORLD_SIZE on every node and \
                         RANK = NODE_RANK * LOCAL_WORLD_SIZE + LOCAL_RANK"
                    .into(),
            });
        }
        TransportKind::Shm if !cfg.single_node() => {
            return Err(Error::Config {
                reason: format!(
                    "transport shm needs all {} ranks on one node (LOCAL_WORLD_SIZE is {}); \
                     use tcp or auto",
                    cfg.world_size, cfg.local_world_size
                ),
            });
        }
        other => plain(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(world: usize, local_world: usize, rank: usize, device: Device) -> GroupConfig {
        let mut c = GroupConfig::local(rank, world, 1, "t", "run");
        c.local_world_size = local_world;
        c.local_rank = rank % local_world;
        c.node_rank = rank / local_world;
        c.device = device;
        c
    }

    fn ok() -> Result<()> {
        Ok(())
    }

    fn missing() -> Result<()> {
        Err(Error::Unavailable {
            library: "libnccl",
            reason: "libnccl.so.2: cannot open shared object file".into(),
        })
    }

    fn not_compiled() -> Result<()> {
        Err(Error::NotCompiledWith { feature: "nccl" })
    }

    #[test]
    fn auto_on_cpu_one_node_is_shm_and_never_asks_for_nccl() {
        let cfg = group(4, 4, 1, Device::Cpu);
        let r = resolve_transport(&cfg, || panic!("NCCL consulted on the CPU")).unwrap();
        assert_eq!(
            r,
            Resolved {
                kind: TransportKind::Shm,
                fallback: None
            }
        );
        // One rank alone: nothing to share, TCP (which is never used).
        let r = resolve_transport(&group(1, 1, 0, Device::Cpu), ok).unwrap();
        assert_eq!(r.kind, TransportKind::Tcp);
    }

    #[test]
    fn auto_on_cpu_several_nodes_is_the_hierarchy_or_tcp() {
        let r = resolve_transport(&group(8, 4, 5, Device::Cpu), ok).unwrap();
        assert_eq!(r.kind, TransportKind::Hierarchical);
        let r = resolve_transport(&group(3, 1, 2, Device::Cpu), ok).unwrap();
        assert_eq!(r.kind, TransportKind::Tcp);
    }

    #[test]
    fn auto_on_cuda_is_nccl_on_one_node_and_several() {
        for cfg in [
            group(8, 8, 3, Device::Cuda(3)),
            group(16, 8, 11, Device::Cuda(3)),
        ] {
            let r = resolve_transport(&cfg, ok).unwrap();
            assert_eq!(
                r,
                Resolved {
                    kind: TransportKind::Nccl,
                    fallback: None
                }
            );
        }
    }

    #[test]
    fn auto_on_cuda_without_nccl_falls_back_with_a_warning() {
        let r = resolve_transport(&group(8, 8, 0, Device::Cuda(0)), missing).unwrap();
        assert_eq!(r.kind, TransportKind::Shm);
        let why = r.fallback.unwrap();
        assert!(why.contains("libnccl is not available"), "{why}");
        assert!(why.contains("using shm"), "{why}");
        let r = resolve_transport(&group(16, 8, 9, Device::Cuda(1)), not_compiled).unwrap();
        assert_eq!(r.kind, TransportKind::Hierarchical);
        assert!(r.fallback.unwrap().contains("without the `nccl` feature"));
        let r = resolve_transport(&group(2, 1, 1, Device::Cuda(0)), missing).unwrap();
        assert_eq!(r.kind, TransportKind::Tcp);
    }

    #[test]
    fn explicit_nccl_without_it_is_the_error_naming_it() {
        let mut cfg = group(2, 2, 0, Device::Cuda(0));
        cfg.transport = TransportKind::Nccl;
        let e = resolve_transport(&cfg, not_compiled).unwrap_err();
        assert!(
            matches!(e, Error::NotCompiledWith { feature: "nccl" }),
            "{e}"
        );
        let e = resolve_transport(&cfg, missing).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Unavailable {
                    library: "libnccl",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            resolve_transport(&cfg, ok).unwrap().kind,
            TransportKind::Nccl
        );
    }

    #[test]
    fn explicit_cpu_transports_keep_their_rules() {
        let mut cfg = group(8, 4, 0, Device::Cpu);
        cfg.transport = TransportKind::Shm;
        assert!(matches!(
            resolve_transport(&cfg, ok),
            Err(Error::Config { .. })
        ));
        cfg.transport = TransportKind::Tcp;
        assert_eq!(
            resolve_transport(&cfg, ok).unwrap().kind,
            TransportKind::Tcp
        );
    }

    #[test]
    fn device_is_local_rank_when_all_are_visible() {
        let c = cuda_device(3, 8, None).unwrap();
        assert_eq!(
            c,
            CudaChoice {
                ordinal: 3,
                visible_as: None
            }
        );
    }

    #[test]
    fn device_is_local_rank_among_visible_devices() {
        let c = cuda_device(1, 2, Some("4,6")).unwrap();
        assert_eq!(
            c,
            CudaChoice {
                ordinal: 1,
                visible_as: Some("6".into())
            }
        );
        let c = cuda_device(0, 2, Some("GPU-8f2c, GPU-11aa")).unwrap();
        assert_eq!(c.visible_as.as_deref(), Some("GPU-8f2c"));
    }

    #[test]
    fn one_visible_device_per_process_is_ordinal_zero() {
        let c = cuda_device(5, 8, Some("5")).unwrap();
        assert_eq!(
            c,
            CudaChoice {
                ordinal: 0,
                visible_as: Some("5".into())
            }
        );
    }

    #[test]
    fn too_few_or_no_visible_devices_is_an_error_naming_the_variables() {
        let e = cuda_device(2, 4, Some("0,1")).unwrap_err().to_string();
        assert!(e.contains("CUDA_VISIBLE_DEVICES"), "{e}");
        assert!(e.contains("LOCAL_RANK is 2 of LOCAL_WORLD_SIZE 4"), "{e}");
        for hidden in ["", "-1", "NoDevFiles"] {
            let e = cuda_device(0, 1, Some(hidden)).unwrap_err().to_string();
            assert!(e.contains("makes no GPU visible"), "{hidden:?}: {e}");
        }
        // CUDA stops at the first invalid entry.
        assert!(cuda_device(2, 3, Some("0,1,-1,2")).is_err());
    }
}
