//! [`MemoryLogger`] records what was logged, for tests of the training loop;
//! [`NullLogger`] is what ranks that do not log write to.
//!
//! The memory logger shares its record list between clones, so a test keeps one
//! clone and hands the other to the code under test as `Box<dyn MetricLogger>`.
//! [`MemoryLogger::scalar_series`] applies TensorBoard's resume rule (a
//! `session_start(S)` supersedes earlier points at steps `>= S`), so a resume test
//! can assert what a reviewer would see.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::base::MetricLogger;
use crate::error::Error;
use crate::histogram::Histogram;
use crate::hparams::{HParamsStart, RunStatus};
use crate::pr_curve::{PrCurve, logged_curve};

/// One call to a [`MemoryLogger`].
#[derive(Debug, Clone, PartialEq)]
pub enum Logged {
    /// A scalar.
    Scalar {
        /// Tag.
        tag: String,
        /// Step.
        step: u64,
        /// Value.
        value: f64,
    },
    /// A histogram, as it would be written.
    Histogram {
        /// Tag.
        tag: String,
        /// Step.
        step: u64,
        /// Buckets and statistics.
        histogram: Histogram,
    },
    /// Text.
    Text {
        /// Tag.
        tag: String,
        /// Step.
        step: u64,
        /// Markdown.
        markdown: String,
    },
    /// A PR curve, as it would be written.
    PrCurve {
        /// Tag.
        tag: String,
        /// Step.
        step: u64,
        /// The curve.
        curve: PrCurve,
    },
    /// An encoded image.
    Image {
        /// Tag.
        tag: String,
        /// Step.
        step: u64,
        /// PNG bytes.
        png: Vec<u8>,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// `hparams_start`.
    HParamsStart(HParamsStart),
    /// `hparams_end`.
    HParamsEnd {
        /// Step.
        step: u64,
        /// Status.
        status: RunStatus,
    },
    /// `session_start`.
    SessionStart {
        /// Step.
        step: u64,
    },
    /// `flush`.
    Flush,
    /// `sync`.
    Sync,
}

impl Logged {
    fn step(&self) -> Option<u64> {
        match self {
            Self::Scalar { step, .. }
            | Self::Histogram { step, .. }
            | Self::Text { step, .. }
            | Self::PrCurve { step, .. }
            | Self::Image { step, .. }
            | Self::HParamsEnd { step, .. } => Some(*step),
            _ => None,
        }
    }
}

/// Records every call; clones share the records.
#[derive(Debug, Clone, Default)]
pub struct MemoryLogger {
    records: Arc<Mutex<Vec<Logged>>>,
}

impl MemoryLogger {
    /// An empty logger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Logged>> {
        // A test that panicked while logging poisons the lock; the records are
        // still what they were.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, logged: Logged) {
        self.lock().push(logged);
    }

    /// Everything logged, in order.
    pub fn records(&self) -> Vec<Logged> {
        self.lock().clone()
    }

    /// Records TensorBoard would still show: each `session_start(S)` drops the
    /// step-carrying records before it with steps `>= S`.
    pub fn visible(&self) -> Vec<Logged> {
        let mut out: Vec<Logged> = Vec::new();
        for r in self.lock().iter() {
            if let Logged::SessionStart { step } = r {
                out.retain(|o| o.step().is_none_or(|s| s < *step));
            }
            out.push(r.clone());
        }
        out
    }

    /// `(step, value)` of a scalar tag as TensorBoard would draw it.
    pub fn scalar_series(&self, tag: &str) -> Vec<(u64, f64)> {
        self.visible()
            .into_iter()
            .filter_map(|r| match r {
                Logged::Scalar {
                    tag: t,
                    step,
                    value,
                } if t == tag => Some((step, value)),
                _ => None,
            })
            .collect()
    }

    /// Scalar tags logged so far.
    pub fn scalar_tags(&self) -> BTreeSet<String> {
        self.lock()
            .iter()
            .filter_map(|r| match r {
                Logged::Scalar { tag, .. } => Some(tag.clone()),
                _ => None,
            })
            .collect()
    }
}

