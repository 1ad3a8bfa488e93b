//! Confident learning on out-of-fold probabilities: a port of cleanlab 2.9.0's
//! `cleanlab.filter.find_label_issues` (and the pieces of `cleanlab.count`,
//! `cleanlab.rank` and `cleanlab.internal.multilabel_*` it calls).
//!
//! # What is ported
//! - Per-class thresholds: the mean self-confidence of each given class
//!   (`get_confident_thresholds`; a class nobody was given gets 2, so no row is ever
//!   confidently in it; clipped below at 2e-6).
//! - The confident joint (`compute_confident_joint`): a row counts towards the true
//!   class whose probability reaches its threshold (less 1e-6); above several
//!   thresholds, cleanlab's rule is the row's overall argmax (not the argmax among the
//!   classes it passed); the diagonal clipped to at least 1, then calibrated so each
//!   row sums to its class count and the whole to the number of rows, rounded
//!   preserving row totals.
//! - The prune counts (`_keep_at_least_n_per_class` with `min_examples_per_class`,
//!   `frac_noise`, optionally `num_to_remove_per_class`), and the filters
//!   [`FilterBy`]: `prune_by_noise_rate` (cleanlab's default), `prune_by_class`,
//!   `both`, `confident_learning`, `predicted_neq_given`; then cleanlab's final pass
//!   that drops a flag where the given class is (within 1e-6) the argmax.
//! - The ranking ([`RankBy`]): ascending self-confidence or normalised margin
//!   `(p[given] - max p[other] + 1) / 2`.
//! - Multi-label ([`find_multilabel_issues`], cleanlab's `multi_label=True`): every
//!   label its own binary problem with probabilities `[1 - p, p]` (class 1 = "has the
//!   label"), issues unioned over labels, rows ranked by the exponential moving
//!   average (alpha 0.8, scores sorted descending) of the per-label scores.
//!
//! # Vigil's one departure: unknown labels are masked
//! A label whose value is `null` for a row is unknown, not negative: that row takes no
//! part in that label's binary problem (not in its threshold, its confident joint or
//! its pruning), and the row's multi-label ranking score averages only the labels it
//! has. cleanlab has no such mask; with no `null`s the two agree exactly.
//!
//! # Arithmetic
//! Everything is computed in `f64` from the `f32` inputs, and sums of many values use
//! numpy's pairwise summation ([`np_sum`]), so thresholds are bit-identical to
//! cleanlab's on the same (`float32`-rounded) probabilities. Sorts are stable (ties in
//! index order); numpy's default quicksort is not, so rows with exactly equal scores
//! may come out in another order than cleanlab's.

/// How rows are flagged (cleanlab's `filter_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilterBy {
    /// For every off-diagonal cell (given i, true j) of the pruning matrix, the rows of
    /// class i with the largest margin `p[j] - p[i]` (cleanlab's default).
    #[default]
    PruneByNoiseRate,
    /// Per class, the rows with the smallest probability of their given class.
    PruneByClass,
    /// Rows flagged by both of the above.
    Both,
    /// The rows counted off the diagonal of the confident joint.
    ConfidentLearning,
    /// Rows whose argmax is not the given class.
    PredictedNeqGiven,
}

impl FilterBy {
    /// Every filter, with its cleanlab name.
    pub const ALL: [(&'static str, FilterBy); 5] = [
        ("prune_by_noise_rate", Self::PruneByNoiseRate),
        ("prune_by_class", Self::PruneByClass),
        ("both", Self::Both),
        ("confident_learning", Self::ConfidentLearning),
        ("predicted_neq_given", Self::PredictedNeqGiven),
    ];

    /// The filter named `s` (cleanlab's spelling).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, f)| *f)
    }

    /// cleanlab's name of the filter.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }
}

/// How flagged rows are ordered (cleanlab's `return_indices_ranked_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankBy {
    /// The probability of the given class, lowest first (cleanlab's default).
    #[default]
    SelfConfidence,
    /// `(p[given] - max p[other] + 1) / 2`, lowest first.
    NormalizedMargin,
}

