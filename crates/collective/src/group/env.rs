//! The worker environment contract: the variables `vigil launch` sets for every worker and
//! the worker reads back, as one type with named fields.
//!
//! The launcher builds a [`WorkerEnv`] per worker and sets [`WorkerEnv::to_vars`]; a worker
//! (or `ProcessGroup::from_env`) parses it with [`WorkerEnv::from_lookup`]. Both sides go
//! through this file, so a variable cannot be spelled one way by the writer and another by
//! the reader; the names are in [`var`], the store keys they point at in
//! [`crate::store::keys`].
//!
//! The names are torchrun's where torchrun has one (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`,
//! `LOCAL_WORLD_SIZE`, `NODE_RANK` alias `GROUP_RANK`, `GROUP_WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`, `TORCHELASTIC_RESTART_COUNT`), so scripts written for torchrun run
//! unchanged after `vigil launch --`; Vigil's own start with `VIGIL_`.
//!
//! Vigil's store is at `VIGIL_STORE_ADDR:VIGIL_STORE_PORT`. `MASTER_ADDR` is the same
//! host, but `MASTER_PORT` is a different, free port left for the worker's own use: a
//! PyTorch script's `init_process_group(init_method="env://")` makes rank 0 bind a
//! TCPStore there, which would fail with EADDRINUSE on the store's port. A reader
//! without `VIGIL_STORE_*` (a worker started by hand) takes the store from
//! `MASTER_ADDR:MASTER_PORT`.
//!
//! Reading is a pure function of a lookup (`Fn(&str) -> Option<String>`), so the tests
//! never touch the process environment; an error names the variable and what is wrong.

use std::path::PathBuf;
use std::time::Duration;

use super::config::{GroupConfig, TransportKind};
use crate::error::{Error, Result};
use crate::store::{StoreClient, keys};

/// The exit code of a worker that stopped on request (SIGTERM/SIGINT) after its
/// checkpoint: `EX_TEMPFAIL` from `sysexits.h`, "temporary failure, retry". Part of
/// the contract: the worker exits with it, the launcher exits with it too, and the
/// Slurm and Kubernetes manifests it renders requeue on it. Defined once, here.
pub const PREEMPTED_EXIT: u8 = 75;

/// The variable names of the contract.
pub mod var {
    /// Global rank of the worker.
    pub const RANK: &str = "RANK";
    /// Rank within its node.
    pub const LOCAL_RANK: &str = "LOCAL_RANK";
    /// Workers in the job.
    pub const WORLD_SIZE: &str = "WORLD_SIZE";
    /// Workers on this node.
    pub const LOCAL_WORLD_SIZE: &str = "LOCAL_WORLD_SIZE";
    /// This node's index.
    pub const NODE_RANK: &str = "NODE_RANK";
    /// torchelastic's name for [`NODE_RANK`] (set to the same value; read when
    /// `NODE_RANK` is absent).
    pub const GROUP_RANK: &str = "GROUP_RANK";
    /// Nodes in the job.
    pub const GROUP_WORLD_SIZE: &str = "GROUP_WORLD_SIZE";
    /// Host of the rendezvous store.
    pub const MASTER_ADDR: &str = "MASTER_ADDR";
    /// Port of the rendezvous store.
    pub const MASTER_PORT: &str = "MASTER_PORT";
    /// Host of Vigil's store (node 0's launcher).
    pub const STORE_ADDR: &str = "VIGIL_STORE_ADDR";
    /// Port of Vigil's store (`MASTER_PORT` is left to the worker, e.g. torch's TCPStore).
    pub const STORE_PORT: &str = "VIGIL_STORE_PORT";
    /// torchelastic's name for [`RESTART_COUNT`] (read when that is absent).
    pub const TORCHELASTIC_RESTART_COUNT: &str = "TORCHELASTIC_RESTART_COUNT";
    /// Fresh per launch; namespaces store keys and shared-memory files.
    pub const RUN_ID: &str = "VIGIL_RUN_ID";
    /// The restart generation, 0 for the first.
    pub const RESTART_COUNT: &str = "VIGIL_RESTART_COUNT";
    /// Restarts the launcher allows.
    pub const MAX_RESTARTS: &str = "VIGIL_MAX_RESTARTS";
    /// The run's store secret.
    pub const STORE_TOKEN: &str = "VIGIL_STORE_TOKEN";
    /// The generation's store key prefix (derived; set for scripts, never read back).
    pub const STORE_PREFIX: &str = "VIGIL_STORE_PREFIX";
    /// A file whose modification time is the worker's heartbeat.
    pub const HEARTBEAT_FILE: &str = "VIGIL_HEARTBEAT_FILE";
    /// The run directory.
    pub const OUTPUT_DIR: &str = "VIGIL_OUTPUT_DIR";
    /// Store key of node 0's resolved config (set when the launch has a CONFIG).
    pub const CONFIG_KEY: &str = "VIGIL_CONFIG_KEY";
    /// `1`: the launcher renders this worker's console, so rank 0 prints its progress
    /// as JSON records (`vigil launch` always sets it).
    pub const PROGRESS_JSON: &str = "VIGIL_PROGRESS_JSON";
    /// Transport (`auto`, `tcp`, `shm`, `hier`, `nccl`).
    pub const TRANSPORT: &str = "VIGIL_TRANSPORT";
    /// Per-operation timeout in milliseconds.
    pub const COLLECTIVE_TIMEOUT_MS: &str = "VIGIL_COLLECTIVE_TIMEOUT_MS";
    /// Timeout for reaching the store and the peers, in milliseconds.
    pub const CONNECT_TIMEOUT_MS: &str = "VIGIL_CONNECT_TIMEOUT_MS";
    /// TCP pipelining chunk in bytes.
    pub const TCP_CHUNK_BYTES: &str = "VIGIL_TCP_CHUNK_BYTES";
    /// Kernel socket buffer per TCP link in bytes (0: autotuning).
    pub const TCP_SOCKET_BUFFER: &str = "VIGIL_TCP_SOCKET_BUFFER";
}

