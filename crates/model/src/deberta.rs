//! A DeBERTa-v2/v3 encoder in burn, shaped after Hugging Face's `DebertaV2Model`
//! so pretrained `model.safetensors` files load tensor for tensor.
//!
//! # Arithmetic
//! DeBERTa is a post-LayerNorm transformer like BERT (same block: attention,
//! residual, LayerNorm, erf-GELU feed-forward, residual, LayerNorm) with two
//! differences, both in attention:
//!
//! - **No absolute positions** (v3: `position_biased_input: false`). Token order
//!   enters through *disentangled* attention: a shared table of relative-position
//!   embeddings (`encoder.rel_embeddings`, `2·span` rows, LayerNorm'd by
//!   `encoder.LayerNorm`) is projected by the block's own query and key
//!   projections (`share_att_key`; separate `pos_query_proj` / `pos_key_proj`
//!   otherwise), and the attention logit of query `i` and key `j` is
//!
//!   `(q_i·k_j + q_i·pk[c2p(i, j)] + k_j·pq[p2c(j, i)]) / sqrt(dh · (1 + #terms))`
//!
//!   (content→position "c2p", position→content "p2c"; `#terms` counts the
//!   `pos_att_type` entries). The scaling is applied once to the sum, which is
//!   Hugging Face's three separately scaled terms up to float rounding.
//! - **Relative position ids** `δ(i, j)` depend on `i − j` only: the distance
//!   itself up to `position_buckets / 2`, log-spaced buckets beyond it
//!   (`make_log_bucket_position`), and `c2p(i, j) = clamp(δ(i, j) + span, 0,
//!   2·span − 1)`, `p2c(j, i) = clamp(−δ(j, i) + span, 0, 2·span − 1)`. They depend
//!   on the sequence length only, so they are computed on the host (in `f32`, as
//!   `torch` does, so the bucket boundaries are Hugging Face's) into a small
//!   `[seq·seq]` integer tensor, once per forward.
//!
//! # Shapes, and why
//! The position terms are two products with the relative table, `q · pkᵀ` and
//! `k · pqᵀ` (`[heads, batch·seq, rows]`), then one column picked per key — the
//! formulation `transformers` uses. Heads lead in those products
//! (`[heads, batch·seq, dh] × [heads, dh, rows]`) so that the table is not
//! broadcast over the batch: a broadcast matmul's weight gradient is one product
//! per batch row and a sum. The pick is a `select` on the products flattened to
//! `[heads·batch, seq·rows]` with one `[seq·seq]` index shared by every head and
//! batch row, not a `gather` with an index per element: the same values, about
//! twice as fast forward and backward (a select-add) on Flex, and no
//! `[heads, batch, seq, seq]` integer tensor. Only the table rows some distance
//! of the batch's length reaches take part (a contiguous range: `δ` is monotonic
//! and odd, so the c2p and p2c rows are the same set); a short sequence under a
//! large `span` multiplies by part of the table, with unchanged values.
//!
//! As in `Bert`, Linear layers see 2-D token rows, and on host
//! backends every per-token layer runs on the real (unpadded) rows only; Q, K and
//! V are scattered into the padded layout for attention. The padding mask is the
//! same `-1e4` additive key bias: Hugging Face fills an outer-product mask with
//! `dtype::MIN` (masked rows *and* columns), which gives real queries the same
//! probabilities (exactly 0 on padding keys); padded rows differ, and they are
//! never read (zeros here on host backends). Hugging Face also zeroes padded
//! embeddings, which only ever reach masked keys; that multiply is skipped.
//!
//! # Supported configurations
//! Relative attention with any of `c2p` / `p2c`, shared or separate position
//! projections, log buckets or plain clamped distances, LayerNorm'd relative
//! embeddings, optional absolute positions (`position_biased_input`), token types
//! and an `embed_proj` (`embedding_size ≠ hidden_size`). Refused with
//! [`ModelError::BadConfig`]: the v2 convolution layer (`conv_kernel_size > 0`,
//! the `deberta-v2-xlarge` family), `relative_attention: false`, relative
//! embeddings without `layer_norm` in `norm_rel_ebd`, and activations other than
//! `gelu`.

use std::path::Path;

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Deserializer, Serialize};

use super::bert::{real_rows, unpack_rows};
use super::error::ModelError;
use super::kernels::{attention_probs, dropout, gelu, layer_norm};
use super::weights::norm_param;

