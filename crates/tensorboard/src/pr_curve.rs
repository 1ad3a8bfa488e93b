//! Precision-recall curves in the layout of TensorBoard's `pr_curves` plugin.
//!
//! The plugin reads a float32 tensor of shape `[6, num_thresholds]` whose rows are
//! TP, FP, TN, FN, precision and recall at thresholds `i / (num_thresholds - 1)`.
//! [`compute_curve`] follows the plugin's own `summary.pb`: each score goes to
//! bucket `floor(score * (n - 1))`, counts at threshold `i` are reverse cumulative
//! sums over buckets `>= i`, and precision/recall divide by `max(1e-7, ...)` so an
//! empty denominator gives 0 instead of NaN.

use crate::error::{Error, PrCurveError};
use crate::proto::{DataType, TensorProto, TensorShapeProto};

/// The plugin's floor for denominators.
const MINIMUM_COUNT: f64 = 1e-7;

/// Rows of the `[6, num_thresholds]` tensor, in order.
pub const PR_CURVE_ROWS: [&str; 6] = [
    "true_positives",
    "false_positives",
    "true_negatives",
    "false_negatives",
    "precision",
    "recall",
];

/// One PR curve: six rows of `num_thresholds` values.
#[derive(Debug, Clone, PartialEq)]
pub struct PrCurve {
    /// Number of thresholds, evenly spaced in `[0, 1]`.
    pub num_thresholds: u32,
    /// Positives with score at or above each threshold.
    pub true_positives: Vec<f64>,
    /// Negatives with score at or above each threshold.
    pub false_positives: Vec<f64>,
    /// Negatives below each threshold.
    pub true_negatives: Vec<f64>,
    /// Positives below each threshold.
    pub false_negatives: Vec<f64>,
    /// `tp / max(1e-7, tp + fp)`.
    pub precision: Vec<f64>,
    /// `tp / max(1e-7, tp + fn)`.
    pub recall: Vec<f64>,
}

/// [`compute_curve`] for a logger: an input error names the tag and step.
pub(crate) fn logged_curve(
    tag: &str,
    step: u64,
    labels: &[bool],
    scores: &[f32],
    num_thresholds: u32,
) -> Result<PrCurve, Error> {
    compute_curve(labels, scores, num_thresholds).map_err(|source| Error::PrCurve {
        tag: tag.to_owned(),
        step,
        source,
    })
}

/// Computes the curve of binary `labels` against `scores` in `[0, 1]`.
pub fn compute_curve(
    labels: &[bool],
    scores: &[f32],
    num_thresholds: u32,
) -> Result<PrCurve, PrCurveError> {
    if num_thresholds < 2 {
        return Err(PrCurveError::Thresholds { num_thresholds });
    }
    if labels.len() != scores.len() {
        return Err(PrCurveError::LengthMismatch {
            labels: labels.len(),
            scores: scores.len(),
        });
    }
    let n = num_thresholds as usize;
    let mut tp_buckets = vec![0.0_f64; n];
    let mut fp_buckets = vec![0.0_f64; n];
    for (index, (&label, &score)) in labels.iter().zip(scores).enumerate() {
        if !(0.0..=1.0).contains(&score) {
            return Err(PrCurveError::Score { index, score });
        }
        let bucket = ((f64::from(score) * (n - 1) as f64).floor() as usize).min(n - 1);
        if label {
            tp_buckets[bucket] += 1.0;
        } else {
            fp_buckets[bucket] += 1.0;
        }
    }
    let reverse_cumsum = |buckets: &[f64]| {
        let mut out = vec![0.0; buckets.len()];
        let mut acc = 0.0;
        for i in (0..buckets.len()).rev() {
            acc += buckets[i];
            out[i] = acc;
        }
        out
    };
    let tp = reverse_cumsum(&tp_buckets);
    let fp = reverse_cumsum(&fp_buckets);
    let tn: Vec<f64> = fp.iter().map(|f| fp[0] - f).collect();
    let fn_: Vec<f64> = tp.iter().map(|t| tp[0] - t).collect();
    let precision = (0..n)
        .map(|i| tp[i] / MINIMUM_COUNT.max(tp[i] + fp[i]))
        .collect();
    let recall = (0..n)
        .map(|i| tp[i] / MINIMUM_COUNT.max(tp[i] + fn_[i]))
        .collect();
    Ok(PrCurve {
        num_thresholds,
        true_positives: tp,
        false_positives: fp,
        true_negatives: tn,
        false_negatives: fn_,
        precision,
        recall,
    })
}

