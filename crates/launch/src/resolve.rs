//! `vigil launch [CONFIG] [flags] [--set K=V]... [-- CMD ARGS...]`: the arguments and
//! their resolution into the agent's spec ([`resolve`]).
//!
//! Settings resolve in three layers: the run config's `launch` section (or the defaults
//! when no CONFIG is given), then a detected cluster environment (Slurm, Kubeflow), then
//! the flags. Without `--`, every worker runs `vigil worker CONFIG --set ...` with the same
//! overrides; with `-- CMD`, the workers run CMD (CONFIG is then optional, like
//! `torchrun script.py`: without it, the run directory is `--output-dir` or
//! `checkpoints/vigil-run`).
//!
//! With a CONFIG, this launcher resolves it once (overrides, `${VAR}` expansion in the
//! launcher's environment, validation); node 0's resolved YAML goes into the run directory
//! and into the store, and every worker of every node runs that (see `cli/worker.rs`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use std::io::IsTerminal;

use clap::Args;
use vigil_config::{BuildFeatures, ConfigError, ConsoleRanks, RunConfig};

use crate::cluster::{self, ClusterChoice, ClusterError, DEFAULT_PORT};
use crate::console::ConsoleMode;
use crate::supervise::AgentSpec;

/// Arguments of `vigil launch`.
///
/// torchrun's spellings are accepted too (`--nproc_per_node`, `--nnodes N:N`,
/// `--node_rank`, `--rdzv_endpoint`, `--rdzv_id`, `--master_addr`/`--master_port`,
/// `--standalone`, `--max_restarts`, `-m MODULE`) and mean the same as Vigil's own.
#[derive(Debug, Clone, Args)]
pub struct LaunchArgs {
    /// The run config (YAML). Optional when a command follows `--`.
    pub config: Option<PathBuf>,
    /// Workers on this node: a number, `auto` (one per visible GPU, else one per CPU
    /// this process may use), `gpu` or `cpu` [launch.nproc_per_node].
    #[arg(long = "nproc-per-node", alias = "nproc_per_node", value_name = "N|auto|gpu|cpu", value_parser = parse_nproc)]
    nproc_spec: Option<Nproc>,
    /// `nproc_spec` resolved to a count (by `normalize`).
    #[arg(skip)]
    nproc_per_node: Option<u32>,
    /// Nodes in the job, one launcher each: N, or torchrun's N:N [launch.nnodes].
    #[arg(long, value_name = "N", value_parser = parse_nnodes)]
    nnodes: Option<u32>,
    /// This node's index, 0..nnodes [launch.node_rank].
    #[arg(long, alias = "node_rank", value_name = "R")]
    node_rank: Option<u32>,
    /// Rendezvous store of the job, hosted by node 0 [launch.rdzv_endpoint].
    #[arg(long, alias = "rdzv_endpoint", value_name = "HOST:PORT")]
    rdzv_endpoint: Option<String>,
    /// torchrun's job id: accepted for compatibility; the run directory names the run.
    #[arg(long, alias = "rdzv_id", value_name = "ID")]
    rdzv_id: Option<String>,
    /// torchrun's static rendezvous host: `--rdzv-endpoint HOST:PORT` with
    /// `--master-port` (default 29500).
    #[arg(
        long,
        alias = "master_addr",
        value_name = "HOST",
        conflicts_with = "rdzv_endpoint"
    )]
    master_addr: Option<String>,
    /// torchrun's static rendezvous port (with `--master-addr`, default 127.0.0.1).
    #[arg(
        long,
        alias = "master_port",
        value_name = "PORT",
        conflicts_with = "rdzv_endpoint"
    )]
    master_port: Option<u16>,
    /// One node on this machine with a free port: `--nnodes 1` without an endpoint.
    #[arg(long, conflicts_with_all = ["rdzv_endpoint", "master_addr", "master_port", "node_rank"])]
    standalone: bool,
    /// Restarts of the whole group after a failure [launch.max_restarts].
    #[arg(long, alias = "max_restarts", value_name = "K")]
    max_restarts: Option<u32>,
    /// Run `python3 -m MODULE` with the command's arguments (torchrun's `-m`).
    #[arg(short = 'm', long = "module", value_name = "MODULE")]
    module: Option<String>,
    /// Seconds between SIGTERM and SIGKILL [launch.grace_s].
    #[arg(long, value_name = "SECONDS")]
    grace_s: Option<f64>,
    /// Seconds to reach the store and every node [launch.rdzv_timeout_s].
    #[arg(long, value_name = "SECONDS")]
    rdzv_timeout_s: Option<f64>,
    /// A heartbeating worker silent this long is hung [launch.heartbeat_timeout_s].
    #[arg(long, value_name = "SECONDS")]
    heartbeat_timeout_s: Option<f64>,
    /// Ranks echoed to the console: all or rank0 [logging.console].
    #[arg(long, value_name = "all|rank0")]
    console: Option<String>,
    /// The run directory [run.output_dir].
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Cluster environment to read.
    #[arg(long, value_enum, default_value = "auto")]
    cluster: ClusterChoice,
    /// File holding the store token (nodes > 0 read it; node 0 writes it if absent).
    #[arg(long, value_name = "PATH", env = "VIGIL_STORE_TOKEN_FILE")]
    store_token_file: Option<PathBuf>,
    /// Override a config key, e.g. `--set optim.lr=2e-5` (needs CONFIG).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// The command each worker runs instead of `vigil worker CONFIG`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// A `--nproc-per-node` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nproc {
    /// A fixed count.
    Count(u32),
    /// One per visible GPU, else one per usable CPU.
    Auto,
    /// One per visible GPU (an error without GPUs).
    Gpu,
    /// One per CPU this process may use (cgroup quotas and affinity included).
    Cpu,
}

