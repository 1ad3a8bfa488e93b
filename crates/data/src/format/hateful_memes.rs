//! Hateful Memes JSONL (Kiela et al. 2020): `{"id": 42953, "img": "img/42953.png",
//! "label": 0, "text": "..."}`.
//!
//! The binary `label` maps onto the one label named by `data.hateful_memes_label`;
//! every other configured label is unknown for these rows (masked in the loss).
//! The test split has no `label`: such rows are all-unknown, which is right for
//! prediction and harmless (masked) for training.

use super::{
    RawRow, RowFormat, id_field, label_value, object, only_fields, path_field, text_field,
};
use crate::error::{BadRow, BadRowKind};

/// The Hateful Memes format, mapped onto `label`.
#[derive(Debug, Clone)]
pub struct HatefulMemes {
    /// The configured label that `label` fills.
    pub label: String,
}

impl RowFormat for HatefulMemes {
    fn name(&self) -> &'static str {
        "hateful_memes"
    }

    fn parse(&self, line: &str, labels: &[String]) -> Result<RawRow, BadRow> {
        let map = object(line)?;
        only_fields(&map, &["id", "img", "label", "text"])?;
        let id = id_field(&map)?;
        let text = text_field(&map, "text")?;
        let image = path_field(&map, "img")?;
        let Some(index) = labels.iter().position(|l| *l == self.label) else {
            return Err(BadRow::new(
                BadRowKind::UnknownLabel,
                format!(
                    "data.hateful_memes_label '{}' is not in model.labels",
                    self.label
                ),
            ));
        };
        let mut values = vec![None; labels.len()];
        if let Some(v) = map.get("label") {
            values[index] = label_value("label", v)?;
        }
        Ok(RawRow {
            id,
            text,
            image,
            labels: values,
            meta: None,
            rationale: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_label_onto_the_configured_one() {
        let f = HatefulMemes {
            label: "hate".into(),
        };
        let labels = vec!["spam".to_string(), "hate".to_string()];
        let r = f
            .parse(
                r#"{"id": 42953, "img": "img/42953.png", "label": 1, "text": "its their character"}"#,
                &labels,
            )
            .unwrap();
        assert_eq!(r.id, "42953");
        assert_eq!(r.image.as_deref(), Some("img/42953.png"));
        assert_eq!(r.labels, vec![None, Some(true)]);
        let r = f
            .parse(r#"{"id": 1, "img": "img/1.png", "text": "t"}"#, &labels)
            .unwrap();
        assert_eq!(r.labels, vec![None, None]);
        let e = f
            .parse(r#"{"id": 1, "img": "a.png", "label": 3}"#, &labels)
            .unwrap_err();
        assert_eq!(e.kind, BadRowKind::WrongLabelType);
    }
}
