//! LayerNorm as one autodiff node on the Flex backend.
//!
//! burn 0.21 has no fused LayerNorm under autodiff: `ModuleOps::layer_norm`'s
//! default builds it from nine tensor ops (mean, subtract, square, mean, add,
//! sqrt, divide, scale, shift), each a pass over the activations and a node with
//! its own backward. Here the forward is one pass per row that keeps each row's
//! mean and `sqrt(var + eps)`, and the backward is the closed form
//! `dx = (dy·γ − mean(dy·γ) − x̂·mean(dy·γ·x̂)) / sqrt(var + eps)`, written over
//! the incoming gradient when no one else holds it. Same arithmetic as burn's
//! forward (`(x − mean) / sqrt(var + eps) · γ + β`, biased variance); sums are
//! taken in 16 lanes, so results agree to float rounding.

use std::any::Any;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, ModuleOps};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use super::math::{lane_sum, multiversion};
use super::{cast, dense};
use crate::backend::{CpuAutodiff, CpuBackend};

/// `norm.forward(x)` with `norm`'s epsilon `eps` (burn keeps it private); one fused
/// node on [`CpuAutodiff`] / one pass on [`CpuBackend`] for `f32` with a bias,
/// burn's LayerNorm otherwise.
pub fn layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
    eps: f64,
) -> Tensor<B, D> {
    // Mixed precision: normalised in f32 (mean and variance of half values lose
    // digits), as PyTorch's autocast does; the affine in f32 too, then back.
    let dtype = x.dtype();
    if dtype != DType::F32 {
        let f32 = burn::tensor::FloatDType::F32;
        let x = x.cast(f32);
        let mean = x.clone().mean_dim(D - 1);
        let centred = x - mean;
        let var = centred.clone().powi_scalar(2).mean_dim(D - 1);
        let mut y = centred / var.add_scalar(eps).sqrt();
        let mut affine = [1; D];
        affine[D - 1] = norm.gamma.dims()[0];
        y = y * norm.gamma.val().cast(f32).reshape(affine);
        if let Some(beta) = &norm.beta {
            y = y + beta.val().cast(f32).reshape(affine);
        }
        return y.cast(dtype);
    }
    let any: &dyn Any = norm;
    if let Some(n) = any.downcast_ref::<LayerNorm<CpuAutodiff>>()
        && let Some(beta) = &n.beta
    {
        let x = cast::<Tensor<B, D>, Tensor<CpuAutodiff, D>>(x)
            .unwrap_or_else(|_| unreachable!("norm and x share the backend"));
        let gamma = n.gamma.val().into_primitive().tensor();
        let beta = beta.val().into_primitive().tensor();
        let y = ln_autodiff(x.into_primitive().tensor(), gamma, beta, eps);
        let y = Tensor::<CpuAutodiff, D>::from_primitive(TensorPrimitive::Float(y));
        return cast(y).unwrap_or_else(|_| unreachable!("B is CpuAutodiff"));
    }
    if let Some(n) = any.downcast_ref::<LayerNorm<CpuBackend>>()
        && let Some(beta) = &n.beta
    {
        let x = cast::<Tensor<B, D>, Tensor<CpuBackend, D>>(x)
            .unwrap_or_else(|_| unreachable!("norm and x share the backend"));
        let gamma = n.gamma.val().into_primitive().tensor();
        let beta = beta.val().into_primitive().tensor();
        let x = x.into_primitive().tensor();
        let y = match forward(&x, &gamma, &beta, eps) {
            Some((y, _)) => y,
            None => <CpuBackend as ModuleOps<CpuBackend>>::layer_norm(x, gamma, Some(beta), eps),
        };
        let y = Tensor::<CpuBackend, D>::from_primitive(TensorPrimitive::Float(y));
        return cast(y).unwrap_or_else(|_| unreachable!("B is CpuBackend"));
    }
    norm.forward(x)
}

