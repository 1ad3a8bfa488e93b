//! The supervision loop of one launcher ("node agent"): host or reach the store, agree on
//! the world, start the worker group, and feed what happens (exits, signals, heartbeats,
//! other nodes' reports, time) to the [`Policy`], carrying out the actions it returns.
//!
//! The loop is synchronous and polls every few milliseconds: the launcher's work is
//! waiting, and a poll loop keeps every wait bounded and every signal handled within one
//! tick, without an async runtime between the launcher and `waitpid`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_collective::CollectiveEnv;
use vigil_collective::group::env::var;
use vigil_collective::store::{BackgroundStore, keys};
use vigil_config::ConsoleRanks;

use super::env::{RunSpec, WorldSpec, heartbeat_file, worker_env};
use super::error::LaunchError;
use super::guard::Guard;
use super::logs::{Echo, RankLog, join_bounded};
use super::policy::{Action, Cause, Event, Failure, Outcome, Policy, signal_name};
use super::process::{self, Ended};
use super::rendezvous::Coordinator;
use super::watchdog::{Watchdog, file_reading};
use super::{lock::OutputHold, signals, token};
use crate::console::{Console, ConsoleMode, Stream};

const TICK: Duration = Duration::from_millis(5);
const FILE_BEAT_EVERY: Duration = Duration::from_millis(100);
const STORE_POLL_EVERY: Duration = Duration::from_millis(200);
/// How long the launcher waits for log pumps after a generation's processes are gone.
const PUMP_JOIN: Duration = Duration::from_secs(2);

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
    /// `config.resolved.yaml` contents: node 0 writes the file and publishes it in the
    /// store for every worker of every node.
    pub resolved_config: Option<String>,
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

struct Worker {
    rank: u32,
    pid: i32,
    ended: Option<Ended>,
    log: RankLog,
    pumps: Vec<JoinHandle<()>>,
}

