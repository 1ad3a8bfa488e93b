//! Learning-rate schedules: linear warmup, then constant, linear or cosine decay
//! to zero at the last step (the shapes of Hugging Face's `get_*_schedule_with_warmup`).
//!
//! A pure function of the step, so a resumed run needs no scheduler state beyond
//! the step itself — which is why the checkpoint stores only the step.

use serde::{Deserialize, Serialize};

use vigil_config::Schedule;

/// A schedule over `total_steps` optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Shape after warmup.
    pub kind: Schedule,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
}

impl LrSchedule {
    /// The multiplier of the base learning rate for optimizer step `step` (0-based:
    /// the step about to be taken).
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).clamp(0.0, 1.0);
        match self.kind {
            Schedule::Constant => 1.0,
            Schedule::Linear => 1.0 - progress,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }

    /// The learning rate for `step` given a base rate.
    pub fn lr(&self, base: f64, step: u64) -> f64 {
        base * self.factor(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(kind: Schedule) -> LrSchedule {
        LrSchedule {
            kind,
            warmup_steps: 4,
            total_steps: 104,
        }
    }

    #[test]
    fn warmup_rises_linearly_and_never_starts_at_zero() {
        let sc = s(Schedule::Constant);
        let f: Vec<f64> = (0..5).map(|i| sc.factor(i)).collect();
        assert_eq!(f, vec![0.2, 0.4, 0.6, 0.8, 1.0]);
    }

    #[test]
    fn decays_reach_zero_at_the_end() {
        assert_eq!(s(Schedule::Linear).factor(54), 0.5);
        assert!(s(Schedule::Linear).factor(104).abs() < 1e-12);
        assert!((s(Schedule::Cosine).factor(54) - 0.5).abs() < 1e-12);
        assert!(s(Schedule::Cosine).factor(104).abs() < 1e-12);
        assert_eq!(s(Schedule::Constant).factor(1000), 1.0);
    }

    #[test]
    fn no_warmup_starts_at_full_rate() {
        let sc = LrSchedule {
            kind: Schedule::Cosine,
            warmup_steps: 0,
            total_steps: 10,
        };
        assert_eq!(sc.lr(1e-3, 0), 1e-3);
    }
}
