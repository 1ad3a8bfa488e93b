//! [`Rows`]: what is scored, per row an optional text and an optional image;
//! texts from raw elements ([`to_texts`]) and the inputs combined into rows
//! ([`combine`]). The infer body and `/v1/moderate`'s body both end here.

use super::{BadInput, IMAGE, TEXT};
use crate::limits::Limits;

/// Rows to score: per row an optional text and an optional encoded image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Texts (None: the row has no text).
    pub texts: Vec<Option<String>>,
    /// Encoded image files (None: the row has no image).
    pub images: Vec<Option<Vec<u8>>>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.texts.len()
    }
}
/// Texts from raw elements: UTF-8, bounded; empty or whitespace-only is no text
/// (as the data layer reads a row).
pub(crate) fn to_texts(
    elements: Vec<Vec<u8>>,
    limits: &Limits,
) -> Result<Vec<Option<String>>, BadInput> {
    elements
        .into_iter()
        .enumerate()
        .map(|(row, e)| {
            if e.len() > limits.max_text_bytes {
                return Err(BadInput::new(
                    Some(TEXT),
                    Some(row),
                    format!(
                        "{} bytes of text is more than --max-text-bytes {}",
                        e.len(),
                        limits.max_text_bytes
                    ),
                ));
            }
            let s = String::from_utf8(e)
                .map_err(|_| BadInput::new(Some(TEXT), Some(row), "text is not valid UTF-8"))?;
            Ok((!s.trim().is_empty()).then_some(s))
        })
        .collect()
}

/// Rows from the inputs given: one missing input means that modality is absent
/// in every row; both must have the same length; a row needs text or an image.
pub fn combine(
    texts: Option<Vec<Option<String>>>,
    images: Option<Vec<Option<Vec<u8>>>>,
    limits: &Limits,
) -> Result<Rows, BadInput> {
    let n = match (&texts, &images) {
        (None, None) => return Err(BadInput::new(None, None, "no inputs (text and/or image)")),
        (Some(t), Some(i)) if t.len() != i.len() => {
            return Err(BadInput::new(
                Some(IMAGE),
                None,
                format!("has {} rows but input 'text' has {}", i.len(), t.len()),
            ));
        }
        (Some(t), _) => t.len(),
        (None, Some(i)) => i.len(),
    };
    if n == 0 {
        return Err(BadInput::new(None, None, "no rows (shape [0])"));
    }
    if n > limits.max_rows {
        return Err(BadInput::new(
            None,
            None,
            format!("{n} rows is more than --max-rows {}", limits.max_rows),
        ));
    }
    let texts = texts.unwrap_or_else(|| vec![None; n]);
    let images = images.unwrap_or_else(|| vec![None; n]);
    if let Some(row) = (0..n).find(|&r| texts[r].is_none() && images[r].is_none()) {
        return Err(BadInput::new(
            Some(TEXT),
            Some(row),
            "the row has neither text nor an image (both elements are empty)",
        ));
    }
    Ok(Rows { texts, images })
}
