//! The supervision loop of one launcher ("node agent"): host or reach the store, agree on
//! the world, start the worker group, and feed what happens (exits, signals, heartbeats,
//! other nodes' reports, time) to the [`Policy`](super::policy::Policy), carrying out the
//! actions it returns.
//!
//! The loop is synchronous and polls every few milliseconds: the launcher's work is
//! waiting, and a poll loop keeps every wait bounded and every signal handled within one
//! tick, without an async runtime between the launcher and `waitpid`.
//!
//! # Layout
//! - `mod.rs`: [`AgentSpec`], [`Ending`] and [`run`]: the setup before the loop and the
//!   teardown after it.
//! - `store.rs`: hosting or reaching the store; the workers' `MASTER_PORT`.
//! - `supervisor.rs`: the loop: events gathered each tick, the policy's actions carried out.
//! - `workers.rs`: one generation of workers: start, signal, clean up.
//! - `summary.rs`: the text shown when the launch ends.

mod store;
mod summary;
mod supervisor;
mod workers;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vigil_collective::CollectiveEnv;
use vigil_collective::store::BackgroundStore;
use vigil_config::{ConsoleRanks, RunDescription};

use self::store::{connect_addr, host_port, host_store, torch_port};
use self::supervisor::supervise;
use super::env::RunSpec;
use super::error::LaunchError;
use super::guard::Guard;
use super::policy::Outcome;
use super::process;
use super::rendezvous::{Agreed, Coordinator};
use super::{lock::OutputHold, signals, token};
use crate::console::{Console, ConsoleMode};

/// Everything one launcher needs, resolved from config, cluster environment and flags.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The worker command (`vigil worker CONFIG ...` or the user's command).
    pub argv: Vec<OsString>,
    /// Workers on this node.
    pub nproc: u32,
    /// Nodes (launchers) in the job.
    pub nnodes: u32,
    /// This node's index.
    pub node_rank: u32,
    /// `(host, port)` of the store; `None` on one node picks a free loopback port.
    pub endpoint: Option<(String, u16)>,
    /// Group restarts allowed (node 0's value wins).
    pub max_restarts: u32,
    /// SIGTERM → SIGKILL delay.
    pub grace: Duration,
    /// Limit for reaching the store and the other nodes.
    pub rdzv_timeout: Duration,
    /// Silence after which a heartbeating worker is hung.
    pub heartbeat_timeout: Duration,
    /// Which ranks are echoed.
    pub console: ConsoleRanks,
    /// How they are shown (`logging.format` against the launcher's terminal).
    pub console_mode: ConsoleMode,
    /// The run directory (the local working directory when `output_url` is set).
    pub output_dir: PathBuf,
    /// `run.output_dir` when it is a bucket URL: node 0 also holds its lease.
    pub output_url: Option<vigil_store::storage::RemoteUrl>,
    /// `LOCAL_RANK`/`LOCAL_WORLD_SIZE` override (Slurm task-per-worker).
    pub local_override: Option<(u32, u32)>,
    /// Where nodes > 0 read the token (node 0 writes it there if absent).
    pub token_file: Option<PathBuf>,
    /// The validated run description (`config.resolved.yaml`): node 0 writes the file
    /// and publishes it in the store; every worker of every node runs it as it is.
    pub resolved_config: Option<RunDescription>,
    /// The collective's knobs from the launch settings (`VIGIL_TRANSPORT`, ...), less
    /// those the launcher's environment already sets.
    pub collective: CollectiveEnv,
}

/// How the launch ended, with the text to show.
#[derive(Debug)]
pub struct Ending {
    /// The outcome.
    pub outcome: Outcome,
    /// A multi-line summary for stderr (empty on success).
    pub summary: String,
}

