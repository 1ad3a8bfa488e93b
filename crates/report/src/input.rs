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

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::error::ReportError;
use vigil_config::Task;
use vigil_eval::EvalReport;
use vigil_eval::ModelEvaluation;
use vigil_eval::scored::{CHAMPION_SCORES, ScoredRows, scores_file_name};
use vigil_eval::tags;
use vigil_eval::{DECISION_FILE, Decision};
use vigil_tensorboard::proto::event::What;
use vigil_tensorboard::proto::summary::value::Value as SummaryValue;
use vigil_tensorboard::proto::{SessionStatus, event};
use vigil_tensorboard::{event_files, read_event_file};

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

/// Steps of `eval/step-<S>.json` files in `eval_dir`, ascending.
pub fn eval_steps(eval_dir: &Path) -> Vec<u64> {
    let mut steps: Vec<u64> = std::fs::read_dir(eval_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("step-")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    steps.sort_unstable();
    steps
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

impl ReportInput {
    /// Reads a run directory; `step` picks the evaluation (default: the last one
    /// that has per-row scores).
    pub fn from_run_dir(dir: &Path, step: Option<u64>) -> Result<Self, ReportError> {
        let config_path = dir.join("config.resolved.yaml");
        let config_text = read(&config_path)?;
        let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&config_text)
            .map_err(|e| malformed(&config_path, e.to_string()))?;
        let labels: Vec<String> = config
            .get("model")
            .and_then(|m| m.get("labels"))
            .and_then(|l| serde_yaml_ng::from_value(l.clone()).ok())
            .ok_or_else(|| malformed(&config_path, "model.labels is not a list of names"))?;
        let task: Task = config
            .get("model")
            .and_then(|m| m.get("task"))
            .and_then(|t| serde_yaml_ng::from_value(t.clone()).ok())
            .unwrap_or_default();
        let text_of = |v: Option<&serde_yaml_ng::Value>| -> String {
            v.and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "(not set)".into())
        };
        let data = config.get("data");

        let eval_dir = dir.join("eval");
        let steps = eval_steps(&eval_dir);
        let listing = || {
            if steps.is_empty() {
                "no evaluation reports (eval/step-<S>.json): did the run set data.val and train.eval_every?".to_string()
            } else {
                format!(
                    "evaluations at steps {}",
                    steps
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        let step = match step {
            Some(s) if steps.contains(&s) => s,
            Some(s) => {
                return Err(ReportError::NoEvaluation {
                    dir: dir.to_path_buf(),
                    message: format!("no evaluation at step {s} ({})", listing()),
                });
            }
            None => *steps
                .iter()
                .rev()
                .find(|s| eval_dir.join(scores_file_name(**s)).exists())
                .ok_or_else(|| ReportError::NoEvaluation {
                    dir: dir.to_path_buf(),
                    message: format!(
                        "no per-row scores (eval/step-<S>.scores.jsonl) to report on; {}",
                        listing()
                    ),
                })?,
        };
        let scores_path = eval_dir.join(scores_file_name(step));
        if !scores_path.exists() {
            return Err(ReportError::NoEvaluation {
                dir: dir.to_path_buf(),
                message: format!(
                    "evaluation {step} has no per-row scores ({} is missing; runs of this version write it)",
                    scores_path.display()
                ),
            });
        }
        let rows = ScoredRows::read(&scores_path, &labels)?;
        let report = EvalReport::compute(&rows.scores());
        let thresholds = report.thresholds().into_iter().map(|(_, t)| t).collect();

        let mut history = Vec::new();
        let mut run_name = None;
        let mut trained_with = None;
        for s in &steps {
            let path = eval_dir.join(format!("step-{s}.json"));
            let v: Value =
                serde_json::from_str(&read(&path)?).map_err(|e| malformed(&path, e.to_string()))?;
            run_name = v["run"].as_str().map(str::to_string).or(run_name);
            if *s == step {
                trained_with = v["vigil_version"].as_str().map(str::to_string);
            }
            history.push(EvalPoint {
                step: *s,
                loss: number(&v["loss"]),
                macro_auroc: number(&v["report"]["macro_avg"]["auroc"]),
                macro_auprc: number(&v["report"]["macro_avg"]["auprc"]),
            });
        }
        let train_loss = train_loss(&dir.join("tensorboard"))?;
        let skipped = skipped_rows(&dir.join("data").join("rejects.jsonl"))?;

        let decision_path = dir.join(DECISION_FILE);
        let decision: Option<Decision> = if decision_path.exists() {
            Some(
                serde_json::from_str(&read(&decision_path)?)
                    .map_err(|e| malformed(&decision_path, e.to_string()))?,
            )
        } else {
            None
        };
        let champion_path = eval_dir.join(CHAMPION_SCORES);
        let gated = decision
            .as_ref()
            .is_some_and(|d| d.champion_version.is_some());
        let champion = if gated && champion_path.exists() {
            let c = ScoredRows::read(&champion_path, &labels)?;
            let same = c.rows.len() == rows.rows.len()
                && c.rows.iter().zip(&rows.rows).all(|(a, b)| a.id == b.id);
            same.then_some(c)
        } else {
            None
        };
        let run = run_name
            .or_else(|| {
                config
                    .get("run")
                    .and_then(|r| r.get("name"))
                    .and_then(|n| n.as_str().map(str::to_string))
            })
            .unwrap_or_else(|| "(unnamed)".into());
        let facts = vec![
            ("run".to_string(), run.clone()),
            ("run directory".into(), dir.display().to_string()),
            ("evaluation step".into(), step.to_string()),
            ("task".into(), task.as_str().to_string()),
            ("labels".into(), labels.join(", ")),
            (
                "train file".into(),
                text_of(data.and_then(|d| d.get("train"))),
            ),
            (
                "validation file".into(),
                text_of(data.and_then(|d| d.get("val"))),
            ),
            ("per-row scores".into(), scores_path.display().to_string()),
            (
                "evaluated by".into(),
                trained_with.map_or_else(
                    || "(not recorded: a run of an older vigil)".to_string(),
                    |v| format!("vigil {v}"),
                ),
            ),
            (
                "report made by".into(),
                format!("vigil {}", env!("CARGO_PKG_VERSION")),
            ),
            ("model library".into(), format!("burn {BURN_VERSION}")),
        ];
        Ok(Self {
            title: format!("Vigil evaluation report: {run}, step {step}"),
            facts,
            config: Some(("config.resolved.yaml".into(), config_text)),
            skipped: Some(skipped),
            no_history: (history.is_empty() && train_loss.is_empty())
                .then(|| "the run logged no training or evaluation points".to_string()),
            history,
            train_loss,
            step: Some(step),
            task,
            thresholds,
            rows,
            decision,
            champion,
        })
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

/// `train/loss` over steps from a run's event files, honouring `SessionLog
/// START` markers the way TensorBoard does: a restart at step S drops the points
/// at or after S that an earlier attempt logged. No directory: no points.
pub fn train_loss(tb_dir: &Path) -> Result<Vec<(u64, f64)>, ReportError> {
    if !tb_dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut points: BTreeMap<u64, f64> = BTreeMap::new();
    for file in event_files(tb_dir)? {
        for ev in read_event_file(&file)? {
            let step = u64::try_from(ev.step).unwrap_or(0);
            match ev.what {
                Some(What::SessionLog(s)) if s.status == SessionStatus::Start as i32 => {
                    points.retain(|&k, _| k < step);
                }
                Some(event::What::Summary(summary)) => {
                    for v in summary.value {
                        if v.tag == tags::TRAIN_LOSS
                            && let Some(SummaryValue::SimpleValue(x)) = v.value
                        {
                            points.insert(step, f64::from(x));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(points.into_iter().collect())
}

/// Skipped rows by `(split, kind)` from a run's `data/rejects.jsonl`; no file: none.
pub fn skipped_rows(path: &Path) -> Result<BTreeMap<(String, String), usize>, ReportError> {
    let mut counts = BTreeMap::new();
    if !path.exists() {
        return Ok(counts);
    }
    for (i, line) in read(path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| malformed(path, format!("line {}: {e}", i + 1)))?;
        let field = |k: &str| v[k].as_str().unwrap_or("?").to_string();
        *counts.entry((field("split"), field("kind"))).or_insert(0) += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_tensorboard::{MetricLogger, TensorBoardLogger, WriterOptions};

    #[test]
    fn train_loss_drops_what_a_crashed_attempt_logged_past_the_resume() {
        let dir = tempfile::tempdir().unwrap();
        let tb = dir.path().join("tensorboard");
        {
            let mut first = TensorBoardLogger::open(&tb, WriterOptions::default()).unwrap();
            first.session_start(0).unwrap();
            for (s, l) in [(5, 0.9), (10, 0.8), (15, 0.7)] {
                first
                    .scalars(s, &[(tags::TRAIN_LOSS, l), ("train/lr", 1.0)])
                    .unwrap();
            }
            first.flush().unwrap();
        }
        {
            // Resumed from the step-10 checkpoint: step 15 is logged again.
            let mut second = TensorBoardLogger::open(&tb, WriterOptions::default()).unwrap();
            second.session_start(11).unwrap();
            for (s, l) in [(15, 0.6), (20, 0.5)] {
                second.scalars(s, &[(tags::TRAIN_LOSS, l)]).unwrap();
            }
            second.flush().unwrap();
        }
        let pts: Vec<(u64, f32)> = train_loss(&tb)
            .unwrap()
            .into_iter()
            .map(|(s, l)| (s, l as f32))
            .collect();
        assert_eq!(pts, vec![(5, 0.9), (10, 0.8), (15, 0.6), (20, 0.5)]);
        assert!(train_loss(&dir.path().join("none")).unwrap().is_empty());
    }

    #[test]
    fn skipped_rows_are_counted_by_split_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rejects.jsonl");
        std::fs::write(
            &path,
            "{\"split\":\"train\",\"kind\":\"no_content\"}\n\n{\"split\":\"train\",\"kind\":\"no_content\"}\n{\"split\":\"val\",\"kind\":\"malformed_json\"}\n",
        )
        .unwrap();
        let counts = skipped_rows(&path).unwrap();
        assert_eq!(counts[&("train".to_string(), "no_content".to_string())], 2);
        assert_eq!(
            counts[&("val".to_string(), "malformed_json".to_string())],
            1
        );
        assert!(skipped_rows(&dir.path().join("absent")).unwrap().is_empty());
        std::fs::write(&path, "not json\n").unwrap();
        assert!(
            skipped_rows(&path)
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
