//! The DeBERTa-v2/v3 encoder as ONNX: embeddings, then post-LayerNorm blocks with
//! disentangled attention — the arithmetic of `vigil_model::deberta`, op for op.
//!
//! Per block, the logits are `(q·kᵀ + c2p + p2c) · scale + mask_bias`, where
//! `c2p = GatherElements(q · pkᵀ, c2p_index)` and `p2c = GatherElements(k · pqᵀ,
//! p2c_index)ᵀ`, `pk` / `pq` the block's key / query projections of the
//! LayerNorm'd relative table (`[heads, dh, 2·span]`, broadcast over the batch by
//! `MatMul`), as in the burn forward.
//!
//! The relative-position indices depend on the sequence length only, through
//! `row − col`: the graph holds them as two int64 tables over every distance up
//! to the encoder's position limit (`2·max_positions − 1` entries: the c2p and
//! p2c columns, bucketed and clamped on the host by the model's own
//! [`c2p_index`](vigil_model::deberta::DebertaV2Config::c2p_index) /
//! [`p2c_index`](vigil_model::deberta::DebertaV2Config::p2c_index)), and computes
//! `row − col + max_positions − 1` from the `Range` of the dynamic sequence
//! length to `Gather` the `[seq, seq]` slice. That keeps the sequence axis dynamic
//! with no floating-point bucket arithmetic in the graph (its `Log`/`Ceil` could
//! round differently from the host) and costs a few kilobytes. A sequence longer
//! than `max_positions` is out of the tables' range, as it is out of the model's.

use burn::nn::Linear;
use burn::tensor::backend::Backend;

use super::OnnxError;
use super::graph::{Graph, attr_i, attr_ints, floats};
use super::proto::FLOAT;
use super::text::gelu;
use vigil_model::deberta::{DebertaV2, DebertaV2Config, DebertaV2Layer};

/// Token states `[batch, seq, hidden]` of `enc` for `ids` and `mask` (int64
/// `[batch, seq]`, 1 real / 0 padding); returns the value's name. Initializers
/// are named `{prefix}.` + the burn parameter path (`text.encoder.layers.0.query.weight`).
pub fn emit_states<B: Backend>(
    g: &mut Graph,
    enc: &DebertaV2<B>,
    ids: &str,
    mask: &str,
    prefix: &str,
) -> Result<String, OnnxError> {
    let cfg = enc.config();
    let eps = cfg.layer_norm_eps;
    let e = &enc.embeddings;
    let p = format!("{prefix}.embeddings");
    let word = g.param(
        &format!("{p}.word_embeddings.weight"),
        &e.word_embeddings.weight,
    )?;
    let mut x = g.node("Gather", &[&word, ids], vec![attr_i("axis", 0)]);
    let shape = g.node("Shape", &[ids], vec![]);
    let (zero, one, two) = (g.ints(&[0]), g.ints(&[1]), g.ints(&[2]));
    let batch = g.node("Slice", &[&shape, &zero, &one], vec![]);
    let seq = g.node("Slice", &[&shape, &one, &two], vec![]);
    if let Some(table) = &e.position_embeddings {
        // Positions 0..seq: the first `seq` rows of the table.
        let table = g.param(&format!("{p}.position_embeddings.weight"), &table.weight)?;
        let pos = g.node("Slice", &[&table, &zero, &seq, &zero], vec![]);
        x = g.node("Add", &[&x, &pos], vec![]);
    }
    if let Some(table) = &e.token_type_embeddings {
        // Token type 0 everywhere: its row of the table.
        let width = table.weight.dims()[1];
        let types = floats(table.weight.val(), "token_type_embeddings")?;
        let type0 = g.init_f32(
            &format!("{p}.token_type_embeddings.weight[0]"),
            &[width as i64],
            &types[..width],
        );
        x = g.node("Add", &[&x, &type0], vec![]);
    }
    if let Some(proj) = &e.embed_proj {
        x = g.linear(&x, proj, &format!("{p}.embed_proj"))?;
    }
    let mut x = g.layer_norm(&x, &e.layer_norm, eps, &format!("{p}.layer_norm"))?;

    // (mask - 1) · 1e4 as `[batch, 1, 1, seq]`, as `DebertaV2::forward`.
    let maskf = g.node("Cast", &[mask], vec![attr_i("to", i64::from(FLOAT))]);
    let one_f = g.scalar(1.0);
    let big = g.scalar(1e4);
    let bias = g.node("Sub", &[&maskf, &one_f], vec![]);
    let bias = g.node("Mul", &[&bias, &big], vec![]);
    let axes12 = g.ints(&[1, 2]);
    let bias = g.node("Unsqueeze", &[&bias, &axes12], vec![]);

    let table = g.param(
        &format!("{prefix}.rel_embeddings.weight"),
        &enc.rel_embeddings.weight,
    )?;
    let table = g.layer_norm(&table, &enc.rel_norm, eps, &format!("{prefix}.rel_norm"))?;
    let rel = Relative {
        table,
        c2p: cfg
            .c2p()
            .then(|| relative_index(g, cfg, enc.max_positions(), &seq, &batch, prefix, true)),
        p2c: cfg
            .p2c()
            .then(|| relative_index(g, cfg, enc.max_positions(), &seq, &batch, prefix, false)),
    };
    for (i, layer) in enc.layers.iter().enumerate() {
        x = block(
            g,
            layer,
            &x,
            &bias,
            &rel,
            cfg,
            &format!("{prefix}.layers.{i}"),
        )?;
    }
    Ok(x)
}

