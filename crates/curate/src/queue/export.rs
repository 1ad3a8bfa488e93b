//! The queue written out, without I/O: plain JSONL, Label Studio tasks with their
//! labeling config, Argilla 2.x records with their dataset settings.
//!
//! Both tools get one yes/no question per label (not one multi-select) so a reviewer
//! can leave a label unanswered: apply-labels then keeps that label as it was instead
//! of reading the silence as "no". Each tool's form also has a free-text `rationale`.
//! The row's current labels and rationale are pre-filled (Label Studio
//! `predictions`, Argilla `suggestions`), so confirming a correct label is one click.

use serde_json::{Map, Value, json};

use super::sources::{Reason, Source};
use crate::CurateError;
use crate::apply::rows::label_json;

/// One row of the queue, with the dataset's fields joined in.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    /// 1-based place in the queue (1: review first).
    pub priority: usize,
    /// The row's id.
    pub id: String,
    /// The text, if any.
    pub text: Option<String>,
    /// The image path as the dataset writes it, if any.
    pub image: Option<String>,
    /// The current labels, in label order.
    pub labels: Vec<Option<bool>>,
    /// The current rationale, if any.
    pub rationale: Option<String>,
    /// The row's `meta`, if any.
    pub meta: Option<Map<String, Value>>,
    /// Every reason from every source.
    pub reasons: Vec<Reason>,
    /// Ids of rows with the same content, folded into this item.
    pub duplicates: Vec<String>,
}

/// What Label Studio's and Argilla's forms name besides the labels.
const RESERVED: [&str; 6] = [
    "text",
    "image",
    "reasons",
    "rationale",
    "priority",
    "sources",
];

fn reason_json(r: &Reason) -> Value {
    let mut m = Map::new();
    m.insert("source".into(), Value::from(r.source.as_str()));
    m.insert("kind".into(), Value::from(r.kind.clone()));
    if let Some(l) = &r.label {
        m.insert("label".into(), Value::from(l.clone()));
    }
    m.insert("detail".into(), Value::from(r.detail.clone()));
    Value::Object(m)
}

fn labels_json(labels: &[String], values: &[Option<bool>]) -> Value {
    Value::Object(
        labels
            .iter()
            .zip(values)
            .map(|(n, v)| (n.clone(), label_json(*v)))
            .collect(),
    )
}

/// The reasons as lines a reviewer reads.
fn reasons_text(item: &QueueItem) -> String {
    let mut lines: Vec<String> = item
        .reasons
        .iter()
        .map(|r| match &r.label {
            Some(l) => format!("{} / {} ({l}): {}", r.source.as_str(), r.kind, r.detail),
            None => format!("{} / {}: {}", r.source.as_str(), r.kind, r.detail),
        })
        .collect();
    if !item.duplicates.is_empty() {
        lines.push(format!("same content as: {}", item.duplicates.join(", ")));
    }
    lines.join("\n")
}

fn sources_of(item: &QueueItem) -> Vec<&'static str> {
    let mut s: Vec<Source> = item.reasons.iter().map(|r| r.source).collect();
    s.sort();
    s.dedup();
    s.into_iter().map(Source::as_str).collect()
}

/// Plain JSONL: `{"id", "text"?, "image"?, "labels", "rationale"?, "meta"?, "reasons":
/// [{"source", "kind", "label"?, "detail"}], "duplicates"?, "priority"}` per line.
pub fn jsonl(items: &[QueueItem], labels: &[String]) -> String {
    let mut out = String::new();
    for item in items {
        let mut m = Map::new();
        m.insert("id".into(), Value::from(item.id.clone()));
        if let Some(t) = &item.text {
            m.insert("text".into(), Value::from(t.clone()));
        }
        if let Some(i) = &item.image {
            m.insert("image".into(), Value::from(i.clone()));
        }
        m.insert("labels".into(), labels_json(labels, &item.labels));
        if let Some(r) = &item.rationale {
            m.insert("rationale".into(), Value::from(r.clone()));
        }
        if let Some(meta) = &item.meta {
            m.insert("meta".into(), Value::Object(meta.clone()));
        }
        m.insert(
            "reasons".into(),
            Value::Array(item.reasons.iter().map(reason_json).collect()),
        );
        if !item.duplicates.is_empty() {
            m.insert("duplicates".into(), json!(item.duplicates));
        }
        m.insert("priority".into(), Value::from(item.priority));
        out.push_str(&Value::Object(m).to_string());
        out.push('\n');
    }
    out
}

