//! The loop plan: after optimizer step S, what the training loop does next —
//! log, histogram, evaluate, export, checkpoint, stop — as a pure function of the
//! step, the run's schedule and the flags the ranks agreed on.
//!
//! The loop asks [`LoopPlan::after_step`] after every optimizer step and carries
//! out the actions in order. When the plan says [`Action::Evaluate`], the loop
//! evaluates, decides early stopping and "export now" from the report (rank 0,
//! then broadcast), and asks [`LoopPlan::after_eval`] for the rest of the step.
//! Nothing here touches a model, a file or a process, so every boundary (the last
//! step, a resumed run, a preemption, early stopping) is unit tested below, as the
//! launcher's restart policy is.
//!
//! Decisions depend on the step count only, never on how many steps this
//! process ran: a run resumed at step S plans steps S+1… exactly as the
//! uninterrupted run did.
//!
//! A run is finished only when what its last step owes is done. The final
//! checkpoint is written *before* the end-of-run export (so a crash while
//! exporting never loses the trained model), and it records what is still owed
//! ([`Owed`], from [`owed_after`]): the export, and that training has ended. A
//! process resumed from it ([`LoopPlan::at_start`]) exports before it stops, so
//! an export that failed, crashed or was preempted is retried by the restart
//! and by a relaunch, never silently dropped.

use serde::{Deserialize, Serialize};

use vigil_config::{ExportWhen, RunConfig};

/// What the loop does after a step, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Log the interval's scalars and progress.
    Log,
    /// Log weight and gradient histograms.
    Histogram,
    /// Evaluate on the validation split, then ask [`LoopPlan::after_eval`].
    Evaluate,
    /// Publish an export version (behind the gate, when one is configured).
    Export,
    /// Save a checkpoint of the state after this step.
    Checkpoint,
    /// End training.
    Stop(Stop),
}

/// Why training ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The last step of the schedule was taken.
    Completed,
    /// Early stopping ended training.
    EarlyStopped,
    /// A rank was asked to stop (SIGTERM/SIGINT): checkpoint and exit for requeue.
    Preempted,
}

/// What an evaluation decided (identical on every rank: rank 0 broadcasts it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalDecision {
    /// Early stopping's patience is exhausted.
    pub stop_early: bool,
    /// `export.when` wants this model exported (`every`, or `best` and improved).
    pub export: bool,
}

/// The schedule of a run's side activities, from its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopPlan {
    /// Optimizer steps of the run.
    pub total: u64,
    /// `logging.interval`.
    pub log_every: u64,
    /// `logging.histogram_every`.
    pub histogram_every: Option<u64>,
    /// `train.eval_every`; evaluation also runs at the last step.
    pub eval_every: Option<u64>,
    /// Whether there is a validation split to evaluate.
    pub has_val: bool,
    /// `checkpoint.every_steps`; a checkpoint is also saved when training stops.
    pub checkpoint_every: Option<u64>,
    /// `export.when: end`: export once when training completes or stops early.
    pub export_at_end: bool,
}

impl LoopPlan {
    /// The plan of `cfg` for a run of `total` steps.
    pub fn from_config(cfg: &RunConfig, total: u64, has_val: bool) -> Self {
        Self {
            total,
            log_every: cfg.logging.interval.max(1),
            histogram_every: cfg.logging.histogram_every.map(|e| e.max(1)),
            eval_every: cfg.train.eval_every.map(|e| e.max(1)),
            has_val,
            checkpoint_every: cfg.checkpoint.every_steps.map(|e| e.max(1)),
            export_at_end: cfg.export.when == ExportWhen::End,
        }
    }

    /// Before the first step of this process, at `step` steps done (0 fresh, S
    /// when resumed) with what the checkpoint says is still `owed`: nothing (train
    /// on), or the owed export and the stop. A run whose checkpoint is at the last
    /// step, or that stopped early, does not train again.
    pub fn at_start(&self, step: u64, owed: Owed) -> Vec<Action> {
        let finished = owed
            .finished
            .or((step >= self.total).then_some(Stop::Completed));
        match (owed.export, finished) {
            (true, stop) => vec![
                Action::Export,
                Action::Stop(stop.unwrap_or(Stop::Completed)),
            ],
            (false, Some(stop)) => vec![Action::Stop(stop)],
            (false, None) => Vec::new(),
        }
    }