/// Runs the launch to its end.
pub fn run(spec: AgentSpec) -> Result<Ending, LaunchError> {
    signals::install().map_err(|source| LaunchError::Io {
        what: "install signal handlers",
        path: PathBuf::new(),
        source,
    })?;
    let _hold = if spec.node_rank == 0 {
        Some(OutputHold::acquire(
            &spec.output_dir,
            spec.output_url.as_ref(),
        )?)
    } else {
        None
    };
    if let (0, Some(yaml)) = (spec.node_rank, &spec.resolved_config) {
        let path = spec.output_dir.join("config.resolved.yaml");
        std::fs::write(&path, yaml).map_err(|source| LaunchError::Io {
            what: "write",
            path,
            source,
        })?;
    }
    process::become_subreaper();
    let token = token::resolve(
        spec.node_rank,
        spec.token_file.as_deref(),
        spec.rdzv_timeout,
    )?;

    // Node 0 hosts the store; everyone (node 0 included) reaches it as a client.
    let (store, master_addr, port) = host_store(&spec, &token)?;
    let endpoint = host_port(&master_addr, port);
    let mut coord = Coordinator::connect(
        &connect_addr(&endpoint, store.as_ref()),
        &token,
        spec.node_rank,
        spec.nnodes,
        spec.rdzv_timeout,
    )?;
    let agreed = coord.rendezvous(
        spec.nproc,
        &token::fresh_id(8),
        spec.max_restarts,
        spec.local_override,
        spec.resolved_config.as_deref(),
    )?;
    let heartbeat_dir = std::env::temp_dir().join(format!(
        "vigil-{}-node{}-{}",
        agreed.run_id,
        spec.node_rank,
        std::process::id()
    ));
    std::fs::create_dir_all(&heartbeat_dir).map_err(|source| LaunchError::Io {
        what: "create heartbeat directory",
        path: heartbeat_dir.clone(),
        source,
    })?;
    let run = RunSpec {
        run_id: agreed.run_id.clone(),
        token,
        store_addr: master_addr,
        store_port: port,
        master_port: torch_port(spec.nnodes, port)?,
        output_dir: spec.output_dir.clone(),
        max_restarts: agreed.max_restarts,
        heartbeat_dir: heartbeat_dir.clone(),
        config_key: agreed.config_key.clone(),
        collective: spec.collective.clone(),
    };
    let mut guard = std::env::current_exe()
        .and_then(|exe| Guard::start(&exe))
        .map_err(|e| tracing::warn!(error = %e, "no orphan guard; relying on PDEATHSIG"))
        .ok();
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

/// `MASTER_PORT` for the workers: never the store's port (a torch script's rank 0 binds
/// it). One node: a free port of this machine. Several: the store's port + 1 on node 0's
/// host, so every node agrees without a round trip (keep it free there, as torchrun's
/// users keep 29500 free).
fn torch_port(nnodes: u32, store_port: u16) -> Result<u16, LaunchError> {
    if nnodes > 1 {
        return Ok(store_port.checked_add(1).unwrap_or(store_port - 1));
    }
    let bind = "0.0.0.0:0";
    let bad = |e| LaunchError::Bind {
        addr: bind.into(),
        source: vigil_collective::Error::io("pick a free MASTER_PORT", e),
    };
    let listener = std::net::TcpListener::bind(bind).map_err(bad)?;
    Ok(listener.local_addr().map_err(bad)?.port())
}

/// Binds the store on node 0. Returns it with the address workers use.
fn host_store(
    spec: &AgentSpec,
    token: &str,
) -> Result<(Option<BackgroundStore>, String, u16), LaunchError> {
    match (&spec.endpoint, spec.node_rank) {
        (None, _) => {
            let bind = "127.0.0.1:0";
            let store = BackgroundStore::start(bind.parse().expect("literal"), token).map_err(
                |source| LaunchError::Bind {
                    addr: bind.into(),
                    source,
                },
            )?;
            let port = store.addr().port();
            Ok((Some(store), "127.0.0.1".into(), port))
        }
        (Some((host, port)), 0) => {
            // All interfaces of the endpoint's address family.
            let any = if host.contains(':') { "::" } else { "0.0.0.0" };
            let bind = host_port(any, *port);
            let store = BackgroundStore::start(bind.parse().expect("valid"), token)
                .map_err(|source| LaunchError::Bind { addr: bind, source })?;
            let port = store.addr().port();
            Ok((Some(store), host.clone(), port))
        }
        (Some((host, port)), _) => Ok((None, host.clone(), *port)),
    }
}

/// `HOST:PORT`, bracketing IPv6 literals.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Node 0 talks to its own store over loopback (its public name may not resolve locally).
fn connect_addr(endpoint: &str, store: Option<&BackgroundStore>) -> String {
    match store {
        Some(s) => format!("127.0.0.1:{}", s.addr().port()),
        None => endpoint.to_string(),
    }
}

fn supervise(
    spec: &AgentSpec,
    run: &RunSpec,
    world: &WorldSpec,
    coord: &mut Coordinator,
    mut guard: Option<&mut Guard>,
    console: &Arc<Console>,
) -> Result<Ending, LaunchError> {
    let mut policy = Policy::new(spec.nproc, run.max_restarts, spec.grace);
    let mut watchdog = Watchdog::new(spec.heartbeat_timeout);
    let mut restart = 0;
    let mut workers = start(spec, run, world, restart, guard.as_deref_mut(), console)?;
    let mut seen_signals = (0, 0);
    let mut last_file_beat = Instant::now();
    let mut last_store_poll = Instant::now();
    loop {
        let now = Instant::now();
        let mut events = Vec::new();
        let (term, int) = signals::counts();
        if term > seen_signals.0 {
            console.note("vigil: SIGTERM received; stopping workers (preempted)");
            events.push(Event::Terminate);
        }
        if int > seen_signals.1 {
            if int == 1 {
                console.note("vigil: SIGINT received; stopping workers (again to kill at once)");
            }
            events.push(Event::Interrupt { count: int });
        }
        seen_signals = (term, int);
        while let Some((pid, ended)) = process::reap_any() {
            if let Some(w) = workers
                .iter_mut()
                .find(|w| w.pid == pid && w.ended.is_none())
            {
                w.ended = Some(ended);
                let result = match ended {
                    Ended::Code(0) => Ok(()),
                    Ended::Code(c) => Err(Cause::Exit(c)),
                    Ended::Signal(s) => Err(Cause::Signal(s)),
                };
                events.push(Event::Exited {
                    rank: w.rank,
                    result,
                });
            } else if guard.as_deref().is_some_and(|g| g.pid == pid) {
                console.note(&format!(
                    "vigil: warning: the orphan guard exited ({ended:?})"
                ));
            }
        }
        if now - last_file_beat >= FILE_BEAT_EVERY || now - last_store_poll >= STORE_POLL_EVERY {
            let with_store = now - last_store_poll >= STORE_POLL_EVERY;
            for w in workers.iter().filter(|w| w.ended.is_none()) {
                let file = file_reading(&heartbeat_file(run, w.rank));
                let store = if with_store {
                    let prefix = keys::generation_prefix(&run.run_id, u64::from(restart));
                    coord.heartbeat(&prefix, w.rank)
                } else {
                    None
                };
                watchdog.observe(w.rank, (file, store), now);
            }
            if !policy.stopping() && !policy.waiting_for_peers() {
                for (rank, silent) in watchdog.hung(now) {
                    if workers.iter().any(|w| w.rank == rank && w.ended.is_none()) {
                        events.push(Event::Hung { rank, silent });
                    }
                }
            }
            if with_store {
                events.extend(coord.poll(restart, policy.waiting_for_peers()));
                last_store_poll = now;
            }
            last_file_beat = now;
        }
        if policy.waiting_for_peers() && spec.nnodes == 1 {
            // Nobody else to wait for: do not sit out a store poll interval.
            events.extend(coord.poll(restart, true));
        }
        if policy.stopping() && workers.iter().all(|w| w.ended.is_some()) {
            events.push(Event::AllReaped);
        }
        events.push(Event::Tick);
        for event in events {
            for action in policy.on(event, now) {
                match action {
                    Action::TermAll => signal_all(&workers, libc::SIGTERM),
                    Action::KillAll => {
                        if policy.stopping() {
                            console.note(&format!(
                                "vigil: workers still running after {:.1}s; sending SIGKILL",
                                spec.grace.as_secs_f64()
                            ));
                        }
                        signal_all(&workers, libc::SIGKILL)
                    }
                    Action::PublishFailure(f) => {
                        console.note(&format!("vigil: {}; stopping the group", describe(&f)));
                        coord.publish_failure(restart, &f);
                    }
                    Action::PublishPreempted => coord.publish_preempted(),
                    Action::PublishDone => coord.publish_done(restart),
                    Action::Restart { restart: next } => {
                        finish_generation(&mut workers, guard.as_deref_mut());
                        console.end_generation(false);
                        console.note(&format!(
                            "vigil: restarting the worker group (restart {next} of {})",
                            run.max_restarts
                        ));
                        coord.barrier(next)?;
                        restart = next;
                        watchdog.reset();
                        workers = start(spec, run, world, restart, guard.as_deref_mut(), console)?;
                    }
                    Action::Finish(outcome) => {
                        finish_generation(&mut workers, guard.as_deref_mut());
                        console.end_generation(outcome == Outcome::Success);
                        let summary = summarize(&outcome, &workers, run, spec);
                        return Ok(Ending { outcome, summary });
                    }
                }
            }
        }
        std::thread::sleep(TICK);
    }
}

fn signal_all(workers: &[Worker], sig: i32) {
    for w in workers {
        process::signal_group(w.pid, sig);
    }
}

/// Starts generation `restart`: logs, markers, processes, pumps, guard registration.
fn start(
    spec: &AgentSpec,
    run: &RunSpec,
    world: &WorldSpec,
    restart: u32,
    mut guard: Option<&mut Guard>,
    console: &Arc<Console>,
) -> Result<Vec<Worker>, LaunchError> {
    let mut workers = Vec::new();
    for local in 0..spec.nproc {
        let rank = world.rank_offset + local;
        let log = RankLog::open(&run.output_dir, rank).map_err(|source| LaunchError::Io {
            what: "open log",
            path: super::logs::log_path(&run.output_dir, rank),
            source,
        })?;
        let _ = std::fs::remove_file(heartbeat_file(run, rank));
        let mut env = worker_env(run, world, local, restart).to_vars();
        // This launcher renders rank 0's progress (a bar on a terminal, the JSON
        // records as they are otherwise), so the worker always prints records.
        env.push((var::PROGRESS_JSON.to_string(), "1".to_string()));
        let spawned = process::spawn(&spec.argv, &env);
        let spawned = match spawned {
            Ok(s) => s,
            Err(source) => {
                // Stop what already started before reporting.
                signal_all(&workers, libc::SIGKILL);
                return Err(LaunchError::Spawn {
                    rank,
                    program: spec.argv[0].to_string_lossy().into_owned(),
                    source,
                });
            }
        };
        log.marker(&format!(
            "run {} restart {restart} rank {rank} pid {} started at unix time {}",
            run.run_id,
            spawned.pid,
            unix_now()
        ));
        if let Some(g) = guard.as_deref_mut() {
            g.add(spawned.pid);
        }
        let echoed = match spec.console {
            ConsoleRanks::All => true,
            ConsoleRanks::Rank0 => rank == 0,
        };
        let mut pumps = Vec::new();
        for (reader, stream) in [
            (
                Box::new(spawned.stdout) as Box<dyn std::io::Read + Send>,
                Stream::Stdout,
            ),
            (Box::new(spawned.stderr), Stream::Stderr),
        ] {
            let echo = echoed.then(|| Echo {
                console: console.clone(),
                rank,
                stream,
            });
            match log.pump(reader, echo) {
                Ok(h) => pumps.push(h),
                Err(e) => tracing::warn!(error = %e, "cannot start a log thread"),
            }
        }
        workers.push(Worker {
            rank,
            pid: spawned.pid,
            ended: None,
            log,
            pumps,
        });
    }
    Ok(workers)
}

/// Cleans up after a generation whose leaders are all reaped: kill stragglers left in the
/// groups, drain the logs (bounded), write exit markers, unregister from the guard.
fn finish_generation(workers: &mut [Worker], mut guard: Option<&mut Guard>) {
    signal_all(workers, libc::SIGKILL);
    for w in workers.iter_mut() {
        let left = join_bounded(std::mem::take(&mut w.pumps), PUMP_JOIN);
        if left > 0 {
            w.log
                .marker("output still open after the worker exited (a detached child?)");
        }
        let how = match w.ended {
            Some(Ended::Code(c)) => format!("exited with code {c}"),
            Some(Ended::Signal(s)) => format!("killed by {}", signal_name(s)),
            None => "state unknown".into(),
        };
        w.log.marker(&format!("rank {} {how}", w.rank));
        if let Some(g) = guard.as_deref_mut() {
            g.remove(w.pid);
        }
    }
}

fn describe(f: &Failure) -> String {
    match (f.rank, &f.cause) {
        (Some(r), c) => format!("rank {r} failed: {c}"),
        (None, c) => format!("the group failed: {c}"),
    }
}

/// What a worker exit code in [`super::policy::FINAL_CODES`] means.
fn final_meaning(code: i32) -> &'static str {
    if code == i32::from(crate::exit::NON_FINITE_LOSS) {
        "the training loss became NaN or infinite"
    } else {
        "a config or data error the user must fix"
    }
}

