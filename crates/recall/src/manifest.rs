//! `index.json`: what an index version is, and which embedding model made its
//! vectors. A search is only meaningful with vectors from the same model, so every
//! command that embeds against an index (add, recall, serve) checks the model it
//! was given against this record and refuses a different one.

use serde::{Deserialize, Serialize};

use crate::ann::HnswParams;

/// The file format's version.
pub const FORMAT: u32 = 1;

/// Where the vectors came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSource {
    /// `model` (a published model version), `encoders` (pretrained encoder
    /// directories) or `vectors` (precomputed: nothing to check new rows against).
    pub kind: SourceKind,
    /// Which vector of `vigil embed`'s output: `embedding` (the model's fused
    /// vector, the head's input), `text_embedding` or `image_embedding`.
    pub field: String,
    /// The model version, for `kind: model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    /// Pretrained text encoder, for `kind: encoders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoder: Option<FileRef>,
    /// Pretrained image encoder, for `kind: encoders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_encoder: Option<FileRef>,
    /// Token limit the text encoder ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_text_len: Option<usize>,
    /// Image side the EfficientNet image encoder ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u32>,
}

/// The kind of an [`EmbeddingSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A published model version.
    Model,
    /// Pretrained encoders.
    Encoders,
    /// Precomputed vectors.
    Vectors,
}

/// A published model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// The model's name (its repository directory).
    pub name: String,
    /// Its version number.
    pub version: u64,
    /// Where it was read from (a directory or a bucket URL).
    pub location: String,
    /// sha256 of the version's `MANIFEST.json`, which holds the sha256 of every
    /// file of the version: the identity of the weights.
    pub manifest_sha256: String,
}

/// A pretrained encoder on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// The directory or file as given.
    pub path: String,
    /// sha256 of its weights file.
    pub sha256: String,
}

/// `index.json` of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexManifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Vector width.
    pub dims: usize,
    /// Always `cosine` (unit vectors, inner product).
    pub metric: String,
    /// The graph's parameters.
    pub hnsw: HnswParams,
    /// The embedding model.
    pub embedding: EmbeddingSource,
    /// The model's labels, in the order of each item's scores (empty without a model).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Live items.
    pub count: usize,
    /// Deleted items still in the graph (dropped by `vigil index compact`).
    pub tombstones: usize,
    /// Directory that items' relative image paths resolve against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
}

impl EmbeddingSource {
    /// Why `other` cannot embed rows for an index built from `self`, if it cannot:
    /// a different kind, field, model version or weights.
    pub fn mismatch(&self, other: &EmbeddingSource) -> Option<String> {
        if self.kind != other.kind || self.field != other.field {
            return Some(format!(
                "the index holds {:?} vectors of `{}`, the rows would get {:?} vectors of `{}`",
                self.kind, self.field, other.kind, other.field
            ));
        }
        if let (Some(a), Some(b)) = (&self.model, &other.model)
            && a.manifest_sha256 != b.manifest_sha256
        {
            return Some(format!(
                "the index was embedded by model {} version {} (manifest sha256 {}), not by {} version {} (sha256 {})",
                a.name, a.version, a.manifest_sha256, b.name, b.version, b.manifest_sha256
            ));
        }
        for (a, b) in [
            (&self.text_encoder, &other.text_encoder),
            (&self.image_encoder, &other.image_encoder),
        ] {
            if a.as_ref().map(|f| &f.sha256) != b.as_ref().map(|f| &f.sha256) {
                return Some(format!(
                    "the index was embedded by encoder {} , not {}",
                    a.as_ref().map_or("(none)", |f| f.path.as_str()),
                    b.as_ref().map_or("(none)", |f| f.path.as_str())
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(sha: &str) -> EmbeddingSource {
        EmbeddingSource {
            kind: SourceKind::Model,
            field: "embedding".into(),
            model: Some(ModelRef {
                name: "m".into(),
                version: 3,
                location: "export/m".into(),
                manifest_sha256: sha.into(),
            }),
            text_encoder: None,
            image_encoder: None,
            max_text_len: None,
            image_size: None,
        }
    }

    #[test]
    fn another_model_version_or_field_is_a_mismatch_naming_both() {
        assert_eq!(model("aa").mismatch(&model("aa")), None);
        let why = model("aa").mismatch(&model("bb")).unwrap();
        assert!(
            why.contains("sha256 aa") && why.contains("sha256 bb"),
            "{why}"
        );
        let mut text = model("aa");
        text.field = "text_embedding".into();
        assert!(
            model("aa")
                .mismatch(&text)
                .unwrap()
                .contains("text_embedding")
        );
    }
}
