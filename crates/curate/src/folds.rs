//! K-fold assignment for `vigil crossval`, and the out-of-fold scores file.
//!
//! # Assignment
//! Rows that must be scored by a model that never saw their twin go to one fold
//! together: exact duplicates (the same normalised text and the same image
//! content, the key [`FoldRow::duplicate_key`] carries) and rows sharing a group
//! (`--group-by meta.FIELD`) are joined into one *group* (transitively: a duplicate
//! of a row in group A that sits in group B joins A and B). Groups are then dealt to
//! folds as scikit-learn's `StratifiedGroupKFold` does, greedily: in a seeded
//! shuffled order, stably sorted by size (largest first, so the small groups fill
//! the gaps), each group goes to the fold where it leaves the label distribution
//! and the fold sizes closest to even (the sum of squared deviations of each fold's
//! share of every label's positives, and of the rows, from `1/K`). Ties go to the
//! smallest fold, then the lowest index. The result depends on the rows, `K` and the
//! seed only.
//!
//! # Out-of-fold scores
//! Each fold's model scores its held-out fold in its last evaluation
//! (`<fold run>/eval/step-<S>.scores.jsonl`, the model training ended with). The
//! scores of every fold, joined in the training file's order with a `"fold"` field,
//! are `oof.jsonl`: the same line format as the evaluation's scored rows, so
//! `vigil report` and `vigil datasets issues` read it as they read any scored rows.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};
use vigil_data::rng::SplitMix64;
use vigil_data::{Dataset, normalise_text};
use vigil_eval::scored::{ScoredRow, ScoredRows};

use crate::CurateError;

/// What the assignment needs to know of one training row.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldRow {
    /// The row's id.
    pub id: String,
    /// Exact-duplicate key (normalised text and image digest); rows with equal keys
    /// share a fold. `None` for a row that can have no duplicate.
    pub duplicate_key: Option<String>,
    /// The value of the `--group-by` field, if the row has one.
    pub group: Option<String>,
    /// Known label values, in label order (`None`: unknown).
    pub labels: Vec<Option<bool>>,
}

/// The fold of every row, and how the folds came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Folds {
    /// Number of folds.
    pub k: usize,
    /// The fold of row `i` (in input order).
    pub fold_of: Vec<usize>,
    /// Groups formed (rows that must stay together), by size.
    pub groups: usize,
    /// Rows per fold.
    pub rows: Vec<usize>,
    /// Known positives per fold and label.
    pub positives: Vec<Vec<usize>>,
}

impl Folds {
    /// The row indices of fold `f`, in input order.
    pub fn members(&self, f: usize) -> Vec<usize> {
        (0..self.fold_of.len())
            .filter(|&i| self.fold_of[i] == f)
            .collect()
    }
}

/// Union-find with path halving.
struct Union(Vec<usize>);

impl Union {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            // The smaller index is the root: the grouping does not depend on the
            // order joins happen in.
            let (lo, hi) = (a.min(b), a.max(b));
            self.0[hi] = lo;
        }
    }
}

/// The assignment's view of `ds`'s rows: the duplicate key is the audit's
/// normalised text and the sha256 of the image file's bytes, and the group the
/// value of `meta.<group_field>` (a string, or any other JSON value as written).
pub fn fold_rows(ds: &Dataset, group_field: Option<&str>) -> Result<Vec<FoldRow>, CurateError> {
    ds.examples()
        .iter()
        .map(|e| {
            let text = e.text.as_deref().map(normalise_text).unwrap_or_default();
            let image = match &e.image {
                None => String::new(),
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|source| CurateError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    hex::encode(Sha256::digest(&bytes))
                }
            };
            let group = group_field.and_then(|f| match e.meta.as_ref()?.get(f)? {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            });
            Ok(FoldRow {
                id: e.id.clone(),
                duplicate_key: Some(format!("{text}\u{1f}{image}")),
                group,
                labels: e.labels.clone(),
            })
        })
        .collect()
}

