//! Throughput accounting: where a training step's time goes (data wait, forward,
//! backward, all-reduce, optimizer) and samples per second, accumulated over a
//! logging interval. Users compare these splits to tell an input-bound run from a
//! communication-bound one.

use std::time::{Duration, Instant};

use serde::Serialize;

/// The phases of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the next batch from the loader.
    DataWait,
    /// Forward pass and loss.
    Forward,
    /// Backward pass.
    Backward,
    /// Gradient all-reduce (buffer fill, communication, write-back).
    AllReduce,
    /// Clipping and the optimizer update.
    Optimizer,
}

const PHASES: [Phase; 5] = [
    Phase::DataWait,
    Phase::Forward,
    Phase::Backward,
    Phase::AllReduce,
    Phase::Optimizer,
];

impl Phase {
    /// The logged name (`time/<name>_ms`).
    pub fn name(self) -> &'static str {
        match self {
            Self::DataWait => "data_wait",
            Self::Forward => "forward",
            Self::Backward => "backward",
            Self::AllReduce => "allreduce",
            Self::Optimizer => "optimizer",
        }
    }
}

/// Mean milliseconds per step of each phase and the samples/s of an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalStats {
    /// Steps in the interval.
    pub steps: u64,
    /// Samples processed by all ranks per second of wall time.
    pub samples_per_sec: f64,
    /// Mean wall time per step, in ms.
    pub step_ms: f64,
    /// `(phase name, mean ms per step)`.
    pub phases_ms: Vec<(&'static str, f64)>,
}

/// Accumulates phase times between two logging points.
#[derive(Debug)]
pub struct StepTimer {
    started: Instant,
    totals: [Duration; 5],
    steps: u64,
    samples: u64,
}

impl Default for StepTimer {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            totals: [Duration::ZERO; 5],
            steps: 0,
            samples: 0,
        }
    }
}

impl StepTimer {
    /// Runs `f`, adding its duration to `phase`.
    pub fn time<T>(&mut self, phase: Phase, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.add(phase, t.elapsed());
        out
    }

    /// Adds a measured duration to `phase`.
    pub fn add(&mut self, phase: Phase, d: Duration) {
        let i = PHASES
            .iter()
            .position(|p| *p == phase)
            .expect("every phase is listed");
        self.totals[i] += d;
    }

    /// Counts one finished optimizer step of `samples` samples (across all ranks).
    pub fn step_done(&mut self, samples: u64) {
        self.steps += 1;
        self.samples += samples;
    }

    /// The interval's figures; resets for the next interval.
    pub fn take(&mut self) -> IntervalStats {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let steps = self.steps.max(1) as f64;
        let stats = IntervalStats {
            steps: self.steps,
            samples_per_sec: self.samples as f64 / wall,
            step_ms: wall * 1e3 / steps,
            phases_ms: PHASES
                .iter()
                .zip(self.totals)
                .map(|(p, d)| (p.name(), d.as_secs_f64() * 1e3 / steps))
                .collect(),
        };
        *self = Self::default();
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_phases_per_step_and_resets() {
        let mut t = StepTimer::default();
        for _ in 0..2 {
            t.add(Phase::Forward, Duration::from_millis(10));
            t.add(Phase::AllReduce, Duration::from_millis(4));
            t.step_done(16);
        }
        let s = t.take();
        assert_eq!(s.steps, 2);
        assert_eq!(s.phases_ms[1], ("forward", 10.0));
        assert_eq!(s.phases_ms[3], ("allreduce", 4.0));
        assert!(s.samples_per_sec > 0.0);
        assert_eq!(t.take().steps, 0);
    }
}
