//! Kubeflow (PyTorchJob, Trainer v2 TrainJob) → launcher settings.
//!
//! Current operators run one launcher per pod and set torchrun's variables with a `PET_`
//! prefix: `PET_NNODES` (`2`, or `2:2`; elastic ranges with min ≠ max are refused because
//! the launcher's world is fixed), `PET_NPROC_PER_NODE` (a number, or `auto`/`cpu`/`gpu`
//! meaning one worker per visible GPU, or the config's count without GPUs), `PET_NODE_RANK`, `PET_MASTER_ADDR`, `PET_MASTER_PORT`.
//! The older PyTorchJob form sets `MASTER_ADDR`, `MASTER_PORT`, and `WORLD_SIZE`/`RANK`
//! counting pods: with one launcher per pod those are the node count and node rank.

use vigil_collective::group::env::var;

use super::{ClusterEnv, ClusterError, num};

/// Whether `PET_*` variables are present.
pub fn present(get: &dyn Fn(&str) -> Option<String>) -> bool {
    get("PET_NNODES").is_some() || get("PET_NODE_RANK").is_some()
}

/// Whether the older `MASTER_ADDR`/`RANK` form is fully present — and does not come from
/// an enclosing `vigil launch` (whose workers have the same names plus `VIGIL_RUN_ID`).
pub fn legacy_present(get: &dyn Fn(&str) -> Option<String>) -> bool {
    get(var::RUN_ID).is_none()
        && [
            var::MASTER_ADDR,
            var::MASTER_PORT,
            var::WORLD_SIZE,
            var::RANK,
        ]
        .iter()
        .all(|v| get(v).is_some())
}

/// Maps the Kubeflow variables (either form).
pub fn map(get: &dyn Fn(&str) -> Option<String>) -> Result<ClusterEnv, ClusterError> {
    let mut env = ClusterEnv {
        kind: "kubeflow",
        ..ClusterEnv::default()
    };
    if present(get) {
        env.nnodes = nnodes(get)?;
        env.node_rank = num(get, "PET_NODE_RANK")?;
        env.master_addr = get("PET_MASTER_ADDR").or_else(|| get(var::MASTER_ADDR));
        env.master_port = num(get, "PET_MASTER_PORT")?.or(num(get, var::MASTER_PORT)?);
        env.nproc_per_node = match get("PET_NPROC_PER_NODE").as_deref().map(str::trim) {
            None | Some("cpu" | "") => None,
            // torchrun's meaning: one worker per visible GPU; without GPUs the config
            // decides (a CPU pod's core count is rarely the wanted worker count).
            Some("auto" | "gpu") => super::visible_gpus(get, &super::dev_nvidia_count),
            Some(_) => num(get, "PET_NPROC_PER_NODE")?,
        };
    } else if legacy_present(get) {
        // The pod-level world: the launcher's own contract for its workers is built
        // from these, with the same names one level down.
        env.nnodes = num(get, var::WORLD_SIZE)?;
        env.node_rank = num(get, var::RANK)?;
        env.master_addr = get(var::MASTER_ADDR);
        env.master_port = num(get, var::MASTER_PORT)?;
    } else {
        return Err(ClusterError::Missing {
            kind: "kubeflow",
            var: "PET_NNODES",
        });
    }
    Ok(env)
}

/// `PET_NNODES`: `N` or `N:N`.
fn nnodes(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<u32>, ClusterError> {
    let Some(v) = get("PET_NNODES") else {
        return Ok(None);
    };
    let bad = |reason: &str| ClusterError::BadVar {
        var: "PET_NNODES".into(),
        value: v.clone(),
        reason: reason.into(),
    };
    let (lo, hi) = v.trim().split_once(':').unwrap_or((v.trim(), v.trim()));
    let lo: u32 = lo.parse().map_err(|_| bad("expected N or N:N"))?;
    let hi: u32 = hi.parse().map_err(|_| bad("expected N or N:N"))?;
    if lo != hi {
        return Err(bad(
            "elastic node ranges are not supported; give a fixed count",
        ));
    }
    Ok(Some(lo))
}

#[cfg(test)]
mod tests {
    use super::super::env_of;
    use super::*;

    #[test]
    fn pet_variables_map_one_to_one() {
        let get = env_of(&[
            ("PET_NNODES", "3"),
            ("PET_NPROC_PER_NODE", "4"),
            ("PET_NODE_RANK", "2"),
            ("PET_MASTER_ADDR", "job-master-0"),
            ("PET_MASTER_PORT", "23456"),
        ]);
        let c = map(&get).unwrap();
        assert_eq!(c.kind, "kubeflow");
        assert_eq!(
            (c.nnodes, c.node_rank, c.nproc_per_node),
            (Some(3), Some(2), Some(4))
        );
        assert_eq!(c.master_addr.as_deref(), Some("job-master-0"));
        assert_eq!(c.master_port, Some(23456));
    }

    #[test]
    fn fixed_ranges_and_auto_worker_counts() {
        let get = env_of(&[("PET_NNODES", "2:2"), ("PET_NPROC_PER_NODE", "cpu")]);
        let c = map(&get).unwrap();
        assert_eq!((c.nnodes, c.nproc_per_node), (Some(2), None));
        let gpus = env_of(&[
            ("PET_NNODES", "1"),
            ("PET_NPROC_PER_NODE", "auto"),
            ("CUDA_VISIBLE_DEVICES", "0,1,2"),
        ]);
        assert_eq!(
            map(&gpus).unwrap().nproc_per_node,
            Some(3),
            "auto = the GPUs"
        );
        let get = env_of(&[("PET_NNODES", "1:4")]);
        let err = map(&get).unwrap_err().to_string();
        assert!(
            err.contains("PET_NNODES=1:4") && err.contains("elastic"),
            "{err}"
        );
    }

    #[test]
    fn legacy_form_counts_pods() {
        let get = env_of(&[
            ("MASTER_ADDR", "pytorchjob-master-0"),
            ("MASTER_PORT", "29500"),
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
        ]);
        assert!(!present(&get) && legacy_present(&get));
        let nested = env_of(&[
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29500"),
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("VIGIL_RUN_ID", "abc"),
        ]);
        assert!(
            !legacy_present(&nested),
            "a vigil worker's own variables are not a cluster"
        );
        let c = map(&get).unwrap();
        assert_eq!((c.nnodes, c.node_rank), (Some(4), Some(3)));
        assert_eq!(c.master_addr.as_deref(), Some("pytorchjob-master-0"));
        assert_eq!(c.master_port, Some(29500));
        assert_eq!(c.nproc_per_node, None);
    }
}
