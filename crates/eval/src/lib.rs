//! Evaluation of a moderation classifier, free of burn: the metrics, the scored
//! rows they are computed from, the errors behind them, and the decisions built
//! on them (the export gate and schedule, ranking for review).
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
//!   exports; retention ranks with the same order, `vigil_store`'s `Ranking`).
//! - [`scored`]: [`ScoredRows`], the per-row scores files evaluation writes.
//! - [`errors`]: per-label confusion and top errors at the shipped thresholds
//!   ([`ModelEvaluation`], what `vigil eval` writes).
//! - [`rank`]: decisions at thresholds, margins, review-queue order.
//! - [`gate`]: the champion/challenger gate before an export is published.
//! - [`schedule`]: which evaluations export (`export.when`).
//! - [`tags`]: the TensorBoard tag names training writes and the report reads.

pub mod calibration;
mod curve;
pub mod errors;
pub mod gate;
pub mod monitor;
pub mod rank;
mod report;
pub mod schedule;
pub mod scored;
pub mod tags;

pub use curve::{
    Counts, SweepPoint, auroc, average_precision, best_f1_threshold, expected_calibration_error,
    precision_at_recall, sweep,
};
pub use errors::{Confusion, LabelErrors, Miss, ModelEvaluation, label_errors};
pub use gate::{Champion, DECISION_FILE, Decision, Outcome, decide};
pub use rank::{RankBy, decisions, margin, order};
pub use report::{Averages, EvalReport, LabelMetrics, Scores, Value};
pub use schedule::ExportSchedule;
pub use scored::{
    CHAMPION_SCORES, ScoredRow, ScoredRows, ScoresError, champion_scores_path, scores_file_name,
};
