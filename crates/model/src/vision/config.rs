//! The architectures read from a Hugging Face `config.json`: [`VitConfig`] for an
//! image tower, [`JointTextConfig`] for a CLIP / SigLIP text tower, [`JointConfig`]
//! for both with the similarity's scale.
//!
//! Transformers writes a sub-config (`vision_config`, `text_config`) with only some
//! of its fields in older files, so every field has the default of the Python class
//! of its `model_type` (`ViTConfig`, `CLIPVisionConfig`, `SiglipTextConfig`, ...).
//! A value of the wrong type, or a setting these modules do not implement (another
//! activation, a non-square image, a patch that does not tile the image), is a
//! [`ModelError::BadConfig`] naming the key (`vision_config.hidden_act`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ModelError;

/// The feed-forward activation of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU, `0.5·x·(1 + erf(x/√2))` (`gelu`: ViT).
    #[serde(rename = "gelu")]
    Gelu,
    /// `x·sigmoid(1.702·x)` (`quick_gelu`: OpenAI CLIP).
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// The tanh approximation `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`
    /// (`gelu_pytorch_tanh`, also spelled `gelu_new`: SigLIP).
    #[serde(rename = "gelu_pytorch_tanh", alias = "gelu_new")]
    GeluTanh,
}

impl Activation {
    /// The Hugging Face names accepted, for error messages.
    pub const SUPPORTED: [&'static str; 4] =
        ["gelu", "quick_gelu", "gelu_pytorch_tanh", "gelu_new"];

    /// Parses a Hugging Face `hidden_act`; None for one we do not implement.
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu_pytorch_tanh" | "gelu_new" => Some(Self::GeluTanh),
            _ => None,
        }
    }
}

/// Which family an image tower follows: it fixes the tensor names, the CLS token,
/// the layer norms around the blocks and the pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VisionKind {
    /// `ViTModel`: CLS token, final LayerNorm on every state, pooled = CLS.
    Vit,
    /// CLIP's vision transformer: CLS token, `pre_layrnorm` before the blocks,
    /// `post_layernorm` on the CLS state only, optional `visual_projection`.
    Clip,
    /// SigLIP's: no CLS token, `post_layernorm` on every state, then the
    /// multi-head attention pooling head (or a mean without it).
    Siglip,
}

/// Which family a joint image-text model (and its text tower) follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JointKind {
    /// CLIP: causal text attention, pooled at the last real token, projections
    /// without bias, `logits = exp(s)·cos`, softmax over texts.
    Clip,
    /// SigLIP: bidirectional text attention, pooled at the last position through
    /// `head`, `logits = exp(s)·cos + b`, a sigmoid per pair.
    Siglip,
}

/// The `model_type`s [`super::load_vision_tower`] reads.
pub const VISION_MODEL_TYPES: [&str; 5] = [
    "vit",
    "clip",
    "clip_vision_model",
    "siglip",
    "siglip_vision_model",
];

/// The `model_type`s [`super::load_joint`] reads.
pub const JOINT_MODEL_TYPES: [&str; 2] = ["clip", "siglip"];

/// A Vision Transformer image tower (ViT, CLIP's or SigLIP's vision side).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Family (names, norms, pooling).
    pub kind: VisionKind,
    /// Width of every token state.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Side of the (square) input image in pixels.
    pub image_size: usize,
    /// Side of a (square) patch; divides `image_size`.
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Whether the query / key / value projections have a bias (ViT's `qkv_bias`).
    pub qkv_bias: bool,
    /// Dropout on block outputs (training only; ViT's `hidden_dropout_prob`).
    pub hidden_dropout: f64,
    /// Dropout on attention probabilities (training only).
    pub attention_dropout: f64,
    /// SigLIP: whether the attention-pooling head exists (`vision_use_head`).
    pub use_head: bool,
    /// CLIP: width of the `visual_projection` the tower ends with, when it has one
    /// (a `clip` directory, `CLIPVisionModelWithProjection`).
    pub projection_dim: Option<usize>,
}