impl RankBy {
    /// The ranking named `s` (cleanlab's spelling).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "self_confidence" => Some(Self::SelfConfidence),
            "normalized_margin" => Some(Self::NormalizedMargin),
            _ => None,
        }
    }

    /// cleanlab's name of the ranking.
    pub fn name(self) -> &'static str {
        match self {
            Self::SelfConfidence => "self_confidence",
            Self::NormalizedMargin => "normalized_margin",
        }
    }
}

/// cleanlab's knobs, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Which rows are flagged.
    pub filter_by: FilterBy,
    /// How they are ordered.
    pub rank_by: RankBy,
    /// Keep only this fraction of the estimated noise (1.0: all of it). Used by the
    /// three pruning filters only, as in cleanlab.
    pub frac_noise: f64,
    /// A class with at most this many rows is never pruned.
    pub min_examples_per_class: usize,
    /// How many rows to flag per class (pruning filters only). In multi-label, entry
    /// `l` goes to label `l`'s binary problem as cleanlab passes it: `[n, 0]`, i.e.
    /// it counts rows *without* the label.
    pub num_to_remove_per_class: Option<Vec<usize>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            filter_by: FilterBy::default(),
            rank_by: RankBy::default(),
            frac_noise: 1.0,
            min_examples_per_class: 1,
            num_to_remove_per_class: None,
        }
    }
}

/// cleanlab's `FLOATING_POINT_COMPARISON`.
const FLOAT_EPS: f64 = 1e-6;
/// cleanlab's `CONFIDENT_THRESHOLDS_LOWER_BOUND`.
const THRESHOLD_FLOOR: f64 = 2.0 * FLOAT_EPS;
/// cleanlab's `TINY_VALUE`.
const TINY: f64 = 1e-100;
/// The multi-label aggregator's forgetting factor (cleanlab's default).
const EMA_ALPHA: f64 = 0.8;

/// A multi-class problem: `n` rows of `k` probabilities (row-major) and the given class
/// of each row.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// `probs[i * k + j]`: the probability that row `i` is class `j`.
    pub probs: &'a [f64],
    /// Classes.
    pub k: usize,
    /// The given class of each row.
    pub labels: &'a [usize],
}

impl Problem<'_> {
    fn row(&self, i: usize) -> &[f64] {
        &self.probs[i * self.k..(i + 1) * self.k]
    }
    fn n(&self) -> usize {
        self.labels.len()
    }
}

/// Sum as numpy's `np.sum` of a contiguous `float64` array does it (pairwise, eight
/// accumulators per block of up to 128), so means match cleanlab's to the bit.
pub fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, x| s + x)
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// The first index of the largest value (numpy's `argmax`).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (j, &p) in row.iter().enumerate() {
        if p > row[best] {
            best = j;
        }
    }
    best
}