/// Runs the launch to its end.
pub fn run(spec: AgentSpec) -> Result<Ending, LaunchError> {
    signals::install().map_err(|source| LaunchError::Io {
        what: "install signal handlers",
        path: PathBuf::new(),
        source,
    })?;
    let _hold = claim_output(&spec)?;
    process::become_subreaper();
    let token = token::resolve(
        spec.node_rank,
        spec.token_file.as_deref(),
        spec.rdzv_timeout,
    )?;

    // Node 0 hosts the store; everyone (node 0 included) reaches it as a client.
    let (store, master_addr, port) = host_store(&spec, &token)?;
    let endpoint = host_port(&master_addr, port);
    let (mut coord, agreed) = join(&spec, &token, &endpoint, store.as_ref())?;
    let heartbeat_dir = create_heartbeat_dir(&spec, &agreed.run_id)?;
    let run = run_spec(
        &spec,
        &agreed,
        token,
        master_addr,
        port,
        heartbeat_dir.clone(),
    )?;
    let mut guard = start_guard();
    let console = Arc::new(Console::new(spec.console_mode));
    let result = supervise(
        &spec,
        &run,
        &agreed.world,
        &mut coord,
        guard.as_mut(),
        &console,
    );
    coord.leave(spec.grace + Duration::from_secs(5));
    drop(guard);
    let _ = std::fs::remove_dir_all(&heartbeat_dir);
    drop(store);
    result
}

/// Node 0 holds the run directory (and the bucket's lease, for a bucket URL) and writes
/// the resolved config into it. Returns the hold, released when dropped.
fn claim_output(spec: &AgentSpec) -> Result<Option<OutputHold>, LaunchError> {
    let hold = if spec.node_rank == 0 {
        Some(OutputHold::acquire(
            &spec.output_dir,
            spec.output_url.as_ref(),
        )?)
    } else {
        None
    };
    if let (0, Some(yaml)) = (spec.node_rank, &spec.resolved_config) {
        let path = spec.output_dir.join("config.resolved.yaml");
        std::fs::write(&path, yaml.as_yaml()).map_err(|source| LaunchError::Io {
            what: "write",
            path,
            source,
        })?;
    }
    Ok(hold)
}

/// Reaches the store at `endpoint` and agrees with the other nodes on the world, the run
/// id, the restarts and the config.
fn join(
    spec: &AgentSpec,
    token: &str,
    endpoint: &str,
    store: Option<&BackgroundStore>,
) -> Result<(Coordinator, Agreed), LaunchError> {
    let mut coord = Coordinator::connect(
        &connect_addr(endpoint, store),
        token,
        spec.node_rank,
        spec.nnodes,
        spec.rdzv_timeout,
    )?;
    let agreed = coord.rendezvous(
        spec.nproc,
        &token::fresh_id(8),
        spec.max_restarts,
        spec.local_override,
        spec.resolved_config.as_ref().map(RunDescription::as_yaml),
    )?;
    Ok((coord, agreed))
}

/// Creates this launcher's directory for the workers' heartbeat files (in the temporary
/// directory, named by run, node and pid).
fn create_heartbeat_dir(spec: &AgentSpec, run_id: &str) -> Result<PathBuf, LaunchError> {
    let heartbeat_dir = std::env::temp_dir().join(format!(
        "vigil-{}-node{}-{}",
        run_id,
        spec.node_rank,
        std::process::id()
    ));
    std::fs::create_dir_all(&heartbeat_dir).map_err(|source| LaunchError::Io {
        what: "create heartbeat directory",
        path: heartbeat_dir.clone(),
        source,
    })?;
    Ok(heartbeat_dir)
}

/// What every worker of this node shares, from the spec and the agreement.
fn run_spec(
    spec: &AgentSpec,
    agreed: &Agreed,
    token: String,
    store_addr: String,
    store_port: u16,
    heartbeat_dir: PathBuf,
) -> Result<RunSpec, LaunchError> {
    Ok(RunSpec {
        run_id: agreed.run_id.clone(),
        token,
        store_addr,
        store_port,
        master_port: torch_port(spec.nnodes, store_port)?,
        output_dir: spec.output_dir.clone(),
        max_restarts: agreed.max_restarts,
        heartbeat_dir,
        config_key: agreed.config_key.clone(),
        collective: spec.collective.clone(),
    })
}

/// Starts the orphan guard, or warns and goes without it (PDEATHSIG still applies).
fn start_guard() -> Option<Guard> {
    std::env::current_exe()
        .and_then(|exe| Guard::start(&exe))
        .map_err(|e| tracing::warn!(error = %e, "no orphan guard; relying on PDEATHSIG"))
        .ok()
}
