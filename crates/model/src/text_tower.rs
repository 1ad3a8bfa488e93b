//! The text tower: an encoder (pretrained from a Hugging Face directory of any
//! supported `model_type`, or a BERT from scratch) followed by pooling into one
//! vector per text.
//!
//! [`TextBackbone`] holds the encoder module of the directory's architecture
//! ([`TextEncoderConfig`] chose it); each architecture brings the mapping from its
//! burn parameter paths to the file's keys (`bert_file_key`, `distilbert_file_key`).
//!
//! Pooling is masked mean (what sentence-transformers' all-MiniLM-L6-v2 was
//! trained with) or the `[CLS]` state. Freezing follows `train_layers`: `all`,
//! `none`, or the top N blocks (the embeddings then stay frozen too).

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::bert::{Bert, BertConfig};
use super::deberta::{DebertaV2, deberta_file_key, deberta_ignorable};
use super::error::ModelError;
use super::text_config::TextEncoderConfig;
use super::vision::{JointKind, JointTextTransformer, joint_text_file_key, joint_text_ignorable};
use super::weights::{KeyMap, WeightsFormat, load_strict};
use vigil_config::{Pooling, TrainLayers};

/// The encoder module of a text tower, one variant per arithmetic.
// One instance per model: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum TextBackbone<B: Backend> {
    /// BERT, RoBERTa, XLM-RoBERTa, DistilBERT (post-LayerNorm, absolute positions).
    Bert(Bert<B>),
    /// DeBERTa-v2 / v3.
    DebertaV2(DebertaV2<B>),
    /// CLIP's or SigLIP's text tower with its projection (it pools itself).
    Joint(JointTextTransformer<B>),
}

impl<B: Backend> TextBackbone<B> {
    /// Builds the encoder `config` describes, with random weights.
    pub fn init(config: &TextEncoderConfig, device: &B::Device) -> Self {
        match config {
            TextEncoderConfig::Bert(c)
            | TextEncoderConfig::Roberta(c)
            | TextEncoderConfig::XlmRoberta(c)
            | TextEncoderConfig::DistilBert(c) => Self::Bert(c.init(device)),
            TextEncoderConfig::DebertaV2(c) => Self::DebertaV2(c.init(device)),
            TextEncoderConfig::Joint(c) => Self::Joint(c.init(device)),
        }
    }

    /// Token states `[batch, seq, hidden]` (padding rows: see each encoder).
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        match self {
            Self::Bert(m) => m.forward(ids, mask),
            Self::DebertaV2(m) => m.forward(ids, mask),
            Self::Joint(m) => m.token_states(ids, mask),
        }
    }

    /// Width of the token states.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Bert(m) => m.hidden_size(),
            Self::DebertaV2(m) => m.hidden_size(),
            Self::Joint(m) => m.config().hidden_size,
        }
    }

    /// Longest sequence the encoder takes.
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Bert(m) => m.max_positions(),
            Self::DebertaV2(m) => m.max_positions(),
            Self::Joint(m) => m.max_positions(),
        }
    }

    /// Rows of the word-embedding table (ids must stay below it).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Bert(m) => m.embeddings.word_embeddings.weight.dims()[0],
            Self::DebertaV2(m) => m.embeddings.word_embeddings.weight.dims()[0],
            Self::Joint(m) => m.token_embedding.weight.dims()[0],
        }
    }

    /// Number of transformer blocks.
    pub fn num_layers(&self) -> usize {
        match self {
            Self::Bert(m) => m.layers.len(),
            Self::DebertaV2(m) => m.layers.len(),
            Self::Joint(m) => m.layers.len(),
        }
    }

    /// Freezes the embeddings and the blocks below `keep_from` (bottom first).
    /// DeBERTa's relative-position table and its norm serve every block: they
    /// freeze with the embeddings.
    fn freeze_below(self, keep_from: usize) -> Self {
        fn below<B: Backend, M: Module<B>>(layers: Vec<M>, keep_from: usize) -> Vec<M> {
            layers
                .into_iter()
                .enumerate()
                .map(|(i, l)| if i < keep_from { l.no_grad() } else { l })
                .collect()
        }
        match self {
            Self::Bert(mut m) => {
                if keep_from > 0 {
                    m.embeddings = m.embeddings.no_grad();
                }
                m.layers = below(std::mem::take(&mut m.layers), keep_from);
                Self::Bert(m)
            }
            Self::DebertaV2(mut m) => {
                if keep_from > 0 {
                    m.embeddings = m.embeddings.no_grad();
                    m.rel_embeddings = m.rel_embeddings.no_grad();
                    m.rel_norm = m.rel_norm.no_grad();
                }
                m.layers = below(std::mem::take(&mut m.layers), keep_from);
                Self::DebertaV2(m)
            }
            Self::Joint(m) => {
                let top = m.layers.len().saturating_sub(keep_from) as u32;
                Self::Joint(m.freeze(TrainLayers::Top(top)))
            }
        }
    }
}

