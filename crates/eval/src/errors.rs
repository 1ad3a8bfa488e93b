//! The errors behind an evaluation: per label, the decisions at the *shipped*
//! thresholds (`thresholds.json`; argmax for multi-class models) give a confusion
//! count and the top-N false positives (highest scores first: the most confident
//! wrong flags) and false negatives (lowest scores first: the most confidently
//! missed items), with ids. `vigil eval` writes them ([`ModelEvaluation`]) and the
//! report shows them. Rows whose label is unknown are in no list, as they are in
//! no metric.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::rank::decisions;
use vigil_config::Task;

use crate::{EvalReport, Scores};

/// One misclassified row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    /// The row's id.
    pub id: String,
    /// The label's probability.
    pub score: f32,
}

/// Confusion counts at the shipped decision rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Flagged, positive.
    pub tp: u64,
    /// Flagged, negative.
    pub fp: u64,
    /// Not flagged, negative.
    pub tn: u64,
    /// Not flagged, positive.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// A label's errors at the shipped threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelErrors {
    /// Label name.
    pub label: String,
    /// The shipped threshold (multi-label), or `None` (multi-class: argmax).
    pub threshold: Option<f32>,
    /// `"threshold"` (score ≥ threshold) or `"argmax"`.
    pub decision: &'static str,
    /// Counts over rows where the label is known.
    pub counts: Confusion,
    /// Top-N false positives, highest score first.
    pub false_positives: Vec<Miss>,
    /// Top-N false negatives, lowest score first.
    pub false_negatives: Vec<Miss>,
}

/// The result of `vigil eval`: what `--output` writes.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEvaluation {
    /// The version directory evaluated.
    pub model: PathBuf,
    /// Its version number.
    pub version: u64,
    /// The data file.
    pub data: PathBuf,
    /// `multi_label` or `multi_class`.
    pub task: &'static str,
    /// The shipped thresholds, by label.
    pub thresholds: BTreeMap<String, f32>,
    /// Every metric of every label, macro and micro averages.
    pub report: EvalReport,
    /// Per label, in label order: confusion at the shipped thresholds, top errors.
    pub errors: Vec<LabelErrors>,
}

impl ModelEvaluation {
    /// The report table followed by each label's errors, for the console.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} (version {}) on {}: {} rows\n{}",
            self.model.display(),
            self.version,
            self.data.display(),
            self.report.rows,
            self.report.table()
        );
        s.push_str("\nat the shipped thresholds:\n");
        for e in &self.errors {
            let rule = e
                .threshold
                .map_or("argmax".to_string(), |t| format!("≥ {t:.3}"));
            s.push_str(&format!(
                "{:<14} {:<9} tp {:>4}  fp {:>4}  tn {:>4}  fn {:>4}\n",
                e.label, rule, e.counts.tp, e.counts.fp, e.counts.tn, e.counts.fn_
            ));
            for (what, list) in [("FP", &e.false_positives), ("FN", &e.false_negatives)] {
                if !list.is_empty() {
                    let items: Vec<String> = list
                        .iter()
                        .map(|m| format!("{} ({:.3})", m.id, m.score))
                        .collect();
                    s.push_str(&format!("    top {what}: {}\n", items.join(", ")));
                }
            }
        }
        s
    }
}

