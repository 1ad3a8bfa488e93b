//! The queue's four sources, each read into a ranked list of candidates (best first)
//! with the reasons it gives for each row.
//!
//! - `issues`: `vigil datasets issues` output, by its `rank` (then file order); one
//!   reason per issue (`kind`, `label`, `reason`).
//! - `uncertain`: `vigil predict` output, by distance to the decision threshold,
//!   smallest first: the line's `margin` when present, else min over labels of
//!   |p − 0.5| (the file has no thresholds).
//! - `recall`: similarity-search hits `{"id", "similarity", "seed"?}`, highest first.
//! - `compare`: two `vigil predict` outputs of two versions on the same rows: rows
//!   whose decisions differ on any label, largest probability difference first; one
//!   reason per label that flips. Rows missing from the second file are skipped.
//!
//! Ties keep file order, so the lists (and the queue) are deterministic. An id a
//! source names twice becomes one candidate at its best place with both reasons.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Map, Value};

use crate::CurateError;
use crate::jsonl::{Lines, bad, read_lines};

/// Which source a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Label issues (`--issues`).
    Issues,
    /// Uncertain predictions (`--predictions`).
    Uncertain,
    /// Recall hits (`--recall`).
    Recall,
    /// Disagreements between two versions (`--compare`).
    Compare,
}

impl Source {
    /// The name written in each reason's `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issues => "issues",
            Self::Uncertain => "uncertain",
            Self::Recall => "recall",
            Self::Compare => "compare",
        }
    }
}

/// Why a row is in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// The source.
    pub source: Source,
    /// What kind of reason (`label_error`, `uncertain`, `recall_hit`, `disagreement`, ...).
    pub kind: String,
    /// The label it is about, if one.
    pub label: Option<String>,
    /// A sentence for the reviewer.
    pub detail: String,
}

/// One row a source proposes.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The row's id.
    pub id: String,
    /// The file and line that named it (for the "not in --data" message).
    pub line: usize,
    /// Its reasons.
    pub reasons: Vec<Reason>,
}

/// A source's candidates, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The source.
    pub source: Source,
    /// The file (the first of the two for `compare`).
    pub file: std::path::PathBuf,
    /// The candidates, best first.
    pub candidates: Vec<Candidate>,
}

fn id_of(map: &Map<String, Value>) -> Result<String, String> {
    match map.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        _ => Err("field 'id' must be a non-empty string or an integer".into()),
    }
}

fn number(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(format!("field '{key}' is not a finite number")),
        },
        Some(_) => Err(format!("field '{key}' must be a number")),
    }
}

/// Sorts by `key` (ascending; ties in file order) and merges repeated ids.
fn ranked(source: Source, file: &Path, mut scored: Vec<(f64, Candidate)>) -> Ranked {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.line.cmp(&b.1.line)));
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (_, c) in scored {
        match at.get(&c.id) {
            Some(&i) => candidates[i].reasons.extend(c.reasons),
            None => {
                at.insert(c.id.clone(), candidates.len());
                candidates.push(c);
            }
        }
    }
    Ranked {
        source,
        file: file.to_path_buf(),
        candidates,
    }
}

/// `--issues`: by `rank` (absent: after the ranked ones, in file order).
pub fn issues(path: &Path) -> Result<Ranked, CurateError> {
    issues_from(path, read_lines(path)?)
}

/// [`issues`] over lines already read.
pub fn issues_from(path: &Path, lines: Lines) -> Result<Ranked, CurateError> {
    let mut scored = Vec::new();
    for (line, map) in lines {
        let id = id_of(&map).map_err(|m| bad(path, line, m))?;
        let rank = number(&map, "rank").map_err(|m| bad(path, line, m))?;
        let list = match map.get("issues") {
            Some(Value::Array(a)) => a,
            _ => return Err(bad(path, line, "field 'issues' must be an array".into())),
        };
        let mut reasons = Vec::new();
        for issue in list {
            let Some(issue) = issue.as_object() else {
                return Err(bad(path, line, "each issue must be an object".into()));
            };
            let kind = issue
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(path, line, "an issue has no 'kind'".into()))?;
            let label = issue.get("label").and_then(Value::as_str).map(String::from);
            let detail = issue
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or(kind)
                .to_string();
            reasons.push(Reason {
                source: Source::Issues,
                kind: kind.to_string(),
                label,
                detail,
            });
        }
        scored.push((
            rank.unwrap_or(f64::INFINITY),
            Candidate { id, line, reasons },
        ));
    }
    Ok(ranked(Source::Issues, path, scored))
}

/// One `vigil predict` line.
#[derive(Debug, Clone, PartialEq)]
struct Prediction {
    id: String,
    line: usize,
    version: Option<String>,
    scores: BTreeMap<String, f64>,
    decisions: BTreeMap<String, bool>,
    margin: Option<f64>,
}