/// Deals `rows` into `k` folds (see the module docs). `k` must be at least 2 and at
/// most the number of groups.
pub fn assign(rows: &[FoldRow], k: usize, seed: u64) -> Result<Folds, CurateError> {
    if k < 2 {
        return Err(CurateError::Usage {
            message: format!("--folds must be at least 2, got {k}"),
        });
    }
    let n = rows.len();
    let mut union = Union((0..n).collect());
    let mut first_by_key: HashMap<(u8, &str), usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let keys = [
            r.duplicate_key.as_deref().map(|key| (0u8, key)),
            r.group.as_deref().map(|g| (1u8, g)),
        ];
        for key in keys.into_iter().flatten() {
            match first_by_key.get(&key) {
                Some(&j) => union.join(i, j),
                None => {
                    first_by_key.insert(key, i);
                }
            }
        }
    }
    // Groups in order of their first row, so the shuffle below is the only
    // source of order.
    let mut group_of_root: HashMap<usize, usize> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        let root = union.find(i);
        let g = *group_of_root.entry(root).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[g].push(i);
    }
    if members.len() < k {
        return Err(CurateError::Usage {
            message: format!(
                "--folds {k} needs at least {k} groups of rows, but the {n} rows form {} \
                 (duplicates and --group-by values keep rows together)",
                members.len()
            ),
        });
    }
    let labels = rows.first().map_or(0, |r| r.labels.len());
    let positives_of = |g: &[usize]| -> Vec<usize> {
        (0..labels)
            .map(|l| {
                g.iter()
                    .filter(|&&i| rows[i].labels[l] == Some(true))
                    .count()
            })
            .collect()
    };
    let mut order: Vec<usize> = (0..members.len()).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order.sort_by_key(|&g| std::cmp::Reverse(members[g].len()));

    let total_pos: Vec<usize> = positives_of(&(0..n).collect::<Vec<_>>());
    let mut fold_rows = vec![0usize; k];
    let mut fold_pos = vec![vec![0usize; labels]; k];
    let mut fold_of = vec![0usize; n];
    let even = 1.0 / k as f64;
    for g in order {
        let g_rows = members[g].len();
        let g_pos = positives_of(&members[g]);
        let cost = |f: usize| -> f64 {
            let mut c = 0.0;
            for ff in 0..k {
                let add = ff == f;
                let r = fold_rows[ff] + if add { g_rows } else { 0 };
                c += (r as f64 / n as f64 - even).powi(2);
                for l in 0..labels {
                    if total_pos[l] == 0 {
                        continue;
                    }
                    let p = fold_pos[ff][l] + if add { g_pos[l] } else { 0 };
                    c += (p as f64 / total_pos[l] as f64 - even).powi(2);
                }
            }
            c
        };
        let best = (0..k)
            .map(|f| (cost(f), fold_rows[f], f))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
            .map(|(_, _, f)| f)
            .unwrap_or(0);
        fold_rows[best] += g_rows;
        for l in 0..labels {
            fold_pos[best][l] += g_pos[l];
        }
        for &i in &members[g] {
            fold_of[i] = best;
        }
    }
    if let Some(f) = fold_rows.iter().position(|&r| r == 0) {
        return Err(CurateError::Usage {
            message: format!("fold {f} of {k} came out empty; use fewer folds"),
        });
    }
    Ok(Folds {
        k,
        fold_of,
        groups: members.len(),
        rows: fold_rows,
        positives: fold_pos,
    })
}

/// One out-of-fold row: a fold's scored held-out row and the fold that scored it.
#[derive(Debug, Clone, PartialEq)]
pub struct OofRow {
    /// The fold whose model scored this row (it was held out of that model's training).
    pub fold: usize,
    /// The row with its scores.
    pub row: ScoredRow,
}

