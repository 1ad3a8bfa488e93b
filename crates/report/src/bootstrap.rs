//! Bootstrap confidence intervals: resample the rows with replacement, recompute
//! the metric, take the 2.5th and 97.5th percentiles.
//!
//! The RNG is seeded (`StdRng::seed_from_u64`), so a report is reproducible: the
//! same scores give the same intervals. Resamples whose metric is undefined (a
//! draw with no positives) are dropped; fewer than half defined gives no interval.
//! The champion−challenger interval resamples the *same* rows for both models
//! (a paired bootstrap), which is what makes a difference of two correlated
//! scores meaningful.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A point estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The metric on all rows.
    pub estimate: f64,
    /// 2.5th percentile of the resampled metric.
    pub lo: f64,
    /// 97.5th percentile of the resampled metric.
    pub hi: f64,
}

/// Bootstrap settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootstrap {
    /// Resamples.
    pub resamples: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            resamples: 1000,
            seed: 20_190_513,
        }
    }
}

impl Bootstrap {
    /// The interval of `metric` over `pairs`; `None` when the metric is undefined
    /// on all rows or on most resamples.
    pub fn interval(
        &self,
        pairs: &[(f32, bool)],
        metric: impl Fn(&[(f32, bool)]) -> Option<f64>,
    ) -> Option<Interval> {
        let estimate = metric(pairs)?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut draw = Vec::with_capacity(pairs.len());
        let mut values = Vec::with_capacity(self.resamples);
        for _ in 0..self.resamples {
            draw.clear();
            draw.extend((0..pairs.len()).map(|_| pairs[rng.random_range(0..pairs.len())]));
            if let Some(v) = metric(&draw) {
                values.push(v);
            }
        }
        percentiles(estimate, values, self.resamples)
    }

    /// The interval of `metric(b) − metric(a)` where `a` and `b` score the same
    /// rows in the same order (row `i` of both is resampled together).
    pub fn paired_difference(
        &self,
        a: &[(f32, bool)],
        b: &[(f32, bool)],
        metric: impl Fn(&[(f32, bool)]) -> Option<f64>,
    ) -> Option<Interval> {
        if a.len() != b.len() || a.is_empty() {
            return None;
        }
        let estimate = metric(b)? - metric(a)?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let (mut da, mut db) = (Vec::with_capacity(a.len()), Vec::with_capacity(b.len()));
        let mut values = Vec::with_capacity(self.resamples);
        for _ in 0..self.resamples {
            da.clear();
            db.clear();
            for _ in 0..a.len() {
                let i = rng.random_range(0..a.len());
                da.push(a[i]);
                db.push(b[i]);
            }
            if let (Some(x), Some(y)) = (metric(&da), metric(&db)) {
                values.push(y - x);
            }
        }
        percentiles(estimate, values, self.resamples)
    }

    /// The interval of `b − a` where `metric(rows)` gives `(a, b)` on a
    /// selection of row indices (with repeats): a paired bootstrap over whole
    /// rows, for metrics that span labels (the gate's `val/macro_auroc`).
    pub fn paired_rows(
        &self,
        rows: usize,
        metric: impl Fn(&[usize]) -> Option<(f64, f64)>,
    ) -> Option<Interval> {
        if rows == 0 {
            return None;
        }
        let all: Vec<usize> = (0..rows).collect();
        let (a, b) = metric(&all)?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut draw = Vec::with_capacity(rows);
        let mut values = Vec::with_capacity(self.resamples);
        for _ in 0..self.resamples {
            draw.clear();
            draw.extend((0..rows).map(|_| rng.random_range(0..rows)));
            if let Some((x, y)) = metric(&draw) {
                values.push(y - x);
            }
        }
        percentiles(b - a, values, self.resamples)
    }
}

/// The rows `idx` of `scores` (repeats allowed), for resampling whole rows.
pub fn select_rows(scores: &vigil_eval::Scores, idx: &[usize]) -> vigil_eval::Scores {
    let n = scores.labels.len();
    let mut out = vigil_eval::Scores {
        labels: scores.labels.clone(),
        ..Default::default()
    };
    for &r in idx {
        let range = r * n..(r + 1) * n;
        out.probs.extend_from_slice(&scores.probs[range.clone()]);
        out.targets
            .extend_from_slice(&scores.targets[range.clone()]);
        out.known.extend_from_slice(&scores.known[range]);
    }
    out
}

