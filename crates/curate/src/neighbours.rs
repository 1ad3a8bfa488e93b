//! Neighbours in embedding space: exact cosine k-nearest neighbours, near-duplicate
//! pairs, conflicting duplicates and outliers, from the vectors `vigil embed` writes.
//!
//! # Input
//! One JSON object per line, `{"id": …, "embedding": [f32, …]}`, or with
//! `text_embedding` / `image_embedding` (a trained model's export writes all three).
//! The key is the caller's pick; by default `embedding` when the file has it, else
//! the single vector key the file has (two without `embedding` is an error asking for
//! a pick). A row written with its `id` only (the encoder could not embed it) takes
//! no part. Ids may be strings or integers, as `vigil embed` copies them.
//!
//! # Search
//! Exact brute force over L2-normalised vectors: every row against every other,
//! query rows split over threads ([`std::thread::scope`]) and the other rows scanned
//! in tiles that stay in cache. 10k × 384 is about 4·10¹⁰ multiply-adds, seconds on a
//! laptop; an approximate index would make results depend on its build, and this
//! runs once per dataset, not per query. A zero vector has similarity 0 to all.
//!
//! # Outliers, as cleanlab's Datalab scores them
//! Cosine distance `d = 1 - similarity` (cleanlab's metric for more than 3
//! dimensions), exact duplicates at distance 0 (cleanlab's correction). For each row
//! the mean distance to its `k` nearest neighbours (`k` = 10, at most N - 1), then
//! `score = exp(-mean / max(median of means, 100·eps, 1e-6))` (`OutOfDistribution`,
//! `t` = 1), 1 where the mean is below 100·epsneg. Flagged by Datalab's rule: a mean
//! above `Q3 + (1/0.37037 - 1)·IQR` of all means (numpy's linear percentiles) — or,
//! when a fraction is given, that fraction of rows with the lowest scores.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

use crate::error::CurateError;
use crate::jsonl;

/// The keys `vigil embed` writes vectors under, in the order a default is picked.
pub const KEYS: [&str; 3] = ["embedding", "text_embedding", "image_embedding"];

/// Datalab's default outlier threshold for features.
pub const DATALAB_THRESHOLD: f64 = 0.37037;

/// Rows per tile of the scan (a tile of 384-dim rows is 192 KiB).
const TILE: usize = 128;

/// The vectors of one file, L2-normalised, with their ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The key the vectors were read from.
    pub key: String,
    /// Id per vector.
    pub ids: Vec<String>,
    /// Dimensions.
    pub dim: usize,
    /// Unit vectors, row-major (`ids.len() * dim`; a zero vector stays zero).
    pub unit: Vec<f32>,
    /// The vectors as read, to tell exact duplicates apart.
    pub raw: Vec<f32>,
}

/// An id as a string (integers as their digits).
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

