//! Depthwise 2-D convolution (one filter per channel, square kernel, equal
//! stride and padding on both axes) as one autodiff node on the Flex backend.
//!
//! The forward is burn-flex's own depthwise fast path (a direct NCHW kernel). The
//! backward is what this file is for: burn 0.21's default `conv2d_weight_backward`
//! for grouped convolutions loops over the groups — for EfficientNet's 96 to 1152
//! channels that is one slice, one tiny convolution and one `slice_assign` of the
//! whole gradient per channel — and its input gradient is a grouped transposed
//! convolution. Here both gradients are direct loops over each `(image, channel)`
//! plane without im2col:
//! - `dx[ih][iw] += w[kh][kw] · dy[oh][ow]` for `ih = oh·s + kh − p`, `iw = ow·s + kw − p`
//!   (a row of `dy` scaled into a row of `dx`: contiguous at stride 1);
//! - `dw[kh][kw] = Σ dy[oh][ow] · x[ih][iw]` over the images and output positions.

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
/// the fused node on [`CpuAutodiff`], burn-flex's kernel on [`CpuBackend`], burn's
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
    burn::tensor::module::conv2d(x, weight, None, options)
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
            grads.register::<CpuBackend>(node.id, FlexTensor::from_data(TensorData::new(dw, shape)));
        }
        if let Some(node) = px {
            let weight = dense(weight);
            let mut dx = vec![0.0f32; geom.b * geom.c * geom.h * geom.w];
            dw_input(&geom, weight.storage(), dy.storage(), &mut dx);
            let shape = [geom.b, geom.c, geom.h, geom.w];
            grads.register::<CpuBackend>(node.id, FlexTensor::from_data(TensorData::new(dx, shape)));
        }
    }
}

fn dw_autodiff(
    x: FloatTensor<CpuAutodiff>,
    weight: FloatTensor<CpuAutodiff>,
    options: ConvOptions<2>,
) -> FloatTensor<CpuAutodiff> {
    let y = <CpuBackend as ModuleOps<CpuBackend>>::conv2d(
        x.primitive.clone(),
        weight.primitive.clone(),
        None,
        options.clone(),
    );
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
        Self::new([d[0], d[1], d[2], d[3]], k, options.stride[0], options.padding[0])
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
        (oh * self.s + kh).checked_sub(self.p).filter(|&r| r < self.h)
    }
}

/// `Σ a[i]·b[i·step]` over `a`, in 16 accumulators (vectorises at `step == 1`).
#[inline(always)]
fn dot(a: &[f32], b: &[f32], step: usize) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    if step == 1 {
        let b = &b[..a.len()];
        let (mut ac, mut bc) = (a.chunks_exact(L), b.chunks_exact(L));
        for (x, y) in (&mut ac).zip(&mut bc) {
            for l in 0..L {
                acc[l] = x[l].mul_add(y[l], acc[l]);
            }
        }
        let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
        return acc.iter().sum::<f32>() + tail;
    }
    for (i, x) in a.iter().enumerate() {
        acc[i % L] = x.mul_add(b[i * step], acc[i % L]);
    }
    acc.iter().sum()
}

multiversion!(
    /// `dw[c][kh][kw] = Σ_b Σ_{oh,ow} dy · x` (see the module docs).
    dw_weight(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
        let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let cols: Vec<_> = (0..g.k).map(|kw| g.cols(kw)).collect();
        for bc in 0..g.b * g.c {
            let ch = bc % g.c;
            let xp = &x[bc * plane_in..(bc + 1) * plane_in];
            let gp = &dy[bc * plane_out..(bc + 1) * plane_out];
            let out = &mut dw[ch * kk..(ch + 1) * kk];
            for oh in 0..g.oh {
                let grow = &gp[oh * g.ow..(oh + 1) * g.ow];
                for kh in 0..g.k {
                    let Some(ih) = g.row(oh, kh) else { continue };
                    let xrow = &xp[ih * g.w..(ih + 1) * g.w];
                    for (kw, c) in cols.iter().enumerate() {
                        if c.is_empty() {
                            continue;
                        }
                        let first = c.start * g.s + kw - g.p;
                        out[kh * g.k + kw] += dot(&grow[c.clone()], &xrow[first..], g.s);
                    }
                }
            }
        }
    }
);

multiversion!(
    /// `dx[ih][iw] += w[kh][kw] · dy[oh][ow]` (see the module docs).
    dw_input(g: &Geom, weight: &[f32], dy: &[f32], dx: &mut [f32]) {
        let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        for bc in 0..g.b * g.c {
            let ch = bc % g.c;
            let wp = &weight[ch * kk..(ch + 1) * kk];
            let gp = &dy[bc * plane_out..(bc + 1) * plane_out];
            let xp = &mut dx[bc * plane_in..(bc + 1) * plane_in];
            for oh in 0..g.oh {
                let grow = &gp[oh * g.ow..(oh + 1) * g.ow];
                for kh in 0..g.k {
                    let Some(ih) = g.row(oh, kh) else { continue };
                    let xrow = &mut xp[ih * g.w..(ih + 1) * g.w];
                    for kw in 0..g.k {
                        let wv = wp[kh * g.k + kw];
                        let cols = g.cols(kw);
                        if g.s == 1 {
                            let off = kw as isize - g.p as isize;
                            let start = (cols.start as isize + off) as usize;
                            let dst = &mut xrow[start..start + cols.len()];
                            for (d, &v) in dst.iter_mut().zip(&grow[cols]) {
                                *d += wv * v;
                            }
                        } else {
                            for ow in cols {
                                xrow[ow * g.s + kw - g.p] += wv * grow[ow];
                            }
                        }
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
    }
}
