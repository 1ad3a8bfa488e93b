//! `vigil datasets issues`: label errors from out-of-fold scores ([`crate::confident`])
//! and, given embeddings, near-duplicates, conflicting duplicates and outliers
//! ([`crate::neighbours`]), joined into one JSONL of flagged rows with a reason each.
//!
//! # Input
//! The out-of-fold scores file `vigil crossval` writes: the evaluation's per-row
//! scores line ([`vigil_eval::scored`]) plus `fold`, and an optional `rationale`:
//!
//! ```json
//! {"id": "s1", "line": 3, "text": "…", "image": "/abs/img.png", "meta": {},
//!  "scores": {"hate": 0.02, "spam": 0.91}, "labels": {"hate": null, "spam": 1},
//!  "fold": 2, "rationale": "…"}
//! ```
//!
//! The label names are the first line's `scores` keys (in name order); every line
//! must score exactly those. Read here rather than by `ScoredRows::read`, which is
//! given its labels and trusts its own evaluation's output: here the labels come from
//! the file, ids may be integers, a row keeps its line in this file (not the data
//! file's) for messages, and ids must be unique and scores probabilities.
//!
//! In a multi-class file (one softmax over the labels) a row's given class is its one
//! label at 1; a row with no 1 but some `null` has no known class and takes no part.
//!
//! # Output
//! One line per flagged row, most suspicious first:
//!
//! ```json
//! {"id": "s1", "rank": 1, "issues": [{"kind": "label_error", "label": "spam",
//!   "given": 1, "suggested": 0, "self_confidence": 0.04, "normalized_margin": 0.04,
//!   "reason": "…"}], "text": "…", "image": "…", "labels": {"spam": 1}, "rationale": "…"}
//! ```
//!
//! `kind` is `label_error`, `near_duplicate`, `conflicting_duplicate` (a near-duplicate
//! pair whose known labels differ; it replaces `near_duplicate` for that pair) or
//! `outlier`. The order: rows with a label error first, in confident learning's rank
//! order (so the label errors alone read exactly as cleanlab ranks them), then rows
//! with a conflicting duplicate (most similar first), outliers (lowest score first),
//! then near-duplicates (most similar first). A row sits at its first tier.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::confident::{self, FilterBy, Options, Problem, RankBy};
use crate::error::CurateError;
use crate::jsonl;
use crate::neighbours::{self, Embeddings, OutlierRule, id_string};

/// One row of the out-of-fold scores file.
#[derive(Debug, Clone, PartialEq)]
pub struct OofRow {
    /// The row's id.
    pub id: String,
    /// 1-based line of the scores file.
    pub line: usize,
    /// The text, if any.
    pub text: Option<String>,
    /// The image, if any.
    pub image: Option<PathBuf>,
    /// Why the row has its labels, if the data says.
    pub rationale: Option<String>,
    /// Probability per label, in label order.
    pub scores: Vec<f32>,
    /// Given value per label (`None`: unknown).
    pub labels: Vec<Option<bool>>,
}

/// An out-of-fold scores file.
#[derive(Debug, Clone, PartialEq)]
pub struct Oof {
    /// Label names, in score order.
    pub labels: Vec<String>,
    /// The rows, in file order.
    pub rows: Vec<OofRow>,
}

#[derive(Deserialize)]
struct Line {
    id: Value,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    image: Option<PathBuf>,
    #[serde(default)]
    rationale: Option<String>,
    scores: BTreeMap<String, f64>,
    #[serde(default)]
    labels: BTreeMap<String, Option<i64>>,
}

