//! The worker's view of its group: built from the worker environment contract
//! ([`WorkerEnv::group_config`](super::env::WorkerEnv::group_config)) or explicitly by tests
//! and the benchmark, and validated.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Which transport carries the all-reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// NCCL for CUDA devices, shared memory when all ranks share a node, else TCP.
    Auto,
    /// TCP ring (any topology).
    Tcp,
    /// Shared memory (all ranks on one node).
    Shm,
    /// NCCL on CUDA devices (feature `nccl`).
    Nccl,
    /// Several nodes with several ranks each: shared memory within each node, a TCP ring
    /// between one leader per node, shared memory again to hand the result out.
    Hierarchical,
}

impl FromStr for TransportKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(TransportKind::Auto),
            "tcp" => Ok(TransportKind::Tcp),
            "shm" => Ok(TransportKind::Shm),
            "nccl" => Ok(TransportKind::Nccl),
            "hier" | "hierarchical" | "shm+tcp" => Ok(TransportKind::Hierarchical),
            other => Err(Error::Config {
                reason: format!(
                    "unknown transport {other:?} (expected auto, tcp, shm, hier or nccl)"
                ),
            }),
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Auto => "auto",
            TransportKind::Tcp => "tcp",
            TransportKind::Shm => "shm",
            TransportKind::Nccl => "nccl",
            TransportKind::Hierarchical => "shm+tcp",
        })
    }
}

/// Where this rank's tensors live (decides what `auto` picks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// Host memory.
    #[default]
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
}

/// Everything a rank needs to join its group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Global rank (`RANK`).
    pub rank: usize,
    /// Number of ranks (`WORLD_SIZE`).
    pub world_size: usize,
    /// Rank within the node (`LOCAL_RANK`).
    pub local_rank: usize,
    /// Ranks on this node (`LOCAL_WORLD_SIZE`).
    pub local_world_size: usize,
    /// Index of this node (`NODE_RANK` or `GROUP_RANK`).
    pub node_rank: usize,
    /// Store host (`MASTER_ADDR`).
    pub master_addr: String,
    /// Store port (`MASTER_PORT`).
    pub master_port: u16,
    /// The run's secret (`VIGIL_STORE_TOKEN`).
    pub token: String,
    /// Run identifier (`VIGIL_RUN_ID`): namespaces store keys and shared-memory files.
    pub run_id: String,
    /// Restart generation (`VIGIL_RESTART_COUNT`): namespaces store keys per generation.
    pub restart_count: u64,
    /// Transport choice (`VIGIL_TRANSPORT`, default `auto`).
    pub transport: TransportKind,
    /// Device (`auto` picks NCCL for CUDA).
    pub device: Device,
    /// Per-operation timeout (`VIGIL_COLLECTIVE_TIMEOUT_MS`, default 300 s).
    pub timeout: Duration,
    /// Timeout for connecting to the store and peers (`VIGIL_CONNECT_TIMEOUT_MS`, 60 s).
    pub connect_timeout: Duration,
    /// TCP pipelining chunk size in bytes.
    pub chunk_bytes: usize,
    /// Kernel socket buffer per TCP link in bytes (`VIGIL_TCP_SOCKET_BUFFER`); `Some(0)`
    /// leaves the kernel's autotuning on; `None` picks: small buffers on one node (the data
    /// stays in cache: measurably faster on loopback), autotuning across nodes (a real
    /// network needs a window of bandwidth × round-trip time).
    pub tcp_socket_buffer: Option<usize>,
    /// Directory for shared-memory segments (`/dev/shm`).
    pub shm_dir: PathBuf,
    /// Bytes of staging per rank for the copying shared-memory all-reduce.
    pub shm_staging_bytes: usize,
}

impl GroupConfig {
    /// A single-node group of `world_size` ranks on a store at `master_addr:master_port`,
    /// with defaults for everything else (tests and the benchmark).
    pub fn local(
        rank: usize,
        world_size: usize,
        master_port: u16,
        token: &str,
        run_id: &str,
    ) -> Self {
        GroupConfig {
            rank,
            world_size,
            local_rank: rank,
            local_world_size: world_size,
            node_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port,
            token: token.into(),
            run_id: run_id.into(),
            restart_count: 0,
            transport: TransportKind::Auto,
            device: Device::Cpu,
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(60),
            chunk_bytes: crate::transport::tcp::DEFAULT_CHUNK_BYTES,
            tcp_socket_buffer: None,
            shm_dir: PathBuf::from("/dev/shm"),
            shm_staging_bytes: 16 << 20,
        }
    }

    /// Check that the numbers are consistent; names the offending variable.
    pub fn validate(&self) -> Result<()> {
        let env = |var: &str, reason: String| {
            Err(Error::Env {
                var: var.into(),
                reason,
            })
        };
        if self.world_size == 0 {
            return env("WORLD_SIZE", "must be at least 1".into());
        }
        if self.rank >= self.world_size {
            return env(
                "RANK",
                format!(
                    "RANK={} must be < WORLD_SIZE={}",
                    self.rank, self.world_size
                ),
            );
        }
        if self.local_world_size == 0 || self.local_world_size > self.world_size {
            let reason = format!(
                "LOCAL_WORLD_SIZE={} must be between 1 and WORLD_SIZE={}",
                self.local_world_size, self.world_size
            );
            return env("LOCAL_WORLD_SIZE", reason);
        }
        if self.local_rank >= self.local_world_size {
            let reason = format!(
                "LOCAL_RANK={} must be < LOCAL_WORLD_SIZE={}",
                self.local_rank, self.local_world_size
            );
            return env("LOCAL_RANK", reason);
        }
        if self.local_world_size == self.world_size && self.local_rank != self.rank {
            let reason = format!(
                "LOCAL_RANK={} must equal RANK={} when all ranks share one node",
                self.local_rank, self.rank
            );
            return env("LOCAL_RANK", reason);
        }
        let safe = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        if self.run_id.is_empty() || !safe(&self.run_id) || self.run_id.len() > 100 {
            let reason = format!(
                "{:?} must be 1-100 characters of [A-Za-z0-9._-]",
                self.run_id
            );
            return env("VIGIL_RUN_ID", reason);
        }
        Ok(())
    }

    /// The socket buffer size to request per TCP link (0: kernel autotuning).
    pub fn socket_buffer(&self) -> usize {
        match self.tcp_socket_buffer {
            Some(b) => b,
            None if self.single_node() => crate::transport::tcp::LOCAL_SOCKET_BUFFER,
            None => 0,
        }
    }

    /// Number of nodes, when every node runs `local_world_size` ranks numbered node by
    /// node (`RANK = NODE_RANK * LOCAL_WORLD_SIZE + LOCAL_RANK`, as torchrun assigns them);
    /// `None` for any other layout.
    pub fn uniform_nodes(&self) -> Option<usize> {
        let lws = self.local_world_size;
        let uniform = lws > 0
            && self.world_size.is_multiple_of(lws)
            && self.rank == self.node_rank * lws + self.local_rank;
        uniform.then(|| self.world_size / lws)
    }

    /// `true` when every rank runs on this node.
    pub fn single_node(&self) -> bool {
        self.local_world_size == self.world_size
    }

    /// Prefix of every store key this group uses: run and restart generation, so a
    /// restarted group never reads the previous generation's keys.
    pub fn key_prefix(&self) -> String {
        crate::store::keys::generation_prefix(&self.run_id, self.restart_count)
    }
}
