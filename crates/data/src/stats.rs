//! Counts for logs and the audit: rows by modality, positives / negatives /
//! unknowns per label, and text-length percentiles.

use serde::Serialize;

use super::dataset::Dataset;

/// Positives, negatives and unknowns of one label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelCounts {
    /// Label name.
    pub label: String,
    /// Rows with the label 1.
    pub positive: usize,
    /// Rows with the label 0.
    pub negative: usize,
    /// Rows where it is missing or null.
    pub unknown: usize,
}

/// Nearest-rank percentiles of a length distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Percentiles {
    /// Smallest.
    pub min: usize,
    /// Median.
    pub p50: usize,
    /// 90th percentile.
    pub p90: usize,
    /// 99th percentile.
    pub p99: usize,
    /// Largest.
    pub max: usize,
}

impl Percentiles {
    /// Percentiles of `values` (all zero when empty).
    pub fn of(values: &[usize]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let at = |q: f64| {
            let rank = (q * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        Self {
            min: v[0],
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }
}

/// A dataset's shape, for the run log and the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataStats {
    /// Rows.
    pub rows: usize,
    /// Rows with text and image.
    pub text_and_image: usize,
    /// Rows with text only.
    pub text_only: usize,
    /// Rows with an image only.
    pub image_only: usize,
    /// Per-label counts, in label order.
    pub labels: Vec<LabelCounts>,
    /// Text length in characters, over rows with text.
    pub text_chars: Percentiles,
}

impl DataStats {
    /// The statistics of `dataset`.
    pub fn of(dataset: &Dataset) -> Self {
        let mut labels: Vec<LabelCounts> = dataset
            .labels()
            .iter()
            .map(|l| LabelCounts {
                label: l.clone(),
                positive: 0,
                negative: 0,
                unknown: 0,
            })
            .collect();
        let (mut both, mut text_only, mut image_only) = (0, 0, 0);
        let mut lengths = Vec::new();
        for ex in dataset.examples() {
            match (&ex.text, &ex.image) {
                (Some(_), Some(_)) => both += 1,
                (Some(_), None) => text_only += 1,
                _ => image_only += 1,
            }
            if let Some(t) = &ex.text {
                lengths.push(t.chars().count());
            }
            for (c, v) in labels.iter_mut().zip(&ex.labels) {
                match v {
                    Some(true) => c.positive += 1,
                    Some(false) => c.negative += 1,
                    None => c.unknown += 1,
                }
            }
        }
        Self {
            rows: dataset.len(),
            text_and_image: both,
            text_only,
            image_only,
            labels,
            text_chars: Percentiles::of(&lengths),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<usize> = (1..=100).collect();
        let p = Percentiles::of(&v);
        assert_eq!((p.min, p.p50, p.p90, p.p99, p.max), (1, 50, 90, 99, 100));
        assert_eq!(Percentiles::of(&[7]).p99, 7);
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }
}
