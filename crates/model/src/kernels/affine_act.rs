//! Per-channel affine (a frozen BatchNorm: `z = x·scale[c] + shift[c]`) with an
//! optional SiLU after it, as one pass and one autodiff node on the Flex backend.
//!
//! burn builds `silu(x·scale + shift)` from four nodes (multiply, add, sigmoid,
//! multiply), each a pass over the activations that allocates its output, and
//! their backward is four more passes. Here the forward is one pass and the
//! backward one pass over `dy` (in place when no one else holds it) that also
//! sums the per-channel gradients:
//! `dz = dy · silu'(z)`, `dx = dz · scale`, `dscale = Σ dz · x`, `dshift = Σ dz`,
//! with `silu'(z) = σ(z) · (1 + z · (1 − σ(z)))`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use super::math::{exp_neg, multiversion};
use super::{cast, dense};
use crate::backend::{CpuAutodiff, CpuBackend};

/// `x·scale[c] + shift[c]` over `[b, c, h, w]`, then SiLU when `act`: one fused node
/// on [`CpuAutodiff`] / one pass on [`CpuBackend`] (f32), burn's ops otherwise.
pub fn channel_affine<B: Backend>(
    x: Tensor<B, 4>,
    scale: Tensor<B, 1>,
    shift: Tensor<B, 1>,
    act: bool,
) -> Tensor<B, 4> {
    type Ad4 = Tensor<CpuAutodiff, 4>;
    type Ad1 = Tensor<CpuAutodiff, 1>;
    type Fx4 = Tensor<CpuBackend, 4>;
    type Fx1 = Tensor<CpuBackend, 1>;
    let args = match cast::<_, (Ad4, Ad1, Ad1)>((x, scale, shift)) {
        Ok((x, s, t)) => {
            let y = affine_autodiff(
                x.into_primitive().tensor(),
                s.into_primitive().tensor(),
                t.into_primitive().tensor(),
                act,
            );
            return cast(Ad4::from_primitive(TensorPrimitive::Float(y)))
                .unwrap_or_else(|_| unreachable!("B is CpuAutodiff"));
        }
        Err(args) => args,
    };
    let (x, scale, shift) = match cast::<_, (Fx4, Fx1, Fx1)>(args) {
        Ok((x, s, t)) => {
            let (x, s, t) = (
                x.into_primitive().tensor(),
                s.into_primitive().tensor(),
                t.into_primitive().tensor(),
            );
            let x = match forward_owned(x, &s, &t, act) {
                Ok(y) => {
                    return cast(Fx4::from_primitive(TensorPrimitive::Float(y)))
                        .unwrap_or_else(|_| unreachable!("B is CpuBackend"));
                }
                Err(x) => x,
            };
            let back = |t| Fx1::from_primitive(TensorPrimitive::Float(t));
            let x = Fx4::from_primitive(TensorPrimitive::Float(x));
            cast((x, back(s), back(t))).unwrap_or_else(|_| unreachable!("B is CpuBackend"))
        }
        Err(args) => args,
    };
    let c = scale.dims()[0];
    let z = x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]);
    if act { silu(z) } else { z }
}

#[derive(Debug, Clone)]
struct State {
    x: FlexTensor,
    scale: FlexTensor,
    shift: FlexTensor,
    act: bool,
}

#[derive(Debug)]
struct AffineOp;