/// Joins each fold's scored held-out rows into one list in the training file's
/// order (`ids`, with the fold of each in `folds`). Every fold must have scored
/// exactly its own rows: anything else means a fold's run directory is not the one
/// this assignment made (an error naming the fold and the id).
pub fn join_out_of_fold(
    ids: &[String],
    folds: &Folds,
    per_fold: &[ScoredRows],
) -> Result<(Vec<String>, Vec<OofRow>), CurateError> {
    if per_fold.len() != folds.k {
        return Err(CurateError::Usage {
            message: format!(
                "{} folds were scored, the assignment has {}",
                per_fold.len(),
                folds.k
            ),
        });
    }
    let labels = per_fold[0].labels.clone();
    let mut by_id: BTreeMap<&str, (usize, &ScoredRow)> = BTreeMap::new();
    for (f, scored) in per_fold.iter().enumerate() {
        if scored.labels != labels {
            return Err(CurateError::Usage {
                message: format!(
                    "fold {f} scored labels [{}], fold 0 [{}]",
                    scored.labels.join(", "),
                    labels.join(", ")
                ),
            });
        }
        for row in &scored.rows {
            if by_id.insert(row.id.as_str(), (f, row)).is_some() {
                return Err(CurateError::Usage {
                    message: format!("row '{}' was scored by more than one fold", row.id),
                });
            }
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let want = folds.fold_of[i];
        match by_id.remove(id.as_str()) {
            Some((f, row)) if f == want => out.push(OofRow {
                fold: f,
                row: row.clone(),
            }),
            Some((f, _)) => {
                return Err(CurateError::Usage {
                    message: format!(
                        "row '{id}' belongs to fold {want} but fold {f} scored it: the fold's \
                         run directory was made by another assignment"
                    ),
                });
            }
            None => {
                return Err(CurateError::Usage {
                    message: format!("fold {want} did not score its row '{id}'"),
                });
            }
        }
    }
    if let Some((id, (f, _))) = by_id.into_iter().next() {
        return Err(CurateError::Usage {
            message: format!("fold {f} scored '{id}', which is not a training row"),
        });
    }
    Ok((labels, out))
}

/// The text of `oof.jsonl`: each row's scored-row line (as the evaluation writes
/// it) with its `"fold"`, one per line.
pub fn oof_jsonl(labels: &[String], rows: &[OofRow]) -> String {
    let scored = ScoredRows {
        labels: labels.to_vec(),
        rows: rows.iter().map(|r| r.row.clone()).collect(),
    };
    let mut out = String::new();
    for (line, r) in scored.to_jsonl().lines().zip(rows) {
        let mut v: serde_json::Value =
            serde_json::from_str(line).expect("a scored row's own line parses");
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("fold".into(), r.fold.into());
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: usize, text: &str, group: Option<&str>, pos: bool) -> FoldRow {
        FoldRow {
            id: format!("r{id}"),
            duplicate_key: Some(text.to_string()),
            group: group.map(str::to_string),
            labels: vec![
                Some(pos),
                if id.is_multiple_of(3) {
                    None
                } else {
                    Some(!pos)
                },
            ],
        }
    }

    fn rows(n: usize) -> Vec<FoldRow> {
        (0..n)
            .map(|i| row(i, &format!("text {i}"), None, i.is_multiple_of(5)))
            .collect()
    }

    #[test]
    fn the_assignment_is_a_function_of_rows_k_and_seed() {
        let r = rows(200);
        let a = assign(&r, 5, 7).unwrap();
        assert_eq!(a, assign(&r, 5, 7).unwrap());
        assert_ne!(a.fold_of, assign(&r, 5, 8).unwrap().fold_of);
    }

    #[test]
    fn folds_are_balanced_in_rows_and_positives() {
        let r = rows(203);
        let a = assign(&r, 5, 1).unwrap();
        let (lo, hi) = (a.rows.iter().min().unwrap(), a.rows.iter().max().unwrap());
        assert!(hi - lo <= 1, "rows per fold {:?}", a.rows);
        for l in 0..2 {
            let pos: Vec<usize> = a.positives.iter().map(|p| p[l]).collect();
            let (lo, hi) = (pos.iter().min().unwrap(), pos.iter().max().unwrap());
            assert!(hi - lo <= 2, "label {l} positives per fold {pos:?}");
        }
        assert_eq!(a.rows.iter().sum::<usize>(), 203);
        for f in 0..5 {
            assert_eq!(a.members(f).len(), a.rows[f]);
        }
    }

    #[test]
    fn duplicates_and_groups_never_straddle_folds() {
        let mut r = rows(120);
        // Three copies of one text, and a group that a duplicate links to another.
        r[10].duplicate_key = Some("same".into());
        r[50].duplicate_key = Some("same".into());
        r[90].duplicate_key = Some("same".into());
        for i in [1, 2, 3] {
            r[i].group = Some("user-a".into());
        }
        for i in [60, 61] {
            r[i].group = Some("user-b".into());
        }
        r[61].duplicate_key = Some("text 3".into());
        let a = assign(&r, 4, 3).unwrap();
        assert_eq!(a.fold_of[10], a.fold_of[50]);
        assert_eq!(a.fold_of[10], a.fold_of[90]);
        for i in [2, 3, 60, 61] {
            assert_eq!(a.fold_of[1], a.fold_of[i], "row {i}");
        }
        assert_eq!(a.groups, 120 - 2 - 4);
    }

    #[test]
    fn too_few_groups_or_folds_is_a_usage_error() {
        let mut r = rows(6);
        for x in &mut r {
            x.group = Some("one".into());
        }
        r[5].group = Some("two".into());
        let e = assign(&r, 3, 0).unwrap_err();
        assert!(e.to_string().contains("form 2"), "{e}");
        assert!(assign(&rows(6), 1, 0).is_err());
    }

    fn scored(ids: &[&str], fold: usize) -> ScoredRows {
        ScoredRows {
            labels: vec!["spam".into()],
            rows: ids
                .iter()
                .map(|id| ScoredRow {
                    id: id.to_string(),
                    line: 0,
                    text: None,
                    image: None,
                    meta: None,
                    rationale: None,
                    scores: vec![fold as f32 / 10.0],
                    labels: vec![Some(true)],
                })
                .collect(),
        }
    }

    #[test]
    fn out_of_fold_rows_come_back_in_file_order_and_strays_are_refused() {
        let ids: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let folds = Folds {
            k: 2,
            fold_of: vec![1, 0, 0, 1],
            groups: 4,
            rows: vec![2, 2],
            positives: vec![vec![2], vec![2]],
        };
        let (labels, oof) = join_out_of_fold(
            &ids,
            &folds,
            &[scored(&["c", "b"], 0), scored(&["d", "a"], 1)],
        )
        .unwrap();
        assert_eq!(labels, ["spam"]);
        let got: Vec<(&str, usize)> = oof.iter().map(|r| (r.row.id.as_str(), r.fold)).collect();
        assert_eq!(got, [("a", 1), ("b", 0), ("c", 0), ("d", 1)]);
        let text = oof_jsonl(&labels, &oof);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["fold"], 1);
        assert_eq!(first["id"], "a");
        assert_eq!(text.lines().count(), 4);

        let wrong = join_out_of_fold(
            &ids,
            &folds,
            &[scored(&["c", "a"], 0), scored(&["d", "b"], 1)],
        );
        assert!(wrong.unwrap_err().to_string().contains("belongs to fold"));
        let missing = join_out_of_fold(&ids, &folds, &[scored(&["c"], 0), scored(&["d", "a"], 1)]);
        assert!(missing.unwrap_err().to_string().contains("did not score"));
    }
}
