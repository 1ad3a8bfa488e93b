//! Reviews as the annotation tools export them, read into one shape: which row, which
//! labels, the rationale, who and when.
//!
//! Three dialects, told apart by the first record's keys:
//! - plain JSONL (what `vigil queue --format jsonl` users fill in):
//!   `{"id", "labels": {name: 0|1|null|"yes"|"no"}, "rationale"?, "reviewer"?, "reviewed_at"?}`;
//! - Label Studio's JSON export (a task has `data` and `annotations`): `data.vigil_id`,
//!   the latest annotation that was not cancelled, a `choices` result per label
//!   (`from_name` = the label, `yes`/`no`) and a `textarea` result named `rationale`;
//!   `completed_by` and `updated_at` become who and when;
//! - Argilla 2.x records (`Record.to_dict()`: `id`, `fields`, `responses`): one label
//!   question per label (`yes`/`no`) and a text question `rationale`; responses whose
//!   `status` is not `submitted` are skipped (without a status, as `to_dict()` writes
//!   them, those of a record whose `status` is `pending`), and a label the reviewers
//!   answered differently is reported as a conflict and not applied.
//!
//! A file is a JSON array or one JSON value per line, whichever dialect; each record
//! keeps the line it starts on, so every message names `file:line`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};

use crate::CurateError;

/// The dialect of a reviews file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewFormat {
    /// `{"id", "labels", ...}` per line.
    Jsonl,
    /// Label Studio's JSON export.
    LabelStudio,
    /// Argilla 2.x exported records.
    Argilla,
}

impl ReviewFormat {
    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::LabelStudio => "labelstudio",
            Self::Argilla => "argilla",
        }
    }
}

/// One reviewed row.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// The row's id in the dataset.
    pub id: String,
    /// 1-based line of the reviews file where the record starts.
    pub line: usize,
    /// The labels the review names, with their new value (`None`: unknown), in the
    /// order given.
    pub labels: Vec<(String, Option<bool>)>,
    /// The reviewer's reason, if given (blank counts as none).
    pub rationale: Option<String>,
    /// Who reviewed, if the file says.
    pub by: Option<String>,
    /// When, if the file says.
    pub at: Option<String>,
    /// Labels the reviewers of this row disagreed on (not applied).
    pub conflicts: Vec<String>,
}

impl Review {
    /// A review of `id` with no reviewer, time or line yet, or `None` when it reviews
    /// nothing (no label, rationale or conflict): such records are skipped.
    fn of(
        id: String,
        labels: Vec<(String, Option<bool>)>,
        rationale: Option<String>,
        conflicts: Vec<String>,
    ) -> Option<Self> {
        if labels.is_empty() && rationale.is_none() && conflicts.is_empty() {
            return None;
        }
        Some(Review {
            id,
            line: 0,
            labels,
            rationale,
            by: None,
            at: None,
            conflicts,
        })
    }
}

/// Parses a reviews file's text; `path` names it in messages. Records that review
/// nothing (a task without annotations, a record without responses) are skipped.
pub fn parse_reviews(path: &Path, text: &str) -> Result<(ReviewFormat, Vec<Review>), CurateError> {
    let records = records(path, text)?;
    let bad = |line: usize, message: String| CurateError::BadLine {
        path: path.to_path_buf(),
        line,
        message,
    };
    let Some((first_line, first)) = records.first() else {
        return Ok((ReviewFormat::Jsonl, Vec::new()));
    };
    let format = detect(first).ok_or_else(|| {
        bad(
            *first_line,
            "cannot tell the reviews' format: expected {\"id\", \"labels\"} (JSONL), a Label \
             Studio task ({\"data\", \"annotations\"}) or an Argilla record ({\"id\", \"fields\", \
             \"responses\"})"
                .into(),
        )
    })?;
    let mut out = Vec::new();
    for (line, value) in &records {
        let Value::Object(map) = value else {
            return Err(bad(*line, "expected a JSON object".into()));
        };
        let review = match format {
            ReviewFormat::Jsonl => plain(map),
            ReviewFormat::LabelStudio => label_studio(map),
            ReviewFormat::Argilla => argilla(map),
        }
        .map_err(|m| bad(*line, m))?;
        if let Some(mut r) = review {
            r.line = *line;
            out.push(r);
        }
    }
    Ok((format, out))
}

