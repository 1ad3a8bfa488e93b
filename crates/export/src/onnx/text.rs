//! The text tower as ONNX: BERT-family embeddings (RoBERTa's position offset,
//! DistilBERT without token types), post-LayerNorm blocks with the additive padding
//! mask, exact-erf GELU, then mean or `[CLS]` pooling — the arithmetic of
//! `model::bert` and `model::text_tower`, op for op.

use burn::tensor::backend::Backend;

use super::OnnxError;
use super::graph::{Graph, attr_i, attr_ints, floats};
use super::proto::FLOAT;
use vigil_config::Pooling;
use vigil_model::{Bert, BertLayer, TextBackbone, TextTower};

/// Pooled text vectors `[batch, hidden]` from `ids` and `mask` (int64 `[batch, seq]`).
pub fn emit<B: Backend>(
    g: &mut Graph,
    tower: &TextTower<B>,
    ids: &str,
    mask: &str,
) -> Result<String, OnnxError> {
    if let TextBackbone::Joint(enc) = tower.backbone() {
        // CLIP and SigLIP pool and project themselves; SigLIP attends to its
        // padding as trained (the mask becomes all ones, as `TextTower::forward`).
        let mask = if tower.pads_to_max_length() {
            let zeros = g.node("Sub", &[mask, mask], vec![]);
            let one = g.ints(&[1]);
            g.node("Add", &[&zeros, &one], vec![])
        } else {
            mask.to_string()
        };
        return super::vision::emit_text(g, enc, ids, &mask, "text.encoder");
    }
    let maskf = g.node("Cast", &[mask], vec![attr_i("to", i64::from(FLOAT))]);
    let x = match tower.backbone() {
        TextBackbone::Bert(enc) => bert_states(g, enc, ids, &maskf)?,
        TextBackbone::DebertaV2(enc) => {
            super::deberta::emit_states(g, enc, ids, mask, "text.encoder")?
        }
        TextBackbone::Joint(_) => unreachable!("returned above"),
    };
    Ok(pool(g, &x, &maskf, tower.pooling()))
}

/// Mean or `[CLS]` pooling of token states `x` `[batch, seq, hidden]` with the
/// float mask.
fn pool(g: &mut Graph, x: &str, maskf: &str, pooling: Pooling) -> String {
    match pooling {
        Pooling::Cls => {
            let first = g.int_scalar(0);
            g.node("Gather", &[x, &first], vec![attr_i("axis", 1)])
        }
        Pooling::Mean => {
            let axis = g.ints(&[2]);
            let m = g.node("Unsqueeze", &[maskf, &axis], vec![]);
            let masked = g.node("Mul", &[x, &m], vec![]);
            let seq_axis = g.ints(&[1]);
            let summed = g.node(
                "ReduceSum",
                &[&masked, &seq_axis],
                vec![attr_i("keepdims", 0)],
            );
            let count = g.node("ReduceSum", &[&m, &seq_axis], vec![attr_i("keepdims", 0)]);
            let floor = g.scalar(1e-9);
            let count = g.node("Max", &[&count, &floor], vec![]);
            g.node("Div", &[&summed, &count], vec![])
        }
    }
}

