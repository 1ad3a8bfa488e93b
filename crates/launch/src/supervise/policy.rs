//! The restart policy as a pure state machine: events in, actions out.
//!
//! Everything the launcher decides about a worker group — stop the others when one fails,
//! escalate to SIGKILL after the grace period, restart while restarts remain, exit
//! "preempted" on SIGTERM, kill at once on a second SIGINT — happens here, with time
//! passed in, so every path is unit tested without processes (torchrun's agent mixes this
//! into process handling, which is where its restart-accounting and SIGTERM bugs lived:
//! pytorch/pytorch #147064, #67742).
//!
//! A group generation goes Running → Stopping → (Running again | Finished). The first
//! failure of a generation is the one reported; later exits while stopping are the
//! consequence of stopping and never count. The restart count only grows when a new
//! generation actually starts.
//!
//! A failure that says "the user must fix something" ([`Cause::final_code`]: a worker
//! exit 2, config or data error, or 65, a non-finite loss) is deterministic: a restart
//! would fail the same way, so the group is stopped and the launch ends with that code,
//! restarts left or not (torchelastic's non-retryable errors). Crashes, signals and hangs
//! are still restarted.

use std::time::{Duration, Instant};

/// How a worker ended, or why it was declared failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Exited with this non-zero code.
    Exit(i32),
    /// Killed by this signal.
    Signal(i32),
    /// No heartbeat for this long.
    Hung(Duration),
    /// A worker on another node failed (its description).
    Peer(String),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Exit(c) => write!(f, "exit code {c}"),
            Cause::Signal(s) => write!(f, "signal {s} ({})", signal_name(*s)),
            Cause::Hung(d) => write!(f, "no heartbeat for {:.1} s (hung)", d.as_secs_f64()),
            Cause::Peer(p) => write!(f, "{p}"),
        }
    }
}

/// Worker exit codes that end the launch without a restart, and become its exit code:
/// 2 (a config or data error, `exit::USAGE`) and 65 (a non-finite loss,
/// `exit::NON_FINITE_LOSS`).
pub const FINAL_CODES: [i32; 2] = [
    crate::exit::USAGE as i32,
    crate::exit::NON_FINITE_LOSS as i32,
];

impl Cause {
    /// The exit code the launch ends with, without a restart, when this failure is one
    /// the user must fix: a local worker's exit code in [`FINAL_CODES`], or a failure
    /// another node published as one (the store carries the cause as text; it starts with
    /// the `exit code N` that this type's `Display` writes for [`Cause::Exit`]).
    pub fn final_code(&self) -> Option<i32> {
        let code = match self {
            Cause::Exit(c) => *c,
            Cause::Peer(text) => text
                .strip_prefix("exit code ")?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?,
            Cause::Signal(_) | Cause::Hung(_) => return None,
        };
        FINAL_CODES.contains(&code).then_some(code)
    }
}

/// The short name of a signal number (`SIGKILL`).
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// The first failure of a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Global rank that failed (`None` for a failure on another node without a rank).
    pub rank: Option<u32>,
    /// What happened.
    pub cause: Cause,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A local worker ended: `Ok(())` success, `Err(cause)` failure.
    Exited {
        /// Its global rank.
        rank: u32,
        /// How.
        result: Result<(), Cause>,
    },
    /// The watchdog found a local worker silent too long.
    Hung {
        /// Its global rank.
        rank: u32,
        /// Silent for.
        silent: Duration,
    },
    /// Another node reported a failure in this generation.
    PeerFailed(Failure),
    /// Another node reported preemption.
    PeerPreempted,
    /// SIGTERM (or SIGHUP) reached the launcher.
    Terminate,
    /// SIGINT reached the launcher; `count` SIGINTs so far.
    Interrupt {
        /// SIGINTs received in total.
        count: u32,
    },
    /// Every local worker of the generation has been reaped.
    AllReaped,
    /// Every node reported success for this generation.
    AllNodesDone,
    /// Time passes (checked for the grace deadline).
    Tick,
}

