//! A BERT-family encoder (BERT, MiniLM, ...) in burn, shaped after Hugging Face's
//! `BertModel` so pretrained `model.safetensors` files load tensor for tensor.
//!
//! Post-LayerNorm blocks, absolute position embeddings, exact (erf) GELU, additive
//! attention mask — the same arithmetic as `transformers`, so embeddings match the
//! reference to float rounding. The same module with random weights is the
//! `scratch` text tower. Field names differ from the Hugging Face keys (Rust
//! naming); `weights.rs` maps one to the other explicitly.

use std::path::Path;

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::error::ModelError;
use super::kernels::{self, attention_probs, dropout, gelu, layer_norm};

/// The subset of a Hugging Face `config.json` a BERT encoder needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
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
    /// Rows of the position-embedding table.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Dropout on embeddings and block outputs (training only).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities (training only).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Activation; only `gelu` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Position embeddings; only `absolute` is supported.
    #[serde(default = "default_pos")]
    pub position_embedding_type: String,
    /// Row of the position table of the first token: 0 for BERT, `pad_token_id + 1`
    /// for RoBERTa and XLM-R (not a Hugging Face field; derived on reading).
    #[serde(default)]
    pub position_offset: usize,
}

fn default_max_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}
fn default_act() -> String {
    "gelu".into()
}
fn default_pos() -> String {
    "absolute".into()
}

/// DistilBERT's `config.json` names for the same architecture.
#[derive(Deserialize)]
struct DistilBertFields {
    vocab_size: usize,
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    hidden_dim: usize,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    #[serde(default = "default_dropout")]
    dropout: f64,
    #[serde(default = "default_dropout")]
    attention_dropout: f64,
    #[serde(default = "default_act")]
    activation: String,
}

impl BertConfig {
    /// Reads the fields of a BERT or RoBERTa `config.json` (already parsed; the
    /// caller dispatched on its `model_type`). RoBERTa's positions start after its
    /// padding id: `roberta` is true for `roberta` and `xlm-roberta`.
    pub fn from_value(
        value: serde_json::Value,
        path: &Path,
        roberta: bool,
    ) -> Result<Self, ModelError> {
        let pad = value
            .get("pad_token_id")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1) as usize;
        let mut config: Self =
            serde_json::from_value(value).map_err(|source| ModelError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if roberta {
            // `create_position_ids_from_input_ids`: real tokens count from
            // `padding_idx + 1`.
            config.position_offset = pad + 1;
        }
        config.check(path)
    }