/// The Hugging Face `model_type` of DeBERTa-v2 and v3 checkpoints.
pub const DEBERTA_V2_MODEL_TYPE: &str = "deberta-v2";

/// The subset of a Hugging Face DeBERTa-v2 `config.json` the encoder reads.
/// Defaults are `transformers`' `DebertaV2Config` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebertaV2Config {
    /// Always `deberta-v2` (kept so a written config reads back as DeBERTa).
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Rows of the word-embedding table.
    pub vocab_size: usize,
    /// Width of every token state.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest sequence (and rows of the absolute position table, if any).
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Rows of the token-type table (0: none).
    #[serde(default)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Dropout on embeddings, relative embeddings and block outputs (training only).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities (training only).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Activation; only `gelu` (exact erf) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Disentangled relative-position attention; must be true.
    #[serde(default)]
    pub relative_attention: bool,
    /// Largest relative distance (< 1: `max_position_embeddings`).
    #[serde(default = "minus_one")]
    pub max_relative_positions: i64,
    /// Log-bucketed relative positions with this many buckets per side (≤ 0: none).
    #[serde(default = "minus_one")]
    pub position_buckets: i64,
    /// Relative terms: any of `c2p`, `p2c` (a list, or Hugging Face's older
    /// `"p2c|c2p"` string).
    #[serde(default, deserialize_with = "att_types")]
    pub pos_att_type: Vec<String>,
    /// Whether the position terms reuse the block's query/key projections.
    #[serde(default)]
    pub share_att_key: bool,
    /// Normalisation of the relative embeddings; must include `layer_norm`.
    #[serde(default = "default_norm_rel")]
    pub norm_rel_ebd: String,
    /// Whether absolute position embeddings are added to the word embeddings.
    #[serde(default = "default_true")]
    pub position_biased_input: bool,
    /// Width of the word embeddings when it differs from `hidden_size` (then
    /// projected by `embeddings.embed_proj`).
    #[serde(default)]
    pub embedding_size: Option<usize>,
    /// The v2 convolution layer's kernel size; must be 0 (no convolution).
    #[serde(default)]
    pub conv_kernel_size: usize,
    /// Per-head width when set; must be `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub attention_head_size: Option<usize>,
}

fn default_model_type() -> String {
    DEBERTA_V2_MODEL_TYPE.into()
}
fn default_max_positions() -> usize {
    512
}
fn default_eps() -> f64 {
    1e-7
}
fn default_dropout() -> f64 {
    0.1
}
fn default_act() -> String {
    "gelu".into()
}
fn minus_one() -> i64 {
    -1
}
fn default_norm_rel() -> String {
    "none".into()
}
fn default_true() -> bool {
    true
}

/// `pos_att_type`: null, a list of strings, or a `|`-separated string.
fn att_types<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => Vec::new(),
        Some(Raw::List(v)) => v,
        Some(Raw::Joined(s)) => s.split('|').map(str::to_string).collect(),
    })
}

/// Hugging Face's `make_log_bucket_position` for one distance, in `f32` as
/// `torch` computes it (`mid = bucket_size / 2`).
fn log_bucket(distance: i64, bucket_size: i64, max_position: i64) -> i64 {
    let mid = bucket_size / 2;
    if distance.abs() <= mid {
        return distance;
    }
    let ratio = (distance.abs() as f32 / mid as f32).ln();
    let span = (((max_position - 1) as f64 / mid as f64) as f32).ln();
    let log_pos = (ratio / span * (mid - 1) as f32).ceil() + mid as f32;
    log_pos as i64 * distance.signum()
}

