//! The evaluation report: one self-contained HTML page per evaluation (`vigil
//! report RUN_DIR`, `vigil eval … --html FILE`) with the run, curves over steps,
//! per-label PR/ROC curves and operating points, calibration, the top false
//! positives and negatives with their text and thumbnails, bootstrap intervals,
//! slice and bias metrics, and the champion/challenger decision.
//!
//! The report reads the per-row scores evaluation writes
//! (`eval/step-<S>.scores.jsonl`, [`vigil_eval::scored`]) instead of re-scoring an export:
//! it needs no model or backend, works on any past evaluation of a run, and
//! shows exactly the rows and numbers the run saw.
//!
//! # Layout
//! - `bootstrap.rs`, `slices.rs`: the metric pieces (pure); calibration bins are
//!   [`vigil_eval::calibration`], shared with the evaluation report's ECE.
//! - `charts.rs`: SVG charts (`plotters`); `thumbs.rs`: JPEG data-URI thumbnails.
//! - `input/`: what a report shows, read from a run directory.
//! - `html/`: the page, one file per section, written as `maud` templates so
//!   every value from data is escaped by construction.

pub mod bootstrap;
pub use vigil_eval::calibration;
pub mod charts;
mod error;
mod html;
mod input;
pub mod slices;
pub mod thumbs;

pub use bootstrap::{Bootstrap, Interval};
pub use error::ReportError;
pub use html::{ReportOptions, parse_slice_by, render, render_issues, render_recall};
pub use input::{BURN_VERSION, EvalPoint, ReportInput, eval_steps, skipped_rows, train_loss};

/// Writes `html` to `path` whole or not at all (temporary file, fsync, rename).
pub fn write_report(path: &std::path::Path, html: &str) -> Result<(), ReportError> {
    vigil_store::atomic::write_atomic(path, html.as_bytes()).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}
