//! A table's key: a sha256 over the tower's tensors, its architecture, the preprocessing settings
//! and every row of the dataset (see the parent module's docs). A table whose
//! stored key differs is recomputed.

use burn::tensor::backend::Backend;
use burn_store::ModuleSnapshot;
use sha2::{Digest, Sha256};

use super::Tower;
use crate::train::error::TrainError;
use vigil_config::RunConfig;
use vigil_data::{DataError, Dataset};
use vigil_model::{ModerationModel, TextTokenizer};

/// Version of the key's recipe; bump when preprocessing code changes meaning.
const KEY_VERSION: &str = "vigil-feature-cache v2";

/// The sha256 key of one tower's table over `ds` (see the parent module's docs).
pub(super) fn table_key<B: Backend>(
    model: &ModerationModel<B>,
    tower: Tower,
    tokenizer: Option<&TextTokenizer>,
    ds: &Dataset,
    cfg: &RunConfig,
) -> Result<String, TrainError> {
    let mut h = Sha256::new();
    let field = |h: &mut Sha256, bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
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
    for e in ds.examples() {
        field(&mut h, e.id.as_bytes());
        match tower {
            Tower::Text => field(&mut h, e.text.as_deref().unwrap_or("\0none").as_bytes()),
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
                    field(&mut h, &bytes);
                }
                None => field(&mut h, b"\0none"),
            },
        }
    }
    Ok(hex::encode(h.finalize()))
}