impl DebertaV2Config {
    /// Reads a Hugging Face `config.json` value (its `model_type` already
    /// checked by the caller) and refuses settings the encoder does not build;
    /// `path` names the file in errors.
    pub fn from_value(value: serde_json::Value, path: &Path) -> Result<Self, ModelError> {
        let config: Self = serde_json::from_value(value).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks that the encoder can be built from this config (what
    /// [`from_value`](Self::from_value) runs); `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |key: &str, message: String| {
            Err(ModelError::BadConfig {
                path: path.to_path_buf(),
                key: key.to_string(),
                message,
            })
        };
        if self.model_type != DEBERTA_V2_MODEL_TYPE {
            return bad(
                "model_type",
                format!(
                    "'{}' is not {DEBERTA_V2_MODEL_TYPE} (DeBERTa-v1 is not supported)",
                    self.model_type
                ),
            );
        }
        for (key, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        if self.hidden_act != "gelu" {
            return bad(
                "hidden_act",
                format!("'{}' is not supported (only gelu)", self.hidden_act),
            );
        }
        let heads = self.num_attention_heads;
        if heads == 0 || !self.hidden_size.is_multiple_of(heads) {
            return bad(
                "num_attention_heads",
                format!("{heads} does not divide hidden_size {}", self.hidden_size),
            );
        }
        if let Some(size) = self.attention_head_size
            && size * heads != self.hidden_size
        {
            return bad(
                "attention_head_size",
                format!(
                    "{size} × {heads} heads is not hidden_size {} (only hidden_size / heads is supported)",
                    self.hidden_size
                ),
            );
        }
        if self.embedding_size == Some(0) {
            return bad("embedding_size", "must be at least 1".into());
        }
        for (key, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(key, format!("{p} is not a probability in [0, 1]"));
            }
        }
        if !self.relative_attention {
            return bad(
                "relative_attention",
                "false is not supported (DeBERTa-v2/v3 checkpoints use relative attention)".into(),
            );
        }
        if self.conv_kernel_size > 0 {
            return bad(
                "conv_kernel_size",
                format!(
                    "{} is not supported (the DeBERTa-v2 convolution layer; only 0)",
                    self.conv_kernel_size
                ),
            );
        }
        if let Some(other) = self
            .pos_att_type
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .find(|t| t != "c2p" && t != "p2c")
        {
            return bad(
                "pos_att_type",
                format!("'{other}' is not supported (only c2p and p2c)"),
            );
        }
        let norms: Vec<String> = self
            .norm_rel_ebd
            .split('|')
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        if !norms.iter().any(|n| n == "layer_norm") {
            return bad(
                "norm_rel_ebd",
                format!("'{}' is not supported (only layer_norm)", self.norm_rel_ebd),
            );
        }
        if self.position_buckets > 0 {
            let mid = self.position_buckets / 2;
            if mid < 1 || self.max_relative() - 1 <= mid {
                return bad(
                    "position_buckets",
                    format!(
                        "{} buckets need max_relative_positions above {} (it is {})",
                        self.position_buckets,
                        mid + 1,
                        self.max_relative()
                    ),
                );
            }
        }
        Ok(())
    }

    /// Whether the content→position term is on.
    pub fn c2p(&self) -> bool {
        self.has_term("c2p")
    }

    /// Whether the position→content term is on.
    pub fn p2c(&self) -> bool {
        self.has_term("p2c")
    }