fn check_names(
    labels: &[String],
    tool: &str,
    valid: impl Fn(&str) -> bool,
) -> Result<(), CurateError> {
    for l in labels {
        if RESERVED.contains(&l.as_str()) || !valid(l) {
            return Err(CurateError::Usage {
                message: format!(
                    "label '{l}' cannot be a {tool} question name (reserved: {}{}); \
                     use --format jsonl",
                    RESERVED.join(", "),
                    if tool == "Argilla" {
                        "; Argilla names are lower-case letters, digits, '_' and '-'"
                    } else {
                        ""
                    }
                ),
            });
        }
    }
    Ok(())
}

fn yes_no(v: bool) -> &'static str {
    if v { "yes" } else { "no" }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Label Studio: the tasks to import (a JSON array) and the labeling config (XML).
///
/// A task is `{"data": {"vigil_id", "text", "image", "reasons", "rationale", "priority",
/// "labels", "meta"}, "predictions": [{"model_version", "result": [...]}], "meta":
/// {"vigil_id", "priority", "reasons", "duplicates"}}`; `data.vigil_id` is what
/// apply-labels reads back from the export.
pub fn label_studio(
    items: &[QueueItem],
    labels: &[String],
) -> Result<(String, String), CurateError> {
    check_names(labels, "Label Studio", |l| {
        !l.is_empty() && !l.chars().any(|c| c.is_whitespace() || c == '$')
    })?;
    let with_image = items.iter().any(|i| i.image.is_some());
    let mut tasks = Vec::new();
    for item in items {
        let mut data = Map::new();
        data.insert("vigil_id".into(), Value::from(item.id.clone()));
        data.insert(
            "text".into(),
            Value::from(item.text.clone().unwrap_or_default()),
        );
        if with_image {
            data.insert(
                "image".into(),
                Value::from(item.image.clone().unwrap_or_default()),
            );
        }
        data.insert("reasons".into(), Value::from(reasons_text(item)));
        data.insert(
            "rationale".into(),
            Value::from(item.rationale.clone().unwrap_or_default()),
        );
        data.insert("priority".into(), Value::from(item.priority));
        data.insert("labels".into(), labels_json(labels, &item.labels));
        if let Some(meta) = &item.meta {
            data.insert("meta".into(), Value::Object(meta.clone()));
        }
        let mut result: Vec<Value> = labels
            .iter()
            .zip(&item.labels)
            .filter_map(|(l, v)| {
                v.map(|v| {
                    json!({"from_name": l, "to_name": "text", "type": "choices",
                           "value": {"choices": [yes_no(v)]}})
                })
            })
            .collect();
        if let Some(r) = &item.rationale {
            result.push(
                json!({"from_name": "rationale", "to_name": "text", "type": "textarea",
                               "value": {"text": [r]}}),
            );
        }
        let mut task = Map::new();
        task.insert("data".into(), Value::Object(data));
        if !result.is_empty() {
            task.insert(
                "predictions".into(),
                json!([{"model_version": "current dataset labels", "result": result}]),
            );
        }
        task.insert(
            "meta".into(),
            json!({"vigil_id": item.id, "priority": item.priority,
                   "reasons": item.reasons.iter().map(reason_json).collect::<Vec<_>>(),
                   "duplicates": item.duplicates}),
        );
        tasks.push(Value::Object(task));
    }
    let tasks = serde_json::to_string_pretty(&Value::Array(tasks)).expect("JSON serializes");

    let mut xml = String::from("<View>\n");
    xml.push_str("  <Header value=\"Why this row is queued\"/>\n");
    xml.push_str("  <Text name=\"reasons\" value=\"$reasons\"/>\n");
    xml.push_str("  <Header value=\"Row $vigil_id\"/>\n");
    xml.push_str("  <Text name=\"text\" value=\"$text\"/>\n");
    if with_image {
        xml.push_str("  <Image name=\"image\" value=\"$image\"/>\n");
    }
    for l in labels {
        let l = xml_escape(l);
        xml.push_str(&format!("  <Header value=\"{l}\"/>\n"));
        xml.push_str(&format!(
            "  <Choices name=\"{l}\" toName=\"text\" choice=\"single-radio\" showInline=\"true\">\n"
        ));
        xml.push_str("    <Choice value=\"yes\"/>\n    <Choice value=\"no\"/>\n  </Choices>\n");
    }
    xml.push_str("  <Header value=\"Rationale (why these labels)\"/>\n");
    xml.push_str(
        "  <TextArea name=\"rationale\" toName=\"text\" editable=\"true\" maxSubmissions=\"1\" \
         rows=\"3\"/>\n",
    );
    xml.push_str("</View>\n");
    Ok((tasks + "\n", xml))
}

