//! A table's keys (see the parent module's docs): the **tower key**, a sha256 over
//! the tower's tensors, its architecture and the preprocessing settings; a **row
//! key** per row, a sha256 over its id and its text or image bytes; and the table
//! key, a sha256 over the tower key and the row keys in file order. A table whose
//! stored key differs is recomputed; a row whose tower key and row key match
//! another table's row has that row's features.
//!
//! The split costs nothing: the rows are hashed once each, as before, and the
//! table key stays a function of exactly what it was a function of.

use burn::tensor::backend::Backend;
use burn_store::ModuleSnapshot;
use sha2::{Digest, Sha256};

use super::Tower;
use crate::train::error::TrainError;
use vigil_config::RunConfig;
use vigil_data::{DataError, Dataset};
use vigil_model::{ModerationModel, TextTokenizer};

/// Version of the key's recipe; bump when preprocessing code changes meaning or the
/// file stops being what an older reader expects (v3: tower and row keys, stored
/// in the file).
const KEY_VERSION: &str = "vigil-feature-cache v3";

/// A row's key: sha256 over its id and its content for the tower.
pub(super) type RowKey = [u8; 32];

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The tower key: what a table's features depend on besides its rows (version,
/// tower, tensors, architecture, preprocessing).
pub(super) fn tower_key<B: Backend>(
    model: &ModerationModel<B>,
    tower: Tower,
    tokenizer: Option<&TextTokenizer>,
    cfg: &RunConfig,
) -> Result<String, TrainError> {
    let mut h = Sha256::new();
    field(&mut h, KEY_VERSION.as_bytes());
    field(&mut h, tower.name().as_bytes());
    let snapshots = match tower {
        Tower::Text => model.text.as_ref().map(|t| t.collect(None, None, false)),
        Tower::Image => model.image.as_ref().map(|t| t.collect(None, None, false)),
    }
    .unwrap_or_default();
    for s in snapshots {
        field(&mut h, s.full_path().as_bytes());
        let data = s.to_data().map_err(|_| TrainError::Protocol {
            what: "a tower tensor could not be read for the feature-cache key",
        })?;
        field(&mut h, format!("{:?}", data.shape).as_bytes());
        field(&mut h, &data.bytes);
    }
    match tower {
        Tower::Text => {
            let settings = serde_json::json!({
                "architecture": model.text.as_ref().map(|t| t.config()),
                "text": cfg.model.text,
                "max_text_len": cfg.data.max_text_len,
                "max_text_chars": cfg.data.max_text_chars,
            });
            field(&mut h, settings.to_string().as_bytes());
            if let Some(tok) = tokenizer {
                let path = tok.path();
                let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                field(&mut h, &bytes);
            }
        }
        Tower::Image => {
            field(&mut h, &cfg.data.image_size.to_le_bytes());
            let transform = serde_json::json!({
                "architecture": model.image.as_ref().map(|t| t.architecture()),
                "transform": cfg.data.image_transform.unwrap_or_default(),
            });
            field(&mut h, transform.to_string().as_bytes());
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// A row's key from its id and its content (`None`: the row lacks the modality).
pub(super) fn row_key(id: &str, content: Option<&[u8]>) -> RowKey {
    let mut h = Sha256::new();
    field(&mut h, id.as_bytes());
    field(&mut h, content.unwrap_or(b"\0none"));
    h.finalize().into()
}

/// Every row's key for `tower`, in file order (reads each image file once).
pub(super) fn row_keys(tower: Tower, ds: &Dataset) -> Result<Vec<RowKey>, TrainError> {
    ds.examples()
        .iter()
        .map(|e| match tower {
            Tower::Text => Ok(row_key(&e.id, e.text.as_deref().map(str::as_bytes))),
            Tower::Image => match &e.image {
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|_| DataError::ImageDecode {
                        file: ds.file().to_path_buf(),
                        line: e.line,
                        reason: vigil_data::BadRow::new(
                            vigil_data::BadRowKind::ImageNotFound,
                            format!(
                                "image '{}' cannot be read",
                                e.image_rel.as_deref().unwrap_or_default()
                            ),
                        ),
                    })?;
                    Ok(row_key(&e.id, Some(&bytes)))
                }
                None => Ok(row_key(&e.id, None)),
            },
        })
        .collect()
}

/// The table key: the tower key and every row key, in file order.
pub(super) fn table_key(tower_key: &str, rows: &[RowKey]) -> String {
    let mut h = Sha256::new();
    field(&mut h, tower_key.as_bytes());
    field(&mut h, &(rows.len() as u64).to_le_bytes());
    for r in rows {
        h.update(r);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_are_stable_and_depend_on_id_and_content_only() {
        let k = row_key("s1", Some(b"hello"));
        assert_eq!(k, row_key("s1", Some(b"hello")));
        // Pinned: a changed recipe silently stops other runs' tables from matching.
        assert_eq!(
            hex::encode(k),
            "ca4fc0f428ca7a84053afbb46681fc43b7d718552b8ee1e069441505d0346197"
        );
        assert_ne!(k, row_key("s2", Some(b"hello")));
        assert_ne!(k, row_key("s1", Some(b"hello!")));
        assert_ne!(row_key("s1", None), row_key("s1", Some(b"")));
        // Length-prefixed fields: moving bytes between id and content changes it.
        assert_ne!(row_key("ab", Some(b"c")), row_key("a", Some(b"bc")));
    }

    #[test]
    fn row_keys_do_not_depend_on_the_file_or_the_other_rows() {
        let dir = tempfile::tempdir().unwrap();
        let img = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let example =
            |id: &str, text: Option<&str>, image: Option<std::path::PathBuf>| vigil_data::Example {
                id: id.into(),
                line: 1,
                text: text.map(Into::into),
                image_rel: None,
                image,
                labels: vec![Some(false)],
                meta: None,
                rationale: None,
            };
        let rows = [
            example("a", Some("one"), Some(img("a.png", b"AAA"))),
            example("b", None, Some(img("b.png", b"BBB"))),
            example("c", Some("three"), None),
        ];
        let ds = |name: &str, rows: Vec<vigil_data::Example>| {
            Dataset::from_examples(
                dir.path().join(name),
                vigil_data::Split::Train,
                vec!["spam".into()],
                rows,
            )
        };
        let all = ds("all.jsonl", rows.to_vec());
        let part = ds("fold.jsonl", vec![rows[2].clone(), rows[0].clone()]);
        for tower in [Tower::Text, Tower::Image] {
            let (a, p) = (
                row_keys(tower, &all).unwrap(),
                row_keys(tower, &part).unwrap(),
            );
            assert_eq!(p, [a[2], a[0]]);
        }
        let text = row_keys(Tower::Text, &all).unwrap();
        assert_eq!(text[0], row_key("a", Some(b"one")));
        assert_eq!(text[1], row_key("b", None));
        assert_eq!(
            row_keys(Tower::Image, &all).unwrap()[1],
            row_key("b", Some(b"BBB"))
        );
    }

    #[test]
    fn the_table_key_is_the_tower_key_and_the_rows_in_order() {
        let (a, b) = (row_key("a", Some(b"x")), row_key("b", Some(b"y")));
        let t = table_key("tower", &[a, b]);
        assert_eq!(t, table_key("tower", &[a, b]));
        assert_ne!(t, table_key("tower2", &[a, b]));
        assert_ne!(t, table_key("tower", &[b, a]));
        assert_ne!(t, table_key("tower", &[a]));
        assert_ne!(table_key("tower", &[]), table_key("towe", &[]));
    }
}