/// What the launcher must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// SIGTERM every local worker's process group.
    TermAll,
    /// SIGKILL every local worker's process group.
    KillAll,
    /// Tell the other nodes (through the store) this generation failed.
    PublishFailure(Failure),
    /// Tell the other nodes the job is being preempted.
    PublishPreempted,
    /// Tell the other nodes this node's workers all succeeded.
    PublishDone,
    /// Start generation `restart` (the new `VIGIL_RESTART_COUNT`).
    Restart {
        /// Restarts done, including this one.
        restart: u32,
    },
    /// Stop supervising with this outcome.
    Finish(Outcome),
}

/// How the launch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every worker exited 0.
    Success,
    /// Restarts exhausted, or a failure the user must fix ([`Cause::final_code`]).
    Failed {
        /// The last generation's first failure.
        failure: Failure,
        /// Restarts that were done.
        restarts: u32,
    },
    /// Stopped on SIGTERM/SIGINT (or a peer's preemption).
    Preempted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Failure(Failure),
    Preempted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Running {
        exited_ok: u32,
    },
    /// Local workers all succeeded; other nodes may still fail and restart the group.
    LocalDone,
    Stopping {
        reason: Reason,
        deadline: Instant,
        killed: bool,
    },
    Finished,
}

/// The policy for one launcher (one node's worker group across generations).
#[derive(Debug, Clone)]
pub struct Policy {
    workers: u32,
    max_restarts: u32,
    restarts: u32,
    grace: Duration,
    phase: Phase,
}

impl Policy {
    /// A policy for `workers` local workers, already started as generation 0.
    pub fn new(workers: u32, max_restarts: u32, grace: Duration) -> Self {
        Self {
            workers,
            max_restarts,
            restarts: 0,
            grace,
            phase: Phase::Running { exited_ok: 0 },
        }
    }

    /// Restarts done so far (the current `VIGIL_RESTART_COUNT`).
    #[cfg(test)]
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Whether this node waits for the other nodes to succeed.
    pub fn waiting_for_peers(&self) -> bool {
        matches!(self.phase, Phase::LocalDone)
    }

    /// Whether the group is being stopped.
    pub fn stopping(&self) -> bool {
        matches!(self.phase, Phase::Stopping { .. })
    }

