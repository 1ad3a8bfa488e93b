//! Reviews folded into a dataset's text, without I/O: every review checked first
//! (its id in the dataset, its labels known), then the new file's text built line by
//! line: an unreviewed line is copied byte for byte, a reviewed row is re-serialised
//! with the labels the review names replaced, its rationale set when the review gives
//! one, and a provenance entry appended to `meta.provenance`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Map, Value};

use super::reviews::Review;
use super::rows::{DataFile, label_json};
use crate::CurateError;

/// Who and where, for the provenance entries.
#[derive(Debug, Clone)]
pub struct FoldContext<'a> {
    /// The reviews file, as named on the command line (the entries' `source`, and in
    /// messages).
    pub reviews: &'a Path,
    /// The reviewer when a review does not say (`--reviewer`).
    pub default_by: Option<&'a str>,
    /// When a review does not say: the time of the run (RFC 3339).
    pub now: &'a str,
}

/// How often one label changed, by transition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelChanges {
    /// `(old, new)` → rows; `None` is unknown.
    pub transitions: BTreeMap<(Option<bool>, Option<bool>), usize>,
}

impl LabelChanges {
    /// Rows whose value of this label changed.
    pub fn total(&self) -> usize {
        self.transitions.values().sum()
    }
}

/// What folding did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldSummary {
    /// Reviews read (each one row).
    pub reviewed: usize,
    /// Reviewed rows whose labels or rationale changed.
    pub changed: usize,
    /// Changes per label name (labels without a change are absent).
    pub per_label: BTreeMap<String, LabelChanges>,
    /// Rows whose rationale was set or replaced.
    pub rationales: usize,
    /// `(id, label)` the reviewers disagreed on, left as they were.
    pub conflicts: Vec<(String, String)>,
}

/// The new file's text and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    /// The new dataset file.
    pub text: String,
    /// The counts.
    pub summary: FoldSummary,
}

/// Folds `reviews` into `data`. Fails, building nothing, on a review of an id that is
/// not in the dataset, a second review of one id, or a label the dataset does not have.
pub fn fold(data: &DataFile, reviews: &[Review], ctx: &FoldContext) -> Result<Folded, CurateError> {
    let usage = |r: &Review, what: String| CurateError::Usage {
        message: format!(
            "{}:{}: {what}; nothing written",
            ctx.reviews.display(),
            r.line
        ),
    };
    let mut by_line: HashMap<usize, &Review> = HashMap::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in reviews {
        let Some((i, _)) = data.row(&r.id) else {
            return Err(usage(
                r,
                format!("id '{}' is not in {}", r.id, data.path.display()),
            ));
        };
        if let Some(first) = seen.insert(r.id.as_str(), r.line) {
            return Err(usage(
                r,
                format!("id '{}' is reviewed twice (also on line {first})", r.id),
            ));
        }
        for (name, _) in &r.labels {
            if !data.labels.contains(name) {
                return Err(usage(
                    r,
                    format!(
                        "unknown label '{name}' for id '{}' (the dataset's labels: {})",
                        r.id,
                        data.labels.join(", ")
                    ),
                ));
            }
        }
        by_line.insert(i, r);
    }

    let mut summary = FoldSummary {
        reviewed: reviews.len(),
        ..FoldSummary::default()
    };
    let mut out = String::new();
    for (i, line) in data.lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match (by_line.get(&i), &line.row) {
            (Some(review), Some(row)) => {
                let cr = if line.text.ends_with('\r') { "\r" } else { "" };
                let new = relabel(&line.text, row, &data.labels, review, ctx, &mut summary)
                    .map_err(|message| CurateError::BadLine {
                        path: data.path.clone(),
                        line: line.number,
                        message,
                    })?;
                out.push_str(&new);
                out.push_str(cr);
            }
            _ => out.push_str(&line.text),
        }
    }
    if data.trailing_newline {
        out.push('\n');
    }
    Ok(Folded { text: out, summary })
}

