//! [`JointTextTransformer`]: the text tower of CLIP and SigLIP.
//!
//! Token + position embeddings (no LayerNorm, no token types), the shared
//! pre-LayerNorm blocks, `final_layer_norm`, then one vector per text:
//! - CLIP attends causally (each token sees itself and earlier ones) and masks
//!   padding too; it pools the state of the end-of-text token, which its
//!   tokenizer puts last, so here the last real token (`mask.sum() - 1`), then
//!   `text_projection` (no bias). Hugging Face finds that token by id (the first
//!   `eos_token_id`, or the largest id for old configs); with right padding and
//!   the tokenizer's own end token both give this position.
//! - SigLIP attends bidirectionally and is trained on texts padded to the
//!   maximum length without a mask; it pools the last position, padding or not,
//!   through `head` (a Linear with bias). A given mask is honoured as Hugging Face
//!   honours an `attention_mask` (one of all ones changes nothing).

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use vigil_config::TrainLayers;

use super::block::{BlockShape, EncoderBlock};
use super::config::{JointKind, JointTextConfig};
use crate::error::ModelError;
use crate::kernels::layer_norm;

/// The additive bias of a masked attention score (as in `bert.rs`: the softmax
/// gives it exactly 0 probability, without `-inf` arithmetic).
pub const MASK_BIAS: f64 = -1e4;

/// A CLIP or SigLIP text encoder with its pooling and projection.
#[derive(Module, Debug)]
pub struct JointTextTransformer<B: Backend> {
    /// `embeddings.token_embedding`.
    pub token_embedding: Embedding<B>,
    /// `embeddings.position_embedding`.
    pub position_embedding: Embedding<B>,
    /// The blocks, bottom first.
    pub layers: Vec<EncoderBlock<B>>,
    /// `final_layer_norm`.
    pub final_norm: LayerNorm<B>,
    /// CLIP's `text_projection` (no bias) or SigLIP's `text_model.head`.
    pub projection: Linear<B>,
    #[module(skip)]
    config: JointTextConfig,
}

impl JointTextConfig {
    /// Builds the tower with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> JointTextTransformer<B> {
        let h = self.hidden_size;
        let shape = BlockShape {
            hidden: h,
            intermediate: self.intermediate_size,
            heads: self.num_attention_heads,
            eps: self.layer_norm_eps,
            act: self.hidden_act,
            qkv_bias: true,
            hidden_dropout: 0.0,
            attention_dropout: self.attention_dropout,
        };
        JointTextTransformer {
            token_embedding: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embedding: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            layers: (0..self.num_hidden_layers)
                .map(|_| EncoderBlock::new(shape, device))
                .collect(),
            final_norm: LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            projection: LinearConfig::new(h, self.projection_dim)
                .with_bias(self.kind == JointKind::Siglip)
                .init(device),
            config: self.clone(),
        }
    }
}

/// `[1, 1, s, s]`: 0 on and below the diagonal, [`MASK_BIAS`] above.
pub fn causal_bias<B: Backend>(s: usize, device: &B::Device) -> Tensor<B, 4> {
    let values: Vec<f32> = (0..s * s)
        .map(|i| if i % s > i / s { MASK_BIAS as f32 } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, s, s]), device)
}

impl<B: Backend> JointTextTransformer<B> {
    /// The architecture.
    pub fn config(&self) -> &JointTextConfig {
        &self.config
    }

    /// Width of the text features ([`Self::forward`]).
    pub fn output_dim(&self) -> usize {
        self.config.projection_dim
    }

    /// Longest sequence the position table allows.
    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// Checks that ids of shape `dims` `[b, s]` fit: `s` at most
    /// [`Self::max_positions`] (the position lookup would fail past it), `s ≥ 1`.
    pub fn check_tokens(&self, dims: [usize; 2]) -> Result<(), ModelError> {
        let max = self.max_positions();
        if dims[1] == 0 || dims[1] > max {
            return Err(ModelError::batch(format!(
                "token ids of shape {dims:?}: sequences must hold 1 to {max} tokens"
            )));
        }
        Ok(())
    }

    /// Freezes by `train_layers`: `none` freezes all, `top:k` the embeddings and
    /// all but the top `k` blocks (the final norm and projection train).
    pub fn freeze(mut self, train: TrainLayers) -> Self {
        let keep_from = match train {
            TrainLayers::All => return self,
            TrainLayers::None => return self.no_grad(),
            TrainLayers::Top(k) => self.layers.len().saturating_sub(k as usize),
        };
        if keep_from > 0 {
            self.token_embedding = self.token_embedding.no_grad();
            self.position_embedding = self.position_embedding.no_grad();
        }
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .enumerate()
            .map(|(i, l)| if i < keep_from { l.no_grad() } else { l })
            .collect();
        self
    }

    /// The attention bias `[b, 1, 1 or s, s]` for float `mask` `[b, s]`.
    pub fn mask_bias(&self, mask: Tensor<B, 2>) -> Tensor<B, 4> {
        let [b, s] = mask.dims();
        let device = mask.device();
        let padding = (mask.reshape([b, 1, 1, s]) - 1.0).mul_scalar(-MASK_BIAS);
        match self.config.kind {
            JointKind::Clip => padding + causal_bias::<B>(s, &device),
            JointKind::Siglip => padding,
        }
    }

    /// The final-LayerNormed states as rows `[b * s, hidden]`.
    fn encode(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let [b, s] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..s as i64, &device).reshape([1, s]);
        let x = self.token_embedding.forward(ids) + self.position_embedding.forward(positions);
        let h = x.dims()[2];
        let mut x = x.reshape([b * s, h]);
        let bias = self.mask_bias(mask);
        for layer in &self.layers {
            x = layer.forward_rows(x, bias.clone());
        }
        layer_norm(&self.final_norm, x, self.config.layer_norm_eps)
    }

    /// Token states `[b, s, hidden]` (Hugging Face's `last_hidden_state`) for
    /// `ids` `[b, s]` and float `mask` `[b, s]` (1 real, 0 padding). CLIP's
    /// states at padding are not meaningful (nothing reads them).
    pub fn token_states(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, s] = ids.dims();
        let x = self.encode(ids, mask);
        let h = x.dims()[1];
        x.reshape([b, s, h])
    }

    /// Text features `[b, output_dim]` (Hugging Face's `get_text_features`): CLIP
    /// projects the last real token's state, SigLIP passes the last position's
    /// through `head`. The shape must be one [`Self::check_tokens`] accepts.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let [b, s] = ids.dims();
        let device = ids.device();
        if b == 0 {
            return Tensor::zeros([0, self.output_dim()], &device);
        }
        let last = match self.config.kind {
            JointKind::Clip => {
                let real = mask.clone().sum_dim(1).reshape([b]).int();
                real.sub_scalar(1).clamp(0, s as i64 - 1)
            }
            JointKind::Siglip => Tensor::<B, 1, Int>::full([b], s as i64 - 1, &device),
        };
        let rows = Tensor::<B, 1, Int>::arange(0..b as i64, &device).mul_scalar(s as i64) + last;
        let pooled = self.encode(ids, mask).select(0, rows);
        self.projection.forward(pooled)
    }
}