impl PrCurve {
    /// The six rows in the plugin's order.
    pub fn rows(&self) -> [&[f64]; 6] {
        [
            &self.true_positives,
            &self.false_positives,
            &self.true_negatives,
            &self.false_negatives,
            &self.precision,
            &self.recall,
        ]
    }

    /// The `[6, num_thresholds]` float32 tensor, row-major.
    pub fn to_tensor(&self) -> TensorProto {
        TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto::of(&[6, i64::from(self.num_thresholds)])),
            float_val: self
                .rows()
                .iter()
                .flat_map(|row| row.iter().map(|&v| v as f32))
                .collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_plugin_on_a_hand_computed_example() {
        // n = 3 thresholds: 0, 0.5, 1. Buckets: floor(score * 2).
        let labels = [true, true, false, false, true];
        let scores = [0.9, 0.4, 0.6, 0.1, 1.0];
        let c = compute_curve(&labels, &scores, 3).unwrap();
        // Positives in buckets 1 (0.9), 0 (0.4), 2 (1.0); negatives in 1 (0.6), 0 (0.1).
        assert_eq!(c.true_positives, vec![3.0, 2.0, 1.0]);
        assert_eq!(c.false_positives, vec![2.0, 1.0, 0.0]);
        assert_eq!(c.true_negatives, vec![0.0, 1.0, 2.0]);
        assert_eq!(c.false_negatives, vec![0.0, 1.0, 2.0]);
        assert_eq!(c.precision, vec![0.6, 2.0 / 3.0, 1.0]);
        assert_eq!(c.recall, vec![1.0, 2.0 / 3.0, 1.0 / 3.0]);
    }

    #[test]
    fn counts_are_consistent_at_every_threshold() {
        let labels: Vec<bool> = (0..200).map(|i| i % 3 == 0).collect();
        let scores: Vec<f32> = (0..200).map(|i| (i as f32 * 0.618).fract()).collect();
        let c = compute_curve(&labels, &scores, 21).unwrap();
        let positives = labels.iter().filter(|&&l| l).count() as f64;
        for i in 0..21 {
            assert_eq!(c.true_positives[i] + c.false_negatives[i], positives);
            assert_eq!(
                c.true_positives[i]
                    + c.false_positives[i]
                    + c.true_negatives[i]
                    + c.false_negatives[i],
                200.0
            );
        }
        assert!(c.true_positives.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn no_positives_gives_zero_precision_not_nan() {
        let c = compute_curve(&[false, false], &[0.2, 0.8], 5).unwrap();
        assert!(c.precision.iter().all(|&p| p == 0.0));
        assert!(c.recall.iter().all(|&r| r == 0.0));
    }

    #[test]
    fn tensor_is_six_by_n_row_major() {
        let c = compute_curve(&[true], &[0.5], 4).unwrap();
        let t = c.to_tensor();
        let dims: Vec<i64> = t.tensor_shape.unwrap().dim.iter().map(|d| d.size).collect();
        assert_eq!(dims, vec![6, 4]);
        assert_eq!(t.float_val.len(), 24);
        assert_eq!(&t.float_val[..4], &[1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(
            compute_curve(&[true], &[0.5], 1),
            Err(PrCurveError::Thresholds { num_thresholds: 1 })
        );
        assert!(matches!(
            compute_curve(&[true], &[], 5),
            Err(PrCurveError::LengthMismatch {
                labels: 1,
                scores: 0
            })
        ));
        assert!(matches!(
            compute_curve(&[true, false], &[0.5, f32::NAN], 5),
            Err(PrCurveError::Score { index: 1, .. })
        ));
        assert!(matches!(
            compute_curve(&[true], &[1.5], 5),
            Err(PrCurveError::Score { index: 0, .. })
        ));
    }
}
