//! The whole model: inputs, towers, fusion (standardisation, layer norms,
//! projections, missing-modality placeholders, concat / gated / interaction),
//! the head, the final sigmoid or softmax, and the metadata.

use burn::module::{Param, RunningState};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use prost::Message;

use super::OnnxError;
use super::graph::{Graph, attr_i};
use super::proto::{ModelProto, OperatorSetIdProto, StringStringEntryProto};
use super::signature::{
    ATTENTION_MASK, HAS_IMAGE, HAS_TEXT, INPUT_IDS, PIXEL_VALUES, SCORES, Signature,
};
use vigil_config::{FusionKind, Task};
use vigil_model::{FUSION_NORM_EPS, ModerationModel, Standardize};

/// The ONNX operator set written (17: the first with `LayerNormalization`).
pub const OPSET: i64 = 17;
/// The IR version matching [`OPSET`].
pub const IR_VERSION: i64 = 8;

/// What the file records besides the graph (`metadata_props`).
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxMetadata {
    /// `{label: threshold}` as JSON.
    pub thresholds: serde_json::Value,
    /// The preprocessing (tokenizer, lengths, image size, mean/std) as JSON.
    pub preprocessing: serde_json::Value,
    /// `run.name` of the training run.
    pub run: String,
    /// The exported step.
    pub step: u64,
}

/// `model` as the bytes of a `model.onnx` and its signature.
pub fn to_onnx<B: Backend>(
    model: &ModerationModel<B>,
    image_size: u32,
    meta: &OnnxMetadata,
) -> Result<(Vec<u8>, Signature), OnnxError> {
    let labels = model.labels();
    let sig = Signature::of(
        model.text.is_some(),
        model.image.is_some(),
        image_size,
        labels.len(),
    );
    let mut g = Graph::default();
    for spec in &sig.inputs {
        g.input(spec.name, spec.dtype.onnx(), &spec.shape);
    }
    let f = &model.fusion;
    let t = match &model.text {
        Some(tower) => {
            let pooled = super::text::emit(&mut g, tower, INPUT_IDS, ATTENTION_MASK)?;
            project(
                &mut g,
                Branch {
                    std: f.text_std.as_ref(),
                    norm: f.text_norm.as_ref(),
                    proj: f.text_proj.as_ref(),
                    missing: f.text_missing.as_ref(),
                    name: "fusion.text",
                },
                &pooled,
                HAS_TEXT,
            )?
        }
        None => None,
    };
    let v = match &model.image {
        Some(tower) => {
            let pooled = super::image::emit(&mut g, tower, PIXEL_VALUES)?;
            project(
                &mut g,
                Branch {
                    std: f.image_std.as_ref(),
                    norm: f.image_norm.as_ref(),
                    proj: f.image_proj.as_ref(),
                    missing: f.image_missing.as_ref(),
                    name: "fusion.image",
                },
                &pooled,
                HAS_IMAGE,
            )?
        }
        None => None,
    };
    let fused = match (t, v) {
        (Some(t), Some(v)) => match f.kind() {
            FusionKind::Concat => g.node("Concat", &[&t, &v], vec![attr_i("axis", 1)]),
            FusionKind::Gated => {
                let gate = f.gate.as_ref().ok_or_else(|| {
                    OnnxError::Unsupported("gated fusion without its gate".into())
                })?;
                let cat = g.node("Concat", &[&t, &v], vec![attr_i("axis", 1)]);
                let z = g.linear(&cat, gate, "fusion.gate")?;
                let z = g.node("Sigmoid", &[&z], vec![]);
                let (tt, tv) = (g.node("Tanh", &[&t], vec![]), g.node("Tanh", &[&v], vec![]));
                let a = g.node("Mul", &[&z, &tt], vec![]);
                let one = g.scalar(1.0);
                let nz = g.node("Sub", &[&one, &z], vec![]);
                let b = g.node("Mul", &[&nz, &tv], vec![]);
                g.node("Add", &[&a, &b], vec![])
            }
            FusionKind::Interaction => {
                let d = f.dim() as i64;
                let (a2, a1) = (g.ints(&[2]), g.ints(&[1]));
                let tc = g.node("Unsqueeze", &[&t, &a2], vec![]);
                let vr = g.node("Unsqueeze", &[&v, &a1], vec![]);
                let outer = g.node("Mul", &[&tc, &vr], vec![]);
                let shape = g.ints(&[0, d * d]);
                g.node("Reshape", &[&outer, &shape], vec![])
            }
        },
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => {
            return Err(OnnxError::Unsupported(
                "a model without towers has nothing to export".into(),
            ));
        }
    };
    let n = model.head.layers.len();
    let mut x = fused;
    for (i, layer) in model.head.layers.iter().enumerate() {
        x = g.linear(&x, layer, &format!("head.layers.{i}"))?;
        if i + 1 < n {
            x = g.node("Relu", &[&x], vec![]);
        }
    }
    let scores = match model.task() {
        Task::MultiLabel => g.node("Sigmoid", &[&x], vec![]),
        Task::MultiClass => g.node("Softmax", &[&x], vec![attr_i("axis", 1)]),
    };
    let out = &sig.outputs[0];
    g.output(&scores, SCORES, out.dtype.onnx(), &out.shape);
    let prop = |key: &str, value: String| StringStringEntryProto {
        key: key.into(),
        value,
    };
    let proto = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "vigil".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "ai.vigil".into(),
        model_version: 1,
        doc_string: "Vigil moderation classifier: scores are per-label probabilities".into(),
        graph: Some(g.finish("vigil_moderation")),
        metadata_props: vec![
            prop("labels", serde_json::json!(labels).to_string()),
            prop("task", model.task().as_str().into()),
            prop("thresholds", meta.thresholds.to_string()),
            prop("preprocessing", meta.preprocessing.to_string()),
            prop("signature", sig.to_json().to_string()),
            prop("run", meta.run.clone()),
            prop("step", meta.step.to_string()),
        ],
    };
    Ok((proto.encode_to_vec(), sig))
}