impl Oof {
    /// Reads an out-of-fold scores file.
    pub fn read(path: &Path) -> Result<Self, CurateError> {
        let mut out = Self {
            labels: Vec::new(),
            rows: Vec::new(),
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (line, map) in jsonl::read_lines(path)? {
            let bad = |message: String| jsonl::bad(path, line, message);
            let l: Line =
                serde_json::from_value(Value::Object(map)).map_err(|e| bad(e.to_string()))?;
            let id =
                id_string(&l.id).ok_or_else(|| bad("`id` is not a string or integer".into()))?;
            if let Some(first) = seen.insert(id.clone(), line) {
                return Err(bad(format!("id '{id}' is also on line {first}")));
            }
            if out.rows.is_empty() {
                out.labels = l.scores.keys().cloned().collect();
                if out.labels.is_empty() {
                    return Err(bad("`scores` is empty".into()));
                }
            }
            if let Some(extra) = l.scores.keys().find(|k| !out.labels.contains(k)) {
                return Err(bad(format!("score for '{extra}', not a label of line 1")));
            }
            if let Some(extra) = l.labels.keys().find(|k| !out.labels.contains(k)) {
                return Err(bad(format!("label '{extra}' has no score")));
            }
            let mut scores = Vec::with_capacity(out.labels.len());
            let mut labels = Vec::with_capacity(out.labels.len());
            for name in &out.labels {
                let s = *l
                    .scores
                    .get(name)
                    .ok_or_else(|| bad(format!("no score for '{name}'")))?;
                if !(0.0..=1.0).contains(&s) {
                    return Err(bad(format!("score of '{name}' is {s}, not a probability")));
                }
                scores.push(s as f32);
                labels.push(match l.labels.get(name).copied().flatten() {
                    None => None,
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    Some(v) => return Err(bad(format!("label '{name}' is {v}, not 0, 1 or null"))),
                });
            }
            out.rows.push(OofRow {
                id,
                line,
                text: l.text,
                image: l.image,
                rationale: l.rationale,
                scores,
                labels,
            });
        }
        if out.rows.is_empty() {
            return Err(CurateError::Usage {
                message: format!("{}: no rows", path.display()),
            });
        }
        Ok(out)
    }
}

/// Where the vectors come from.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingSource {
    /// The `vigil embed` output.
    pub path: PathBuf,
    /// The vector key (`None`: the default pick).
    pub key: Option<String>,
}

/// What to look for.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuesOptions {
    /// One softmax over the labels (else every label its own binary problem).
    pub multi_class: bool,
    /// Confident learning's filter and ranking.
    pub confident: Options,
    /// Vectors for duplicates and outliers (none: label errors only).
    pub embeddings: Option<EmbeddingSource>,
    /// Cosine similarity from which two rows are near-duplicates.
    pub duplicate_threshold: f32,
    /// Which rows are outliers.
    pub outliers: OutlierRule,
    /// Neighbours per row for the outlier score.
    pub k: usize,
    /// Threads for the neighbour search.
    pub threads: usize,
}

impl Default for IssuesOptions {
    fn default() -> Self {
        Self {
            multi_class: false,
            confident: Options::default(),
            embeddings: None,
            duplicate_threshold: 0.95,
            outliers: OutlierRule::default(),
            k: 10,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The kind of an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The given label looks wrong (confident learning).
    LabelError,
    /// A near-duplicate whose known labels differ.
    ConflictingDuplicate,
    /// Far from every other row in embedding space.
    Outlier,
    /// Almost the same vector as another row.
    NearDuplicate,
}

impl Kind {
    /// The name in the JSONL.
    pub fn name(self) -> &'static str {
        match self {
            Self::LabelError => "label_error",
            Self::ConflictingDuplicate => "conflicting_duplicate",
            Self::Outlier => "outlier",
            Self::NearDuplicate => "near_duplicate",
        }
    }
}

/// One issue of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// What kind.
    pub kind: Kind,
    /// The label concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The given value: a class name (multi-class) or 0/1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<Value>,
    /// The value the model suggests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested: Option<Value>,
    /// The probability of the given value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_confidence: Option<f32>,
    /// cleanlab's normalised margin of the given value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalized_margin: Option<f32>,
    /// The other row of a duplicate pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// The pair's cosine similarity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The outlier score (low: atypical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// A sentence a reviewer reads.
    pub reason: String,
}

/// One flagged row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueRow {
    /// The row's id.
    pub id: String,
    /// Its issues.
    pub issues: Vec<Issue>,
    /// 1-based position, most suspicious first.
    pub rank: usize,
    /// The text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The image, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
    /// The given labels (`null`: unknown).
    pub labels: BTreeMap<String, Option<u8>>,
    /// Why the row has its labels, if the data says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