/// The collective's knobs; `None` leaves the choice to whoever reads the contract (the
/// trainer falls back to its config's `launch` section, the collective to its defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectiveEnv {
    /// `VIGIL_TRANSPORT`.
    pub transport: Option<TransportKind>,
    /// `VIGIL_COLLECTIVE_TIMEOUT_MS`.
    pub timeout: Option<Duration>,
    /// `VIGIL_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Option<Duration>,
    /// `VIGIL_TCP_CHUNK_BYTES`.
    pub tcp_chunk_bytes: Option<usize>,
    /// `VIGIL_TCP_SOCKET_BUFFER`.
    pub tcp_socket_buffer: Option<usize>,
}

impl CollectiveEnv {
    /// Drops every value whose variable `get` already has: an explicit environment wins
    /// over the launch settings, and the worker inherits it from the launcher.
    pub fn unless_set(mut self, get: impl Fn(&str) -> Option<String>) -> Self {
        let set = |k: &str| get(k).is_some();
        if set(var::TRANSPORT) {
            self.transport = None;
        }
        if set(var::COLLECTIVE_TIMEOUT_MS) {
            self.timeout = None;
        }
        if set(var::CONNECT_TIMEOUT_MS) {
            self.connect_timeout = None;
        }
        if set(var::TCP_CHUNK_BYTES) {
            self.tcp_chunk_bytes = None;
        }
        if set(var::TCP_SOCKET_BUFFER) {
            self.tcp_socket_buffer = None;
        }
        self
    }

    /// Fills every unset value from `fallback`.
    pub fn or(self, fallback: &CollectiveEnv) -> Self {
        CollectiveEnv {
            transport: self.transport.or(fallback.transport),
            timeout: self.timeout.or(fallback.timeout),
            connect_timeout: self.connect_timeout.or(fallback.connect_timeout),
            tcp_chunk_bytes: self.tcp_chunk_bytes.or(fallback.tcp_chunk_bytes),
            tcp_socket_buffer: self.tcp_socket_buffer.or(fallback.tcp_socket_buffer),
        }
    }

