//! Calibration: the reliability diagram's bins and the expected calibration
//! error they add up to.
//!
//! [`crate::expected_calibration_error`] (the `ece` of
//! `eval/step-<S>.json`) is [`ece`] of these bins, so the ECE printed under each
//! reliability diagram of the HTML report is the one in the evaluation report.

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    /// Lower edge of the bin.
    pub lo: f64,
    /// Upper edge of the bin.
    pub hi: f64,
    /// Rows whose score falls in the bin.
    pub count: u64,
    /// Mean predicted probability (`None` for an empty bin).
    pub confidence: Option<f64>,
    /// Fraction of positives (`None` for an empty bin).
    pub accuracy: Option<f64>,
}

/// The reliability bins of `pairs` over `bins` equal-width bins; a score of 1.0
/// goes in the last bin.
pub fn reliability(pairs: &[(f32, bool)], bins: usize) -> Vec<Bin> {
    let bins = bins.max(1);
    let mut sum_p = vec![0.0f64; bins];
    let mut sum_y = vec![0.0f64; bins];
    let mut count = vec![0u64; bins];
    for &(s, y) in pairs {
        let s = f64::from(s).clamp(0.0, 1.0);
        let b = ((s * bins as f64) as usize).min(bins - 1);
        sum_p[b] += s;
        sum_y[b] += f64::from(u8::from(y));
        count[b] += 1;
    }
    (0..bins)
        .map(|b| {
            let n = count[b] as f64;
            Bin {
                lo: b as f64 / bins as f64,
                hi: (b + 1) as f64 / bins as f64,
                count: count[b],
                confidence: (count[b] > 0).then(|| sum_p[b] / n),
                accuracy: (count[b] > 0).then(|| sum_y[b] / n),
            }
        })
        .collect()
}

/// Σ (count / total) · |accuracy − confidence| over non-empty bins; `None`
/// without rows.
pub fn ece(bins: &[Bin]) -> Option<f64> {
    let total: u64 = bins.iter().map(|b| b.count).sum();
    if total == 0 {
        return None;
    }
    Some(
        bins.iter()
            .filter_map(|b| Some(b.count as f64 * (b.accuracy? - b.confidence?).abs()))
            .sum::<f64>()
            / total as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expected_calibration_error;

    #[test]
    fn bins_and_ece_by_hand() {
        // Bin 0.1–0.2: 0.15 (neg), 0.15 (pos) → conf 0.15, acc 0.5.
        // Bin 0.9–1.0: 0.95 (pos), 1.0 (pos) → conf 0.975, acc 1.0.
        let pairs = [(0.15, false), (0.15, true), (0.95, true), (1.0, true)];
        let bins = reliability(&pairs, 10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins[1].count, 2);
        assert!((bins[1].confidence.unwrap() - 0.15).abs() < 1e-6);
        assert_eq!(bins[1].accuracy, Some(0.5));
        assert_eq!(bins[9].count, 2);
        assert_eq!(bins[0].confidence, None);
        // ECE = (2·|0.5 − 0.15| + 2·|1 − 0.975|) / 4 = (0.7 + 0.05) / 4 = 0.1875.
        let e = ece(&bins).unwrap();
        assert!((e - 0.1875).abs() < 1e-6, "{e}");
        let reference = expected_calibration_error(&pairs, 10).unwrap();
        assert!((e - reference).abs() < 1e-9);
        assert_eq!(ece(&reliability(&[], 10)), None);
    }
}
