//! Squeeze-excitation's gate `y[b][c] = x[b][c] · s[b][c]` (a `[b, c]` scale over
//! `[b, c, h, w]` feature maps) as one pass and one autodiff node on the Flex
//! backend.
//!
//! burn broadcasts `x * s.reshape([b, c, 1, 1])` through its strided binary kernel,
//! and the backward is two more broadcast multiplies (`dy·s`, `dy·x`) each into a
//! fresh feature-map-sized buffer, the second then summed over the plane. Here the
//! backward is one pass over `dy` (in place when no one else holds it) that writes
//! `dx = dy·s` and sums `ds = Σ dy·x` per plane.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use super::math::multiversion;
use super::{cast, dense};
use crate::backend::{CpuAutodiff, CpuBackend};

/// `x[b][c][..] · s[b][c]` for `x` `[b, c, h, w]` and `s` `[b, c]`: one fused node on
/// [`CpuAutodiff`] / one pass on [`CpuBackend`] (f32), burn's broadcast otherwise.
pub fn channel_scale<B: Backend>(x: Tensor<B, 4>, s: Tensor<B, 2>) -> Tensor<B, 4> {
    type Ad4 = Tensor<CpuAutodiff, 4>;
    type Ad2 = Tensor<CpuAutodiff, 2>;
    type Fx4 = Tensor<CpuBackend, 4>;
    type Fx2 = Tensor<CpuBackend, 2>;
    let args = match cast::<_, (Ad4, Ad2)>((x, s)) {
        Ok((x, s)) => {
            let y = scale_autodiff(x.into_primitive().tensor(), s.into_primitive().tensor());
            return cast(Ad4::from_primitive(TensorPrimitive::Float(y)))
                .unwrap_or_else(|_| unreachable!("B is CpuAutodiff"));
        }
        Err(args) => args,
    };
    let (x, s) = match cast::<_, (Fx4, Fx2)>(args) {
        Ok((x, s)) => {
            let (x, s) = (x.into_primitive().tensor(), s.into_primitive().tensor());
            if is_f32(&x, &s) {
                let y = forward(x, &s, true);
                return cast(Fx4::from_primitive(TensorPrimitive::Float(y)))
                    .unwrap_or_else(|_| unreachable!("B is CpuBackend"));
            }
            let x = Fx4::from_primitive(TensorPrimitive::Float(x));
            let s = Fx2::from_primitive(TensorPrimitive::Float(s));
            cast((x, s)).unwrap_or_else(|_| unreachable!("B is CpuBackend"))
        }
        Err(args) => args,
    };
    let [b, c, _, _] = x.dims();
    x * s.reshape([b, c, 1, 1])
}

fn is_f32(x: &FlexTensor, s: &FlexTensor) -> bool {
    x.dtype() == DType::F32 && s.dtype() == DType::F32 && x.layout().shape().num_dims() == 4
}

/// The forward; in `x`'s buffer when `in_place` and no one else holds it.
fn forward(x: FlexTensor, s: &FlexTensor, in_place: bool) -> FlexTensor {
    let shape = x.layout().shape().clone();
    let plane = shape[2] * shape[3];
    let s = dense(s.clone());
    let mut x = dense(x);
    if in_place && let Some(buf) = x.try_storage_mut::<f32>() {
        scale_planes_in_place(buf, s.storage(), plane);
        return x;
    }
    let mut out = Vec::with_capacity(x.layout().num_elements());
    scale_planes(x.storage(), s.storage(), plane, &mut out);
    FlexTensor::from_data(TensorData::new(out, shape))
}

#[derive(Debug, Clone)]
struct State {
    x: FlexTensor,
    s: FlexTensor,
}

#[derive(Debug)]
struct ScaleOp;

impl Backward<CpuBackend, 2> for ScaleOp {
    type State = State;

    fn backward(self, ops: Ops<State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, ps] = ops.parents;
        let dy = dense(grads.consume::<CpuBackend>(&ops.node));
        let State { x, s } = ops.state;
        let (x, s) = (dense(x), dense(s));
        let shape = x.layout().shape().clone();
        let plane = shape[2] * shape[3];
        let mut ds = vec![0.0f32; shape[0] * shape[1]];
        let mut dy = dy;
        let dx = match dy.try_storage_mut::<f32>() {
            Some(g) => {
                backward_planes(x.storage(), s.storage(), plane, g, &mut ds);
                dy
            }
            None => {
                let mut g = dy.storage::<f32>().to_vec();
                backward_planes(x.storage(), s.storage(), plane, &mut g, &mut ds);
                FlexTensor::from_data(TensorData::new(g, shape.clone()))
            }
        };
        if let Some(node) = px {
            grads.register::<CpuBackend>(node.id, dx);
        }
        if let Some(node) = ps {
            let ds = FlexTensor::from_data(TensorData::new(ds, [shape[0], shape[1]]));
            grads.register::<CpuBackend>(node.id, ds);
        }
    }
}

