//! Which checkpoints to keep: a pure function from what exists to actions.
//!
//! `checkpoint.keep_last` N newest and `checkpoint.keep_best` K best by the
//! monitored metric are kept; everything else is deleted. The checkpoint named by
//! `LATEST` and the one just saved are never deleted, whatever the numbers say,
//! because resume depends on them. Like burn's `checkpoint/strategy`, the policy
//! returns `[Save(S), Delete(s)…]` and does no I/O, so every rule is unit-tested
//! here and [`CheckpointDir`](super::CheckpointDir) only carries the actions out
//! (deletions after the save and the `LATEST` update).

use std::cmp::Ordering;
use std::collections::BTreeSet;

/// Which metric values rank first (a run config's `monitor.mode`: `max` is
/// [`Ranking::HigherFirst`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ranking {
    /// Higher values are better.
    #[default]
    HigherFirst,
    /// Lower values are better.
    LowerFirst,
}

impl Ranking {
    /// Orders two finite values best first.
    pub fn best_first(self, a: f64, b: f64) -> Ordering {
        match self {
            Self::HigherFirst => b.total_cmp(&a),
            Self::LowerFirst => a.total_cmp(&b),
        }
    }
}

/// A stored checkpoint as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stored {
    /// Its optimizer step.
    pub step: u64,
    /// Its value of the monitored metric, if it was evaluated (NaN counts as none).
    pub metric: Option<f64>,
}

/// One thing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write the checkpoint of this step.
    Save(u64),
    /// Delete the checkpoint of this step.
    Delete(u64),
}

/// `keep_last` newest and `keep_best` best by a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Newest checkpoints kept.
    pub keep_last: usize,
    /// Best checkpoints kept by the monitored metric.
    pub keep_best: usize,
    /// Whether higher (`max`) or lower (`min`) metric values are better.
    pub mode: Ranking,
}

impl RetentionPolicy {
    /// The steps among `all` that are kept, given the step `LATEST` names and the
    /// step just saved (both always kept).
    pub fn keep(&self, all: &[Stored], latest: Option<u64>, new: Option<u64>) -> BTreeSet<u64> {
        let mut keep: BTreeSet<u64> = latest.into_iter().chain(new).collect();
        let mut by_step: Vec<u64> = all.iter().map(|s| s.step).collect();
        by_step.sort_unstable_by(|a, b| b.cmp(a));
        by_step.dedup();
        keep.extend(by_step.into_iter().take(self.keep_last));

        let mut ranked: Vec<(f64, u64)> = all
            .iter()
            .filter_map(|s| s.metric.filter(|m| m.is_finite()).map(|m| (m, s.step)))
            .collect();
        // Best first; on a tie the earlier step (the first to reach the value).
        ranked.sort_by(|(ma, sa), (mb, sb)| self.mode.best_first(*ma, *mb).then(sa.cmp(sb)));
        keep.extend(ranked.into_iter().take(self.keep_best).map(|(_, s)| s));
        keep
    }