/// The reviewed row's new line (without its line ending).
fn relabel(
    text: &str,
    row: &vigil_data::format::RawRow,
    labels: &[String],
    review: &Review,
    ctx: &FoldContext,
    summary: &mut FoldSummary,
) -> Result<String, String> {
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(text) else {
        return Err("the row is not a JSON object".into());
    };
    let mut changes = Map::new();
    let mut confirmed = Vec::new();
    let mut set_labels = Vec::new();
    for (name, new) in &review.labels {
        let li = labels
            .iter()
            .position(|l| l == name)
            .expect("checked above");
        let old = row.labels[li];
        set_labels.push((name.clone(), *new));
        if old == *new {
            confirmed.push(Value::from(name.clone()));
            continue;
        }
        let mut c = Map::new();
        c.insert("old".into(), label_json(old));
        c.insert("new".into(), label_json(*new));
        changes.insert(name.clone(), Value::Object(c));
        *summary
            .per_label
            .entry(name.clone())
            .or_default()
            .transitions
            .entry((old, *new))
            .or_default() += 1;
    }
    if !set_labels.is_empty() {
        let l = object_field(&mut obj, "labels").ok_or("field 'labels' is not an object")?;
        for (name, v) in set_labels {
            l.insert(name, label_json(v));
        }
    }
    let mut previous_rationale = None;
    let rationale_changed = match &review.rationale {
        Some(new) if row.rationale.as_deref() != Some(new.as_str()) => {
            previous_rationale = row.rationale.clone();
            obj.insert("rationale".into(), Value::from(new.clone()));
            summary.rationales += 1;
            true
        }
        _ => false,
    };
    if !changes.is_empty() || rationale_changed {
        summary.changed += 1;
    }
    for label in &review.conflicts {
        summary.conflicts.push((review.id.clone(), label.clone()));
    }

    let mut entry = Map::new();
    let by = review.by.as_deref().or(ctx.default_by).unwrap_or("unknown");
    entry.insert("by".into(), Value::from(by));
    entry.insert(
        "at".into(),
        Value::from(review.at.as_deref().unwrap_or(ctx.now)),
    );
    entry.insert(
        "source".into(),
        Value::from(ctx.reviews.display().to_string()),
    );
    entry.insert("changes".into(), Value::Object(changes));
    if !confirmed.is_empty() {
        entry.insert("confirmed".into(), Value::Array(confirmed));
    }
    if let Some(old) = previous_rationale {
        entry.insert("previous_rationale".into(), Value::from(old));
    }
    if !review.conflicts.is_empty() {
        entry.insert(
            "conflicts".into(),
            Value::Array(review.conflicts.iter().cloned().map(Value::from).collect()),
        );
    }
    let meta = object_field(&mut obj, "meta")
        .ok_or("field 'meta' is not an object, so provenance cannot be added to it")?;
    let list = meta
        .entry("provenance")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = list else {
        return Err("meta.provenance is not a list".into());
    };
    list.push(Value::Object(entry));
    Ok(serde_json::to_string(&Value::Object(obj)).expect("a JSON value serializes"))
}