    /// After optimizer step `step` (1-based: steps done); `stop_requested` is
    /// whether any rank was asked to stop during it.
    ///
    /// A stop request checkpoints and stops at once, skipping an evaluation that
    /// was due (the grace period is for saving, not scoring), unless this was the
    /// last step anyway, which then completes normally.
    pub fn after_step(&self, step: u64, stop_requested: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        let last = step >= self.total;
        if step.is_multiple_of(self.log_every) || last {
            actions.push(Action::Log);
        }
        if self.histogram_every.is_some_and(|e| step.is_multiple_of(e)) {
            actions.push(Action::Histogram);
        }
        if stop_requested && !last {
            actions.extend([Action::Checkpoint, Action::Stop(Stop::Preempted)]);
            return actions;
        }
        let eval_due = last || self.eval_every.is_some_and(|e| step.is_multiple_of(e));
        if eval_due && self.has_val {
            actions.push(Action::Evaluate);
            return actions;
        }
        actions.extend(self.finish(step, EvalDecision::default()));
        actions
    }

    /// The rest of step `step` after its evaluation decided `decision`.
    pub fn after_eval(&self, step: u64, decision: EvalDecision) -> Vec<Action> {
        self.finish(step, decision)
    }

    fn finish(&self, step: u64, decision: EvalDecision) -> Vec<Action> {
        let mut actions = Vec::new();
        if decision.export {
            actions.push(Action::Export);
        }
        let stop = if decision.stop_early {
            Some(Stop::EarlyStopped)
        } else if step >= self.total {
            Some(Stop::Completed)
        } else {
            None
        };
        if stop.is_some()
            || self
                .checkpoint_every
                .is_some_and(|e| step.is_multiple_of(e))
        {
            actions.push(Action::Checkpoint);
        }
        if let Some(stop) = stop {
            if self.export_at_end && !decision.export {
                actions.push(Action::Export);
            }
            actions.push(Action::Stop(stop));
        }
        actions
    }
}

/// What a checkpoint written at `actions[at]` leaves owed: the actions after it
/// in the same step that a crash there would lose. A preemption is not owed (the
/// resumed run trains on); an export before the checkpoint is in it already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owed {
    /// An export follows the checkpoint.
    pub export: bool,
    /// Training ends after the checkpoint (completed or stopped early).
    pub finished: Option<Stop>,
}

