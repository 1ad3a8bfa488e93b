//! Depthwise 2-D convolution (one filter per channel, square kernel, equal
//! stride and padding on both axes) as one autodiff node on the Flex backend.
//!
//! burn 0.21's default `conv2d_weight_backward`
//! for grouped convolutions loops over the groups — for EfficientNet's 96 to 1152
//! channels that is one slice, one tiny convolution and one `slice_assign` of the
//! whole gradient per channel — and its input gradient is a grouped transposed
//! convolution. Here the forward and both gradients are direct loops over each
//! `(image, channel)` plane, without im2col:
//! - `y[oh][ow] += w[kh][kw] · x[ih][iw]`;
//! - `dx[ih][iw] += w[kh][kw] · dy[oh][ow]` for `ih = oh·s + kh − p`, `iw = ow·s + kw − p`;
//! - `dw[kh][kw] = Σ dy[oh][ow] · x[ih][iw]` over the images and output positions,
//!   in 16 vector lanes per tap that are summed once per plane.
//!
//! The plane is first copied into zero-padded phase planes ([`split`]: one plane
//! at stride 1, four at stride 2) of width `vq`, and the outputs are laid out at
//! that width too. Every tap is then one contiguous span of a phase plane against
//! the whole output plane (in row blocks that stay in L1): one long vector loop
//! per tap however small the plane, with no border tests and no remainder loop per
//! row. Row-by-row loops spent most of EfficientNet's 14×14 and 7×7 planes (half
//! of its depthwise work) in scalar remainders. The input gradient is accumulated
//! in the phase layout and gathered back ([`gather`]).

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
    let mut y = Vec::with_capacity(g.b * g.c * g.oh * g.ow);
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
        let (x, weight, dy) = (dense(x), dense(weight), dense(dy));
        let mut dw = vec![
            0.0f32;
            if pw.is_some() {
                geom.c * geom.k * geom.k
            } else {
                0
            }
        ];
        let mut dx = Vec::with_capacity(if px.is_some() {
            geom.b * geom.c * geom.h * geom.w
        } else {
            0
        });
        dw_backward(
            &geom,
            x.storage(),
            weight.storage(),
            dy.storage(),
            &mut dx,
            &mut dw,
            px.is_some(),
            pw.is_some(),
        );
        if let Some(node) = pw {
            let shape = weight.layout().shape().clone();
            grads
                .register::<CpuBackend>(node.id, FlexTensor::from_data(TensorData::new(dw, shape)));
        }
        if let Some(node) = px {
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

    /// Height and width `(uq, vq)` of the phase planes (see [`split`]).
    fn grid(&self) -> (usize, usize) {
        let extra = (self.k - 1) / self.s;
        (self.oh + extra, self.ow + extra)
    }

    /// Every tap `(kh, kw)` in row-major order as `(start of its phase plane,
    /// offset of the tap inside it)` in a `[s·s][uq][vq]` buffer.
    fn taps(&self) -> Vec<(usize, usize)> {
        let (s, (uq, vq)) = (self.s, self.grid());
        (0..self.k * self.k)
            .map(|t| {
                let (kh, kw) = (t / self.k, t % self.k);
                (((kh % s) * s + kw % s) * uq * vq, (kh / s) * vq + kw / s)
            })
            .collect()
    }

    /// Flat spans `lo..hi` of output rows at width `vq`, a few rows at a time, so
    /// the span being accumulated stays in L1 while every tap passes over it.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (oh, ow, vq) = (self.oh, self.ow, self.grid().1);
        let rows = (2048 / vq).max(1);
        (0..oh)
            .step_by(rows)
            .map(move |r0| (r0 * vq, ((r0 + rows).min(oh) - 1) * vq + ow))
    }
}

/// Lanes of the vector accumulators.
const L: usize = 16;

/// Splits one zero-padded input plane by phase: `q[a·s + b][u][v] = X[s·u + a][s·v + b]`
/// where `X` is the plane padded by `p` on every side, `u < uq`, `v < vq`. Output
/// `(oh, ow)` of tap `(kh, kw)` then reads `q[phase][oh + kh/s][ow + kw/s]`, so one
/// tap over all outputs of a plane is one contiguous span of `q` against the
/// outputs laid out at width `vq` (columns `ow..vq` of each row unused): a long
/// vector loop however small the plane (EfficientNet's 7×7 and 14×14 planes made
/// row-by-row loops mostly remainder handling).
fn split(g: &Geom, plane: &[f32], q: &mut Vec<f32>) {
    let (s, p, (uq, vq)) = (g.s, g.p, g.grid());
    q.clear();
    q.resize(s * s * uq * vq, 0.0);
    for b in 0..s {
        // The first phase column inside the image, and its input column.
        let v0 = p.saturating_sub(b).div_ceil(s);
        let iw0 = s * v0 + b - p;
        if iw0 >= g.w || v0 >= vq {
            continue;
        }
        let n = (g.w - iw0).div_ceil(s).min(vq - v0);
        for a in 0..s {
            for u in 0..uq {
                let Some(ih) = (s * u + a).checked_sub(p).filter(|&r| r < g.h) else {
                    continue;
                };
                let row = &plane[ih * g.w + iw0..(ih + 1) * g.w];
                let dst = &mut q[((a * s + b) * uq + u) * vq + v0..][..n];
                if s == 1 {
                    dst.copy_from_slice(&row[..n]);
                } else {
                    for (d, &x) in dst.iter_mut().zip(row.iter().step_by(s)) {
                        *d = x;
                    }
                }
            }
        }
    }
}