fn parse_nproc(s: &str) -> Result<Nproc, String> {
    match s.trim() {
        "auto" => Ok(Nproc::Auto),
        "gpu" => Ok(Nproc::Gpu),
        "cpu" => Ok(Nproc::Cpu),
        n => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Nproc::Count)
            .ok_or_else(|| format!("'{s}': expected a positive number, auto, gpu or cpu")),
    }
}

/// `N` or torchrun's `N:N` (elastic ranges are refused: the world is fixed).
fn parse_nnodes(s: &str) -> Result<u32, String> {
    let (lo, hi) = s.trim().split_once(':').unwrap_or((s.trim(), s.trim()));
    let bad = || format!("'{s}': expected N or N:N");
    let lo: u32 = lo.parse().map_err(|_| bad())?;
    let hi: u32 = hi.parse().map_err(|_| bad())?;
    if lo != hi {
        return Err(format!(
            "'{s}': elastic node ranges are not supported; give a fixed count"
        ));
    }
    Ok(lo)
}

/// The worker count `spec` asks for, given the visible GPUs and usable CPUs.
pub fn nproc_count(spec: Nproc, gpus: Option<u32>, cpus: u32) -> Result<u32, LaunchUsageError> {
    match spec {
        Nproc::Count(n) => Ok(n),
        Nproc::Auto => Ok(gpus.unwrap_or(cpus.max(1))),
        Nproc::Cpu => Ok(cpus.max(1)),
        Nproc::Gpu => gpus.ok_or_else(|| LaunchUsageError::Invalid {
            problems: vec![
                "--nproc-per-node gpu: no GPU is visible (CUDA_VISIBLE_DEVICES, /dev/nvidia*)"
                    .into(),
            ],
        }),
    }
}

/// Maps torchrun's spellings onto Vigil's own flags (pure but for the CPU count).
fn normalize(
    a: &mut LaunchArgs,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<(), LaunchUsageError> {
    if let Some(spec) = a.nproc_spec {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let gpus = cluster::visible_gpus(get, &cluster::dev_nvidia_count);
        a.nproc_per_node = Some(nproc_count(spec, gpus, cpus)?);
    }
    if a.master_addr.is_some() || a.master_port.is_some() {
        let host = a.master_addr.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = a.master_port.unwrap_or(DEFAULT_PORT);
        a.rdzv_endpoint = Some(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        });
    }
    if a.standalone {
        if a.nnodes.is_some_and(|n| n != 1) {
            return Err(LaunchUsageError::Invalid {
                problems: vec!["--standalone runs one node; drop --nnodes".into()],
            });
        }
        a.nnodes = Some(1);
        a.cluster = ClusterChoice::None;
    }
    if let Some(m) = a.module.take() {
        let mut argv: Vec<OsString> = vec!["python3".into(), "-m".into(), m.into()];
        argv.append(&mut a.command);
        a.command = argv;
    }
    Ok(())
}