fn summarize(outcome: &Outcome, workers: &[Worker], run: &RunSpec, spec: &AgentSpec) -> String {
    match outcome {
        Outcome::Success => String::new(),
        Outcome::Preempted => format!(
            "vigil: preempted: workers were asked to checkpoint and stop (grace {:.0}s); \
             rerun the same command to resume",
            spec.grace.as_secs_f64()
        ),
        Outcome::Failed { failure, restarts } => {
            let mut s = match failure.cause.final_code() {
                Some(code) => format!(
                    "vigil: {}: {}; a restart would fail the same way, so the run ends \
                     with exit code {code} ({restarts} restart(s) used)",
                    describe(failure),
                    final_meaning(code)
                ),
                None => format!(
                    "vigil: the worker group failed and no restarts remain \
                     ({restarts} restart(s) of launch.max_restarts = {} used)\n  first failure: {}",
                    run.max_restarts,
                    describe(failure)
                ),
            };
            let local = failure
                .rank
                .and_then(|r| workers.iter().find(|w| w.rank == r));
            match (local, failure.rank) {
                (Some(w), _) => {
                    let tail = w.log.tail();
                    s.push_str(&format!("\n  log: {}", w.log.path().display()));
                    if tail.is_empty() {
                        s.push_str(" (it wrote nothing)");
                    } else {
                        s.push_str(&format!("; its last {} line(s):", tail.len()));
                        for line in tail {
                            s.push_str(&format!("\n    | {line}"));
                        }
                    }
                }
                (None, Some(r)) => s.push_str(&format!(
                    "\n  log: {} on the node that ran it",
                    super::logs::log_path(&run.output_dir, r).display()
                )),
                (None, None) => {}
            }
            s
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