/// Indices of `keys` in ascending order, ties in index order.
fn argsort(keys: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_by(|&a, &b| {
        keys[a]
            .partial_cmp(&keys[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    idx
}

/// Rows per class.
fn label_counts(p: &Problem) -> Vec<usize> {
    let mut c = vec![0; p.k];
    for &l in p.labels {
        c[l] += 1;
    }
    c
}

/// Per-class thresholds: the mean probability of class `j` over rows given `j`.
pub fn confident_thresholds(p: &Problem) -> Vec<f64> {
    (0..p.k)
        .map(|j| {
            let own: Vec<f64> = (0..p.n())
                .filter(|&i| p.labels[i] == j)
                .map(|i| p.row(i)[j])
                .collect();
            let t = if own.is_empty() {
                2.0
            } else {
                np_sum(&own) / own.len() as f64
            };
            t.max(THRESHOLD_FLOOR)
        })
        .collect()
}

/// Rounds each value to an integer keeping the (rounded) total, as cleanlab's
/// `round_preserving_sum` (numpy rounds half to even).
fn round_preserving_sum(floats: &[f64]) -> Vec<i64> {
    let mut ints: Vec<f64> = floats.iter().map(|x| x.round_ties_even()).collect();
    let orig = np_sum(floats).round_ties_even();
    let mut int_sum = np_sum(&ints).round_ties_even();
    while (int_sum - orig).abs() > FLOAT_EPS {
        let diff = (orig - int_sum).round_ties_even();
        let inc = if diff < 0.0 { -1.0 } else { 1.0 };
        let changes = (diff.abs() as usize).min(floats.len());
        let rem: Vec<f64> = floats.iter().zip(&ints).map(|(f, i)| f - i).collect();
        let mut order = argsort(&rem);
        if inc > 0.0 {
            order.reverse();
        }
        for &i in order.iter().take(changes) {
            ints[i] += inc;
        }
        int_sum = np_sum(&ints).round_ties_even();
    }
    ints.iter().map(|&x| x as i64).collect()
}

fn round_preserving_row_totals(m: &[Vec<f64>]) -> Vec<Vec<i64>> {
    m.iter().map(|r| round_preserving_sum(r)).collect()
}

/// The calibrated confident joint `cj[given][true]` and the rows counted off its
/// diagonal (before calibration), as `compute_confident_joint(calibrate=True,
/// return_indices_of_off_diagonals=True)`.
pub fn confident_joint(p: &Problem) -> (Vec<Vec<i64>>, Vec<usize>) {
    let k = p.k;
    let thresholds = confident_thresholds(p);
    let mut cj = vec![vec![0i64; k]; k];
    let mut off = Vec::new();
    for i in 0..p.n() {
        let row = p.row(i);
        let confident: Vec<usize> = (0..k)
            .filter(|&j| row[j] >= thresholds[j] - FLOAT_EPS)
            .collect();
        let guess = match confident.len() {
            0 => continue,
            1 => confident[0],
            _ => argmax(row),
        };
        cj[p.labels[i]][guess] += 1;
        if guess != p.labels[i] {
            off.push(i);
        }
    }
    for (j, r) in cj.iter_mut().enumerate() {
        r[j] = r[j].max(1);
    }
    (calibrate(&cj, &label_counts(p)), off)
}

/// cleanlab's `calibrate_confident_joint`: rows rescaled to the class counts, the
/// whole to the number of rows, rounded preserving row totals.
fn calibrate(cj: &[Vec<i64>], counts: &[usize]) -> Vec<Vec<i64>> {
    let cal: Vec<Vec<f64>> = cj
        .iter()
        .zip(counts)
        .map(|(r, &c)| {
            let s = (r.iter().sum::<i64>() as f64).max(TINY);
            r.iter().map(|&x| x as f64 / s * c as f64).collect()
        })
        .collect();
    let flat: Vec<f64> = cal.iter().flatten().copied().collect();
    let total = np_sum(&flat).max(TINY);
    let n = counts.iter().sum::<usize>() as f64;
    let cal: Vec<Vec<f64>> = cal
        .iter()
        .map(|r| r.iter().map(|x| x / total * n).collect())
        .collect();
    round_preserving_row_totals(&cal)
}

/// cleanlab's `_keep_at_least_n_per_class` then `_reduce_prune_counts`: the pruning
/// matrix `pcm[true][given]` (the joint transposed) with at least `n` kept per class
/// and the off-diagonals scaled by `frac_noise`.
fn keep_at_least_n_per_class(cj: &[Vec<i64>], n: usize, frac_noise: f64) -> Vec<Vec<i64>> {
    let k = cj.len();
    let m: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..k).map(|j| cj[j][i] as f64).collect())
        .collect();
    let new_diag: Vec<f64> = (0..k).map(|j| m[j][j].max(n as f64)).collect();
    let diff: Vec<f64> = (0..k).map(|j| new_diag[j] - m[j][j]).collect();
    let per_col: Vec<f64> = (0..k)
        .map(|j| ((0..k).filter(|&i| m[i][j] != 0.0).count() as f64 - 1.0).max(1.0))
        .collect();
    let mut nm: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            (0..k)
                .map(|j| (m[i][j] - diff[j] / per_col[j]).max(0.0))
                .collect()
        })
        .collect();
    for j in 0..k {
        nm[j][j] = new_diag[j];
    }
    // _reduce_prune_counts: off-diagonals times frac_noise, the difference onto the
    // diagonal, then truncated to integers (numpy's astype(int)).
    let mut red: Vec<Vec<f64>> = nm
        .iter()
        .map(|r| r.iter().map(|x| x * frac_noise).collect())
        .collect();
    for j in 0..k {
        red[j][j] = nm[j][j];
    }
    let col_loss: Vec<f64> = (0..k)
        .map(|j| {
            let col: Vec<f64> = (0..k).map(|i| nm[i][j] - red[i][j]).collect();
            np_sum(&col)
        })
        .collect();
    for j in 0..k {
        red[j][j] = nm[j][j] + col_loss[j];
    }
    let ints: Vec<Vec<f64>> = red
        .iter()
        .map(|r| r.iter().map(|x| x.trunc()).collect())
        .collect();
    round_preserving_row_totals(&ints)
}