fn prediction(line: usize, map: &Map<String, Value>) -> Result<Prediction, String> {
    let id = id_of(map)?;
    let mut scores = BTreeMap::new();
    match map.get("scores") {
        Some(Value::Object(s)) => {
            for (k, v) in s {
                match v.as_f64() {
                    Some(p) if p.is_finite() => scores.insert(k.clone(), p),
                    _ => return Err(format!("score of '{k}' is not a number")),
                };
            }
        }
        _ => return Err("field 'scores' must be an object {label: probability}".into()),
    }
    let mut decisions = BTreeMap::new();
    if let Some(Value::Object(d)) = map.get("decisions") {
        for (k, v) in d {
            let b = v
                .as_bool()
                .ok_or_else(|| format!("decision of '{k}' is not true or false"))?;
            decisions.insert(k.clone(), b);
        }
    }
    let version = match map.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    Ok(Prediction {
        id,
        line,
        version,
        scores,
        decisions,
        margin: number(map, "margin")?,
    })
}

/// `--predictions`: the least certain rows first.
pub fn uncertain(path: &Path) -> Result<Ranked, CurateError> {
    uncertain_from(path, read_lines(path)?)
}

/// [`uncertain`] over lines already read.
pub fn uncertain_from(path: &Path, lines: Lines) -> Result<Ranked, CurateError> {
    let mut scored = Vec::new();
    for (line, map) in lines {
        let p = prediction(line, &map).map_err(|m| bad(path, line, m))?;
        // The label nearest its (assumed 0.5) threshold.
        let nearest = p
            .scores
            .iter()
            .min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs()));
        let Some((label, prob)) = nearest else {
            continue;
        };
        let (distance, label, detail) = match p.margin {
            Some(m) => (
                m.abs(),
                None,
                format!("margin {m:.3} to the nearest threshold"),
            ),
            None => (
                (prob - 0.5).abs(),
                Some(label.clone()),
                format!(
                    "'{label}' scored {prob:.3}, {:.3} from 0.5",
                    (prob - 0.5).abs()
                ),
            ),
        };
        let detail = match &p.version {
            Some(v) => format!("{detail} (version {v})"),
            None => detail,
        };
        scored.push((
            distance,
            Candidate {
                id: p.id,
                line,
                reasons: vec![Reason {
                    source: Source::Uncertain,
                    kind: "uncertain".into(),
                    label,
                    detail,
                }],
            },
        ));
    }
    Ok(ranked(Source::Uncertain, path, scored))
}

/// `--recall`: the most similar hits first.
pub fn recall(path: &Path) -> Result<Ranked, CurateError> {
    recall_from(path, read_lines(path)?)
}

/// [`recall`] over lines already read.
pub fn recall_from(path: &Path, lines: Lines) -> Result<Ranked, CurateError> {
    let mut scored = Vec::new();
    for (line, map) in lines {
        let id = id_of(&map).map_err(|m| bad(path, line, m))?;
        let sim = number(&map, "similarity")
            .map_err(|m| bad(path, line, m))?
            .ok_or_else(|| bad(path, line, "field 'similarity' is missing".into()))?;
        let detail = match map.get("seed") {
            Some(Value::String(s)) => format!("similarity {sim:.3} to seed '{s}'"),
            Some(Value::Number(n)) => format!("similarity {sim:.3} to seed '{n}'"),
            _ => format!("similarity {sim:.3}"),
        };
        scored.push((
            -sim,
            Candidate {
                id,
                line,
                reasons: vec![Reason {
                    source: Source::Recall,
                    kind: "recall_hit".into(),
                    label: None,
                    detail,
                }],
            },
        ));
    }
    Ok(ranked(Source::Recall, path, scored))
}

/// `--compare A B`: rows whose decisions differ.
pub fn compare(a: &Path, b: &Path) -> Result<Ranked, CurateError> {
    compare_from(a, read_lines(a)?, b, read_lines(b)?)
}

