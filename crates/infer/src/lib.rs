//! Offline use of exported models: `vigil predict`, `vigil eval` and `vigil embed`.
//!
//! `predict` and `eval` start from a model repository (`<export.dir>/<model_name>/`), pick a
//! verified version exactly as a serving process must (never a staging
//! directory, never a version whose manifest does not verify:
//! [`vigil_store::repo::locate`]), load it on the CPU backend, read input rows
//! through the data layer and score them with the same loop as training's
//! evaluation ([`score`]), so a file that trains is a file that scores, with the
//! same preprocessing. `embed` reads its rows through the data layer too, from
//! pretrained encoders or an export.
//!
//! # Layout
//! - [`cpu`]: the monomorphic CPU entry points the `vigil` binary calls.
//! - [`score`]: the scoring loop shared by training's evaluation and offline scoring.
//! - `served.rs`: [`ServedModel`] — model, tokenizer, thresholds; scoring a file.
//! - `predict.rs`: [`run_predict`] — one JSON line per row.
//! - `eval.rs`: [`run_eval`] — the evaluation report plus top false positives and
//!   negatives at the shipped thresholds ([`vigil_eval::errors`]).
//! - `embed.rs`: [`run_embed`] — vectors per row from encoders or an export.
//! - `output.rs`: [`write_output`] — output files appear whole or not at all
//!   ([`vigil_store::atomic`] underneath).
//! - `error.rs`: [`ServeError`].
//!
//! Why the whole file is scored before a byte is written: ranking needs every
//! score, and a bad row (`FILE:LINE: reason`) must leave no partial output. The
//! cost is memory proportional to the rows, which is small next to the model.

pub mod cpu;
mod embed;
mod error;
mod eval;
mod output;
mod predict;
pub mod score;
mod served;

pub use embed::{EmbedOptions, EmbedRows, EmbedSource, run_embed};
pub use error::ServeError;
pub use eval::{EvalOptions, run_eval, run_eval_with_rows};
pub use output::write_output;
pub use predict::{PredictOptions, PredictSummary, run_predict};
pub use served::{Scored, ServedModel};