/// Counts for the command to print.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Rows scored.
    pub rows: usize,
    /// Rows with at least one issue.
    pub flagged: usize,
    /// Issues per kind.
    pub by_kind: BTreeMap<Kind, usize>,
    /// Label errors per label.
    pub label_errors: BTreeMap<String, usize>,
    /// Rows with a vector (when embeddings were given).
    pub embedded: Option<usize>,
    /// The filter and ranking used.
    pub method: (FilterBy, RankBy),
    /// Whether the labels were one softmax.
    pub multi_class: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} rows flagged ({}, filter {}, ranked by {})",
            self.flagged,
            self.rows,
            if self.multi_class {
                "multi-class"
            } else {
                "multi-label"
            },
            self.method.0.name(),
            self.method.1.name()
        )?;
        for (k, n) in &self.by_kind {
            write!(f, "\n  {}: {n}", k.name())?;
        }
        if !self.label_errors.is_empty() {
            let per: Vec<String> = self
                .label_errors
                .iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect();
            write!(f, "\n  label errors by label: {}", per.join(", "))?;
        }
        match self.embedded {
            Some(n) => write!(f, "\n  rows with a vector: {n}"),
            None => write!(f, "\n  no embeddings: duplicates and outliers not checked"),
        }
    }
}

/// The flagged rows and their summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Flagged rows, most suspicious first.
    pub rows: Vec<IssueRow>,
    /// Counts.
    pub summary: Summary,
}

impl Found {
    /// The JSONL text, one line per row.
    pub fn to_jsonl(&self) -> String {
        let mut s = String::new();
        for r in &self.rows {
            s.push_str(&serde_json::to_string(r).expect("an issue row serializes"));
            s.push('\n');
        }
        s
    }
}

fn p3(x: f64) -> String {
    format!("{x:.3}")
}

/// Something per row index.
type ByRow<T> = HashMap<usize, T>;

/// Label errors per row index, with the row's position in confident learning's rank.
fn label_errors(
    oof: &Oof,
    opts: &IssuesOptions,
) -> Result<(ByRow<Vec<Issue>>, ByRow<usize>), CurateError> {
    let k = oof.labels.len();
    let mut issues: HashMap<usize, Vec<Issue>> = HashMap::new();
    let mut order: HashMap<usize, usize> = HashMap::new();
    let method = opts.confident.filter_by.name();
    if opts.multi_class {
        let (mut idx, mut probs, mut given) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in oof.rows.iter().enumerate() {
            let pos: Vec<usize> = (0..k).filter(|&l| r.labels[l] == Some(true)).collect();
            let bad = |message: String| CurateError::BadLine {
                path: PathBuf::from("scores"),
                line: r.line,
                message,
            };
            match pos.as_slice() {
                [c] => given.push(*c),
                [] if r.labels.iter().any(Option::is_none) => continue,
                [] => return Err(bad("multi-class row with no label at 1".into())),
                _ => return Err(bad("multi-class row with several labels at 1".into())),
            }
            idx.push(i);
            probs.extend(r.scores.iter().map(|&x| f64::from(x)));
        }
        if idx.is_empty() {
            return Ok((issues, order));
        }
        let p = Problem {
            probs: &probs,
            k,
            labels: &given,
        };
        let ranked = confident::find_label_issues(&p, &opts.confident);
        let sc = confident::self_confidence(&p);
        let nm = confident::normalized_margin(&p);
        for (pos, &r) in ranked.iter().enumerate() {
            let row = &probs[r * k..(r + 1) * k];
            let sugg =
                (0..k)
                    .filter(|&j| j != given[r])
                    .fold(None, |b: Option<usize>, j| match b {
                        Some(b) if row[b] >= row[j] => Some(b),
                        _ => Some(j),
                    });
            let sugg = sugg.unwrap_or(given[r]);
            let (g, s) = (&oof.labels[given[r]], &oof.labels[sugg]);
            issues.entry(idx[r]).or_default().push(Issue {
                kind: Kind::LabelError,
                label: Some(g.clone()),
                given: Some(Value::from(g.as_str())),
                suggested: Some(Value::from(s.as_str())),
                self_confidence: Some(sc[r] as f32),
                normalized_margin: Some(nm[r] as f32),
                with: None,
                similarity: None,
                score: None,
                reason: format!(
                    "Given '{g}', but the model that never saw this row gives '{g}' {} and '{s}' {}; \
                     confident learning ({method}) counts it as mislabelled.",
                    p3(row[given[r]]),
                    p3(row[sugg])
                ),
            });
            order.insert(idx[r], pos);
        }
    } else {
        let probs: Vec<f64> = oof
            .rows
            .iter()
            .flat_map(|r| r.scores.iter().map(|&x| f64::from(x)))
            .collect();
        let labels: Vec<Option<bool>> = oof
            .rows
            .iter()
            .flat_map(|r| r.labels.iter().copied())
            .collect();
        let found = confident::find_multilabel_issues(&probs, k, &labels, &opts.confident);
        for (l, rows) in found.per_label.iter().enumerate() {
            for &i in rows {
                let name = &oof.labels[l];
                let given = u8::from(labels[i * k + l] == Some(true));
                let p = probs[i * k + l];
                let sc = if given == 1 { p } else { 1.0 - p };
                issues.entry(i).or_default().push(Issue {
                    kind: Kind::LabelError,
                    label: Some(name.clone()),
                    given: Some(Value::from(given)),
                    suggested: Some(Value::from(1 - given)),
                    self_confidence: Some(sc as f32),
                    normalized_margin: Some(((sc - (1.0 - sc) + 1.0) / 2.0) as f32),
                    with: None,
                    similarity: None,
                    score: None,
                    reason: format!(
                        "Labelled '{name}' = {given}, but the model that never saw this row gives \
                         '{name}' a probability of {}; confident learning ({method}) says {}.",
                        p3(p),
                        1 - given
                    ),
                });
            }
        }
        for (pos, &i) in found.ranked.iter().enumerate() {
            order.insert(i, pos);
        }
    }
    Ok((issues, order))
}