/// [`compare`] over lines already read.
pub fn compare_from(
    a: &Path,
    a_lines: Lines,
    b: &Path,
    b_lines: Lines,
) -> Result<Ranked, CurateError> {
    let parse = |path: &Path, lines: Lines| -> Result<Vec<Prediction>, CurateError> {
        lines
            .into_iter()
            .map(|(line, map)| prediction(line, &map).map_err(|m| bad(path, line, m)))
            .collect()
    };
    let a_rows = parse(a, a_lines)?;
    let b_rows = parse(b, b_lines)?;
    let b_by_id: HashMap<&str, &Prediction> = b_rows.iter().map(|p| (p.id.as_str(), p)).collect();
    let name = |p: &Prediction, path: &Path| {
        p.version
            .as_ref()
            .map_or_else(|| path.display().to_string(), |v| format!("version {v}"))
    };
    let mut scored = Vec::new();
    for pa in &a_rows {
        let Some(pb) = b_by_id.get(pa.id.as_str()) else {
            continue;
        };
        let mut reasons = Vec::new();
        for (label, &da) in &pa.decisions {
            let Some(&db) = pb.decisions.get(label) else {
                continue;
            };
            if da == db {
                continue;
            }
            let (sa, sb) = (pa.scores.get(label), pb.scores.get(label));
            let p = |s: Option<&f64>| s.map_or_else(|| "?".to_string(), |x| format!("{x:.3}"));
            reasons.push(Reason {
                source: Source::Compare,
                kind: "disagreement".into(),
                label: Some(label.clone()),
                detail: format!(
                    "{}: {da} (p={}), {}: {db} (p={})",
                    name(pa, a),
                    p(sa),
                    name(pb, b),
                    p(sb)
                ),
            });
        }
        if reasons.is_empty() {
            continue;
        }
        let largest = pa
            .scores
            .iter()
            .filter_map(|(l, x)| pb.scores.get(l).map(|y| (x - y).abs()))
            .fold(0.0, f64::max);
        scored.push((
            -largest,
            Candidate {
                id: pa.id.clone(),
                line: pa.line,
                reasons,
            },
        ));
    }
    Ok(ranked(Source::Compare, a, scored))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Lines {
        crate::jsonl::parse_lines(Path::new("f.jsonl"), text).unwrap()
    }

    fn ids(r: &Ranked) -> Vec<&str> {
        r.candidates.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn issues_follow_their_rank_and_keep_every_issue() {
        let r = issues_from(
            Path::new("i.jsonl"),
            lines(
                r#"{"id": "b", "rank": 2, "issues": [{"kind": "outlier", "reason": "far"}]}
{"id": "a", "rank": 1, "issues": [{"kind": "label_error", "label": "hate", "given": 0, "suggested": 1, "reason": "p=0.97"}, {"kind": "near_duplicate", "reason": "of c"}], "extra": true}
{"id": 9, "issues": []}"#,
            ),
        )
        .unwrap();
        assert_eq!(ids(&r), vec!["a", "b", "9"]);
        assert_eq!(r.candidates[0].reasons.len(), 2);
        assert_eq!(r.candidates[0].reasons[0].label.as_deref(), Some("hate"));
        assert_eq!(r.candidates[0].reasons[0].detail, "p=0.97");
        let e = issues_from(Path::new("i.jsonl"), lines(r#"{"id": "a"}"#)).unwrap_err();
        assert!(
            e.to_string().starts_with("i.jsonl:1: field 'issues'"),
            "{e}"
        );
    }

    #[test]
    fn uncertain_uses_the_margin_or_the_distance_to_one_half() {
        let r = uncertain_from(
            Path::new("p.jsonl"),
            lines(
                r#"{"id": "far", "version": 3, "scores": {"hate": 0.99, "spam": 0.02}, "decisions": {"hate": true, "spam": false}}
{"id": "near", "version": 3, "scores": {"hate": 0.9, "spam": 0.45}, "decisions": {"hate": true, "spam": false}}
{"id": "m", "scores": {"hate": 0.9}, "decisions": {"hate": true}, "margin": 0.01}"#,
            ),
        )
        .unwrap();
        assert_eq!(ids(&r), vec!["m", "near", "far"]);
        assert_eq!(r.candidates[1].reasons[0].label.as_deref(), Some("spam"));
        assert!(r.candidates[1].reasons[0].detail.contains("version 3"));
    }

    #[test]
    fn recall_is_most_similar_first_and_repeats_merge() {
        let r = recall_from(
            Path::new("h.jsonl"),
            lines(
                r#"{"id": "a", "similarity": 0.5, "seed": "s1"}
{"id": "b", "similarity": 0.9, "seed": "s1"}
{"id": "a", "similarity": 0.95, "seed": "s2"}"#,
            ),
        )
        .unwrap();
        assert_eq!(ids(&r), vec!["a", "b"]);
        assert_eq!(r.candidates[0].reasons.len(), 2);
        assert!(r.candidates[0].reasons[0].detail.contains("s2"));
    }

    #[test]
    fn compare_keeps_flipped_decisions_largest_difference_first() {
        let a = lines(
            r#"{"id": "x", "version": 1, "scores": {"hate": 0.6, "spam": 0.1}, "decisions": {"hate": true, "spam": false}}
{"id": "y", "version": 1, "scores": {"hate": 0.9, "spam": 0.1}, "decisions": {"hate": true, "spam": false}}
{"id": "z", "version": 1, "scores": {"hate": 0.9}, "decisions": {"hate": true}}
{"id": "only-a", "version": 1, "scores": {"hate": 0.9}, "decisions": {"hate": true}}"#,
        );
        let b = lines(
            r#"{"id": "y", "version": 2, "scores": {"hate": 0.2, "spam": 0.1}, "decisions": {"hate": false, "spam": false}}
{"id": "x", "version": 2, "scores": {"hate": 0.4, "spam": 0.1}, "decisions": {"hate": false, "spam": false}}
{"id": "z", "version": 2, "scores": {"hate": 0.8}, "decisions": {"hate": true}}"#,
        );
        let r = compare_from(Path::new("a.jsonl"), a, Path::new("b.jsonl"), b).unwrap();
        assert_eq!(ids(&r), vec!["y", "x"]);
        let reason = &r.candidates[0].reasons[0];
        assert_eq!(reason.label.as_deref(), Some("hate"));
        assert_eq!(
            reason.detail,
            "version 1: true (p=0.900), version 2: false (p=0.200)"
        );
    }
}
