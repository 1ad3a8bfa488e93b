//! [`VisionTransformer`]: patches → tokens → pre-LayerNorm blocks → pooled vector.
//!
//! - Patch embedding: the published weight is a convolution `[hidden, c, p, p]`
//!   with stride `p`; since patches do not overlap it is one GEMM on the image cut
//!   into rows of `c·p·p` pixels (a reshape and a permute), which is what runs
//!   here. The parameter keeps the convolution's shape so files load as they are.
//! - ViT and CLIP prepend a learned CLS token; SigLIP has none. Position
//!   embeddings are added (one per token; no interpolation: the image size is the
//!   config's). CLIP normalises the sum (`pre_layrnorm`).
//! - Output: ViT's `last_hidden_state` is the final LayerNorm of every state and
//!   pools the CLS row; CLIP's is the blocks' output and pools
//!   `post_layernorm(CLS)`, then `visual_projection` when present; SigLIP's is
//!   `post_layernorm` of every state, pooled by the attention-pooling head (a
//!   learned probe query, `torch.nn.MultiheadAttention`, then `x + MLP(LN(x))`),
//!   or by a mean over patches without the head.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use vigil_config::TrainLayers;

use super::block::{BlockShape, EncoderBlock, activate};
use super::config::{Activation, VisionKind, VitConfig};
use crate::error::ModelError;
use crate::kernels::{attention_probs, layer_norm};

/// The non-overlapping patch projection (a stride-`p` convolution's weights).
#[derive(Module, Debug)]
pub struct PatchEmbedding<B: Backend> {
    /// `[hidden, channels, p, p]`, PyTorch's convolution layout.
    pub weight: Param<Tensor<B, 4>>,
    /// `[hidden]` (ViT and SigLIP; CLIP has none).
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> PatchEmbedding<B> {
    /// Patch tokens `[b * g * g, hidden]` (row-major over the grid) of `images`
    /// `[b, c, g·p, g·p]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let [b, c, side, _] = images.dims();
        let [hidden, _, p, _] = self.weight.dims();
        let g = side / p;
        let rows = images
            .reshape([b, c, g, p, g, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b * g * g, c * p * p]);
        let w = self.weight.val().reshape([hidden, c * p * p]).transpose();
        let y = rows.matmul(w);
        match &self.bias {
            Some(bias) => y + bias.val().reshape([1, hidden]),
            None => y,
        }
    }
}

/// Patch, CLS and position embeddings, each in its family's file layout.
#[derive(Module, Debug)]
pub struct VisionEmbeddings<B: Backend> {
    /// The patch projection.
    pub patch: PatchEmbedding<B>,
    /// ViT's CLS token `[1, 1, hidden]` (`embeddings.cls_token`).
    pub cls_token: Option<Param<Tensor<B, 3>>>,
    /// CLIP's CLS token `[hidden]` (`embeddings.class_embedding`).
    pub class_embedding: Option<Param<Tensor<B, 1>>>,
    /// ViT's positions `[1, tokens, hidden]` (`embeddings.position_embeddings`).
    pub position_embeddings: Option<Param<Tensor<B, 3>>>,
    /// CLIP's and SigLIP's positions, a `[tokens, hidden]` table
    /// (`embeddings.position_embedding`).
    pub position_embedding: Option<Embedding<B>>,
}

impl<B: Backend> VisionEmbeddings<B> {
    /// The CLS token as a `[1, hidden]` row; None for SigLIP.
    pub fn cls(&self) -> Option<Tensor<B, 2>> {
        if let Some(t) = &self.cls_token {
            let h = t.dims()[2];
            return Some(t.val().reshape([1, h]));
        }
        self.class_embedding.as_ref().map(|t| {
            let h = t.dims()[0];
            t.val().reshape([1, h])
        })
    }

