//! The moderation model: pretrained (or scratch) text and image towers, a fusion
//! layer, and a classifier head, in burn.
//!
//! # Layout
//! - `moderation.rs`: [`ModerationModel`] — `from_config`, `forward`, `embed`, `loss`.
//! - `input.rs`: [`ModelInput`], a batch from the data loader's vectors
//!   ([`ModelInput::from_batch`]: the one road from a loader batch to the model).
//! - `features.rs`: [`Table`], [`SplitFeatures`] — cached frozen-tower features.
//! - `tokenizer.rs`: [`TextTokenizer`], `tokenizer.json` → ids + mask.
//! - `text_config.rs`: [`TextEncoderConfig`], the architecture a directory's `model_type` names.
//! - `bert.rs`, `text_tower.rs`: the BERT-family encoder (BERT, RoBERTa, XLM-R,
//!   DistilBERT) and pooling (Hugging Face loading).
//! - `deberta.rs`: DeBERTa-v2/v3. `vision/`: ViT, CLIP and SigLIP towers, the joint
//!   image-text model. `preprocessor.rs`: a `preprocessor_config.json` as an image transform.
//! - `efficientnet.rs`: torchvision EfficientNet-B0 (`.pth` loading).
//! - `scratch_cnn.rs`: the small from-scratch image tower.
//! - `fusion.rs`: concat / gated / interaction fusion with missing-modality placeholders.
//! - `head.rs`: the MLP head. `loss.rs`: masked BCE / softmax CE.
//! - `params.rs`: parameter groups and the fixed order of trainable parameters.
//! - `weights.rs`: strict loading of safetensors / `.pth` files with key mapping.
//! - `error.rs`: [`ModelError`].
//! - `kernels/`: faster CPU GELU and dropout used by the BERT block.
//! - [`backend`]: the burn backend types (CPU default, CUDA under `cuda`).
//! - [`parallel`]: batches scored side by side on threads, results in order.
//!
//! The model takes verified bytes (`model.init_from`: [`ModerationModel::warm_start_verified`]);
//! it never reads a checkpoint store or a bucket itself (checked by
//! `scripts/check_arrows.py` in `.ci/run`).
//!
//! Why our own BERT and EfficientNet instead of burn-nn's transformer: the
//! published checkpoints fix the arithmetic (post-LayerNorm, erf GELU, BatchNorm
//! with running statistics) and the tensor names; mirroring them module for module
//! keeps the key mapping a short, explicit table and the parity tests exact.

pub mod backend;
mod bert;
pub mod deberta;
mod efficientnet;
mod error;
mod features;
mod fusion;
mod head;
mod input;
pub mod kernels;
mod loss;
mod moderation;
pub mod parallel;
mod params;
mod preprocessor;
mod scratch_cnn;
mod text_config;
mod text_tower;
mod tokenizer;
pub mod vision;
mod weights;

pub use bert::{Bert, BertConfig, BertEmbeddings, BertLayer};
pub use efficientnet::{
    ConvBn, EFFICIENTNET_B0_DIM, EfficientNetB0, FrozenBatchNorm, MbConv, SqueezeExcite,
    efficientnet_file_key, efficientnet_ignorable,
};
pub use error::ModelError;
pub use features::{SplitFeatures, Table};
pub use fusion::{FUSION_NORM_EPS, Fusion, Modality, Standardize};
pub use head::Head;
pub use input::{ImageData, ImageInput, ModelInput, TextData, TextInput};
pub use loss::{Targets, loss_weight, masked_loss};
pub use moderation::{
    Embeddings, IMAGE_CONFIG_FILE, ImageTower, LoadedModel, ModerationModel, image_transform,
};
pub use params::{ParamGroup, ParamInfo, all_params, trainable_params};
pub use preprocessor::{ImageProcessing, read_preprocessor};
pub use scratch_cnn::ScratchCnn;
pub use text_config::{TEXT_MODEL_TYPES, TextEncoderConfig};
pub use text_tower::{
    TextBackbone, TextTower, bert_file_key, bert_ignorable, distilbert_file_key,
    distilbert_ignorable, pool,
};
pub use tokenizer::{TextTokenizer, TokenBatch};
pub use weights::{KeyMap, WeightsFormat, load_strict, pretrained_cache};