    fn has_term(&self, term: &str) -> bool {
        self.pos_att_type
            .iter()
            .any(|t| t.trim().eq_ignore_ascii_case(term))
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// `1 / sqrt(head_dim · (1 + number of position terms))`, the attention logit scale.
    pub fn attention_scale(&self) -> f64 {
        let factor = 1 + usize::from(self.c2p()) + usize::from(self.p2c());
        1.0 / ((self.head_dim() * factor) as f64).sqrt()
    }

    /// The largest relative distance (`max_relative_positions`, or the
    /// position limit when that is below 1).
    fn max_relative(&self) -> i64 {
        if self.max_relative_positions < 1 {
            self.max_position_embeddings as i64
        } else {
            self.max_relative_positions
        }
    }

    /// Hugging Face's `att_span`: the relative-embedding table holds `2 · span` rows.
    pub fn att_span(&self) -> usize {
        if self.position_buckets > 0 {
            self.position_buckets as usize
        } else {
            self.max_relative() as usize
        }
    }

    /// The relative position id `δ` of query `i` and key `j` for `distance = i − j`
    /// (`build_relative_position`: log-bucketed when `position_buckets > 0`).
    pub fn relative_position(&self, distance: i64) -> i64 {
        if self.position_buckets > 0 {
            log_bucket(distance, self.position_buckets, self.max_relative())
        } else {
            distance
        }
    }

    /// The row of the relative table the c2p term of query `i`, key `j` reads,
    /// for `distance = i − j`: `clamp(δ + span, 0, 2·span − 1)`.
    pub fn c2p_index(&self, distance: i64) -> i64 {
        let span = self.att_span() as i64;
        (self.relative_position(distance) + span).clamp(0, 2 * span - 1)
    }

    /// The row of the relative table the p2c term of query `i`, key `j` reads,
    /// for `distance = j − i` (the key's row, Hugging Face's transposed gather):
    /// `clamp(−δ + span, 0, 2·span − 1)`.
    pub fn p2c_index(&self, distance: i64) -> i64 {
        let span = self.att_span() as i64;
        (span - self.relative_position(distance)).clamp(0, 2 * span - 1)
    }

    /// Builds the encoder with random weights (the config must be valid: see
    /// [`validate`](Self::validate)).
    pub fn init<B: Backend>(&self, device: &B::Device) -> DebertaV2<B> {
        let h = self.hidden_size;
        let e = self.embedding_size.unwrap_or(h);
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let embeddings = DebertaV2Embeddings {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, e).init(device),
            position_embeddings: self
                .position_biased_input
                .then(|| EmbeddingConfig::new(self.max_position_embeddings, e).init(device)),
            token_type_embeddings: (self.type_vocab_size > 0)
                .then(|| EmbeddingConfig::new(self.type_vocab_size, e).init(device)),
            embed_proj: (e != h).then(|| LinearConfig::new(e, h).with_bias(false).init(device)),
            layer_norm: norm(),
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            eps: self.layer_norm_eps,
        };
        let (c2p, p2c) = (self.c2p(), self.p2c());
        let separate = !self.share_att_key;
        let layers = (0..self.num_hidden_layers)
            .map(|_| DebertaV2Layer {
                query: LinearConfig::new(h, h).init(device),
                key: LinearConfig::new(h, h).init(device),
                value: LinearConfig::new(h, h).init(device),
                pos_query: (separate && p2c).then(|| LinearConfig::new(h, h).init(device)),
                pos_key: (separate && c2p).then(|| LinearConfig::new(h, h).init(device)),
                attn_out: LinearConfig::new(h, h).init(device),
                attn_norm: norm(),
                ffn_in: LinearConfig::new(h, self.intermediate_size).init(device),
                ffn_out: LinearConfig::new(self.intermediate_size, h).init(device),
                ffn_norm: norm(),
                attn_dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                pos_dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                heads: self.num_attention_heads,
                c2p,
                p2c,
                scale: self.attention_scale(),
                eps: self.layer_norm_eps,
            })
            .collect();
        DebertaV2 {
            embeddings,
            layers,
            rel_embeddings: EmbeddingConfig::new(2 * self.att_span(), h).init(device),
            rel_norm: norm(),
            config: self.clone(),
        }
    }
}

/// Word embeddings (+ absolute positions and token types when the config has
/// them), an optional projection to `hidden_size`, LayerNorm, dropout.
#[derive(Module, Debug)]
pub struct DebertaV2Embeddings<B: Backend> {
    /// `embeddings.word_embeddings`.
    pub word_embeddings: Embedding<B>,
    /// `embeddings.position_embeddings` (`position_biased_input` only).
    pub position_embeddings: Option<Embedding<B>>,
    /// `embeddings.token_type_embeddings` (`type_vocab_size > 0` only).
    pub token_type_embeddings: Option<Embedding<B>>,
    /// `embeddings.embed_proj` (no bias; `embedding_size ≠ hidden_size` only).
    pub embed_proj: Option<Linear<B>>,
    /// `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm<B>,
    dropout: Dropout,
    #[module(skip)]
    eps: f64,
}

/// One transformer block (`encoder.layer.N`) with disentangled attention.
#[derive(Module, Debug)]
pub struct DebertaV2Layer<B: Backend> {
    /// `attention.self.query_proj` (also projects the relative table for p2c
    /// when `share_att_key`).
    pub query: Linear<B>,
    /// `attention.self.key_proj` (also projects the relative table for c2p
    /// when `share_att_key`).
    pub key: Linear<B>,
    /// `attention.self.value_proj`.
    pub value: Linear<B>,
    /// `attention.self.pos_query_proj` (p2c without `share_att_key` only).
    pub pos_query: Option<Linear<B>>,
    /// `attention.self.pos_key_proj` (c2p without `share_att_key` only).
    pub pos_key: Option<Linear<B>>,
    /// `attention.output.dense`.
    pub attn_out: Linear<B>,
    /// `attention.output.LayerNorm`.
    pub attn_norm: LayerNorm<B>,
    /// `intermediate.dense`.
    pub ffn_in: Linear<B>,
    /// `output.dense`.
    pub ffn_out: Linear<B>,
    /// `output.LayerNorm`.
    pub ffn_norm: LayerNorm<B>,
    attn_dropout: Dropout,
    pos_dropout: Dropout,
    dropout: Dropout,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    c2p: bool,
    #[module(skip)]
    p2c: bool,
    /// `1 / sqrt(dh · scale_factor)`.
    #[module(skip)]
    scale: f64,
    #[module(skip)]
    eps: f64,
}

