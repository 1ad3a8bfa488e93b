//! When to export (`export.when`): a small state machine the training loop asks
//! after each evaluation and at the end.
//!
//! - `end`: once, after training.
//! - `every`: after every evaluation (the final evaluation included).
//! - `best`: after an evaluation that improves the best value so far of the
//!   ranking metric (`checkpoint.monitor`, else `export.gate.metric`); the first
//!   finite value counts as an improvement, NaN never does.
//!
//! Every export still goes through the gate when one is configured; this only
//! decides when to *try*.

use crate::monitor::improves;
use vigil_config::{ExportWhen, MonitorMode};

/// Decides when to export. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSchedule {
    when: ExportWhen,
    mode: MonitorMode,
    best: Option<f64>,
}

impl ExportSchedule {
    /// A schedule for `export.when`, ranking by a metric where `mode` is better.
    pub fn new(when: ExportWhen, mode: MonitorMode) -> Self {
        Self {
            when,
            mode,
            best: None,
        }
    }

    /// The same schedule resumed with the best value seen before a restart.
    pub fn with_best(mut self, best: Option<f64>) -> Self {
        self.best = best.filter(|b| b.is_finite());
        self
    }

    /// The best value seen so far (store it in the checkpoint for resume).
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// Called after each evaluation with the ranking metric's value; whether to
    /// export now.
    pub fn after_evaluation(&mut self, value: Option<f64>) -> bool {
        let improved = improves(self.mode, value, self.best, 0.0);
        if improved {
            self.best = value;
        }
        match self.when {
            ExportWhen::Every => true,
            ExportWhen::Best => improved,
            ExportWhen::End => false,
        }
    }

    /// Called once when training ends; whether to export the final model.
    pub fn at_end(&self) -> bool {
        self.when == ExportWhen::End
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_exports_once_at_the_end() {
        let mut s = ExportSchedule::new(ExportWhen::End, MonitorMode::Max);
        assert!(!s.after_evaluation(Some(0.9)));
        assert!(s.at_end());
    }

    #[test]
    fn every_exports_after_each_evaluation() {
        let mut s = ExportSchedule::new(ExportWhen::Every, MonitorMode::Max);
        assert!(s.after_evaluation(Some(0.5)));
        assert!(s.after_evaluation(Some(0.1)));
        assert!(s.after_evaluation(None));
        assert!(!s.at_end());
    }

    #[test]
    fn best_exports_on_strict_improvement_only() {
        let mut s = ExportSchedule::new(ExportWhen::Best, MonitorMode::Min);
        let got: Vec<bool> = [
            Some(f64::NAN),
            Some(0.5),
            Some(0.5),
            Some(0.6),
            Some(0.4),
            None,
        ]
        .into_iter()
        .map(|v| s.after_evaluation(v))
        .collect();
        assert_eq!(got, [false, true, false, false, true, false]);
        assert_eq!(s.best(), Some(0.4));
        assert!(!s.at_end());
    }

    #[test]
    fn a_resumed_schedule_remembers_the_best() {
        let mut s = ExportSchedule::new(ExportWhen::Best, MonitorMode::Max).with_best(Some(0.8));
        assert!(!s.after_evaluation(Some(0.7)));
        assert!(s.after_evaluation(Some(0.81)));
    }
}
