//! Depthwise 2-D convolution (one filter per channel, square kernel, equal
//! stride and padding on both axes) as one autodiff node on the Flex backend.
//!
//! burn 0.21's default `conv2d_weight_backward`
//! for grouped convolutions loops over the groups — for EfficientNet's 96 to 1152
//! channels that is one slice, one tiny convolution and one `slice_assign` of the
//! whole gradient per channel — and its input gradient is a grouped transposed
//! convolution. Here the forward and both gradients are direct loops over each
//! `(image, channel)` plane, without im2col:
//! - `y[oh][ow] += w[kh][kw] · x[ih][iw]` (a row of `x` scaled into a row of `y`);
//! - `dx[ih][iw] += w[kh][kw] · dy[oh][ow]` for `ih = oh·s + kh − p`, `iw = ow·s + kw − p`
//!   (a row of `dy` scaled into a row of `dx`);
//! - `dw[kh][kw] = Σ dy[oh][ow] · x[ih][iw]` over the images and output positions,
//!   in 16 vector lanes per tap that are summed once per plane.
//!
//! Every inner loop is a contiguous row operation that vectorises: at stride 2 a
//! plane is first split by column parity ([`Phases`]), so `x[ih][2·ow + q]` is a
//! contiguous row of one phase (and the input gradient is gathered the same way,
//! then interleaved back).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor, ModuleOps};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use super::math::multiversion;
use super::{cast, dense};
use crate::backend::{CpuAutodiff, CpuBackend};

/// Depthwise convolution of `x` `[b, c, h, w]` with `weight` `[c, 1, k, k]`, no bias:
/// the fused node on [`CpuAutodiff`], the direct forward on [`CpuBackend`], burn's
/// grouped `conv2d` on any other backend.
pub fn depthwise_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    stride: usize,
    padding: usize,
) -> Tensor<B, 4> {
    let channels = weight.dims()[0];
    let options = ConvOptions::new([stride, stride], [padding, padding], [1, 1], channels);
    let (x, weight) = match cast::<_, (Tensor<CpuAutodiff, 4>, Tensor<CpuAutodiff, 4>)>((x, weight))
    {
        Ok((x, w)) => {
            let y = dw_autodiff(
                x.into_primitive().tensor(),
                w.into_primitive().tensor(),
                options,
            );
            let y = Tensor::<CpuAutodiff, 4>::from_primitive(TensorPrimitive::Float(y));
            return cast(y).unwrap_or_else(|_| unreachable!("B is CpuAutodiff"));
        }
        Err(pair) => pair,
    };
    let (x, weight) = match cast::<_, (Tensor<CpuBackend, 4>, Tensor<CpuBackend, 4>)>((x, weight)) {
        Ok((x, w)) => {
            let y = forward(
                &x.into_primitive().tensor(),
                &w.into_primitive().tensor(),
                &options,
            );
            let y = Tensor::<CpuBackend, 4>::from_primitive(TensorPrimitive::Float(y));
            return cast(y).unwrap_or_else(|_| unreachable!("B is CpuBackend"));
        }
        Err(pair) => pair,
    };
    burn::tensor::module::conv2d(x, weight, None, options)
}

/// The forward: the direct kernel for f32, burn-flex's conv2d otherwise.
fn forward(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return <CpuBackend as ModuleOps<CpuBackend>>::conv2d(
            x.clone(),
            weight.clone(),
            None,
            options.clone(),
        );
    }
    let g = Geom::of(x, weight, options);
    let (x, weight) = (dense(x.clone()), dense(weight.clone()));
    let mut y = vec![0.0f32; g.b * g.c * g.oh * g.ow];
    dw_forward(&g, x.storage(), weight.storage(), &mut y);
    FlexTensor::from_data(TensorData::new(y, [g.b, g.c, g.oh, g.ow]))
}

/// What the backward needs.
#[derive(Debug, Clone)]
struct State {
    x: FlexTensor,
    weight: FlexTensor,
    options: ConvOptions<2>,
}

#[derive(Debug)]
struct DepthwiseOp;

impl Backward<CpuBackend, 2> for DepthwiseOp {
    type State = State;

