//! `vigil launch [CONFIG] [flags] [--set K=V]... [-- CMD ARGS...]`.
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
use std::process::ExitCode;
use std::time::Duration;

use std::io::IsTerminal;

use clap::Args;
use vigil_trainer::config::{ConsoleRanks, RunConfig};

use crate::cluster::{self, ClusterChoice, ClusterError, DEFAULT_PORT};
use crate::console::ConsoleMode;
use crate::exit;
use crate::supervise::{self, AgentSpec, Outcome};

/// Arguments of `vigil launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The run config (YAML). Optional when a command follows `--`.
    config: Option<PathBuf>,
    /// Workers on this node [launch.nproc_per_node].
    #[arg(long, value_name = "N")]
    nproc_per_node: Option<u32>,
    /// Nodes in the job, one launcher each [launch.nnodes].
    #[arg(long, value_name = "N")]
    nnodes: Option<u32>,
    /// This node's index, 0..nnodes [launch.node_rank].
    #[arg(long, value_name = "R")]
    node_rank: Option<u32>,
    /// Rendezvous store of the job, hosted by node 0 [launch.rdzv_endpoint].
    #[arg(long, value_name = "HOST:PORT")]
    rdzv_endpoint: Option<String>,
    /// Restarts of the whole group after a failure [launch.max_restarts].
    #[arg(long, value_name = "K")]
    max_restarts: Option<u32>,
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
pub fn resolve(a: &LaunchArgs, get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<AgentSpec> {
    if a.config.is_none() && a.command.is_empty() {
        return Err(LaunchUsageError::NothingToRun.into());
    }
    if a.config.is_none() && !a.overrides.is_empty() {
        return Err(LaunchUsageError::SetWithoutConfig.into());
    }
    let mut overrides = a.overrides.clone();
    overrides.extend(flag_overrides(a));
    let mut config = match &a.config {
        Some(path) => RunConfig::load(path, &overrides)?,
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
    let problems: Vec<String> = vigil_trainer::config::validate(&config)
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
        let exe = std::env::current_exe()?;
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
        local_override,
        token_file: a.store_token_file.clone(),
        resolved_config: a.config.as_ref().map(|_| config.to_yaml()),
        collective: l.collective_env().unless_set(get),
    })
}

/// Runs the launch; the exit code is 0, 1 (failed), the worker's 2 or 65 (an error a
/// restart would repeat), or [`exit::PREEMPTED`].
pub fn run(args: LaunchArgs) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let spec = resolve(&args, &|k| std::env::var(k).ok())?;
    let ending = match supervise::run(spec) {
        Ok(e) => e,
        Err(e @ supervise::LaunchError::Interrupted { .. }) => {
            eprintln!("vigil: {e}; exiting as preempted");
            return Ok(ExitCode::from(exit::PREEMPTED));
        }
        Err(e) => return Err(e.into()),
    };
    if !ending.summary.is_empty() {
        eprintln!("{}", ending.summary);
    }
    Ok(match ending.outcome {
        Outcome::Success => ExitCode::SUCCESS,
        // A failure the user must fix ends with the worker's own code (2, 65).
        Outcome::Failed { failure, .. } => ExitCode::from(
            failure
                .cause
                .final_code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(exit::FAILURE),
        ),
        Outcome::Preempted => ExitCode::from(exit::PREEMPTED),
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
        concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/tiny.yaml").to_string()
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