/// Finds every issue of the scores file `scores` under `opts`; writes nothing.
pub fn find_issues(scores: &Path, opts: &IssuesOptions) -> Result<Found, CurateError> {
    let oof = Oof::read(scores)?;
    let (mut issues, cl_order) = label_errors(&oof, opts).map_err(|e| match e {
        CurateError::BadLine { line, message, .. } => CurateError::BadLine {
            path: scores.to_path_buf(),
            line,
            message,
        },
        e => e,
    })?;
    // Tier keys: (tier, key) per row, lower first.
    let mut key: HashMap<usize, (u8, f64)> = cl_order
        .iter()
        .map(|(&i, &pos)| (i, (0, pos as f64)))
        .collect();
    let mut summary = Summary {
        rows: oof.rows.len(),
        multi_class: opts.multi_class,
        method: (opts.confident.filter_by, opts.confident.rank_by),
        ..Summary::default()
    };
    if let Some(src) = &opts.embeddings {
        let emb = Embeddings::read(&src.path, src.key.as_deref())?;
        let by_id: HashMap<&str, usize> = oof
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let unknown: Vec<&str> = emb
            .ids
            .iter()
            .map(String::as_str)
            .filter(|id| !by_id.contains_key(id))
            .collect();
        if let Some(first) = unknown.first() {
            return Err(CurateError::Usage {
                message: format!(
                    "{}: id '{first}' (and {} more) is not in the scores file {}",
                    src.path.display(),
                    unknown.len() - 1,
                    scores.display()
                ),
            });
        }
        let row_of: Vec<usize> = emb.ids.iter().map(|id| by_id[id.as_str()]).collect();
        summary.embedded = Some(emb.len());
        let nb = neighbours::search(&emb, opts.k, opts.duplicate_threshold, opts.threads);
        for pair in &nb.pairs {
            let (a, b) = (row_of[pair.a], row_of[pair.b]);
            let differ = neighbours::disagreement(&oof.rows[a].labels, &oof.rows[b].labels);
            let sim = f64::from(pair.similarity);
            for (me, other) in [(a, b), (b, a)] {
                let (kind, tier, label, reason) = if differ.is_empty() {
                    let reason = format!(
                        "Near-duplicate of '{}' (cosine similarity {} ≥ {}).",
                        oof.rows[other].id,
                        p3(sim),
                        opts.duplicate_threshold
                    );
                    (Kind::NearDuplicate, 3, None, reason)
                } else {
                    let what: Vec<String> = differ
                        .iter()
                        .map(|&l| {
                            let v = |r: usize| u8::from(oof.rows[r].labels[l] == Some(true));
                            format!("'{}' {} here, {} there", oof.labels[l], v(me), v(other))
                        })
                        .collect();
                    let reason = format!(
                        "Near-duplicate of '{}' (cosine similarity {}) with different labels: {}.",
                        oof.rows[other].id,
                        p3(sim),
                        what.join("; ")
                    );
                    (
                        Kind::ConflictingDuplicate,
                        1,
                        Some(oof.labels[differ[0]].clone()),
                        reason,
                    )
                };
                issues.entry(me).or_default().push(Issue {
                    kind,
                    label,
                    given: None,
                    suggested: None,
                    self_confidence: None,
                    normalized_margin: None,
                    with: Some(oof.rows[other].id.clone()),
                    similarity: Some(pair.similarity),
                    score: None,
                    reason,
                });
                let k = key.entry(me).or_insert((tier, -sim));
                if (tier, -sim) < *k {
                    *k = (tier, -sim);
                }
            }
        }
        let out = neighbours::outliers(&nb, opts.outliers);
        let k_used = nb.knn.first().map_or(0, Vec::len);
        for &e in &out.flagged {
            let me = row_of[e];
            issues.entry(me).or_default().push(Issue {
                kind: Kind::Outlier,
                label: None,
                given: None,
                suggested: None,
                self_confidence: None,
                normalized_margin: None,
                with: None,
                similarity: None,
                score: Some(out.score[e] as f32),
                reason: format!(
                    "Atypical: mean cosine distance {} to its {k_used} nearest neighbours, against \
                     a median of {} (outlier score {}).",
                    p3(out.mean_distance[e]),
                    p3(out.scale),
                    p3(out.score[e])
                ),
            });
            let k = key.entry(me).or_insert((2, out.score[e]));
            if (2, out.score[e]) < *k {
                *k = (2, out.score[e]);
            }
        }
    }
    let mut flagged: Vec<usize> = issues.keys().copied().collect();
    flagged.sort_by(|a, b| {
        let (ka, kb) = (key[a], key[b]);
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(a.cmp(b))
    });
    let mut rows = Vec::with_capacity(flagged.len());
    for (pos, i) in flagged.into_iter().enumerate() {
        let r = &oof.rows[i];
        let mut list = issues.remove(&i).unwrap_or_default();
        list.sort_by_key(|x| x.kind);
        for x in &list {
            *summary.by_kind.entry(x.kind).or_default() += 1;
            if let (Kind::LabelError, Some(l)) = (x.kind, &x.label) {
                *summary.label_errors.entry(l.clone()).or_default() += 1;
            }
        }
        rows.push(IssueRow {
            id: r.id.clone(),
            issues: list,
            rank: pos + 1,
            text: r.text.clone(),
            image: r.image.clone(),
            labels: oof
                .labels
                .iter()
                .cloned()
                .zip(r.labels.iter().map(|l| l.map(u8::from)))
                .collect(),
            rationale: r.rationale.clone(),
        });
    }
    summary.flagged = rows.len();
    Ok(Found { rows, summary })
}

