//! The worker environment of one worker, built as a [`WorkerEnv`] (the contract both the
//! launcher and the workers go through; its variable names live in
//! `vigil_collective::group::env::var`, its store keys in `vigil_collective::store::keys`).
//!
//! The launcher supplies the world (this node's ranks, from the rendezvous) and the run
//! (id, token, store address, restart budget, heartbeat directory, the collective's knobs
//! from the launch settings, and whether node 0 published its resolved config); this file
//! is the pure mapping from those to one worker's [`WorkerEnv`].

use std::path::PathBuf;

use vigil_collective::{CollectiveEnv, WorkerEnv};

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
    pub store_addr: String,
    /// Its port.
    pub store_port: u16,
    /// `MASTER_PORT`: a port on the store's host left free for the workers' own use
    /// (torch's TCPStore under `init_method="env://"`).
    pub master_port: u16,
    /// The run directory.
    pub output_dir: PathBuf,
    /// Restarts allowed.
    pub max_restarts: u32,
    /// Directory of heartbeat files (one per global rank).
    pub heartbeat_dir: PathBuf,
    /// Store key of node 0's resolved config, when node 0 published one.
    pub config_key: Option<String>,
    /// The collective's knobs from the launch settings (those the launcher's own
    /// environment sets are left out: the workers inherit them).
    pub collective: CollectiveEnv,
}

/// The heartbeat file of a global rank.
pub fn heartbeat_file(run: &RunSpec, rank: u32) -> PathBuf {
    run.heartbeat_dir.join(format!("rank-{rank}"))
}

/// The contract of local worker `local` in generation `restart`.
pub fn worker_env(run: &RunSpec, world: &WorldSpec, local: u32, restart: u32) -> WorkerEnv {
    let rank = world.rank_offset + local;
    let (local_rank, local_world) = world
        .local_override
        .unwrap_or((local, world.local_world_size));
    WorkerEnv {
        rank: rank as usize,
        local_rank: local_rank as usize,
        world_size: world.world_size as usize,
        local_world_size: local_world as usize,
        node_rank: world.node_rank as usize,
        nnodes: Some(world.nnodes as usize),
        store_addr: run.store_addr.clone(),
        store_port: run.store_port,
        master_port: run.master_port,
        token: run.token.clone(),
        run_id: run.run_id.clone(),
        restart_count: u64::from(restart),
        max_restarts: u64::from(run.max_restarts),
        heartbeat_file: Some(heartbeat_file(run, rank)),
        output_dir: Some(run.output_dir.clone()),
        config_key: run.config_key.clone(),
        collective: run.collective.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_collective::TransportKind;
    use vigil_collective::store::keys;

    fn run() -> RunSpec {
        RunSpec {
            run_id: "r1".into(),
            token: "t".into(),
            store_addr: "10.0.0.1".into(),
            store_port: 29500,
            master_port: 29501,
            output_dir: "out".into(),
            max_restarts: 3,
            heartbeat_dir: "/tmp/hb".into(),
            config_key: Some(keys::RESOLVED_CONFIG.into()),
            collective: CollectiveEnv {
                transport: Some(TransportKind::Tcp),
                ..CollectiveEnv::default()
            },
        }
    }

    #[test]
    fn second_node_ranks_follow_the_first() {
        let world = WorldSpec {
            rank_offset: 2,
            local_world_size: 2,
            world_size: 4,
            node_rank: 1,
            nnodes: 2,
            local_override: None,
        };
        let w = worker_env(&run(), &world, 1, 2);
        assert_eq!((w.rank, w.local_rank, w.world_size), (3, 1, 4));
        assert_eq!((w.local_world_size, w.node_rank, w.nnodes), (2, 1, Some(2)));
        assert_eq!(w.restart_count, 2);
        assert_eq!(w.store_prefix(), "vigil/r1/gen/2/");
        assert_eq!(w.heartbeat_file, Some(PathBuf::from("/tmp/hb/rank-3")));
        assert_eq!(w.collective.transport, Some(TransportKind::Tcp));
        // What the worker reads back is what the launcher meant.
        let vars: std::collections::HashMap<_, _> = w.to_vars().into_iter().collect();
        let back = WorkerEnv::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn slurm_task_per_worker_keeps_the_nodes_local_ranks() {
        let world = WorldSpec {
            rank_offset: 5,
            local_world_size: 1,
            world_size: 8,
            node_rank: 5,
            nnodes: 8,
            local_override: Some((1, 4)),
        };
        let w = worker_env(&run(), &world, 0, 0);
        assert_eq!((w.rank, w.local_rank, w.local_world_size), (5, 1, 4));
    }
}
