//! [`TensorBoardLogger`]: the [`MetricLogger`] that writes event files, one file
//! per process lifetime in a run's log directory (in distributed training, on the
//! one rank that logs).

use std::path::Path;

use crate::base::MetricLogger;
use crate::error::Error;
use crate::histogram::Histogram;
use crate::hparams::{self, HParamsStart, RunStatus};
use crate::pr_curve::logged_curve;
use crate::summary::{histogram_value, image_value, pr_curve_value, scalar_value, text_value};
use crate::writer::{EventWriter, WriterOptions, wall_time};

/// Writes TensorBoard event files.
#[derive(Debug)]
pub struct TensorBoardLogger {
    writer: EventWriter,
}

impl TensorBoardLogger {
    /// Opens a new event file in `dir` (created if missing).
    pub fn open(dir: &Path, options: WriterOptions) -> Result<Self, Error> {
        Ok(Self {
            writer: EventWriter::create(dir, options)?,
        })
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        self.writer.path()
    }
}

impl MetricLogger for TensorBoardLogger {
    fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), Error> {
        if values.is_empty() {
            return Ok(());
        }
        let values = values
            .iter()
            .map(|(tag, v)| scalar_value(tag, *v))
            .collect();
        self.writer.write_summary(step, values)
    }

    fn histogram(&mut self, tag: &str, step: u64, values: &[f32]) -> Result<(), Error> {
        let h = Histogram::from_values(values).ok_or_else(|| Error::EmptyHistogram {
            tag: tag.to_owned(),
            step,
        })?;
        self.writer
            .write_summary(step, vec![histogram_value(tag, &h)])
    }

    fn text(&mut self, tag: &str, step: u64, markdown: &str) -> Result<(), Error> {
        self.writer
            .write_summary(step, vec![text_value(tag, markdown)])
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
        self.writer
            .write_summary(step, vec![pr_curve_value(tag, &curve)])
    }

    fn image(
        &mut self,
        tag: &str,
        step: u64,
        png: &[u8],
        width: u32,
        height: u32,
    ) -> Result<(), Error> {
        self.writer
            .write_summary(step, vec![image_value(tag, png, width, height, 3)])
    }

    fn hparams_start(&mut self, start: &HParamsStart) -> Result<(), Error> {
        self.writer
            .write_summary(0, hparams::start_values(start).into())
    }

    fn hparams_end(&mut self, step: u64, status: RunStatus) -> Result<(), Error> {
        self.writer
            .write_summary(step, vec![hparams::end_value(status, wall_time())])
    }

    fn session_start(&mut self, step: u64) -> Result<(), Error> {
        self.writer.session_start(step)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.writer.flush()
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.writer.sync()
    }
}
