//! Histograms in TensorFlow's default bucketing, ready for a `HistogramProto`.
//!
//! TensorFlow's default bucket limits grow by 10% from 1e-12 to 1e20 on both sides
//! of zero (about 1,550 buckets), so one set of limits fits weights, gradients and
//! activations of any scale with ~5% relative resolution, and histograms of one tag
//! line up step after step. Bucket `i` counts values in `[limit[i-1], limit[i])`.
//! Only the span from the first to the last non-empty bucket is stored (as
//! tensorboardX does); TensorBoard takes `min` as the left edge of the first
//! bucket and `max` as the right edge of the last.

use std::sync::OnceLock;

use crate::proto::HistogramProto;

/// Summary statistics and buckets of a set of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Smallest finite value.
    pub min: f64,
    /// Largest finite value.
    pub max: f64,
    /// Number of finite values.
    pub num: f64,
    /// Sum of the finite values.
    pub sum: f64,
    /// Sum of their squares.
    pub sum_squares: f64,
    /// Right edges of the stored buckets, increasing.
    pub bucket_limit: Vec<f64>,
    /// Counts of the stored buckets; they add up to `num`.
    pub bucket: Vec<f64>,
    /// NaN and infinite values, left out of everything above.
    pub non_finite: u64,
}

/// TensorFlow's default bucket limits: `-DBL_MAX, -1e20.., ..., -1e-12, 0, 1e-12,
/// ..., ~1e20, DBL_MAX`, growing by a factor 1.1.
pub fn default_bucket_limits() -> &'static [f64] {
    static LIMITS: OnceLock<Vec<f64>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let mut positive = Vec::new();
        let mut v = 1e-12_f64;
        while v < 1e20 {
            positive.push(v);
            v *= 1.1;
        }
        positive.push(f64::MAX);
        let mut limits: Vec<f64> = positive.iter().rev().map(|v| -v).collect();
        limits.push(0.0);
        limits.extend_from_slice(&positive);
        limits
    })
}

impl Histogram {
    /// Buckets `values` with the default limits; `None` if no value is finite.
    pub fn from_values(values: &[f32]) -> Option<Self> {
        let limits = default_bucket_limits();
        let mut counts = vec![0u64; limits.len()];
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut sum, mut sum_squares, mut num, mut non_finite) = (0.0, 0.0, 0u64, 0u64);
        for &v in values {
            if !v.is_finite() {
                non_finite += 1;
                continue;
            }
            let v = f64::from(v);
            min = min.min(v);
            max = max.max(v);
            sum += v;
            sum_squares += v * v;
            num += 1;
            // First limit strictly above v (std::upper_bound, as TensorFlow does).
            counts[limits.partition_point(|&l| l <= v)] += 1;
        }
        if num == 0 {
            return None;
        }
        let first = counts.iter().position(|&c| c > 0).expect("num > 0");
        let last = counts.iter().rposition(|&c| c > 0).expect("num > 0");
        Some(Self {
            min,
            max,
            num: num as f64,
            sum,
            sum_squares,
            bucket_limit: limits[first..=last].to_vec(),
            bucket: counts[first..=last].iter().map(|&c| c as f64).collect(),
            non_finite,
        })
    }

    /// The `HistogramProto` TensorBoard reads.
    pub fn to_proto(&self) -> HistogramProto {
        HistogramProto {
            min: self.min,
            max: self.max,
            num: self.num,
            sum: self.sum,
            sum_squares: self.sum_squares,
            bucket_limit: self.bucket_limit.clone(),
            bucket: self.bucket.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_tensorflows() {
        let l = default_bucket_limits();
        assert!(l.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(l.len() % 2, 1);
        let zero = l.len() / 2;
        assert_eq!(l[zero], 0.0);
        assert_eq!(l[zero + 1], 1e-12);
        assert!((l[zero + 2] / l[zero + 1] - 1.1).abs() < 1e-12);
        assert_eq!(*l.last().unwrap(), f64::MAX);
        assert_eq!(l[0], -f64::MAX);
        // TensorFlow's C++ list has 774 positive limits below 1e20, plus DBL_MAX.
        assert_eq!(l.len(), 2 * 775 + 1);
    }

    #[test]
    fn counts_add_up_and_bracket_each_value() {
        let values: Vec<f32> = (0..1000)
            .map(|i| ((i as f32) * 0.37).sin() * 0.05)
            .collect();
        let h = Histogram::from_values(&values).unwrap();
        assert_eq!(h.num, 1000.0);
        assert_eq!(h.bucket.iter().sum::<f64>(), 1000.0);
        assert_eq!(h.bucket.len(), h.bucket_limit.len());
        assert!(h.bucket[0] > 0.0 && *h.bucket.last().unwrap() > 0.0);
        assert!(h.bucket_limit[0] > h.min);
        assert!(*h.bucket_limit.last().unwrap() > h.max);
        let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
        assert!((h.sum - sum).abs() < 1e-9);
        // Every value lies in [previous limit, its limit) of exactly one bucket.
        let limits = default_bucket_limits();
        for &v in &values {
            let i = limits.partition_point(|&l| l <= f64::from(v));
            assert!(limits[i - 1] <= f64::from(v) && f64::from(v) < limits[i]);
        }
    }

    #[test]
    fn zero_lands_in_the_bucket_above_zero() {
        let h = Histogram::from_values(&[0.0, 0.0]).unwrap();
        assert_eq!(h.bucket_limit, vec![1e-12]);
        assert_eq!(h.bucket, vec![2.0]);
        assert_eq!((h.min, h.max), (0.0, 0.0));
    }

    #[test]
    fn non_finite_values_are_counted_apart() {
        let h = Histogram::from_values(&[1.0, f32::NAN, f32::INFINITY, -2.0]).unwrap();
        assert_eq!(h.num, 2.0);
        assert_eq!(h.non_finite, 2);
        assert_eq!((h.min, h.max), (-2.0, 1.0));
        assert!(Histogram::from_values(&[f32::NAN]).is_none());
        assert!(Histogram::from_values(&[]).is_none());
    }
}