/// cleanlab's `num_to_remove_per_class` recalibration of the pruning matrix (its
/// broadcasting reproduced: entry `(i, j)` is divided by row `j`'s total).
fn calibrate_to_remove(pcm: &[Vec<i64>], remove: &[usize], counts: &[usize]) -> Vec<Vec<i64>> {
    let k = pcm.len();
    let row_sum: Vec<f64> = pcm.iter().map(|r| r.iter().sum::<i64>() as f64).collect();
    let psy: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..k).map(|j| pcm[i][j] as f64 / row_sum[j]).collect())
        .collect();
    let noise: Vec<f64> = (0..k).map(|i| np_sum(&psy[i]) - psy[i][i]).collect();
    let mut tmp: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            (0..k)
                .map(|j| psy[i][j] * remove[i] as f64 / noise[i])
                .collect()
        })
        .collect();
    for i in 0..k {
        tmp[i][i] = counts[i] as f64 - remove[i] as f64;
    }
    round_preserving_row_totals(&tmp)
}

/// The self-confidence of every row: the probability of its given class.
pub fn self_confidence(p: &Problem) -> Vec<f64> {
    (0..p.n()).map(|i| p.row(i)[p.labels[i]]).collect()
}

/// The normalised margin of every row: `(p[given] - max p[other] + 1) / 2`.
pub fn normalized_margin(p: &Problem) -> Vec<f64> {
    (0..p.n())
        .map(|i| {
            let row = p.row(i);
            let l = p.labels[i];
            let other = row
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != l)
                .map(|(_, &x)| x)
                .fold(f64::NEG_INFINITY, f64::max);
            (row[l] - other + 1.0) / 2.0
        })
        .collect()
}

/// The label-quality score of every row under `rank_by` (lower: more suspicious).
pub fn quality_scores(p: &Problem, rank_by: RankBy) -> Vec<f64> {
    match rank_by {
        RankBy::SelfConfidence => self_confidence(p),
        RankBy::NormalizedMargin => normalized_margin(p),
    }
}

/// One class's pruning rule: sets the flags of the rows it prunes.
type PruneFn<'a> = dyn Fn(&mut Vec<bool>, usize, &[usize]) + 'a;