    fn backward(self, ops: Ops<State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pw] = ops.parents;
        let dy = grads.consume::<CpuBackend>(&ops.node);
        let State { x, weight, options } = ops.state;
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || dy.dtype() != DType::F32 {
            // Not f32: burn's generic gradients.
            if let Some(node) = px {
                let dx = <CpuBackend as ModuleOps<CpuBackend>>::conv2d_x_backward(
                    x.clone(),
                    weight.clone(),
                    dy.clone(),
                    options.clone(),
                );
                grads.register::<CpuBackend>(node.id, dx);
            }
            if let Some(node) = pw {
                let dw = <CpuBackend as ModuleOps<CpuBackend>>::conv2d_weight_backward(
                    x, weight, dy, options,
                );
                grads.register::<CpuBackend>(node.id, dw);
            }
            return;
        }
        let geom = Geom::of(&x, &weight, &options);
        let dy = dense(dy);
        if let Some(node) = pw {
            let x = dense(x);
            let mut dw = vec![0.0f32; geom.c * geom.k * geom.k];
            dw_weight(&geom, x.storage(), dy.storage(), &mut dw);
            let shape = weight.layout().shape().clone();
            grads
                .register::<CpuBackend>(node.id, FlexTensor::from_data(TensorData::new(dw, shape)));
        }
        if let Some(node) = px {
            let weight = dense(weight);
            let mut dx = vec![0.0f32; geom.b * geom.c * geom.h * geom.w];
            dw_input(&geom, weight.storage(), dy.storage(), &mut dx);
            let shape = [geom.b, geom.c, geom.h, geom.w];
            grads
                .register::<CpuBackend>(node.id, FlexTensor::from_data(TensorData::new(dx, shape)));
        }
    }
}

fn dw_autodiff(
    x: FloatTensor<CpuAutodiff>,
    weight: FloatTensor<CpuAutodiff>,
    options: ConvOptions<2>,
) -> FloatTensor<CpuAutodiff> {
    let y = forward(&x.primitive, &weight.primitive, &options);
    match DepthwiseOp
        .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            State {
                x: x.primitive,
                weight: weight.primitive,
                options,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// Shapes of one depthwise convolution.
#[derive(Debug, Clone, Copy)]
pub struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    fn of(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Self {
        let d = x.layout().shape();
        let k = weight.layout().shape()[2];
        Self::new(
            [d[0], d[1], d[2], d[3]],
            k,
            options.stride[0],
            options.padding[0],
        )
    }

    fn new([b, c, h, w]: [usize; 4], k: usize, s: usize, p: usize) -> Self {
        Self {
            b,
            c,
            h,
            w,
            k,
            s,
            p,
            oh: (h + 2 * p - k) / s + 1,
            ow: (w + 2 * p - k) / s + 1,
        }
    }

    /// Output columns `ow` whose input column `ow·s + kw − p` lies inside the image.
    fn cols(&self, kw: usize) -> std::ops::Range<usize> {
        let lo = self.p.saturating_sub(kw).div_ceil(self.s);
        let hi = if self.w + self.p > kw {
            ((self.w + self.p - kw - 1) / self.s + 1).min(self.ow)
        } else {
            0
        };
        lo..hi.max(lo)
    }

    /// Input row of output row `oh` and kernel row `kh`, when inside the image.
    fn row(&self, oh: usize, kh: usize) -> Option<usize> {
        (oh * self.s + kh)
            .checked_sub(self.p)
            .filter(|&r| r < self.h)
    }
}

/// Lanes of the vector accumulators.
const L: usize = 16;

/// Where kernel column `kw` reads in the phase layout: input column
/// `s·ow + kw − p` is column `ow + off` of phase `ph` (see [`Phases`]).
#[inline(always)]
fn phase_of(g: &Geom, kw: usize) -> (usize, isize) {
    let q = kw as isize - g.p as isize;
    (
        q.rem_euclid(g.s as isize) as usize,
        q.div_euclid(g.s as isize),
    )
}

/// One plane split by column phase for strided access: phase `ph` holds columns
/// `ph, ph + s, ph + 2s, …` of every row (width `⌈w/s⌉`, zero-padded), so a
/// stride-`s` walk over a row becomes a contiguous one. At stride 1 it is the
/// plane itself, without a copy.
struct Phases {
    width: usize,
    data: Vec<f32>,
}

impl Phases {
    fn split(g: &Geom, plane: &[f32], into: &mut Self) {
        into.width = g.w.div_ceil(g.s);
        into.data.clear();
        into.data.resize(g.s * g.h * into.width, 0.0);
        for ih in 0..g.h {
            let row = &plane[ih * g.w..(ih + 1) * g.w];
            for (iw, &v) in row.iter().enumerate() {
                into.data[((iw % g.s) * g.h + ih) * into.width + iw / g.s] = v;
            }
        }
    }
}

/// The contiguous source row for `(ph, ih)` from column `col`: the plane itself at
/// stride 1, the phase copy otherwise.
#[inline(always)]
fn src_row<'a>(
    g: &Geom,
    plane: &'a [f32],
    phases: &'a Phases,
    ph: usize,
    ih: usize,
    col: usize,
) -> &'a [f32] {
    if g.s == 1 {
        &plane[ih * g.w + col..(ih + 1) * g.w]
    } else {
        let w = phases.width;
        &phases.data[(ph * g.h + ih) * w + col..(ph * g.h + ih + 1) * w]
    }
}

