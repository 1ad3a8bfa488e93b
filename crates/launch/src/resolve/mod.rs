//! `vigil launch [CONFIG] [flags] [--set K=V]... [-- CMD ARGS...]`: the arguments and
//! their resolution into the agent's spec ([`resolve`]).
//!
//! Settings resolve in three layers: the run config's `launch` section (or the defaults
//! when no CONFIG is given), then a detected cluster environment (Slurm, Kubeflow), then
//! the flags. Without `--`, every worker runs `vigil worker CONFIG` on the published
//! description (below); with `-- CMD`, the workers run CMD (CONFIG is then optional, like
//! `torchrun script.py`: without it, the run directory is `--output-dir` or
//! `checkpoints/vigil-run`).
//!
//! With a CONFIG, this launcher resolves it once (overrides, `${VAR}` expansion in the
//! launcher's environment, validation): a [`vigil_config::RunDescription`], which node 0
//! writes to the run directory and publishes in the store, and which every worker of every
//! node runs as it is (the binary's `cli/worker.rs`).
//!
//! # Layout
//! - `args.rs`: [`LaunchArgs`] and its value parsers (torchrun's spellings included),
//!   [`nproc_count`], [`parse_endpoint`].
//! - `error.rs`: [`LaunchUsageError`] and [`ResolveError`].
//! - `mod.rs`: the resolution itself, step by step.

mod args;
mod error;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::time::Duration;

use vigil_config::{BuildFeatures, ConsoleRanks, RunConfig};

pub use args::{LaunchArgs, Nproc, nproc_count, parse_endpoint};
pub use error::{LaunchUsageError, ResolveError};

use crate::cluster::{self, ClusterError, DEFAULT_PORT};
use crate::console::ConsoleMode;
use crate::supervise::AgentSpec;

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
    args::normalize(&mut a, get)?;
    let a = &a;
    check_something_to_run(a)?;
    let mut overrides = a.overrides.clone();
    overrides.extend(flag_overrides(a));
    let mut config = match &a.config {
        Some(path) => RunConfig::load_for_launch_on(path, &overrides, have)?,
        None => config_from_flags(a)?,
    };
    let local_override = apply_detected_cluster(a, &mut config, get)?;
    check_launch_settings(a, &config)?;
    let endpoint = match &config.launch.rdzv_endpoint {
        Some(e) => Some(parse_endpoint(e, "launch.rdzv_endpoint")?),
        None => None,
    };
    let argv = worker_argv(a)?;
    if let Some(url) = config.output_url() {
        eprintln!(
            "vigil: run output in {url}; local working directory (logs, lock, TensorBoard events): {}",
            config.output_dir().display()
        );
    }
    Ok(agent_spec(a, &config, argv, endpoint, local_override, get))
}

/// Refuses a launch with neither a config nor a command, and `--set` without a config.
fn check_something_to_run(a: &LaunchArgs) -> Result<(), LaunchUsageError> {
    if a.config.is_none() && a.command.is_empty() {
        return Err(LaunchUsageError::NothingToRun);
    }
    if a.config.is_none() && !a.overrides.is_empty() {
        return Err(LaunchUsageError::SetWithoutConfig);
    }
    Ok(())
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

/// The run config of a launch without a CONFIG: the defaults, with the flags given.
fn config_from_flags(a: &LaunchArgs) -> Result<RunConfig, LaunchUsageError> {
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
                });
            }
        };
    }
    c.run.output_dir = a.output_dir.as_ref().map(|p| p.display().to_string());
    Ok(c)
}

/// Detects the cluster environment and applies it to `config` where no flag was given.
/// Returns the cluster's `LOCAL_RANK`/`LOCAL_WORLD_SIZE` override, if any.
fn apply_detected_cluster(
    a: &LaunchArgs,
    config: &mut RunConfig,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(u32, u32)>, ClusterError> {
    let cluster = cluster::detect(a.cluster, get)?;
    let mut local_override = None;
    if let Some(c) = &cluster {
        apply_cluster(a, config, c);
        local_override = c.local;
        // One node needs no fixed port: a cluster-named host alone must not make two
        // single-node jobs on one machine fight over 29500.
        if config.launch.nnodes == 1 && a.rdzv_endpoint.is_none() && c.master_port.is_none() {
            config.launch.rdzv_endpoint = None;
        }
    }
    Ok(local_override)
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

/// Validates the `launch` and `run` settings (a launch without a CONFIG has no
/// backend to check).
fn check_launch_settings(a: &LaunchArgs, config: &RunConfig) -> Result<(), LaunchUsageError> {
    let problems: Vec<String> = vigil_config::validate(config)
        .into_iter()
        .filter(|p| p.key.starts_with("launch.") || p.key.starts_with("run."))
        .filter(|p| !(a.config.is_none() && p.key.starts_with("launch.backend")))
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    if !problems.is_empty() {
        return Err(LaunchUsageError::Invalid { problems });
    }
    Ok(())
}

/// What every worker runs: the command after `--`, else `vigil worker CONFIG` with the
/// launch's overrides.
fn worker_argv(a: &LaunchArgs) -> Result<Vec<OsString>, ResolveError> {
    if !a.command.is_empty() {
        return Ok(a.command.clone());
    }
    let exe = std::env::current_exe().map_err(ResolveError::CurrentExe)?;
    let config_path = a.config.clone().expect("checked above");
    // No `--set`: the workers run the published description, overrides applied.
    Ok(vec![exe.into(), "worker".into(), config_path.into()])
}

/// The agent's spec from the resolved config and the parts resolved above.
fn agent_spec(
    a: &LaunchArgs,
    config: &RunConfig,
    argv: Vec<OsString>,
    endpoint: Option<(String, u16)>,
    local_override: Option<(u32, u32)>,
    get: &dyn Fn(&str) -> Option<String>,
) -> AgentSpec {
    let l = &config.launch;
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    AgentSpec {
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
        resolved_config: a.config.as_ref().map(|_| config.describe()),
        collective: l.collective_env().unless_set(get),
    }
}

#[cfg(test)]
mod tests {
    use super::args::tests::args;
    use super::*;
    use crate::cluster::env_of;
    use std::path::PathBuf;

    fn tiny() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/tiny.yaml").to_string()
    }

    #[test]
    fn config_launch_runs_vigil_worker_on_the_published_description() {
        let t = tiny();
        let a = args(&[&t, "--nproc-per-node", "3", "--set", "optim.lr=0.1"]);
        let spec = resolve(&a, &env_of(&[])).unwrap();
        assert_eq!(spec.nproc, 3);
        let argv: Vec<String> = spec
            .argv
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(argv[1..], ["worker".to_string(), t.clone()]);
        assert_eq!(spec.max_restarts, 1, "tiny.yaml");
        let published =
            vigil_config::RunDescription::read(spec.resolved_config.unwrap().as_yaml()).unwrap();
        assert_eq!(published.launch.nproc_per_node, 3);
        assert_eq!(published.optim.lr, 0.1);
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
