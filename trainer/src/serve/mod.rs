//! Offline scoring with exported models: `vigil predict` and `vigil eval`.
//!
//! Both start from a model repository (`<export.dir>/<model_name>/`), pick a
//! verified version exactly as a serving process must (never a staging
//! directory, never a version whose manifest does not verify), load it on the
//! CPU backend, and read input rows through the data layer, so a file that
//! trains is a file that scores, with the same preprocessing.
//!
//! # Layout
//! - `locate.rs`: [`locate`] — `--model DIR [--version V]` to one verified version.
//! - `served.rs`: [`ServedModel`] — model, tokenizer, thresholds; scoring a file.
//! - `rank.rs`: decisions, uncertainty margins, review/annotation ordering (pure).
//! - `predict.rs`: [`run_predict`] — one JSON line per row.
//! - `eval.rs`: [`run_eval`] — the evaluation report plus top false positives and
//!   negatives at the shipped thresholds.
//! - `atomic.rs`: [`write_atomic`] — output files appear whole or not at all.
//! - `error.rs`: [`ServeError`].
//!
//! Why the whole file is scored before a byte is written: ranking needs every
//! score, and a bad row (`FILE:LINE: reason`) must leave no partial output. The
//! cost is memory proportional to the rows, which is small next to the model.

mod atomic;
mod error;
mod eval;
mod locate;
mod predict;
mod rank;
mod served;

pub use atomic::write_atomic;
pub use error::ServeError;
pub use eval::{
    Confusion, EvalOptions, LabelErrors, Miss, ModelEvaluation, label_errors, run_eval,
};
pub use locate::{ModelVersion, locate};
pub use predict::{PredictOptions, PredictSummary, run_predict};
pub use rank::{RankBy, decisions, margin, order};
pub use served::{Scored, ServedModel, THRESHOLDS_FILE, parse_thresholds, read_thresholds};