impl Embeddings {
    /// Builds from ids and raw vectors (all of length `dim`).
    pub fn new(key: &str, ids: Vec<String>, dim: usize, raw: Vec<f32>) -> Self {
        let mut unit = raw.clone();
        for v in unit.chunks_mut(dim.max(1)) {
            let norm = v
                .iter()
                .map(|x| f64::from(*x) * f64::from(*x))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                v.iter_mut()
                    .for_each(|x| *x = (f64::from(*x) / norm) as f32);
            }
        }
        Self {
            key: key.to_string(),
            ids,
            dim,
            unit,
            raw,
        }
    }

    /// Reads a `vigil embed` file; `key` picks the vector (see the module docs).
    pub fn read(path: &Path, key: Option<&str>) -> Result<Self, CurateError> {
        let rows = jsonl::read_lines(path)?;
        let bad = |line: usize, message: String| jsonl::bad(path, line, message);
        let present: BTreeSet<&str> = rows
            .iter()
            .flat_map(|(_, m)| m.iter())
            .filter(|(k, v)| k.as_str() != "id" && v.is_array())
            .map(|(k, _)| k.as_str())
            .collect();
        let key = match key {
            Some(k) => k.to_string(),
            None if present.contains("embedding") => "embedding".into(),
            None if present.len() == 1 => present.iter().next().unwrap_or(&"").to_string(),
            None if present.is_empty() => {
                return Err(CurateError::Usage {
                    message: format!("{}: no vectors (no `embedding` key)", path.display()),
                });
            }
            None => {
                return Err(CurateError::Usage {
                    message: format!(
                        "{}: several vector keys ({}); pick one with --embedding-key",
                        path.display(),
                        present.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        };
        let (mut ids, mut raw, mut dim) = (Vec::new(), Vec::new(), None::<usize>);
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (line, m) in &rows {
            let id = m
                .get("id")
                .and_then(id_string)
                .ok_or_else(|| bad(*line, "no `id` (a string or an integer)".into()))?;
            if let Some(first) = seen.insert(id.clone(), *line) {
                return Err(bad(*line, format!("id '{id}' is also on line {first}")));
            }
            let Some(v) = m.get(&key) else { continue };
            let Some(arr) = v.as_array() else {
                return Err(bad(*line, format!("`{key}` is not an array")));
            };
            let d = *dim.get_or_insert(arr.len());
            if arr.len() != d || d == 0 {
                return Err(bad(
                    *line,
                    format!("`{key}` has {} numbers, not {d}", arr.len()),
                ));
            }
            for x in arr {
                let x = x
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| bad(*line, format!("`{key}` holds a non-number")))?;
                raw.push(x as f32);
            }
            ids.push(id);
        }
        if ids.is_empty() {
            return Err(CurateError::Usage {
                message: format!("{}: no row has a `{key}` vector", path.display()),
            });
        }
        Ok(Self::new(&key, ids, dim.unwrap_or(0), raw))
    }

    /// Vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn unit_row(&self, i: usize) -> &[f32] {
        &self.unit[i * self.dim..(i + 1) * self.dim]
    }

    fn raw_row(&self, i: usize) -> &[f32] {
        &self.raw[i * self.dim..(i + 1) * self.dim]
    }
}

/// Two rows whose cosine similarity reaches the duplicate threshold (`a < b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// One row (index into the embeddings).
    pub a: usize,
    /// The other row.
    pub b: usize,
    /// Their cosine similarity.
    pub similarity: f32,
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// Per row, its `k` nearest other rows as `(row, cosine distance)`, nearest first.
    pub knn: Vec<Vec<(usize, f64)>>,
    /// Every pair at or above the duplicate threshold, most similar first.
    pub pairs: Vec<Pair>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight lanes so the compiler vectorises without reassociation licence.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Exact `k` nearest neighbours of every row and all pairs with similarity
/// `>= threshold`, on `threads` threads.
pub fn search(emb: &Embeddings, k: usize, threshold: f32, threads: usize) -> Neighbours {
    let n = emb.len();
    let k = k.min(n.saturating_sub(1));
    let threads = threads.clamp(1, n.max(1));
    let per = n.div_ceil(threads).max(1);
    let chunks: Vec<Scanned> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| {
                let end = (start + per).min(n);
                s.spawn(move || scan(emb, start..end, k, threshold))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a search thread panicked"))
            .collect()
    });
    let mut knn = Vec::with_capacity(n);
    let mut pairs = Vec::new();
    for (kn, p) in chunks {
        knn.extend(kn);
        pairs.extend(p);
    }
    pairs.sort_by(|x, y| {
        y.similarity
            .total_cmp(&x.similarity)
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    Neighbours { knn, pairs }
}

/// What one thread's scan finds: the neighbour lists of its rows and its pairs.
type Scanned = (Vec<Vec<(usize, f64)>>, Vec<Pair>);

/// Scans query rows `rows` against all rows, tile by tile.
fn scan(emb: &Embeddings, rows: std::ops::Range<usize>, k: usize, threshold: f32) -> Scanned {
    let n = emb.len();
    let mut best: Vec<Vec<(usize, f64)>> = vec![Vec::with_capacity(k + 1); rows.len()];
    let mut pairs = Vec::new();
    for q0 in rows.clone().step_by(TILE) {
        let q1 = (q0 + TILE).min(rows.end);
        for t0 in (0..n).step_by(TILE) {
            let t1 = (t0 + TILE).min(n);
            for q in q0..q1 {
                let qv = emb.unit_row(q);
                let list = &mut best[q - rows.start];
                for j in t0..t1 {
                    if j == q {
                        continue;
                    }
                    let sim = dot(qv, emb.unit_row(j));
                    if j > q && sim >= threshold {
                        pairs.push(Pair {
                            a: q,
                            b: j,
                            similarity: sim.min(1.0),
                        });
                    }
                    let mut d = (1.0 - f64::from(sim)).max(0.0);
                    if d < 1e-5 && emb.raw_row(q) == emb.raw_row(j) {
                        d = 0.0;
                    }
                    insert(list, k, (j, d));
                }
            }
        }
    }
    (best, pairs)
}

/// Keeps `list` the `k` smallest distances, ascending (ties: lower row first).
fn insert(list: &mut Vec<(usize, f64)>, k: usize, item: (usize, f64)) {
    if k == 0 || (list.len() == k && item.1 >= list[k - 1].1) {
        return;
    }
    let at = list.partition_point(|&(j, d)| d < item.1 || (d == item.1 && j < item.0));
    list.insert(at, item);
    list.truncate(k);
}

/// Which rows are called outliers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutlierRule {
    /// Datalab's: mean distance above `Q3 + (1/threshold - 1)·IQR` (default threshold
    /// [`DATALAB_THRESHOLD`]).
    Iqr {
        /// Datalab's `threshold` in `(0, 1]`.
        threshold: f64,
    },
    /// This fraction of all rows (rounded down), lowest scores first.
    Fraction(f64),
}

impl Default for OutlierRule {
    fn default() -> Self {
        Self::Iqr {
            threshold: DATALAB_THRESHOLD,
        }
    }
}

/// Outlier scores and the flagged rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Outliers {
    /// Per row, the mean cosine distance to its nearest neighbours.
    pub mean_distance: Vec<f64>,
    /// Per row, `exp(-mean / scale)` in `(0, 1]`; low is atypical.
    pub score: Vec<f64>,
    /// The scale: the median of the means (floored as cleanlab does).
    pub scale: f64,
    /// The flagged rows, lowest score first.
    pub flagged: Vec<usize>,
}