/// A DeBERTa-v2/v3 encoder: embeddings, blocks and the shared relative-position
/// table (no pooler).
#[derive(Module, Debug)]
pub struct DebertaV2<B: Backend> {
    /// Embedding layer.
    pub embeddings: DebertaV2Embeddings<B>,
    /// Transformer blocks, bottom first.
    pub layers: Vec<DebertaV2Layer<B>>,
    /// `encoder.rel_embeddings`: `2 · span` relative-position rows.
    pub rel_embeddings: Embedding<B>,
    /// `encoder.LayerNorm`, applied to the relative table.
    pub rel_norm: LayerNorm<B>,
    #[module(skip)]
    config: DebertaV2Config,
}

/// What every block's position terms share within one forward.
struct Relative<B: Backend> {
    /// The normalised relative table, the rows `[lo, hi]` this length reads.
    table: Tensor<B, 2>,
    /// c2p: for each (query, key), row-major, its column of the `[seq, rows]`
    /// products as a flat index (see [`distance_index`]).
    c2p: Option<Tensor<B, 1, Int>>,
    /// p2c: the same for each (key, query).
    p2c: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> DebertaV2Layer<B> {
    /// The block on the real token rows `x` `[n, hidden]` (rows `rows` of the
    /// padded `[batch * seq]` layout, or all of them when None), as
    /// `BertLayer::forward_packed`.
    fn forward_packed(
        &self,
        x: Tensor<B, 2>,
        rows: Option<&Tensor<B, 1, Int>>,
        mask_bias: Tensor<B, 4>,
        rel: &Relative<B>,
    ) -> Tensor<B, 2> {
        let [_, h] = x.dims();
        let [b, _, _, s] = mask_bias.dims();
        let heads = self.heads;
        let dh = h / heads;
        let pad = |t: Tensor<B, 2>| unpack_rows(t, rows, b * s);
        // `[b*s, h]` -> `[b, heads, s, dh]`, and -> `[heads, b*s, dh]` for the
        // products with the relative table; strided views, no copies.
        let split = |t: Tensor<B, 2>| t.reshape([b, s, heads, dh]).swap_dims(1, 2);
        let by_head = |t: Tensor<B, 2>| t.reshape([b * s, heads, dh]).swap_dims(0, 1);
        let q = pad(self.query.forward(x.clone()));
        let k = pad(self.key.forward(x.clone()));
        let v = pad(self.value.forward(x.clone()));
        let mut scores = split(q.clone()).matmul(split(k.clone()).transpose());
        if self.c2p || self.p2c {
            let table = dropout(&self.pos_dropout, rel.table.clone());
            let width = table.dims()[0];
            // `[width, h]` -> `[heads, dh, width]`.
            let project = |l: &Linear<B>| {
                l.forward(table.clone())
                    .reshape([width, heads, dh])
                    .permute([1, 2, 0])
            };
            if let Some(index) = rel.c2p.as_ref().filter(|_| self.c2p) {
                let pos_key = project(self.pos_key.as_ref().unwrap_or(&self.key));
                let c2p = by_head(q)
                    .matmul(pos_key)
                    .reshape([heads * b, s * width])
                    .select(1, index.clone())
                    .reshape([heads, b, s, s])
                    .swap_dims(0, 1);
                scores = scores + c2p;
            }
            if let Some(index) = rel.p2c.as_ref().filter(|_| self.p2c) {
                let pos_query = project(self.pos_query.as_ref().unwrap_or(&self.query));
                // Rows are keys here; the transpose puts queries first.
                let p2c = by_head(k)
                    .matmul(pos_query)
                    .reshape([heads * b, s * width])
                    .select(1, index.clone())
                    .reshape([heads, b, s, s])
                    .swap_dims(0, 1)
                    .swap_dims(2, 3);
                scores = scores + p2c;
            }
        }
        let probs = attention_probs(scores, self.scale, mask_bias);
        let probs = dropout(&self.attn_dropout, probs);
        let ctx = probs.matmul(split(v)).swap_dims(1, 2).reshape([b * s, h]);
        let ctx = match rows {
            Some(rows) => ctx.select(0, rows.clone()),
            None => ctx,
        };
        let attn = dropout(&self.dropout, self.attn_out.forward(ctx));
        let x = layer_norm(&self.attn_norm, attn + x, self.eps);
        let ffn = self.ffn_out.forward(gelu(self.ffn_in.forward(x.clone())));
        layer_norm(&self.ffn_norm, dropout(&self.dropout, ffn) + x, self.eps)
    }
}

/// For each `(row, col)` of an `s × s` grid, row-major, the flat position
/// `row · width + at(row − col)` in a `[s, width]` matrix: the columns `at`
/// picks, as one index into the matrix's flattened rows.
fn distance_index<B: Backend>(
    s: usize,
    width: usize,
    at: impl Fn(i64) -> i64,
    device: &B::Device,
) -> Tensor<B, 1, Int> {
    // One value per distance, then the s×s grid from it.
    let by_distance: Vec<i64> = (1 - s as i64..s as i64).map(at).collect();
    let values: Vec<i64> = (0..s)
        .flat_map(|r| (0..s).map(move |c| (r, c)))
        .map(|(r, c)| (r * width) as i64 + by_distance[r + s - 1 - c])
        .collect();
    Tensor::from_data(TensorData::new(values, [s * s]), device)
}

impl<B: Backend> DebertaV2<B> {
    /// Width of the token states.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// The architecture (what an export writes as `text_config.json`).
    pub fn config(&self) -> &DebertaV2Config {
        &self.config
    }