    /// The position embeddings `[tokens, hidden]` (None only for a module built
    /// by hand without either layout).
    pub fn positions(&self) -> Option<Tensor<B, 2>> {
        match (&self.position_embeddings, &self.position_embedding) {
            (Some(t), _) => {
                let [_, n, h] = t.dims();
                Some(t.val().reshape([n, h]))
            }
            (None, Some(e)) => Some(e.weight.val()),
            (None, None) => None,
        }
    }

    /// Token embeddings `[b, tokens, hidden]` of `images` `[b, c, S, S]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let b = images.dims()[0];
        let patches = self.patch.forward(images);
        let [rows, h] = patches.dims();
        let x = patches.reshape([b, rows / b, h]);
        let x = match self.cls() {
            Some(cls) => Tensor::cat(vec![cls.reshape([1, 1, h]).expand([b, 1, h]), x], 1),
            None => x,
        };
        let n = x.dims()[1];
        match self.positions() {
            Some(p) => x + p.reshape([1, n, h]),
            None => x,
        }
    }
}

/// SigLIP's multi-head attention pooling (`vision_model.head`).
#[derive(Module, Debug)]
pub struct AttentionPool<B: Backend> {
    /// The learned query `[1, 1, hidden]`.
    pub probe: Param<Tensor<B, 3>>,
    /// `torch.nn.MultiheadAttention`'s packed `[3·hidden, hidden]` query / key /
    /// value weights (PyTorch layout, rows `q | k | v`).
    pub in_proj_weight: Param<Tensor<B, 2>>,
    /// The packed `[3·hidden]` biases.
    pub in_proj_bias: Param<Tensor<B, 1>>,
    /// `attention.out_proj`.
    pub out_proj: Linear<B>,
    /// `layernorm`.
    pub norm: LayerNorm<B>,
    /// `mlp.fc1`.
    pub fc1: Linear<B>,
    /// `mlp.fc2`.
    pub fc2: Linear<B>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    eps: f64,
    #[module(skip)]
    act: Activation,
}

impl<B: Backend> AttentionPool<B> {
    /// Attention heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// The LayerNorm's epsilon.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The MLP's activation.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// `(W, b)` of the query (0), key (1) or value (2) projection: `W` `[hidden,
    /// hidden]` in PyTorch's `[out, in]` layout.
    pub fn projection(&self, which: usize) -> (Tensor<B, 2>, Tensor<B, 1>) {
        let h = self.in_proj_bias.dims()[0] / 3;
        let rows = which * h..(which + 1) * h;
        (
            self.in_proj_weight.val().slice([rows.clone(), 0..h]),
            self.in_proj_bias.val().slice([rows]),
        )
    }

    /// The pooled vector `[b, hidden]` of token rows `x` `[b * s, hidden]`.
    pub fn forward(&self, x: Tensor<B, 2>, b: usize) -> Tensor<B, 2> {
        let [n, h] = x.dims();
        let s = n / b;
        let heads = self.heads;
        let dh = h / heads;
        let project = |t: Tensor<B, 2>, which: usize| {
            let (w, bias) = self.projection(which);
            t.matmul(w.transpose()) + bias.reshape([1, h])
        };
        let q = project(self.probe.val().reshape([1, h]), 0)
            .reshape([1, 1, heads, dh])
            .swap_dims(1, 2)
            .expand([b, heads, 1, dh]);
        let split = |t: Tensor<B, 2>| t.reshape([b, s, heads, dh]).swap_dims(1, 2);
        let k = split(project(x.clone(), 1));
        let v = split(project(x, 2));
        let scores = q.matmul(k.transpose());
        let no_mask = Tensor::zeros([b, 1, 1, s], &scores.device());
        let probs = attention_probs(scores, 1.0 / (dh as f64).sqrt(), no_mask);
        let ctx = probs.matmul(v).swap_dims(1, 2).reshape([b, h]);
        let y = self.out_proj.forward(ctx);
        let z = layer_norm(&self.norm, y.clone(), self.eps);
        y + self.fc2.forward(activate(self.act, self.fc1.forward(z)))
    }
}

