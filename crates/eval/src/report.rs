//! The evaluation report: per-label and averaged metrics over a validation set,
//! written to `eval/step-<S>.json`, logged as `val/...` scalars and printed as a
//! short table.

use serde::{Serialize, Serializer};

use super::curve::{self, Counts};

/// A metric value that may be undefined (e.g. AUROC of a label without positives).
/// Serialized as a number or the string `"undefined"`, never NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value(pub Option<f64>);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(v) if v.is_finite() => s.serialize_f64(v),
            _ => s.serialize_str("undefined"),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:.4}"),
            None => f.write_str("undefined"),
        }
    }
}

/// Metrics of one label (unknown labels excluded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMetrics {
    /// Label name.
    pub label: String,
    /// Known positives.
    pub positives: u64,
    /// Known negatives.
    pub negatives: u64,
    /// Rows where this label is unknown (excluded).
    pub unknown: u64,
    /// Precision at threshold 0.5.
    pub precision: Value,
    /// Recall at threshold 0.5.
    pub recall: Value,
    /// F1 at threshold 0.5.
    pub f1: Value,
    /// Threshold maximising F1 on this data (kept for the export).
    pub best_threshold: Value,
    /// Precision at `best_threshold`.
    pub precision_at_best: Value,
    /// Recall at `best_threshold`.
    pub recall_at_best: Value,
    /// F1 at `best_threshold`.
    pub f1_at_best: Value,
    /// Area under the ROC curve.
    pub auroc: Value,
    /// Average precision (area under the PR curve).
    pub auprc: Value,
    /// Best precision with recall ≥ 0.8.
    pub precision_at_recall_80: Value,
    /// Best precision with recall ≥ 0.9.
    pub precision_at_recall_90: Value,
    /// Expected calibration error (10 bins).
    pub ece: Value,
}

/// Averages over labels: macro (mean of defined per-label values) and micro
/// (every known (row, label) pair pooled).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Averages {
    /// Precision at 0.5.
    pub precision: Value,
    /// Recall at 0.5.
    pub recall: Value,
    /// F1 at 0.5.
    pub f1: Value,
    /// F1 at each label's best threshold.
    pub f1_at_best: Value,
    /// AUROC.
    pub auroc: Value,
    /// Average precision.
    pub auprc: Value,
    /// Expected calibration error.
    pub ece: Value,
}

/// A whole evaluation report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Rows scored.
    pub rows: u64,
    /// Per-label metrics, in `model.labels` order.
    pub labels: Vec<LabelMetrics>,
    /// Mean over labels of each defined value.
    pub macro_avg: Averages,
    /// Pooled over all known (row, label) pairs.
    pub micro_avg: Averages,
}

/// Scores of a set of rows: probabilities `[rows, labels]`, targets and known masks.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Label names.
    pub labels: Vec<String>,
    /// Probabilities, row-major `[rows, labels]`.
    pub probs: Vec<f32>,
    /// Targets (0 or 1), row-major.
    pub targets: Vec<f32>,
    /// Whether each target is known, row-major.
    pub known: Vec<bool>,
}

impl Scores {
    /// Rows held.
    pub fn rows(&self) -> usize {
        self.probs.len() / self.labels.len().max(1)
    }

    /// `(score, positive)` pairs of label `l`, unknown rows removed.
    pub fn pairs(&self, l: usize) -> Vec<(f32, bool)> {
        let n = self.labels.len();
        (0..self.rows())
            .map(|r| r * n + l)
            .filter(|&i| self.known[i])
            .map(|i| (self.probs[i], self.targets[i] >= 0.5))
            .collect()
    }
}

impl EvalReport {
    /// Computes every metric of `scores`.
    pub fn compute(scores: &Scores) -> Self {
        let rows = scores.rows();
        let mut all = Vec::new();
        let labels: Vec<LabelMetrics> = (0..scores.labels.len())
            .map(|l| {
                let pairs = scores.pairs(l);
                all.extend_from_slice(&pairs);
                label_metrics(&scores.labels[l], &pairs, rows as u64)
            })
            .collect();
        let mean = |f: fn(&LabelMetrics) -> Value| {
            let v: Vec<f64> = labels.iter().filter_map(|m| f(m).0).collect();
            Value((!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64))
        };
        let macro_avg = Averages {
            precision: mean(|m| m.precision),
            recall: mean(|m| m.recall),
            f1: mean(|m| m.f1),
            f1_at_best: mean(|m| m.f1_at_best),
            auroc: mean(|m| m.auroc),
            auprc: mean(|m| m.auprc),
            ece: mean(|m| m.ece),
        };
        let pooled = label_metrics("micro", &all, all.len() as u64);
        let micro_avg = Averages {
            precision: pooled.precision,
            recall: pooled.recall,
            f1: pooled.f1,
            f1_at_best: pooled.f1_at_best,
            auroc: pooled.auroc,
            auprc: pooled.auprc,
            ece: pooled.ece,
        };
        Self {
            rows: rows as u64,
            labels,
            macro_avg,
            micro_avg,
        }
    }

    /// Every defined value as `(name, value)`, named as logged: `val/macro_auroc`,
    /// `val/micro_f1`, `val/<label>/auroc`, ...
    pub fn scalars(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (prefix, a) in [("macro", &self.macro_avg), ("micro", &self.micro_avg)] {
            for (name, v) in averages_fields(a) {
                if let Some(v) = v.0 {
                    out.push((format!("val/{prefix}_{name}"), v));
                }
            }
        }
        for m in &self.labels {
            for (name, v) in label_fields(m) {
                if let Some(v) = v.0 {
                    out.push((format!("val/{}/{name}", m.label), v));
                }
            }
        }
        out
    }