/// One modality's fusion parameters.
struct Branch<'a, B: Backend> {
    std: Option<&'a Standardize<B>>,
    norm: Option<&'a LayerNorm<B>>,
    proj: Option<&'a Linear<B>>,
    missing: Option<&'a Param<Tensor<B, 1>>>,
    name: &'a str,
}

fn state<B: Backend>(
    g: &mut Graph,
    name: &str,
    s: &RunningState<Tensor<B, 1>>,
) -> Result<String, OnnxError> {
    g.tensor(name, s.value())
}

/// Standardise, normalise, project; the placeholder where the row lacks the
/// modality (`present` bool `[batch]`). None without a projection.
fn project<B: Backend>(
    g: &mut Graph,
    b: Branch<'_, B>,
    features: &str,
    present: &str,
) -> Result<Option<String>, OnnxError> {
    let (Some(proj), Some(missing)) = (b.proj, b.missing) else {
        return Ok(None);
    };
    let name = b.name;
    let mut x = features.to_string();
    if let Some(s) = b.std {
        let mean = state(g, &format!("{name}_std.mean"), &s.mean)?;
        let inv = state(g, &format!("{name}_std.inv_std"), &s.inv_std)?;
        let centred = g.node("Sub", &[&x, &mean], vec![]);
        x = g.node("Mul", &[&centred, &inv], vec![]);
    }
    if let Some(n) = b.norm {
        x = g.layer_norm(&x, n, FUSION_NORM_EPS, &format!("{name}_norm"))?;
    }
    let x = g.linear(&x, proj, &format!("{name}_proj"))?;
    let fill = g.param(&format!("{name}_missing"), missing)?;
    let axis = g.ints(&[1]);
    let cond = g.node("Unsqueeze", &[present, &axis], vec![]);
    Ok(Some(g.node("Where", &[&cond, &x, &fill], vec![])))
}