/// What the backward needs: the input, γ, and per row `(mean, sqrt(var + eps))`.
#[derive(Debug, Clone)]
struct State {
    x: FlexTensor,
    gamma: FlexTensor,
    stats: Arc<Vec<[f32; 2]>>,
}

#[derive(Debug)]
struct LayerNormOp;

impl Backward<CpuBackend, 3> for LayerNormOp {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pg, pb] = ops.parents;
        let dy = grads.consume::<CpuBackend>(&ops.node);
        let (dx, dgamma, dbeta) = backward(ops.state, dy);
        if let Some(node) = px {
            grads.register::<CpuBackend>(node.id, dx);
        }
        if let Some(node) = pg {
            grads.register::<CpuBackend>(node.id, dgamma);
        }
        if let Some(node) = pb {
            grads.register::<CpuBackend>(node.id, dbeta);
        }
    }
}

fn ln_autodiff(
    x: FloatTensor<CpuAutodiff>,
    gamma: FloatTensor<CpuAutodiff>,
    beta: FloatTensor<CpuAutodiff>,
    eps: f64,
) -> FloatTensor<CpuAutodiff> {
    let Some((y, stats)) = forward(&x.primitive, &gamma.primitive, &beta.primitive, eps) else {
        // Not f32: burn's composite LayerNorm on the autodiff tensors.
        return <CpuAutodiff as ModuleOps<CpuAutodiff>>::layer_norm(x, gamma, Some(beta), eps);
    };
    match LayerNormOp
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            State {
                x: x.primitive,
                gamma: gamma.primitive,
                stats: Arc::new(stats),
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The forward on rows of the last dimension; `None` for non-f32 tensors.
fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    eps: f64,
) -> Option<(FlexTensor, Vec<[f32; 2]>)> {
    if [x.dtype(), gamma.dtype(), beta.dtype()]
        .iter()
        .any(|d| *d != DType::F32)
    {
        return None;
    }
    let shape = x.layout().shape().clone();
    let x = dense(x.clone());
    let (gamma, beta) = (dense(gamma.clone()), dense(beta.clone()));
    let xs: &[f32] = x.storage();
    let d = gamma.layout().num_elements();
    let mut out = vec![0.0f32; xs.len()];
    let mut stats = vec![[0.0f32; 2]; xs.len() / d];
    forward_rows(
        xs,
        gamma.storage(),
        beta.storage(),
        eps as f32,
        &mut out,
        &mut stats,
    );
    Some((FlexTensor::from_data(TensorData::new(out, shape)), stats))
}

fn backward(state: State, dy: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = dense(state.x);
    let gamma = dense(state.gamma);
    let d = gamma.layout().num_elements();
    let mut dy = dense(dy);
    let mut dgamma = vec![0.0f32; d];
    let mut dbeta = vec![0.0f32; d];
    let xs: &[f32] = x.storage();
    let dx = match dy.try_storage_mut::<f32>() {
        Some(g) => {
            backward_rows(
                xs,
                gamma.storage(),
                &state.stats,
                g,
                &mut dgamma,
                &mut dbeta,
            );
            dy
        }
        None => {
            let mut g = dy.storage::<f32>().to_vec();
            backward_rows(
                xs,
                gamma.storage(),
                &state.stats,
                &mut g,
                &mut dgamma,
                &mut dbeta,
            );
            FlexTensor::from_data(TensorData::new(g, x.layout().shape().clone()))
        }
    };
    let vec1 = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [d]));
    (dx, vec1(dgamma), vec1(dbeta))
}

multiversion!(
    /// LayerNorm of each row of `x` (row width `gamma.len()`), with per-row stats.
    forward_rows(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        out: &mut [f32],
        stats: &mut [[f32; 2]]
    ) {
        let d = gamma.len();
        for ((row, o), st) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).zip(stats) {
            let mean = lane_sum(d, |i| row[i]) / d as f32;
            let var = lane_sum(d, |i| (row[i] - mean) * (row[i] - mean)) / d as f32;
            let denom = (var + eps).sqrt();
            for i in 0..d {
                o[i] = (row[i] - mean) / denom * gamma[i] + beta[i];
            }
            *st = [mean, denom];
        }
    }
);

