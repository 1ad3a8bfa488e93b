//! Vision Transformer image towers (ViT, CLIP's and SigLIP's vision side), the
//! CLIP / SigLIP text towers, and the joint image-text similarity, shaped after
//! Hugging Face `transformers` so their `model.safetensors` load tensor for
//! tensor and outputs match to float rounding.
//!
//! # The arithmetic
//! All three families are pre-LayerNorm transformers: each block is
//! `x + Attn(LN1(x))` then `x + MLP(LN2(x))` (unlike BERT's post-LayerNorm), with
//! scaled dot-product attention and one of three activations (exact GELU for
//! ViT, `x·σ(1.702x)` for CLIP, tanh-GELU for SigLIP). One block module serves
//! all of them ([`EncoderBlock`]); the families differ around the blocks:
//!
//! | | tokens | before blocks | after blocks | pooled |
//! |---|---|---|---|---|
//! | ViT | CLS + patches | — | `layernorm` (all) | CLS |
//! | CLIP image | CLS + patches | `pre_layrnorm` | — | `post_layernorm(CLS)` → `visual_projection` |
//! | SigLIP image | patches | — | `post_layernorm` (all) | attention-pooling head |
//! | CLIP text | tokens | causal + padding mask | `final_layer_norm` | last real token → `text_projection` |
//! | SigLIP text | tokens (padded to max) | — | `final_layer_norm` | last position → `head` |
//!
//! A patch embedding is a convolution with stride = kernel = patch; patches do not
//! overlap, so it runs as one GEMM on the image cut into patch rows (a reshape and
//! permute of the pixels), with the convolution's weight as published. On the
//! CPU backend that is faster than burn's `Conv2d`: forward + backward of a
//! ViT-B/16 patch embedding (batch 8, 224², hidden 768, `Autodiff<Flex>`, 2
//! cores) took 102–114 ms against 142–186 ms, and the results agree to rounding.
//!
//! As in `bert.rs`, linear layers see 2-D `[tokens, hidden]` rows (burn 0.21
//! runs a 3-D Linear's weight gradient as one product per batch row), and the
//! element-wise work uses Vigil's fused kernels (`layer_norm`, exact `gelu`,
//! `attention_probs`, `dropout`). Masked attention scores get a -1e4 bias, as in
//! BERT: the same softmax as Hugging Face's dtype-minimum, without `-inf`.
//!
//! # Layout
//! - `config.rs`: [`VitConfig`], [`JointTextConfig`], [`JointConfig`] from `config.json`.
//! - `block.rs`: [`EncoderBlock`], the shared pre-LayerNorm block.
//! - `image.rs`: [`VisionTransformer`] (patch embedding, CLS, positions, pooling).
//! - `text.rs`: [`JointTextTransformer`].
//! - `joint.rs`: [`JointModel`]: embeddings, logits, probabilities.
//! - `keys.rs`: parameter paths → Hugging Face keys, ignorable keys.
//!
//! # Loading
//! [`load_vision_tower`] reads a `vit`, `clip_vision_model`, `siglip_vision_model`
//! directory, or the image side of a `clip` / `siglip` one (a moderation model's
//! image tower may point at a CLIP checkpoint; CLIP keeps its
//! `visual_projection`, the text side is ignored). [`load_joint`] reads both
//! towers and `logit_scale` (and SigLIP's `logit_bias`).

mod block;
mod config;
mod image;
mod joint;
mod keys;
mod text;

use std::path::Path;

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_store::{ModuleStore, SafetensorsStore};

pub use block::{EncoderBlock, activate};
pub use config::{
    Activation, JOINT_MODEL_TYPES, JointConfig, JointKind, JointTextConfig, VISION_MODEL_TYPES,
    VisionKind, VitConfig, model_type,
};
pub use image::{AttentionPool, PatchEmbedding, VisionEmbeddings, VisionTransformer};
pub use joint::{JointModel, l2_normalize};
pub use keys::{joint_text_file_key, joint_text_ignorable, vision_file_key, vision_ignorable};
pub use text::{JointTextTransformer, MASK_BIAS, causal_bias};

use crate::error::ModelError;
use crate::weights::{KeyMap, WeightsFormat, load_strict};
use config::{check_model_type, read_json};