/// A text encoder with pooling.
#[derive(Module, Debug)]
pub struct TextTower<B: Backend> {
    /// The encoder.
    pub encoder: TextBackbone<B>,
    /// Its architecture (what an export writes as `text_config.json`).
    #[module(skip)]
    config: TextEncoderConfig,
    #[module(skip)]
    pooling: Pooling,
}

/// The Hugging Face key of one of our BERT parameter paths (without `bert.`).
pub fn bert_file_key(burn_path: &str) -> String {
    let parts: Vec<&str> = burn_path.split('.').collect();
    let param = |p: &str, norm: bool| -> String {
        match (norm, p) {
            (true, "gamma") => "weight".into(),
            (true, "beta") => "bias".into(),
            _ => p.into(),
        }
    };
    match parts.as_slice() {
        ["embeddings", "layer_norm", p] => format!("embeddings.LayerNorm.{}", param(p, true)),
        ["embeddings", table, p] => format!("embeddings.{table}.{p}"),
        ["layers", i, module, p] => {
            let (hf, norm) = match *module {
                "query" | "key" | "value" => (format!("attention.self.{module}"), false),
                "attn_out" => ("attention.output.dense".into(), false),
                "attn_norm" => ("attention.output.LayerNorm".into(), true),
                "ffn_in" => ("intermediate.dense".into(), false),
                "ffn_out" => ("output.dense".into(), false),
                "ffn_norm" => ("output.LayerNorm".into(), true),
                other => (other.to_string(), false),
            };
            format!("encoder.layer.{i}.{hf}.{}", param(p, norm))
        }
        _ => burn_path.to_string(),
    }
}

/// Keys of a Hugging Face BERT, RoBERTa or XLM-R file that the encoder does not
/// use (pooler, MLM head, buffers).
pub fn bert_ignorable(key: &str) -> bool {
    key.starts_with("pooler.")
        || key.starts_with("cls.")
        || key.starts_with("lm_head.")
        || key == "embeddings.position_ids"
        || key == "embeddings.token_type_ids"
}

/// The Hugging Face key of one of our BERT parameter paths in a DistilBERT file
/// (without `distilbert.`).
pub fn distilbert_file_key(burn_path: &str) -> String {
    let parts: Vec<&str> = burn_path.split('.').collect();
    let param = |p: &str, norm: bool| -> String {
        match (norm, p) {
            (true, "gamma") => "weight".into(),
            (true, "beta") => "bias".into(),
            _ => p.into(),
        }
    };
    match parts.as_slice() {
        ["embeddings", "layer_norm", p] => format!("embeddings.LayerNorm.{}", param(p, true)),
        ["embeddings", table, p] => format!("embeddings.{table}.{p}"),
        ["layers", i, module, p] => {
            let (hf, norm) = match *module {
                "query" => ("attention.q_lin", false),
                "key" => ("attention.k_lin", false),
                "value" => ("attention.v_lin", false),
                "attn_out" => ("attention.out_lin", false),
                "attn_norm" => ("sa_layer_norm", true),
                "ffn_in" => ("ffn.lin1", false),
                "ffn_out" => ("ffn.lin2", false),
                "ffn_norm" => ("output_layer_norm", true),
                other => (other, false),
            };
            format!("transformer.layer.{i}.{hf}.{}", param(p, norm))
        }
        _ => burn_path.to_string(),
    }
}

/// Keys of a Hugging Face DistilBERT file that the encoder does not use (the MLM
/// and classification heads, buffers).
pub fn distilbert_ignorable(key: &str) -> bool {
    [
        "vocab_transform.",
        "vocab_layer_norm.",
        "vocab_projector.",
        "pre_classifier.",
        "classifier.",
    ]
    .iter()
    .any(|p| key.starts_with(p))
        || key == "embeddings.position_ids"
}

