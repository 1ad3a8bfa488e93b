//! The plain JSON convenience body of `POST /v1/moderate`:
//! `{"items": [{"id", "text"?, "image_base64"?}]}`, parsed into the same
//! [`Rows`] as a KServe infer request, with the same bounds and checks (each
//! error names the field and the item's row). Ids must be unique: the answer is
//! matched to the items by id, and two items with one id could not be told apart.

use std::collections::HashMap;

use serde_json::Value;

use crate::limits::Limits;
use crate::protocol::{BadInput, IMAGE, Rows, TEXT, combine, json_element, to_texts};

/// Parses the `/v1/moderate` body `{"items": [{"id", "text"?, "image_base64"?}]}`
/// into ids and rows.
pub fn parse_moderate(body: &[u8], limits: &Limits) -> Result<(Vec<String>, Rows), BadInput> {
    const ITEMS: &str = "items";
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| BadInput::new(None, None, format!("malformed JSON: {e}")))?;
    let items = v
        .get(ITEMS)
        .and_then(Value::as_array)
        .ok_or_else(|| BadInput::new(Some(ITEMS), None, "must be an array of objects"))?;
    if items.len() > limits.max_rows {
        return Err(BadInput::new(
            Some(ITEMS),
            None,
            format!(
                "{} rows is more than --max-rows {}",
                items.len(),
                limits.max_rows
            ),
        ));
    }
    let mut ids = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
    let mut texts = Vec::with_capacity(items.len());
    let mut images = Vec::with_capacity(items.len());
    for (row, item) in items.iter().enumerate() {
        let item = item
            .as_object()
            .ok_or_else(|| BadInput::new(Some(ITEMS), Some(row), "must be an object"))?;
        if let Some(k) = item
            .keys()
            .find(|k| !["id", "text", "image_base64"].contains(&k.as_str()))
        {
            return Err(BadInput::new(
                Some(ITEMS),
                Some(row),
                format!("unknown field '{k}' (fields: id, text, image_base64)"),
            ));
        }
        let id = match item.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => row.to_string(),
        };
        if let Some(first) = seen.insert(id.clone(), row) {
            return Err(BadInput::new(
                Some("id"),
                Some(row),
                format!("duplicate id '{id}' (row {first} has it too): ids must be unique"),
            ));
        }
        ids.push(id);
        let text = match item.get("text") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            Some(_) => {
                return Err(BadInput::new(
                    Some(TEXT),
                    Some(row),
                    "text must be a string",
                ));
            }
        };
        texts.push(text);
        let image = match item.get("image_base64") {
            None | Some(Value::Null) => None,
            Some(v @ Value::String(_)) => Some(json_element(IMAGE, row, v))
                .transpose()?
                .filter(|b| !b.is_empty()),
            Some(_) => {
                return Err(BadInput::new(
                    Some(IMAGE),
                    Some(row),
                    "image_base64 must be a string",
                ));
            }
        };
        images.push(image);
    }
    let rows = combine(Some(to_texts(texts, limits)?), Some(images), limits)?;
    Ok((ids, rows))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;

    #[test]
    fn moderate_items_become_rows() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"PNG");
        let body = json!({"items": [{"id": "a", "text": "hi"}, {"id": 7, "image_base64": png}]});
        let (ids, rows) = parse_moderate(body.to_string().as_bytes(), &Limits::default()).unwrap();
        assert_eq!(ids, vec!["a", "7"]);
        assert_eq!(rows.texts, vec![Some("hi".to_string()), None]);
        assert_eq!(rows.images[1].as_deref(), Some(&b"PNG"[..]));
        let body = json!({"items": [{"id": "a", "text": "x"}, {"id": "b"}, {"id": "a"}]});
        let err = parse_moderate(body.to_string().as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!((err.input.as_deref(), err.row), (Some("id"), Some(2)));
        assert!(err.to_string().contains("duplicate id 'a' (row 0"), "{err}");
        // A missing id is the row's number, so it may clash with a given one.
        let body = json!({"items": [{"id": 1, "text": "x"}, {"text": "y"}]});
        let err = parse_moderate(body.to_string().as_bytes(), &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("duplicate id '1'"), "{err}");
        let body = json!({"items": [{"id": "a", "txt": "hi"}]});
        let err = parse_moderate(body.to_string().as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(err.row, Some(0));
    }
}