/// A CLIP or SigLIP text tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointTextConfig {
    /// Family (mask, pooling, names).
    pub kind: JointKind,
    /// Rows of the token-embedding table.
    pub vocab_size: usize,
    /// Width of every token state.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Rows of the position table (longest sequence).
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Dropout on attention probabilities (training only).
    pub attention_dropout: f64,
    /// Width of the text features: CLIP's `text_projection` (no bias), SigLIP's
    /// `head` (with bias).
    pub projection_dim: usize,
}

/// A joint image-text model: both towers and the initial logit scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointConfig {
    /// CLIP or SigLIP.
    pub kind: JointKind,
    /// The image tower (with CLIP's `visual_projection`).
    pub vision: VitConfig,
    /// The text tower (with its projection or head).
    pub text: JointTextConfig,
    /// `logit_scale` of a fresh model (CLIP: `logit_scale_init_value`, ln(1/0.07);
    /// SigLIP: ln 10). The similarity is multiplied by its exponential.
    pub logit_scale_init: f64,
    /// SigLIP's `logit_bias` of a fresh model (-10); None for CLIP.
    pub logit_bias_init: Option<f64>,
}

/// Reads typed fields of one JSON object with defaults; errors name the key.
pub(crate) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
    prefix: String,
}

impl<'a> Fields<'a> {
    /// The object `value` (`prefix` is prepended to keys in errors: `vision_config.`).
    pub(crate) fn new(value: &'a Value, path: &'a Path, prefix: &str) -> Result<Self, ModelError> {
        match value.as_object() {
            Some(obj) => Ok(Self {
                obj,
                path,
                prefix: prefix.to_string(),
            }),
            None => Err(bad(
                path,
                prefix.trim_end_matches('.'),
                "is not a JSON object".into(),
            )),
        }
    }

    /// A [`ModelError::BadConfig`] on `key` of this object.
    pub(crate) fn bad(&self, key: &str, message: String) -> ModelError {
        bad(self.path, &format!("{}{key}", self.prefix), message)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn sub(&self, key: &str) -> Result<Fields<'a>, ModelError> {
        let empty: &'static Value = empty_object();
        let value = self.get(key).unwrap_or(empty);
        Fields::new(value, self.path, &format!("{}{key}.", self.prefix))
    }

    pub(crate) fn usize(&self, key: &str, default: usize) -> Result<usize, ModelError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| self.bad(key, format!("{v} is not a non-negative integer"))),
        }
    }

    pub(crate) fn positive(&self, key: &str, default: usize) -> Result<usize, ModelError> {
        let n = self.usize(key, default)?;
        if n == 0 {
            return Err(self.bad(key, "must be at least 1".into()));
        }
        Ok(n)
    }

    pub(crate) fn f64(&self, key: &str, default: f64) -> Result<f64, ModelError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.bad(key, format!("{v} is not a number"))),
        }
    }

    pub(crate) fn prob(&self, key: &str, default: f64) -> Result<f64, ModelError> {
        let p = self.f64(key, default)?;
        if !(0.0..1.0).contains(&p) {
            return Err(self.bad(key, format!("{p} is not a probability below 1")));
        }
        Ok(p)
    }

    pub(crate) fn bool(&self, key: &str, default: bool) -> Result<bool, ModelError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.bad(key, format!("{v} is not a boolean"))),
        }
    }

    fn activation(&self, default: Activation) -> Result<Activation, ModelError> {
        match self.get("hidden_act") {
            None => Ok(default),
            Some(v) => v.as_str().and_then(Activation::from_hf).ok_or_else(|| {
                self.bad(
                    "hidden_act",
                    format!(
                        "{v} is not supported (supported: {})",
                        Activation::SUPPORTED.join(", ")
                    ),
                )
            }),
        }
    }

    /// A square side: an integer or a `[h, w]` pair with `h == w`.
    fn side(&self, key: &str, default: usize) -> Result<usize, ModelError> {
        match self.get(key) {
            Some(Value::Array(items)) => {
                let sides: Vec<Option<u64>> = items.iter().map(Value::as_u64).collect();
                match sides.as_slice() {
                    [Some(h), Some(w)] if h == w && *h > 0 => Ok(*h as usize),
                    _ => Err(self.bad(
                        key,
                        format!(
                            "{} is not supported (a square side is: an integer or [n, n])",
                            Value::Array(items.clone())
                        ),
                    )),
                }
            }
            _ => self.positive(key, default),
        }
    }
}

