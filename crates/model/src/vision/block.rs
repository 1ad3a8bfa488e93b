//! The pre-LayerNorm transformer block ViT, CLIP and SigLIP share:
//! `x + Attn(LN1(x))`, then `x + MLP(LN2(x))`, with `MLP = fc2 ∘ act ∘ fc1`.
//!
//! The three families differ only in tensor names and the activation, so one
//! module serves them; `keys.rs` spells the names per family. As in `bert.rs`,
//! the linear layers see 2-D `[tokens, hidden]` rows (one GEMM each, forward and
//! backward) and attention is the only place with the `[batch, heads, seq, dh]`
//! layout, taken as a strided view without a copy.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::gelu_approximate;
use burn::tensor::backend::Backend;

use super::config::Activation;
use crate::kernels::{attention_probs, dropout, gelu, layer_norm, quick_gelu};

/// `act(x)` for one of the supported activations.
pub fn activate<B: Backend, const D: usize>(act: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match act {
        Activation::Gelu => gelu(x),
        Activation::QuickGelu => quick_gelu(x),
        Activation::GeluTanh => gelu_approximate(x),
    }
}

/// Sizes and settings of one block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockShape {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub eps: f64,
    pub act: Activation,
    pub qkv_bias: bool,
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
}

/// One pre-LayerNorm transformer block.
#[derive(Module, Debug)]
pub struct EncoderBlock<B: Backend> {
    /// LayerNorm before attention (ViT `layernorm_before`, CLIP/SigLIP `layer_norm1`).
    pub norm1: LayerNorm<B>,
    /// Query projection (`attention.attention.query`, `self_attn.q_proj`).
    pub query: Linear<B>,
    /// Key projection.
    pub key: Linear<B>,
    /// Value projection.
    pub value: Linear<B>,
    /// Attention output projection (`attention.output.dense`, `self_attn.out_proj`).
    pub attn_out: Linear<B>,
    /// LayerNorm before the MLP (`layernorm_after`, `layer_norm2`).
    pub norm2: LayerNorm<B>,
    /// MLP input (`intermediate.dense`, `mlp.fc1`).
    pub fc1: Linear<B>,
    /// MLP output (`output.dense`, `mlp.fc2`).
    pub fc2: Linear<B>,
    attn_dropout: Dropout,
    dropout: Dropout,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    eps: f64,
    #[module(skip)]
    act: Activation,
}

impl<B: Backend> EncoderBlock<B> {
    pub(crate) fn new(s: BlockShape, device: &B::Device) -> Self {
        let h = s.hidden;
        let norm = || LayerNormConfig::new(h).with_epsilon(s.eps).init(device);
        let qkv = || LinearConfig::new(h, h).with_bias(s.qkv_bias).init(device);
        Self {
            norm1: norm(),
            query: qkv(),
            key: qkv(),
            value: qkv(),
            attn_out: LinearConfig::new(h, h).init(device),
            norm2: norm(),
            fc1: LinearConfig::new(h, s.intermediate).init(device),
            fc2: LinearConfig::new(s.intermediate, h).init(device),
            attn_dropout: DropoutConfig::new(s.attention_dropout).init(),
            dropout: DropoutConfig::new(s.hidden_dropout).init(),
            heads: s.heads,
            eps: s.eps,
            act: s.act,
        }
    }

    /// Attention heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// The LayerNorms' epsilon.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The MLP's activation.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// The block on token rows `x` `[batch * seq, hidden]`. `mask_bias` is
    /// `[batch, 1, 1, seq]` (padding) or `[batch, 1, seq, seq]` (causal), 0 where
    /// attention is allowed and -1e4 where not, added to the scaled scores.
    pub fn forward_rows(&self, x: Tensor<B, 2>, mask_bias: Tensor<B, 4>) -> Tensor<B, 2> {
        let [_, h] = x.dims();
        let [b, _, _, s] = mask_bias.dims();
        let heads = self.heads;
        let dh = h / heads;
        let y = layer_norm(&self.norm1, x.clone(), self.eps);
        // `[b*s, h]` -> `[b, heads, s, dh]` as a strided view (no copy).
        let split = |t: Tensor<B, 2>| t.reshape([b, s, heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(y.clone()));
        let k = split(self.key.forward(y.clone()));
        let v = split(self.value.forward(y));
        let scores = q.matmul(k.transpose());
        let probs = attention_probs(scores, 1.0 / (dh as f64).sqrt(), mask_bias);
        let probs = dropout(&self.attn_dropout, probs);
        let ctx = probs.matmul(v).swap_dims(1, 2).reshape([b * s, h]);
        let x = x + dropout(&self.dropout, self.attn_out.forward(ctx));
        let y = layer_norm(&self.norm2, x.clone(), self.eps);
        let y = self.fc2.forward(activate(self.act, self.fc1.forward(y)));
        x + dropout(&self.dropout, y)
    }
}
