//! Evaluation metrics of a multi-label moderation classifier.
//!
//! Policy teams read operating points, not just one number: per label we report
//! precision/recall/F1 at 0.5 and at the F1-optimal threshold (which the export
//! ships), AUROC, average precision, precision at recall 0.8 and 0.9, and
//! expected calibration error, plus macro and micro averages. Unknown labels are
//! excluded per label, and a metric that cannot be defined (no positives) is
//! reported as `"undefined"` rather than NaN.
//!
//! # Layout
//! - `curve.rs`: threshold sweeps over one label (pure functions).
//! - `calibration.rs`: reliability bins and the ECE they add up to (pure).
//! - `report.rs`: [`EvalReport`] over all labels, its JSON, scalars and table.
//! - `monitor.rs`: the one "is this value better" rule (early stopping, best
//!   checkpoints, best exports).

pub mod calibration;
mod curve;
pub mod monitor;
mod report;

pub use curve::{
    Counts, SweepPoint, auroc, average_precision, best_f1_threshold, expected_calibration_error,
    precision_at_recall, sweep,
};
pub use report::{Averages, EvalReport, LabelMetrics, Scores, Value};