/// The inverse gather of [`split`] for a gradient: appends `dX[p + ih][p + iw]`
/// for every input position of the plane (0 where no phase holds it).
fn gather(g: &Geom, dq: &[f32], dx: &mut Vec<f32>) {
    let (s, p, (uq, vq)) = (g.s, g.p, g.grid());
    for ih in 0..g.h {
        let (a, u) = ((ih + p) % s, (ih + p) / s);
        if u >= uq {
            dx.extend(std::iter::repeat_n(0.0, g.w));
            continue;
        }
        if s == 1 && p + g.w <= vq {
            dx.extend_from_slice(&dq[u * vq + p..u * vq + p + g.w]);
            continue;
        }
        let (mut b, mut v) = (p % s, p / s);
        for _ in 0..g.w {
            dx.push(if v < vq {
                dq[((a * s + b) * uq + u) * vq + v]
            } else {
                0.0
            });
            b += 1;
            if b == s {
                b = 0;
                v += 1;
            }
        }
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
    /// Appends `y[oh][ow] = Σ w[kh][kw] · x[oh·s + kh − p][ow·s + kw − p]` plane by
    /// plane: one [`axpy`] per tap and row block over the [`split`] plane.
    dw_forward(g: &Geom, x: &[f32], weight: &[f32], y: &mut Vec<f32>) {
        let (plane_in, kk, vq) = (g.h * g.w, g.k * g.k, g.grid().1);
        let taps = g.taps();
        let mut q = Vec::new();
        let mut o = vec![0.0f32; g.oh * vq];
        for bc in 0..g.b * g.c {
            let ch = bc % g.c;
            split(g, &x[bc * plane_in..(bc + 1) * plane_in], &mut q);
            let wp = &weight[ch * kk..(ch + 1) * kk];
            o.fill(0.0);
            for (lo, hi) in g.blocks() {
                for (&wt, &(ph, off)) in wp.iter().zip(&taps) {
                    let at = ph + off;
                    axpy(wt, &q[at + lo..at + hi], &mut o[lo..hi]);
                }
            }
            for r in 0..g.oh {
                y.extend_from_slice(&o[r * vq..r * vq + g.ow]);
            }
        }
    }
);

multiversion!(
    /// Both gradients, plane by plane, from `dy` laid out at width `vq` (zeros in
    /// the unused columns): `dw[c][t] += Σ dy · q[t]` (a dot per tap, in [`L`]
    /// lanes summed once per plane) when `want_dw`, and `dq[t] += w[t] · dy` (an
    /// [`axpy`] per tap), gathered back into `dx`, when `want_dx`.
    dw_backward(
        g: &Geom,
        x: &[f32],
        weight: &[f32],
        dy: &[f32],
        dx: &mut Vec<f32>,
        dw: &mut [f32],
        want_dx: bool,
        want_dw: bool
    ) {
        let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let (uq, vq) = g.grid();
        let taps = g.taps();
        let mut q = Vec::new();
        let mut dq = vec![0.0f32; g.s * g.s * uq * vq];
        // Columns `ow..vq` are never written: they stay 0.
        let mut gy = vec![0.0f32; g.oh * vq];
        let mut lanes = vec![[0.0f32; L]; kk];
        let mut tails = vec![0.0f32; kk];
        for bc in 0..g.b * g.c {
            let ch = bc % g.c;
            let gp = &dy[bc * plane_out..(bc + 1) * plane_out];
            for (dst, src) in gy.chunks_exact_mut(vq).zip(gp.chunks_exact(g.ow)) {
                dst[..g.ow].copy_from_slice(src);
            }
            if want_dw {
                split(g, &x[bc * plane_in..(bc + 1) * plane_in], &mut q);
                for (lo, hi) in g.blocks() {
                    for ((&(ph, off), lane), tail) in taps.iter().zip(&mut lanes).zip(&mut tails) {
                        let at = ph + off;
                        *tail += dot_lanes(&gy[lo..hi], &q[at + lo..at + hi], lane);
                    }
                }
                let out = &mut dw[ch * kk..(ch + 1) * kk];
                for ((o, lane), tail) in out.iter_mut().zip(&mut lanes).zip(&mut tails) {
                    *o += lane.iter().sum::<f32>() + *tail;
                    *lane = [0.0; L];
                    *tail = 0.0;
                }
            }
            if want_dx {
                let wp = &weight[ch * kk..(ch + 1) * kk];
                dq.fill(0.0);
                for (lo, hi) in g.blocks() {
                    for (&wt, &(ph, off)) in wp.iter().zip(&taps) {
                        let at = ph + off;
                        axpy(wt, &gy[lo..hi], &mut dq[at + lo..at + hi]);
                    }
                }
                gather(g, &dq, dx);
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