/// The weights file of a Hugging Face directory.
const WEIGHTS: &str = "model.safetensors";

/// Loads the image tower of a Hugging Face directory (`config.json` +
/// `model.safetensors`) whose `model_type` is one of [`VISION_MODEL_TYPES`];
/// any other is a [`ModelError::BadConfig`] on `model_type` naming it.
pub fn load_vision_tower<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<VisionTransformer<B>, ModelError> {
    let path = dir.join("config.json");
    let value = read_json(&path)?;
    let model_type = check_model_type(&value, &path, &VISION_MODEL_TYPES, "image tower")?;
    let config = VitConfig::from_value(&value, &path)?;
    let joint = JOINT_MODEL_TYPES.contains(&model_type);
    load_vision_weights(config.init(device), &dir.join(WEIGHTS), joint)
}

/// Loads `path` into `tower`: a ViT file (optionally under `vit.`), a standalone
/// CLIP / SigLIP vision file (optionally under `vision_model.`), or the image
/// side of a joint file (`from_joint`).
pub fn load_vision_weights<B: Backend>(
    tower: VisionTransformer<B>,
    path: &Path,
    from_joint: bool,
) -> Result<VisionTransformer<B>, ModelError> {
    let kind = tower.config().kind;
    let to_file = move |p: &str| {
        let key = vision_file_key(kind, p);
        if from_joint {
            key
        } else {
            key.strip_prefix("vision_model.")
                .map(str::to_string)
                .unwrap_or(key)
        }
    };
    let ignorable = move |k: &str| vision_ignorable(kind, from_joint, k);
    let optional_prefix = match (kind, from_joint) {
        (_, true) => None,
        (VisionKind::Vit, false) => Some("vit."),
        (_, false) => Some("vision_model."),
    };
    load_strict(
        tower,
        path,
        WeightsFormat::Safetensors,
        &KeyMap {
            to_file: &to_file,
            ignorable: &ignorable,
            optional_prefix,
        },
    )
}

/// Loads a `clip` or `siglip` directory (see [`JOINT_MODEL_TYPES`]): both towers
/// with their projections, `logit_scale` and SigLIP's `logit_bias`; any other
/// `model_type` is a [`ModelError::BadConfig`] naming it.
pub fn load_joint<B: Backend>(dir: &Path, device: &B::Device) -> Result<JointModel<B>, ModelError> {
    let path = dir.join("config.json");
    let value = read_json(&path)?;
    let config = JointConfig::from_value(&value, &path)?;
    let weights = dir.join(WEIGHTS);
    let vision = load_vision_weights(config.vision.init(device), &weights, true)?;
    let kind = config.kind;
    let text = load_strict(
        config.text.init(device),
        &weights,
        WeightsFormat::Safetensors,
        &KeyMap {
            to_file: &move |p: &str| joint_text_file_key(kind, p),
            ignorable: &joint_text_ignorable,
            optional_prefix: None,
        },
    )?;
    let scalar = |name: &str| -> Result<Param<Tensor<B, 1>>, ModelError> {
        let v = read_scalar(&weights, name)?;
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![v], [1]),
            device,
        )))
    };
    let logit_scale = scalar("logit_scale")?;
    let logit_bias = match kind {
        JointKind::Clip => None,
        JointKind::Siglip => Some(scalar("logit_bias")?),
    };
    Ok(JointModel::from_parts(
        vision,
        text,
        logit_scale,
        logit_bias,
        kind,
    ))
}