/// Which rows of a multi-class problem have label issues (a mask).
pub fn find_label_issues_mask(p: &Problem, opts: &Options) -> Vec<bool> {
    let (n, k) = (p.n(), p.k);
    let (cj, off) = confident_joint(p);
    let counts = label_counts(p);
    let mut mask = vec![false; n];
    let pruning = matches!(
        opts.filter_by,
        FilterBy::PruneByNoiseRate | FilterBy::PruneByClass | FilterBy::Both
    );
    if pruning {
        let mut pcm = keep_at_least_n_per_class(&cj, opts.min_examples_per_class, opts.frac_noise);
        if let Some(remove) = &opts.num_to_remove_per_class {
            pcm = calibrate_to_remove(&pcm, remove, &counts);
        }
        let rows_of: Vec<Vec<usize>> = (0..k)
            .map(|c| (0..n).filter(|&i| p.labels[i] == c).collect())
            .collect();
        let by_class = |flag: &mut Vec<bool>, c: usize, rows: &[usize]| {
            let num = rows.len() as i64 - pcm[c][c];
            if num >= 1 {
                let probs: Vec<f64> = rows.iter().map(|&i| p.row(i)[c]).collect();
                for &r in argsort(&probs).iter().take(num as usize) {
                    flag[rows[r]] = true;
                }
            }
        };
        let by_count = |flag: &mut Vec<bool>, c: usize, rows: &[usize]| {
            for j in (0..k).filter(|&j| j != c) {
                let num = pcm[j][c];
                if num > 0 {
                    let neg_margin: Vec<f64> =
                        rows.iter().map(|&i| -(p.row(i)[j] - p.row(i)[c])).collect();
                    for &r in argsort(&neg_margin).iter().take(num as usize) {
                        flag[rows[r]] = true;
                    }
                }
            }
        };
        let run = |f: &PruneFn| {
            let mut flag = vec![false; n];
            for (c, rows) in rows_of.iter().enumerate() {
                // A class at or under the minimum is never pruned; cleanlab also
                // ignores the mask of a class with a single row.
                if rows.len() > opts.min_examples_per_class && rows.len() > 1 {
                    f(&mut flag, c, rows);
                }
            }
            flag
        };
        mask = match opts.filter_by {
            FilterBy::PruneByClass => run(&by_class),
            FilterBy::PruneByNoiseRate => run(&by_count),
            _ => {
                let a = run(&by_class);
                let b = run(&by_count);
                a.iter().zip(&b).map(|(x, y)| *x && *y).collect()
            }
        };
    }
    match opts.filter_by {
        FilterBy::ConfidentLearning => off.iter().for_each(|&i| mask[i] = true),
        FilterBy::PredictedNeqGiven => {
            (0..n).for_each(|i| mask[i] = argmax(p.row(i)) != p.labels[i]);
        }
        _ => {}
    }
    // cleanlab's `_reduce_issues`: never flag a row whose given class is (within
    // 1e-6) its argmax.
    for (i, m) in mask.iter_mut().enumerate() {
        let mut row = p.row(i).to_vec();
        row[p.labels[i]] += FLOAT_EPS;
        if argmax(&row) == p.labels[i] {
            *m = false;
        }
    }
    mask
}

/// The rows of a multi-class problem with label issues, most suspicious first (lowest
/// quality score under `opts.rank_by`).
pub fn find_label_issues(p: &Problem, opts: &Options) -> Vec<usize> {
    let mask = find_label_issues_mask(p, opts);
    let scores = quality_scores(p, opts.rank_by);
    rank(&mask, &scores)
}

/// Indices where `mask` is set, in ascending `scores`, ties in index order.
fn rank(mask: &[bool], scores: &[f64]) -> Vec<usize> {
    let idx: Vec<usize> = (0..mask.len()).filter(|&i| mask[i]).collect();
    let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
    argsort(&s).into_iter().map(|r| idx[r]).collect()
}

/// The outcome of a multi-label search.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiLabelIssues {
    /// Flagged rows, most suspicious first.
    pub ranked: Vec<usize>,
    /// Per label, the rows flagged for it (ascending).
    pub per_label: Vec<Vec<usize>>,
    /// Per row, the aggregated quality score that orders `ranked` (`NaN` for a row
    /// with no known label).
    pub row_score: Vec<f64>,
    /// Per row and label (row-major), that label's binary quality score (`NaN` where
    /// unknown).
    pub label_score: Vec<f64>,
}

