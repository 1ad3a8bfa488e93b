//! Row formats: one small module per JSONL dialect, each turning one line into a
//! [`RawRow`].
//!
//! A format only parses; the checks every format shares (content present, text
//! length, image path and file, duplicate ids) live in [`crate::Dataset`] loading,
//! so adding a format is one file with one [`RowFormat`] impl plus a match arm in
//! [`for_config`].
//!
//! # Layout
//! - `vigil.rs`: `{"id", "text", "image", "labels": {name: 0|1|null}, "meta",
//!   "rationale"}` (default).
//! - `hateful_memes.rs`: `{"id", "img", "label", "text"}`, one binary label.

mod hateful_memes;
mod vigil;

pub use hateful_memes::HatefulMemes;
pub use vigil::Vigil;

use serde_json::{Map, Value};

use super::error::{BadRow, BadRowKind};
use vigil_config::DataFormat;

/// One parsed row before the shared checks.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// The row's id, as text (integer ids are written in decimal).
    pub id: String,
    /// The text, if any (an empty or whitespace-only text counts as none).
    pub text: Option<String>,
    /// The image path as written in the file, if any.
    pub image: Option<String>,
    /// One entry per configured label: `Some(true/false)` or `None` (unknown).
    pub labels: Vec<Option<bool>>,
    /// The row's `meta` object (provenance, language, source, ...), carried
    /// through untouched for slicing reports; `None` when absent or not an object.
    pub meta: Option<serde_json::Map<String, Value>>,
    /// Why the row has its labels (a reviewer's or a model's reason), if given;
    /// carried to the scores, the report and the annotation queue, never trained on.
    pub rationale: Option<String>,
}

/// A JSONL dialect.
pub trait RowFormat: Send + Sync {
    /// The `data.format` word.
    fn name(&self) -> &'static str;
    /// Parses one non-blank line against the configured label names.
    fn parse(&self, line: &str, labels: &[String]) -> Result<RawRow, BadRow>;
}

/// A shared format parses as the format it shares (the loader parses through one
/// handle while its owner reads the format's state through another).
impl<F: RowFormat + ?Sized> RowFormat for std::sync::Arc<F> {
    fn name(&self) -> &'static str {
        self.as_ref().name()
    }

    fn parse(&self, line: &str, labels: &[String]) -> Result<RawRow, BadRow> {
        self.as_ref().parse(line, labels)
    }
}

/// The format `data.format` names; `hateful_memes_label` is the label the
/// Hateful Memes `label` field maps to.
pub fn for_config(
    format: DataFormat,
    hateful_memes_label: Option<&str>,
) -> Result<Box<dyn RowFormat>, super::DataError> {
    match format {
        DataFormat::Vigil => Ok(Box::new(Vigil)),
        DataFormat::HatefulMemes => {
            let label = hateful_memes_label.ok_or_else(|| super::DataError::Settings {
                message: "data.hateful_memes_label must name the label for format: hateful_memes"
                    .into(),
            })?;
            Ok(Box::new(HatefulMemes {
                label: label.to_string(),
            }))
        }
    }
}

/// Parses a line into a JSON object.
pub fn object(line: &str) -> Result<Map<String, Value>, BadRow> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(BadRow::new(
            BadRowKind::MalformedJson,
            format!("expected a JSON object, got {}", json_type(&other)),
        )),
        Err(e) => Err(BadRow::new(
            BadRowKind::MalformedJson,
            format!("malformed JSON: {e}"),
        )),
    }
}

/// Rejects fields outside `allowed` (typos such as `lables` must not silently
/// turn every label unknown).
pub(crate) fn only_fields(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), BadRow> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(BadRow::new(
            BadRowKind::MalformedRow,
            format!("unknown field '{k}' (expected {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// The required `id`: a non-empty string or an integer.
pub fn id_field(map: &Map<String, Value>) -> Result<String, BadRow> {
    match map.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        None | Some(Value::Null) => Err(BadRow::new(
            BadRowKind::MalformedRow,
            "field 'id' is missing",
        )),
        Some(other) => Err(BadRow::new(
            BadRowKind::MalformedRow,
            format!(
                "field 'id' must be a non-empty string or an integer, got {}",
                json_type(other)
            ),
        )),
    }
}

/// An optional string field; `null`, absent and blank all mean "none".
pub fn text_field(map: &Map<String, Value>, key: &str) -> Result<Option<String>, BadRow> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(BadRow::new(
            BadRowKind::MalformedRow,
            format!("field '{key}' must be a string, got {}", json_type(other)),
        )),
    }
}

/// An optional image path field; an empty string is malformed.
pub fn path_field(map: &Map<String, Value>, key: &str) -> Result<Option<String>, BadRow> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(BadRow::new(
            BadRowKind::MalformedRow,
            format!("field '{key}' is an empty path"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(BadRow::new(
            BadRowKind::MalformedRow,
            format!(
                "field '{key}' must be a path string, got {}",
                json_type(other)
            ),
        )),
    }
}

/// A label value: 0/1 (also `0.0`/`1.0`), `true`/`false`, or `null` (unknown).
pub(crate) fn label_value(name: &str, value: &Value) -> Result<Option<bool>, BadRow> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Some(false)),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(Some(true)),
        other => Err(BadRow::new(
            BadRowKind::WrongLabelType,
            format!("label '{name}' must be 0, 1 or null, got {other}"),
        )),
    }
}

/// A short name of a JSON value's type, for messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
