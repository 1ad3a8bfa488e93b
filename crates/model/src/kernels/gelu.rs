//! Exact (erf) GELU and CLIP's quick GELU (`x·σ(1.702x)`) on tensors: burn-flex's
//! own kernels compute `libm::erff` (or, for the quick form through burn's
//! `sigmoid`, `expf` and three more tensor ops) per element; these run
//! [`math`](super::math)'s vectorised forms and, under autodiff, register a
//! backward that scales the incoming gradient in place.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ActivationOps, FloatTensor};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use super::{cast, dense, math};
use crate::backend::{CpuAutodiff, CpuBackend};

/// Which GELU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `0.5·x·(1 + erf(x/√2))`.
    Exact,
    /// `x·σ(1.702·x)`.
    Quick,
}

/// `0.5·x·(1 + erf(x/√2))`; the fast path on [`CpuBackend`] and [`CpuAutodiff`],
/// burn's `gelu` on any other backend.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    activate(x, Kind::Exact)
}

/// CLIP's quick GELU, `x·σ(1.702·x)`; the fast path on [`CpuBackend`] and
/// [`CpuAutodiff`], burn's `sigmoid` arithmetic on any other backend.
pub fn quick_gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    activate(x, Kind::Quick)
}

fn activate<B: Backend, const D: usize>(x: Tensor<B, D>, kind: Kind) -> Tensor<B, D> {
    let x = match cast::<Tensor<B, D>, Tensor<CpuAutodiff, D>>(x) {
        Ok(x) => {
            let y = Tensor::<CpuAutodiff, D>::from_primitive(TensorPrimitive::Float(
                gelu_autodiff(x.into_primitive().tensor(), kind),
            ));
            return cast(y).unwrap_or_else(|_| unreachable!("B is CpuAutodiff"));
        }
        Err(x) => x,
    };
    match cast::<Tensor<B, D>, Tensor<CpuBackend, D>>(x) {
        Ok(x) => {
            let y = Tensor::<CpuBackend, D>::from_primitive(TensorPrimitive::Float(gelu_flex(
                x.into_primitive().tensor(),
                kind,
            )));
            cast(y).unwrap_or_else(|_| unreachable!("B is CpuBackend"))
        }
        Err(x) => match kind {
            Kind::Exact => burn::tensor::activation::gelu(x),
            Kind::Quick => x.clone() * burn::tensor::activation::sigmoid(x.mul_scalar(1.702)),
        },
    }
}

#[derive(Debug)]
struct Gelu(Kind);

impl Backward<CpuBackend, 1> for Gelu {
    /// The forward input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        let kind = self.0;
        unary::<CpuBackend, _>(ops.parents, ops.node, grads, |grad| {
            gelu_backward_flex(x, grad, kind)
        });
    }
}

fn gelu_autodiff(x: FloatTensor<CpuAutodiff>, kind: Kind) -> FloatTensor<CpuAutodiff> {
    match Gelu(kind)
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(x.primitive.clone(), gelu_flex(x.primitive, kind)),
        OpsKind::UnTracked(prep) => prep.finish(gelu_flex(x.primitive, kind)),
    }
}

fn gelu_flex(x: FlexTensor, kind: Kind) -> FlexTensor {
    if x.dtype() != DType::F32 {
        return match kind {
            Kind::Exact => <CpuBackend as ActivationOps<CpuBackend>>::gelu(x),
            Kind::Quick => {
                let t = Tensor::<CpuBackend, 1>::from_primitive(TensorPrimitive::Float(x));
                (t.clone() * burn::tensor::activation::sigmoid(t.mul_scalar(1.702)))
                    .into_primitive()
                    .tensor()
            }
        };
    }
    let x = dense(x);
    let src: &[f32] = x.storage();
    let mut out = vec![0.0f32; src.len()];
    match kind {
        Kind::Exact => math::gelu_slice(src, &mut out),
        Kind::Quick => math::quick_gelu_slice(src, &mut out),
    }
    FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
}