/// numpy's `percentile` (linear interpolation) of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = (sorted.len() - 1) as f64 * q / 100.0;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Scores every row as Datalab's outlier check does and flags by `rule`.
pub fn outliers(nb: &Neighbours, rule: OutlierRule) -> Outliers {
    let mean_distance: Vec<f64> = nb
        .knn
        .iter()
        .map(|l| {
            if l.is_empty() {
                0.0
            } else {
                crate::confident::np_sum(&l.iter().map(|x| x.1).collect::<Vec<_>>())
                    / l.len() as f64
            }
        })
        .collect();
    let n = mean_distance.len();
    if n == 0 {
        return Outliers {
            mean_distance,
            score: Vec::new(),
            scale: 0.0,
            flagged: Vec::new(),
        };
    }
    let mut sorted = mean_distance.clone();
    sorted.sort_by(f64::total_cmp);
    let median = percentile(&sorted, 50.0);
    let scale = median.max(100.0 * f64::EPSILON);
    let tolerance = 100.0 * f64::EPSILON / 2.0; // numpy's epsneg for float64
    let score: Vec<f64> = mean_distance
        .iter()
        .map(|&d| {
            if d < tolerance {
                1.0
            } else {
                (-d / scale.max(1e-6)).exp()
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
    let flagged = match rule {
        OutlierRule::Fraction(f) => {
            order.truncate(((f.clamp(0.0, 1.0) * n as f64).floor()) as usize);
            order
        }
        OutlierRule::Iqr { threshold } => {
            let (q1, q3) = (percentile(&sorted, 25.0), percentile(&sorted, 75.0));
            let scale = if threshold == 0.0 {
                f64::INFINITY
            } else {
                1.0 / threshold - 1.0
            };
            let cut = q3 + scale * (q3 - q1);
            order.retain(|&i| mean_distance[i] > cut);
            order
        }
    };
    Outliers {
        mean_distance,
        score,
        scale,
        flagged,
    }
}

/// The labels two rows disagree on: indices `l` where both are known and differ.
pub fn disagreement(a: &[Option<bool>], b: &[Option<bool>]) -> Vec<usize> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| matches!((x, y), (Some(p), Some(q)) if p != q))
        .map(|(l, _)| l)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(vs: &[&[f32]]) -> Embeddings {
        let ids = (0..vs.len()).map(|i| format!("r{i}")).collect();
        Embeddings::new("embedding", ids, vs[0].len(), vs.concat())
    }

    #[test]
    fn neighbours_are_exact_and_duplicates_are_paired() {
        let e = emb(&[
            &[1.0, 0.0, 0.0],
            &[2.0, 0.0, 0.0],
            &[0.9, 0.1, 0.0],
            &[0.0, 0.0, 1.0],
        ]);
        for threads in [1, 3] {
            let nb = search(&e, 2, 0.95, threads);
            assert_eq!(
                nb.knn[0].iter().map(|x| x.0).collect::<Vec<_>>(),
                vec![1, 2]
            );
            assert!(nb.knn[0][0].1 < 1e-6);
            assert_eq!(nb.knn[3].len(), 2);
            let p: Vec<(usize, usize)> = nb.pairs.iter().map(|p| (p.a, p.b)).collect();
            assert_eq!(p, vec![(0, 1), (0, 2), (1, 2)]);
        }
    }

    #[test]
    fn a_far_row_is_the_outlier_under_both_rules() {
        let mut vs: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                vec![
                    1.0,
                    (i as f32 * 0.01).sin() * 0.1,
                    0.05 * (i % 3) as f32,
                    0.0,
                ]
            })
            .collect();
        vs.push(vec![0.0, 0.0, 0.0, 1.0]);
        let refs: Vec<&[f32]> = vs.iter().map(|v| v.as_slice()).collect();
        let nb = search(&emb(&refs), 10, 0.999, 2);
        let o = outliers(&nb, OutlierRule::default());
        assert_eq!(o.flagged, vec![40]);
        assert!(o.score[40] < 1e-6 && o.score[0] > 0.05, "{:?}", o.score);
        let o = outliers(&nb, OutlierRule::Fraction(0.05));
        assert_eq!(o.flagged.len(), 2);
        assert_eq!(o.flagged[0], 40);
    }

    #[test]
    fn exact_duplicates_score_one() {
        let e = emb(&[&[0.3, 0.4], &[0.3, 0.4], &[0.3, 0.4]]);
        let o = outliers(&search(&e, 2, 0.95, 1), OutlierRule::default());
        assert_eq!(o.score, vec![1.0, 1.0, 1.0]);
        assert!(o.flagged.is_empty());
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&s, 75.0), 3.25);
        assert_eq!(percentile(&s, 50.0), 2.5);
    }

    #[test]
    fn the_key_defaults_to_embedding_then_the_single_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        std::fs::write(&p, "{\"id\":1,\"text_embedding\":[1,0]}\n{\"id\":\"b\"}\n").unwrap();
        let e = Embeddings::read(&p, None).unwrap();
        assert_eq!(
            (e.key.as_str(), e.ids.clone()),
            ("text_embedding", vec!["1".to_string()])
        );
        std::fs::write(
            &p,
            "{\"id\":1,\"text_embedding\":[1,0],\"image_embedding\":[1]}\n",
        )
        .unwrap();
        let err = Embeddings::read(&p, None).unwrap_err();
        assert!(
            err.is_usage() && err.to_string().contains("--embedding-key"),
            "{err}"
        );
        assert_eq!(
            Embeddings::read(&p, Some("image_embedding")).unwrap().dim,
            1
        );
        std::fs::write(
            &p,
            "{\"id\":1,\"embedding\":[1,0]}\n{\"id\":2,\"embedding\":[1]}\n",
        )
        .unwrap();
        let err = Embeddings::read(&p, None).unwrap_err().to_string();
        assert!(err.contains("e.jsonl:2") && err.contains("not 2"), "{err}");
    }

    #[test]
    fn disagreement_ignores_unknown_labels() {
        let a = [Some(true), None, Some(false)];
        let b = [Some(false), Some(true), Some(false)];
        assert_eq!(disagreement(&a, &b), vec![0]);
    }
}