/// Label issues of a multi-label problem: `probs[i * k + l]` is the probability that
/// row `i` has label `l`, `labels[i * k + l]` whether it is given (`None`: unknown,
/// masked out of label `l`'s problem).
pub fn find_multilabel_issues(
    probs: &[f64],
    k: usize,
    labels: &[Option<bool>],
    opts: &Options,
) -> MultiLabelIssues {
    let n = probs.len().checked_div(k).unwrap_or(0);
    let mut flagged = vec![false; n];
    let mut per_label = Vec::with_capacity(k);
    let mut label_score = vec![f64::NAN; n * k];
    for l in 0..k {
        let rows: Vec<usize> = (0..n).filter(|&i| labels[i * k + l].is_some()).collect();
        let mut bin = Vec::with_capacity(rows.len() * 2);
        let mut y = Vec::with_capacity(rows.len());
        for &i in &rows {
            let q = probs[i * k + l];
            bin.extend_from_slice(&[1.0 - q, q]);
            y.push(usize::from(labels[i * k + l] == Some(true)));
        }
        let p = Problem {
            probs: &bin,
            k: 2,
            labels: &y,
        };
        let mut o = opts.clone();
        o.num_to_remove_per_class = opts.num_to_remove_per_class.as_ref().map(|r| vec![r[l], 0]);
        let mask = if rows.is_empty() {
            Vec::new()
        } else {
            find_label_issues_mask(&p, &o)
        };
        let mut mine = Vec::new();
        for (r, &i) in rows.iter().enumerate() {
            if mask[r] {
                flagged[i] = true;
                mine.push(i);
            }
        }
        per_label.push(mine);
        for (r, s) in quality_scores(&p, opts.rank_by).into_iter().enumerate() {
            label_score[rows[r] * k + l] = s;
        }
    }
    let row_score: Vec<f64> = (0..n)
        .map(|i| {
            let mut s: Vec<f64> = label_score[i * k..(i + 1) * k]
                .iter()
                .copied()
                .filter(|x| !x.is_nan())
                .collect();
            ema_descending(&mut s)
        })
        .collect();
    MultiLabelIssues {
        ranked: rank(&flagged, &row_score),
        per_label,
        row_score,
        label_score,
    }
}

/// cleanlab's `exponential_moving_average` with alpha 0.8: scores sorted descending,
/// `ema = alpha * s_t + (1 - alpha) * ema`, starting from the largest. `NaN` if empty.
fn ema_descending(s: &mut [f64]) -> f64 {
    s.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    let Some((&first, rest)) = s.split_first() else {
        return f64::NAN;
    };
    rest.iter()
        .fold(first, |ema, &x| EMA_ALPHA * x + (1.0 - EMA_ALPHA) * ema)
}

#[cfg(test)]
mod tests {
    use super::*;

    use vigil_data::rng::SplitMix64;

