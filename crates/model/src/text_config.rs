//! Which text encoder a directory holds: [`TextEncoderConfig`], chosen by the
//! `model_type` of its Hugging Face `config.json`, never by whether tensors fit.
//!
//! An XLM-RoBERTa checkpoint has BERT's tensor names and shapes; read as BERT it
//! loads without a word and embeds wrongly (its positions start after the padding
//! id). So the architecture is read first, from `model_type`, and a type Vigil does
//! not compute is an error naming the file, the type and the supported list.
//!
//! BERT, RoBERTa, XLM-RoBERTa and DistilBERT are one arithmetic (post-LayerNorm
//! blocks, absolute positions) with different names, position offsets and token
//! types: they share [`Bert`](super::Bert). DeBERTa-v2/v3 (disentangled relative
//! attention) is its own module, and so is the text half of a CLIP or SigLIP
//! directory (pre-LayerNorm blocks, pooled at the last token into the joint space).
//!
//! An export writes the architecture it trained as `text_config.json` in Vigil's
//! own form (`{"architecture": .., "config": ..}`), so reading it back never
//! depends on Hugging Face field names; a `text_config.json` without
//! `architecture` (exports before this) is a BERT config.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::bert::BertConfig;
use super::deberta::DebertaV2Config;
use super::error::ModelError;
use super::vision::{JointKind, JointTextConfig};

/// The Hugging Face `model_type`s Vigil reads as text encoders.
pub const TEXT_MODEL_TYPES: [&str; 7] = [
    "bert",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "deberta-v2",
    "clip",
    "siglip",
];

/// A text encoder's architecture and shape, as built and as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "architecture", content = "config")]
pub enum TextEncoderConfig {
    /// BERT (and MiniLM and other `BertModel` checkpoints).
    #[serde(rename = "bert")]
    Bert(BertConfig),
    /// RoBERTa: BERT with positions from `padding_idx + 1` and one token type.
    #[serde(rename = "roberta")]
    Roberta(BertConfig),
    /// XLM-RoBERTa: RoBERTa's arithmetic with a SentencePiece vocabulary.
    #[serde(rename = "xlm-roberta")]
    XlmRoberta(BertConfig),
    /// DistilBERT: BERT without token types, under other tensor names.
    #[serde(rename = "distilbert")]
    DistilBert(BertConfig),
    /// DeBERTa-v2 / v3: disentangled relative-position attention.
    #[serde(rename = "deberta-v2")]
    DebertaV2(DebertaV2Config),
    /// The text half of a CLIP or SigLIP directory, with its projection into the
    /// joint image-text space.
    #[serde(rename = "joint")]
    Joint(JointTextConfig),
}

impl TextEncoderConfig {
    /// Reads a Hugging Face `config.json` and dispatches on its `model_type`. A
    /// config without one is read as BERT (what older tools wrote).
    pub fn from_hf_file(path: &Path) -> Result<Self, ModelError> {
        let value = read_json(path)?;
        let model_type = value
            .get("model_type")
            .and_then(|t| t.as_str())
            .unwrap_or("bert")
            .to_string();
        Ok(match model_type.as_str() {
            "bert" => Self::Bert(BertConfig::from_value(value, path, false)?),
            "roberta" => Self::Roberta(BertConfig::from_value(value, path, true)?),
            "xlm-roberta" => Self::XlmRoberta(BertConfig::from_value(value, path, true)?),
            "distilbert" => Self::DistilBert(BertConfig::from_distilbert(value, path)?),
            "deberta-v2" => Self::DebertaV2(DebertaV2Config::from_value(value, path)?),
            "clip" | "siglip" => Self::Joint(JointTextConfig::from_value(&value, path)?),
            other => {
                return Err(ModelError::BadConfig {
                    path: path.to_path_buf(),
                    key: "model_type".into(),
                    message: format!(
                        "'{other}' is not a supported text encoder (supported: {})",
                        TEXT_MODEL_TYPES.join(", ")
                    ),
                });
            }
        })
    }

    /// Reads an export's `text_config.json`: Vigil's own form, or (exports written
    /// before architectures were recorded) a plain BERT config.
    pub fn from_export_file(path: &Path) -> Result<Self, ModelError> {
        let value = read_json(path)?;
        if value.get("architecture").is_some() {
            return serde_json::from_value(value).map_err(|source| ModelError::Json {
                path: path.to_path_buf(),
                source,
            });
        }
        Self::from_hf_file(path)
    }

