//! Per-row validation scores: `eval/step-<S>.scores.jsonl`, written by rank 0 next
//! to each evaluation report, read by `vigil report`.
//!
//! One JSON object per row, in validation-file order:
//!
//! ```json
//! {"id": "s1", "line": 3, "text": "…", "image": "/abs/img/1.png",
//!  "meta": {"language": "en"}, "rationale": "a slur, quoted approvingly",
//!  "scores": {"hate": 0.91, "spam": 0.02}, "labels": {"hate": 1, "spam": null}}
//! ```
//!
//! `labels` is the target per label, `null` where unknown (the known mask);
//! `text`, `image`, `meta` and `rationale` are omitted when the row has none. Writing the rows
//! out is the choice behind the report: it then needs no model, no re-scoring
//! and no backend, and shows exactly the numbers the run's evaluation computed.
//! The image path is made absolute when written so the report can be made from
//! any working directory.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Scores;
use vigil_data::Dataset;

/// A scores file (`eval/scores-step-<S>.jsonl`) that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScoresError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a scores file is bad.
    #[error("{}:{line}: {message}", path.display())]
    Bad {
        /// The scores file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One validation row with its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredRow {
    /// The row's id.
    pub id: String,
    /// 1-based line in the data file (0 when unknown).
    pub line: usize,
    /// The text, if any.
    pub text: Option<String>,
    /// The image file, if any.
    pub image: Option<PathBuf>,
    /// The row's `meta` object, if any.
    pub meta: Option<Map<String, Value>>,
    /// Why the row has its labels (the data row's `rationale`), if any.
    pub rationale: Option<String>,
    /// Probability per label, in label order.
    pub scores: Vec<f32>,
    /// Target per label: `Some(positive)` or `None` (unknown).
    pub labels: Vec<Option<bool>>,
}

/// The scored rows of one evaluation with their label names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoredRows {
    /// Label names, in score order.
    pub labels: Vec<String>,
    /// The rows, in file order.
    pub rows: Vec<ScoredRow>,
}

#[derive(Serialize, Deserialize)]
struct Line {
    id: String,
    #[serde(default)]
    line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rationale: Option<String>,
    scores: BTreeMap<String, f32>,
    labels: BTreeMap<String, Option<u8>>,
}

/// The champion's per-row scores, written by the export gate next to the
/// evaluation reports when it scores the champion.
pub const CHAMPION_SCORES: &str = "champion.scores.jsonl";

/// The path of the champion's scores file in a run directory.
pub fn champion_scores_path(run_dir: &Path) -> PathBuf {
    run_dir.join("eval").join(CHAMPION_SCORES)
}

/// The name of the scores file of evaluation `step`: `step-<S>.scores.jsonl`.
pub fn scores_file_name(step: u64) -> String {
    format!("step-{step}.scores.jsonl")
}

impl ScoredRows {
    /// Joins `scores` (in dataset order, one row per example) with `ds`'s rows.
    /// `None` when the counts differ.
    pub fn join(ds: &Dataset, scores: &Scores) -> Option<Self> {
        let n = scores.labels.len();
        if scores.rows() != ds.len() || n == 0 {
            return None;
        }
        let rows = ds
            .examples()
            .iter()
            .enumerate()
            .map(|(r, e)| {
                let range = r * n..(r + 1) * n;
                ScoredRow {
                    id: e.id.clone(),
                    line: e.line,
                    text: e.text.clone(),
                    image: e
                        .image
                        .as_ref()
                        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
                    meta: e.meta.clone(),
                    rationale: e.rationale.clone(),
                    scores: scores.probs[range.clone()].to_vec(),
                    labels: scores.targets[range.clone()]
                        .iter()
                        .zip(&scores.known[range])
                        .map(|(&t, &k)| k.then_some(t >= 0.5))
                        .collect(),
                }
            })
            .collect();
        Some(Self {
            labels: scores.labels.clone(),
            rows,
        })
    }