impl MetricLogger for MemoryLogger {
    fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), Error> {
        let mut records = self.lock();
        for (tag, value) in values {
            records.push(Logged::Scalar {
                tag: (*tag).to_owned(),
                step,
                value: *value,
            });
        }
        Ok(())
    }

    fn histogram(&mut self, tag: &str, step: u64, values: &[f32]) -> Result<(), Error> {
        let histogram = Histogram::from_values(values).ok_or_else(|| Error::EmptyHistogram {
            tag: tag.to_owned(),
            step,
        })?;
        self.push(Logged::Histogram {
            tag: tag.to_owned(),
            step,
            histogram,
        });
        Ok(())
    }

    fn text(&mut self, tag: &str, step: u64, markdown: &str) -> Result<(), Error> {
        self.push(Logged::Text {
            tag: tag.to_owned(),
            step,
            markdown: markdown.to_owned(),
        });
        Ok(())
    }

    fn image(
        &mut self,
        tag: &str,
        step: u64,
        png: &[u8],
        width: u32,
        height: u32,
    ) -> Result<(), Error> {
        self.push(Logged::Image {
            tag: tag.to_owned(),
            step,
            png: png.to_vec(),
            width,
            height,
        });
        Ok(())
    }

    fn pr_curve(
        &mut self,
        tag: &str,
        step: u64,
        labels: &[bool],
        scores: &[f32],
        num_thresholds: u32,
    ) -> Result<(), Error> {
        let curve = logged_curve(tag, step, labels, scores, num_thresholds)?;
        self.push(Logged::PrCurve {
            tag: tag.to_owned(),
            step,
            curve,
        });
        Ok(())
    }

    fn hparams_start(&mut self, start: &HParamsStart) -> Result<(), Error> {
        self.push(Logged::HParamsStart(start.clone()));
        Ok(())
    }

    fn hparams_end(&mut self, step: u64, status: RunStatus) -> Result<(), Error> {
        self.push(Logged::HParamsEnd { step, status });
        Ok(())
    }

    fn session_start(&mut self, step: u64) -> Result<(), Error> {
        self.push(Logged::SessionStart { step });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.push(Logged::Flush);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.push(Logged::Sync);
        Ok(())
    }
}

/// Logs nothing: for ranks that do not log, or when logging is turned off.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullLogger;

impl MetricLogger for NullLogger {
    fn scalars(&mut self, _: u64, _: &[(&str, f64)]) -> Result<(), Error> {
        Ok(())
    }
    fn histogram(&mut self, _: &str, _: u64, _: &[f32]) -> Result<(), Error> {
        Ok(())
    }
    fn text(&mut self, _: &str, _: u64, _: &str) -> Result<(), Error> {
        Ok(())
    }
    fn pr_curve(&mut self, _: &str, _: u64, _: &[bool], _: &[f32], _: u32) -> Result<(), Error> {
        Ok(())
    }
    fn hparams_start(&mut self, _: &HParamsStart) -> Result<(), Error> {
        Ok(())
    }
    fn hparams_end(&mut self, _: u64, _: RunStatus) -> Result<(), Error> {
        Ok(())
    }
    fn session_start(&mut self, _: u64) -> Result<(), Error> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
    fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_records_and_resume_supersedes_later_steps() {
        let probe = MemoryLogger::new();
        let mut logger: Box<dyn MetricLogger> = Box::new(probe.clone());
        logger.session_start(0).unwrap();
        for step in 0..6 {
            logger.scalar("train/loss", step, step as f64).unwrap();
        }
        // Crash after step 5; resume from the checkpoint at step 3.
        logger.session_start(3).unwrap();
        for step in 3..5 {
            logger
                .scalar("train/loss", step, 10.0 + step as f64)
                .unwrap();
        }
        assert_eq!(
            probe.scalar_series("train/loss"),
            vec![(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0)]
        );
        assert_eq!(probe.scalar_tags().len(), 1);
    }

    #[test]
    fn inputs_are_checked_like_the_real_writer() {
        let mut logger = MemoryLogger::new();
        assert!(matches!(
            logger.pr_curve("pr", 1, &[true], &[0.1, 0.2], 5),
            Err(Error::PrCurve { .. })
        ));
        assert!(matches!(
            logger.histogram("h", 1, &[]),
            Err(Error::EmptyHistogram { .. })
        ));
        assert!(logger.records().is_empty());
    }
}