    /// Longest sequence the encoder accepts (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// Token states `[batch, seq, hidden]` for `ids` `[batch, seq]` and float
    /// `mask` `[batch, seq]` (1 real, 0 padding). Real tokens' states are the
    /// reference model's; padding tokens' are zeros on host backends (not
    /// computed) and unspecified elsewhere.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, s] = ids.dims();
        let device = ids.device();
        let cfg = &self.config;
        let e = &self.embeddings;
        let mut x = e.word_embeddings.forward(ids);
        if let Some(table) = &e.position_embeddings {
            let positions = Tensor::<B, 1, Int>::arange(0..s as i64, &device)
                .reshape([1, s])
                .expand([b, s]);
            x = x + table.forward(positions);
        }
        if let Some(table) = &e.token_type_embeddings {
            x = x + table.forward(Tensor::<B, 2, Int>::zeros([b, s], &device));
        }
        let width = x.dims()[2];
        let x = x.reshape([b * s, width]);
        // Padding tokens only matter as masked keys: everything per token runs
        // on the real rows, padded rows come back as zeros.
        let rows = real_rows(&mask);
        let x = match &rows {
            Some(rows) => x.select(0, rows.clone()),
            None => x,
        };
        let x = match &e.embed_proj {
            Some(proj) => proj.forward(x),
            None => x,
        };
        let mut x = dropout(&e.dropout, layer_norm(&e.layer_norm, x, e.eps));
        let h = cfg.hidden_size;
        // Hugging Face fills masked scores with dtype-min; -1e4 gives the same
        // softmax for real queries (exp underflows to 0) without -inf arithmetic.
        let mask_bias = (mask.reshape([b, 1, 1, s]) - 1.0).mul_scalar(1e4);
        // Only the table rows some distance of this length reads (a contiguous
        // range, `δ` being monotonic and odd): short sequences then project and
        // multiply by part of the table, with the same values.
        let distances = 1 - s as i64..s as i64;
        let lo = distances
            .clone()
            .map(|d| cfg.c2p_index(d))
            .min()
            .unwrap_or(0);
        let hi = distances.map(|d| cfg.c2p_index(d)).max().unwrap_or(0);
        let table = self
            .rel_embeddings
            .weight
            .val()
            .slice([lo as usize..hi as usize + 1, 0..h]);
        let width = (hi - lo + 1) as usize;
        let rel = Relative {
            table: layer_norm(&self.rel_norm, table, cfg.layer_norm_eps),
            c2p: cfg
                .c2p()
                .then(|| distance_index(s, width, |d| cfg.c2p_index(d) - lo, &device)),
            p2c: cfg
                .p2c()
                .then(|| distance_index(s, width, |d| cfg.p2c_index(d) - lo, &device)),
        };
        for layer in &self.layers {
            x = layer.forward_packed(x, rows.as_ref(), mask_bias.clone(), &rel);
        }
        unpack_rows(x, rows.as_ref(), b * s).reshape([b, s, h])
    }
}

