//! The logic of `vigil eval`: the training evaluation report for any exported
//! version on any labelled file, plus the errors behind it.
//!
//! The metrics are [`EvalReport::compute`] over the file's scores — the same
//! numbers training writes to `eval/step-<S>.json`. On top of them, per label,
//! the decisions at the *shipped* thresholds (`thresholds.json`; argmax for
//! multi-class models) give a confusion count and the top-N false positives
//! (highest scores first: the most confident wrong flags) and false negatives
//! (lowest scores first: the most confidently missed items), with ids, so a
//! reviewer can open the rows that cost the most. Rows whose label is unknown
//! are in neither list, as they are in no metric.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use vigil_eval::{EvalReport, ModelEvaluation, ScoredRows, label_errors};
use vigil_store::storage::Location;

use super::error::ServeError;
use super::served::ServedModel;

/// Options of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Model repository (or one version directory).
    pub model: Location,
    /// The version to use; `None`: the newest complete one.
    pub version: Option<u64>,
    /// Labelled JSONL in the export's `data.format`.
    pub data: PathBuf,
    /// False positives and negatives listed per label.
    pub top: usize,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// Batches scored side by side (`--threads`; the scores do not depend on it).
    pub threads: usize,
}

/// Evaluates `opts.model` on `opts.data`.
pub fn run_eval<B: Backend>(
    opts: &EvalOptions,
    device: &B::Device,
) -> Result<ModelEvaluation, ServeError> {
    Ok(run_eval_with_rows::<B>(opts, device)?.0)
}

/// [`run_eval`], plus the scored rows and the version's `config.json` text, which
/// `vigil eval --html` makes its report of.
pub fn run_eval_with_rows<B: Backend>(
    opts: &EvalOptions,
    device: &B::Device,
) -> Result<(ModelEvaluation, ScoredRows, Option<String>), ServeError> {
    let served = ServedModel::<B>::load(&opts.model, opts.version, device)?;
    let scored = served.score_file(&opts.data, opts.batch_size, opts.threads, device)?;
    let rows = ScoredRows::join_by_id(&scored.dataset, &scored.ids, &scored.scores).ok_or(
        ServeError::Internal {
            what: "the scored rows do not match the data file's rows",
        },
    )?;
    let config = std::fs::read_to_string(served.version.dir.join("config.json")).ok();
    let report = EvalReport::compute(&scored.scores);
    let errors = label_errors(
        &scored.ids,
        &scored.scores,
        &served.thresholds,
        served.task(),
        opts.top,
    );
    let evaluation = ModelEvaluation {
        model: served.version.dir.clone(),
        version: served.version.version,
        data: opts.data.clone(),
        task: served.task().as_str(),
        thresholds: served
            .labels()
            .iter()
            .cloned()
            .zip(served.thresholds.iter().copied())
            .collect(),
        report,
        errors,
    };
    Ok((evaluation, rows, config))
}