fn scale_autodiff(
    x: FloatTensor<CpuAutodiff>,
    s: FloatTensor<CpuAutodiff>,
) -> FloatTensor<CpuAutodiff> {
    if !is_f32(&x.primitive, &s.primitive) {
        let x = Tensor::<CpuAutodiff, 4>::from_primitive(TensorPrimitive::Float(x));
        let s = Tensor::<CpuAutodiff, 2>::from_primitive(TensorPrimitive::Float(s));
        let [b, c, _, _] = x.dims();
        return (x * s.reshape([b, c, 1, 1])).into_primitive().tensor();
    }
    match ScaleOp
        .prepare::<NoCheckpointing>([x.node.clone(), s.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = forward(x.primitive.clone(), &s.primitive, false);
            prep.finish(
                State {
                    x: x.primitive,
                    s: s.primitive,
                },
                y,
            )
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive, &s.primitive, true)),
    }
}

multiversion!(
    /// Appends `x·s[plane]` plane by plane.
    scale_planes(x: &[f32], s: &[f32], plane: usize, out: &mut Vec<f32>) {
        // Copy, then scale in cache (see `affine_act::forward_planes`).
        for (xp, &sv) in x.chunks_exact(plane).zip(s) {
            let start = out.len();
            out.extend_from_slice(xp);
            for v in &mut out[start..] {
                *v *= sv;
            }
        }
    }
);

multiversion!(
    /// [`scale_planes`] in place.
    scale_planes_in_place(x: &mut [f32], s: &[f32], plane: usize) {
        for (xp, &sv) in x.chunks_exact_mut(plane).zip(s) {
            for v in xp {
                *v *= sv;
            }
        }
    }
);

multiversion!(
    /// `g` from `dy` to `dx = dy·s`; `ds[plane] = Σ dy·x`.
    backward_planes(x: &[f32], s: &[f32], plane: usize, g: &mut [f32], ds: &mut [f32]) {
        const L: usize = 16;
        let planes = x.chunks_exact(plane).zip(g.chunks_exact_mut(plane));
        for ((xp, gp), (&sv, d)) in planes.zip(s.iter().zip(ds.iter_mut())) {
            let mut acc = [0.0f32; L];
            let mut gs = gp.chunks_exact_mut(L);
            let mut xs = xp.chunks_exact(L);
            for (gc, xc) in (&mut gs).zip(&mut xs) {
                for ((g, &v), a) in gc.iter_mut().zip(xc).zip(acc.iter_mut()) {
                    *a = g.mul_add(v, *a);
                    *g *= sv;
                }
            }
            let mut tail = 0.0f32;
            for (g, &v) in gs.into_remainder().iter_mut().zip(xs.remainder()) {
                tail = g.mul_add(v, tail);
                *g *= sv;
            }
            *d = acc.iter().sum::<f32>() + tail;
        }
    }
);

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn forward_and_gradients_match_burn() {
        let device = Default::default();
        let shape = [2, 3, 5, 7];
        let data = Tensor::<CpuBackend, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
            .into_data();
        let sdata =
            Tensor::<CpuBackend, 2>::random([2, 3], Distribution::Normal(0.0, 1.0), &device)
                .into_data();
        let w = Tensor::<CpuBackend, 4>::random(shape, Distribution::Default, &device).into_data();
        let run = |fast: bool| {
            let x = Tensor::<CpuAutodiff, 4>::from_data(data.clone(), &device).require_grad();
            let s = Tensor::<CpuAutodiff, 2>::from_data(sdata.clone(), &device).require_grad();
            let y = if fast {
                channel_scale(x.clone(), s.clone())
            } else {
                x.clone() * s.clone().reshape([2, 3, 1, 1])
            };
            let wt = Tensor::<CpuAutodiff, 4>::from_data(w.clone(), &device);
            let grads = (y.clone() * wt).sum().backward();
            [
                y.into_data(),
                x.grad(&grads).expect("dx").into_data(),
                s.grad(&grads).expect("ds").into_data(),
            ]
        };
        let (fast, burn) = (run(true), run(false));
        for (f, b) in fast.iter().zip(&burn) {
            assert_eq!(f.shape, b.shape);
            f.assert_approx_eq::<f32>(b, Tolerance::absolute(1e-5));
        }
        let x = Tensor::<CpuBackend, 4>::from_data(data.clone(), &device);
        let s = Tensor::<CpuBackend, 2>::from_data(sdata.clone(), &device);
        channel_scale(x, s)
            .into_data()
            .assert_approx_eq::<f32>(&fast[0], Tolerance::absolute(0.0));
    }
}