fn empty_object() -> &'static Value {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

pub(crate) fn bad(path: &Path, key: &str, message: String) -> ModelError {
    ModelError::BadConfig {
        path: path.to_path_buf(),
        key: key.to_string(),
        message,
    }
}

/// The `model_type` of a `config.json` value (None when absent).
pub fn model_type(value: &Value) -> Option<&str> {
    value.get("model_type").and_then(Value::as_str)
}

/// `model_type` when it is one of `supported`, else a `BadConfig` naming it and them.
pub(crate) fn check_model_type<'v>(
    value: &'v Value,
    path: &Path,
    supported: &[&str],
    what: &str,
) -> Result<&'v str, ModelError> {
    let found = model_type(value);
    match found {
        Some(t) if supported.contains(&t) => Ok(t),
        _ => Err(bad(
            path,
            "model_type",
            format!(
                "{} is not a supported {what} (supported: {})",
                found.map_or_else(|| "a config without one".to_string(), |t| format!("'{t}'")),
                supported.join(", ")
            ),
        )),
    }
}

fn heads_divide(f: &Fields<'_>, hidden: usize, heads: usize) -> Result<(), ModelError> {
    if !hidden.is_multiple_of(heads) {
        return Err(f.bad(
            "num_attention_heads",
            format!("{heads} does not divide hidden_size {hidden}"),
        ));
    }
    Ok(())
}

impl VitConfig {
    /// The image tower of a `config.json` value: `model_type` `vit`,
    /// `clip_vision_model`, `siglip_vision_model` at the top level, or the
    /// `vision_config` of `clip` / `siglip` (a `clip` tower keeps
    /// `visual_projection`, of the top-level `projection_dim`; a
    /// `clip_vision_model` keeps it when `architectures` names
    /// `CLIPVisionModelWithProjection`). `path` names the file in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let model_type = check_model_type(value, path, &VISION_MODEL_TYPES, "image tower")?;
        let top = Fields::new(value, path, "")?;
        match model_type {
            "vit" => Self::read(&top, VisionKind::Vit, None),
            "clip_vision_model" => {
                let with_projection = value
                    .get("architectures")
                    .and_then(Value::as_array)
                    .is_some_and(|a| {
                        a.iter()
                            .any(|s| s.as_str() == Some("CLIPVisionModelWithProjection"))
                    });
                let proj = if with_projection {
                    Some(top.positive("projection_dim", 512)?)
                } else {
                    None
                };
                Self::read(&top, VisionKind::Clip, proj)
            }
            "clip" => {
                let proj = top.positive("projection_dim", 512)?;
                Self::read(&top.sub("vision_config")?, VisionKind::Clip, Some(proj))
            }
            "siglip_vision_model" => Self::read(&top, VisionKind::Siglip, None),
            _ => Self::read(&top.sub("vision_config")?, VisionKind::Siglip, None),
        }
    }

    fn read(
        f: &Fields<'_>,
        kind: VisionKind,
        projection: Option<usize>,
    ) -> Result<Self, ModelError> {
        // The Python classes' defaults (ViTConfig, CLIPVisionConfig, SiglipVisionConfig).
        let (patch, eps, act) = match kind {
            VisionKind::Vit => (16, 1e-12, Activation::Gelu),
            VisionKind::Clip => (32, 1e-5, Activation::QuickGelu),
            VisionKind::Siglip => (16, 1e-6, Activation::GeluTanh),
        };
        let hidden = f.positive("hidden_size", 768)?;
        let heads = f.positive("num_attention_heads", 12)?;
        heads_divide(f, hidden, heads)?;
        let image_size = f.side("image_size", 224)?;
        let patch_size = f.side("patch_size", patch)?;
        if !image_size.is_multiple_of(patch_size) {
            return Err(f.bad(
                "patch_size",
                format!("{patch_size} does not divide image_size {image_size}"),
            ));
        }
        let vit = kind == VisionKind::Vit;
        Ok(Self {
            kind,
            hidden_size: hidden,
            num_hidden_layers: f.usize("num_hidden_layers", 12)?,
            num_attention_heads: heads,
            intermediate_size: f.positive("intermediate_size", 3072)?,
            image_size,
            patch_size,
            num_channels: f.positive("num_channels", 3)?,
            layer_norm_eps: f.f64("layer_norm_eps", eps)?,
            hidden_act: f.activation(act)?,
            qkv_bias: if vit { f.bool("qkv_bias", true)? } else { true },
            hidden_dropout: if vit {
                f.prob("hidden_dropout_prob", 0.0)?
            } else {
                0.0
            },
            attention_dropout: if vit {
                f.prob("attention_probs_dropout_prob", 0.0)?
            } else {
                f.prob("attention_dropout", 0.0)?
            },
            use_head: kind == VisionKind::Siglip && f.bool("vision_use_head", true)?,
            projection_dim: projection,
        })
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: the patches, plus the CLS token for ViT and CLIP.
    pub fn seq_len(&self) -> usize {
        self.grid() * self.grid() + usize::from(self.kind != VisionKind::Siglip)
    }

    /// Width of the pooled features: the projection's when there is one.
    pub fn output_dim(&self) -> usize {
        self.projection_dim.unwrap_or(self.hidden_size)
    }
}