fn detect(v: &Value) -> Option<ReviewFormat> {
    let map = v.as_object()?;
    if map.contains_key("annotations") || (map.contains_key("data") && !map.contains_key("labels"))
    {
        Some(ReviewFormat::LabelStudio)
    } else if map.contains_key("responses") || map.contains_key("fields") {
        Some(ReviewFormat::Argilla)
    } else if map.contains_key("id") {
        Some(ReviewFormat::Jsonl)
    } else {
        None
    }
}

/// The file's JSON values with the line each starts on: the elements of a top-level
/// array, or one value per non-blank line.
pub fn records(path: &Path, text: &str) -> Result<Vec<(usize, Value)>, CurateError> {
    let line_at = |offset: usize| text[..offset].matches('\n').count() + 1;
    let bad = |offset: usize, message: String| CurateError::BadLine {
        path: path.to_path_buf(),
        line: line_at(offset.min(text.len())),
        message,
    };
    let start = text.len() - text.trim_start().len();
    if !text[start..].starts_with('[') {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(line).map_err(|e| CurateError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("malformed JSON: {e}"),
            })?;
            out.push((i + 1, v));
        }
        return Ok(out);
    }
    // A JSON array, element by element, so each keeps its line.
    let bytes = text.as_bytes();
    let skip_ws = |mut p: usize| {
        while p < bytes.len() && bytes[p].is_ascii_whitespace() {
            p += 1;
        }
        p
    };
    let mut out = Vec::new();
    let mut pos = skip_ws(start + 1);
    if bytes.get(pos) == Some(&b']') {
        pos += 1;
    } else {
        loop {
            let mut stream = serde_json::Deserializer::from_str(&text[pos..]).into_iter::<Value>();
            let value = match stream.next() {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(bad(pos, format!("malformed JSON: {e}"))),
                None => return Err(bad(pos, "the JSON array is not closed".into())),
            };
            out.push((line_at(pos), value));
            pos = skip_ws(pos + stream.byte_offset());
            match bytes.get(pos) {
                Some(b',') => pos = skip_ws(pos + 1),
                Some(b']') => {
                    pos += 1;
                    break;
                }
                _ => return Err(bad(pos, "expected ',' or ']' in the JSON array".into())),
            }
        }
    }
    if skip_ws(pos) != bytes.len() {
        return Err(bad(pos, "text after the JSON array".into()));
    }
    Ok(out)
}

/// A reviewed label value: `0`/`1`, `true`/`false`, `"yes"`/`"no"` (what the queue's
/// Label Studio and Argilla settings offer), `"1"`/`"0"`, or `null`/`"unknown"`.
pub fn review_value(label: &str, v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Some(false)),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(Some(true)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "1" | "true" => Ok(Some(true)),
            "no" | "0" | "false" => Ok(Some(false)),
            "unknown" | "" => Ok(None),
            _ => Err(format!("label '{label}': '{s}' is not yes, no or unknown")),
        },
        other => Err(format!(
            "label '{label}': {other} is not 0, 1, yes, no or null"
        )),
    }
}

fn id_of(v: Option<&Value>, what: &str) -> Result<String, String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        _ => Err(format!("{what} must be a non-empty string or an integer")),
    }
}

fn opt_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("field '{key}' must be a string")),
    }
}

fn plain(map: &Map<String, Value>) -> Result<Option<Review>, String> {
    let id = id_of(map.get("id"), "field 'id'")?;
    let mut labels = Vec::new();
    match map.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(l)) => {
            for (name, v) in l {
                labels.push((name.clone(), review_value(name, v)?));
            }
        }
        Some(_) => return Err("field 'labels' must be an object".into()),
    }
    let rationale = opt_string(map, "rationale")?;
    let Some(review) = Review::of(id, labels, rationale, Vec::new()) else {
        return Ok(None);
    };
    Ok(Some(Review {
        by: opt_string(map, "reviewer")?,
        at: opt_string(map, "reviewed_at")?,
        ..review
    }))
}