fn percentiles(estimate: f64, mut values: Vec<f64>, resamples: usize) -> Option<Interval> {
    if values.is_empty() || values.len() * 2 < resamples {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at =
        |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    Some(Interval {
        estimate,
        lo: at(0.025),
        hi: at(0.975),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_eval::auroc;

    fn pairs() -> Vec<(f32, bool)> {
        (0..200)
            .map(|i| {
                let y = i % 3 == 0;
                let s = if y { 0.6 } else { 0.4 } + ((i * 37 % 100) as f32 - 50.0) / 200.0;
                (s.clamp(0.0, 1.0), y)
            })
            .collect()
    }

    #[test]
    fn the_interval_holds_the_estimate_and_is_reproducible() {
        let b = Bootstrap {
            resamples: 200,
            seed: 1,
        };
        let i = b.interval(&pairs(), auroc).unwrap();
        assert!(i.lo <= i.estimate && i.estimate <= i.hi, "{i:?}");
        assert!(i.hi - i.lo > 0.0 && i.hi - i.lo < 0.3, "{i:?}");
        assert_eq!(b.interval(&pairs(), auroc), Some(i));
    }

    #[test]
    fn a_constant_metric_has_a_zero_width_interval_and_undefined_has_none() {
        let b = Bootstrap::default();
        let i = b.interval(&pairs(), |_| Some(0.5)).unwrap();
        assert_eq!((i.lo, i.estimate, i.hi), (0.5, 0.5, 0.5));
        let negatives = [(0.1, false), (0.9, false)];
        assert_eq!(b.interval(&negatives, auroc), None);
    }

    #[test]
    fn the_paired_difference_of_a_model_with_itself_is_exactly_zero() {
        let b = Bootstrap {
            resamples: 100,
            seed: 3,
        };
        let p = pairs();
        let d = b.paired_difference(&p, &p, auroc).unwrap();
        assert_eq!((d.lo, d.estimate, d.hi), (0.0, 0.0, 0.0));
        // A better model: positives pushed up.
        let better: Vec<(f32, bool)> = p
            .iter()
            .map(|&(s, y)| (if y { s + 0.3 } else { s }, y))
            .collect();
        let d = b.paired_difference(&p, &better, auroc).unwrap();
        assert!(d.estimate > 0.0 && d.lo > 0.0, "{d:?}");
        assert_eq!(b.paired_difference(&p, &p[1..], auroc), None);
    }

    #[test]
    fn paired_rows_resamples_whole_rows_for_a_macro_metric() {
        use vigil_eval::{EvalReport, Scores};
        let p = pairs();
        // Two labels per row: the same pairs twice; model b is a better model.
        let scores = |shift: f32| Scores {
            labels: vec!["x".into(), "y".into()],
            probs: p
                .iter()
                .flat_map(|&(s, y)| {
                    let s = if y { (s + shift).min(1.0) } else { s };
                    [s, s]
                })
                .collect(),
            targets: p
                .iter()
                .flat_map(|&(_, y)| [f32::from(u8::from(y)); 2])
                .collect(),
            known: vec![true; p.len() * 2],
        };
        let (a, b) = (scores(0.0), scores(0.3));
        let macro_auroc = |s: &Scores| EvalReport::compute(s).metric("val/macro_auroc");
        let boot = Bootstrap {
            resamples: 50,
            seed: 5,
        };
        let d = boot
            .paired_rows(p.len(), |idx| {
                Some((
                    macro_auroc(&select_rows(&a, idx))?,
                    macro_auroc(&select_rows(&b, idx))?,
                ))
            })
            .unwrap();
        assert!(
            d.estimate > 0.0 && d.lo > 0.0 && d.lo <= d.estimate && d.estimate <= d.hi,
            "{d:?}"
        );
        let same = boot
            .paired_rows(p.len(), |idx| {
                let m = macro_auroc(&select_rows(&a, idx))?;
                Some((m, m))
            })
            .unwrap();
        assert_eq!((same.lo, same.hi), (0.0, 0.0));
        assert_eq!(boot.paired_rows(0, |_| Some((0.0, 0.0))), None);
    }
}
