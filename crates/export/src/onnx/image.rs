//! The image towers as ONNX: the scratch CNN (stride-2 convolutions, ReLU,
//! global mean) and EfficientNet-B0 (BatchNorm folded into a per-channel scale
//! and shift computed exactly as `FrozenBatchNorm::forward` does, SiLU,
//! squeeze-and-excitation, residuals).

use burn::tensor::backend::Backend;

use super::OnnxError;
use super::graph::{Graph, attr_i, attr_ints, floats};
use vigil_model::{ConvBn, EfficientNetB0, ImageTower, MbConv, ScratchCnn};

/// Pooled image features `[batch, dim]` from normalised `pixels` `[batch, 3, S, S]`.
pub fn emit<B: Backend>(
    g: &mut Graph,
    tower: &ImageTower<B>,
    pixels: &str,
) -> Result<String, OnnxError> {
    match tower {
        ImageTower::Cnn(m) => cnn(g, m, pixels),
        ImageTower::EfficientNet(m) => efficientnet(g, m, pixels),
        ImageTower::Vit(m) => super::vision::emit_image(g, m, pixels, "image"),
    }
}

/// Mean over the spatial axes, `[b, c, h, w]` → `[b, c]` (or `[b, c, 1, 1]` when `keep`).
fn spatial_mean(g: &mut Graph, x: &str, keep: bool) -> String {
    // Width first, then height: the order of `mean_dim(3).mean_dim(2)`.
    let w = g.node(
        "ReduceMean",
        &[x],
        vec![attr_ints("axes", &[3]), attr_i("keepdims", 1)],
    );
    let hw = g.node(
        "ReduceMean",
        &[&w],
        vec![attr_ints("axes", &[2]), attr_i("keepdims", 1)],
    );
    if keep {
        hw
    } else {
        g.node("Flatten", &[&hw], vec![attr_i("axis", 1)])
    }
}

fn cnn<B: Backend>(g: &mut Graph, m: &ScratchCnn<B>, pixels: &str) -> Result<String, OnnxError> {
    let mut x = pixels.to_string();
    for (i, conv) in m.blocks.iter().enumerate() {
        let y = g.conv(&x, conv, &format!("image.blocks.{i}"))?;
        x = g.node("Relu", &[&y], vec![]);
    }
    Ok(spatial_mean(g, &x, false))
}

fn conv_bn<B: Backend>(
    g: &mut Graph,
    c: &ConvBn<B>,
    x: &str,
    name: &str,
) -> Result<String, OnnxError> {
    let y = g.conv(x, &c.conv, &format!("{name}.conv"))?;
    // scale = γ / sqrt(var + eps), shift = β − mean·scale, in f32 like the model.
    let eps = c.bn.eps();
    let gamma = floats(c.bn.gamma.val(), name)?;
    let beta = floats(c.bn.beta.val(), name)?;
    let mean = floats(c.bn.running_mean.value(), name)?;
    let var = floats(c.bn.running_var.value(), name)?;
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps as f32).sqrt())
        .collect();
    let shift: Vec<f32> = beta
        .iter()
        .zip(mean.iter().zip(&scale))
        .map(|(b, (m, s))| b - m * s)
        .collect();
    let n = scale.len() as i64;
    let s = g.init_f32(&format!("{name}.bn.scale"), &[1, n, 1, 1], &scale);
    let t = g.init_f32(&format!("{name}.bn.shift"), &[1, n, 1, 1], &shift);
    let y = g.node("Mul", &[&y, &s], vec![]);
    let y = g.node("Add", &[&y, &t], vec![]);
    Ok(if c.activated() { g.silu(&y) } else { y })
}

fn mbconv<B: Backend>(
    g: &mut Graph,
    b: &MbConv<B>,
    x: &str,
    name: &str,
) -> Result<String, OnnxError> {
    let mut y = x.to_string();
    if let Some(e) = &b.expand {
        y = conv_bn(g, e, &y, &format!("{name}.expand"))?;
    }
    let y = conv_bn(g, &b.depthwise, &y, &format!("{name}.depthwise"))?;
    // Squeeze-and-excitation.
    let s = spatial_mean(g, &y, true);
    let s = g.conv(&s, &b.se.fc1, &format!("{name}.se.fc1"))?;
    let s = g.silu(&s);
    let s = g.conv(&s, &b.se.fc2, &format!("{name}.se.fc2"))?;
    let s = g.node("Sigmoid", &[&s], vec![]);
    let y = g.node("Mul", &[&y, &s], vec![]);
    let y = conv_bn(g, &b.project, &y, &format!("{name}.project"))?;
    Ok(if b.residual() {
        g.node("Add", &[&y, x], vec![])
    } else {
        y
    })
}

fn efficientnet<B: Backend>(
    g: &mut Graph,
    m: &EfficientNetB0<B>,
    pixels: &str,
) -> Result<String, OnnxError> {
    let mut x = conv_bn(g, &m.stem, pixels, "image.stem")?;
    for (s, stage) in m.stages.iter().enumerate() {
        for (j, block) in stage.iter().enumerate() {
            x = mbconv(g, block, &x, &format!("image.stages.{s}.{j}"))?;
        }
    }
    let x = conv_bn(g, &m.head, &x, "image.head")?;
    Ok(spatial_mean(g, &x, false))
}