impl Backward<CpuBackend, 3> for AffineOp {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, ps, pt] = ops.parents;
        let dy = grads.consume::<CpuBackend>(&ops.node);
        let State {
            x,
            scale,
            shift,
            act,
        } = ops.state;
        let x = dense(x);
        let (scale, shift) = (dense(scale), dense(shift));
        let shape = x.layout().shape().clone();
        let (c, plane) = (shape[1], shape[2] * shape[3]);
        let mut dscale = vec![0.0f32; c];
        let mut dshift = vec![0.0f32; c];
        let mut dy = dense(dy);
        let run = |g: &mut [f32], ds: &mut [f32], dt: &mut [f32]| {
            backward_planes(
                x.storage(),
                scale.storage(),
                shift.storage(),
                act,
                plane,
                g,
                ds,
                dt,
            )
        };
        let dx = match dy.try_storage_mut::<f32>() {
            Some(g) => {
                run(g, &mut dscale, &mut dshift);
                dy
            }
            None => {
                let mut g = dy.storage::<f32>().to_vec();
                run(&mut g, &mut dscale, &mut dshift);
                FlexTensor::from_data(TensorData::new(g, shape))
            }
        };
        let vec1 = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [c]));
        if let Some(node) = px {
            grads.register::<CpuBackend>(node.id, dx);
        }
        if let Some(node) = ps {
            grads.register::<CpuBackend>(node.id, vec1(dscale));
        }
        if let Some(node) = pt {
            grads.register::<CpuBackend>(node.id, vec1(dshift));
        }
    }
}

fn affine_autodiff(
    x: FloatTensor<CpuAutodiff>,
    scale: FloatTensor<CpuAutodiff>,
    shift: FloatTensor<CpuAutodiff>,
    act: bool,
) -> FloatTensor<CpuAutodiff> {
    if !is_f32_4d(&x.primitive, &scale.primitive, &shift.primitive) {
        // Not f32: burn's ops on the autodiff tensors.
        let t = |p| Tensor::<CpuAutodiff, 1>::from_primitive(TensorPrimitive::Float(p));
        let x = Tensor::<CpuAutodiff, 4>::from_primitive(TensorPrimitive::Float(x));
        let c = x.dims()[1];
        let z = x * t(scale).reshape([1, c, 1, 1]) + t(shift).reshape([1, c, 1, 1]);
        return if act { silu(z) } else { z }.into_primitive().tensor();
    }
    match AffineOp
        .prepare::<NoCheckpointing>([x.node.clone(), scale.node.clone(), shift.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = forward(&x.primitive, &scale.primitive, &shift.primitive, act);
            prep.finish(
                State {
                    x: x.primitive,
                    scale: scale.primitive,
                    shift: shift.primitive,
                    act,
                },
                y,
            )
        }
        OpsKind::UnTracked(prep) => {
            // Nothing keeps `x`: overwrite it when its buffer is not shared.
            let y = forward_owned(x.primitive, &scale.primitive, &shift.primitive, act)
                .unwrap_or_else(|x| forward(&x, &scale.primitive, &shift.primitive, act));
            prep.finish(y)
        }
    }
}

/// Whether the fused kernels apply: every tensor f32 and `x` 4-D.
fn is_f32_4d(x: &FlexTensor, scale: &FlexTensor, shift: &FlexTensor) -> bool {
    [x.dtype(), scale.dtype(), shift.dtype()]
        .iter()
        .all(|d| *d == DType::F32)
        && x.layout().shape().num_dims() == 4
}

/// The forward into a new buffer (`x` is kept for the backward); f32 4-D only
/// (see [`is_f32_4d`]).
fn forward(x: &FlexTensor, scale: &FlexTensor, shift: &FlexTensor, act: bool) -> FlexTensor {
    let shape = x.layout().shape().clone();
    let x = dense(x.clone());
    let (scale, shift) = (dense(scale.clone()), dense(shift.clone()));
    let mut out = Vec::with_capacity(x.layout().num_elements());
    forward_planes(
        x.storage(),
        scale.storage(),
        shift.storage(),
        act,
        shape[2] * shape[3],
        &mut out,
    );
    FlexTensor::from_data(TensorData::new(out, shape))
}