    /// The value of a monitored metric name such as `val/macro_auroc`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.scalars()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Per-label thresholds tuned for F1 (0.5 where undefined), for the export.
    pub fn thresholds(&self) -> Vec<(String, f32)> {
        self.labels
            .iter()
            .map(|m| {
                (
                    m.label.clone(),
                    m.best_threshold.0.map_or(0.5, |t| t as f32),
                )
            })
            .collect()
    }

    /// A short console table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<14} {:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
            "label", "pos", "neg", "auroc", "auprc", "f1@0.5", "f1@best", "p@r0.9"
        );
        for m in &self.labels {
            s.push_str(&format!(
                "{:<14} {:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
                m.label,
                m.positives,
                m.negatives,
                short(m.auroc),
                short(m.auprc),
                short(m.f1),
                short(m.f1_at_best),
                short(m.precision_at_recall_90)
            ));
        }
        let a = &self.macro_avg;
        s.push_str(&format!(
            "{:<14} {:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
            "macro",
            "",
            "",
            short(a.auroc),
            short(a.auprc),
            short(a.f1),
            short(a.f1_at_best),
            ""
        ));
        s
    }
}

fn short(v: Value) -> String {
    v.0.map_or_else(|| "undef".to_string(), |v| format!("{v:.3}"))
}

fn averages_fields(a: &Averages) -> [(&'static str, Value); 7] {
    [
        ("precision", a.precision),
        ("recall", a.recall),
        ("f1", a.f1),
        ("f1_at_best", a.f1_at_best),
        ("auroc", a.auroc),
        ("auprc", a.auprc),
        ("ece", a.ece),
    ]
}

fn label_fields(m: &LabelMetrics) -> [(&'static str, Value); 11] {
    [
        ("precision", m.precision),
        ("recall", m.recall),
        ("f1", m.f1),
        ("best_threshold", m.best_threshold),
        ("precision_at_best", m.precision_at_best),
        ("recall_at_best", m.recall_at_best),
        ("f1_at_best", m.f1_at_best),
        ("auroc", m.auroc),
        ("auprc", m.auprc),
        ("precision_at_recall_80", m.precision_at_recall_80),
        ("precision_at_recall_90", m.precision_at_recall_90),
    ]
}

fn label_metrics(label: &str, pairs: &[(f32, bool)], rows: u64) -> LabelMetrics {
    let positives = pairs.iter().filter(|p| p.1).count() as u64;
    let negatives = pairs.len() as u64 - positives;
    let at_half = Counts::at(pairs, 0.5);
    let best = curve::best_f1_threshold(pairs);
    let at_best = best.map(|(t, _)| Counts::at(pairs, t));
    LabelMetrics {
        label: label.to_string(),
        positives,
        negatives,
        unknown: rows.saturating_sub(pairs.len() as u64),
        precision: Value(at_half.precision()),
        recall: Value(at_half.recall()),
        f1: Value(at_half.f1()),
        best_threshold: Value(best.map(|(t, _)| f64::from(t))),
        precision_at_best: Value(at_best.and_then(|c| c.precision())),
        recall_at_best: Value(at_best.and_then(|c| c.recall())),
        f1_at_best: Value(best.map(|(_, f)| f)),
        auroc: Value(curve::auroc(pairs)),
        auprc: Value(curve::average_precision(pairs)),
        precision_at_recall_80: Value(curve::precision_at_recall(pairs, 0.8)),
        precision_at_recall_90: Value(curve::precision_at_recall(pairs, 0.9)),
        ece: Value(curve::expected_calibration_error(pairs, 10)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores() -> Scores {
        // Two labels; label "b" has no positives; row 1 of label "a" is unknown.
        Scores {
            labels: vec!["a".into(), "b".into()],
            probs: vec![0.9, 0.2, 0.7, 0.1, 0.2, 0.3, 0.6, 0.4],
            targets: vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            known: vec![true, true, false, true, true, true, true, true],
        }
    }

    #[test]
    fn unknown_labels_are_excluded_and_counted() {
        let r = EvalReport::compute(&scores());
        assert_eq!(r.rows, 4);
        let a = &r.labels[0];
        assert_eq!((a.positives, a.negatives, a.unknown), (1, 2, 1));
        // a: scores 0.9 (pos), 0.2 (neg), 0.6 (neg) → perfect ranking.
        assert_eq!(a.auroc.0, Some(1.0));
    }

    #[test]
    fn a_label_without_positives_is_undefined_not_nan() {
        let r = EvalReport::compute(&scores());
        let b = &r.labels[1];
        assert_eq!(b.auroc.0, None);
        assert_eq!(b.recall.0, None);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["labels"][1]["auroc"], "undefined");
        // Macro averages only over defined labels.
        assert_eq!(r.macro_avg.auroc.0, Some(1.0));
        assert!(r.scalars().iter().all(|(_, v)| v.is_finite()));
        assert_eq!(r.metric("val/macro_auroc"), Some(1.0));
        assert_eq!(r.metric("val/b/auroc"), None);
        assert_eq!(r.thresholds()[1], ("b".to_string(), 0.5));
    }

    #[test]
    fn micro_pools_all_known_pairs() {
        let r = EvalReport::compute(&scores());
        // Pooled positives: 0.9 only; negatives: 0.2, 0.6, 0.2, 0.1, 0.3, 0.4 → AUROC 1.
        assert_eq!(r.micro_avg.auroc.0, Some(1.0));
        assert!(r.table().contains("macro"));
    }
}