/// `dst[i] += a · src[i]`.
#[inline(always)]
fn axpy(a: f32, src: &[f32], dst: &mut [f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = a.mul_add(v, *d);
    }
}

/// `acc[i % L] += a[i]·b[i]`, with the lanes kept across calls; returns the tail.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32], acc: &mut [f32; L]) -> f32 {
    let b = &b[..a.len()];
    let (mut ac, mut bc) = (a.chunks_exact(L), b.chunks_exact(L));
    for (x, y) in (&mut ac).zip(&mut bc) {
        for ((a, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *a = x.mul_add(y, *a);
        }
    }
    ac.remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum()
}

multiversion!(
    /// `y[oh][ow] = Σ w[kh][kw] · x[oh·s + kh − p][ow·s + kw − p]` per plane.
    dw_forward(g: &Geom, x: &[f32], weight: &[f32], y: &mut [f32]) {
        let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let taps: Vec<_> = (0..g.k).map(|kw| (g.cols(kw), phase_of(g, kw))).collect();
        let mut phases = Phases { width: 0, data: Vec::new() };
        for bc in 0..g.b * g.c {
            let ch = bc % g.c;
            let xp = &x[bc * plane_in..(bc + 1) * plane_in];
            if g.s > 1 {
                Phases::split(g, xp, &mut phases);
            }
            let wp = &weight[ch * kk..(ch + 1) * kk];
            let yp = &mut y[bc * plane_out..(bc + 1) * plane_out];
            for oh in 0..g.oh {
                let yrow = &mut yp[oh * g.ow..(oh + 1) * g.ow];
                for kh in 0..g.k {
                    let Some(ih) = g.row(oh, kh) else { continue };
                    for (kw, (c, (ph, off))) in taps.iter().enumerate() {
                        if c.is_empty() {
                            continue;
                        }
                        let col = (c.start as isize + off) as usize;
                        let src = src_row(g, xp, &phases, *ph, ih, col);
                        axpy(wp[kh * g.k + kw], src, &mut yrow[c.clone()]);
                    }
                }
            }
        }
    }
);

multiversion!(
    /// `dw[c][kh][kw] = Σ_b Σ_{oh,ow} dy · x` (see the module docs).
    dw_weight(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
        let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let taps: Vec<_> = (0..g.k).map(|kw| (g.cols(kw), phase_of(g, kw))).collect();
        let mut phases = Phases { width: 0, data: Vec::new() };
        let mut lanes = vec![[0.0f32; L]; kk];
        let mut tails = vec![0.0f32; kk];
        for bc in 0..g.b * g.c {
            let ch = bc % g.c;
            let xp = &x[bc * plane_in..(bc + 1) * plane_in];
            if g.s > 1 {
                Phases::split(g, xp, &mut phases);
            }
            let gp = &dy[bc * plane_out..(bc + 1) * plane_out];
            for oh in 0..g.oh {
                let grow = &gp[oh * g.ow..(oh + 1) * g.ow];
                for kh in 0..g.k {
                    let Some(ih) = g.row(oh, kh) else { continue };
                    for (kw, (c, (ph, off))) in taps.iter().enumerate() {
                        if c.is_empty() {
                            continue;
                        }
                        let col = (c.start as isize + off) as usize;
                        let src = src_row(g, xp, &phases, *ph, ih, col);
                        let t = kh * g.k + kw;
                        tails[t] += dot_lanes(&grow[c.clone()], src, &mut lanes[t]);
                    }
                }
            }
            let out = &mut dw[ch * kk..(ch + 1) * kk];
            for t in 0..kk {
                out[t] += lanes[t].iter().sum::<f32>() + tails[t];
                lanes[t] = [0.0; L];
                tails[t] = 0.0;
            }
        }
    }
);

