//! Early stopping on a monitored metric (`train.early_stopping`): a small state
//! machine fed one value per evaluation. Its state is saved in checkpoints so a
//! resumed run keeps counting patience where it left off.

use serde::{Deserialize, Serialize};

use vigil_config::{EarlyStopping, MonitorMode};
use vigil_eval::monitor::improves;

/// What one evaluation means for training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The metric improved by at least `min_delta`.
    Improved,
    /// No improvement; `left` more evaluations without one are tolerated.
    Wait {
        /// Evaluations left before stopping.
        left: u32,
    },
    /// Patience exhausted: stop training.
    Stop,
}

/// Early-stopping state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopper {
    mode: MonitorMode,
    patience: u32,
    min_delta: f64,
    /// Best value seen so far.
    pub best: Option<f64>,
    /// Evaluations since the last improvement.
    pub bad_evals: u32,
}

impl EarlyStopper {
    /// A fresh stopper for the configured rule.
    pub fn new(cfg: &EarlyStopping) -> Self {
        Self {
            mode: cfg.mode,
            patience: cfg.patience,
            min_delta: cfg.min_delta,
            best: None,
            bad_evals: 0,
        }
    }

    /// Feeds one evaluation's value (`None`: the metric was undefined, which counts
    /// as no improvement).
    pub fn observe(&mut self, value: Option<f64>) -> Verdict {
        let improved = improves(self.mode, value, self.best, self.min_delta);
        if improved {
            self.best = value;
            self.bad_evals = 0;
            return Verdict::Improved;
        }
        self.bad_evals += 1;
        if self.bad_evals >= self.patience {
            Verdict::Stop
        } else {
            Verdict::Wait {
                left: self.patience - self.bad_evals,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: MonitorMode) -> EarlyStopping {
        EarlyStopping {
            monitor: "val/macro_auroc".into(),
            mode,
            patience: 2,
            min_delta: 0.01,
        }
    }

    #[test]
    fn stops_after_patience_evaluations_without_improvement() {
        let mut s = EarlyStopper::new(&cfg(MonitorMode::Max));
        assert_eq!(s.observe(Some(0.70)), Verdict::Improved);
        assert_eq!(s.observe(Some(0.705)), Verdict::Wait { left: 1 }); // below min_delta
        assert_eq!(s.observe(Some(0.80)), Verdict::Improved);
        assert_eq!(s.observe(None), Verdict::Wait { left: 1 });
        assert_eq!(s.observe(Some(0.79)), Verdict::Stop);
        assert_eq!(s.best, Some(0.80));
    }

    #[test]
    fn min_mode_wants_lower_values() {
        let mut s = EarlyStopper::new(&cfg(MonitorMode::Min));
        assert_eq!(s.observe(Some(0.5)), Verdict::Improved);
        assert_eq!(s.observe(Some(0.3)), Verdict::Improved);
        assert_eq!(s.observe(Some(0.6)), Verdict::Wait { left: 1 });
    }
}
