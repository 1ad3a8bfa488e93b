//! [`ReportInput::from_run_dir`]: a report from a run directory, read one file
//! (or one kind of file) per step — the config, the chosen evaluation's scores,
//! the evaluations over steps, the logs, the gate's decision and the champion's
//! scores — and the facts shown about the run.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{BURN_VERSION, EvalPoint, ReportInput, malformed, read, skipped_rows, train_loss};
use crate::error::ReportError;
use vigil_config::Task;
use vigil_eval::EvalReport;
use vigil_eval::scored::{CHAMPION_SCORES, ScoredRows, scores_file_name};
use vigil_eval::{DECISION_FILE, Decision};

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
        let config = ConfigFile::load(dir)?;
        let eval_dir = dir.join("eval");
        let steps = eval_steps(&eval_dir);
        let step = choose_step(dir, &eval_dir, &steps, step)?;
        let scores_path = scores_path(dir, &eval_dir, step)?;
        let rows = ScoredRows::read(&scores_path, &config.labels)?;
        let thresholds = shipped_thresholds(&rows);
        let History {
            points: history,
            run_name,
            evaluated_by,
        } = History::load(&eval_dir, &steps, step)?;
        let train_loss = train_loss(&dir.join("tensorboard"))?;
        let skipped = skipped_rows(&dir.join("data").join("rejects.jsonl"))?;
        let decision = read_decision(&dir.join(DECISION_FILE))?;
        let champion = read_champion(
            &eval_dir.join(CHAMPION_SCORES),
            decision.as_ref(),
            &rows,
            &config.labels,
        )?;
        let run = run_name
            .or_else(|| config.run_name())
            .unwrap_or_else(|| "(unnamed)".into());
        let facts = run_facts(&run, dir, step, &config, &scores_path, evaluated_by);
        Ok(Self {
            title: format!("Vigil evaluation report: {run}, step {step}"),
            facts,
            config: Some(("config.resolved.yaml".into(), config.text)),
            skipped: Some(skipped),
            no_history: (history.is_empty() && train_loss.is_empty())
                .then(|| "the run logged no training or evaluation points".to_string()),
            history,
            train_loss,
            step: Some(step),
            task: config.task,
            thresholds,
            rows,
            decision,
            champion,
        })
    }
}

/// The run's `config.resolved.yaml`: its text, and what the report takes from it.
struct ConfigFile {
    /// The file's text, shown as is.
    text: String,
    /// The parsed file.
    yaml: serde_yaml_ng::Value,
    /// `model.labels`.
    labels: Vec<String>,
    /// `model.task` (the default when absent).
    task: Task,
}

impl ConfigFile {
    /// Reads `<dir>/config.resolved.yaml`, whose `model.labels` must be a list of
    /// names.
    fn load(dir: &Path) -> Result<Self, ReportError> {
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
        Ok(Self {
            text: config_text,
            yaml: config,
            labels,
            task,
        })
    }

    /// `run.name`, if set.
    fn run_name(&self) -> Option<String> {
        self.yaml
            .get("run")
            .and_then(|r| r.get("name"))
            .and_then(|n| n.as_str().map(str::to_string))
    }

    /// `data.<key>` as shown: `(not set)` when absent.
    fn data_file(&self, key: &str) -> String {
        self.yaml
            .get("data")
            .and_then(|d| d.get(key))
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "(not set)".into())
    }
}