    fn push_vars(&self, out: &mut Vec<(String, String)>) {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v));
            }
        };
        push(var::TRANSPORT, self.transport.map(|t| t.to_string()));
        push(var::COLLECTIVE_TIMEOUT_MS, self.timeout.map(ms));
        push(var::CONNECT_TIMEOUT_MS, self.connect_timeout.map(ms));
        push(
            var::TCP_CHUNK_BYTES,
            self.tcp_chunk_bytes.map(|b| b.to_string()),
        );
        push(
            var::TCP_SOCKET_BUFFER,
            self.tcp_socket_buffer.map(|b| b.to_string()),
        );
    }
}

/// One worker's place in the job and everything it needs to join it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerEnv {
    /// `RANK`.
    pub rank: usize,
    /// `LOCAL_RANK`.
    pub local_rank: usize,
    /// `WORLD_SIZE`.
    pub world_size: usize,
    /// `LOCAL_WORLD_SIZE`.
    pub local_world_size: usize,
    /// `NODE_RANK` (and `GROUP_RANK`); 0 when neither is set.
    pub node_rank: usize,
    /// `GROUP_WORLD_SIZE`, when known.
    pub nnodes: Option<usize>,
    /// `VIGIL_STORE_ADDR` (and `MASTER_ADDR`): the host of Vigil's store.
    pub store_addr: String,
    /// `VIGIL_STORE_PORT`: the store's port.
    pub store_port: u16,
    /// `MASTER_PORT`: a free port on the store's host for the worker's own use (torch's
    /// TCPStore), never the store's.
    pub master_port: u16,
    /// `VIGIL_STORE_TOKEN`.
    pub token: String,
    /// `VIGIL_RUN_ID`.
    pub run_id: String,
    /// `VIGIL_RESTART_COUNT` (and `TORCHELASTIC_RESTART_COUNT`); 0 when unset.
    pub restart_count: u64,
    /// `VIGIL_MAX_RESTARTS`; 0 when unset.
    pub max_restarts: u64,
    /// `VIGIL_HEARTBEAT_FILE`.
    pub heartbeat_file: Option<PathBuf>,
    /// `VIGIL_OUTPUT_DIR`.
    pub output_dir: Option<PathBuf>,
    /// `VIGIL_CONFIG_KEY`: where node 0's resolved config sits in the store
    /// ([`keys::RESOLVED_CONFIG`]), when the launch has one.
    pub config_key: Option<String>,
    /// The collective's knobs.
    pub collective: CollectiveEnv,
}

impl WorkerEnv {
    /// The store key prefix of this worker's generation (`VIGIL_STORE_PREFIX`).
    pub fn store_prefix(&self) -> String {
        keys::generation_prefix(&self.run_id, self.restart_count)
    }

    /// The variables to set for the worker, in a fixed order.
    pub fn to_vars(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = [
            (var::RANK, self.rank.to_string()),
            (var::LOCAL_RANK, self.local_rank.to_string()),
            (var::WORLD_SIZE, self.world_size.to_string()),
            (var::LOCAL_WORLD_SIZE, self.local_world_size.to_string()),
            (var::NODE_RANK, self.node_rank.to_string()),
            (var::GROUP_RANK, self.node_rank.to_string()),
            (var::MASTER_ADDR, self.store_addr.clone()),
            (var::MASTER_PORT, self.master_port.to_string()),
            (var::STORE_ADDR, self.store_addr.clone()),
            (var::STORE_PORT, self.store_port.to_string()),
            (
                var::TORCHELASTIC_RESTART_COUNT,
                self.restart_count.to_string(),
            ),
            (var::RUN_ID, self.run_id.clone()),
            (var::RESTART_COUNT, self.restart_count.to_string()),
            (var::MAX_RESTARTS, self.max_restarts.to_string()),
            (var::STORE_TOKEN, self.token.clone()),
            (var::STORE_PREFIX, self.store_prefix()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let opt = [
            (var::GROUP_WORLD_SIZE, self.nnodes.map(|n| n.to_string())),
            (
                var::HEARTBEAT_FILE,
                self.heartbeat_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
            (
                var::OUTPUT_DIR,
                self.output_dir.as_ref().map(|p| p.display().to_string()),
            ),
            (var::CONFIG_KEY, self.config_key.clone()),
        ];
        out.extend(
            opt.into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v))),
        );
        self.collective.push_vars(&mut out);
        out
    }

