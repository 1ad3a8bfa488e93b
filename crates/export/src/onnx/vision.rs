//! The Vision Transformer image towers (ViT, CLIP, SigLIP) and the CLIP / SigLIP
//! text towers as ONNX: the arithmetic of `vigil_model::vision`, op for op.
//!
//! - Patch embedding: a `Conv` with kernel = stride = patch (the published
//!   weight as is; ONNX Runtime runs it as the GEMM the burn forward does), then
//!   `[b, hidden, g, g]` → `[b, g·g, hidden]`.
//! - CLS token (ViT, CLIP): `Expand`ed to the dynamic batch and concatenated;
//!   position embeddings added; CLIP's `pre_layrnorm`.
//! - Blocks: pre-LayerNorm (`LayerNormalization`, opset 17), scaled dot-product
//!   attention with `Softmax`, the activation written out (`Erf` GELU,
//!   `x·Sigmoid(1.702x)`, tanh GELU).
//! - Pooling: the CLS row through the final LayerNorm (and CLIP's projection), or
//!   SigLIP's attention-pooling head with the probe's query, or a mean.
//! - Text: token + position embeddings (`Slice` of the table to the sequence),
//!   the padding mask as the same -1e4 bias as the burn forward, CLIP's causal
//!   bias as a `Slice` of a constant `[max, max]` triangle, pooling at the last
//!   real token (`GatherND` on `Σmask − 1`) or the last position, then the
//!   projection.
//!
//! The batch axis is dynamic; the image size is the config's (position
//! embeddings are not interpolated).

use burn::tensor::backend::Backend;

use super::OnnxError;
use super::graph::{Graph, attr_i, attr_ints};
use super::proto::{FLOAT, INT64};
use vigil_model::vision::{
    Activation, EncoderBlock, JointKind, JointTextTransformer, MASK_BIAS, VisionKind,
    VisionTransformer,
};

