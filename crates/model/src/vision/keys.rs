//! Our parameter paths → the Hugging Face keys, per family, for
//! [`load_strict`](crate::load_strict).
//!
//! | ours | ViT | CLIP / SigLIP (under `vision_model.` / `text_model.`) |
//! |---|---|---|
//! | `embeddings.patch` | `embeddings.patch_embeddings.projection` | `embeddings.patch_embedding` |
//! | `embeddings.cls_token` / `class_embedding` | `embeddings.cls_token` | `embeddings.class_embedding` |
//! | `embeddings.position_embeddings` / `position_embedding` | `embeddings.position_embeddings` | `embeddings.position_embedding` |
//! | `pre_norm` | — | `pre_layrnorm` (CLIP) |
//! | `layers.N.norm1` | `encoder.layer.N.layernorm_before` | `encoder.layers.N.layer_norm1` |
//! | `layers.N.query` / `key` / `value` | `…attention.attention.query` … | `…self_attn.q_proj` … |
//! | `layers.N.attn_out` | `…attention.output.dense` | `…self_attn.out_proj` |
//! | `layers.N.norm2` | `…layernorm_after` | `…layer_norm2` |
//! | `layers.N.fc1` / `fc2` | `…intermediate.dense` / `…output.dense` | `…mlp.fc1` / `…mlp.fc2` |
//! | `final_norm` | `layernorm` | `post_layernorm`, text `final_layer_norm` |
//! | `head.*` | — | `head.probe`, `head.attention.{in_proj_*, out_proj}`, `head.layernorm`, `head.mlp.*` |
//! | `projection` | — | `visual_projection`, `text_projection` (CLIP), `text_model.head` (SigLIP) |
//!
//! LayerNorm `gamma` / `beta` are `weight` / `bias`.

use super::config::{JointKind, VisionKind};
use crate::weights::norm_param;

/// A block parameter `layers.N.<module>.<param>` in ViT's (`legacy`) or CLIP's naming.
fn block_key(vit: bool, i: &str, module: &str, p: &str) -> String {
    let (name, norm) = match (vit, module) {
        (true, "norm1") => ("layernorm_before", true),
        (true, "norm2") => ("layernorm_after", true),
        (true, "query") => ("attention.attention.query", false),
        (true, "key") => ("attention.attention.key", false),
        (true, "value") => ("attention.attention.value", false),
        (true, "attn_out") => ("attention.output.dense", false),
        (true, "fc1") => ("intermediate.dense", false),
        (true, "fc2") => ("output.dense", false),
        (false, "norm1") => ("layer_norm1", true),
        (false, "norm2") => ("layer_norm2", true),
        (false, "query") => ("self_attn.q_proj", false),
        (false, "key") => ("self_attn.k_proj", false),
        (false, "value") => ("self_attn.v_proj", false),
        (false, "attn_out") => ("self_attn.out_proj", false),
        (false, "fc1") => ("mlp.fc1", false),
        (false, "fc2") => ("mlp.fc2", false),
        (_, other) => (other, false),
    };
    let p = if norm { norm_param(p) } else { p };
    if vit {
        format!("encoder.layer.{i}.{name}.{p}")
    } else {
        format!("encoder.layers.{i}.{name}.{p}")
    }
}

/// The file key of a [`VisionTransformer`](super::VisionTransformer) parameter
/// path, as a joint CLIP / SigLIP file spells it (`vision_model.…`,
/// `visual_projection.weight`) or a ViT file without its optional `vit.` prefix.
pub fn vision_file_key(kind: VisionKind, burn_path: &str) -> String {
    let parts: Vec<&str> = burn_path.split('.').collect();
    let vit = kind == VisionKind::Vit;
    let inner = match (vit, parts.as_slice()) {
        (_, ["projection", p]) => return format!("visual_projection.{p}"),
        (true, ["embeddings", "patch", p]) => format!("embeddings.patch_embeddings.projection.{p}"),
        (false, ["embeddings", "patch", p]) => format!("embeddings.patch_embedding.{p}"),
        (_, ["embeddings", rest @ ..]) => format!("embeddings.{}", rest.join(".")),
        (_, ["pre_norm", p]) => format!("pre_layrnorm.{}", norm_param(p)),
        (_, ["layers", i, module, p]) => block_key(vit, i, module, p),
        (true, ["final_norm", p]) => format!("layernorm.{}", norm_param(p)),
        (false, ["final_norm", p]) => format!("post_layernorm.{}", norm_param(p)),
        (_, ["head", "probe"]) => "head.probe".into(),
        (_, ["head", p @ ("in_proj_weight" | "in_proj_bias")]) => format!("head.attention.{p}"),
        (_, ["head", "out_proj", p]) => format!("head.attention.out_proj.{p}"),
        (_, ["head", "norm", p]) => format!("head.layernorm.{}", norm_param(p)),
        (_, ["head", fc @ ("fc1" | "fc2"), p]) => format!("head.mlp.{fc}.{p}"),
        _ => burn_path.to_string(),
    };
    if vit {
        inner
    } else {
        format!("vision_model.{inner}")
    }
}

/// File keys an image tower's file may hold and the tower does not use:
/// position-id buffers, ViT's pooler, mask token and decoder, a classifier, and
/// when the file is a joint model (`from_joint`) its text side and logit scale.
pub fn vision_ignorable(kind: VisionKind, from_joint: bool, key: &str) -> bool {
    let common = key.ends_with("position_ids") || key.starts_with("classifier.");
    let family = match kind {
        VisionKind::Vit => {
            key.starts_with("pooler.")
                || key.starts_with("decoder.")
                || key == "embeddings.mask_token"
        }
        VisionKind::Clip | VisionKind::Siglip => {
            from_joint
                && (key.starts_with("text_model.")
                    || key.starts_with("text_projection.")
                    || key == "logit_scale"
                    || key == "logit_bias")
        }
    };
    common || family
}

/// The file key of a [`JointTextTransformer`](super::JointTextTransformer)
/// parameter path in a joint CLIP / SigLIP file.
pub fn joint_text_file_key(kind: JointKind, burn_path: &str) -> String {
    let parts: Vec<&str> = burn_path.split('.').collect();
    let inner = match parts.as_slice() {
        ["projection", p] => match kind {
            JointKind::Clip => return format!("text_projection.{p}"),
            JointKind::Siglip => format!("head.{p}"),
        },
        [table @ ("token_embedding" | "position_embedding"), p] => {
            format!("embeddings.{table}.{p}")
        }
        ["layers", i, module, p] => block_key(false, i, module, p),
        ["final_norm", p] => format!("final_layer_norm.{}", norm_param(p)),
        _ => burn_path.to_string(),
    };
    format!("text_model.{inner}")
}

/// File keys of a joint file the text tower does not use: the image side, the
/// logit scale and bias (read on their own), position-id buffers.
pub fn joint_text_ignorable(key: &str) -> bool {
    key.starts_with("vision_model.")
        || key.starts_with("visual_projection.")
        || key == "logit_scale"
        || key == "logit_bias"
        || key.ends_with("position_ids")
}