impl<B: Backend> TextTower<B> {
    /// Loads a Hugging Face model directory (`config.json` + `model.safetensors`),
    /// of the architecture its `model_type` names.
    pub fn pretrained(
        dir: &Path,
        pooling: Pooling,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let config = TextEncoderConfig::from_hf_file(&dir.join("config.json"))?;
        let weights = dir.join("model.safetensors");
        let prefix = Some(config.file_prefix());
        let encoder = match (TextBackbone::init(&config, device), &config) {
            (TextBackbone::Bert(m), TextEncoderConfig::DistilBert(_)) => {
                let keys = KeyMap {
                    to_file: &distilbert_file_key,
                    ignorable: &distilbert_ignorable,
                    optional_prefix: prefix,
                };
                TextBackbone::Bert(load_strict(m, &weights, WeightsFormat::Safetensors, &keys)?)
            }
            (TextBackbone::Bert(m), _) => {
                let keys = KeyMap {
                    to_file: &bert_file_key,
                    ignorable: &bert_ignorable,
                    optional_prefix: prefix,
                };
                TextBackbone::Bert(load_strict(m, &weights, WeightsFormat::Safetensors, &keys)?)
            }
            (TextBackbone::Joint(m), TextEncoderConfig::Joint(c)) => {
                let kind = c.kind;
                let to_file = move |p: &str| joint_text_file_key(kind, p);
                let keys = KeyMap {
                    to_file: &to_file,
                    ignorable: &joint_text_ignorable,
                    optional_prefix: None,
                };
                TextBackbone::Joint(load_strict(m, &weights, WeightsFormat::Safetensors, &keys)?)
            }
            (TextBackbone::Joint(m), _) => TextBackbone::Joint(m),
            (TextBackbone::DebertaV2(m), _) => {
                let keys = KeyMap {
                    to_file: &deberta_file_key,
                    ignorable: &deberta_ignorable,
                    optional_prefix: prefix,
                };
                TextBackbone::DebertaV2(load_strict(
                    m,
                    &weights,
                    WeightsFormat::Safetensors,
                    &keys,
                )?)
            }
        };
        Ok(Self {
            encoder,
            config,
            pooling,
        })
    }

    /// A randomly initialised encoder of the given architecture (a `scratch` tower,
    /// or an export's before its weights are loaded).
    pub fn from_config(config: TextEncoderConfig, pooling: Pooling, device: &B::Device) -> Self {
        Self {
            encoder: TextBackbone::init(&config, device),
            config,
            pooling,
        }
    }

    /// A randomly initialised BERT encoder.
    pub fn scratch(config: &BertConfig, pooling: Pooling, device: &B::Device) -> Self {
        Self::from_config(TextEncoderConfig::Bert(config.clone()), pooling, device)
    }

    /// The encoder's architecture and shape.
    pub fn config(&self) -> &TextEncoderConfig {
        &self.config
    }

    /// How token states are pooled.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Width of the pooled vector.
    pub fn output_dim(&self) -> usize {
        match &self.encoder {
            TextBackbone::Joint(m) => m.output_dim(),
            other => other.hidden_size(),
        }
    }

    /// Whether this is SigLIP's text tower, which was trained on rows padded to its
    /// full length and attending to the padding (the tokenizer must pad so and the
    /// mask is ignored).
    pub fn pads_to_max_length(&self) -> bool {
        matches!(&self.encoder, TextBackbone::Joint(m) if m.config().kind == JointKind::Siglip)
    }

    /// Freezes according to `train_layers` (on an autodiff backend).
    pub fn freeze(mut self, train: TrainLayers) -> Self {
        match train {
            TrainLayers::All => self,
            TrainLayers::None => self.no_grad(),
            TrainLayers::Top(k) => {
                let keep_from = self.encoder.num_layers().saturating_sub(k as usize);
                self.encoder = self.encoder.freeze_below(keep_from);
                self
            }
        }
    }

    /// Token states `[batch, seq, hidden]` (zeros at padding on host backends; see
    /// [`Bert::forward`]).
    pub fn token_states(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        self.encoder.forward(ids, mask)
    }

    /// Pooled text vectors `[batch, hidden]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.encoder {
            // CLIP pools at the last real token, SigLIP at the last position (over
            // padding it attends to, as trained), both then project.
            TextBackbone::Joint(m) if self.pads_to_max_length() => m.forward(ids, mask.ones_like()),
            TextBackbone::Joint(m) => m.forward(ids, mask),
            encoder => pool(encoder.forward(ids, mask.clone()), mask, self.pooling),
        }
    }
}

/// Pools token states `[b, s, h]` with `mask` `[b, s]`.
pub fn pool<B: Backend>(
    states: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    pooling: Pooling,
) -> Tensor<B, 2> {
    let [b, s, h] = states.dims();
    match pooling {
        Pooling::Cls => states.slice([0..b, 0..1, 0..h]).reshape([b, h]),
        Pooling::Mean => {
            let m = mask.reshape([b, s, 1]);
            let summed = (states * m.clone()).sum_dim(1).reshape([b, h]);
            let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
            summed / count
        }
    }
}