/// The Hugging Face key of one of our DeBERTa parameter paths (without the
/// `deberta.` prefix): `layers.3.query.weight` →
/// `encoder.layer.3.attention.self.query_proj.weight`.
pub fn deberta_file_key(burn_path: &str) -> String {
    let parts: Vec<&str> = burn_path.split('.').collect();
    let norm = norm_param;
    match parts.as_slice() {
        ["embeddings", "layer_norm", p] => format!("embeddings.LayerNorm.{}", norm(p)),
        ["embeddings", table, p] => format!("embeddings.{table}.{p}"),
        ["rel_embeddings", p] => format!("encoder.rel_embeddings.{p}"),
        ["rel_norm", p] => format!("encoder.LayerNorm.{}", norm(p)),
        ["layers", i, module, p] => {
            let (hf, is_norm) = match *module {
                "query" => ("attention.self.query_proj", false),
                "key" => ("attention.self.key_proj", false),
                "value" => ("attention.self.value_proj", false),
                "pos_query" => ("attention.self.pos_query_proj", false),
                "pos_key" => ("attention.self.pos_key_proj", false),
                "attn_out" => ("attention.output.dense", false),
                "attn_norm" => ("attention.output.LayerNorm", true),
                "ffn_in" => ("intermediate.dense", false),
                "ffn_out" => ("output.dense", false),
                "ffn_norm" => ("output.LayerNorm", true),
                other => (other, false),
            };
            let p = if is_norm { norm(p) } else { p };
            format!("encoder.layer.{i}.{hf}.{p}")
        }
        _ => burn_path.to_string(),
    }
}