/// Pooled image features `[batch, output_dim]` of normalised `pixels`
/// `[batch, channels, S, S]` (`S` the tower's image size): the value
/// `VisionTransformer::forward` returns. Initializers are named under `prefix`.
pub fn emit_image<B: Backend>(
    g: &mut Graph,
    tower: &VisionTransformer<B>,
    pixels: &str,
    prefix: &str,
) -> Result<String, OnnxError> {
    let cfg = tower.config();
    let h = cfg.hidden_size as i64;
    let p = cfg.patch_size as i64;
    let tokens = cfg.seq_len() as i64;
    let eps = cfg.layer_norm_eps;
    let e = &tower.embeddings;
    let weight = g.param(
        &format!("{prefix}.embeddings.patch.weight"),
        &e.patch.weight,
    )?;
    let mut inputs = vec![pixels.to_string(), weight];
    if let Some(b) = &e.patch.bias {
        inputs.push(g.param(&format!("{prefix}.embeddings.patch.bias"), b)?);
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let y = g.node(
        "Conv",
        &refs,
        vec![
            attr_ints("kernel_shape", &[p, p]),
            attr_ints("strides", &[p, p]),
            attr_ints("pads", &[0, 0, 0, 0]),
            attr_ints("dilations", &[1, 1]),
            attr_i("group", 1),
        ],
    );
    let patches = cfg.grid() as i64 * cfg.grid() as i64;
    let flat = g.ints(&[0, h, patches]);
    let y = g.node("Reshape", &[&y, &flat], vec![]);
    let mut x = g.node("Transpose", &[&y], vec![attr_ints("perm", &[0, 2, 1])]);
    if let Some(cls) = e.cls() {
        let cls = g.tensor(
            &format!("{prefix}.embeddings.cls"),
            cls.reshape([1, 1, h as usize]),
        )?;
        // [batch, 1, hidden] from the patches' dynamic batch.
        let shape = g.node("Shape", &[&x], vec![]);
        let (zero, one) = (g.ints(&[0]), g.ints(&[1]));
        let batch = g.node("Slice", &[&shape, &zero, &one], vec![]);
        let rest = g.ints(&[1, h]);
        let target = g.node("Concat", &[&batch, &rest], vec![attr_i("axis", 0)]);
        let cls = g.node("Expand", &[&cls, &target], vec![]);
        x = g.node("Concat", &[&cls, &x], vec![attr_i("axis", 1)]);
    }
    if let Some(positions) = e.positions() {
        let positions = g.tensor(
            &format!("{prefix}.embeddings.positions"),
            positions.reshape([1, tokens as usize, h as usize]),
        )?;
        x = g.node("Add", &[&x, &positions], vec![]);
    }
    if let Some(n) = &tower.pre_norm {
        x = g.layer_norm(&x, n, eps, &format!("{prefix}.pre_norm"))?;
    }
    for (i, layer) in tower.layers.iter().enumerate() {
        x = block(g, layer, &x, None, &format!("{prefix}.layers.{i}"))?;
    }
    let final_norm = format!("{prefix}.final_norm");
    let pooled = match (cfg.kind, &tower.head) {
        (VisionKind::Siglip, head) => {
            let x = g.layer_norm(&x, &tower.final_norm, eps, &final_norm)?;
            match head {
                Some(head) => attention_pool(g, head, &x, &format!("{prefix}.head"))?,
                None => g.node(
                    "ReduceMean",
                    &[&x],
                    vec![attr_ints("axes", &[1]), attr_i("keepdims", 0)],
                ),
            }
        }
        _ => {
            let first = g.int_scalar(0);
            let cls = g.node("Gather", &[&x, &first], vec![attr_i("axis", 1)]);
            g.layer_norm(&cls, &tower.final_norm, eps, &final_norm)?
        }
    };
    match &tower.projection {
        Some(l) => g.linear(&pooled, l, &format!("{prefix}.projection")),
        None => Ok(pooled),
    }
}

/// Text features `[batch, output_dim]` of `ids` and `mask` (int64 `[batch, seq]`):
/// the value `JointTextTransformer::forward` returns.
pub fn emit_text<B: Backend>(
    g: &mut Graph,
    tower: &JointTextTransformer<B>,
    ids: &str,
    mask: &str,
    prefix: &str,
) -> Result<String, OnnxError> {
    let cfg = tower.config();
    let tokens = g.param(
        &format!("{prefix}.token_embedding.weight"),
        &tower.token_embedding.weight,
    )?;
    let x = g.node("Gather", &[&tokens, ids], vec![attr_i("axis", 0)]);
    let shape = g.node("Shape", &[ids], vec![]);
    let (zero, one, two) = (g.ints(&[0]), g.ints(&[1]), g.ints(&[2]));
    let seq = g.node("Slice", &[&shape, &one, &two], vec![]);
    let table = g.param(
        &format!("{prefix}.position_embedding.weight"),
        &tower.position_embedding.weight,
    )?;
    let pos = g.node("Slice", &[&table, &zero, &seq, &zero], vec![]);
    let mut x = g.node("Add", &[&x, &pos], vec![]);
    // (mask − 1)·1e4 as [batch, 1, 1, seq], as `JointTextTransformer::mask_bias`.
    let maskf = g.node("Cast", &[mask], vec![attr_i("to", i64::from(FLOAT))]);
    let one_f = g.scalar(1.0);
    let big = g.scalar(-MASK_BIAS as f32);
    let bias = g.node("Sub", &[&maskf, &one_f], vec![]);
    let bias = g.node("Mul", &[&bias, &big], vec![]);
    let axes = g.ints(&[1, 2]);
    let mut bias = g.node("Unsqueeze", &[&bias, &axes], vec![]);
    if cfg.kind == JointKind::Clip {
        let n = cfg.max_position_embeddings;
        let triangle: Vec<f32> = (0..n * n)
            .map(|i| if i % n > i / n { MASK_BIAS as f32 } else { 0.0 })
            .collect();
        let triangle = g.init_f32(
            &format!("{prefix}.causal_bias"),
            &[1, 1, n as i64, n as i64],
            &triangle,
        );
        let ends = g.node("Concat", &[&seq, &seq], vec![attr_i("axis", 0)]);
        let starts = g.ints(&[0, 0]);
        let axes = g.ints(&[2, 3]);
        let causal = g.node("Slice", &[&triangle, &starts, &ends, &axes], vec![]);
        bias = g.node("Add", &[&bias, &causal], vec![]);
    }
    for (i, layer) in tower.layers.iter().enumerate() {
        x = block(g, layer, &x, Some(&bias), &format!("{prefix}.layers.{i}"))?;
    }
    let x = g.layer_norm(
        &x,
        &tower.final_norm,
        cfg.layer_norm_eps,
        &format!("{prefix}.final_norm"),
    )?;
    let pooled = match cfg.kind {
        JointKind::Clip => {
            // Row b's state at Σ mask[b] − 1 (clamped to 0), as the burn forward.
            let axis = g.ints(&[1]);
            let count = g.node("ReduceSum", &[&maskf, &axis], vec![attr_i("keepdims", 1)]);
            let last = g.node("Sub", &[&count, &one_f], vec![]);
            let last = g.node("Cast", &[&last], vec![attr_i("to", i64::from(INT64))]);
            let floor = g.ints(&[0]);
            let last = g.node("Max", &[&last, &floor], vec![]);
            g.node("GatherND", &[&x, &last], vec![attr_i("batch_dims", 1)])
        }
        JointKind::Siglip => {
            let end = g.int_scalar(-1);
            g.node("Gather", &[&x, &end], vec![attr_i("axis", 1)])
        }
    };
    g.linear(&pooled, &tower.projection, &format!("{prefix}.projection"))
}

/// `act(x)` written with ONNX operators.
fn activation(g: &mut Graph, act: Activation, x: &str) -> String {
    match act {
        Activation::Gelu => super::text::gelu(g, x),
        Activation::QuickGelu => {
            let k = g.scalar(1.702);
            let s = g.node("Mul", &[x, &k], vec![]);
            let s = g.node("Sigmoid", &[&s], vec![]);
            g.node("Mul", &[x, &s], vec![])
        }
        Activation::GeluTanh => {
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), burn's `gelu_approximate`.
            let sqrt_2_over_pi =
                (std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2) as f32;
            let (c, k) = (g.scalar(0.044715), g.scalar(sqrt_2_over_pi));
            let (one, half, three) = (g.scalar(1.0), g.scalar(0.5), g.scalar(3.0));
            let cube = g.node("Pow", &[x, &three], vec![]);
            let cube = g.node("Mul", &[&cube, &c], vec![]);
            let inner = g.node("Add", &[x, &cube], vec![]);
            let inner = g.node("Mul", &[&inner, &k], vec![]);
            let t = g.node("Tanh", &[&inner], vec![]);
            let t = g.node("Add", &[&t, &one], vec![]);
            let y = g.node("Mul", &[x, &t], vec![]);
            g.node("Mul", &[&y, &half], vec![])
        }
    }
}