impl JointTextConfig {
    /// The text tower of a `config.json` value: the `text_config` of `clip` /
    /// `siglip` (CLIP's projection width is the top-level `projection_dim`), or a
    /// top-level `clip_text_model` (`CLIPTextModelWithProjection`) /
    /// `siglip_text_model`.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let types = ["clip", "siglip", "clip_text_model", "siglip_text_model"];
        let model_type = check_model_type(value, path, &types, "image-text text tower")?;
        let top = Fields::new(value, path, "")?;
        match model_type {
            "clip" => {
                let proj = top.positive("projection_dim", 512)?;
                Self::read(&top.sub("text_config")?, JointKind::Clip, Some(proj))
            }
            "clip_text_model" => {
                let proj = top.positive("projection_dim", 512)?;
                Self::read(&top, JointKind::Clip, Some(proj))
            }
            "siglip" => Self::read(&top.sub("text_config")?, JointKind::Siglip, None),
            _ => Self::read(&top, JointKind::Siglip, None),
        }
    }

    fn read(
        f: &Fields<'_>,
        kind: JointKind,
        projection: Option<usize>,
    ) -> Result<Self, ModelError> {
        // CLIPTextConfig's and SiglipTextConfig's defaults.
        let (vocab, hidden, inter, heads, positions, eps, act) = match kind {
            JointKind::Clip => (49408, 512, 2048, 8, 77, 1e-5, Activation::QuickGelu),
            JointKind::Siglip => (32000, 768, 3072, 12, 64, 1e-6, Activation::GeluTanh),
        };
        let hidden = f.positive("hidden_size", hidden)?;
        let heads = f.positive("num_attention_heads", heads)?;
        heads_divide(f, hidden, heads)?;
        let projection_dim = match projection {
            Some(p) => p,
            None => f.positive("projection_size", hidden)?,
        };
        Ok(Self {
            kind,
            vocab_size: f.positive("vocab_size", vocab)?,
            hidden_size: hidden,
            num_hidden_layers: f.usize("num_hidden_layers", 12)?,
            num_attention_heads: heads,
            intermediate_size: f.positive("intermediate_size", inter)?,
            max_position_embeddings: f.positive("max_position_embeddings", positions)?,
            layer_norm_eps: f.f64("layer_norm_eps", eps)?,
            hidden_act: f.activation(act)?,
            attention_dropout: f.prob("attention_dropout", 0.0)?,
            projection_dim,
        })
    }
}

impl JointConfig {
    /// Both towers of a `clip` or `siglip` `config.json` value.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let model_type = check_model_type(value, path, &JOINT_MODEL_TYPES, "image-text model")?;
        let top = Fields::new(value, path, "")?;
        let (kind, logit_scale_init, logit_bias_init) = if model_type == "clip" {
            (
                JointKind::Clip,
                top.f64("logit_scale_init_value", 2.6592)?,
                None,
            )
        } else {
            (JointKind::Siglip, 10f64.ln(), Some(-10.0))
        };
        Ok(Self {
            kind,
            vision: VitConfig::from_value(value, path)?,
            text: JointTextConfig::from_value(value, path)?,
            logit_scale_init,
            logit_bias_init,
        })
    }
}

/// Reads and parses `config.json`.
pub(crate) fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })
}