/// The forward in `x`'s own buffer when no one else holds it (inference: no
/// allocation, no second pass over fresh memory), else into a new one; `Err(x)`
/// unless f32 4-D.
fn forward_owned(
    x: FlexTensor,
    scale: &FlexTensor,
    shift: &FlexTensor,
    act: bool,
) -> Result<FlexTensor, FlexTensor> {
    if !is_f32_4d(&x, scale, shift) {
        return Err(x);
    }
    let mut x = dense(x);
    let (scale, shift) = (dense(scale.clone()), dense(shift.clone()));
    let shape = x.layout().shape().clone();
    let plane = shape[2] * shape[3];
    match x.try_storage_mut::<f32>() {
        Some(buf) => {
            forward_planes_in_place(buf, scale.storage(), shift.storage(), act, plane);
            Ok(x)
        }
        None => Ok(forward(&x, &scale, &shift, act)),
    }
}

/// `σ(z)` without overflow: `exp` only of non-positive arguments (a select, no
/// branch, so loops over it vectorise).
#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    let e = exp_neg(-z.abs());
    let r = 1.0 / (1.0 + e);
    let neg = e * r;
    if z >= 0.0 { r } else { neg }
}

/// `silu'(z)·dy` for `act`, else `dy`.
#[inline(always)]
fn dz<const ACT: bool>(dy: f32, z: f32) -> f32 {
    if ACT {
        let sg = sigmoid(z);
        dy * sg * (1.0 + z * (1.0 - sg))
    } else {
        dy
    }
}

/// One element of the forward.
#[inline(always)]
fn affine<const ACT: bool>(x: f32, s: f32, t: f32) -> f32 {
    let z = x.mul_add(s, t);
    if ACT { z * sigmoid(z) } else { z }
}

/// One plane of the backward: `g` from `dy` to `dx`; returns `(Σ dz·x, Σ dz)`.
#[inline(always)]
fn backward_plane<const ACT: bool>(x: &[f32], s: f32, t: f32, g: &mut [f32]) -> (f32, f32) {
    const L: usize = 16;
    let (mut ds, mut dt) = ([0.0f32; L], [0.0f32; L]);
    let mut gs = g.chunks_exact_mut(L);
    let mut xs = x.chunks_exact(L);
    for (gc, xc) in (&mut gs).zip(&mut xs) {
        let lanes = gc.iter_mut().zip(xc).zip(ds.iter_mut().zip(dt.iter_mut()));
        for ((g, &v), (a, b)) in lanes {
            let d = dz::<ACT>(*g, v.mul_add(s, t));
            *a = d.mul_add(v, *a);
            *b += d;
            *g = d * s;
        }
    }
    let (mut ds_tail, mut dt_tail) = (0.0f32, 0.0f32);
    for (gv, &v) in gs.into_remainder().iter_mut().zip(xs.remainder()) {
        let d = dz::<ACT>(*gv, v.mul_add(s, t));
        ds_tail += d * v;
        dt_tail += d;
        *gv = d * s;
    }
    (
        ds.iter().sum::<f32>() + ds_tail,
        dt.iter().sum::<f32>() + dt_tail,
    )
}

multiversion!(
    /// Appends `act(x·scale[c] + shift[c])` over NCHW planes of `plane` elements
    /// (no zero-filled buffer first).
    forward_planes(
        x: &[f32],
        scale: &[f32],
        shift: &[f32],
        act: bool,
        plane: usize,
        out: &mut Vec<f32>
    ) {
        // Plane by plane: copied (memcpy), then transformed while in cache. Not
        // `out.extend(iter.map(..))`: std's extend loop is compiled outside this
        // function's target features, where `mul_add` is a call to `fmaf`.
        let c = scale.len();
        for (i, xp) in x.chunks_exact(plane).enumerate() {
            let (s, t) = (scale[i % c], shift[i % c]);
            let start = out.len();
            out.extend_from_slice(xp);
            let op = &mut out[start..];
            if act {
                for v in op {
                    *v = affine::<true>(*v, s, t);
                }
            } else {
                for v in op {
                    *v = affine::<false>(*v, s, t);
                }
            }
        }
    }
);