fn gelu_backward_flex(x: FlexTensor, grad: FlexTensor, kind: Kind) -> FlexTensor {
    if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return match kind {
            Kind::Exact => <CpuBackend as ActivationOps<CpuBackend>>::gelu_backward(x, grad),
            Kind::Quick => {
                let t = |p| Tensor::<CpuBackend, 1>::from_primitive(TensorPrimitive::Float(p));
                let (x, grad) = (t(x), t(grad));
                let s = burn::tensor::activation::sigmoid(x.clone().mul_scalar(1.702));
                let d = s.clone() + x.mul_scalar(1.702) * s.clone() * (s.neg() + 1.0);
                (grad * d).into_primitive().tensor()
            }
        };
    }
    let x = dense(x);
    let mut grad = dense(grad);
    let xs: &[f32] = x.storage();
    if let Some(g) = grad.try_storage_mut::<f32>() {
        match kind {
            Kind::Exact => math::gelu_backward_inplace(xs, g),
            Kind::Quick => math::quick_gelu_backward_inplace(xs, g),
        }
        return grad;
    }
    let mut out = vec![0.0f32; xs.len()];
    match kind {
        Kind::Exact => math::gelu_backward_slice(xs, grad.storage(), &mut out),
        Kind::Quick => math::quick_gelu_backward_slice(xs, grad.storage(), &mut out),
    }
    FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn forward_and_gradient_match_burn() {
        let device = Default::default();
        let data =
            Tensor::<CpuBackend, 2>::random([37, 53], Distribution::Normal(0.0, 3.0), &device)
                .into_data();
        let weights =
            Tensor::<CpuBackend, 2>::random([37, 53], Distribution::Default, &device).into_data();
        let run_fast = || {
            let x = Tensor::<CpuAutodiff, 2>::from_data(data.clone(), &device).require_grad();
            let w = Tensor::<CpuAutodiff, 2>::from_data(weights.clone(), &device);
            let y = gelu(x.clone());
            let grads = (y.clone() * w).sum().backward();
            (y.into_data(), x.grad(&grads).expect("grad").into_data())
        };
        let run_burn = || {
            let x = Tensor::<CpuAutodiff, 2>::from_data(data.clone(), &device).require_grad();
            let w = Tensor::<CpuAutodiff, 2>::from_data(weights.clone(), &device);
            let y = burn::tensor::activation::gelu(x.clone());
            let grads = (y.clone() * w).sum().backward();
            (y.into_data(), x.grad(&grads).expect("grad").into_data())
        };
        let (y_fast, g_fast) = run_fast();
        let (y_burn, g_burn) = run_burn();
        y_fast.assert_approx_eq::<f32>(&y_burn, Tolerance::absolute(1e-6));
        g_fast.assert_approx_eq::<f32>(&g_burn, Tolerance::absolute(1e-6));
        let inference = gelu(Tensor::<CpuBackend, 2>::from_data(data.clone(), &device));
        inference
            .into_data()
            .assert_approx_eq::<f32>(&y_fast, Tolerance::absolute(0.0));
    }

    #[test]
    fn quick_gelu_forward_and_gradient_match_burns_sigmoid_form() {
        let device = Default::default();
        let data =
            Tensor::<CpuBackend, 2>::random([41, 29], Distribution::Normal(0.0, 6.0), &device)
                .into_data();
        let weights =
            Tensor::<CpuBackend, 2>::random([41, 29], Distribution::Default, &device).into_data();
        let run = |fast: bool| {
            let x = Tensor::<CpuAutodiff, 2>::from_data(data.clone(), &device).require_grad();
            let w = Tensor::<CpuAutodiff, 2>::from_data(weights.clone(), &device);
            let y = if fast {
                quick_gelu(x.clone())
            } else {
                x.clone() * burn::tensor::activation::sigmoid(x.clone().mul_scalar(1.702))
            };
            let grads = (y.clone() * w).sum().backward();
            (y.into_data(), x.grad(&grads).expect("grad").into_data())
        };
        let (y_fast, g_fast) = run(true);
        let (y_burn, g_burn) = run(false);
        y_fast.assert_approx_eq::<f32>(&y_burn, Tolerance::absolute(2e-6));
        g_fast.assert_approx_eq::<f32>(&g_burn, Tolerance::absolute(2e-6));
        let inference = quick_gelu(Tensor::<CpuBackend, 2>::from_data(data.clone(), &device));
        inference
            .into_data()
            .assert_approx_eq::<f32>(&y_fast, Tolerance::absolute(0.0));
    }
}