multiversion!(
    /// `dx[ih][iw] += w[kh][kw] · dy[oh][ow]` (see the module docs).
    dw_input(g: &Geom, weight: &[f32], dy: &[f32], dx: &mut [f32]) {
        let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let taps: Vec<_> = (0..g.k).map(|kw| (g.cols(kw), phase_of(g, kw))).collect();
        let width = g.w.div_ceil(g.s);
        // At stride > 1 the gradient is gathered in the phase layout, then
        // interleaved into the plane.
        let mut acc = vec![0.0f32; if g.s > 1 { g.s * g.h * width } else { 0 }];
        for bc in 0..g.b * g.c {
            let ch = bc % g.c;
            let wp = &weight[ch * kk..(ch + 1) * kk];
            let gp = &dy[bc * plane_out..(bc + 1) * plane_out];
            let xp = &mut dx[bc * plane_in..(bc + 1) * plane_in];
            acc.fill(0.0);
            for oh in 0..g.oh {
                let grow = &gp[oh * g.ow..(oh + 1) * g.ow];
                for kh in 0..g.k {
                    let Some(ih) = g.row(oh, kh) else { continue };
                    for (kw, (c, (ph, off))) in taps.iter().enumerate() {
                        if c.is_empty() {
                            continue;
                        }
                        let col = (c.start as isize + off) as usize;
                        let dst = if g.s == 1 {
                            &mut xp[ih * g.w + col..(ih + 1) * g.w]
                        } else {
                            &mut acc[(ph * g.h + ih) * width + col..(ph * g.h + ih + 1) * width]
                        };
                        axpy(wp[kh * g.k + kw], &grow[c.clone()], dst);
                    }
                }
            }
            if g.s > 1 {
                for ih in 0..g.h {
                    for iw in 0..g.w {
                        xp[ih * g.w + iw] = acc[((iw % g.s) * g.h + ih) * width + iw / g.s];
                    }
                }
            }
        }
    }
);

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    fn check(shape: [usize; 4], k: usize, stride: usize) {
        let device = Default::default();
        let p = (k - 1) / 2;
        let data = Tensor::<CpuBackend, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
            .into_data();
        let wdata = Tensor::<CpuBackend, 4>::random(
            [shape[1], 1, k, k],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .into_data();
        let run = |fast: bool| {
            let x = Tensor::<CpuAutodiff, 4>::from_data(data.clone(), &device).require_grad();
            let w = Tensor::<CpuAutodiff, 4>::from_data(wdata.clone(), &device).require_grad();
            let y = if fast {
                depthwise_conv2d(x.clone(), w.clone(), stride, p)
            } else {
                let o = ConvOptions::new([stride, stride], [p, p], [1, 1], shape[1]);
                burn::tensor::module::conv2d(x.clone(), w.clone(), None, o)
            };
            let dims = y.dims();
            let r = Tensor::<CpuAutodiff, 4>::from_data(
                TensorData::new(
                    (0..dims.iter().product::<usize>())
                        .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
                        .collect::<Vec<_>>(),
                    dims,
                ),
                &device,
            );
            let grads = (y.clone() * r).sum().backward();
            [
                y.into_data(),
                x.grad(&grads).expect("dx").into_data(),
                w.grad(&grads).expect("dw").into_data(),
            ]
        };
        let (fast, burn) = (run(true), run(false));
        for (f, b) in fast.iter().zip(&burn) {
            assert_eq!(f.shape, b.shape);
            f.assert_approx_eq::<f32>(b, Tolerance::absolute(1e-3));
        }
        // Inference (no autodiff) takes the same direct forward.
        let x = Tensor::<CpuBackend, 4>::from_data(data.clone(), &device);
        let w = Tensor::<CpuBackend, 4>::from_data(wdata.clone(), &device);
        depthwise_conv2d(x, w, stride, p)
            .into_data()
            .assert_approx_eq::<f32>(&fast[0], Tolerance::absolute(0.0));
    }

    #[test]
    fn gradients_match_burn_for_every_b0_shape() {
        // EfficientNet-B0's depthwise kinds: 3×3 and 5×5, stride 1 and 2, odd and
        // even sides.
        check([2, 3, 9, 9], 3, 1);
        check([2, 3, 10, 10], 3, 2);
        check([1, 4, 11, 11], 5, 1);
        check([2, 2, 12, 12], 5, 2);
        check([1, 2, 7, 8], 5, 2);
        check([1, 2, 2, 2], 5, 1);
        check([2, 3, 17, 33], 3, 2);
        check([1, 2, 40, 21], 5, 2);
    }
}