/// A launch that cannot start as asked (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum LaunchUsageError {
    /// Neither a config nor a command.
    #[error("vigil launch needs a CONFIG, a command after `--`, or both")]
    NothingToRun,
    /// `--set` without a config.
    #[error("--set needs a CONFIG (without one, use the launch flags)")]
    SetWithoutConfig,
    /// A bad `HOST:PORT`.
    #[error("rendezvous endpoint '{value}' ({origin}): expected HOST:PORT")]
    Endpoint {
        /// The value.
        value: String,
        /// Where it came from.
        origin: String,
    },
    /// Settings that do not fit together.
    #[error("launch settings (config, cluster environment and flags) are invalid:\n  {}", problems.join("\n  "))]
    Invalid {
        /// `key: message` lines.
        problems: Vec<String>,
    },
    /// A cluster variable that cannot be used.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Why a launch cannot be resolved into an agent's spec.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The arguments or settings do not fit (exit code 2).
    #[error(transparent)]
    Usage(#[from] LaunchUsageError),
    /// The run config does not load (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A cluster variable that cannot be used (exit code 2).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// This executable's path, which workers run, is unknown.
    #[error("cannot find the vigil executable to start workers with")]
    CurrentExe(#[source] std::io::Error),
}

impl ResolveError {
    /// Whether the user must change the command line or the config (exit code 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, Self::CurrentExe(_))
    }
}

/// Parses `HOST:PORT` (`[v6]:PORT` too).
pub fn parse_endpoint(value: &str, origin: &str) -> Result<(String, u16), LaunchUsageError> {
    let bad = || LaunchUsageError::Endpoint {
        value: value.into(),
        origin: origin.into(),
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The flags as `--set` overrides, so a config run validates and records them.
fn flag_overrides(a: &LaunchArgs) -> Vec<String> {
    let mut o = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            o.push(format!("{k}={v}"));
        }
    };
    push(
        "launch.nproc_per_node",
        a.nproc_per_node.map(|v| v.to_string()),
    );
    push("launch.nnodes", a.nnodes.map(|v| v.to_string()));
    push("launch.node_rank", a.node_rank.map(|v| v.to_string()));
    push("launch.rdzv_endpoint", a.rdzv_endpoint.clone());
    push("launch.max_restarts", a.max_restarts.map(|v| v.to_string()));
    push("launch.grace_s", a.grace_s.map(|v| v.to_string()));
    push(
        "launch.rdzv_timeout_s",
        a.rdzv_timeout_s.map(|v| v.to_string()),
    );
    push(
        "launch.heartbeat_timeout_s",
        a.heartbeat_timeout_s.map(|v| v.to_string()),
    );
    push("logging.console", a.console.clone());
    push(
        "run.output_dir",
        a.output_dir.as_ref().map(|p| p.display().to_string()),
    );
    o
}

/// Applies the cluster environment where no flag was given.
fn apply_cluster(a: &LaunchArgs, config: &mut RunConfig, c: &cluster::ClusterEnv) {
    let l = &mut config.launch;
    if let (None, Some(n)) = (a.nnodes, c.nnodes) {
        l.nnodes = n;
    }
    if let (None, Some(n)) = (a.node_rank, c.node_rank) {
        l.node_rank = n;
    }
    if let (None, Some(n)) = (a.nproc_per_node, c.nproc_per_node) {
        l.nproc_per_node = n;
    }
    if let (None, Some(host)) = (&a.rdzv_endpoint, &c.master_addr) {
        let config_port = l
            .rdzv_endpoint
            .as_deref()
            .and_then(|e| parse_endpoint(e, "").ok())
            .map(|(_, p)| p);
        let port = c.master_port.or(config_port).unwrap_or(DEFAULT_PORT);
        l.rdzv_endpoint = Some(format!("{host}:{port}"));
    }
}