    /// Reads the contract from the process environment (see [`WorkerEnv::from_lookup`]).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The contract when this process runs under a launcher, `None` when it runs alone:
    /// `WORLD_SIZE` unset, or 1 without a `MASTER_ADDR`. A present but broken contract is
    /// an error, never "alone".
    pub fn detect(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let world = get(var::WORLD_SIZE).filter(|v| !v.is_empty());
        let alone = match &world {
            None => true,
            Some(v) => {
                number(var::WORLD_SIZE, v)? <= 1
                    && get(var::MASTER_ADDR).filter(|v| !v.is_empty()).is_none()
                    && get(var::STORE_ADDR).filter(|v| !v.is_empty()).is_none()
            }
        };
        if alone {
            return Ok(None);
        }
        Self::from_lookup(get).map(Some)
    }

    /// Parses the contract from any variable lookup and checks it (the ranks fit the world,
    /// the port is a port, the run id is safe in file names); an error names the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let required = |k: &str| {
            get(k).ok_or_else(|| Error::Env {
                var: k.into(),
                reason: "is not set (the launcher sets it for every worker)".into(),
            })
        };
        let req_num = |k: &str| -> Result<usize> { Ok(number(k, &required(k)?)? as usize) };
        let opt_num =
            |k: &str| -> Result<Option<u64>> { get(k).map(|v| number(k, &v)).transpose() };
        let ms = |k: &str| -> Result<Option<Duration>> {
            Ok(opt_num(k)?.map(|ms| Duration::from_millis(ms.max(1))))
        };

        let port_of = |k: &str| -> Result<Option<u16>> {
            let Some(v) = get(k) else { return Ok(None) };
            let port = number(k, &v)?;
            u16::try_from(port)
                .ok()
                .filter(|p| *p != 0)
                .map(Some)
                .ok_or_else(|| Error::Env {
                    var: k.into(),
                    reason: format!("{port} is not a TCP port (1-65535)"),
                })
        };
        let master_port = port_of(var::MASTER_PORT)?;
        let store_port = match port_of(var::STORE_PORT)? {
            Some(p) => p,
            None => master_port.ok_or_else(|| Error::Env {
                var: var::STORE_PORT.into(),
                reason: "is not set (nor MASTER_PORT; the launcher sets both)".into(),
            })?,
        };
        let master_port = master_port.unwrap_or(store_port);
        let store_addr = match get(var::STORE_ADDR).or_else(|| get(var::MASTER_ADDR)) {
            Some(a) => a,
            None => required(var::STORE_ADDR)?,
        };
        let transport = match get(var::TRANSPORT) {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| Error::Env {
                var: var::TRANSPORT.into(),
                reason: format!("{v:?} is not one of auto, tcp, shm, hier, nccl"),
            })?),
        };
        let node_rank = match opt_num(var::NODE_RANK)? {
            Some(n) => n,
            None => opt_num(var::GROUP_RANK)?.unwrap_or(0),
        };
        let restart_count = match opt_num(var::RESTART_COUNT)? {
            Some(n) => n,
            None => opt_num(var::TORCHELASTIC_RESTART_COUNT)?.unwrap_or(0),
        };
        let env = WorkerEnv {
            rank: req_num(var::RANK)?,
            local_rank: req_num(var::LOCAL_RANK)?,
            world_size: req_num(var::WORLD_SIZE)?,
            local_world_size: req_num(var::LOCAL_WORLD_SIZE)?,
            node_rank: node_rank as usize,
            nnodes: opt_num(var::GROUP_WORLD_SIZE)?.map(|n| n as usize),
            store_addr,
            store_port,
            master_port,
            token: required(var::STORE_TOKEN)?,
            run_id: required(var::RUN_ID)?,
            restart_count,
            max_restarts: opt_num(var::MAX_RESTARTS)?.unwrap_or(0),
            heartbeat_file: get(var::HEARTBEAT_FILE).map(PathBuf::from),
            output_dir: get(var::OUTPUT_DIR).map(PathBuf::from),
            config_key: get(var::CONFIG_KEY),
            collective: CollectiveEnv {
                transport,
                timeout: ms(var::COLLECTIVE_TIMEOUT_MS)?,
                connect_timeout: ms(var::CONNECT_TIMEOUT_MS)?,
                tcp_chunk_bytes: opt_num(var::TCP_CHUNK_BYTES)?.map(|b| b as usize),
                tcp_socket_buffer: opt_num(var::TCP_SOCKET_BUFFER)?.map(|b| b as usize),
            },
        };
        env.group_config()?;
        Ok(env)
    }

    /// The process group this worker joins, checked ([`GroupConfig::validate`]); knobs the
    /// contract leaves unset keep the collective's defaults.
    pub fn group_config(&self) -> Result<GroupConfig> {
        let mut cfg = GroupConfig::local(
            self.rank,
            self.world_size,
            self.store_port,
            &self.token,
            &self.run_id,
        );
        cfg.local_rank = self.local_rank;
        cfg.local_world_size = self.local_world_size;
        cfg.node_rank = self.node_rank;
        cfg.master_addr = self.store_addr.clone();
        cfg.restart_count = self.restart_count;
        let c = &self.collective;
        if let Some(t) = c.transport {
            cfg.transport = t;
        }
        if let Some(t) = c.timeout {
            cfg.timeout = t;
        }
        if let Some(t) = c.connect_timeout {
            cfg.connect_timeout = t;
        }
        if let Some(b) = c.tcp_chunk_bytes {
            cfg.chunk_bytes = b.max(64);
        }
        cfg.tcp_socket_buffer = c.tcp_socket_buffer;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Node 0's resolved config from the store, when the launcher published one
    /// (`VIGIL_CONFIG_KEY`); waits for it up to the connect timeout (60 s by default).
    pub fn fetch_config(&self) -> Result<Option<String>> {
        let Some(key) = &self.config_key else {
            return Ok(None);
        };
        let timeout = self
            .collective
            .connect_timeout
            .unwrap_or(Duration::from_secs(60));
        let addr = host_port(&self.store_addr, self.store_port);
        let mut client = StoreClient::connect(addr.as_str(), &self.token, timeout)?;
        let bytes = client.wait_get(key, timeout)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::BadValue {
                key: key.clone(),
                reason: "the resolved config is not UTF-8".into(),
            })
    }
}

