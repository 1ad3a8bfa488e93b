//! Attention probabilities `softmax(scores · scale + mask_bias)` as one autodiff
//! node on the Flex backend.
//!
//! Written with tensor ops this is a scalar multiply, a broadcast add and burn's
//! softmax (max, subtract, exp, sum, divide), each a pass over the
//! `[batch, heads, seq, seq]` scores and a node whose backward is more passes.
//! Here the forward is one pass per row and the backward is
//! `dx = scale · p · (dy − Σ dy·p)`, written over the incoming gradient. The
//! arithmetic is softmax's own (`exp(z − max) / Σ exp(z − max)`); `exp` is
//! [`math::exp_neg`](super::math::exp_neg) (2 ulp), so results agree with burn's
//! to float rounding, and masked positions are exactly 0 as before.

use std::any::Any;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use super::math::{exp_neg, lane_max, lane_sum, multiversion};
use super::{cast, dense};
use crate::backend::{CpuAutodiff, CpuBackend};

/// `softmax(scores · scale + mask_bias, 3)` for `scores` `[b, heads, q, k]` and a
/// constant `mask_bias` `[b, 1, 1, k]` (no gradient flows to it).
pub fn attention_probs<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    mask_bias: Tensor<B, 4>,
) -> Tensor<B, 4> {
    // Mixed precision: the softmax runs in f32, as PyTorch's autocast does (half
    // exponentials and sums lose the small probabilities); the fused kernel takes it.
    let dtype = scores.dtype();
    if dtype != DType::F32 {
        let f32 = burn::tensor::FloatDType::F32;
        return attention_probs(scores.cast(f32), scale, mask_bias.cast(f32)).cast(dtype);
    }
    let any: &dyn Any = &scores;
    if any.is::<Tensor<CpuAutodiff, 4>>() {
        let s = prim::<B, CpuAutodiff>(scores);
        let m = prim::<B, CpuAutodiff>(mask_bias);
        if m.node.requirement.is_none()
            && let Some(p) = forward(&s.primitive, scale, &m.primitive)
        {
            let p = match AttentionSoftmax
                .prepare::<NoCheckpointing>([s.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((p.clone(), scale as f32), p),
                OpsKind::UnTracked(prep) => prep.finish(p),
            };
            return wrap::<B, CpuAutodiff>(p);
        }
        return reference(wrap::<B, CpuAutodiff>(s), scale, wrap::<B, CpuAutodiff>(m));
    }
    if any.is::<Tensor<CpuBackend, 4>>() {
        let s = prim::<B, CpuBackend>(scores);
        let m = prim::<B, CpuBackend>(mask_bias);
        return match forward(&s, scale, &m) {
            Some(p) => wrap::<B, CpuBackend>(p),
            None => reference(wrap::<B, CpuBackend>(s), scale, wrap::<B, CpuBackend>(m)),
        };
    }
    reference(scores, scale, mask_bias)
}

/// burn's ops, for every other backend and dtype.
fn reference<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    mask_bias: Tensor<B, 4>,
) -> Tensor<B, 4> {
    softmax(scores.mul_scalar(scale) + mask_bias, 3)
}

/// The primitive of `t`, whose backend `B` is `C`.
fn prim<B: Backend, C: Backend>(t: Tensor<B, 4>) -> FloatTensor<C> {
    cast::<Tensor<B, 4>, Tensor<C, 4>>(t)
        .unwrap_or_else(|_| unreachable!("B is C"))
        .into_primitive()
        .tensor()
}

/// A primitive of `C` as a `Tensor<B, 4>` (`B` is `C`).
fn wrap<B: Backend, C: Backend>(t: FloatTensor<C>) -> Tensor<B, 4> {
    cast(Tensor::<C, 4>::from_primitive(TensorPrimitive::Float(t)))
        .unwrap_or_else(|_| unreachable!("B is C"))
}

#[derive(Debug)]
struct AttentionSoftmax;

impl Backward<CpuBackend, 1> for AttentionSoftmax {
    /// The output probabilities and the scale.
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<(FlexTensor, f32), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (p, scale) = ops.state;
        unary::<CpuBackend, _>(ops.parents, ops.node, grads, |dy| backward(p, scale, dy));
    }
}

