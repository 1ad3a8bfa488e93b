//! Slurm → launcher settings.
//!
//! Two ways to run under `srun`, both supported:
//! - one launcher task per node (`srun --ntasks-per-node=1 vigil launch ...`, what
//!   `vigil render slurm` writes): the node count is `SLURM_NNODES` (or `SLURM_NTASKS`),
//!   the node rank `SLURM_NODEID`, the workers per node `SLURM_GPUS_ON_NODE` when Slurm
//!   gave GPUs (else the config's value);
//! - one task per worker (`--ntasks-per-node=G`): every task is a launcher with one
//!   worker; its "node" index is `SLURM_PROCID` among `SLURM_NTASKS`, and the worker's
//!   `LOCAL_RANK`/`LOCAL_WORLD_SIZE` come from `SLURM_LOCALID`/`SLURM_NTASKS_PER_NODE`.
//!
//! The rendezvous host is the first host of `SLURM_JOB_NODELIST`, where node 0 runs.

use super::{ClusterEnv, ClusterError, nodelist, num};

/// Whether this looks like a task started by `srun` (or the batch script).
pub fn present(get: &dyn Fn(&str) -> Option<String>) -> bool {
    get("SLURM_PROCID").is_some() && get("SLURM_JOB_NODELIST").is_some()
}

/// Maps the Slurm variables.
pub fn map(get: &dyn Fn(&str) -> Option<String>) -> Result<ClusterEnv, ClusterError> {
    let missing = |var| ClusterError::Missing { kind: "slurm", var };
    let list = get("SLURM_JOB_NODELIST").ok_or(missing("SLURM_JOB_NODELIST"))?;
    let hosts = nodelist::expand(&list)?;
    let procid: u32 = num(get, "SLURM_PROCID")?.ok_or(missing("SLURM_PROCID"))?;
    let ntasks: Option<u32> = num(get, "SLURM_NTASKS")?;
    let nnodes: u32 = num(get, "SLURM_NNODES")?
        .or(num(get, "SLURM_JOB_NUM_NODES")?)
        .unwrap_or(hosts.len() as u32);
    let per_node = ntasks_per_node(get)?;
    let mut env = ClusterEnv {
        kind: "slurm",
        master_addr: Some(hosts[0].clone()),
        ..ClusterEnv::default()
    };
    let tasks = ntasks.unwrap_or(nnodes);
    if tasks > nnodes || per_node.is_some_and(|n| n > 1) {
        // One task per worker: every task is a one-worker launcher.
        let local: u32 = num(get, "SLURM_LOCALID")?.ok_or(missing("SLURM_LOCALID"))?;
        let local_world = per_node.unwrap_or(tasks.div_ceil(nnodes.max(1)));
        env.nnodes = Some(tasks);
        env.node_rank = Some(procid);
        env.nproc_per_node = Some(1);
        env.local = Some((local, local_world));
    } else {
        let node: u32 = num(get, "SLURM_NODEID")?.unwrap_or(procid);
        env.nnodes = Some(nnodes);
        env.node_rank = Some(node);
        env.nproc_per_node = num::<u32>(get, "SLURM_GPUS_ON_NODE")?.filter(|&g| g > 0);
    }
    Ok(env)
}

/// `SLURM_NTASKS_PER_NODE`, which may read `4` or (rarely) `4(x2)`.
fn ntasks_per_node(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<u32>, ClusterError> {
    let Some(v) = get("SLURM_NTASKS_PER_NODE") else {
        return Ok(None);
    };
    let head = v.split('(').next().unwrap_or("").trim();
    head.parse().map(Some).map_err(|_| ClusterError::BadVar {
        var: "SLURM_NTASKS_PER_NODE".into(),
        value: v.clone(),
        reason: "expected a number such as 4 or 4(x2)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::env_of;
    use super::*;

    #[test]
    fn one_launcher_per_node_with_gpus() {
        let get = env_of(&[
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_NNODES", "2"),
            ("SLURM_NODEID", "1"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_JOB_NODELIST", "gpu[07-08]"),
            ("SLURM_GPUS_ON_NODE", "8"),
            ("SLURM_NTASKS_PER_NODE", "1"),
        ]);
        let c = map(&get).unwrap();
        assert_eq!(c.nnodes, Some(2));
        assert_eq!(c.node_rank, Some(1));
        assert_eq!(c.master_addr.as_deref(), Some("gpu07"));
        assert_eq!(c.master_port, None);
        assert_eq!(c.nproc_per_node, Some(8));
        assert_eq!(c.local, None);
    }

    #[test]
    fn cpu_job_keeps_the_configs_worker_count() {
        let get = env_of(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
            ("SLURM_NODEID", "0"),
            ("SLURM_JOB_NODELIST", "cpu3"),
        ]);
        let c = map(&get).unwrap();
        assert_eq!((c.nnodes, c.node_rank), (Some(1), Some(0)));
        assert_eq!(c.nproc_per_node, None);
        assert_eq!(c.master_addr.as_deref(), Some("cpu3"));
    }

    #[test]
    fn one_task_per_worker_makes_each_task_a_one_worker_node() {
        let get = env_of(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_NNODES", "2"),
            ("SLURM_NODEID", "1"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS_PER_NODE", "4"),
            ("SLURM_JOB_NODELIST", "gpu[01-02]"),
        ]);
        let c = map(&get).unwrap();
        assert_eq!((c.nnodes, c.node_rank), (Some(8), Some(5)));
        assert_eq!(c.nproc_per_node, Some(1));
        assert_eq!(c.local, Some((1, 4)));
        assert_eq!(c.master_addr.as_deref(), Some("gpu01"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let get = env_of(&[("SLURM_PROCID", "zero"), ("SLURM_JOB_NODELIST", "a")]);
        assert!(
            map(&get)
                .unwrap_err()
                .to_string()
                .contains("SLURM_PROCID=zero")
        );
        let get = env_of(&[("SLURM_PROCID", "0"), ("SLURM_JOB_NODELIST", "a[1-")]);
        assert!(
            map(&get)
                .unwrap_err()
                .to_string()
                .contains("SLURM_JOB_NODELIST")
        );
    }
}
