//! One generation of workers: starting their processes with logs, markers, output pumps
//! and the guard's registration; signalling their groups; cleaning up once they are reaped.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use vigil_collective::group::env::var;
use vigil_config::ConsoleRanks;

use super::AgentSpec;
use crate::console::{Console, Stream};
use crate::supervise::env::{RunSpec, WorldSpec, heartbeat_file, worker_env};
use crate::supervise::error::LaunchError;
use crate::supervise::guard::Guard;
use crate::supervise::logs::{Echo, RankLog, join_bounded, log_path};
use crate::supervise::policy::signal_name;
use crate::supervise::process::{self, Ended};

/// How long the launcher waits for log pumps after a generation's processes are gone.
const PUMP_JOIN: Duration = Duration::from_secs(2);

/// One worker process of the current generation.
pub(super) struct Worker {
    pub(super) rank: u32,
    pub(super) pid: i32,
    pub(super) ended: Option<Ended>,
    pub(super) log: RankLog,
    pumps: Vec<JoinHandle<()>>,
}

/// Sends `sig` to every worker's process group.
pub(super) fn signal_all(workers: &[Worker], sig: i32) {
    for w in workers {
        process::signal_group(w.pid, sig);
    }
}

/// Starts generation `restart`: logs, markers, processes, pumps, guard registration.
pub(super) fn start(
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
            path: log_path(&run.output_dir, rank),
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
pub(super) fn finish_generation(workers: &mut [Worker], mut guard: Option<&mut Guard>) {
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

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