    #[test]
    fn pairwise_sum_matches_a_plain_sum_closely_and_small_sums_exactly() {
        let a: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin().abs()).collect();
        let plain: f64 = a.iter().sum();
        assert!((np_sum(&a) - plain).abs() < 1e-9);
        assert_eq!(np_sum(&[0.1, 0.2, 0.3]), 0.1 + 0.2 + 0.3);
        assert_eq!(np_sum(&[]), 0.0);
    }

    #[test]
    fn rounding_preserves_the_total_and_rounds_half_to_even() {
        assert_eq!(round_preserving_sum(&[0.5, 1.5, 2.0]), vec![0, 2, 2]);
        let r = round_preserving_sum(&[0.4, 0.4, 0.4, 0.8]);
        assert_eq!(r.iter().sum::<i64>(), 2);
        assert_eq!(r, vec![0, 0, 1, 1]);
    }

    #[test]
    fn thresholds_are_mean_self_confidence_and_a_missing_class_gets_two() {
        let probs = [0.9, 0.1, 0.0, 0.7, 0.3, 0.0, 0.2, 0.8, 0.0];
        let p = Problem {
            probs: &probs,
            k: 3,
            labels: &[0, 0, 1],
        };
        assert_eq!(confident_thresholds(&p), vec![(0.9 + 0.7) / 2.0, 0.8, 2.0]);
    }

    #[test]
    fn a_row_above_several_thresholds_counts_for_its_overall_argmax() {
        // Thresholds: class 0 = 0.5, class 1 = 0.3, class 2 = 0.9. Row 2 passes those
        // of classes 0 and 1 but its argmax is class 2, whose threshold it misses:
        // cleanlab counts it as class 2 (not the argmax among 0 and 1).
        let probs = [
            0.5, 0.1, 0.4, //
            0.1, 0.3, 0.6, //
            0.5, 0.3, 0.6, //
            0.05, 0.05, 0.9,
        ];
        let p = Problem {
            probs: &probs,
            k: 3,
            labels: &[0, 1, 0, 2],
        };
        let (_, off) = confident_joint(&p);
        assert!(
            off.contains(&2),
            "argmax 2 differs from the given 0: {off:?}"
        );
        // Row 1 passes only class 1's threshold (0.6 < 0.9): it counts as class 1.
        assert!(!off.contains(&1), "{off:?}");
    }

    #[test]
    fn the_calibrated_joint_has_the_class_counts_as_row_totals() {
        let mut rng = SplitMix64::new(7);
        let (n, k) = (300, 4);
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let l = i % k;
            let mut row: Vec<f64> = (0..k).map(|_| rng.unit()).collect();
            row[l] += 1.5;
            let s: f64 = row.iter().sum();
            probs.extend(row.iter().map(|x| x / s));
            labels.push(l);
        }
        let p = Problem {
            probs: &probs,
            k,
            labels: &labels,
        };
        let (cj, _) = confident_joint(&p);
        for (c, r) in cj.iter().enumerate() {
            assert_eq!(
                r.iter().sum::<i64>(),
                labels.iter().filter(|&&l| l == c).count() as i64
            );
        }
    }

    #[test]
    fn a_flipped_label_is_found_and_ranked_first_by_every_filter() {
        let mut rng = SplitMix64::new(11);
        let (n, k) = (200, 3);
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let truth = i % k;
            let mut row: Vec<f64> = (0..k).map(|_| 0.1 * rng.unit()).collect();
            row[truth] += 0.8;
            let s: f64 = row.iter().sum();
            probs.extend(row.iter().map(|x| x / s));
            labels.push(truth);
        }
        // Row 5 (truly class 2) given class 0, and extremely confidently class 2.
        labels[5] = 0;
        probs[5 * k..6 * k].copy_from_slice(&[0.001, 0.001, 0.998]);
        let p = Problem {
            probs: &probs,
            k,
            labels: &labels,
        };
        for (name, f) in FilterBy::ALL {
            for rank_by in [RankBy::SelfConfidence, RankBy::NormalizedMargin] {
                let opts = Options {
                    filter_by: f,
                    rank_by,
                    ..Options::default()
                };
                let got = find_label_issues(&p, &opts);
                assert_eq!(got.first(), Some(&5), "{name}: {got:?}");
            }
        }
    }

    #[test]
    fn a_class_at_the_minimum_is_never_pruned() {
        // Class 1 has two rows, both more likely class 0.
        let probs = [0.9, 0.1, 0.8, 0.2, 0.95, 0.05, 0.9, 0.1, 0.85, 0.15];
        let labels = [0, 0, 1, 1, 0];
        let p = Problem {
            probs: &probs,
            k: 2,
            labels: &labels,
        };
        // cleanlab 2.9.0 gives [2] here, and nothing with a minimum of 2.
        assert_eq!(find_label_issues(&p, &Options::default()), vec![2]);
        let opts = Options {
            min_examples_per_class: 2,
            ..Options::default()
        };
        assert!(find_label_issues(&p, &opts).is_empty());
    }

    #[test]
    fn multilabel_masks_unknown_labels_and_ranks_by_the_moving_average() {
        // Label 0 known everywhere; label 1 unknown for row 0, which would otherwise
        // be a glaring issue (given 1 at probability 0.0).
        let probs = [
            0.95, 0.0, 0.9, 0.9, 0.1, 0.1, 0.05, 0.05, 0.9, 0.9, 0.97, 0.1,
        ];
        let labels = [
            Some(false),
            None,
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(false),
            Some(false),
            Some(true),
            Some(true),
            Some(true),
            Some(false),
        ];
        let got = find_multilabel_issues(&probs, 2, &labels, &Options::default());
        assert_eq!(got.ranked, vec![0]);
        assert_eq!(got.per_label, vec![vec![0], vec![]]);
        assert!(got.label_score[1].is_nan());
        assert!((got.row_score[0] - 0.05).abs() < 1e-12);
        // Two known labels: sorted descending, then 0.8 * low + 0.2 * high.
        let mut s = [0.2, 0.9];
        assert!((ema_descending(&mut s) - (0.8 * 0.2 + 0.2 * 0.9)).abs() < 1e-15);
    }

    #[test]
    fn names_round_trip() {
        for (name, f) in FilterBy::ALL {
            assert_eq!(FilterBy::parse(name), Some(f));
            assert_eq!(f.name(), name);
        }
        assert_eq!(
            RankBy::parse("normalized_margin"),
            Some(RankBy::NormalizedMargin)
        );
        assert_eq!(RankBy::parse("entropy"), None);
    }
}