/// A Vision Transformer image tower (ViT, CLIP or SigLIP vision side).
#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// Patch, CLS and position embeddings.
    pub embeddings: VisionEmbeddings<B>,
    /// CLIP's `pre_layrnorm` on the embeddings.
    pub pre_norm: Option<LayerNorm<B>>,
    /// The blocks, bottom first.
    pub layers: Vec<EncoderBlock<B>>,
    /// ViT `layernorm`, CLIP and SigLIP `post_layernorm`.
    pub final_norm: LayerNorm<B>,
    /// SigLIP's attention-pooling head.
    pub head: Option<AttentionPool<B>>,
    /// CLIP's `visual_projection` (no bias).
    pub projection: Option<Linear<B>>,
    #[module(skip)]
    config: VitConfig,
}

impl VitConfig {
    /// Builds the tower with random weights (normal(0, 0.02) for the tokens).
    pub fn init<B: Backend>(&self, device: &B::Device) -> VisionTransformer<B> {
        let h = self.hidden_size;
        let (p, c) = (self.patch_size, self.num_channels);
        let tokens = self.seq_len();
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let normal = Distribution::Normal(0.0, 0.02);
        let fan_in = (c * p * p) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let kind = self.kind;
        let patch = PatchEmbedding {
            weight: Param::from_tensor(Tensor::random(
                [h, c, p, p],
                Distribution::Uniform(-bound, bound),
                device,
            )),
            bias: (kind != VisionKind::Clip).then(|| {
                Param::from_tensor(Tensor::random(
                    [h],
                    Distribution::Uniform(-bound, bound),
                    device,
                ))
            }),
        };
        let vit = kind == VisionKind::Vit;
        let embeddings = VisionEmbeddings {
            patch,
            cls_token: vit.then(|| Param::from_tensor(Tensor::random([1, 1, h], normal, device))),
            class_embedding: (kind == VisionKind::Clip)
                .then(|| Param::from_tensor(Tensor::random([h], normal, device))),
            position_embeddings: vit
                .then(|| Param::from_tensor(Tensor::random([1, tokens, h], normal, device))),
            position_embedding: (!vit).then(|| EmbeddingConfig::new(tokens, h).init(device)),
        };
        let shape = BlockShape {
            hidden: h,
            intermediate: self.intermediate_size,
            heads: self.num_attention_heads,
            eps: self.layer_norm_eps,
            act: self.hidden_act,
            qkv_bias: self.qkv_bias,
            hidden_dropout: self.hidden_dropout,
            attention_dropout: self.attention_dropout,
        };
        let head = self.use_head.then(|| AttentionPool {
            probe: Param::from_tensor(Tensor::random([1, 1, h], normal, device)),
            in_proj_weight: Param::from_tensor(Tensor::random([3 * h, h], normal, device)),
            in_proj_bias: Param::from_tensor(Tensor::zeros([3 * h], device)),
            out_proj: LinearConfig::new(h, h).init(device),
            norm: norm(),
            fc1: LinearConfig::new(h, self.intermediate_size).init(device),
            fc2: LinearConfig::new(self.intermediate_size, h).init(device),
            heads: self.num_attention_heads,
            eps: self.layer_norm_eps,
            act: self.hidden_act,
        });
        VisionTransformer {
            embeddings,
            pre_norm: (kind == VisionKind::Clip).then(norm),
            layers: (0..self.num_hidden_layers)
                .map(|_| EncoderBlock::new(shape, device))
                .collect(),
            final_norm: norm(),
            head,
            projection: self
                .projection_dim
                .map(|d| LinearConfig::new(h, d).with_bias(false).init(device)),
            config: self.clone(),
        }
    }
}

impl<B: Backend> VisionTransformer<B> {
    /// The architecture.
    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    /// Width of the pooled features ([`Self::forward`]).
    pub fn output_dim(&self) -> usize {
        self.config.output_dim()
    }

    /// Side of the square input image in pixels.
    pub fn image_size(&self) -> usize {
        self.config.image_size
    }

