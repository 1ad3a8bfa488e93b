//! The text tower: a BERT encoder (pretrained from a Hugging Face directory, or
//! from scratch) followed by pooling into one vector per text.
//!
//! Pooling is masked mean (what sentence-transformers' all-MiniLM-L6-v2 was
//! trained with) or the `[CLS]` state. Freezing follows `train_layers`: `all`,
//! `none`, or the top N blocks (the embeddings then stay frozen too).

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::bert::{Bert, BertConfig};
use super::error::ModelError;
use super::weights::{KeyMap, WeightsFormat, load_strict};
use vigil_config::{Pooling, TrainLayers};

/// A text encoder with pooling.
#[derive(Module, Debug)]
pub struct TextTower<B: Backend> {
    /// The encoder.
    pub encoder: Bert<B>,
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

/// Keys of a Hugging Face BERT file that the encoder does not use.
pub fn bert_ignorable(key: &str) -> bool {
    key.starts_with("pooler.") || key.starts_with("cls.") || key == "embeddings.position_ids"
}

impl<B: Backend> TextTower<B> {
    /// Loads a Hugging Face model directory (`config.json` + `model.safetensors`).
    pub fn pretrained(
        dir: &Path,
        pooling: Pooling,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let encoder = config.init::<B>(device);
        let encoder = load_strict(
            encoder,
            &dir.join("model.safetensors"),
            WeightsFormat::Safetensors,
            &KeyMap {
                to_file: &bert_file_key,
                ignorable: &bert_ignorable,
                optional_prefix: Some("bert."),
            },
        )?;
        Ok(Self { encoder, pooling })
    }

    /// A randomly initialised encoder.
    pub fn scratch(config: &BertConfig, pooling: Pooling, device: &B::Device) -> Self {
        Self {
            encoder: config.init(device),
            pooling,
        }
    }

    /// How token states are pooled.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Width of the pooled vector.
    pub fn output_dim(&self) -> usize {
        self.encoder.hidden_size()
    }

    /// Freezes according to `train_layers` (on an autodiff backend).
    pub fn freeze(mut self, train: TrainLayers) -> Self {
        match train {
            TrainLayers::All => self,
            TrainLayers::None => self.no_grad(),
            TrainLayers::Top(k) => {
                let n = self.encoder.layers.len();
                let keep_from = n.saturating_sub(k as usize);
                if keep_from > 0 {
                    self.encoder.embeddings = self.encoder.embeddings.no_grad();
                }
                self.encoder.layers = std::mem::take(&mut self.encoder.layers)
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| if i < keep_from { l.no_grad() } else { l })
                    .collect();
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
        let states = self.encoder.forward(ids, mask.clone());
        pool(states, mask, self.pooling)
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
