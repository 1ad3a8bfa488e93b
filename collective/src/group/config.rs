//! The worker's view of its group: parsed and validated from the torchrun-style environment
//! (or built explicitly by tests and the benchmark).

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

    /// Read the process environment (see [`GroupConfig::from_lookup`]).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Parse from any variable lookup, then [`validate`](Self::validate).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let required = |var: &str| {
            get(var)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::Env {
                    var: var.into(),
                    reason: "is not set (the launcher sets it for every worker)".into(),
                })
        };
        let number = |var: &str, v: String| -> Result<u64> {
            v.trim().parse::<u64>().map_err(|_| Error::Env {
                var: var.into(),
                reason: format!("{v:?} is not a non-negative integer"),
            })
        };
        let req_num = |var: &str| -> Result<usize> { Ok(number(var, required(var)?)? as usize) };
        let opt_num = |var: &str| -> Result<Option<u64>> {
            get(var)
                .filter(|v| !v.is_empty())
                .map(|v| number(var, v))
                .transpose()
        };

        let rank = req_num("RANK")?;
        let world_size = req_num("WORLD_SIZE")?;
        let local_rank = req_num("LOCAL_RANK")?;
        let local_world_size = req_num("LOCAL_WORLD_SIZE")?;
        let node_rank = match opt_num("NODE_RANK")? {
            Some(n) => n as usize,
            None => opt_num("GROUP_RANK")?.map_or(0, |n| n as usize),
        };
        let master_addr = required("MASTER_ADDR")?;
        let port = req_num("MASTER_PORT")?;
        let master_port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Error::Env {
                var: "MASTER_PORT".into(),
                reason: format!("{port} is not a TCP port (1-65535)"),
            })?;
        let transport = match get("VIGIL_TRANSPORT").filter(|v| !v.is_empty()) {
            None => TransportKind::Auto,
            Some(v) => v.parse().map_err(|_| Error::Env {
                var: "VIGIL_TRANSPORT".into(),
                reason: format!("{v:?} is not one of auto, tcp, shm, hier, nccl"),
            })?,
        };
        let mut cfg = GroupConfig::local(rank, world_size, master_port, "", "");
        cfg.local_rank = local_rank;
        cfg.local_world_size = local_world_size;
        cfg.node_rank = node_rank;
        cfg.master_addr = master_addr;
        cfg.token = required("VIGIL_STORE_TOKEN")?;
        cfg.run_id = required("VIGIL_RUN_ID")?;
        cfg.restart_count = opt_num("VIGIL_RESTART_COUNT")?.unwrap_or(0);
        cfg.transport = transport;
        if let Some(ms) = opt_num("VIGIL_COLLECTIVE_TIMEOUT_MS")? {
            cfg.timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = opt_num("VIGIL_CONNECT_TIMEOUT_MS")? {
            cfg.connect_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(b) = opt_num("VIGIL_TCP_CHUNK_BYTES")? {
            cfg.chunk_bytes = (b as usize).max(64);
        }
        if let Some(b) = opt_num("VIGIL_TCP_SOCKET_BUFFER")? {
            cfg.tcp_socket_buffer = Some(b as usize);
        }
        cfg.validate()?;
        Ok(cfg)
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
        format!("vigil/{}/gen/{}/", self.run_id, self.restart_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("RANK", "1"),
        ("WORLD_SIZE", "4"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "2"),
        ("GROUP_RANK", "0"),
        ("MASTER_ADDR", "10.0.0.1"),
        ("MASTER_PORT", "29500"),
        ("VIGIL_STORE_TOKEN", "t"),
        ("VIGIL_RUN_ID", "run-1"),
        ("VIGIL_RESTART_COUNT", "2"),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = BASE
            .iter()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        v.extend(over.iter().filter(|(_, val)| !val.is_empty()));
        v
    }

    fn var_of(e: Error) -> String {
        match e {
            Error::Env { var, .. } => var,
            other => panic!("expected Env error, got {other}"),
        }
    }

    #[test]
    fn parses_the_torchrun_contract() {
        let cfg = GroupConfig::from_lookup(env(BASE)).unwrap();
        assert_eq!(
            (
                cfg.rank,
                cfg.world_size,
                cfg.local_rank,
                cfg.local_world_size
            ),
            (1, 4, 1, 2)
        );
        assert_eq!(cfg.master_port, 29500);
        assert_eq!(cfg.key_prefix(), "vigil/run-1/gen/2/");
        assert!(!cfg.single_node());
        assert_eq!(cfg.transport, TransportKind::Auto);
    }

    #[test]
    fn names_the_offending_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("RANK", "")], "RANK"),
            (&[("RANK", "4")], "RANK"),
            (&[("WORLD_SIZE", "x")], "WORLD_SIZE"),
            (&[("LOCAL_RANK", "2")], "LOCAL_RANK"),
            (&[("LOCAL_WORLD_SIZE", "5")], "LOCAL_WORLD_SIZE"),
            (&[("MASTER_PORT", "70000")], "MASTER_PORT"),
            (&[("MASTER_ADDR", "")], "MASTER_ADDR"),
            (&[("VIGIL_STORE_TOKEN", "")], "VIGIL_STORE_TOKEN"),
            (&[("VIGIL_RUN_ID", "a/b")], "VIGIL_RUN_ID"),
            (&[("VIGIL_TRANSPORT", "carrier-pigeon")], "VIGIL_TRANSPORT"),
        ];
        for (over, var) in cases {
            let e = GroupConfig::from_lookup(env(&with(over))).unwrap_err();
            assert_eq!(var_of(e), *var, "{over:?}");
        }
    }
}