multiversion!(
    /// [`forward_planes`] in place.
    forward_planes_in_place(
        x: &mut [f32],
        scale: &[f32],
        shift: &[f32],
        act: bool,
        plane: usize
    ) {
        let c = scale.len();
        for (i, xp) in x.chunks_exact_mut(plane).enumerate() {
            let (s, t) = (scale[i % c], shift[i % c]);
            if act {
                for v in xp {
                    *v = affine::<true>(*v, s, t);
                }
            } else {
                for v in xp {
                    *v = affine::<false>(*v, s, t);
                }
            }
        }
    }
);

multiversion!(
    /// Backward of [`forward_planes`]: `g` holds `dy` and receives `dx`; `dscale`
    /// and `dshift` accumulate per channel.
    backward_planes(
        x: &[f32],
        scale: &[f32],
        shift: &[f32],
        act: bool,
        plane: usize,
        g: &mut [f32],
        dscale: &mut [f32],
        dshift: &mut [f32]
    ) {
        let c = scale.len();
        for (i, (xp, gp)) in x.chunks_exact(plane).zip(g.chunks_exact_mut(plane)).enumerate() {
            let ch = i % c;
            let (s, t) = (scale[ch], shift[ch]);
            let (ds, dt) = if act {
                backward_plane::<true>(xp, s, t, gp)
            } else {
                backward_plane::<false>(xp, s, t, gp)
            };
            dscale[ch] += ds;
            dshift[ch] += dt;
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
        let shape = [3, 5, 7, 9];
        let data = Tensor::<CpuBackend, 4>::random(shape, Distribution::Normal(0.0, 3.0), &device)
            .into_data();
        let w = Tensor::<CpuBackend, 4>::random(shape, Distribution::Default, &device).into_data();
        let st = Tensor::<CpuBackend, 1>::random([10], Distribution::Normal(0.5, 1.0), &device)
            .into_data()
            .to_vec::<f32>()
            .expect("f32");
        for act in [true, false] {
            let run = |fast: bool| {
                let x = Tensor::<CpuAutodiff, 4>::from_data(data.clone(), &device).require_grad();
                let s = Tensor::<CpuAutodiff, 1>::from_data(
                    TensorData::new(st[..5].to_vec(), [5]),
                    &device,
                )
                .require_grad();
                let t = Tensor::<CpuAutodiff, 1>::from_data(
                    TensorData::new(st[5..].to_vec(), [5]),
                    &device,
                )
                .require_grad();
                let y = if fast {
                    channel_affine(x.clone(), s.clone(), t.clone(), act)
                } else {
                    let z = x.clone() * s.clone().reshape([1, 5, 1, 1])
                        + t.clone().reshape([1, 5, 1, 1]);
                    if act { silu(z) } else { z }
                };
                let wt = Tensor::<CpuAutodiff, 4>::from_data(w.clone(), &device);
                let grads = (y.clone() * wt).sum().backward();
                [
                    y.into_data(),
                    x.grad(&grads).expect("dx").into_data(),
                    s.grad(&grads).expect("ds").into_data(),
                    t.grad(&grads).expect("dt").into_data(),
                ]
            };
            let (fast, burn) = (run(true), run(false));
            for (f, b) in fast.iter().zip(&burn) {
                f.assert_approx_eq::<f32>(b, Tolerance::absolute(1e-4));
            }
            // Inference takes the one-pass forward.
            let x = Tensor::<CpuBackend, 4>::from_data(data.clone(), &device);
            let s =
                Tensor::<CpuBackend, 1>::from_data(TensorData::new(st[..5].to_vec(), [5]), &device);
            let t =
                Tensor::<CpuBackend, 1>::from_data(TensorData::new(st[5..].to_vec(), [5]), &device);
            channel_affine(x, s, t, act)
                .into_data()
                .assert_approx_eq::<f32>(&fast[0], Tolerance::absolute(1e-5));
        }
    }
}
