//! What an index keeps of each data row besides its vector: the id, the labels it
//! is known to carry, its text (cut) and image path, read from the same JSONL the
//! vectors were embedded from.

use std::io::BufRead;
use std::path::Path;

use crate::bank::{ItemMeta, TEXT_CHARS};
use crate::error::RecallError;
use crate::vectors::id_text;

/// Reads every row's id, known-positive labels (`"labels": {name: 1 | true}`),
/// text and image; a bad line is an error naming it.
pub fn read_rows(path: &Path) -> Result<Vec<ItemMeta>, RecallError> {
    let file = std::fs::File::open(path).map_err(|e| RecallError::io(path, e))?;
    let bad = |line: usize, reason: &str| RecallError::BadLine {
        path: path.to_path_buf(),
        line,
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| RecallError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|_| bad(i + 1, "not a JSON object"))?;
        let id = v
            .get("id")
            .and_then(id_text)
            .ok_or_else(|| bad(i + 1, "no \"id\" (a non-empty string or an integer)"))?;
        let labels = match v.get("labels") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .filter(|(_, v)| v.as_f64() == Some(1.0) || v.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .collect(),
            Some(_) => return Err(bad(i + 1, "\"labels\" is not an object")),
        };
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.chars().take(TEXT_CHARS).collect());
        let image = v.get("image").and_then(|t| t.as_str()).map(str::to_string);
        out.push(ItemMeta {
            id,
            labels,
            scores: Vec::new(),
            text,
            image,
        });
    }
    Ok(out)
}

/// Reads ids to delete: one per line, either a bare id or a JSON object with an
/// `"id"` (so a hits or rows file works as is).
pub fn read_ids(path: &Path) -> Result<Vec<String>, RecallError> {
    let text = std::fs::read_to_string(path).map_err(|e| RecallError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| RecallError::BadLine {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: format!("not JSON: {e}"),
                })?;
            out.push(
                v.get("id")
                    .and_then(id_text)
                    .ok_or_else(|| RecallError::BadLine {
                        path: path.to_path_buf(),
                        line: i + 1,
                        reason: "no \"id\"".into(),
                    })?,
            );
        } else {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_known_positive_labels_and_ids_read_bare_or_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rows.jsonl");
        std::fs::write(
            &p,
            "{\"id\":1,\"text\":\"hi\",\"labels\":{\"spam\":1,\"hate\":0,\"x\":null}}\n{\"id\":\"b\",\"image\":\"i.png\"}\n",
        )
        .unwrap();
        let rows = read_rows(&p).unwrap();
        assert_eq!(rows[0].id, "1");
        assert_eq!(rows[0].labels, vec!["spam"]);
        assert_eq!(rows[1].image.as_deref(), Some("i.png"));
        std::fs::write(&p, "a\n{\"id\":\"b\",\"similarity\":0.9}\n\n").unwrap();
        assert_eq!(read_ids(&p).unwrap(), vec!["a", "b"]);
        std::fs::write(&p, "{\"id\":\"a\",\"labels\":3}\n").unwrap();
        assert!(
            read_rows(&p)
                .unwrap_err()
                .to_string()
                .contains("rows.jsonl:1")
        );
    }
}
