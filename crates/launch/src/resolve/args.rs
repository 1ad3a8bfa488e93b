//! `vigil launch`'s command line: the clap arguments, their value parsers (torchrun's
//! spellings included), and [`normalize`], which maps torchrun's spellings onto Vigil's
//! own flags before resolution.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use super::error::LaunchUsageError;
use crate::cluster::{self, ClusterChoice, DEFAULT_PORT};

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
    pub(super) nproc_per_node: Option<u32>,
    /// Nodes in the job, one launcher each: N, or torchrun's N:N [launch.nnodes].
    #[arg(long, value_name = "N", value_parser = parse_nnodes)]
    pub(super) nnodes: Option<u32>,
    /// This node's index, 0..nnodes [launch.node_rank].
    #[arg(long, alias = "node_rank", value_name = "R")]
    pub(super) node_rank: Option<u32>,
    /// Rendezvous store of the job, hosted by node 0 [launch.rdzv_endpoint].
    #[arg(long, alias = "rdzv_endpoint", value_name = "HOST:PORT")]
    pub(super) rdzv_endpoint: Option<String>,
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
    pub(super) max_restarts: Option<u32>,
    /// Run `python3 -m MODULE` with the command's arguments (torchrun's `-m`).
    #[arg(short = 'm', long = "module", value_name = "MODULE")]
    module: Option<String>,
    /// Seconds between SIGTERM and SIGKILL [launch.grace_s].
    #[arg(long, value_name = "SECONDS")]
    pub(super) grace_s: Option<f64>,
    /// Seconds to reach the store and every node [launch.rdzv_timeout_s].
    #[arg(long, value_name = "SECONDS")]
    pub(super) rdzv_timeout_s: Option<f64>,
    /// A heartbeating worker silent this long is hung [launch.heartbeat_timeout_s].
    #[arg(long, value_name = "SECONDS")]
    pub(super) heartbeat_timeout_s: Option<f64>,
    /// Ranks echoed to the console: all or rank0 [logging.console].
    #[arg(long, value_name = "all|rank0")]
    pub(super) console: Option<String>,
    /// The run directory [run.output_dir].
    #[arg(long, value_name = "DIR")]
    pub(super) output_dir: Option<PathBuf>,
    /// Cluster environment to read.
    #[arg(long, value_enum, default_value = "auto")]
    pub(super) cluster: ClusterChoice,
    /// File holding the store token (nodes > 0 read it; node 0 writes it if absent).
    #[arg(long, value_name = "PATH", env = "VIGIL_STORE_TOKEN_FILE")]
    pub(super) store_token_file: Option<PathBuf>,
    /// Override a config key, e.g. `--set optim.lr=2e-5` (needs CONFIG).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(super) overrides: Vec<String>,
    /// The command each worker runs instead of `vigil worker CONFIG`.
    #[arg(last = true, value_name = "CMD")]
    pub(super) command: Vec<OsString>,
}

impl LaunchArgs {
    /// The run config file, when one was given.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    /// Whether a command after `--` (or `-m MODULE`) replaces `vigil worker CONFIG`.
    pub fn runs_a_command(&self) -> bool {
        !self.command.is_empty() || self.module.is_some()
    }

    /// The overrides the run config is loaded with by [`super::resolve`] that decide
    /// what a run trains and where it writes: `--set` in order, then `--output-dir`
    /// as `run.output_dir` (launch-only flags such as the worker count are left out).
    pub fn config_overrides(&self) -> Vec<String> {
        let mut o = self.overrides.clone();
        if let Some(dir) = &self.output_dir {
            o.push(format!("run.output_dir={}", dir.display()));
        }
        o
    }

    /// The same launch of another run: `extra` overrides after the user's (a later
    /// override wins), and `--output-dir` dropped, since the run directory is then
    /// `extra`'s to say (`vigil crossval` launches each fold this way).
    pub fn with_overrides(&self, extra: impl IntoIterator<Item = String>) -> Self {
        let mut a = self.clone();
        a.overrides = self.config_overrides();
        a.overrides.extend(extra);
        a.output_dir = None;
        a
    }
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
pub(super) fn normalize(
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::cluster::env_of;
    use crate::resolve::resolve;
    use crate::supervise::AgentSpec;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: LaunchArgs,
    }

    /// `vigil launch ARGV...`'s arguments, parsed.
    pub(in crate::resolve) fn args(argv: &[&str]) -> LaunchArgs {
        T::try_parse_from(std::iter::once("launch").chain(argv.iter().copied()))
            .unwrap()
            .a
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
}
