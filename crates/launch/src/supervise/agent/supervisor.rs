//! The supervision loop: each tick gathers what happened (signals, worker exits,
//! heartbeats, other nodes' reports, time) as [`Event`]s, feeds them to the [`Policy`],
//! and carries out the [`Action`]s it returns, until the policy finishes the launch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_collective::store::keys;

use super::summary::{describe, summarize};
use super::workers::{self, Worker, finish_generation, signal_all};
use super::{AgentSpec, Ending};
use crate::console::Console;
use crate::supervise::env::{RunSpec, WorldSpec, heartbeat_file};
use crate::supervise::error::LaunchError;
use crate::supervise::guard::Guard;
use crate::supervise::policy::{Action, Cause, Event, Outcome, Policy};
use crate::supervise::process::{self, Ended};
use crate::supervise::rendezvous::Coordinator;
use crate::supervise::signals;
use crate::supervise::watchdog::{Watchdog, file_reading};

const TICK: Duration = Duration::from_millis(5);
const FILE_BEAT_EVERY: Duration = Duration::from_millis(100);
const STORE_POLL_EVERY: Duration = Duration::from_millis(200);

/// Starts the first generation and supervises the group until the policy finishes the
/// launch.
pub(super) fn supervise(
    spec: &AgentSpec,
    run: &RunSpec,
    world: &WorldSpec,
    coord: &mut Coordinator,
    mut guard: Option<&mut Guard>,
    console: &Arc<Console>,
) -> Result<Ending, LaunchError> {
    let policy = Policy::new(spec.nproc, run.max_restarts, spec.grace);
    let watchdog = Watchdog::new(spec.heartbeat_timeout);
    let restart = 0;
    let workers = workers::start(spec, run, world, restart, guard.as_deref_mut(), console)?;
    Supervisor {
        spec,
        run,
        world,
        coord,
        guard,
        console,
        policy,
        watchdog,
        restart,
        workers,
        seen_signals: (0, 0),
        last_file_beat: Instant::now(),
        last_store_poll: Instant::now(),
    }
    .run()
}

/// The loop's state: what it was given, the policy and watchdog, the current generation.
struct Supervisor<'a> {
    spec: &'a AgentSpec,
    run: &'a RunSpec,
    world: &'a WorldSpec,
    coord: &'a mut Coordinator,
    guard: Option<&'a mut Guard>,
    console: &'a Arc<Console>,
    policy: Policy,
    watchdog: Watchdog,
    /// The current generation.
    restart: u32,
    workers: Vec<Worker>,
    /// SIGTERM and SIGINT counts already turned into events.
    seen_signals: (u32, u32),
    last_file_beat: Instant,
    last_store_poll: Instant,
}

