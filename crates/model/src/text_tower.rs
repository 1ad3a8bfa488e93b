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
use super::weights::{KeyMap, WeightsFormat, load_strict, norm_param};
use vigil_config::{Pooling, TrainLayers};

/// The encoder of a text tower, one variant per arithmetic (a view of the
/// tower's one present encoder field, [`TextTower::backbone`]).
#[derive(Debug, Clone, Copy)]
pub enum TextBackbone<'a, B: Backend> {
    /// BERT, RoBERTa, XLM-RoBERTa, DistilBERT (post-LayerNorm, absolute positions).
    Bert(&'a Bert<B>),
    /// DeBERTa-v2 / v3.
    DebertaV2(&'a DebertaV2<B>),
    /// CLIP's or SigLIP's text tower with its projection (it pools itself).
    Joint(&'a JointTextTransformer<B>),
}

impl<B: Backend> TextBackbone<'_, B> {
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
}

/// A text encoder with pooling.
///
/// Exactly one encoder field is present, the one of the architecture. They are
/// separate fields (not one enum module) because burn names an enum module's
/// parameters after its variant: BERT's weights keep the names every export has
/// had (`text.encoder.embeddings.…`, `text.encoder.layers.N.…`), DeBERTa's are
/// `text.deberta.…`, CLIP's and SigLIP's `text.joint.…`.
#[derive(Module, Debug)]
pub struct TextTower<B: Backend> {
    /// A BERT-family encoder (BERT, RoBERTa, XLM-R, DistilBERT).
    pub encoder: Option<Bert<B>>,
    /// A DeBERTa-v2/v3 encoder.
    pub deberta: Option<DebertaV2<B>>,
    /// CLIP's or SigLIP's text half.
    pub joint: Option<JointTextTransformer<B>>,
    /// Its architecture (what an export writes as `text_config.json`).
    #[module(skip)]
    config: TextEncoderConfig,
    #[module(skip)]
    pooling: Pooling,
}

/// The Hugging Face key of one of our BERT parameter paths (without `bert.`).
pub fn bert_file_key(burn_path: &str) -> String {
    let parts: Vec<&str> = burn_path.split('.').collect();
    let param = |p: &str, norm: bool| if norm { norm_param(p) } else { p }.to_string();
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
    let param = |p: &str, norm: bool| if norm { norm_param(p) } else { p }.to_string();
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
        let mut tower = Self::from_config(config, pooling, device);
        let bert_keys = |distil: bool| KeyMap {
            to_file: if distil {
                &distilbert_file_key
            } else {
                &bert_file_key
            },
            ignorable: if distil {
                &distilbert_ignorable
            } else {
                &bert_ignorable
            },
            optional_prefix: prefix,
        };
        let format = WeightsFormat::Safetensors;
        if let Some(m) = tower.encoder.take() {
            let distil = matches!(tower.config, TextEncoderConfig::DistilBert(_));
            tower.encoder = Some(load_strict(m, &weights, format, &bert_keys(distil))?);
        }
        if let Some(m) = tower.deberta.take() {
            let keys = KeyMap {
                to_file: &deberta_file_key,
                ignorable: &deberta_ignorable,
                optional_prefix: prefix,
            };
            tower.deberta = Some(load_strict(m, &weights, format, &keys)?);
        }
        if let (Some(m), TextEncoderConfig::Joint(c)) = (tower.joint.take(), &tower.config) {
            let kind = c.kind;
            let to_file = move |p: &str| joint_text_file_key(kind, p);
            let keys = KeyMap {
                to_file: &to_file,
                ignorable: &joint_text_ignorable,
                optional_prefix: None,
            };
            tower.joint = Some(load_strict(m, &weights, format, &keys)?);
        }
        Ok(tower)
    }

    /// The encoder, as a view of the one present field.
    pub fn backbone(&self) -> TextBackbone<'_, B> {
        match (&self.encoder, &self.deberta, &self.joint) {
            (_, Some(m), _) => TextBackbone::DebertaV2(m),
            (_, _, Some(m)) => TextBackbone::Joint(m),
            (Some(m), _, _) => TextBackbone::Bert(m),
            (None, None, None) => unreachable!("every constructor sets one encoder"),
        }
    }

    /// A randomly initialised encoder of the given architecture (a `scratch` tower,
    /// or an export's before its weights are loaded).
    pub fn from_config(config: TextEncoderConfig, pooling: Pooling, device: &B::Device) -> Self {
        let (mut encoder, mut deberta, mut joint) = (None, None, None);
        match &config {
            TextEncoderConfig::Bert(c)
            | TextEncoderConfig::Roberta(c)
            | TextEncoderConfig::XlmRoberta(c)
            | TextEncoderConfig::DistilBert(c) => encoder = Some(c.init(device)),
            TextEncoderConfig::DebertaV2(c) => deberta = Some(c.init(device)),
            TextEncoderConfig::Joint(c) => joint = Some(c.init(device)),
        }
        Self {
            encoder,
            deberta,
            joint,
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
        match self.backbone() {
            TextBackbone::Joint(m) => m.output_dim(),
            other => other.hidden_size(),
        }
    }

    /// Whether this is SigLIP's text tower, which was trained on rows padded to its
    /// full length and attending to the padding (the tokenizer must pad so and the
    /// mask is ignored).
    pub fn pads_to_max_length(&self) -> bool {
        matches!(&self.joint, Some(m) if m.config().kind == JointKind::Siglip)
    }

    /// Freezes according to `train_layers` (on an autodiff backend).
    pub fn freeze(mut self, train: TrainLayers) -> Self {
        match train {
            TrainLayers::All => self,
            TrainLayers::None => self.no_grad(),
            TrainLayers::Top(k) => {
                // The embeddings (and DeBERTa's relative-position table, which every
                // block reads) freeze as soon as any block does.
                let keep_from = self.backbone().num_layers().saturating_sub(k as usize);
                fn below<B: Backend, M: Module<B>>(layers: Vec<M>, keep_from: usize) -> Vec<M> {
                    layers
                        .into_iter()
                        .enumerate()
                        .map(|(i, l)| if i < keep_from { l.no_grad() } else { l })
                        .collect()
                }
                if let Some(mut m) = self.encoder.take() {
                    if keep_from > 0 {
                        m.embeddings = m.embeddings.no_grad();
                    }
                    m.layers = below(std::mem::take(&mut m.layers), keep_from);
                    self.encoder = Some(m);
                }
                if let Some(mut m) = self.deberta.take() {
                    if keep_from > 0 {
                        m.embeddings = m.embeddings.no_grad();
                        m.rel_embeddings = m.rel_embeddings.no_grad();
                        m.rel_norm = m.rel_norm.no_grad();
                    }
                    m.layers = below(std::mem::take(&mut m.layers), keep_from);
                    self.deberta = Some(m);
                }
                self.joint = self.joint.take().map(|m| m.freeze(train));
                self
            }
        }
    }

    /// Token states `[batch, seq, hidden]` (zeros at padding on host backends; see
    /// [`Bert::forward`]).
    pub fn token_states(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        self.backbone().forward(ids, mask)
    }

    /// Pooled text vectors `[batch, hidden]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        match self.backbone() {
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
