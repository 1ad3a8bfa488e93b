//! Threshold sweeps over one label's scores: the ranking metrics (AUROC, average
//! precision), the operating points a policy team asks for (precision at a given
//! recall, the F1-optimal threshold), and calibration (ECE).
//!
//! Every function takes `(score, positive)` pairs with unknown labels already
//! removed, and returns `None` when the metric is undefined (no positives, or no
//! negatives for AUROC) instead of NaN.

/// Counts at one threshold: predictions `score >= threshold` are positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    pub fn_: u64,
}

impl Counts {
    /// Counts of `score >= threshold`.
    pub fn at(pairs: &[(f32, bool)], threshold: f32) -> Self {
        let mut c = Counts {
            tp: 0,
            fp: 0,
            tn: 0,
            fn_: 0,
        };
        for &(s, y) in pairs {
            match (s >= threshold, y) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    /// TP / (TP + FP); `None` when nothing is predicted positive.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// TP / (TP + FN); `None` without positives.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall; 0 when both are 0 or precision is
    /// undefined but positives exist.
    pub fn f1(&self) -> Option<f64> {
        let denom = 2 * self.tp + self.fp + self.fn_;
        if self.tp + self.fn_ == 0 {
            return None;
        }
        Some(if denom == 0 {
            0.0
        } else {
            2.0 * self.tp as f64 / denom as f64
        })
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// One point of the precision/recall sweep: all predictions at or above `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepPoint {
    /// The score threshold (the lowest score predicted positive).
    pub threshold: f32,
    /// Counts at this threshold.
    pub counts: Counts,
}

/// Precision/recall points at every distinct score, highest threshold first.
/// Tied scores move together, as in scikit-learn's `precision_recall_curve`.
pub fn sweep(pairs: &[(f32, bool)]) -> Vec<SweepPoint> {
    let mut sorted: Vec<(f32, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = sorted.iter().filter(|p| p.1).count() as u64;
    let neg = sorted.len() as u64 - pos;
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == t {
            if sorted[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        out.push(SweepPoint {
            threshold: t,
            counts: Counts {
                tp,
                fp,
                tn: neg - fp,
                fn_: pos - tp,
            },
        });
    }
    out
}

/// Area under the ROC curve (trapezoidal over tie groups, equal to the probability
/// that a random positive outranks a random negative, ties counting half).
pub fn auroc(pairs: &[(f32, bool)]) -> Option<f64> {
    let pos = pairs.iter().filter(|p| p.1).count() as f64;
    let neg = pairs.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let (mut area, mut prev_tp, mut prev_fp) = (0.0, 0.0, 0.0);
    for p in sweep(pairs) {
        let (tp, fp) = (p.counts.tp as f64, p.counts.fp as f64);
        area += (fp - prev_fp) * (tp + prev_tp) / 2.0;
        prev_tp = tp;
        prev_fp = fp;
    }
    Some(area / (pos * neg))
}

/// Average precision: Σ (Rₙ − Rₙ₋₁)·Pₙ over the sweep (scikit-learn's definition,
/// no interpolation).
pub fn average_precision(pairs: &[(f32, bool)]) -> Option<f64> {
    let pos = pairs.iter().filter(|p| p.1).count();
    if pos == 0 {
        return None;
    }
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    for p in sweep(pairs) {
        let recall = p.counts.recall().unwrap_or(0.0);
        let precision = p.counts.precision().unwrap_or(0.0);
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// The highest precision among thresholds whose recall is at least `min_recall`.
pub fn precision_at_recall(pairs: &[(f32, bool)], min_recall: f64) -> Option<f64> {
    if !pairs.iter().any(|p| p.1) {
        return None;
    }
    sweep(pairs)
        .iter()
        .filter(|p| p.counts.recall().unwrap_or(0.0) >= min_recall - 1e-12)
        .filter_map(|p| p.counts.precision())
        .fold(None, |best: Option<f64>, v| {
            Some(best.map_or(v, |b| b.max(v)))
        })
}

/// The threshold maximising F1 (the highest such threshold on ties), with its F1.
/// Midway between the chosen score and the next lower one, so scores equal to
/// the chosen one stay positive when applied as `score >= threshold`.
pub fn best_f1_threshold(pairs: &[(f32, bool)]) -> Option<(f32, f64)> {
    let points = sweep(pairs);
    let mut best: Option<(usize, f64)> = None;
    for (i, p) in points.iter().enumerate() {
        let f1 = p.counts.f1()?;
        if best.is_none_or(|(_, b)| f1 > b + 1e-12) {
            best = Some((i, f1));
        }
    }
    let (i, f1) = best?;
    let t = points[i].threshold;
    let threshold = match points.get(i + 1) {
        Some(next) => (t + next.threshold) / 2.0,
        None => t,
    };
    Some((threshold, f1))
}

/// Expected calibration error over `bins` equal-width probability bins: the
/// support-weighted mean |accuracy − confidence| of the positive-class probability.
pub fn expected_calibration_error(pairs: &[(f32, bool)], bins: usize) -> Option<f64> {
    if bins == 0 {
        return None;
    }
    super::calibration::ece(&super::calibration::reliability(pairs, bins))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("defined");
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    // scikit-learn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.75,
    // average_precision_score(...) = 0.8333...
    const SK: [(f32, bool); 4] = [(0.1, false), (0.4, false), (0.35, true), (0.8, true)];

    #[test]
    fn matches_scikit_learn_reference_values() {
        close(auroc(&SK), 0.75);
        close(average_precision(&SK), 5.0 / 6.0);
    }

    #[test]
    fn ties_count_half_in_auroc() {
        let tied = [(0.5, true), (0.5, false)];
        close(auroc(&tied), 0.5);
        close(average_precision(&tied), 0.5);
        let perfect = [(0.9, true), (0.8, true), (0.1, false)];
        close(auroc(&perfect), 1.0);
        close(average_precision(&perfect), 1.0);
    }

    #[test]
    fn undefined_without_positives_or_negatives() {
        let no_pos = [(0.3, false), (0.7, false)];
        assert_eq!(auroc(&no_pos), None);
        assert_eq!(average_precision(&no_pos), None);
        assert_eq!(precision_at_recall(&no_pos, 0.8), None);
        assert_eq!(best_f1_threshold(&no_pos), None);
        assert_eq!(Counts::at(&no_pos, 0.5).f1(), None);
        assert_eq!(auroc(&[(0.3, true)]), None);
        assert_eq!(auroc(&[]), None);
    }

    #[test]
    fn counts_precision_recall_f1_at_half() {
        let c = Counts::at(&SK, 0.5);
        assert_eq!(
            c,
            Counts {
                tp: 1,
                fp: 0,
                tn: 2,
                fn_: 1
            }
        );
        close(c.precision(), 1.0);
        close(c.recall(), 0.5);
        close(c.f1(), 2.0 / 3.0);
    }

    #[test]
    fn precision_at_recall_picks_best_point_reaching_the_recall() {
        // Sweep: 0.8 → P 1 R .5; 0.4 → P .5 R .5; 0.35 → P .667 R 1; 0.1 → P .5 R 1.
        close(precision_at_recall(&SK, 0.8), 2.0 / 3.0);
        close(precision_at_recall(&SK, 0.5), 1.0);
    }

    #[test]
    fn best_f1_threshold_keeps_the_chosen_scores_positive() {
        let (t, f1) = best_f1_threshold(&SK).unwrap();
        assert!((f1 - 0.8).abs() < 1e-9, "{f1}");
        assert!(t <= 0.35 && t > 0.1, "{t}");
        close(Counts::at(&SK, t).f1(), 0.8);
    }

    #[test]
    fn ece_of_perfect_and_of_overconfident_scores() {
        close(
            expected_calibration_error(&[(1.0, true), (0.0, false)], 10),
            0.0,
        );
        // All at 0.75 confidence, half right: |0.5 - 0.75| = 0.25.
        let over = [(0.75, true), (0.75, false)];
        close(expected_calibration_error(&over, 10), 0.25);
    }
}