    /// Joins `scores` whose row `r` is the example with id `ids[r]` with `ds`'s
    /// rows (any order). `None` when an id is not in `ds`.
    pub fn join_by_id(ds: &Dataset, ids: &[String], scores: &Scores) -> Option<Self> {
        let by_id: std::collections::HashMap<&str, usize> = ds
            .examples()
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.as_str(), i))
            .collect();
        let n = scores.labels.len();
        if ids.len() != scores.rows() {
            return None;
        }
        let mut reordered = Scores {
            labels: scores.labels.clone(),
            ..Default::default()
        };
        let mut order: Vec<(usize, usize)> = Vec::with_capacity(ids.len());
        for (r, id) in ids.iter().enumerate() {
            order.push((*by_id.get(id.as_str())?, r));
        }
        order.sort_unstable();
        if order.len() != ds.len() || order.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        for &(_, r) in &order {
            let range = r * n..(r + 1) * n;
            reordered
                .probs
                .extend_from_slice(&scores.probs[range.clone()]);
            reordered
                .targets
                .extend_from_slice(&scores.targets[range.clone()]);
            reordered.known.extend_from_slice(&scores.known[range]);
        }
        Self::join(ds, &reordered)
    }

    /// The metrics view: probabilities, targets and known masks.
    pub fn scores(&self) -> Scores {
        let mut s = Scores {
            labels: self.labels.clone(),
            ..Default::default()
        };
        for r in &self.rows {
            s.probs.extend_from_slice(&r.scores);
            for l in &r.labels {
                s.targets.push(if *l == Some(true) { 1.0 } else { 0.0 });
                s.known.push(l.is_some());
            }
        }
        s
    }

    /// `(score, positive)` pairs of label `l` over `rows` (indices), unknown removed.
    pub fn pairs_of(&self, l: usize, rows: impl IntoIterator<Item = usize>) -> Vec<(f32, bool)> {
        rows.into_iter()
            .filter_map(|r| {
                let row = &self.rows[r];
                row.labels[l].map(|y| (row.scores[l], y))
            })
            .collect()
    }

    /// The JSONL text (one line per row, each ending in a newline).
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        for r in &self.rows {
            let line = Line {
                id: r.id.clone(),
                line: r.line,
                text: r.text.clone(),
                image: r.image.clone(),
                meta: r.meta.clone(),
                rationale: r.rationale.clone(),
                scores: self
                    .labels
                    .iter()
                    .cloned()
                    .zip(r.scores.iter().copied())
                    .collect(),
                labels: self
                    .labels
                    .iter()
                    .cloned()
                    .zip(r.labels.iter().map(|l| l.map(u8::from)))
                    .collect(),
            };
            serde_json::to_writer(&mut out, &line).expect("a scored row serializes");
            out.write_all(b"\n").expect("writing to a Vec");
        }
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// Reads a scores file written by [`ScoredRows::to_jsonl`] for `labels`.
    pub fn read(path: &Path, labels: &[String]) -> Result<Self, ScoresError> {
        let file = std::fs::File::open(path).map_err(|source| ScoresError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut rows = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| ScoresError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| ScoresError::Bad {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let l: Line = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
            let mut scores = Vec::with_capacity(labels.len());
            let mut targets = Vec::with_capacity(labels.len());
            for name in labels {
                let s = l
                    .scores
                    .get(name)
                    .copied()
                    .ok_or_else(|| bad(format!("no score for label '{name}'")))?;
                if !s.is_finite() {
                    return Err(bad(format!("score of '{name}' is not a number")));
                }
                scores.push(s);
                targets.push(match l.labels.get(name).copied().flatten() {
                    None => None,
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    Some(v) => return Err(bad(format!("label '{name}' is {v}, not 0, 1 or null"))),
                });
            }
            rows.push(ScoredRow {
                id: l.id,
                line: l.line,
                text: l.text,
                image: l.image,
                meta: l.meta,
                rationale: l.rationale,
                scores,
                labels: targets,
            });
        }
        Ok(Self {
            labels: labels.to_vec(),
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips_with_unknown_labels_and_meta() {
        let mut meta = Map::new();
        meta.insert("language".into(), Value::from("fr"));
        let rows = ScoredRows {
            labels: vec!["a".into(), "b".into()],
            rows: vec![
                ScoredRow {
                    id: "x".into(),
                    line: 1,
                    text: Some("<script>alert(1)</script>".into()),
                    image: None,
                    meta: Some(meta),
                    rationale: Some("quoted \"slur\", not endorsed".into()),
                    scores: vec![0.25, 0.5],
                    labels: vec![Some(true), None],
                },
                ScoredRow {
                    id: "y".into(),
                    line: 2,
                    text: None,
                    image: Some("/tmp/i.png".into()),
                    meta: None,
                    rationale: None,
                    scores: vec![0.75, 0.125],
                    labels: vec![Some(false), Some(true)],
                },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let text = rows.to_jsonl();
        // Written only when present.
        assert_eq!(text.matches("\"rationale\"").count(), 1, "{text}");
        std::fs::write(&path, text).unwrap();
        let back = ScoredRows::read(&path, &rows.labels).unwrap();
        assert_eq!(back, rows);
        let s = back.scores();
        assert_eq!(s.known, vec![true, false, true, true]);
        assert_eq!(s.targets, vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(back.pairs_of(1, 0..2), vec![(0.125, true)]);
    }

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"x\",\"scores\":{\"a\":0.1},\"labels\":{\"a\":1}}\n{\"id\":\"y\",\"scores\":{},\"labels\":{}}\n",
        )
        .unwrap();
        let e = ScoredRows::read(&path, &["a".to_string()]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("s.jsonl:2") && msg.contains("no score for label 'a'"),
            "{msg}"
        );
    }
}