fn label_studio(task: &Map<String, Value>) -> Result<Option<Review>, String> {
    let data = task
        .get("data")
        .and_then(Value::as_object)
        .ok_or("a Label Studio task must have a 'data' object")?;
    let id = id_of(data.get("vigil_id"), "data.vigil_id")?;
    let annotations = match task.get("annotations") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("'annotations' must be an array".into()),
    };
    // The latest annotation that was not cancelled (ties: the later one in the file).
    let latest = annotations
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.as_object().map(|a| (i, a)))
        .filter(|(_, a)| a.get("was_cancelled").and_then(Value::as_bool) != Some(true))
        .max_by(|(i, a), (j, b)| {
            let at = |m: &Map<String, Value>| {
                m.get("updated_at")
                    .or_else(|| m.get("created_at"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (at(a), i).cmp(&(at(b), j))
        });
    let Some((_, ann)) = latest else {
        return Ok(None);
    };
    let mut labels = Vec::new();
    let mut rationale = None;
    for r in ann
        .get("result")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(r) = r.as_object() else { continue };
        let name = r.get("from_name").and_then(Value::as_str).unwrap_or("");
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        let value = r.get("value").and_then(Value::as_object);
        match kind {
            "choices" => {
                let choices = value
                    .and_then(|v| v.get("choices"))
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("result '{name}': no value.choices"))?;
                match choices.as_slice() {
                    [] => {}
                    [one] => labels.push((name.to_string(), review_value(name, one)?)),
                    _ => return Err(format!("result '{name}': more than one choice")),
                }
            }
            "textarea" if name == "rationale" => {
                let texts: Vec<&str> = value
                    .and_then(|v| v.get("text"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let joined = texts.join("\n");
                if !joined.trim().is_empty() {
                    rationale = Some(joined);
                }
            }
            _ => {}
        }
    }
    let Some(review) = Review::of(id, labels, rationale, Vec::new()) else {
        return Ok(None);
    };
    let by = match ann.get("completed_by") {
        Some(Value::Number(n)) => Some(format!("label-studio user {n}")),
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(u)) => u
            .get("email")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| u.get("id").map(|i| format!("label-studio user {i}"))),
        _ => None,
    };
    let at = ann
        .get("updated_at")
        .or_else(|| ann.get("created_at"))
        .and_then(Value::as_str)
        .map(String::from);
    Ok(Some(Review { by, at, ..review }))
}