impl Supervisor<'_> {
    /// Ticks until an [`Action::Finish`].
    fn run(mut self) -> Result<Ending, LaunchError> {
        loop {
            let now = Instant::now();
            for event in self.events(now) {
                for action in self.policy.on(event, now) {
                    if let Some(ending) = self.carry_out(action)? {
                        return Ok(ending);
                    }
                }
            }
            std::thread::sleep(TICK);
        }
    }

    /// This tick's events, in the order the policy takes them.
    fn events(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        self.signal_events(&mut events);
        self.exit_events(&mut events);
        if now - self.last_file_beat >= FILE_BEAT_EVERY
            || now - self.last_store_poll >= STORE_POLL_EVERY
        {
            self.heartbeat_and_peer_events(now, &mut events);
        }
        if self.policy.waiting_for_peers() && self.spec.nnodes == 1 {
            // Nobody else to wait for: do not sit out a store poll interval.
            events.extend(self.coord.poll(self.restart, true));
        }
        if self.policy.stopping() && self.workers.iter().all(|w| w.ended.is_some()) {
            events.push(Event::AllReaped);
        }
        events.push(Event::Tick);
        events
    }

    /// SIGTERM and SIGINT received since the last tick.
    fn signal_events(&mut self, events: &mut Vec<Event>) {
        let (term, int) = signals::counts();
        if term > self.seen_signals.0 {
            self.console
                .note("vigil: SIGTERM received; stopping workers (preempted)");
            events.push(Event::Terminate);
        }
        if int > self.seen_signals.1 {
            if int == 1 {
                self.console
                    .note("vigil: SIGINT received; stopping workers (again to kill at once)");
            }
            events.push(Event::Interrupt { count: int });
        }
        self.seen_signals = (term, int);
    }

    /// Reaps every exited child: a worker's exit is an event, the guard's a warning.
    fn exit_events(&mut self, events: &mut Vec<Event>) {
        while let Some((pid, ended)) = process::reap_any() {
            if let Some(w) = self
                .workers
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
            } else if self.guard.as_deref().is_some_and(|g| g.pid == pid) {
                self.console.note(&format!(
                    "vigil: warning: the orphan guard exited ({ended:?})"
                ));
            }
        }
    }

    /// Reads the running workers' heartbeats (files each time, the store every
    /// [`STORE_POLL_EVERY`]), reports the hung ones, and polls the other nodes' reports.
    fn heartbeat_and_peer_events(&mut self, now: Instant, events: &mut Vec<Event>) {
        let with_store = now - self.last_store_poll >= STORE_POLL_EVERY;
        for w in self.workers.iter().filter(|w| w.ended.is_none()) {
            let file = file_reading(&heartbeat_file(self.run, w.rank));
            let store = if with_store {
                let prefix = keys::generation_prefix(&self.run.run_id, u64::from(self.restart));
                self.coord.heartbeat(&prefix, w.rank)
            } else {
                None
            };
            self.watchdog.observe(w.rank, (file, store), now);
        }
        if !self.policy.stopping() && !self.policy.waiting_for_peers() {
            for (rank, silent) in self.watchdog.hung(now) {
                if self
                    .workers
                    .iter()
                    .any(|w| w.rank == rank && w.ended.is_none())
                {
                    events.push(Event::Hung { rank, silent });
                }
            }
        }
        if with_store {
            events.extend(
                self.coord
                    .poll(self.restart, self.policy.waiting_for_peers()),
            );
            self.last_store_poll = now;
        }
        self.last_file_beat = now;
    }

    /// Carries out one action; returns the ending once the policy finishes the launch.
    fn carry_out(&mut self, action: Action) -> Result<Option<Ending>, LaunchError> {
        match action {
            Action::TermAll => signal_all(&self.workers, libc::SIGTERM),
            Action::KillAll => {
                if self.policy.stopping() {
                    self.console.note(&format!(
                        "vigil: workers still running after {:.1}s; sending SIGKILL",
                        self.spec.grace.as_secs_f64()
                    ));
                }
                signal_all(&self.workers, libc::SIGKILL)
            }
            Action::PublishFailure(f) => {
                self.console
                    .note(&format!("vigil: {}; stopping the group", describe(&f)));
                self.coord.publish_failure(self.restart, &f);
            }
            Action::PublishPreempted => self.coord.publish_preempted(),
            Action::PublishDone => self.coord.publish_done(self.restart),
            Action::Restart { restart: next } => self.restart_group(next)?,
            Action::Finish(outcome) => return Ok(Some(self.finish(outcome))),
        }
        Ok(None)
    }

    /// Cleans up the current generation, waits for every node at the barrier, and starts
    /// generation `next`.
    fn restart_group(&mut self, next: u32) -> Result<(), LaunchError> {
        finish_generation(&mut self.workers, self.guard.as_deref_mut());
        self.console.end_generation(false);
        self.console.note(&format!(
            "vigil: restarting the worker group (restart {next} of {})",
            self.run.max_restarts
        ));
        self.coord.barrier(next)?;
        self.restart = next;
        self.watchdog.reset();
        self.workers = workers::start(
            self.spec,
            self.run,
            self.world,
            self.restart,
            self.guard.as_deref_mut(),
            self.console,
        )?;
        Ok(())
    }

    /// Cleans up the last generation and sums the launch up.
    fn finish(&mut self, outcome: Outcome) -> Ending {
        finish_generation(&mut self.workers, self.guard.as_deref_mut());
        self.console.end_generation(outcome == Outcome::Success);
        let summary = summarize(&outcome, &self.workers, self.run, self.spec);
        Ending { outcome, summary }
    }
}
