//! [`MetricLogger`]: what the training loop logs, independent of where it goes.
//!
//! Three implementations: [`TensorBoardLogger`](crate::TensorBoardLogger) (the rank
//! that logs), [`NullLogger`](crate::NullLogger) (every other rank: writes nothing) and
//! [`MemoryLogger`](crate::MemoryLogger) (tests). Inputs are checked the same way
//! by all of them, so a test with the memory logger catches a PR curve with
//! mismatched lengths just as the real writer would.
//!
//! Errors are returned, not swallowed: the training loop decides whether a failed
//! histogram is a warning (it should be) and a failed `sync` at a checkpoint an
//! error.

use crate::error::Error;
use crate::hparams::{HParamsStart, RunStatus};

/// Sink of training metrics, keyed by tag and global step.
pub trait MetricLogger: Send {
    /// Several scalars at one step (one event in TensorBoard's file).
    fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), Error>;

    /// One scalar.
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), Error> {
        self.scalars(step, &[(tag, value)])
    }

    /// A histogram of `values` in TensorFlow's default buckets (non-finite values
    /// are left out; none finite is [`Error::EmptyHistogram`]).
    fn histogram(&mut self, tag: &str, step: u64, values: &[f32]) -> Result<(), Error>;

    /// Markdown text (use [`code_block`](crate::code_block) for YAML).
    fn text(&mut self, tag: &str, step: u64, markdown: &str) -> Result<(), Error>;

    /// A PR curve of binary `labels` against `scores` in `[0, 1]` at
    /// `num_thresholds` evenly spaced thresholds.
    fn pr_curve(
        &mut self,
        tag: &str,
        step: u64,
        labels: &[bool],
        scores: &[f32],
        num_thresholds: u32,
    ) -> Result<(), Error>;

    /// An encoded PNG image (`width` × `height`, RGB) for the images dashboard.
    /// Loggers that keep no images ignore it.
    fn image(
        &mut self,
        tag: &str,
        step: u64,
        png: &[u8],
        width: u32,
        height: u32,
    ) -> Result<(), Error> {
        let _ = (tag, step, png, width, height);
        Ok(())
    }

    /// The HParams dashboard's experiment and this run's values, at step 0. Call it
    /// when training starts at step 0, after [`session_start`](Self::session_start);
    /// not on a resume (the dashboard keeps the first, and a second would be a
    /// duplicate step-0 point).
    fn hparams_start(&mut self, start: &HParamsStart) -> Result<(), Error>;

    /// The run's end status at its last step. Write `Failure` only when no restart
    /// follows: TensorBoard keeps the first end status a run wrote.
    fn hparams_end(&mut self, step: u64, status: RunStatus) -> Result<(), Error>;

    /// Marks a (re)start at `step`: data logged before with steps `>= step` is
    /// superseded. Call it first, with the first step this process will log: 0 when
    /// fresh, the checkpoint's step + 1 on a resume.
    fn session_start(&mut self, step: u64) -> Result<(), Error>;

    /// Makes everything logged so far visible to readers.
    fn flush(&mut self) -> Result<(), Error>;

    /// Flushes and makes everything logged so far durable (at checkpoints).
    fn sync(&mut self) -> Result<(), Error>;
}
