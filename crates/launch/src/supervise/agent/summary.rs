//! The text shown when the launch ends: what failed, why a restart would not help, and
//! where the failed rank's log is, with its last lines.

use super::AgentSpec;
use super::workers::Worker;
use crate::supervise::env::RunSpec;
use crate::supervise::logs::log_path;
use crate::supervise::policy::{Failure, Outcome};

/// One line naming the failed rank (or the group) and the cause.
pub(super) fn describe(f: &Failure) -> String {
    match (f.rank, &f.cause) {
        (Some(r), c) => format!("rank {r} failed: {c}"),
        (None, c) => format!("the group failed: {c}"),
    }
}

/// What a worker exit code in [`crate::supervise::policy::FINAL_CODES`] means.
fn final_meaning(code: i32) -> &'static str {
    if code == i32::from(crate::exit::NON_FINITE_LOSS) {
        "the training loss became NaN or infinite"
    } else {
        "a config or data error the user must fix"
    }
}

/// The text shown on stderr when the launch ends: empty on success; on failure, what
/// failed and the tail of its log (or where the log is, on another node).
pub(super) fn summarize(
    outcome: &Outcome,
    workers: &[Worker],
    run: &RunSpec,
    spec: &AgentSpec,
) -> String {
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
                    log_path(&run.output_dir, r).display()
                )),
                (None, None) => {}
            }
            s
        }
    }
}