multiversion!(
    /// Backward of [`forward_rows`]: `g` holds `dy` and receives `dx`; `dgamma` and
    /// `dbeta` accumulate over rows.
    backward_rows(
        x: &[f32],
        gamma: &[f32],
        stats: &[[f32; 2]],
        g: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32]
    ) {
        let d = gamma.len();
        for ((row, gr), &[mean, denom]) in x.chunks_exact(d).zip(g.chunks_exact_mut(d)).zip(stats) {
            let xhat = |i: usize| (row[i] - mean) / denom;
            for i in 0..d {
                dgamma[i] += gr[i] * xhat(i);
                dbeta[i] += gr[i];
            }
            let a = lane_sum(d, |i| gr[i] * gamma[i]) / d as f32;
            let b = lane_sum(d, |i| gr[i] * gamma[i] * xhat(i)) / d as f32;
            for i in 0..d {
                gr[i] = (gr[i] * gamma[i] - a - xhat(i) * b) / denom;
            }
        }
    }
);

#[cfg(test)]
mod tests {
    use burn::nn::LayerNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn forward_and_gradients_match_burn() {
        let device = Default::default();
        let d = 53;
        let data =
            Tensor::<CpuBackend, 3>::random([3, 37, d], Distribution::Normal(0.5, 2.0), &device)
                .into_data();
        let weights =
            Tensor::<CpuBackend, 3>::random([3, 37, d], Distribution::Default, &device).into_data();
        let affine =
            Tensor::<CpuBackend, 1>::random([2 * d], Distribution::Normal(1.0, 0.3), &device)
                .into_data()
                .to_vec::<f32>()
                .expect("f32");
        let norm = || {
            let mut n = LayerNormConfig::new(d)
                .with_epsilon(1e-12)
                .init::<CpuAutodiff>(&device);
            n.gamma = n.gamma.map(|_| {
                Tensor::from_data(TensorData::new(affine[..d].to_vec(), [d]), &device)
                    .require_grad()
            });
            n.beta = n.beta.map(|b| {
                b.map(|_| {
                    Tensor::from_data(TensorData::new(affine[d..].to_vec(), [d]), &device)
                        .require_grad()
                })
            });
            n
        };
        let run = |fast: bool| {
            let n = norm();
            let x = Tensor::<CpuAutodiff, 3>::from_data(data.clone(), &device).require_grad();
            let w = Tensor::<CpuAutodiff, 3>::from_data(weights.clone(), &device);
            let y = if fast {
                layer_norm(&n, x.clone(), 1e-12)
            } else {
                n.forward(x.clone())
            };
            let grads = (y.clone() * w).sum().backward();
            let beta = n.beta.as_ref().expect("bias").val();
            [
                y.into_data(),
                x.grad(&grads).expect("dx").into_data(),
                n.gamma.val().grad(&grads).expect("dgamma").into_data(),
                beta.grad(&grads).expect("dbeta").into_data(),
            ]
        };
        let (fast, burn) = (run(true), run(false));
        for (name, (f, b)) in ["y", "dx", "dgamma", "dbeta"]
            .iter()
            .zip(fast.iter().zip(&burn))
        {
            let tol = if *name == "y" || *name == "dx" {
                2e-5
            } else {
                2e-4
            };
            f.assert_approx_eq::<f32>(b, Tolerance::absolute(tol));
        }
        assert_eq!(fast[0].shape, burn[0].shape);
        // Inference (no autodiff) takes the one-pass forward.
        let plain = LayerNormConfig::new(d)
            .with_epsilon(1e-12)
            .init::<CpuBackend>(&device);
        let x = Tensor::<CpuBackend, 3>::from_data(data.clone(), &device);
        layer_norm(&plain, x.clone(), 1e-12)
            .into_data()
            .assert_approx_eq::<f32>(&plain.forward(x).into_data(), Tolerance::absolute(2e-5));
    }
}