/// `[b, s, hidden]` → `[b, heads, s, dh]` (`perm` `[0, 2, 1, 3]`) or its key
/// layout `[b, heads, dh, s]` (`[0, 2, 3, 1]`).
fn split_heads(g: &mut Graph, t: &str, heads: i64, dh: i64, perm: &[i64]) -> String {
    let shape = g.ints(&[0, 0, heads, dh]);
    let r = g.node("Reshape", &[t, &shape], vec![]);
    g.node("Transpose", &[&r], vec![attr_ints("perm", perm)])
}

/// One pre-LayerNorm block on `x` `[b, s, hidden]`; `bias` is added to the scaled
/// scores (None: no mask).
fn block<B: Backend>(
    g: &mut Graph,
    l: &EncoderBlock<B>,
    x: &str,
    bias: Option<&str>,
    name: &str,
) -> Result<String, OnnxError> {
    let h = l.norm1.gamma.dims()[0] as i64;
    let heads = l.heads() as i64;
    let dh = h / heads;
    let eps = l.eps();
    let y = g.layer_norm(x, &l.norm1, eps, &format!("{name}.norm1"))?;
    let q = g.linear(&y, &l.query, &format!("{name}.query"))?;
    let k = g.linear(&y, &l.key, &format!("{name}.key"))?;
    let v = g.linear(&y, &l.value, &format!("{name}.value"))?;
    let q = split_heads(g, &q, heads, dh, &[0, 2, 1, 3]);
    let k = split_heads(g, &k, heads, dh, &[0, 2, 3, 1]);
    let v = split_heads(g, &v, heads, dh, &[0, 2, 1, 3]);
    let scores = g.node("MatMul", &[&q, &k], vec![]);
    let scale = g.scalar((1.0 / (dh as f64).sqrt()) as f32);
    let mut scores = g.node("Mul", &[&scores, &scale], vec![]);
    if let Some(bias) = bias {
        scores = g.node("Add", &[&scores, bias], vec![]);
    }
    let probs = g.node("Softmax", &[&scores], vec![attr_i("axis", -1)]);
    let ctx = g.node("MatMul", &[&probs, &v], vec![]);
    let ctx = g.node("Transpose", &[&ctx], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    let merge = g.ints(&[0, 0, h]);
    let ctx = g.node("Reshape", &[&ctx, &merge], vec![]);
    let attn = g.linear(&ctx, &l.attn_out, &format!("{name}.attn_out"))?;
    let x = g.node("Add", &[x, &attn], vec![]);
    let y = g.layer_norm(&x, &l.norm2, eps, &format!("{name}.norm2"))?;
    let y = g.linear(&y, &l.fc1, &format!("{name}.fc1"))?;
    let y = activation(g, l.activation(), &y);
    let y = g.linear(&y, &l.fc2, &format!("{name}.fc2"))?;
    Ok(g.node("Add", &[&x, &y], vec![]))
}

/// SigLIP's attention pooling of `x` `[b, s, hidden]` → `[b, hidden]`.
fn attention_pool<B: Backend>(
    g: &mut Graph,
    head: &vigil_model::vision::AttentionPool<B>,
    x: &str,
    name: &str,
) -> Result<String, OnnxError> {
    let h = head.probe.dims()[2] as i64;
    let heads = head.heads() as i64;
    let dh = h / heads;
    // `x · Wᵀ + b` with the packed projection `which` (0 q, 1 k, 2 v).
    let project = |g: &mut Graph, t: &str, which: usize| -> Result<String, OnnxError> {
        let (w, b) = head.projection(which);
        let w = g.tensor(&format!("{name}.in_proj.{which}.weight"), w.transpose())?;
        let b = g.tensor(&format!("{name}.in_proj.{which}.bias"), b)?;
        let y = g.node("MatMul", &[t, &w], vec![]);
        Ok(g.node("Add", &[&y, &b], vec![]))
    };
    let probe = g.tensor(
        &format!("{name}.probe"),
        head.probe.val().reshape([1, h as usize]),
    )?;
    let q = project(g, &probe, 0)?;
    let q_shape = g.ints(&[1, 1, heads, dh]);
    let q = g.node("Reshape", &[&q, &q_shape], vec![]);
    let q = g.node("Transpose", &[&q], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    let k = project(g, x, 1)?;
    let k = split_heads(g, &k, heads, dh, &[0, 2, 3, 1]);
    let v = project(g, x, 2)?;
    let v = split_heads(g, &v, heads, dh, &[0, 2, 1, 3]);
    let scores = g.node("MatMul", &[&q, &k], vec![]);
    let scale = g.scalar((1.0 / (dh as f64).sqrt()) as f32);
    let scores = g.node("Mul", &[&scores, &scale], vec![]);
    let probs = g.node("Softmax", &[&scores], vec![attr_i("axis", -1)]);
    let ctx = g.node("MatMul", &[&probs, &v], vec![]);
    let ctx = g.node("Transpose", &[&ctx], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    let flat = g.ints(&[0, h]);
    let ctx = g.node("Reshape", &[&ctx, &flat], vec![]);
    let y = g.linear(&ctx, &head.out_proj, &format!("{name}.out_proj"))?;
    let z = g.layer_norm(&y, &head.norm, head.eps(), &format!("{name}.norm"))?;
    let z = g.linear(&z, &head.fc1, &format!("{name}.fc1"))?;
    let z = activation(g, head.activation(), &z);
    let z = g.linear(&z, &head.fc2, &format!("{name}.fc2"))?;
    Ok(g.node("Add", &[&y, &z], vec![]))
}

#[cfg(test)]
mod tests {
    //! The graphs of the fixture towers (`crates/model/tests/fixtures/encoders`).
    //! With `VIGIL_ONNX_VISION_DUMP=<dir>` the tests also write each graph
    //! (`<fixture>-image.onnx`, `<fixture>-text.onnx`) and a JSON of its inputs and
    //! the burn forward's `features` there, to run with ONNX Runtime: the graphs
    //! pass `onnx.checker` (full check) and agree with burn within 1.2e-6 on
    //! these fixtures, at the fixture's batch, at batch 1 and (text) at shorter
    //! sequences.

    use std::path::{Path, PathBuf};

    use burn::tensor::{Int, Tensor, TensorData};
    use prost::Message;

    use super::*;
    use crate::onnx::graph::Dim;
    use crate::onnx::proto::{ModelProto, OperatorSetIdProto};
    use crate::onnx::{IR_VERSION, OPSET};
    use vigil_model::backend::CpuBackend;
    use vigil_model::vision::{load_joint, load_vision_tower};

    type B = CpuBackend;

    fn fixture(name: &str) -> (PathBuf, serde_json::Value) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../model/tests/fixtures/encoders")
            .join(name);
        let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
        (dir, serde_json::from_str(&text).unwrap())
    }

    fn model(g: Graph) -> Vec<u8> {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "vigil-test".into(),
            graph: Some(g.finish("vision_test")),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn floats(v: &serde_json::Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn dump(name: &str, bytes: &[u8], outputs: serde_json::Value) {
        if let Some(dir) = std::env::var_os("VIGIL_ONNX_VISION_DUMP") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.onnx")), bytes).unwrap();
            std::fs::write(dir.join(format!("{name}.json")), outputs.to_string()).unwrap();
        }
    }

    #[test]
    fn image_towers_emit() {
        for name in ["vit", "clip", "siglip"] {
            let (dir, r) = fixture(name);
            let tower = load_vision_tower::<B>(&dir, &Default::default()).unwrap();
            let s = tower.image_size() as i64;
            let mut g = Graph::default();
            let px = g.input(
                "pixel_values",
                FLOAT,
                &[
                    Dim::Named("batch"),
                    Dim::Fixed(3),
                    Dim::Fixed(s),
                    Dim::Fixed(s),
                ],
            );
            let out = emit_image(&mut g, &tower, &px, "image").unwrap();
            let d = tower.output_dim() as i64;
            g.output(
                &out,
                "features",
                FLOAT,
                &[Dim::Named("batch"), Dim::Fixed(d)],
            );
            let bytes = model(g);
            assert!(!bytes.is_empty());
            let shape: Vec<usize> =
                serde_json::from_value(r["pixel_values_shape"].clone()).unwrap();
            let x = Tensor::<B, 4>::from_data(
                TensorData::new(
                    floats(&r["pixel_values"]),
                    [shape[0], shape[1], shape[2], shape[3]],
                ),
                &Default::default(),
            );
            let ours: Vec<f32> = tower.forward(x).into_data().into_vec().unwrap();
            dump(
                &format!("{name}-image"),
                &bytes,
                serde_json::json!({"pixel_values": r["pixel_values"], "pixel_values_shape": shape, "features": ours}),
            );
        }
    }

    #[test]
    fn text_towers_emit() {
        for name in ["clip", "siglip"] {
            let (dir, r) = fixture(name);
            let joint = load_joint::<B>(&dir, &Default::default()).unwrap();
            let mut g = Graph::default();
            let dims = [Dim::Named("batch"), Dim::Named("seq")];
            let ids = g.input("input_ids", INT64, &dims);
            let mask = g.input("attention_mask", INT64, &dims);
            let out = emit_text(&mut g, &joint.text, &ids, &mask, "text").unwrap();
            let d = joint.text.output_dim() as i64;
            g.output(
                &out,
                "features",
                FLOAT,
                &[Dim::Named("batch"), Dim::Fixed(d)],
            );
            let bytes = model(g);
            let rows: Vec<Vec<i64>> = serde_json::from_value(r["token_ids"].clone()).unwrap();
            let masks: Vec<Vec<i64>> = if name == "clip" {
                serde_json::from_value(r["attention_mask"].clone()).unwrap()
            } else {
                rows.iter().map(|row| vec![1; row.len()]).collect()
            };
            let (b, s) = (rows.len(), rows[0].len());
            let device = Default::default();
            let t_ids =
                Tensor::<B, 2, Int>::from_data(TensorData::new(rows.concat(), [b, s]), &device);
            let t_mask = Tensor::<B, 2>::from_data(
                TensorData::new(
                    masks.concat().iter().map(|&m| m as f32).collect::<Vec<_>>(),
                    [b, s],
                ),
                &device,
            );
            let ours: Vec<f32> = joint
                .text
                .forward(t_ids, t_mask)
                .into_data()
                .into_vec()
                .unwrap();
            dump(
                &format!("{name}-text"),
                &bytes,
                serde_json::json!({"input_ids": rows, "attention_mask": masks, "features": ours}),
            );
        }
    }
}