    /// Checks that `dims` is a batch this tower takes: `[b, channels, S, S]` with
    /// `S` its image size (the forward would panic on another shape).
    pub fn check_images(&self, dims: [usize; 4]) -> Result<(), ModelError> {
        let c = &self.config;
        let want = [dims[0], c.num_channels, c.image_size, c.image_size];
        if dims != want {
            return Err(ModelError::batch(format!(
                "images of shape {dims:?}: this tower takes [batch, {}, {s}, {s}]",
                c.num_channels,
                s = c.image_size
            )));
        }
        Ok(())
    }

    /// Freezes by `train_layers`: `none` freezes all, `top:k` the embeddings (and
    /// CLIP's `pre_layrnorm`) and all but the top `k` blocks; the final norm, the
    /// pooling head and the projection train unless `none`.
    pub fn freeze(mut self, train: TrainLayers) -> Self {
        let keep_from = match train {
            TrainLayers::All => return self,
            TrainLayers::None => return self.no_grad(),
            TrainLayers::Top(k) => self.layers.len().saturating_sub(k as usize),
        };
        if keep_from > 0 {
            self.embeddings = self.embeddings.no_grad();
            self.pre_norm = self.pre_norm.map(Module::no_grad);
        }
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .enumerate()
            .map(|(i, l)| if i < keep_from { l.no_grad() } else { l })
            .collect();
        self
    }

    /// The blocks' output as token rows `[b * tokens, hidden]`.
    fn encode(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.embeddings.forward(images);
        let [b, s, h] = x.dims();
        let mut x = x.reshape([b * s, h]);
        if let Some(n) = &self.pre_norm {
            x = layer_norm(n, x, self.config.layer_norm_eps);
        }
        let no_mask = Tensor::zeros([b, 1, 1, s], &x.device());
        for layer in &self.layers {
            x = layer.forward_rows(x, no_mask.clone());
        }
        x
    }

    /// The token states `[b, tokens, hidden]` as Hugging Face's
    /// `last_hidden_state`: final-LayerNormed for ViT and SigLIP, the blocks'
    /// output for CLIP (whose `post_layernorm` only normalises the pooled CLS).
    pub fn token_states(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let b = images.dims()[0];
        if b == 0 {
            let c = &self.config;
            return Tensor::zeros([0, c.seq_len(), c.hidden_size], &images.device());
        }
        let x = self.encode(images);
        let [n, h] = x.dims();
        let x = match self.config.kind {
            VisionKind::Clip => x,
            _ => layer_norm(&self.final_norm, x, self.config.layer_norm_eps),
        };
        x.reshape([b, n / b, h])
    }

    /// The pooled image vectors `[b, output_dim]` of normalised `images`
    /// `[b, c, S, S]` (Hugging Face's `get_image_features`; for ViT the final
    /// LayerNorm's CLS state, ViT's pooler is not used). The shape must be one
    /// [`Self::check_images`] accepts.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let b = images.dims()[0];
        if b == 0 {
            return Tensor::zeros([0, self.output_dim()], &images.device());
        }
        let x = self.encode(images);
        let [n, h] = x.dims();
        let s = n / b;
        let eps = self.config.layer_norm_eps;
        let pooled = match (self.config.kind, &self.head) {
            (VisionKind::Siglip, Some(head)) => {
                head.forward(layer_norm(&self.final_norm, x, eps), b)
            }
            (VisionKind::Siglip, None) => layer_norm(&self.final_norm, x, eps)
                .reshape([b, s, h])
                .mean_dim(1)
                .reshape([b, h]),
            _ => {
                let cls =
                    Tensor::<B, 1, Int>::arange(0..b as i64, &x.device()).mul_scalar(s as i64);
                layer_norm(&self.final_norm, x.select(0, cls), eps)
            }
        };
        match &self.projection {
            Some(p) => p.forward(pooled),
            None => pooled,
        }
    }
}