/// What is owed after the checkpoint at `actions[at]` (see [`Owed`]).
pub fn owed_after(actions: &[Action], at: usize) -> Owed {
    let rest = actions.get(at + 1..).unwrap_or_default();
    Owed {
        export: rest.contains(&Action::Export),
        finished: rest.iter().find_map(|a| match a {
            Action::Stop(s @ (Stop::Completed | Stop::EarlyStopped)) => Some(*s),
            _ => None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::Action::{Checkpoint, Evaluate, Export, Histogram, Log};
    use super::*;

    fn plan() -> LoopPlan {
        LoopPlan {
            total: 40,
            log_every: 5,
            histogram_every: None,
            eval_every: Some(20),
            has_val: true,
            checkpoint_every: Some(10),
            export_at_end: true,
        }
    }

    /// Every step's actions of a whole run, with evaluations deciding `decide`.
    fn run(
        p: &LoopPlan,
        from: u64,
        stop_at: Option<u64>,
        decide: impl Fn(u64) -> EvalDecision,
    ) -> Vec<(u64, Action)> {
        let mut out = Vec::new();
        for step in from + 1..=p.total {
            let mut actions = p.after_step(step, stop_at == Some(step));
            if actions.last() == Some(&Evaluate) {
                actions.extend(p.after_eval(step, decide(step)));
            }
            let stop = actions.iter().any(|a| matches!(a, Action::Stop(_)));
            out.extend(actions.into_iter().map(|a| (step, a)));
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn a_plain_step_does_nothing_and_intervals_fall_on_multiples() {
        let p = plan();
        assert_eq!(p.after_step(1, false), []);
        assert_eq!(p.after_step(5, false), [Log]);
        assert_eq!(p.after_step(10, false), [Log, Checkpoint]);
        assert_eq!(p.after_step(20, false), [Log, Evaluate]);
        assert_eq!(p.after_eval(20, EvalDecision::default()), [Checkpoint]);
    }

    #[test]
    fn the_last_step_logs_evaluates_checkpoints_exports_and_stops() {
        let p = LoopPlan {
            total: 37,
            ..plan()
        };
        assert_eq!(p.after_step(37, false), [Log, Evaluate]);
        assert_eq!(
            p.after_eval(37, EvalDecision::default()),
            [Checkpoint, Export, Action::Stop(Stop::Completed)]
        );
        // Without a validation split the last step still checkpoints and exports.
        let p = LoopPlan {
            has_val: false,
            ..p
        };
        assert_eq!(
            p.after_step(37, false),
            [Log, Checkpoint, Export, Action::Stop(Stop::Completed)]
        );
    }

    #[test]
    fn export_every_or_best_exports_after_the_evaluation_and_not_again_at_the_end() {
        let p = LoopPlan {
            export_at_end: false,
            ..plan()
        };
        let export = EvalDecision {
            stop_early: false,
            export: true,
        };
        assert_eq!(p.after_eval(20, export), [Export, Checkpoint]);
        assert_eq!(
            p.after_eval(40, export),
            [Export, Checkpoint, Action::Stop(Stop::Completed)]
        );
        assert_eq!(
            p.after_eval(40, EvalDecision::default()),
            [Checkpoint, Action::Stop(Stop::Completed)]
        );
    }

    #[test]
    fn early_stopping_checkpoints_exports_at_end_and_stops() {
        let p = plan();
        let got = run(&p, 0, None, |s| EvalDecision {
            stop_early: s == 20,
            export: false,
        });
        assert_eq!(
            got.last_chunk::<3>().unwrap(),
            &[
                (20, Checkpoint),
                (20, Export),
                (20, Action::Stop(Stop::EarlyStopped))
            ]
        );
    }

    #[test]
    fn a_stop_request_checkpoints_and_stops_without_evaluating() {
        let p = plan();
        assert_eq!(
            p.after_step(20, true),
            [Log, Checkpoint, Action::Stop(Stop::Preempted)]
        );
        assert_eq!(
            p.after_step(13, true),
            [Checkpoint, Action::Stop(Stop::Preempted)]
        );
        // At the last step the run completes instead: nothing is left to resume.
        assert_eq!(p.after_step(40, true), [Log, Evaluate]);
    }

    #[test]
    fn a_resumed_run_plans_the_remaining_steps_as_the_uninterrupted_run_did() {
        let p = plan();
        let never = |_| EvalDecision::default();
        let whole = run(&p, 0, None, never);
        let first = run(&p, 0, Some(23), never);
        assert_eq!(first.last(), Some(&(23, Action::Stop(Stop::Preempted))));
        let resumed = run(&p, 23, None, never);
        let tail: Vec<_> = whole.iter().filter(|(s, _)| *s > 23).copied().collect();
        assert_eq!(resumed, tail);
        assert_eq!(p.at_start(23, Owed::default()), []);
    }

    #[test]
    fn a_run_resumed_at_its_last_step_has_nothing_left() {
        let p = plan();
        assert_eq!(
            p.at_start(40, Owed::default()),
            [Action::Stop(Stop::Completed)]
        );
        assert_eq!(p.at_start(0, Owed::default()), []);
    }

    /// Regression (#32): the last checkpoint came before the export, and a run
    /// resumed from it stopped at once, so a failed or interrupted export was lost.
    #[test]
    fn the_last_checkpoint_owes_the_export_and_a_resumed_run_pays_it_before_stopping() {
        let p = plan();
        let last = p.after_step(40, false);
        assert_eq!(last, [Log, Evaluate]);
        let rest = p.after_eval(40, EvalDecision::default());
        assert_eq!(rest, [Checkpoint, Export, Action::Stop(Stop::Completed)]);
        let owed = owed_after(&rest, 0);
        assert_eq!(
            owed,
            Owed {
                export: true,
                finished: Some(Stop::Completed)
            }
        );
        assert_eq!(
            p.at_start(40, owed),
            [Export, Action::Stop(Stop::Completed)]
        );
    }

    #[test]
    fn early_stopping_is_remembered_and_an_export_before_the_checkpoint_is_not_owed() {
        let p = LoopPlan {
            export_at_end: false,
            ..plan()
        };
        let stop = EvalDecision {
            stop_early: true,
            export: true,
        };
        let rest = p.after_eval(20, stop);
        assert_eq!(rest, [Export, Checkpoint, Action::Stop(Stop::EarlyStopped)]);
        let owed = owed_after(&rest, 1);
        assert!(!owed.export);
        assert_eq!(owed.finished, Some(Stop::EarlyStopped));
        // Resumed at step 20 < 40: an early-stopped run does not train again.
        assert_eq!(p.at_start(20, owed), [Action::Stop(Stop::EarlyStopped)]);
        // A periodic checkpoint owes nothing; neither does a preemption's.
        assert_eq!(owed_after(&p.after_step(10, false), 1), Owed::default());
        let pre = p.after_step(13, true);
        assert_eq!(owed_after(&pre, 0), Owed::default());
    }

    #[test]
    fn histograms_follow_their_own_interval() {
        let p = LoopPlan {
            histogram_every: Some(3),
            ..plan()
        };
        assert_eq!(p.after_step(3, false), [Histogram]);
        assert_eq!(p.after_step(15, false), [Log, Histogram]);
    }

    #[test]
    fn from_config_reads_the_schedule_and_guards_zero_intervals() {
        let mut cfg = RunConfig::default();
        cfg.logging.interval = 0;
        cfg.train.eval_every = Some(7);
        cfg.checkpoint.every_steps = Some(0);
        cfg.export.when = ExportWhen::Best;
        let p = LoopPlan::from_config(&cfg, 30, true);
        assert_eq!(p.log_every, 1);
        assert_eq!(p.eval_every, Some(7));
        assert_eq!(p.checkpoint_every, Some(1));
        assert!(!p.export_at_end);
    }
}