/// Per label: confusion counts at the decision rule and the `top` worst false
/// positives and negatives. Pure; rows with an unknown label are skipped.
pub fn label_errors(
    ids: &[String],
    scores: &Scores,
    thresholds: &[f32],
    task: Task,
    top: usize,
) -> Vec<LabelErrors> {
    let n = scores.labels.len();
    let rows = scores.rows();
    let flags: Vec<Vec<bool>> = (0..rows)
        .map(|r| decisions(&scores.probs[r * n..(r + 1) * n], thresholds, task))
        .collect();
    (0..n)
        .map(|l| {
            let mut counts = Confusion::default();
            let (mut fps, mut fns) = (Vec::new(), Vec::new());
            for (r, row_flags) in flags.iter().enumerate() {
                let i = r * n + l;
                if !scores.known[i] {
                    continue;
                }
                let miss = || Miss {
                    id: ids[r].clone(),
                    score: scores.probs[i],
                };
                match (row_flags[l], scores.targets[i] >= 0.5) {
                    (true, true) => counts.tp += 1,
                    (true, false) => {
                        counts.fp += 1;
                        fps.push(miss());
                    }
                    (false, false) => counts.tn += 1,
                    (false, true) => {
                        counts.fn_ += 1;
                        fns.push(miss());
                    }
                }
            }
            // Stable sorts: equal scores keep file order.
            fps.sort_by(|a, b| b.score.total_cmp(&a.score));
            fns.sort_by(|a, b| a.score.total_cmp(&b.score));
            fps.truncate(top);
            fns.truncate(top);
            LabelErrors {
                label: scores.labels[l].clone(),
                threshold: (task == Task::MultiLabel).then(|| thresholds[l]),
                decision: match task {
                    Task::MultiLabel => "threshold",
                    Task::MultiClass => "argmax",
                },
                counts,
                false_positives: fps,
                false_negatives: fns,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}")).collect()
    }

    #[test]
    fn false_positives_and_negatives_at_the_shipped_threshold() {
        // One label "a", threshold 0.3; rows: (p, target, known).
        let rows = [
            (0.9, 0.0, true),   // FP
            (0.35, 0.0, true),  // FP (≥ 0.3)
            (0.3, 1.0, true),   // TP (inclusive)
            (0.1, 1.0, true),   // FN
            (0.25, 1.0, true),  // FN
            (0.95, 0.0, false), // unknown: skipped
            (0.05, 0.0, true),  // TN
        ];
        let scores = Scores {
            labels: vec!["a".into()],
            probs: rows.iter().map(|r| r.0).collect(),
            targets: rows.iter().map(|r| r.1).collect(),
            known: rows.iter().map(|r| r.2).collect(),
        };
        let e = &label_errors(&ids(rows.len()), &scores, &[0.3], Task::MultiLabel, 10)[0];
        assert_eq!(
            e.counts,
            Confusion {
                tp: 1,
                fp: 2,
                tn: 1,
                fn_: 2
            }
        );
        let fp: Vec<&str> = e.false_positives.iter().map(|m| m.id.as_str()).collect();
        let fnn: Vec<&str> = e.false_negatives.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(fp, ["r0", "r1"]);
        assert_eq!(fnn, ["r3", "r4"]);
        let e = &label_errors(&ids(rows.len()), &scores, &[0.3], Task::MultiLabel, 1)[0];
        assert_eq!(e.false_positives.len(), 1);
        assert_eq!(e.false_negatives[0].id, "r3");
        assert_eq!(e.counts.fp, 2, "counts are over all rows, not the top N");
    }

    #[test]
    fn multi_class_errors_follow_the_argmax() {
        // Two classes; row 0 predicts b (true a): FN for a, FP for b.
        let scores = Scores {
            labels: vec!["a".into(), "b".into()],
            probs: vec![0.4, 0.6, 0.7, 0.3],
            targets: vec![1.0, 0.0, 1.0, 0.0],
            known: vec![true; 4],
        };
        let e = label_errors(&ids(2), &scores, &[0.9, 0.9], Task::MultiClass, 5);
        assert_eq!(e[0].decision, "argmax");
        assert_eq!(e[0].threshold, None);
        assert_eq!(
            e[0].counts,
            Confusion {
                tp: 1,
                fp: 0,
                tn: 0,
                fn_: 1
            }
        );
        assert_eq!(
            e[1].counts,
            Confusion {
                tp: 0,
                fp: 1,
                tn: 1,
                fn_: 0
            }
        );
        assert_eq!(e[1].false_positives[0].id, "r0");
        let json = serde_json::to_value(&e[0]).unwrap();
        assert_eq!(json["counts"]["fn"], 1);
    }
}