/// The evaluations of the run, for an error that names none or the wrong one.
fn listing(steps: &[u64]) -> String {
    if steps.is_empty() {
        "no evaluation reports (eval/step-<S>.json): did the run set data.val and train.eval_every?"
            .to_string()
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
}

/// The evaluation reported on: `step` when the run has it, else the last one
/// with per-row scores.
fn choose_step(
    dir: &Path,
    eval_dir: &Path,
    steps: &[u64],
    step: Option<u64>,
) -> Result<u64, ReportError> {
    Ok(match step {
        Some(s) if steps.contains(&s) => s,
        Some(s) => {
            return Err(ReportError::NoEvaluation {
                dir: dir.to_path_buf(),
                message: format!("no evaluation at step {s} ({})", listing(steps)),
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
                    listing(steps)
                ),
            })?,
    })
}

/// `eval/step-<S>.scores.jsonl` of `step`, which must exist.
fn scores_path(dir: &Path, eval_dir: &Path, step: u64) -> Result<PathBuf, ReportError> {
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
    Ok(scores_path)
}

/// The shipped thresholds: the F1-optimal ones of the evaluation, per label.
fn shipped_thresholds(rows: &ScoredRows) -> Vec<f32> {
    let report = EvalReport::compute(&rows.scores());
    report.thresholds().into_iter().map(|(_, t)| t).collect()
}

/// The run's evaluations over steps, from every `eval/step-<S>.json`.
struct History {
    /// One point per evaluation, ascending.
    points: Vec<EvalPoint>,
    /// The run's name, as the last evaluation that names it records.
    run_name: Option<String>,
    /// The vigil version that made the chosen evaluation, if recorded.
    evaluated_by: Option<String>,
}

impl History {
    /// Reads the evaluations at `steps`; `step` is the one reported on.
    fn load(eval_dir: &Path, steps: &[u64], step: u64) -> Result<Self, ReportError> {
        let mut history = Vec::new();
        let mut run_name = None;
        let mut trained_with = None;
        for s in steps {
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
        Ok(Self {
            points: history,
            run_name,
            evaluated_by: trained_with,
        })
    }
}

/// The gate's champion/challenger decision (`export-decision.json`), if it ran.
fn read_decision(decision_path: &Path) -> Result<Option<Decision>, ReportError> {
    let decision: Option<Decision> = if decision_path.exists() {
        Some(
            serde_json::from_str(&read(decision_path)?)
                .map_err(|e| malformed(decision_path, e.to_string()))?,
        )
    } else {
        None
    };
    Ok(decision)
}

/// The champion's scores (`eval/champion.scores.jsonl`) when the gate compared
/// against a champion and scored it on the same rows as `rows`.
fn read_champion(
    champion_path: &Path,
    decision: Option<&Decision>,
    rows: &ScoredRows,
    labels: &[String],
) -> Result<Option<ScoredRows>, ReportError> {
    let gated = decision.is_some_and(|d| d.champion_version.is_some());
    let champion = if gated && champion_path.exists() {
        let c = ScoredRows::read(champion_path, labels)?;
        let same = c.rows.len() == rows.rows.len()
            && c.rows.iter().zip(&rows.rows).all(|(a, b)| a.id == b.id);
        same.then_some(c)
    } else {
        None
    };
    Ok(champion)
}

/// The facts shown about the run: its name and directory, the evaluation, the
/// config's task, labels and files, and the versions involved.
fn run_facts(
    run: &str,
    dir: &Path,
    step: u64,
    config: &ConfigFile,
    scores_path: &Path,
    evaluated_by: Option<String>,
) -> Vec<(String, String)> {
    vec![
        ("run".to_string(), run.to_string()),
        ("run directory".into(), dir.display().to_string()),
        ("evaluation step".into(), step.to_string()),
        ("task".into(), config.task.as_str().to_string()),
        ("labels".into(), config.labels.join(", ")),
        ("train file".into(), config.data_file("train")),
        ("validation file".into(), config.data_file("val")),
        ("per-row scores".into(), scores_path.display().to_string()),
        (
            "evaluated by".into(),
            evaluated_by.map_or_else(
                || "(not recorded: a run of an older vigil)".to_string(),
                |v| format!("vigil {v}"),
            ),
        ),
        (
            "report made by".into(),
            format!("vigil {}", env!("CARGO_PKG_VERSION")),
        ),
        ("model library".into(), format!("burn {BURN_VERSION}")),
    ]
}