    /// The Hugging Face `model_type` (what an error or a cache key names).
    pub fn model_type(&self) -> &'static str {
        match self {
            Self::Bert(_) => "bert",
            Self::Roberta(_) => "roberta",
            Self::XlmRoberta(_) => "xlm-roberta",
            Self::DistilBert(_) => "distilbert",
            Self::DebertaV2(_) => "deberta-v2",
            Self::Joint(c) => match c.kind {
                JointKind::Clip => "clip",
                JointKind::Siglip => "siglip",
            },
        }
    }

    /// Whether this is the text half of a joint image-text model (CLIP, SigLIP).
    pub fn is_joint(&self) -> bool {
        matches!(self, Self::Joint(_))
    }

    /// The prefix a task model's file puts before the encoder's keys
    /// (`bert.` in `BertForSequenceClassification`).
    pub fn file_prefix(&self) -> &'static str {
        match self {
            Self::Bert(_) => "bert.",
            Self::Roberta(_) | Self::XlmRoberta(_) => "roberta.",
            Self::DistilBert(_) => "distilbert.",
            Self::DebertaV2(_) => "deberta.",
            Self::Joint(_) => "text_model.",
        }
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_file(json: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        (dir, path)
    }

    const FIELDS: &str = r#""vocab_size": 30, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 37"#;

    #[test]
    fn an_unsupported_model_type_is_refused_naming_it_and_the_list() {
        let (_dir, path) = config_file(&format!(r#"{{"model_type": "electra", {FIELDS}}}"#));
        let err = TextEncoderConfig::from_hf_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("config.json: model_type"), "{text}");
        assert!(text.contains("'electra'"), "{text}");
        assert!(
            text.contains(
                "supported: bert, roberta, xlm-roberta, distilbert, deberta-v2, clip, siglip"
            ),
            "{text}"
        );
        assert!(err.is_user_error());
    }

    #[test]
    fn model_type_chooses_the_architecture() {
        for (model_type, want) in [
            ("bert", "bert"),
            ("roberta", "roberta"),
            ("xlm-roberta", "xlm-roberta"),
        ] {
            let (_dir, path) = config_file(&format!(
                r#"{{"model_type": "{model_type}", "pad_token_id": 1, "max_position_embeddings": 40, {FIELDS}}}"#
            ));
            let config = TextEncoderConfig::from_hf_file(&path).unwrap();
            assert_eq!(config.model_type(), want);
            let offset = match config {
                TextEncoderConfig::Bert(c)
                | TextEncoderConfig::Roberta(c)
                | TextEncoderConfig::XlmRoberta(c) => c.position_offset,
                _ => unreachable!(),
            };
            assert_eq!(offset, if model_type == "bert" { 0 } else { 2 });
        }
        let (_dir, path) = config_file(
            r#"{"model_type": "distilbert", "vocab_size": 30, "dim": 32, "n_layers": 2,
                "n_heads": 4, "hidden_dim": 37}"#,
        );
        let TextEncoderConfig::DistilBert(c) = TextEncoderConfig::from_hf_file(&path).unwrap()
        else {
            panic!("not read as DistilBERT");
        };
        assert_eq!((c.hidden_size, c.type_vocab_size), (32, 0));
    }

    #[test]
    fn a_config_without_model_type_is_bert() {
        let (_dir, path) = config_file(&format!("{{{FIELDS}}}"));
        let config = TextEncoderConfig::from_hf_file(&path).unwrap();
        assert_eq!(config.model_type(), "bert");
    }

    #[test]
    fn the_export_form_round_trips_and_old_exports_read_as_bert() {
        let (_dir, path) = config_file(&format!(r#"{{"model_type": "xlm-roberta", {FIELDS}}}"#));
        let config = TextEncoderConfig::from_hf_file(&path).unwrap();
        let written = serde_json::to_string(&config).unwrap();
        assert!(
            written.contains(r#""architecture":"xlm-roberta""#),
            "{written}"
        );
        let (_dir2, export) = config_file(&written);
        assert_eq!(
            TextEncoderConfig::from_export_file(&export).unwrap(),
            config
        );
        let (_dir3, old) = config_file(&format!("{{{FIELDS}}}"));
        assert_eq!(
            TextEncoderConfig::from_export_file(&old)
                .unwrap()
                .model_type(),
            "bert"
        );
    }

    #[test]
    fn unsupported_settings_name_their_key() {
        let (_dir, path) = config_file(&format!(
            r#"{{"model_type": "bert", "hidden_act": "relu", {FIELDS}}}"#
        ));
        let text = TextEncoderConfig::from_hf_file(&path)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("hidden_act") && text.contains("relu"),
            "{text}"
        );
    }
}