/// The values every block's position terms share.
struct Relative {
    /// LayerNorm'd relative table `[2·span, hidden]`.
    table: String,
    /// c2p columns, int64 `[batch, heads, seq, seq]`.
    c2p: Option<String>,
    /// p2c columns (key row, query column), int64 `[batch, heads, seq, seq]`.
    p2c: Option<String>,
}

/// The c2p (or p2c) column of every (row, col) pair, `[batch, heads, seq, seq]`:
/// a table over distances `row − col` gathered at `Range(seq)` differences.
fn relative_index(
    g: &mut Graph,
    cfg: &DebertaV2Config,
    max_positions: usize,
    seq: &str,
    batch: &str,
    prefix: &str,
    c2p: bool,
) -> String {
    let limit = max_positions as i64;
    let values: Vec<i64> = (1 - limit..limit)
        .map(|d| {
            if c2p {
                cfg.c2p_index(d)
            } else {
                cfg.p2c_index(d)
            }
        })
        .collect();
    let name = format!("{prefix}.{}_index", if c2p { "c2p" } else { "p2c" });
    let lookup = g.init_i64(&name, &[values.len() as i64], &values);
    let axis0 = g.ints(&[0]);
    let n = g.node("Squeeze", &[seq, &axis0], vec![]);
    let (start, step) = (g.int_scalar(0), g.int_scalar(1));
    let positions = g.node("Range", &[&start, &n, &step], vec![]);
    let axis1 = g.ints(&[1]);
    let rows = g.node("Unsqueeze", &[&positions, &axis1], vec![]);
    let cols = g.node("Unsqueeze", &[&positions, &axis0], vec![]);
    let distance = g.node("Sub", &[&rows, &cols], vec![]);
    let offset = g.int_scalar(limit - 1);
    let at = g.node("Add", &[&distance, &offset], vec![]);
    let index = g.node("Gather", &[&lookup, &at], vec![attr_i("axis", 0)]);
    let axes01 = g.ints(&[0, 1]);
    let index = g.node("Unsqueeze", &[&index, &axes01], vec![]);
    let heads = g.ints(&[cfg.num_attention_heads as i64]);
    let target = g.node(
        "Concat",
        &[batch, &heads, seq, seq],
        vec![attr_i("axis", 0)],
    );
    g.node("Expand", &[&index, &target], vec![])
}

/// A Linear layer's initializers (weight `[in, out]`, optional bias), written once
/// so a projection used twice (`share_att_key`) is one set of weights.
struct Weights {
    weight: String,
    bias: Option<String>,
}

impl Weights {
    fn of<B: Backend>(g: &mut Graph, l: &Linear<B>, name: &str) -> Result<Self, OnnxError> {
        Ok(Self {
            weight: g.param(&format!("{name}.weight"), &l.weight)?,
            bias: match &l.bias {
                Some(b) => Some(g.param(&format!("{name}.bias"), b)?),
                None => None,
            },
        })
    }