fn number(var: &str, v: &str) -> Result<u64> {
    v.trim().parse::<u64>().map_err(|_| Error::Env {
        var: var.into(),
        reason: format!("{v:?} is not a non-negative integer"),
    })
}

/// `HOST:PORT`, bracketing IPv6 literals.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars.into_iter().collect();
        move |k| m.get(k).cloned()
    }

    fn sample() -> WorkerEnv {
        WorkerEnv {
            rank: 3,
            local_rank: 1,
            world_size: 4,
            local_world_size: 2,
            node_rank: 1,
            nnodes: Some(2),
            store_addr: "10.0.0.1".into(),
            store_port: 29500,
            master_port: 29501,
            token: "secret".into(),
            run_id: "run-1".into(),
            restart_count: 2,
            max_restarts: 3,
            heartbeat_file: Some("/tmp/hb/rank-3".into()),
            output_dir: Some("out/run".into()),
            config_key: Some(keys::RESOLVED_CONFIG.into()),
            collective: CollectiveEnv {
                transport: Some(TransportKind::Hierarchical),
                timeout: Some(Duration::from_millis(600_000)),
                connect_timeout: Some(Duration::from_millis(20_000)),
                tcp_chunk_bytes: Some(1 << 20),
                tcp_socket_buffer: Some(0),
            },
        }
    }

    #[test]
    fn what_the_launcher_writes_the_worker_reads_back() {
        let env = sample();
        assert_eq!(WorkerEnv::from_lookup(lookup(env.to_vars())).unwrap(), env);
        let bare = WorkerEnv {
            nnodes: None,
            heartbeat_file: None,
            output_dir: None,
            config_key: None,
            collective: CollectiveEnv::default(),
            ..sample()
        };
        assert_eq!(
            WorkerEnv::from_lookup(lookup(bare.to_vars())).unwrap(),
            bare
        );
    }

    #[test]
    fn the_torchrun_names_are_what_scripts_see() {
        let vars: HashMap<_, _> = sample().to_vars().into_iter().collect();
        let get = |k: &str| vars[k].as_str();
        assert_eq!(get("RANK"), "3");
        assert_eq!(get("LOCAL_RANK"), "1");
        assert_eq!(get("NODE_RANK"), "1");
        assert_eq!(get("GROUP_RANK"), "1");
        assert_eq!(get("GROUP_WORLD_SIZE"), "2");
        assert_eq!(get("TORCHELASTIC_RESTART_COUNT"), "2");
        assert_eq!(get("VIGIL_STORE_PREFIX"), "vigil/run-1/gen/2/");
        assert_eq!(get("VIGIL_TRANSPORT"), "shm+tcp");
        assert_eq!(get("VIGIL_COLLECTIVE_TIMEOUT_MS"), "600000");
        assert_eq!(get("VIGIL_CONFIG_KEY"), "launch/config");
        let cfg = sample().group_config().unwrap();
        assert_eq!(cfg.key_prefix(), "vigil/run-1/gen/2/");
        assert_eq!(cfg.transport, TransportKind::Hierarchical);
    }

    #[test]
    fn torchelastic_aliases_are_read_when_vigils_names_are_absent() {
        let mut vars = sample().to_vars();
        vars.retain(|(k, _)| k != var::NODE_RANK && k != var::RESTART_COUNT);
        let env = WorkerEnv::from_lookup(lookup(vars)).unwrap();
        assert_eq!((env.node_rank, env.restart_count), (1, 2));
    }

    fn broken(var: &str, value: Option<&str>) -> String {
        let mut vars = sample().to_vars();
        vars.retain(|(k, _)| k != var);
        if let Some(v) = value {
            vars.push((var.to_string(), v.to_string()));
        }
        match WorkerEnv::from_lookup(lookup(vars)) {
            Err(Error::Env { var, .. }) => var,
            other => panic!("{var}={value:?}: expected an Env error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&str, Option<&str>)] = &[
            (var::RANK, None),
            (var::RANK, Some("4")),
            (var::RANK, Some("-1")),
            (var::WORLD_SIZE, Some("x")),
            (var::LOCAL_RANK, Some("2")),
            (var::LOCAL_WORLD_SIZE, Some("5")),
            (var::MASTER_PORT, Some("70000")),
            (var::STORE_PORT, Some("0")),
            (var::STORE_TOKEN, None),
            (var::RUN_ID, Some("a/b")),
            (var::RESTART_COUNT, Some("one")),
            (var::TRANSPORT, Some("carrier-pigeon")),
            (var::COLLECTIVE_TIMEOUT_MS, Some("soon")),
        ];
        for (v, value) in cases {
            assert_eq!(broken(v, *value), *v, "{v}={value:?}");
        }
    }

    #[test]
    fn alone_unless_a_launcher_set_the_world() {
        let none = |_: &str| None;
        assert_eq!(WorkerEnv::detect(none).unwrap(), None);
        let one = lookup(vec![("WORLD_SIZE".into(), "1".into())]);
        assert_eq!(WorkerEnv::detect(one).unwrap(), None);
        let bad = lookup(vec![("WORLD_SIZE".into(), "two".into())]);
        assert!(WorkerEnv::detect(bad).is_err());
        let launched = WorkerEnv::detect(lookup(sample().to_vars())).unwrap();
        assert_eq!(launched, Some(sample()));
        // A launcher with one worker still gives it a group (of one).
        let single = WorkerEnv {
            rank: 0,
            local_rank: 0,
            world_size: 1,
            local_world_size: 1,
            node_rank: 0,
            ..sample()
        };
        assert_eq!(
            WorkerEnv::detect(lookup(single.to_vars())).unwrap(),
            Some(single)
        );
    }

    #[test]
    fn an_explicit_environment_wins_over_the_launch_settings() {
        let from_config = sample().collective;
        let explicit = lookup(vec![("VIGIL_TRANSPORT".into(), "tcp".into())]);
        let c = from_config.clone().unless_set(explicit);
        assert_eq!(c.transport, None);
        assert_eq!(c.timeout, from_config.timeout);
        let filled = CollectiveEnv::default().or(&from_config);
        assert_eq!(filled, from_config);
    }
}