    /// Feeds one event that happened at `now`; returns the actions to take in order.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        use Action::*;
        match (&mut self.phase, event) {
            (Phase::Finished, _) => vec![],
            // A second SIGINT: kill at once, whatever we were doing.
            (_, Event::Interrupt { count }) if count >= 2 => {
                self.phase = Phase::Stopping {
                    reason: Reason::Preempted,
                    deadline: now,
                    killed: true,
                };
                vec![KillAll]
            }
            (Phase::Running { .. }, Event::Terminate | Event::Interrupt { .. }) => {
                self.stop(Reason::Preempted, now);
                vec![PublishPreempted, TermAll]
            }
            (Phase::Running { .. }, Event::PeerPreempted) => {
                self.stop(Reason::Preempted, now);
                vec![TermAll]
            }
            // Preemption while stopping after a failure: no restart, keep the deadline.
            (Phase::Stopping { reason, .. }, Event::Terminate | Event::Interrupt { .. }) => {
                let first = *reason != Reason::Preempted;
                *reason = Reason::Preempted;
                if first {
                    vec![PublishPreempted]
                } else {
                    vec![]
                }
            }
            (Phase::Stopping { reason, .. }, Event::PeerPreempted) => {
                *reason = Reason::Preempted;
                vec![]
            }
            (Phase::Running { exited_ok }, Event::Exited { result: Ok(()), .. }) => {
                *exited_ok += 1;
                if *exited_ok >= self.workers {
                    self.phase = Phase::LocalDone;
                    vec![PublishDone]
                } else {
                    vec![]
                }
            }
            (
                Phase::Running { .. },
                Event::Exited {
                    rank,
                    result: Err(cause),
                },
            ) => self.fail(
                Failure {
                    rank: Some(rank),
                    cause,
                },
                true,
                now,
            ),
            (Phase::Running { .. }, Event::Hung { rank, silent }) => self.fail(
                Failure {
                    rank: Some(rank),
                    cause: Cause::Hung(silent),
                },
                true,
                now,
            ),
            (Phase::Running { .. }, Event::PeerFailed(f)) => self.fail(f, false, now),
            (Phase::LocalDone, Event::AllNodesDone) => {
                self.phase = Phase::Finished;
                vec![Finish(Outcome::Success)]
            }
            (Phase::LocalDone, Event::Terminate | Event::Interrupt { .. }) => {
                self.phase = Phase::Finished;
                vec![PublishPreempted, Finish(Outcome::Preempted)]
            }
            (Phase::LocalDone, Event::PeerPreempted) => {
                self.phase = Phase::Finished;
                vec![Finish(Outcome::Preempted)]
            }
            // Another node failed after ours finished: the whole group restarts (or fails).
            (Phase::LocalDone, Event::PeerFailed(f)) => {
                self.stop(Reason::Failure(f), now);
                vec![]
            }
            (Phase::LocalDone, _) => vec![],
            (Phase::Running { .. }, Event::AllReaped | Event::AllNodesDone) => vec![],
            (
                Phase::Stopping {
                    killed, deadline, ..
                },
                Event::Tick,
            ) => {
                if !*killed && now >= *deadline {
                    *killed = true;
                    vec![KillAll]
                } else {
                    vec![]
                }
            }
            (Phase::Stopping { reason, .. }, Event::AllReaped) => {
                let reason = reason.clone();
                match reason {
                    Reason::Preempted => {
                        self.phase = Phase::Finished;
                        vec![Finish(Outcome::Preempted)]
                    }
                    Reason::Failure(f)
                        if self.restarts < self.max_restarts && f.cause.final_code().is_none() =>
                    {
                        self.restarts += 1;
                        self.phase = Phase::Running { exited_ok: 0 };
                        vec![Restart {
                            restart: self.restarts,
                        }]
                    }
                    Reason::Failure(failure) => {
                        self.phase = Phase::Finished;
                        vec![Finish(Outcome::Failed {
                            failure,
                            restarts: self.restarts,
                        })]
                    }
                }
            }
            // Exits, hangs and peer failures while stopping are consequences of stopping.
            (Phase::Stopping { .. }, _) => vec![],
            (Phase::Running { .. }, Event::Tick) => vec![],
        }
    }

    /// The first failure of the generation being stopped, if that is why it stops.
    #[cfg(test)]
    pub fn failure(&self) -> Option<&Failure> {
        match &self.phase {
            Phase::Stopping {
                reason: Reason::Failure(f),
                ..
            } => Some(f),
            _ => None,
        }
    }

    fn stop(&mut self, reason: Reason, now: Instant) {
        self.phase = Phase::Stopping {
            reason,
            deadline: now + self.grace,
            killed: false,
        };
    }

    fn fail(&mut self, failure: Failure, publish: bool, now: Instant) -> Vec<Action> {
        self.stop(Reason::Failure(failure.clone()), now);
        let mut actions = Vec::new();
        if publish {
            actions.push(Action::PublishFailure(failure));
        }
        actions.push(Action::TermAll);
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(2);

    fn crash(rank: u32, code: i32) -> Event {
        Event::Exited {
            rank,
            result: Err(Cause::Exit(code)),
        }
    }

    #[test]
    fn all_workers_succeeding_finishes_with_success() {
        let mut p = Policy::new(2, 0, GRACE);
        let t = Instant::now();
        let ok = |rank| Event::Exited {
            rank,
            result: Ok(()),
        };
        assert_eq!(p.on(ok(0), t), vec![]);
        assert_eq!(p.on(ok(1), t), vec![Action::PublishDone]);
        assert!(p.waiting_for_peers());
        assert_eq!(p.on(Event::Tick, t), vec![]);
        assert_eq!(
            p.on(Event::AllNodesDone, t),
            vec![Action::Finish(Outcome::Success)]
        );
        assert_eq!(p.on(crash(1, 3), t), vec![]);
    }

    #[test]
    fn a_finished_node_joins_the_restart_when_another_node_fails() {
        let mut p = Policy::new(1, 1, GRACE);
        let t = Instant::now();
        p.on(
            Event::Exited {
                rank: 0,
                result: Ok(()),
            },
            t,
        );
        let peer = Failure {
            rank: Some(1),
            cause: Cause::Peer("exit code 1 (on node 1)".into()),
        };
        assert_eq!(p.on(Event::PeerFailed(peer), t), vec![]);
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Restart { restart: 1 }]
        );
    }

    #[test]
    fn a_crash_stops_the_group_and_restarts_it_while_restarts_remain() {
        let mut p = Policy::new(2, 1, GRACE);
        let t = Instant::now();
        let first = Failure {
            rank: Some(1),
            cause: Cause::Exit(3),
        };
        assert_eq!(
            p.on(crash(1, 3), t),
            vec![Action::PublishFailure(first.clone()), Action::TermAll]
        );
        // The other rank dies of our SIGTERM: not counted, not reported.
        assert_eq!(p.on(crash(0, 143), t), vec![]);
        assert_eq!(p.failure(), Some(&first));
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Restart { restart: 1 }]
        );
        assert_eq!(p.restarts(), 1);
        // The second generation fails too: restarts exhausted, rank 0 is named.
        p.on(crash(0, 9), t);
        let end = p.on(Event::AllReaped, t);
        assert_eq!(
            end,
            vec![Action::Finish(Outcome::Failed {
                failure: Failure {
                    rank: Some(0),
                    cause: Cause::Exit(9)
                },
                restarts: 1
            })]
        );
        assert_eq!(p.on(Event::Tick, t), vec![]);
    }

    #[test]
    fn grace_expiry_escalates_to_sigkill_once() {
        let mut p = Policy::new(2, 0, GRACE);
        let t = Instant::now();
        p.on(crash(0, 1), t);
        assert_eq!(p.on(Event::Tick, t + GRACE / 2), vec![]);
        assert_eq!(p.on(Event::Tick, t + GRACE), vec![Action::KillAll]);
        assert_eq!(p.on(Event::Tick, t + GRACE * 2), vec![]);
    }

    #[test]
    fn sigterm_forwards_and_ends_preempted_without_restart() {
        let mut p = Policy::new(2, 5, GRACE);
        let t = Instant::now();
        assert_eq!(
            p.on(Event::Terminate, t),
            vec![Action::PublishPreempted, Action::TermAll]
        );
        // Workers exit non-zero because of the signal: still preemption.
        assert_eq!(p.on(crash(0, 143), t), vec![]);
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Finish(Outcome::Preempted)]
        );
        assert_eq!(p.restarts(), 0);
    }

    #[test]
    fn preemption_during_a_failure_stop_cancels_the_restart() {
        let mut p = Policy::new(1, 5, GRACE);
        let t = Instant::now();
        p.on(crash(0, 1), t);
        assert_eq!(p.on(Event::Terminate, t), vec![Action::PublishPreempted]);
        assert_eq!(p.on(Event::Terminate, t), vec![]);
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Finish(Outcome::Preempted)]
        );
    }

    #[test]
    fn second_sigint_kills_at_once() {
        let mut p = Policy::new(2, 0, GRACE);
        let t = Instant::now();
        assert_eq!(
            p.on(Event::Interrupt { count: 1 }, t),
            vec![Action::PublishPreempted, Action::TermAll]
        );
        assert_eq!(
            p.on(Event::Interrupt { count: 2 }, t),
            vec![Action::KillAll]
        );
        assert_eq!(p.on(Event::Tick, t + GRACE), vec![]);
    }

    #[test]
    fn hang_and_peer_failures() {
        let mut p = Policy::new(2, 1, GRACE);
        let t = Instant::now();
        let silent = Duration::from_secs(3);
        let acts = p.on(Event::Hung { rank: 1, silent }, t);
        assert_eq!(acts.last(), Some(&Action::TermAll));
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Restart { restart: 1 }]
        );
        let peer = Failure {
            rank: Some(3),
            cause: Cause::Exit(1),
        };
        // A peer's failure is not re-published.
        assert_eq!(
            p.on(Event::PeerFailed(peer.clone()), t),
            vec![Action::TermAll]
        );
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Finish(Outcome::Failed {
                failure: peer,
                restarts: 1
            })]
        );
    }

    #[test]
    fn peer_preemption_stops_without_republishing() {
        let mut p = Policy::new(1, 3, GRACE);
        let t = Instant::now();
        assert_eq!(p.on(Event::PeerPreempted, t), vec![Action::TermAll]);
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Finish(Outcome::Preempted)]
        );
    }

    #[test]
    fn exit_2_with_restarts_left_finishes_failed_with_that_code_without_restart() {
        let mut p = Policy::new(2, 3, GRACE);
        let t = Instant::now();
        let first = Failure {
            rank: Some(1),
            cause: Cause::Exit(2),
        };
        // The others are still stopped (and the other nodes told) as for any failure.
        assert_eq!(
            p.on(crash(1, 2), t),
            vec![Action::PublishFailure(first.clone()), Action::TermAll]
        );
        assert_eq!(p.on(crash(0, 143), t), vec![]);
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Finish(Outcome::Failed {
                failure: first.clone(),
                restarts: 0
            })]
        );
        assert_eq!(p.restarts(), 0);
        assert_eq!(first.cause.final_code(), Some(2));
    }

    #[test]
    fn a_non_finite_loss_exit_is_not_restarted_either() {
        let mut p = Policy::new(1, 3, GRACE);
        let t = Instant::now();
        p.on(crash(0, 65), t);
        let end = p.on(Event::AllReaped, t);
        assert!(
            matches!(&end[..], [Action::Finish(Outcome::Failed { failure, restarts: 0 })]
                if failure.cause.final_code() == Some(65)),
            "{end:?}"
        );
    }

    #[test]
    fn exit_1_and_signals_are_still_restarted() {
        let t = Instant::now();
        for cause in [Cause::Exit(1), Cause::Signal(libc::SIGKILL), Cause::Exit(3)] {
            let mut p = Policy::new(1, 3, GRACE);
            assert_eq!(cause.final_code(), None, "{cause}");
            p.on(
                Event::Exited {
                    rank: 0,
                    result: Err(cause),
                },
                t,
            );
            assert_eq!(
                p.on(Event::AllReaped, t),
                vec![Action::Restart { restart: 1 }]
            );
        }
    }

    #[test]
    fn a_non_retryable_failure_on_another_node_stops_this_one_too() {
        // What another node reads from the store: the cause as this type displays it.
        let published = format!("{} (on node 1)", Cause::Exit(2));
        let peer = Failure {
            rank: Some(3),
            cause: Cause::Peer(published),
        };
        assert_eq!(peer.cause.final_code(), Some(2));
        let t = Instant::now();
        // While running ...
        let mut p = Policy::new(1, 3, GRACE);
        assert_eq!(
            p.on(Event::PeerFailed(peer.clone()), t),
            vec![Action::TermAll]
        );
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Finish(Outcome::Failed {
                failure: peer.clone(),
                restarts: 0
            })]
        );
        // ... and after this node's workers finished.
        let mut p = Policy::new(1, 3, GRACE);
        p.on(
            Event::Exited {
                rank: 0,
                result: Ok(()),
            },
            t,
        );
        p.on(Event::PeerFailed(peer.clone()), t);
        assert_eq!(
            p.on(Event::AllReaped, t),
            vec![Action::Finish(Outcome::Failed {
                failure: peer,
                restarts: 0
            })]
        );
        // A crash elsewhere is still restarted.
        let crash_elsewhere = Cause::Peer(format!("{} (on node 1)", Cause::Exit(1)));
        assert_eq!(crash_elsewhere.final_code(), None);
        let hang = Cause::Peer(format!("{} (on node 1)", Cause::Hung(GRACE)));
        assert_eq!(hang.final_code(), None);
        let exit_21 = Cause::Peer(format!("{} (on node 1)", Cause::Exit(21)));
        assert_eq!(exit_21.final_code(), None);
    }
}
