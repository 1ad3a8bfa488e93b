//! Exact (erf) GELU on tensors: burn-flex's own kernel computes `libm::erff` per
//! element in the forward and `erff` + `expf` in the backward; this one runs
//! [`math`](super::math)'s vectorised forms and, under autodiff, registers a
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

/// `0.5·x·(1 + erf(x/√2))`; the fast path on [`CpuBackend`] and [`CpuAutodiff`],
/// burn's `gelu` on any other backend.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = match cast::<Tensor<B, D>, Tensor<CpuAutodiff, D>>(x) {
        Ok(x) => {
            let y = Tensor::<CpuAutodiff, D>::from_primitive(TensorPrimitive::Float(
                gelu_autodiff(x.into_primitive().tensor()),
            ));
            return cast(y).unwrap_or_else(|_| unreachable!("B is CpuAutodiff"));
        }
        Err(x) => x,
    };
    match cast::<Tensor<B, D>, Tensor<CpuBackend, D>>(x) {
        Ok(x) => {
            let y = Tensor::<CpuBackend, D>::from_primitive(TensorPrimitive::Float(gelu_flex(
                x.into_primitive().tensor(),
            )));
            cast(y).unwrap_or_else(|_| unreachable!("B is CpuBackend"))
        }
        Err(x) => burn::tensor::activation::gelu(x),
    }
}

#[derive(Debug)]
struct Gelu;

impl Backward<CpuBackend, 1> for Gelu {
    /// The forward input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<CpuBackend, _>(ops.parents, ops.node, grads, |grad| {
            gelu_backward_flex(x, grad)
        });
    }
}

fn gelu_autodiff(x: FloatTensor<CpuAutodiff>) -> FloatTensor<CpuAutodiff> {
    match Gelu
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(x.primitive.clone(), gelu_flex(x.primitive)),
        OpsKind::UnTracked(prep) => prep.finish(gelu_flex(x.primitive)),
    }
}

fn gelu_flex(x: FlexTensor) -> FlexTensor {
    if x.dtype() != DType::F32 {
        return <CpuBackend as ActivationOps<CpuBackend>>::gelu(x);
    }
    let x = dense(x);
    let src: &[f32] = x.storage();
    let mut out = vec![0.0f32; src.len()];
    math::gelu_slice(src, &mut out);
    FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
}

fn gelu_backward_flex(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
    if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return <CpuBackend as ActivationOps<CpuBackend>>::gelu_backward(x, grad);
    }
    let x = dense(x);
    let mut grad = dense(grad);
    let xs: &[f32] = x.storage();
    if let Some(g) = grad.try_storage_mut::<f32>() {
        math::gelu_backward_inplace(xs, g);
        return grad;
    }
    let mut out = vec![0.0f32; xs.len()];
    math::gelu_backward_slice(xs, grad.storage(), &mut out);
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
}