/// Resolves everything into the agent's spec.
pub fn resolve(
    a: &LaunchArgs,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<AgentSpec, ResolveError> {
    resolve_on(a, get, BuildFeatures::compiled())
}

/// [`resolve`] as a build with the features `have` would (tests of a GPU build's
/// launch on a CPU build).
pub fn resolve_on(
    a: &LaunchArgs,
    get: &dyn Fn(&str) -> Option<String>,
    have: BuildFeatures,
) -> Result<AgentSpec, ResolveError> {
    let mut a = a.clone();
    normalize(&mut a, get)?;
    let a = &a;
    if a.config.is_none() && a.command.is_empty() {
        return Err(LaunchUsageError::NothingToRun.into());
    }
    if a.config.is_none() && !a.overrides.is_empty() {
        return Err(LaunchUsageError::SetWithoutConfig.into());
    }
    let mut overrides = a.overrides.clone();
    overrides.extend(flag_overrides(a));
    let mut config = match &a.config {
        Some(path) => RunConfig::load_for_launch_on(path, &overrides, have)?,
        None => {
            let mut c = RunConfig::default();
            c.launch.nproc_per_node = a.nproc_per_node.unwrap_or(c.launch.nproc_per_node);
            c.launch.nnodes = a.nnodes.unwrap_or(c.launch.nnodes);
            c.launch.node_rank = a.node_rank.unwrap_or(c.launch.node_rank);
            c.launch.rdzv_endpoint = a.rdzv_endpoint.clone().or(c.launch.rdzv_endpoint);
            c.launch.max_restarts = a.max_restarts.unwrap_or(c.launch.max_restarts);
            c.launch.grace_s = a.grace_s.unwrap_or(c.launch.grace_s);
            c.launch.rdzv_timeout_s = a.rdzv_timeout_s.unwrap_or(c.launch.rdzv_timeout_s);
            c.launch.heartbeat_timeout_s = a
                .heartbeat_timeout_s
                .unwrap_or(c.launch.heartbeat_timeout_s);
            if let Some(con) = &a.console {
                c.logging.console = match con.as_str() {
                    "all" => ConsoleRanks::All,
                    "rank0" => ConsoleRanks::Rank0,
                    other => {
                        return Err(LaunchUsageError::Invalid {
                            problems: vec![format!("--console {other}: expected all or rank0")],
                        }
                        .into());
                    }
                };
            }
            c.run.output_dir = a.output_dir.as_ref().map(|p| p.display().to_string());
            c
        }
    };
    let cluster = cluster::detect(a.cluster, get)?;
    let mut local_override = None;
    if let Some(c) = &cluster {
        apply_cluster(a, &mut config, c);
        local_override = c.local;
        // One node needs no fixed port: a cluster-named host alone must not make two
        // single-node jobs on one machine fight over 29500.
        if config.launch.nnodes == 1 && a.rdzv_endpoint.is_none() && c.master_port.is_none() {
            config.launch.rdzv_endpoint = None;
        }
    }
    let problems: Vec<String> = vigil_config::validate(&config)
        .into_iter()
        .filter(|p| p.key.starts_with("launch.") || p.key.starts_with("run."))
        .filter(|p| !(a.config.is_none() && p.key.starts_with("launch.backend")))
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    if !problems.is_empty() {
        return Err(LaunchUsageError::Invalid { problems }.into());
    }
    let l = &config.launch;
    let endpoint = match &l.rdzv_endpoint {
        Some(e) => Some(parse_endpoint(e, "launch.rdzv_endpoint")?),
        None => None,
    };
    let argv = if a.command.is_empty() {
        let exe = std::env::current_exe().map_err(ResolveError::CurrentExe)?;
        let config_path = a.config.clone().expect("checked above");
        let mut v: Vec<OsString> = vec![exe.into(), "worker".into(), config_path.into()];
        for o in &overrides {
            v.push("--set".into());
            v.push(o.into());
        }
        v
    } else {
        a.command.clone()
    };
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    if let Some(url) = config.output_url() {
        eprintln!(
            "vigil: run output in {url}; local working directory (logs, lock, TensorBoard events): {}",
            config.output_dir().display()
        );
    }
    Ok(AgentSpec {
        argv,
        nproc: l.nproc_per_node,
        nnodes: l.nnodes,
        node_rank: l.node_rank,
        endpoint,
        max_restarts: l.max_restarts,
        grace: secs(l.grace_s),
        rdzv_timeout: secs(l.rdzv_timeout_s),
        heartbeat_timeout: secs(l.heartbeat_timeout_s),
        console: config.logging.console,
        console_mode: ConsoleMode::resolve(config.logging.format, std::io::stdout().is_terminal()),
        output_dir: config.output_dir(),
        output_url: config.output_url(),
        local_override,
        token_file: a.store_token_file.clone(),
        resolved_config: a.config.as_ref().map(|_| config.to_yaml()),
        collective: l.collective_env().unless_set(get),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::env_of;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: LaunchArgs,
    }

    fn args(argv: &[&str]) -> LaunchArgs {
        T::try_parse_from(std::iter::once("launch").chain(argv.iter().copied()))
            .unwrap()
            .a
    }

    fn tiny() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/tiny.yaml").to_string()
    }

    #[test]
    fn config_launch_runs_vigil_worker_with_the_same_overrides() {
        let t = tiny();
        let a = args(&[&t, "--nproc-per-node", "3", "--set", "optim.lr=0.1"]);
        let spec = resolve(&a, &env_of(&[])).unwrap();
        assert_eq!(spec.nproc, 3);
        let argv: Vec<String> = spec
            .argv
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(argv[1..3], ["worker".to_string(), t.clone()]);
        assert_eq!(
            argv[3..],
            ["--set", "optim.lr=0.1", "--set", "launch.nproc_per_node=3"].map(String::from)
        );
        assert_eq!(spec.max_restarts, 1, "tiny.yaml");
        assert!(spec.resolved_config.unwrap().contains("nproc_per_node: 3"));
    }

    #[test]
    fn the_collective_knobs_come_from_the_launch_section_unless_the_environment_sets_them() {
        use std::time::Duration;
        use vigil_collective::TransportKind;
        let t = tiny();
        let a = args(&[&t, "--set", "launch.backend=tcp"]);
        let c = resolve(&a, &env_of(&[])).unwrap().collective;
        assert_eq!(c.transport, Some(TransportKind::Tcp));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(300)));
        let explicit = env_of(&[("VIGIL_TRANSPORT", "shm")]);
        let c = resolve(&a, &explicit).unwrap().collective;
        assert_eq!(c.transport, None, "the workers inherit VIGIL_TRANSPORT=shm");
        assert!(c.timeout.is_some());
    }

    #[test]
    fn flags_beat_the_cluster_which_beats_the_config() {
        let slurm = env_of(&[
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_NNODES", "2"),
            ("SLURM_NODEID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[01-02]"),
            ("SLURM_GPUS_ON_NODE", "4"),
        ]);
        let t = tiny();
        let spec = resolve(&args(&[&t]), &slurm).unwrap();
        assert_eq!((spec.nnodes, spec.node_rank, spec.nproc), (2, 1, 4));
        assert_eq!(spec.endpoint, Some(("gpu01".into(), DEFAULT_PORT)));
        let a = args(&[&t, "--nproc-per-node", "1", "--rdzv-endpoint", "head:1234"]);
        let spec = resolve(&a, &slurm).unwrap();
        assert_eq!((spec.nnodes, spec.node_rank, spec.nproc), (2, 1, 1));
        assert_eq!(spec.endpoint, Some(("head".into(), 1234)));
        let spec = resolve(&args(&[&t, "--cluster", "none"]), &slurm).unwrap();
        assert_eq!((spec.nnodes, spec.nproc, spec.endpoint), (1, 2, None));
    }

    #[test]
    fn a_single_node_cluster_job_picks_a_free_port() {
        let slurm = env_of(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
            ("SLURM_NODEID", "0"),
            ("SLURM_JOB_NODELIST", "cpu3"),
        ]);
        let spec = resolve(&args(&["--", "true"]), &slurm).unwrap();
        assert_eq!((spec.nnodes, spec.endpoint), (1, None));
        assert_eq!(spec.argv, vec![OsString::from("true")]);
        assert_eq!(spec.output_dir, PathBuf::from("checkpoints/vigil-run"));
    }

    /// The parts of a spec a flag can change (AgentSpec holds non-comparable fields).
    type Key = (u32, u32, u32, Option<(String, u16)>, u32, Vec<OsString>);

    fn key(spec: &AgentSpec) -> Key {
        (
            spec.nproc,
            spec.nnodes,
            spec.node_rank,
            spec.endpoint.clone(),
            spec.max_restarts,
            spec.argv.clone(),
        )
    }

    #[test]
    fn torchrun_spellings_mean_the_same_as_vigils() {
        let no_gpus = env_of(&[("CUDA_VISIBLE_DEVICES", "")]);
        let same = |torch: &[&str], vigil: &[&str]| {
            let t = resolve(&args(torch), &no_gpus).unwrap();
            let v = resolve(&args(vigil), &no_gpus).unwrap();
            assert_eq!(key(&t), key(&v), "{torch:?} vs {vigil:?}");
        };
        same(
            &["--nproc_per_node", "3", "--", "true"],
            &["--nproc-per-node", "3", "--", "true"],
        );
        same(
            &[
                "--nnodes",
                "2:2",
                "--node_rank",
                "1",
                "--rdzv_endpoint",
                "h:7",
                "--",
                "true",
            ],
            &[
                "--nnodes",
                "2",
                "--node-rank",
                "1",
                "--rdzv-endpoint",
                "h:7",
                "--",
                "true",
            ],
        );
        same(
            &[
                "--nnodes",
                "2",
                "--master_addr",
                "h",
                "--master_port",
                "7",
                "--",
                "true",
            ],
            &["--nnodes", "2", "--rdzv-endpoint", "h:7", "--", "true"],
        );
        same(
            &["--nnodes", "2", "--master-addr", "h", "--", "true"],
            &["--nnodes", "2", "--rdzv-endpoint", "h:29500", "--", "true"],
        );
        same(
            &["--max_restarts", "4", "--rdzv_id", "job7", "--", "true"],
            &["--max-restarts", "4", "--", "true"],
        );
        same(
            &["--standalone", "--", "true"],
            &["--nnodes", "1", "--", "true"],
        );
        same(
            &["-m", "pkg.train", "--", "--lr", "1"],
            &["--", "python3", "-m", "pkg.train", "--lr", "1"],
        );
        // auto/cpu: the usable CPUs without GPUs; auto/gpu: the visible GPUs.
        let cpus = std::thread::available_parallelism().unwrap().get() as u32;
        let n = |argv: &[&str], env: &dyn Fn(&str) -> Option<String>| {
            resolve(&args(argv), env).map(|s| s.nproc)
        };
        assert_eq!(
            n(&["--nproc-per-node", "auto", "--", "true"], &no_gpus).unwrap(),
            cpus
        );
        assert_eq!(
            n(&["--nproc_per_node", "cpu", "--", "true"], &no_gpus).unwrap(),
            cpus
        );
        let two = env_of(&[("CUDA_VISIBLE_DEVICES", "0,1")]);
        assert_eq!(
            n(&["--nproc-per-node", "auto", "--", "true"], &two).unwrap(),
            2
        );
        assert_eq!(
            n(&["--nproc-per-node", "gpu", "--", "true"], &two).unwrap(),
            2
        );
        let err = n(&["--nproc-per-node", "gpu", "--", "true"], &no_gpus).unwrap_err();
        assert!(err.to_string().contains("no GPU is visible"), "{err}");
        // Elastic ranges and bad counts are refused by the parser.
        let parse = |argv: &[&str]| {
            T::try_parse_from(std::iter::once("launch").chain(argv.iter().copied()))
                .err()
                .map(|e| e.to_string())
        };
        assert!(parse(&["--nnodes", "1:4"]).unwrap().contains("elastic"));
        assert!(
            parse(&["--nproc-per-node", "many"])
                .unwrap()
                .contains("auto, gpu or cpu")
        );
        assert!(parse(&["--standalone", "--rdzv-endpoint", "h:1"]).is_some());
    }

    #[test]
    fn usage_mistakes() {
        let err = |argv: &[&str]| resolve(&args(argv), &env_of(&[])).unwrap_err().to_string();
        assert!(err(&[]).contains("needs a CONFIG"));
        assert!(err(&["--set", "a.b=1", "--", "true"]).contains("--set needs a CONFIG"));
        assert!(err(&["--nnodes", "2", "--", "true"]).contains("launch.rdzv_endpoint"));
        assert!(err(&["--rdzv-endpoint", "nohost", "--", "true"]).contains("HOST:PORT"));
        assert!(err(&["--console", "loud", "--", "true"]).contains("all or rank0"));
        assert_eq!(
            parse_endpoint("[::1]:29500", "x").unwrap(),
            ("::1".to_string(), 29500)
        );
    }
}