/// Argilla 2.x: the records (a JSON array of `Record.to_dict()` shapes: `id`,
/// `fields`, `metadata`, `suggestions`, `responses`, `vectors`) and the dataset
/// settings (`rg.Settings` serialised: `fields`, `questions`, `metadata`, ...).
pub fn argilla(items: &[QueueItem], labels: &[String]) -> Result<(String, String), CurateError> {
    check_names(labels, "Argilla", |l| {
        l.chars()
            .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    })?;
    let with_image = items.iter().any(|i| i.image.is_some());
    let mut records = Vec::new();
    for item in items {
        let mut fields = Map::new();
        if let Some(t) = &item.text {
            fields.insert("text".into(), Value::from(t.clone()));
        }
        if let Some(i) = &item.image {
            fields.insert("image".into(), Value::from(i.clone()));
        }
        fields.insert("reasons".into(), Value::from(reasons_text(item)));
        let mut suggestions = Map::new();
        for (l, v) in labels.iter().zip(&item.labels) {
            if let Some(v) = v {
                suggestions.insert(
                    l.clone(),
                    json!({"value": yes_no(*v), "score": null, "agent": "current dataset labels"}),
                );
            }
        }
        if let Some(r) = &item.rationale {
            suggestions.insert(
                "rationale".into(),
                json!({"value": r, "score": null, "agent": "current dataset labels"}),
            );
        }
        records.push(json!({
            "id": item.id,
            "fields": fields,
            "metadata": {"priority": item.priority, "sources": sources_of(item)},
            "suggestions": suggestions,
            "responses": {},
            "vectors": {},
        }));
    }
    let records = serde_json::to_string_pretty(&Value::Array(records)).expect("JSON serializes");

    let mut fields = vec![json!({"name": "text", "title": "Text", "required": false,
                                 "settings": {"type": "text", "use_markdown": false}})];
    if with_image {
        fields.push(json!({"name": "image", "title": "Image", "required": false,
                           "settings": {"type": "image"}}));
    }
    fields.push(
        json!({"name": "reasons", "title": "Why this row is queued", "required": true,
                       "settings": {"type": "text", "use_markdown": false}}),
    );
    let mut questions: Vec<Value> = labels
        .iter()
        .map(|l| {
            json!({"name": l, "title": l,
                   "description": format!("Is the row '{l}'? Leave it unanswered to keep the current label."),
                   "required": false,
                   "settings": {"type": "label_selection",
                                "options": [{"value": "yes", "text": "yes"}, {"value": "no", "text": "no"}],
                                "visible_options": null}})
        })
        .collect();
    questions.push(
        json!({"name": "rationale", "title": "Rationale (why these labels)",
                          "required": false, "settings": {"type": "text", "use_markdown": false}}),
    );
    let settings = json!({
        "guidelines": "Answer yes or no for each label you reviewed; leave a label unanswered \
                       to keep the dataset's current value. Say why in the rationale.",
        "allow_extra_metadata": false,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "fields": fields,
        "questions": questions,
        "metadata": [
            {"name": "priority", "title": "Priority", "visible_for_annotators": true,
             "settings": {"type": "integer", "min": 1, "max": items.len().max(1)}},
            {"name": "sources", "title": "Sources", "visible_for_annotators": true,
             "settings": {"type": "terms",
                          "values": ["issues", "uncertain", "recall", "compare"]}},
        ],
        "vectors": [],
        "mapping": null,
    });
    let settings = serde_json::to_string_pretty(&settings).expect("JSON serializes");
    Ok((records + "\n", settings + "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> QueueItem {
        QueueItem {
            priority: 1,
            id: "a1".into(),
            text: Some("look".into()),
            image: Some("img/a1.png".into()),
            labels: vec![Some(true), None],
            rationale: Some("slur".into()),
            meta: None,
            reasons: vec![Reason {
                source: Source::Issues,
                kind: "label_error".into(),
                label: Some("hate".into()),
                detail: "p=0.03".into(),
            }],
            duplicates: vec!["a2".into()],
        }
    }

    fn labels() -> Vec<String> {
        vec!["hate".into(), "spam".into()]
    }

    #[test]
    fn jsonl_has_every_field_of_the_item() {
        let line = jsonl(&[item()], &labels());
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["labels"], json!({"hate": 1, "spam": null}));
        assert_eq!(
            v["reasons"][0],
            json!({"source": "issues", "kind": "label_error", "label": "hate", "detail": "p=0.03"})
        );
        assert_eq!(v["priority"], 1);
        assert_eq!(v["duplicates"], json!(["a2"]));
        assert_eq!(v["rationale"], "slur");
    }

    #[test]
    fn label_studio_tasks_prefill_known_labels_and_the_config_names_each_label() {
        let (tasks, xml) = label_studio(&[item()], &labels()).unwrap();
        let t: Value = serde_json::from_str(&tasks).unwrap();
        assert_eq!(t[0]["data"]["vigil_id"], "a1");
        assert_eq!(t[0]["data"]["image"], "img/a1.png");
        let result = t[0]["predictions"][0]["result"].as_array().unwrap();
        assert_eq!(result.len(), 2, "hate and the rationale; spam is unknown");
        assert_eq!(result[0]["value"]["choices"], json!(["yes"]));
        assert!(
            xml.contains("<Choices name=\"hate\" toName=\"text\""),
            "{xml}"
        );
        assert!(xml.contains("<Choices name=\"spam\""));
        assert!(xml.contains("<TextArea name=\"rationale\""));
        assert!(xml.contains("<Image name=\"image\" value=\"$image\"/>"));
        let e = label_studio(&[item()], &["text".into()]).unwrap_err();
        assert!(
            e.is_usage() && e.to_string().contains("label 'text'"),
            "{e}"
        );
    }

    #[test]
    fn argilla_records_and_settings_agree_on_names() {
        let (records, settings) = argilla(&[item()], &labels()).unwrap();
        let r: Value = serde_json::from_str(&records).unwrap();
        assert_eq!(r[0]["id"], "a1");
        assert_eq!(r[0]["suggestions"]["hate"]["value"], "yes");
        assert!(r[0]["suggestions"].get("spam").is_none());
        assert_eq!(r[0]["metadata"]["sources"], json!(["issues"]));
        let s: Value = serde_json::from_str(&settings).unwrap();
        let q: Vec<&str> = s["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["name"].as_str().unwrap())
            .collect();
        assert_eq!(q, vec!["hate", "spam", "rationale"]);
        assert!(argilla(&[item()], &["Hate".into()]).is_err());
    }
}