/// The single value of tensor `name` (shape `[]` or `[1]`) of a safetensors file.
fn read_scalar(path: &Path, name: &str) -> Result<f32, ModelError> {
    let mut store = SafetensorsStore::from_file(path);
    let file_err = |source: Box<dyn std::error::Error + Send + Sync>| ModelError::WeightsFile {
        path: path.to_path_buf(),
        source,
    };
    let snapshots = store
        .get_all_snapshots()
        .map_err(|e| file_err(Box::new(e)))?;
    let Some(snap) = snapshots.get(name) else {
        return Err(ModelError::MissingTensors {
            path: path.to_path_buf(),
            tensors: vec![name.to_string()],
        });
    };
    if snap.shape.iter().product::<usize>() != 1 {
        return Err(ModelError::ShapeMismatch {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            expected: vec![1],
            found: snap.shape.to_vec(),
        });
    }
    let data = snap.to_data().map_err(|e| ModelError::TensorData {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        message: e.to_string(),
    })?;
    let values = data
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| ModelError::TensorData {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            message: format!("{e:?}"),
        })?;
    Ok(values[0])
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Int};
    use serde_json::json;
    use vigil_config::TrainLayers;

    use super::*;
    use crate::backend::CpuAutodiff;

    type AD = CpuAutodiff;

    fn small(model_type: &str) -> serde_json::Value {
        let tower = json!({
            "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 24, "image_size": 16, "patch_size": 4,
            "vocab_size": 50, "max_position_embeddings": 12
        });
        match model_type {
            "vit" => {
                let mut v = tower;
                v["model_type"] = json!("vit");
                v["hidden_dropout_prob"] = json!(0.1);
                v
            }
            joint => json!({
                "model_type": joint, "projection_dim": 8,
                "vision_config": tower, "text_config": tower
            }),
        }
    }

    /// `Σ w·g` is finite and some of it non-zero: a gradient reached the tensor.
    fn check_grad<const D: usize>(
        name: &str,
        t: Tensor<AD, D>,
        grads: &<AD as burn::tensor::backend::AutodiffBackend>::Gradients,
    ) {
        let g: Vec<f32> = t
            .grad(grads)
            .unwrap_or_else(|| panic!("{name}: no gradient"))
            .into_data()
            .into_vec()
            .unwrap();
        assert!(
            g.iter().all(|v| v.is_finite()),
            "{name}: non-finite gradient"
        );
        assert!(g.iter().any(|v| *v != 0.0), "{name}: zero gradient");
    }

    fn images(b: usize) -> Tensor<AD, 4> {
        Tensor::random(
            [b, 3, 16, 16],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        )
    }

    #[test]
    fn vit_trains() {
        let path = Path::new("config.json");
        let config = VitConfig::from_value(&small("vit"), path).unwrap();
        let tower = config.init::<AD>(&Default::default());
        let y = tower.forward(images(3));
        assert_eq!(y.dims(), [3, 16]);
        let grads = (y.clone() * y).sum().backward();
        let e = &tower.embeddings;
        check_grad("patch", e.patch.weight.val(), &grads);
        check_grad("cls", e.cls_token.as_ref().unwrap().val(), &grads);
        check_grad(
            "positions",
            e.position_embeddings.as_ref().unwrap().val(),
            &grads,
        );
        check_grad("query", tower.layers[0].query.weight.val(), &grads);
        check_grad("fc1", tower.layers[1].fc1.weight.val(), &grads);
        check_grad("final norm", tower.final_norm.gamma.val(), &grads);
    }

    #[test]
    fn joint_models_train() {
        let path = Path::new("config.json");
        let device = Default::default();
        for model_type in JOINT_MODEL_TYPES {
            let config = JointConfig::from_value(&small(model_type), path).unwrap();
            let model = config.init::<AD>(&device);
            let ids = Tensor::<AD, 2, Int>::from_data(
                TensorData::new((0..4 * 6).map(|i| (i * 7 % 50) as i64).collect(), [4, 6]),
                &device,
            );
            let mask: Vec<f32> = (0..24).map(|i| f32::from(i % 6 < 6 - i / 6)).collect();
            let mask = Tensor::<AD, 2>::from_data(TensorData::new(mask, [4, 6]), &device);
            let logits =
                model.logits_per_image(model.image_embeds(images(2)), model.text_embeds(ids, mask));
            assert_eq!(logits.dims(), [2, 4]);
            let w = Tensor::<AD, 2>::random([2, 4], Distribution::Normal(0.0, 1.0), &device);
            let grads = (model.probabilities(logits) * w).sum().backward();
            let v = &model.vision;
            check_grad("patch", v.embeddings.patch.weight.val(), &grads);
            check_grad(
                "positions",
                v.embeddings
                    .position_embedding
                    .as_ref()
                    .unwrap()
                    .weight
                    .val(),
                &grads,
            );
            check_grad("vision query", v.layers[0].query.weight.val(), &grads);
            check_grad(
                "text tokens",
                model.text.token_embedding.weight.val(),
                &grads,
            );
            check_grad(
                "text value",
                model.text.layers[0].value.weight.val(),
                &grads,
            );
            check_grad(
                "text projection",
                model.text.projection.weight.val(),
                &grads,
            );
            check_grad("logit scale", model.logit_scale.val(), &grads);
            match model.kind() {
                JointKind::Clip => {
                    check_grad(
                        "class",
                        v.embeddings.class_embedding.as_ref().unwrap().val(),
                        &grads,
                    );
                    check_grad("pre norm", v.pre_norm.as_ref().unwrap().gamma.val(), &grads);
                    check_grad(
                        "projection",
                        v.projection.as_ref().unwrap().weight.val(),
                        &grads,
                    );
                }
                JointKind::Siglip => {
                    let head = v.head.as_ref().unwrap();
                    check_grad("probe", head.probe.val(), &grads);
                    check_grad("in_proj", head.in_proj_weight.val(), &grads);
                    check_grad("head fc2", head.fc2.weight.val(), &grads);
                    check_grad(
                        "logit bias",
                        model.logit_bias.as_ref().unwrap().val(),
                        &grads,
                    );
                }
            }
        }
    }

    #[test]
    fn freezing_the_bottom_keeps_the_top_training() {
        let path = Path::new("config.json");
        let config = VitConfig::from_value(&small("vit"), path).unwrap();
        let tower = config
            .init::<AD>(&Default::default())
            .freeze(TrainLayers::Top(1));
        let y = tower.forward(images(2));
        let grads = y.sum().backward();
        assert!(tower.embeddings.patch.weight.val().grad(&grads).is_none());
        assert!(tower.layers[0].fc1.weight.val().grad(&grads).is_none());
        check_grad("top block", tower.layers[1].fc1.weight.val(), &grads);
    }

    #[test]
    fn key_maps_spell_the_published_names() {
        let v = |kind, p| vision_file_key(kind, p);
        assert_eq!(
            v(VisionKind::Vit, "embeddings.patch.weight"),
            "embeddings.patch_embeddings.projection.weight"
        );
        assert_eq!(
            v(VisionKind::Vit, "layers.3.attn_out.bias"),
            "encoder.layer.3.attention.output.dense.bias"
        );
        assert_eq!(v(VisionKind::Vit, "final_norm.gamma"), "layernorm.weight");
        assert_eq!(
            v(VisionKind::Clip, "pre_norm.beta"),
            "vision_model.pre_layrnorm.bias"
        );
        assert_eq!(
            v(VisionKind::Clip, "layers.0.norm2.gamma"),
            "vision_model.encoder.layers.0.layer_norm2.weight"
        );
        assert_eq!(
            v(VisionKind::Clip, "projection.weight"),
            "visual_projection.weight"
        );
        assert_eq!(
            v(VisionKind::Siglip, "head.in_proj_weight"),
            "vision_model.head.attention.in_proj_weight"
        );
        assert_eq!(
            v(VisionKind::Siglip, "head.norm.gamma"),
            "vision_model.head.layernorm.weight"
        );
        let t = |kind, p| joint_text_file_key(kind, p);
        assert_eq!(
            t(JointKind::Clip, "projection.weight"),
            "text_projection.weight"
        );
        assert_eq!(
            t(JointKind::Siglip, "projection.bias"),
            "text_model.head.bias"
        );
        assert_eq!(
            t(JointKind::Clip, "final_norm.beta"),
            "text_model.final_layer_norm.bias"
        );
        assert!(vision_ignorable(
            VisionKind::Clip,
            true,
            "text_model.embeddings.position_ids"
        ));
        assert!(vision_ignorable(VisionKind::Clip, true, "logit_scale"));
        assert!(!vision_ignorable(VisionKind::Clip, false, "logit_scale"));
        assert!(vision_ignorable(
            VisionKind::Vit,
            false,
            "pooler.dense.weight"
        ));
        assert!(!joint_text_ignorable("text_model.head.weight"));
    }
}