/// Keys of a Hugging Face DeBERTa-v2 file (after the optional `deberta.`
/// prefix) that the encoder does not use: task heads (pooler, classifier, MLM
/// and replaced-token-detection heads, QA), the `position_ids` buffer, and
/// absolute position embeddings a checkpoint keeps although
/// `position_biased_input` is off (Hugging Face ignores them too).
pub fn deberta_ignorable(key: &str) -> bool {
    const HEADS: [&str; 6] = [
        "pooler.",
        "classifier.",
        "cls.",
        "lm_predictions.",
        "mask_predictions.",
        "qa_outputs.",
    ];
    HEADS.iter().any(|p| key.starts_with(p))
        || key == "embeddings.position_ids"
        || key == "embeddings.position_embeddings.weight"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CpuAutodiff, CpuBackend};
    use burn::module::Param;

    fn tiny(extra: serde_json::Value) -> DebertaV2Config {
        let mut value = serde_json::json!({
            "model_type": "deberta-v2", "vocab_size": 50, "hidden_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24,
            "max_position_embeddings": 32, "relative_attention": true,
            "position_buckets": 4, "norm_rel_ebd": "layer_norm", "share_att_key": true,
            "pos_att_type": "p2c|c2p", "position_biased_input": false,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0
        });
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        DebertaV2Config::from_value(value, Path::new("config.json")).unwrap()
    }

    #[test]
    fn log_buckets_are_transformers() {
        // `make_log_bucket_position` from transformers 5.25 / torch 2.15 (f32),
        // bucket_size 256, max_position 512 (DeBERTa-v3), and 8 / 64.
        let v3 = [
            (0, 0),
            (1, 1),
            (-127, -127),
            (128, 128),
            (129, 129),
            (130, 130),
            (131, 131),
            (200, 169),
            (-300, -207),
            (511, 255),
            (600, 270),
        ];
        for (d, want) in v3 {
            assert_eq!(log_bucket(d, 256, 512), want, "distance {d}");
        }
        let small = [(4, 4), (5, 5), (6, 5), (9, 5), (23, 6), (63, 7), (-40, -7)];
        for (d, want) in small {
            assert_eq!(log_bucket(d, 8, 64), want, "distance {d}");
        }
    }

    #[test]
    fn relative_indices_follow_the_clamps() {
        let cfg = tiny(serde_json::json!({"position_buckets": -1, "max_relative_positions": 3}));
        assert_eq!(cfg.att_span(), 3);
        assert_eq!(cfg.c2p_index(0), 3);
        assert_eq!(cfg.c2p_index(2), 5);
        assert_eq!(cfg.c2p_index(9), 5);
        assert_eq!(cfg.c2p_index(-9), 0);
        assert_eq!(cfg.p2c_index(2), 1);
        assert_eq!(cfg.p2c_index(-9), 5);
    }

    #[test]
    fn padding_does_not_change_real_tokens() {
        type B = CpuBackend;
        let device = Default::default();
        let model = tiny(serde_json::json!({})).init::<B>(&device);
        let row = [3i64, 7, 11, 2, 9, 4];
        let one = model.forward(
            Tensor::from_data(TensorData::new(row.to_vec(), [1, 6]), &device),
            Tensor::ones([1, 6], &device),
        );
        let mut ids = row.to_vec();
        ids.extend([0; 3]);
        ids.extend([5, 6, 0, 0, 0, 0, 0, 0, 0]);
        let mask: Vec<f32> = [1.0; 6]
            .into_iter()
            .chain([0.0; 3])
            .chain([1.0, 1.0])
            .chain([0.0; 7])
            .collect();
        let both = model.forward(
            Tensor::from_data(TensorData::new(ids, [2, 9]), &device),
            Tensor::from_data(TensorData::new(mask, [2, 9]), &device),
        );
        let diff = (both.slice([0..1, 0..6]) - one).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn one_backward_pass_gives_finite_query_gradients() {
        type B = CpuAutodiff;
        let device = Default::default();
        for extra in [
            serde_json::json!({}),
            serde_json::json!({"share_att_key": false, "position_biased_input": true,
                "type_vocab_size": 2, "embedding_size": 8, "hidden_dropout_prob": 0.1,
                "attention_probs_dropout_prob": 0.1}),
        ] {
            let model = tiny(extra).init::<B>(&device);
            let ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(vec![1i64, 4, 9, 2, 0, 1, 8, 2, 0, 0], [2, 5]),
                &device,
            );
            let mask = Tensor::<B, 2>::from_data(
                TensorData::new(vec![1f32, 1., 1., 1., 0., 1., 1., 1., 0., 0.], [2, 5]),
                &device,
            );
            let states = model.forward(ids, mask);
            let grads = states.powi_scalar(2).sum().backward();
            let check = |name: &str, p: &Param<Tensor<B, 2>>| {
                let g = p
                    .grad(&grads)
                    .unwrap_or_else(|| panic!("{name}: no gradient"));
                let v = g.into_data().to_vec::<f32>().unwrap();
                assert!(v.iter().all(|x| x.is_finite()), "{name}: not finite");
                assert!(v.iter().any(|x| *x != 0.0), "{name}: all zero");
            };
            for (i, layer) in model.layers.iter().enumerate() {
                check(&format!("layers.{i}.query"), &layer.query.weight);
                if let Some(pq) = &layer.pos_query {
                    check(&format!("layers.{i}.pos_query"), &pq.weight);
                }
            }
            check("rel_embeddings", &model.rel_embeddings.weight);
        }
    }

    #[test]
    fn file_keys() {
        for (burn, hf) in [
            ("embeddings.layer_norm.gamma", "embeddings.LayerNorm.weight"),
            (
                "embeddings.word_embeddings.weight",
                "embeddings.word_embeddings.weight",
            ),
            (
                "embeddings.embed_proj.weight",
                "embeddings.embed_proj.weight",
            ),
            ("rel_embeddings.weight", "encoder.rel_embeddings.weight"),
            ("rel_norm.beta", "encoder.LayerNorm.bias"),
            (
                "layers.1.query.bias",
                "encoder.layer.1.attention.self.query_proj.bias",
            ),
            (
                "layers.0.pos_key.weight",
                "encoder.layer.0.attention.self.pos_key_proj.weight",
            ),
            (
                "layers.0.ffn_norm.gamma",
                "encoder.layer.0.output.LayerNorm.weight",
            ),
        ] {
            assert_eq!(deberta_file_key(burn), hf);
        }
    }
}