/// `obj[key]` as an object, made empty when absent or `null`; `None` when it holds
/// something else.
fn object_field<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let v = obj.entry(key).or_insert(Value::Null);
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = "{\"id\":\"a\",\"text\":\"x\",\"labels\":{\"hate\":0,\"spam\":1}}\n{\"id\": \"b\",  \"text\": \"y\", \"labels\": {\"hate\": 0}}\n{\"id\":\"c\",\"image\":\"i.png\",\"meta\":{\"provenance\":[{\"by\":\"old\"}]},\"rationale\":\"was\"}\n";

    fn data() -> DataFile {
        DataFile::parse(Path::new("d.jsonl"), DATA, None).unwrap()
    }

    fn review(id: &str, line: usize, labels: &[(&str, Option<bool>)]) -> Review {
        Review {
            id: id.into(),
            line,
            labels: labels.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            rationale: None,
            by: None,
            at: None,
            conflicts: Vec::new(),
        }
    }

    fn ctx() -> FoldContext<'static> {
        FoldContext {
            reviews: Path::new("r.jsonl"),
            default_by: Some("kim"),
            now: "2025-06-01T00:00:00Z",
        }
    }

    #[test]
    fn only_reviewed_rows_change_and_provenance_is_appended() {
        let mut c = review("c", 2, &[("hate", Some(true))]);
        c.rationale = Some("now".into());
        c.by = Some("lee".into());
        let reviews = vec![
            review("a", 1, &[("hate", Some(true)), ("spam", Some(true))]),
            c,
        ];
        let f = fold(&data(), &reviews, &ctx()).unwrap();
        let lines: Vec<&str> = f.text.lines().collect();
        assert_eq!(
            lines[1],
            DATA.lines().nth(1).unwrap(),
            "untouched row byte-identical"
        );
        assert!(f.text.ends_with('\n'));
        let a: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(a["labels"], serde_json::json!({"hate": 1, "spam": 1}));
        let p = &a["meta"]["provenance"][0];
        assert_eq!(p["by"], "kim");
        assert_eq!(p["at"], "2025-06-01T00:00:00Z");
        assert_eq!(p["source"], "r.jsonl");
        assert_eq!(
            p["changes"],
            serde_json::json!({"hate": {"old": 0, "new": 1}})
        );
        assert_eq!(p["confirmed"], serde_json::json!(["spam"]));
        let c: Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(c["rationale"], "now");
        assert_eq!(c["labels"], serde_json::json!({"hate": 1}));
        let prov = c["meta"]["provenance"].as_array().unwrap();
        assert_eq!(prov.len(), 2, "appended, never replaced");
        assert_eq!(prov[1]["by"], "lee");
        assert_eq!(
            prov[1]["changes"]["hate"],
            serde_json::json!({"old": null, "new": 1})
        );
        assert_eq!(prov[1]["previous_rationale"], "was");
        assert_eq!(f.summary.changed, 2);
        assert_eq!(f.summary.per_label["hate"].total(), 2);
        assert!(!f.summary.per_label.contains_key("spam"));
        assert_eq!(f.summary.rationales, 1);
    }

    #[test]
    fn an_unknown_id_a_repeat_or_an_unknown_label_is_refused() {
        let e = fold(&data(), &[review("zz", 4, &[("hate", Some(true))])], &ctx()).unwrap_err();
        assert!(e.is_usage());
        assert!(
            e.to_string()
                .contains("r.jsonl:4: id 'zz' is not in d.jsonl"),
            "{e}"
        );
        let twice = [review("a", 1, &[]), review("a", 3, &[])];
        let e = fold(&data(), &twice, &ctx()).unwrap_err();
        assert!(
            e.to_string()
                .contains("r.jsonl:3: id 'a' is reviewed twice (also on line 1)"),
            "{e}"
        );
        let e = fold(&data(), &[review("a", 2, &[("nsfw", Some(true))])], &ctx()).unwrap_err();
        assert!(e.to_string().contains("unknown label 'nsfw'"), "{e}");
    }

    #[test]
    fn crlf_and_a_missing_final_newline_are_kept() {
        let d = DataFile::parse(
            Path::new("d.jsonl"),
            "{\"id\":\"a\",\"text\":\"x\"}\r\n{\"id\":\"b\",\"text\":\"y\"}",
            None,
        )
        .unwrap();
        let f = fold(
            &d,
            &[review("a", 1, &[])],
            &FoldContext {
                default_by: None,
                ..ctx()
            },
        )
        .unwrap();
        assert!(
            f.text.starts_with('{') && f.text.contains("}\r\n{\"id\":\"b\""),
            "{}",
            f.text
        );
        assert!(f.text.ends_with("\"y\"}"));
        assert!(f.text.contains("\"by\":\"unknown\""));
    }
}