/// Finds the issues and writes them to `out` whole or not at all.
pub fn run(scores: &Path, opts: &IssuesOptions, out: &Path) -> Result<Found, CurateError> {
    let found = find_issues(scores, opts)?;
    vigil_store::atomic::write_atomic(out, found.to_jsonl().as_bytes()).map_err(|source| {
        CurateError::Io {
            path: out.to_path_buf(),
            source,
        }
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "oof.jsonl",
            "{\"id\":\"a\",\"scores\":{\"x\":0.5},\"labels\":{\"x\":1},\"fold\":0}\n\
             {\"id\":\"b\",\"scores\":{\"x\":1.5},\"labels\":{\"x\":1},\"fold\":0}\n",
        );
        let e = Oof::read(&p).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("oof.jsonl:2"), "{e}");
    }

    #[test]
    fn multi_class_rows_need_exactly_one_class() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "oof.jsonl",
            "{\"id\":\"a\",\"scores\":{\"x\":0.5,\"y\":0.5},\"labels\":{\"x\":1,\"y\":null}}\n\
             {\"id\":\"b\",\"scores\":{\"x\":0.5,\"y\":0.5},\"labels\":{\"x\":null,\"y\":null}}\n\
             {\"id\":\"c\",\"scores\":{\"x\":0.5,\"y\":0.5},\"labels\":{\"x\":1,\"y\":1}}\n",
        );
        let opts = IssuesOptions {
            multi_class: true,
            ..IssuesOptions::default()
        };
        let e = find_issues(&p, &opts).unwrap_err().to_string();
        assert!(e.contains("oof.jsonl:3") && e.contains("several"), "{e}");
    }
}
