//! The worker environment contract (DESIGN.md), built as a pure list of variables.
//!
//! torchrun-compatible names (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`,
//! `NODE_RANK` alias `GROUP_RANK`, `GROUP_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`,
//! `TORCHELASTIC_RESTART_COUNT`) plus Vigil's own: `VIGIL_RUN_ID`, `VIGIL_RESTART_COUNT`,
//! `VIGIL_MAX_RESTARTS`, `VIGIL_STORE_TOKEN`, `VIGIL_STORE_PREFIX` (the key prefix of this
//! generation in the store, `vigil/<run_id>/gen/<restart>/` — the same as
//! `vigil_collective`'s `GroupConfig::key_prefix`, so a restarted group never reads keys of
//! the one before), `VIGIL_HEARTBEAT_FILE` (touch it to prove liveness without a store
//! client) and `VIGIL_OUTPUT_DIR`.
//!
//! The collective's own knobs are passed from the launch settings — `VIGIL_TRANSPORT`
//! (`launch.backend`), `VIGIL_COLLECTIVE_TIMEOUT_MS` (`launch.collective_timeout_s`),
//! `VIGIL_CONNECT_TIMEOUT_MS` (`launch.rdzv_timeout_s`) — unless the launcher's own
//! environment already sets them (an explicit environment wins).

use std::path::PathBuf;

/// Where this node's workers sit in the world, for one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldSpec {
    /// Global rank of this node's local rank 0.
    pub rank_offset: u32,
    /// Workers on this node.
    pub local_world_size: u32,
    /// Workers in the whole job.
    pub world_size: u32,
    /// This node's index.
    pub node_rank: u32,
    /// Nodes in the job.
    pub nnodes: u32,
    /// Overrides `LOCAL_RANK`/`LOCAL_WORLD_SIZE` when each launcher runs one worker of a
    /// shared node (Slurm task-per-worker).
    pub local_override: Option<(u32, u32)>,
}

/// The per-run values every worker sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Fresh per run.
    pub run_id: String,
    /// The store's secret.
    pub token: String,
    /// Host the workers connect to for the store.
    pub master_addr: String,
    /// Its port.
    pub master_port: u16,
    /// The run directory.
    pub output_dir: PathBuf,
    /// Restarts allowed.
    pub max_restarts: u32,
    /// Directory of heartbeat files (one per global rank).
    pub heartbeat_dir: PathBuf,
    /// `VIGIL_TRANSPORT`, `VIGIL_COLLECTIVE_TIMEOUT_MS`, `VIGIL_CONNECT_TIMEOUT_MS` values.
    pub collective: Vec<(String, String)>,
}

/// The store key prefix of generation `restart` (the collective's `key_prefix`).
pub fn store_prefix(run_id: &str, restart: u32) -> String {
    format!("vigil/{run_id}/gen/{restart}/")
}

/// The heartbeat file of a global rank.
pub fn heartbeat_file(run: &RunSpec, rank: u32) -> PathBuf {
    run.heartbeat_dir.join(format!("rank-{rank}"))
}

/// The variables of local worker `local` in generation `restart`.
pub fn worker_env(
    run: &RunSpec,
    world: &WorldSpec,
    local: u32,
    restart: u32,
) -> Vec<(String, String)> {
    let rank = world.rank_offset + local;
    let (local_rank, local_world) = world
        .local_override
        .unwrap_or((local, world.local_world_size));
    let vars: Vec<(&str, String)> = vec![
        ("RANK", rank.to_string()),
        ("LOCAL_RANK", local_rank.to_string()),
        ("WORLD_SIZE", world.world_size.to_string()),
        ("LOCAL_WORLD_SIZE", local_world.to_string()),
        ("NODE_RANK", world.node_rank.to_string()),
        ("GROUP_RANK", world.node_rank.to_string()),
        ("GROUP_WORLD_SIZE", world.nnodes.to_string()),
        ("MASTER_ADDR", run.master_addr.clone()),
        ("MASTER_PORT", run.master_port.to_string()),
        ("TORCHELASTIC_RESTART_COUNT", restart.to_string()),
        ("VIGIL_RUN_ID", run.run_id.clone()),
        ("VIGIL_RESTART_COUNT", restart.to_string()),
        ("VIGIL_MAX_RESTARTS", run.max_restarts.to_string()),
        ("VIGIL_STORE_TOKEN", run.token.clone()),
        ("VIGIL_STORE_PREFIX", store_prefix(&run.run_id, restart)),
        (
            "VIGIL_HEARTBEAT_FILE",
            heartbeat_file(run, rank).display().to_string(),
        ),
        ("VIGIL_OUTPUT_DIR", run.output_dir.display().to_string()),
    ];
    let mut vars: Vec<(String, String)> =
        vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    vars.extend(run.collective.iter().cloned());
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_node_ranks_follow_the_first() {
        let run = RunSpec {
            run_id: "r1".into(),
            token: "t".into(),
            master_addr: "10.0.0.1".into(),
            master_port: 29500,
            output_dir: "out".into(),
            max_restarts: 3,
            heartbeat_dir: "/tmp/hb".into(),
            collective: vec![("VIGIL_TRANSPORT".into(), "tcp".into())],
        };
        let world = WorldSpec {
            rank_offset: 2,
            local_world_size: 2,
            world_size: 4,
            node_rank: 1,
            nnodes: 2,
            local_override: None,
        };
        let env: std::collections::HashMap<_, _> =
            worker_env(&run, &world, 1, 2).into_iter().collect();
        let get = |k: &str| env[k].as_str();
        assert_eq!(get("RANK"), "3");
        assert_eq!(get("LOCAL_RANK"), "1");
        assert_eq!(get("WORLD_SIZE"), "4");
        assert_eq!(get("LOCAL_WORLD_SIZE"), "2");
        assert_eq!(get("NODE_RANK"), "1");
        assert_eq!(get("GROUP_RANK"), "1");
        assert_eq!(get("VIGIL_RESTART_COUNT"), "2");
        assert_eq!(get("VIGIL_STORE_PREFIX"), "vigil/r1/gen/2/");
        assert_eq!(get("VIGIL_TRANSPORT"), "tcp");
        assert_eq!(get("VIGIL_HEARTBEAT_FILE"), "/tmp/hb/rank-3");
        assert_eq!(get("MASTER_PORT"), "29500");
    }
}