    fn apply(&self, g: &mut Graph, x: &str) -> String {
        let y = g.node("MatMul", &[x, &self.weight], vec![]);
        match &self.bias {
            Some(b) => g.node("Add", &[&y, b], vec![]),
            None => y,
        }
    }
}

fn block<B: Backend>(
    g: &mut Graph,
    l: &DebertaV2Layer<B>,
    x: &str,
    bias: &str,
    rel: &Relative,
    cfg: &DebertaV2Config,
    name: &str,
) -> Result<String, OnnxError> {
    let (h, heads) = (cfg.hidden_size as i64, cfg.num_attention_heads as i64);
    let dh = h / heads;
    let span2 = 2 * cfg.att_span() as i64;
    let query = Weights::of(g, &l.query, &format!("{name}.query"))?;
    let key = Weights::of(g, &l.key, &format!("{name}.key"))?;
    let value = Weights::of(g, &l.value, &format!("{name}.value"))?;
    let split_shape = g.ints(&[0, 0, heads, dh]);
    let split = |g: &mut Graph, t: &str, perm: &[i64]| {
        let r = g.node("Reshape", &[t, &split_shape], vec![]);
        g.node("Transpose", &[&r], vec![attr_ints("perm", perm)])
    };
    let q = query.apply(g, x);
    let k = key.apply(g, x);
    let v = value.apply(g, x);
    let qh = split(g, &q, &[0, 2, 1, 3]);
    let kt = split(g, &k, &[0, 2, 3, 1]);
    let vh = split(g, &v, &[0, 2, 1, 3]);
    let mut scores = g.node("MatMul", &[&qh, &kt], vec![]);
    // The relative table projected by `w`, as `[heads, dh, 2·span]`.
    let table_shape = g.ints(&[span2, heads, dh]);
    let project = |g: &mut Graph, w: &Weights| {
        let t = w.apply(g, &rel.table);
        let t = g.node("Reshape", &[&t, &table_shape], vec![]);
        g.node("Transpose", &[&t], vec![attr_ints("perm", &[1, 2, 0])])
    };
    if let Some(index) = &rel.c2p {
        let pos_key = match &l.pos_key {
            Some(pk) => Weights::of(g, pk, &format!("{name}.pos_key"))?,
            None => key,
        };
        let pk = project(g, &pos_key);
        let full = g.node("MatMul", &[&qh, &pk], vec![]);
        let c2p = g.node("GatherElements", &[&full, index], vec![attr_i("axis", 3)]);
        scores = g.node("Add", &[&scores, &c2p], vec![]);
    }
    if let Some(index) = &rel.p2c {
        let pos_query = match &l.pos_query {
            Some(pq) => Weights::of(g, pq, &format!("{name}.pos_query"))?,
            None => query,
        };
        let pq = project(g, &pos_query);
        let kh = split(g, &k, &[0, 2, 1, 3]);
        let full = g.node("MatMul", &[&kh, &pq], vec![]);
        let p2c = g.node("GatherElements", &[&full, index], vec![attr_i("axis", 3)]);
        let p2c = g.node("Transpose", &[&p2c], vec![attr_ints("perm", &[0, 1, 3, 2])]);
        scores = g.node("Add", &[&scores, &p2c], vec![]);
    }
    let scale = g.scalar(cfg.attention_scale() as f32);
    let scores = g.node("Mul", &[&scores, &scale], vec![]);
    let scores = g.node("Add", &[&scores, bias], vec![]);
    let probs = g.node("Softmax", &[&scores], vec![attr_i("axis", -1)]);
    let ctx = g.node("MatMul", &[&probs, &vh], vec![]);
    let ctx = g.node("Transpose", &[&ctx], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    let merge = g.ints(&[0, 0, h]);
    let ctx = g.node("Reshape", &[&ctx, &merge], vec![]);
    let attn = g.linear(&ctx, &l.attn_out, &format!("{name}.attn_out"))?;
    let res = g.node("Add", &[&attn, x], vec![]);
    let eps = cfg.layer_norm_eps;
    let x = g.layer_norm(&res, &l.attn_norm, eps, &format!("{name}.attn_norm"))?;
    let f = g.linear(&x, &l.ffn_in, &format!("{name}.ffn_in"))?;
    let f = gelu(g, &f);
    let f = g.linear(&f, &l.ffn_out, &format!("{name}.ffn_out"))?;
    let res = g.node("Add", &[&f, &x], vec![]);
    g.layer_norm(&res, &l.ffn_norm, eps, &format!("{name}.ffn_norm"))
}

#[cfg(test)]
mod tests {
    //! The graph is checked for well-formedness here (opset-17 operators only,
    //! every input defined before use, unique initializers); its values against
    //! the burn forward by ONNX Runtime when a Python with `onnx` and
    //! `onnxruntime` is at hand (`$VIGIL_PYTHON`, else `python3`; skipped with a
    //! message otherwise, a failure when `VIGIL_PYTHON` names one without them).

    use std::collections::HashSet;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use burn::tensor::{Int, Tensor, TensorData};
    use prost::Message;
    use vigil_model::backend::CpuBackend;
    use vigil_model::deberta::{DebertaV2Config, deberta_file_key, deberta_ignorable};
    use vigil_model::{KeyMap, WeightsFormat, load_strict};

    use super::*;
    use crate::onnx::graph::Dim;
    use crate::onnx::proto::{INT64, ModelProto, OperatorSetIdProto};
    use crate::onnx::{IR_VERSION, OPSET};

    type B = CpuBackend;

    /// Operators this emitter may write, all in the default domain at opset 17.
    const OPS: [&str; 20] = [
        "Add",
        "Cast",
        "Concat",
        "Erf",
        "Expand",
        "Gather",
        "GatherElements",
        "Identity",
        "LayerNormalization",
        "MatMul",
        "Mul",
        "Range",
        "Reshape",
        "Shape",
        "Slice",
        "Softmax",
        "Squeeze",
        "Sub",
        "Transpose",
        "Unsqueeze",
    ];

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/encoders/deberta-v2")
    }

    fn config(value: serde_json::Value) -> DebertaV2Config {
        DebertaV2Config::from_value(value, Path::new("config.json")).unwrap()
    }

    /// The fixture checkpoint (DeBERTa-v3's shape, trained-looking norms), and a
    /// random one with every optional part: separate position projections, c2p
    /// only, plain clamped distances, absolute positions, token types, embed_proj.
    fn encoders() -> Vec<(&'static str, DebertaV2<B>)> {
        let device = Default::default();
        let dir = fixture();
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let fixture = load_strict(
            config(serde_json::from_str(&text).unwrap()).init::<B>(&device),
            &dir.join("model.safetensors"),
            WeightsFormat::Safetensors,
            &KeyMap {
                to_file: &deberta_file_key,
                ignorable: &deberta_ignorable,
                optional_prefix: Some("deberta."),
            },
        )
        .unwrap();
        let other = config(serde_json::json!({
            "model_type": "deberta-v2", "vocab_size": 40, "hidden_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 20,
            "max_position_embeddings": 20, "relative_attention": true,
            "max_relative_positions": 5, "norm_rel_ebd": "layer_norm",
            "share_att_key": false, "pos_att_type": ["c2p"], "position_biased_input": true,
            "type_vocab_size": 2, "embedding_size": 12
        }))
        .init::<B>(&device);
        vec![("fixture", fixture), ("separate", other)]
    }

    fn graph(enc: &DebertaV2<B>) -> Vec<u8> {
        let mut g = Graph::default();
        let dims = [Dim::Named("batch"), Dim::Named("seq")];
        let ids = g.input("input_ids", INT64, &dims);
        let mask = g.input("attention_mask", INT64, &dims);
        let states = emit_states(&mut g, enc, &ids, &mask, "text.encoder").unwrap();
        let out = [
            Dim::Named("batch"),
            Dim::Named("seq"),
            Dim::Fixed(enc.hidden_size() as i64),
        ];
        g.output(&states, "states", FLOAT, &out);
        let graph = g.finish("deberta");
        let mut defined: HashSet<String> = graph.input.iter().map(|i| i.name.clone()).collect();
        let mut inits = HashSet::new();
        for init in &graph.initializer {
            assert!(inits.insert(init.name.clone()), "duplicate {}", init.name);
            assert!(init.name.starts_with("text.encoder.") || !init.name.contains('.'));
        }
        defined.extend(inits);
        for node in &graph.node {
            assert!(OPS.contains(&node.op_type.as_str()), "{}", node.op_type);
            for input in &node.input {
                assert!(
                    defined.contains(input),
                    "{} reads undefined {input}",
                    node.name
                );
            }
            defined.extend(node.output.iter().cloned());
        }
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "vigil-test".into(),
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// The Python to run ONNX Runtime with, or None after saying why.
    fn python_or_skip() -> Option<PathBuf> {
        let named = std::env::var_os("VIGIL_PYTHON");
        let py = named
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("python3"));
        let ok = Command::new(&py)
            .args(["-c", "import onnx, onnxruntime, numpy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok || named.is_none(),
            "VIGIL_PYTHON={} cannot import onnx, onnxruntime and numpy",
            py.display()
        );
        if !ok {
            eprintln!(
                "SKIPPED (ONNX Runtime parity): {} cannot import onnx, onnxruntime and numpy; \
                 set VIGIL_PYTHON to a python that has them",
                py.display()
            );
        }
        ok.then_some(py)
    }

    /// Runs each case through ONNX Runtime; prints and returns the largest
    /// difference from the burn states over real tokens.
    const CHECK: &str = r#"
import json, sys
import numpy as np, onnx, onnxruntime as ort
onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
worst = 0.0
for case in json.load(open(sys.argv[2])):
    ids = np.array(case["ids"], dtype=np.int64)
    mask = np.array(case["mask"], dtype=np.int64)
    out = session.run(["states"], {"input_ids": ids, "attention_mask": mask})[0]
    want = np.array(case["states"], dtype=np.float32).reshape(out.shape)
    worst = max(worst, float(np.abs(out - want)[mask.astype(bool)].max()))
print(worst)
"#;

    #[test]
    fn deberta_graph_matches_the_burn_forward() {
        let py = python_or_skip();
        let device = Default::default();
        for (name, enc) in encoders() {
            let bytes = graph(&enc);
            let Some(py) = &py else { continue };
            let dir = tempfile::tempdir().unwrap();
            let model = dir.path().join("deberta.onnx");
            std::fs::write(&model, bytes).unwrap();
            // Two shapes (the sequence axis is dynamic), padded rows, one full row,
            // and the longest sequence the tables cover.
            let limit = enc.max_positions();
            let mut cases = Vec::new();
            for (b, s) in [(3usize, 7usize), (2, 13), (1, limit)] {
                let ids: Vec<i64> = (0..b * s).map(|i| ((i * 7 + 3) % 37) as i64).collect();
                let mask: Vec<i64> = (0..b * s)
                    .map(|i| i64::from(i % s < s - (i / s) * 3 || i / s == 0))
                    .collect();
                let states = enc.forward(
                    Tensor::<B, 2, Int>::from_data(TensorData::new(ids.clone(), [b, s]), &device),
                    Tensor::<B, 2>::from_data(
                        TensorData::new(mask.iter().map(|&m| m as f32).collect(), [b, s]),
                        &device,
                    ),
                );
                let states = states.into_data().to_vec::<f32>().unwrap();
                let rows = |v: &[i64]| v.chunks(s).map(<[i64]>::to_vec).collect::<Vec<_>>();
                cases.push(serde_json::json!({
                    "ids": rows(&ids), "mask": rows(&mask), "states": states,
                }));
            }
            let data = dir.path().join("cases.json");
            std::fs::write(&data, serde_json::to_vec(&cases).unwrap()).unwrap();
            let out = Command::new(py)
                .args(["-c", CHECK])
                .arg(&model)
                .arg(&data)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let worst: f32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            println!("{name}: ONNX Runtime vs burn, max |diff| over real tokens = {worst:e}");
            assert!(worst <= 1e-4, "{name}: {worst}");
        }
    }
}