/// The forward; `None` unless f32 with shapes `[b, h, q, k]` and `[b, 1, 1, k]`.
fn forward(scores: &FlexTensor, scale: f64, mask: &FlexTensor) -> Option<FlexTensor> {
    let shape = scores.layout().shape().clone();
    let mshape = mask.layout().shape();
    if scores.dtype() != DType::F32
        || mask.dtype() != DType::F32
        || shape.num_dims() != 4
        || mshape.num_dims() != 4
        || mshape[0] != shape[0]
        || mshape[1] != 1
        || mshape[2] != 1
        || mshape[3] != shape[3]
    {
        return None;
    }
    let s = dense(scores.clone());
    let m = dense(mask.clone());
    let mut out = vec![0.0f32; shape.num_elements()];
    forward_rows(
        s.storage(),
        m.storage(),
        shape[3],
        shape[1] * shape[2],
        scale as f32,
        &mut out,
    );
    Some(FlexTensor::from_data(TensorData::new(out, shape)))
}

fn backward(p: FlexTensor, scale: f32, dy: FlexTensor) -> FlexTensor {
    let p = dense(p);
    let k = p.layout().shape()[3];
    let mut dy = dense(dy);
    if let Some(g) = dy.try_storage_mut::<f32>() {
        backward_rows(p.storage(), k, scale, g);
        return dy;
    }
    let mut g = dy.storage::<f32>().to_vec();
    backward_rows(p.storage(), k, scale, &mut g);
    FlexTensor::from_data(TensorData::new(g, p.layout().shape().clone()))
}

multiversion!(
    /// Softmax of each `k`-wide row of `x · scale + mask[row / rows_per_batch]`.
    forward_rows(
        x: &[f32],
        mask: &[f32],
        k: usize,
        rows_per_batch: usize,
        scale: f32,
        out: &mut [f32]
    ) {
        for (r, (row, o)) in x.chunks_exact(k).zip(out.chunks_exact_mut(k)).enumerate() {
            let b = r / rows_per_batch;
            let m = &mask[b * k..(b + 1) * k];
            for j in 0..k {
                o[j] = row[j] * scale + m[j];
            }
            let max = lane_max(o);
            for v in o.iter_mut() {
                *v = exp_neg(*v - max);
            }
            let sum = lane_sum(k, |j| o[j]);
            for v in o.iter_mut() {
                *v /= sum;
            }
        }
    }
);

multiversion!(
    /// `g ← scale · p · (g − Σ g·p)` on each `k`-wide row.
    backward_rows(p: &[f32], k: usize, scale: f32, g: &mut [f32]) {
        for (pr, gr) in p.chunks_exact(k).zip(g.chunks_exact_mut(k)) {
            let dot = lane_sum(k, |j| pr[j] * gr[j]);
            for j in 0..k {
                gr[j] = scale * pr[j] * (gr[j] - dot);
            }
        }
    }
);

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn forward_and_gradient_match_burn() {
        let device = Default::default();
        let (b, h, s) = (3, 4, 19);
        let data =
            Tensor::<CpuBackend, 4>::random([b, h, s, s], Distribution::Normal(0.0, 4.0), &device)
                .into_data();
        let weights = Tensor::<CpuBackend, 4>::random([b, h, s, s], Distribution::Default, &device)
            .into_data();
        let mask: Vec<f32> = (0..b * s)
            .map(|i| if i % s >= s - 3 * (i / s) { -1e4 } else { 0.0 })
            .collect();
        let mask = TensorData::new(mask, [b, 1, 1, s]);
        let run = |fast: bool| {
            let x = Tensor::<CpuAutodiff, 4>::from_data(data.clone(), &device).require_grad();
            let m = Tensor::<CpuAutodiff, 4>::from_data(mask.clone(), &device);
            let w = Tensor::<CpuAutodiff, 4>::from_data(weights.clone(), &device);
            let p = if fast {
                attention_probs(x.clone(), 0.125, m)
            } else {
                reference(x.clone(), 0.125, m)
            };
            let grads = (p.clone() * w).sum().backward();
            (p.into_data(), x.grad(&grads).expect("grad").into_data())
        };
        let ((p_fast, g_fast), (p_burn, g_burn)) = (run(true), run(false));
        p_fast.assert_approx_eq::<f32>(&p_burn, Tolerance::absolute(1e-6));
        g_fast.assert_approx_eq::<f32>(&g_burn, Tolerance::absolute(1e-6));
        // Masked keys get exactly zero probability.
        let p = p_fast.to_vec::<f32>().expect("f32");
        assert_eq!(p[(2 * h * s) * s + s - 1], 0.0);
        let plain = attention_probs(
            Tensor::<CpuBackend, 4>::from_data(data.clone(), &device),
            0.125,
            Tensor::<CpuBackend, 4>::from_data(mask.clone(), &device),
        );
        plain
            .into_data()
            .assert_approx_eq::<f32>(&p_fast, Tolerance::absolute(0.0));
    }
}
