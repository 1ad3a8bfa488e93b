//! What a report is made of ([`ReportInput`]) and how it is read from a run
//! directory ([`ReportInput::from_run_dir`]); `vigil eval --html` builds one
//! from its own evaluation instead.
//!
//! From a run directory: `config.resolved.yaml` (labels, task, the config shown),
//! every `eval/step-<S>.json` (the curves over steps), the chosen step's
//! `eval/step-<S>.scores.jsonl` (everything per label), `tensorboard/` (the train
//! loss), `data/rejects.jsonl` (skipped rows), and `export-decision.json` with
//! `eval/champion.scores.jsonl` when the gate ran. The shipped thresholds are
//! the F1-optimal ones of the chosen evaluation: what an export at that step
//! writes to `thresholds.json`.
//!
//! # Layout
//! - `mod.rs`: the types, and the report of an export evaluation.
//! - `run_dir.rs`: [`ReportInput::from_run_dir`], one step per file it reads.
//! - `logs.rs`: what a run logged besides its evaluations (the train loss in
//!   `tensorboard/`, the skipped rows in `data/rejects.jsonl`).

mod logs;
mod run_dir;

use std::collections::BTreeMap;
use std::path::Path;

use super::error::ReportError;
use vigil_config::Task;
use vigil_eval::Decision;
use vigil_eval::ModelEvaluation;
use vigil_eval::scored::ScoredRows;

pub use logs::{skipped_rows, train_loss};
pub use run_dir::eval_steps;

/// One evaluation of the run, for the curves over steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalPoint {
    /// The step.
    pub step: u64,
    /// Validation loss.
    pub loss: Option<f64>,
    /// Macro AUROC.
    pub macro_auroc: Option<f64>,
    /// Macro AUPRC.
    pub macro_auprc: Option<f64>,
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// The page title.
    pub title: String,
    /// `(name, value)` facts about the run or export (run name, step, files, versions).
    pub facts: Vec<(String, String)>,
    /// The config shown: `(file name, text)`.
    pub config: Option<(String, String)>,
    /// Skipped rows by `(split, kind)`, when known.
    pub skipped: Option<BTreeMap<(String, String), usize>>,
    /// Evaluations over steps (empty for an export evaluation).
    pub history: Vec<EvalPoint>,
    /// Train loss over steps (empty when not logged).
    pub train_loss: Vec<(u64, f64)>,
    /// Why there are no curves over steps, when there are none.
    pub no_history: Option<String>,
    /// The evaluation reported on (its step), if from a run.
    pub step: Option<u64>,
    /// Multi-label (thresholds) or multi-class (argmax).
    pub task: Task,
    /// The shipped threshold per label.
    pub thresholds: Vec<f32>,
    /// The scored validation rows.
    pub rows: ScoredRows,
    /// The champion/challenger decision, if the gate ran.
    pub decision: Option<Decision>,
    /// The champion's scores on the same rows, if the gate scored it.
    pub champion: Option<ScoredRows>,
}

fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn malformed(path: &Path, message: impl Into<String>) -> ReportError {
    ReportError::Malformed {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl ReportInput {
    /// The report of `vigil eval --html`: one export version on one labelled
    /// file; no curves over steps, no gate decision, the version's own
    /// thresholds.
    pub fn from_evaluation(
        eval: &ModelEvaluation,
        rows: ScoredRows,
        config_json: Option<String>,
    ) -> Self {
        let task = if eval.task == Task::MultiClass.as_str() {
            Task::MultiClass
        } else {
            Task::MultiLabel
        };
        let thresholds = rows
            .labels
            .iter()
            .map(|l| eval.thresholds.get(l).copied().unwrap_or(0.5))
            .collect();
        let facts = vec![
            (
                "model version".to_string(),
                eval.model.display().to_string(),
            ),
            ("version".into(), eval.version.to_string()),
            ("data file".into(), eval.data.display().to_string()),
            ("task".into(), eval.task.to_string()),
            ("labels".into(), rows.labels.join(", ")),
            (
                "report made by".into(),
                format!("vigil {} (vigil eval --html)", env!("CARGO_PKG_VERSION")),
            ),
            ("model library".into(), format!("burn {BURN_VERSION}")),
        ];
        Self {
            title: format!(
                "Vigil evaluation report: version {} on {}",
                eval.version,
                eval.data.file_name().map_or_else(|| eval.data.display().to_string(), |n| n.to_string_lossy().into_owned())
            ),
            facts,
            config: config_json.map(|c| ("config.json".to_string(), c)),
            skipped: None,
            history: Vec::new(),
            train_loss: Vec::new(),
            no_history: Some(
                "an export evaluation has no training history (vigil report RUN_DIR on the run that trained it has)".into(),
            ),
            step: None,
            task,
            thresholds,
            rows,
            decision: None,
            champion: None,
        }
    }
}

/// The burn version Vigil is built against (pinned in the workspace).
pub const BURN_VERSION: &str = "0.21.0";