    /// Reads a DistilBERT `config.json`: BERT's arithmetic without token types,
    /// under other names.
    pub fn from_distilbert(value: serde_json::Value, path: &Path) -> Result<Self, ModelError> {
        let d: DistilBertFields =
            serde_json::from_value(value).map_err(|source| ModelError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        Self {
            vocab_size: d.vocab_size,
            hidden_size: d.dim,
            num_hidden_layers: d.n_layers,
            num_attention_heads: d.n_heads,
            intermediate_size: d.hidden_dim,
            max_position_embeddings: d.max_position_embeddings,
            type_vocab_size: 0,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: d.dropout,
            attention_probs_dropout_prob: d.attention_dropout,
            hidden_act: d.activation,
            position_embedding_type: default_pos(),
            position_offset: 0,
        }
        .check(path)
    }

    /// Refuses what this encoder does not compute, naming the key.
    fn check(self, path: &Path) -> Result<Self, ModelError> {
        let bad = |key: &str, message: String| ModelError::BadConfig {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        if self.hidden_act != "gelu" {
            return Err(bad(
                "hidden_act",
                format!("'{}' is not supported (only gelu)", self.hidden_act),
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(bad(
                "position_embedding_type",
                format!(
                    "'{}' is not supported (only absolute)",
                    self.position_embedding_type
                ),
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if self.position_offset >= self.max_position_embeddings {
            return Err(bad(
                "pad_token_id",
                format!(
                    "positions start at {} but max_position_embeddings is {}",
                    self.position_offset, self.max_position_embeddings
                ),
            ));
        }
        Ok(self)
    }

    /// A small encoder for the `scratch` tower: FFN 4× hidden, no dropout in attention.
    pub fn scratch(
        vocab_size: usize,
        hidden: usize,
        layers: usize,
        heads: usize,
        max_len: usize,
    ) -> Self {
        Self {
            vocab_size,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: 4 * hidden,
            max_position_embeddings: max_len.max(8),
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            hidden_act: "gelu".into(),
            position_embedding_type: "absolute".into(),
            position_offset: 0,
        }
    }

    /// Builds the encoder with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Bert<B> {
        let h = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let embeddings = BertEmbeddings {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            token_type_embeddings: (self.type_vocab_size > 0)
                .then(|| EmbeddingConfig::new(self.type_vocab_size, h).init(device)),
            layer_norm: norm(),
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            eps: self.layer_norm_eps,
        };
        let layers = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                query: LinearConfig::new(h, h).init(device),
                key: LinearConfig::new(h, h).init(device),
                value: LinearConfig::new(h, h).init(device),
                attn_out: LinearConfig::new(h, h).init(device),
                attn_norm: norm(),
                ffn_in: LinearConfig::new(h, self.intermediate_size).init(device),
                ffn_out: LinearConfig::new(self.intermediate_size, h).init(device),
                ffn_norm: norm(),
                attn_dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                heads: self.num_attention_heads,
                eps: self.layer_norm_eps,
            })
            .collect();
        Bert {
            embeddings,
            layers,
            config: self.clone(),
        }
    }
}

/// Word + position + token-type embeddings, LayerNorm, dropout.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// `embeddings.word_embeddings`.
    pub word_embeddings: Embedding<B>,
    /// `embeddings.position_embeddings`.
    pub position_embeddings: Embedding<B>,
    /// `embeddings.token_type_embeddings` (None for DistilBERT, which has no token types).
    pub token_type_embeddings: Option<Embedding<B>>,
    /// `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm<B>,
    dropout: Dropout,
    /// `layer_norm_eps`.
    #[module(skip)]
    eps: f64,
}

/// One transformer block (`encoder.layer.N`).
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// `attention.self.query`.
    pub query: Linear<B>,
    /// `attention.self.key`.
    pub key: Linear<B>,
    /// `attention.self.value`.
    pub value: Linear<B>,
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
    dropout: Dropout,
    #[module(skip)]
    heads: usize,
    /// `layer_norm_eps` (burn's `LayerNorm` keeps its epsilon private).
    #[module(skip)]
    eps: f64,
}

/// A BERT encoder: embeddings and a stack of blocks (no pooler).
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    /// Embedding layer.
    pub embeddings: BertEmbeddings<B>,
    /// Transformer blocks, bottom first.
    pub layers: Vec<BertLayer<B>>,
    #[module(skip)]
    config: BertConfig,
}

impl<B: Backend> BertLayer<B> {
    /// `x`: `[batch, seq, hidden]`; `mask_bias`: `[batch, 1, 1, seq]`, 0 or a large negative.
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, s, h] = x.dims();
        self.forward_rows(x.reshape([b * s, h]), mask_bias)
            .reshape([b, s, h])
    }

    /// The block on token rows: `x` `[batch * seq, hidden]`, `mask_bias`
    /// `[batch, 1, 1, seq]`.
    ///
    /// Linear layers see 2-D inputs on purpose: burn 0.21 runs a 3-D `Linear` as a
    /// batched matmul and its weight gradient as one `[hidden, out]` product per
    /// batch row followed by a sum, which materialises `batch` copies of the
    /// weight gradient. On rows it is a single matmul with the whole batch as the
    /// inner dimension.
    pub fn forward_rows(&self, x: Tensor<B, 2>, mask_bias: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_packed(x, None, mask_bias)
    }

    /// The block on the real (unpadded) token rows only: `x` `[n, hidden]` holds
    /// rows `rows` (`[n]`, ascending) of the padded `[batch * seq, hidden]` layout,
    /// or all of them when `rows` is None.
    ///
    /// Every per-token layer (projections, FFN, LayerNorm, dropout) runs on the `n`
    /// real rows; only attention needs the padded layout, so Q, K and V are
    /// scattered into zeros for it and the context is gathered back. Real tokens
    /// get the same values as with padding: masked keys have probability exactly 0
    /// (`exp` underflows), so padded rows never reach them.
    pub fn forward_packed(
        &self,
        x: Tensor<B, 2>,
        rows: Option<&Tensor<B, 1, Int>>,
        mask_bias: Tensor<B, 4>,
    ) -> Tensor<B, 2> {
        let [_, h] = x.dims();
        let [b, _, _, s] = mask_bias.dims();
        let heads = self.heads;
        let dh = h / heads;
        let pad = |t: Tensor<B, 2>| unpack_rows(t, rows, b * s);
        // `[b*s, h]` -> `[b, heads, s, dh]` as a strided view (no copy): burn-flex's
        // batched matmul takes the strides as they are.
        let split = |t: Tensor<B, 2>| pad(t).reshape([b, s, heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q.matmul(k.transpose());
        let probs = attention_probs(scores, 1.0 / (dh as f64).sqrt(), mask_bias);
        let probs = dropout(&self.attn_dropout, probs);
        let ctx = probs.matmul(v).swap_dims(1, 2).reshape([b * s, h]);
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

/// The packed rows `x` (`[n, hidden]`, rows `rows` of the padded layout) back in
/// the padded `[total, hidden]` layout, zeros at padding; `x` itself when `rows`
/// is None (nothing was packed). Shared with the DeBERTa encoder.
pub(crate) fn unpack_rows<B: Backend>(
    x: Tensor<B, 2>,
    rows: Option<&Tensor<B, 1, Int>>,
    total: usize,
) -> Tensor<B, 2> {
    match rows {
        Some(rows) => {
            let h = x.dims()[1];
            Tensor::<B, 2>::zeros([total, h], &x.device()).select_assign(
                0,
                rows.clone(),
                x,
                IndexingUpdateOp::Add,
            )
        }
        None => x,
    }
}

/// Indices of the real tokens in the `[batch * seq]` rows when there is padding
/// and the backend is a host one (reading the mask is free there); None otherwise.
/// Shared with the DeBERTa encoder.
pub(crate) fn real_rows<B: Backend>(mask: &Tensor<B, 2>) -> Option<Tensor<B, 1, Int>> {
    if !kernels::on_host::<B>() {
        return None;
    }
    let values = mask.to_data().convert::<f32>().to_vec::<f32>().ok()?;
    let rows: Vec<i64> = (0..values.len() as i64)
        .filter(|&i| values[i as usize] > 0.5)
        .collect();
    (rows.len() < values.len()).then(|| {
        let n = rows.len();
        Tensor::from_data(TensorData::new(rows, [n]), &mask.device())
    })
}

impl<B: Backend> Bert<B> {
    /// Width of the token states.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// The architecture (what an export writes as `text_config.json`).
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Longest sequence the position table allows (after RoBERTa's offset).
    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings - self.config.position_offset
    }

    /// Token states `[batch, seq, hidden]` for `ids` `[batch, seq]` and float `mask`
    /// `[batch, seq]` (1 real, 0 padding). On host backends the states of padding
    /// tokens are zeros (they are not computed); real tokens' states are the
    /// reference model's.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, s] = ids.dims();
        let device = ids.device();
        // Real tokens sit at the start of each row, so their positions are
        // `offset..offset + len` (RoBERTa numbers from `padding_idx + 1`); padding
        // rows get positions too, which no real token attends to.
        let offset = self.config.position_offset as i64;
        let positions = Tensor::<B, 1, Int>::arange(offset..offset + s as i64, &device)
            .reshape([1, s])
            .expand([b, s]);
        let e = &self.embeddings;
        let mut x = e.word_embeddings.forward(ids) + e.position_embeddings.forward(positions);
        if let Some(types) = &e.token_type_embeddings {
            x = x + types.forward(Tensor::<B, 2, Int>::zeros([b, s], &device));
        }
        let x = dropout(&e.dropout, layer_norm(&e.layer_norm, x, e.eps));
        let h = x.dims()[2];
        let x = x.reshape([b * s, h]);
        // Padding tokens only matter as masked keys: the blocks run on the real
        // rows (a quarter fewer in `vigil bench train`), padded rows come back as
        // zeros. Pooling masks them either way.
        let rows = real_rows(&mask);
        // Hugging Face adds dtype-min to masked scores; -1e4 gives the same softmax
        // (exp underflows to 0) without risking -inf - -inf = NaN in any backend.
        let mask_bias = (mask.reshape([b, 1, 1, s]) - 1.0).mul_scalar(1e4);
        let mut x = match &rows {
            Some(rows) => x.select(0, rows.clone()),
            None => x,
        };
        for layer in &self.layers {
            x = layer.forward_packed(x, rows.as_ref(), mask_bias.clone());
        }
        unpack_rows(x, rows.as_ref(), b * s).reshape([b, s, h])
    }
}