fn argilla(record: &Map<String, Value>) -> Result<Option<Review>, String> {
    let id = id_of(record.get("id"), "the record's 'id'")?;
    let responses = match record.get("responses") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(r)) => r,
        Some(_) => return Err("'responses' must be an object {question: [responses]}".into()),
    };
    let mut labels = Vec::new();
    let mut conflicts = Vec::new();
    let mut rationale = None;
    let mut users = BTreeSet::new();
    // `Record.to_dict()` (what `dataset.records.to_json` writes) drops each response's
    // status but keeps the record's: a `pending` record has fewer submitted responses
    // than the dataset's `min_submitted` (1 in the queue's settings), so its status-less
    // responses are drafts or discarded ones.
    let pending = record.get("status").and_then(Value::as_str) == Some("pending");
    for (question, list) in responses {
        let list = list
            .as_array()
            .ok_or_else(|| format!("responses of '{question}' must be an array"))?;
        let submitted: Vec<&Map<String, Value>> = list
            .iter()
            .filter_map(Value::as_object)
            .filter(|r| match r.get("status").and_then(Value::as_str) {
                None => !pending,
                Some(s) => s == "submitted",
            })
            .collect();
        for r in &submitted {
            match r.get("user_id") {
                Some(Value::String(u)) => users.insert(u.clone()),
                Some(Value::Null) | None => false,
                Some(other) => users.insert(other.to_string()),
            };
        }
        let values: Vec<&Value> = submitted.iter().filter_map(|r| r.get("value")).collect();
        if values.is_empty() {
            continue;
        }
        if question == "rationale" {
            let texts: Vec<&str> = values
                .iter()
                .filter_map(|v| v.as_str())
                .filter(|s| !s.trim().is_empty())
                .collect();
            if !texts.is_empty() {
                rationale = Some(texts.join("\n"));
            }
            continue;
        }
        let mut parsed = Vec::new();
        for v in values {
            parsed.push(review_value(question, v)?);
        }
        parsed.dedup();
        match parsed.as_slice() {
            [one] => labels.push((question.clone(), *one)),
            _ => conflicts.push(question.clone()),
        }
    }
    let by = (!users.is_empty()).then(|| users.into_iter().collect::<Vec<_>>().join(","));
    Ok(Review::of(id, labels, rationale, conflicts).map(|review| Review { by, ..review }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(ReviewFormat, Vec<Review>), CurateError> {
        parse_reviews(Path::new("r.json"), text)
    }

    #[test]
    fn plain_jsonl_names_only_the_labels_given() {
        let (f, r) = parse(
            "{\"id\":\"a\",\"labels\":{\"hate\":1,\"spam\":null},\"rationale\":\"slur\",\"reviewer\":\"kim\"}\n\n{\"id\":7,\"labels\":{\"hate\":\"no\"}}\n{\"id\":\"c\"}\n",
        )
        .unwrap();
        assert_eq!(f, ReviewFormat::Jsonl);
        assert_eq!(r.len(), 2, "a record naming nothing reviews nothing");
        assert_eq!(
            r[0].labels,
            vec![("hate".into(), Some(true)), ("spam".into(), None)]
        );
        assert_eq!(r[0].by.as_deref(), Some("kim"));
        assert_eq!((r[1].id.as_str(), r[1].line), ("7", 3));
        let e = parse("{\"id\":\"a\",\"labels\":{\"hate\":2}}").unwrap_err();
        assert!(e.to_string().starts_with("r.json:1: label 'hate'"), "{e}");
    }

    #[test]
    fn label_studio_takes_the_latest_annotation_that_was_not_cancelled() {
        let text = r#"[
  {"id": 1, "data": {"vigil_id": "a", "text": "x"},
   "annotations": [
     {"completed_by": 3, "updated_at": "2025-01-02T00:00:00Z", "was_cancelled": false,
      "result": [{"from_name": "hate", "to_name": "text", "type": "choices", "value": {"choices": ["no"]}}]},
     {"completed_by": {"id": 4, "email": "kim@example.org"}, "updated_at": "2025-01-03T00:00:00Z",
      "result": [{"from_name": "hate", "to_name": "text", "type": "choices", "value": {"choices": ["yes"]}},
                 {"from_name": "rationale", "to_name": "text", "type": "textarea", "value": {"text": ["a slur"]}}]},
     {"completed_by": 5, "updated_at": "2025-01-04T00:00:00Z", "was_cancelled": true, "result": []}
   ]},
  {"id": 2, "data": {"vigil_id": "b"}, "annotations": []}
]"#;
        let (f, r) = parse(text).unwrap();
        assert_eq!(f, ReviewFormat::LabelStudio);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].line, 2);
        assert_eq!(r[0].labels, vec![("hate".into(), Some(true))]);
        assert_eq!(r[0].rationale.as_deref(), Some("a slur"));
        assert_eq!(r[0].by.as_deref(), Some("kim@example.org"));
        assert_eq!(r[0].at.as_deref(), Some("2025-01-03T00:00:00Z"));
    }

    #[test]
    fn argilla_records_agree_or_conflict() {
        let text = r#"{"id": "a", "fields": {"text": "x"}, "responses": {"hate": [{"value": "yes", "user_id": "u1"}, {"value": "yes", "user_id": "u2"}], "spam": [{"value": "no", "user_id": "u1"}, {"value": "yes", "user_id": "u2"}], "rationale": [{"value": "slur", "user_id": "u1"}]}}
{"id": "b", "fields": {"text": "y"}, "responses": {"hate": [{"value": "yes", "user_id": "u1", "status": "draft"}]}}
{"id": "c", "fields": {"text": "z"}, "status": "pending", "responses": {"hate": [{"value": "yes", "user_id": "u1"}]}}"#;
        let (f, r) = parse(text).unwrap();
        assert_eq!(f, ReviewFormat::Argilla);
        assert_eq!(
            r.len(),
            1,
            "a draft is no review, nor a status-less response of a pending record"
        );
        assert_eq!(r[0].labels, vec![("hate".into(), Some(true))]);
        assert_eq!(r[0].conflicts, vec!["spam".to_string()]);
        assert_eq!(r[0].rationale.as_deref(), Some("slur"));
        assert_eq!(r[0].by.as_deref(), Some("u1,u2"));
    }

    #[test]
    fn array_elements_keep_their_lines_and_errors_name_them() {
        let recs = records(Path::new("r.json"), "[\n{\"id\": 1},\n\n  {\"id\": 2}\n]\n").unwrap();
        assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 4]);
        assert!(records(Path::new("r.json"), "[]").unwrap().is_empty());
        let e = records(Path::new("r.json"), "[\n{\"id\": 1}\n{\"id\": 2}]").unwrap_err();
        assert!(e.to_string().starts_with("r.json:3:"), "{e}");
        let e = records(Path::new("r.json"), "[{\"id\": 1},").unwrap_err();
        assert!(e.to_string().contains("not closed"), "{e}");
    }
}