/// Token states `[batch, seq, hidden]` of a BERT-family encoder.
fn bert_states<B: Backend>(
    g: &mut Graph,
    enc: &Bert<B>,
    ids: &str,
    maskf: &str,
) -> Result<String, OnnxError> {
    let cfg = enc.config().clone();
    let eps = cfg.layer_norm_eps;
    let e = &enc.embeddings;
    let p = "text.encoder.embeddings";
    let word = g.param(
        &format!("{p}.word_embeddings.weight"),
        &e.word_embeddings.weight,
    )?;
    let x = g.node("Gather", &[&word, ids], vec![attr_i("axis", 0)]);
    // Positions offset..offset + seq (RoBERTa's offset is `padding_idx + 1`): rows
    // of the table.
    let shape = g.node("Shape", &[ids], vec![]);
    let (one, two, zero) = (g.ints(&[1]), g.ints(&[2]), g.ints(&[0]));
    let seq = g.node("Slice", &[&shape, &one, &two], vec![]);
    let table = g.param(
        &format!("{p}.position_embeddings.weight"),
        &e.position_embeddings.weight,
    )?;
    let offset = g.ints(&[cfg.position_offset as i64]);
    let end = g.node("Add", &[&seq, &offset], vec![]);
    let pos = g.node("Slice", &[&table, &offset, &end, &zero], vec![]);
    let mut x = g.node("Add", &[&x, &pos], vec![]);
    // Token type 0 everywhere: its row of the table (DistilBERT has no table).
    if let Some(table) = &e.token_type_embeddings {
        let types = floats(table.weight.val(), "token_type_embeddings")?;
        let h = cfg.hidden_size;
        let type0 = g.init_f32(
            &format!("{p}.token_type_embeddings.weight[0]"),
            &[h as i64],
            &types[..h],
        );
        x = g.node("Add", &[&x, &type0], vec![]);
    }
    let mut x = g.layer_norm(&x, &e.layer_norm, eps, &format!("{p}.layer_norm"))?;
    // (mask - 1) · 1e4 as `[batch, 1, 1, seq]`, as `Bert::forward`.
    let one_f = g.scalar(1.0);
    let big = g.scalar(1e4);
    let bias = g.node("Sub", &[maskf, &one_f], vec![]);
    let bias = g.node("Mul", &[&bias, &big], vec![]);
    let axes = g.ints(&[1, 2]);
    let bias = g.node("Unsqueeze", &[&bias, &axes], vec![]);
    for (i, layer) in enc.layers.iter().enumerate() {
        x = block(
            g,
            layer,
            &x,
            &bias,
            &cfg,
            &format!("text.encoder.layers.{i}"),
        )?;
    }
    Ok(x)
}

/// Exact GELU, `0.5 · x · (1 + erf(x / √2))` (BERT's, DeBERTa's, ViT's).
pub(super) fn gelu(g: &mut Graph, x: &str) -> String {
    let r = g.scalar(std::f32::consts::FRAC_1_SQRT_2);
    let (one, half) = (g.scalar(1.0), g.scalar(0.5));
    let s = g.node("Mul", &[x, &r], vec![]);
    let e = g.node("Erf", &[&s], vec![]);
    let e = g.node("Add", &[&e, &one], vec![]);
    let y = g.node("Mul", &[x, &e], vec![]);
    g.node("Mul", &[&y, &half], vec![])
}

fn block<B: Backend>(
    g: &mut Graph,
    l: &BertLayer<B>,
    x: &str,
    bias: &str,
    cfg: &vigil_model::BertConfig,
    name: &str,
) -> Result<String, OnnxError> {
    let (h, heads) = (cfg.hidden_size as i64, cfg.num_attention_heads as i64);
    let dh = h / heads;
    let split_shape = g.ints(&[0, 0, heads, dh]);
    let split = |g: &mut Graph, t: &str, perm: &[i64]| {
        let r = g.node("Reshape", &[t, &split_shape], vec![]);
        g.node("Transpose", &[&r], vec![attr_ints("perm", perm)])
    };
    let q = g.linear(x, &l.query, &format!("{name}.query"))?;
    let k = g.linear(x, &l.key, &format!("{name}.key"))?;
    let v = g.linear(x, &l.value, &format!("{name}.value"))?;
    let q = split(g, &q, &[0, 2, 1, 3]);
    let k = split(g, &k, &[0, 2, 3, 1]);
    let v = split(g, &v, &[0, 2, 1, 3]);
    let scores = g.node("MatMul", &[&q, &k], vec![]);
    let scale = g.scalar((1.0 / (dh as f64).sqrt()) as f32);
    let scores = g.node("Mul", &[&scores, &scale], vec![]);
    let scores = g.node("Add", &[&scores, bias], vec![]);
    let probs = g.node("Softmax", &[&scores], vec![attr_i("axis", -1)]);
    let ctx = g.node("MatMul", &[&probs, &v], vec![]);
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
