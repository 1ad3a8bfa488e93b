//! Vigil JSONL, the default format:
//! `{"id": "a1", "text": "...", "image": "img/a1.png", "labels": {"hate": 1, "spam": 0, "violence": null}}`.
//!
//! `text` and `image` are each optional (not both: that check is shared); a label
//! that is missing or `null` is unknown. `meta` may hold anything and is not
//! used for training, so pipelines can carry provenance without tripping the
//! unknown-field check; an object `meta` is carried through to the scored rows
//! (`eval/step-<S>.scores.jsonl`) so `vigil report --slice-by meta.FIELD` can slice on it.
//! `rationale` (a string: why the row has its labels) is carried the same way and
//! shown beside the row in the report and the annotation queue; training ignores it.

use serde_json::Value;

use super::{
    RawRow, RowFormat, id_field, json_type, label_value, object, only_fields, path_field,
    text_field,
};
use crate::error::{BadRow, BadRowKind};

/// The Vigil JSONL format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vigil;

impl Vigil {
    /// Every label name the rows' `labels` objects use, in order of first use; lines
    /// that are not JSON objects are passed over (loading reports them).
    pub fn label_names(text: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for line in text.lines() {
            let Ok(Value::Object(map)) = serde_json::from_str(line) else {
                continue;
            };
            if let Some(Value::Object(l)) = map.get("labels") {
                for k in l.keys() {
                    if !names.contains(k) {
                        names.push(k.clone());
                    }
                }
            }
        }
        names
    }
}

impl RowFormat for Vigil {
    fn name(&self) -> &'static str {
        "vigil"
    }

    fn parse(&self, line: &str, labels: &[String]) -> Result<RawRow, BadRow> {
        let map = object(line)?;
        only_fields(
            &map,
            &["id", "text", "image", "labels", "meta", "rationale"],
        )?;
        let id = id_field(&map)?;
        let text = text_field(&map, "text")?;
        let image = path_field(&map, "image")?;
        let mut values = vec![None; labels.len()];
        match map.get("labels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                for (name, value) in given {
                    let Some(i) = labels.iter().position(|l| l == name) else {
                        return Err(BadRow::new(
                            BadRowKind::UnknownLabel,
                            format!(
                                "unknown label '{name}' (model.labels: {})",
                                labels.join(", ")
                            ),
                        ));
                    };
                    values[i] = label_value(name, value)?;
                }
            }
            Some(other) => {
                return Err(BadRow::new(
                    BadRowKind::MalformedRow,
                    format!("field 'labels' must be an object, got {}", json_type(other)),
                ));
            }
        }
        let meta = match map.get("meta") {
            Some(Value::Object(m)) => Some(m.clone()),
            _ => None,
        };
        let rationale = text_field(&map, "rationale")?;
        Ok(RawRow {
            id,
            text,
            image,
            labels: values,
            meta,
            rationale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["hate".into(), "spam".into(), "violence".into()]
    }

    fn kind(line: &str) -> BadRowKind {
        Vigil.parse(line, &labels()).unwrap_err().kind
    }

    #[test]
    fn parses_a_full_row() {
        let r = Vigil
            .parse(
                r#"{"id": "a1", "text": "hi", "image": "img/a.png", "labels": {"hate": 1, "spam": 0, "violence": null}}"#,
                &labels(),
            )
            .unwrap();
        assert_eq!(r.id, "a1");
        assert_eq!(r.text.as_deref(), Some("hi"));
        assert_eq!(r.image.as_deref(), Some("img/a.png"));
        assert_eq!(r.labels, vec![Some(true), Some(false), None]);
    }

    #[test]
    fn integer_ids_booleans_and_missing_labels() {
        let r = Vigil
            .parse(
                r#"{"id": 7, "text": "x", "labels": {"spam": true}}"#,
                &labels(),
            )
            .unwrap();
        assert_eq!(r.id, "7");
        assert_eq!(r.labels, vec![None, Some(true), None]);
        let r = Vigil.parse(
            r#"{"id": "b", "image": "a.png", "meta": {"src": 1}}"#,
            &labels(),
        );
        let r = r.unwrap();
        assert_eq!(r.labels, vec![None; 3]);
        assert_eq!(r.meta.unwrap()["src"], 1);
        assert_eq!(r.rationale, None);
    }

    #[test]
    fn a_rationale_is_carried_and_must_be_a_string() {
        let r = Vigil
            .parse(
                r#"{"id": "a", "text": "x", "labels": {"hate": 0}, "rationale": "quoted, not endorsed"}"#,
                &labels(),
            )
            .unwrap();
        assert_eq!(r.rationale.as_deref(), Some("quoted, not endorsed"));
        let r = Vigil
            .parse(r#"{"id": "a", "text": "x", "rationale": null}"#, &labels())
            .unwrap();
        assert_eq!(r.rationale, None);
        assert_eq!(
            kind(r#"{"id": "a", "text": "x", "rationale": 3}"#),
            BadRowKind::MalformedRow
        );
        assert_eq!(
            kind(r#"{"id": "a", "text": "x", "rationale": ["why"]}"#),
            BadRowKind::MalformedRow
        );
    }

    #[test]
    fn rejects_each_problem_with_its_kind() {
        assert_eq!(kind("{\"id\": \"a\", "), BadRowKind::MalformedJson);
        assert_eq!(kind("[1, 2]"), BadRowKind::MalformedJson);
        assert_eq!(kind(r#"{"text": "x"}"#), BadRowKind::MalformedRow);
        assert_eq!(kind(r#"{"id": "a", "text": 3}"#), BadRowKind::MalformedRow);
        assert_eq!(
            kind(r#"{"id": "a", "lables": {}}"#),
            BadRowKind::MalformedRow
        );
        assert_eq!(
            kind(r#"{"id": "a", "text": "x", "labels": {"hat": 1}}"#),
            BadRowKind::UnknownLabel
        );
        assert_eq!(
            kind(r#"{"id": "a", "text": "x", "labels": {"hate": "yes"}}"#),
            BadRowKind::WrongLabelType
        );
        assert_eq!(
            kind(r#"{"id": "a", "text": "x", "labels": {"hate": 2}}"#),
            BadRowKind::WrongLabelType
        );
    }
}