    /// The actions after saving `new` (if any) when `existing` are stored and
    /// `LATEST` names `latest`: `Save(new)` first, then deletions in step order.
    /// A checkpoint of the same step as `new` is replaced, not deleted.
    pub fn plan(
        &self,
        existing: &[Stored],
        latest: Option<u64>,
        new: Option<Stored>,
    ) -> Vec<Action> {
        let mut all: Vec<Stored> = existing
            .iter()
            .filter(|s| Some(s.step) != new.map(|n| n.step))
            .copied()
            .collect();
        all.extend(new);
        let keep = self.keep(&all, latest, new.map(|n| n.step));
        let mut steps: Vec<u64> = all.iter().map(|s| s.step).collect();
        steps.sort_unstable();
        steps.dedup();
        new.map(|n| Action::Save(n.step))
            .into_iter()
            .chain(
                steps
                    .into_iter()
                    .filter(|s| !keep.contains(s))
                    .map(Action::Delete),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Delete, Save};

    fn policy(keep_last: usize, keep_best: usize, mode: Ranking) -> RetentionPolicy {
        RetentionPolicy {
            keep_last,
            keep_best,
            mode,
        }
    }

    fn stored(steps: &[(u64, Option<f64>)]) -> Vec<Stored> {
        steps
            .iter()
            .map(|&(step, metric)| Stored { step, metric })
            .collect()
    }

    fn plain(steps: &[u64]) -> Vec<Stored> {
        steps
            .iter()
            .map(|&step| Stored { step, metric: None })
            .collect()
    }

    #[test]
    fn ranking_puts_the_best_first() {
        let mut v = [0.2, 0.9, 0.5];
        v.sort_by(|a, b| Ranking::HigherFirst.best_first(*a, *b));
        assert_eq!(v, [0.9, 0.5, 0.2]);
        v.sort_by(|a, b| Ranking::LowerFirst.best_first(*a, *b));
        assert_eq!(v, [0.2, 0.5, 0.9]);
    }

    #[test]
    fn keep_last_deletes_the_oldest() {
        let p = policy(2, 0, Ranking::HigherFirst);
        let new = Stored {
            step: 40,
            metric: None,
        };
        assert_eq!(
            p.plan(&plain(&[10, 20, 30]), Some(40), Some(new)),
            vec![Save(40), Delete(10), Delete(20)]
        );
        assert_eq!(p.plan(&plain(&[10]), Some(10), Some(new)), vec![Save(40)]);
    }

    #[test]
    fn first_save_only_saves() {
        let p = policy(1, 0, Ranking::HigherFirst);
        let new = Stored {
            step: 5,
            metric: Some(0.5),
        };
        assert_eq!(p.plan(&[], None, Some(new)), vec![Save(5)]);
    }

    #[test]
    fn latest_is_never_deleted_even_when_old() {
        // LATEST still names 10 (the update of LATEST to 30 did not happen).
        let p = policy(1, 0, Ranking::HigherFirst);
        assert_eq!(
            p.plan(&plain(&[10, 20, 30]), Some(10), None),
            vec![Delete(20)]
        );
    }

    #[test]
    fn best_k_by_max_and_min() {
        let existing = stored(&[
            (10, Some(0.70)),
            (20, Some(0.90)),
            (30, Some(0.80)),
            (40, Some(0.60)),
        ]);
        let new = Stored {
            step: 50,
            metric: Some(0.65),
        };
        let max = policy(1, 2, Ranking::HigherFirst);
        assert_eq!(
            max.plan(&existing, Some(50), Some(new)),
            vec![Save(50), Delete(10), Delete(40)]
        );
        // LATEST still naming 40 protects it.
        assert_eq!(
            max.plan(&existing, Some(40), Some(new)),
            vec![Save(50), Delete(10)]
        );
        let min = policy(1, 2, Ranking::LowerFirst);
        assert_eq!(
            min.plan(&existing, Some(50), Some(new)),
            vec![Save(50), Delete(10), Delete(20), Delete(30)]
        );
    }

    #[test]
    fn a_best_checkpoint_survives_many_newer_ones() {
        let p = policy(2, 1, Ranking::HigherFirst);
        let mut existing = stored(&[(1, Some(0.99))]);
        let mut latest = Some(1);
        for step in 2..20u64 {
            let new = Stored {
                step,
                metric: Some(0.5),
            };
            let actions = p.plan(&existing, latest, Some(new));
            assert!(!actions.contains(&Delete(1)), "best deleted at {step}");
            existing.push(new);
            existing.retain(|s| !actions.contains(&Delete(s.step)));
            latest = Some(step);
        }
        let steps: Vec<u64> = existing.iter().map(|s| s.step).collect();
        assert_eq!(steps, vec![1, 18, 19]);
    }

    #[test]
    fn unevaluated_and_nan_checkpoints_are_not_ranked() {
        let p = policy(1, 1, Ranking::LowerFirst);
        let existing = stored(&[(10, Some(f64::NAN)), (20, None), (30, Some(0.4))]);
        assert_eq!(
            p.plan(
                &existing,
                Some(40),
                Some(Stored {
                    step: 40,
                    metric: None
                })
            ),
            vec![Save(40), Delete(10), Delete(20)]
        );
    }

    #[test]
    fn ties_keep_the_earlier_step() {
        let p = policy(1, 1, Ranking::HigherFirst);
        let existing = stored(&[(10, Some(0.5)), (20, Some(0.5)), (30, Some(0.1))]);
        assert_eq!(p.plan(&existing, Some(30), None), vec![Delete(20)]);
    }

    #[test]
    fn resaving_the_same_step_replaces_it() {
        let p = policy(2, 0, Ranking::HigherFirst);
        let new = Stored {
            step: 20,
            metric: None,
        };
        assert_eq!(
            p.plan(&plain(&[10, 20]), Some(20), Some(new)),
            vec![Save(20)]
        );
    }
}
