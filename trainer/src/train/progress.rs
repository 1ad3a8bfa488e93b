//! Rank 0's console progress: an indicatif bar on a terminal, otherwise one JSON
//! object per logging interval (what cluster log collectors parse), or plain text.
//!
//! Under `vigil launch` a worker's stdout is a pipe, so `auto` picks JSON unless
//! the launcher says its own console is a terminal (`VIGIL_CONSOLE_TTY=1`), in
//! which case plain text lines read better behind the `[rank N]` prefix than a
//! redrawn bar would.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::LogFormat;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A redrawn progress bar (stdout is a terminal).
    Bar,
    /// One human-readable line per interval.
    Text,
    /// One JSON object per interval.
    Json,
}

impl ProgressMode {
    /// Resolves `logging.format` against where stdout goes.
    pub fn resolve(format: LogFormat, stdout_tty: bool, launcher_tty: bool) -> Self {
        match format {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
            LogFormat::Auto if stdout_tty => Self::Bar,
            LogFormat::Auto if launcher_tty => Self::Text,
            LogFormat::Auto => Self::Json,
        }
    }

    /// [`ProgressMode::resolve`] for this process.
    pub fn detect(format: LogFormat) -> Self {
        let launcher_tty = std::env::var("VIGIL_CONSOLE_TTY").is_ok_and(|v| v == "1");
        Self::resolve(format, std::io::stdout().is_terminal(), launcher_tty)
    }
}

/// One interval's progress, as printed (JSON keys are stable for log parsers).
#[derive(Debug, Clone, Serialize)]
pub struct ProgressRecord {
    /// Always `"train"`.
    pub event: &'static str,
    /// Optimizer steps done.
    pub step: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Mean loss over the interval.
    pub loss: f64,
    /// Encoder learning rate.
    pub lr: f64,
    /// Gradient global norm before clipping (last step).
    pub grad_norm: f64,
    /// Samples per second over all ranks.
    pub samples_per_sec: f64,
    /// Estimated seconds to the end.
    pub eta_s: f64,
    /// Collectives per optimizer step this process issued (1: gradients,
    /// counters and the stop flag share one all-reduce).
    pub collectives_per_step: f64,
    /// Mean milliseconds per step, by phase.
    pub time_ms: serde_json::Map<String, serde_json::Value>,
}

/// The progress display of rank 0.
pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts the display at `start_step` of `total_steps`.
    pub fn new(mode: ProgressMode, start_step: u64, total_steps: u64) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::new(total_steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
                )
                .expect("a valid template"),
            );
            bar.set_position(start_step);
            bar
        });
        Self { mode, bar }
    }

    /// Shows one interval.
    pub fn update(&self, r: &ProgressRecord) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_position(r.step);
                bar.set_message(format!(
                    "epoch {} loss {:.4} lr {:.2e} {:.1} samples/s",
                    r.epoch, r.loss, r.lr, r.samples_per_sec
                ));
            }
            (None, ProgressMode::Json) => {
                println!("{}", serde_json::to_string(r).expect("a record serializes"));
            }
            (None, _) => println!(
                "step {}/{} epoch {} loss {:.4} lr {:.2e} grad_norm {:.3} {:.1} samples/s eta {:.0}s",
                r.step,
                r.total_steps,
                r.epoch,
                r.loss,
                r.lr,
                r.grad_norm,
                r.samples_per_sec,
                r.eta_s
            ),
        }
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_a_bar_on_a_terminal_and_json_in_pipes() {
        assert_eq!(
            ProgressMode::resolve(LogFormat::Auto, true, false),
            ProgressMode::Bar
        );
        assert_eq!(
            ProgressMode::resolve(LogFormat::Auto, false, false),
            ProgressMode::Json
        );
        assert_eq!(
            ProgressMode::resolve(LogFormat::Auto, false, true),
            ProgressMode::Text
        );
        assert_eq!(
            ProgressMode::resolve(LogFormat::Json, true, true),
            ProgressMode::Json
        );
    }
}
