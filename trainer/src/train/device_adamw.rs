//! AdamW as burn tensor ops on the device: the same update as the flat host
//! [`FlatAdamW`] (same hyper-parameters, groups, bias correction and step count),
//! with the fp32 master weights and both moments kept as one `f32` tensor per
//! [`Bucket`] where the gradients are, so a CUDA step never copies weights or moments
//! through the host.
//!
//! The host state stays the source of truth for what is saved: [`DeviceAdamW::new`]
//! starts from a [`FlatAdamW`] and master vector (fresh, or restored from a
//! checkpoint), and [`DeviceAdamW::to_host`] writes the device state back into them
//! when a checkpoint, a histogram or a replica check needs it — so checkpoints have
//! one format whichever path trained them.
//!
//! Parameter groups become two per-element tensors built once (base learning rate,
//! and weight decay where it applies), so an update is a fixed dozen element-wise
//! kernels per bucket whatever the number of groups.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};

use super::adamw::{AdamWConfig, FlatAdamW};
use super::bucket::Bucket;

/// One bucket's state.
struct BucketState<B: Backend> {
    master: Tensor<B, 1>,
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
    /// Base learning rate of each element (its group's; 0 outside every group).
    lr: Tensor<B, 1>,
    /// `weight_decay` where the element's group decays, else 0.
    wd: Tensor<B, 1>,
}

/// AdamW state on the device, bucket by bucket.
pub struct DeviceAdamW<B: Backend> {
    config: AdamWConfig,
    buckets: Vec<Bucket>,
    state: Vec<BucketState<B>>,
}

fn f32_tensor<B: Backend>(v: &[f32], device: &B::Device) -> Tensor<B, 1> {
    // Explicitly f32: under mixed precision the device's default float dtype is half.
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), (device, DType::F32))
}

fn host<B: Backend>(t: &Tensor<B, 1>) -> Vec<f32> {
    t.clone()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32")
}

impl<B: Backend> DeviceAdamW<B> {
    /// The device copy of `opt` and `master` (flat, in layout order), cut into `buckets`.
    pub fn new(opt: &FlatAdamW, master: &[f32], buckets: &[Bucket], device: &B::Device) -> Self {
        let len = buckets.last().map_or(0, |b| b.range().end);
        let mut lr = vec![0.0f32; len];
        let mut wd = vec![0.0f32; len];
        for g in &opt.groups {
            lr[g.start..g.end].fill(g.lr as f32);
            if g.decay {
                wd[g.start..g.end].fill(opt.config.weight_decay as f32);
            }
        }
        let state = buckets
            .iter()
            .map(|b| {
                let r = b.range();
                BucketState {
                    master: f32_tensor(&master[r.clone()], device),
                    m: f32_tensor(&opt.m[r.clone()], device),
                    v: f32_tensor(&opt.v[r.clone()], device),
                    lr: f32_tensor(&lr[r.clone()], device),
                    wd: f32_tensor(&wd[r], device),
                }
            })
            .collect();
        Self {
            config: opt.config,
            buckets: buckets.to_vec(),
            state,
        }
    }

    /// The master weights of each bucket (what the module's weights are written from).
    pub fn masters(&self) -> Vec<Tensor<B, 1>> {
        self.state.iter().map(|s| s.master.clone()).collect()
    }

    /// Update number `step` (1 for the first: the bias correction's exponent, which the
    /// host [`FlatAdamW::step`] counts) with one `f32` gradient tensor per bucket, the
    /// schedule's factor applied to every group's base learning rate.
    pub fn update(&mut self, grads: Vec<Tensor<B, 1>>, step: u64, lr_factor: f64) {
        assert_eq!(grads.len(), self.state.len(), "one gradient per bucket");
        let c = self.config;
        let t = step.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
        let step_scale = (lr_factor / bc1) as f32;
        let inv_bc2_sqrt = (1.0 / bc2.sqrt()) as f32;
        let (factor, eps) = (lr_factor as f32, c.eps as f32);
        for (s, g) in self.state.iter_mut().zip(grads) {
            // m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²
            s.m = s.m.clone().mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
            s.v = s.v.clone().mul_scalar(b2) + (g.clone() * g).mul_scalar(1.0 - b2);
            // p ← p·(1 − lr·wd) − (lr/bc₁)·m / (√v/√bc₂ + ε)
            let decay = (s.lr.clone() * s.wd.clone())
                .mul_scalar(-factor)
                .add_scalar(1.0);
            let denom = s.v.clone().sqrt().mul_scalar(inv_bc2_sqrt).add_scalar(eps);
            let update = s.lr.clone().mul_scalar(step_scale) * s.m.clone() / denom;
            s.master = s.master.clone() * decay - update;
        }
    }

    /// Multiplies every bucket's gradient by `scale` in place of a host loop (clipping).
    pub fn scale(grads: Vec<Tensor<B, 1>>, scale: f32) -> Vec<Tensor<B, 1>> {
        grads.into_iter().map(|g| g.mul_scalar(scale)).collect()
    }

    /// The global L2 norm of the bucket gradients (one scalar read from the device).
    pub fn global_norm(grads: &[Tensor<B, 1>]) -> f64 {
        let sq: f64 = grads
            .iter()
            .map(|g| {
                let s: f32 = (g.clone() * g.clone())
                    .sum()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .expect("converted to f32")[0];
                f64::from(s)
            })
            .sum();
        sq.sqrt()
    }

    /// Writes the device state into `opt`'s moments and `master` (flat, layout order);
    /// `opt.step` is the host's already. For checkpoints, histograms, replica checks.
    pub fn to_host(&self, opt: &mut FlatAdamW, master: &mut [f32]) {
        for (b, s) in self.buckets.iter().zip(&self.state) {
            let r = b.range();
            master[r.clone()].copy_from_slice(&host(&s.master));
            opt.m[r.clone()].copy_from_slice(&host(&s.m));
            opt.v[r].copy_from_slice(&host(&s.v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::adamw::ParamGroup;
    use crate::train::bucket::buckets;
    use crate::train::flat::{ParamLayout, ParamSlot};

    type B = vigil_model::backend::CpuBackend;

    const CFG: AdamWConfig = AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };

    /// A small seeded generator (no dependency on `rand`'s stream across versions).
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    fn layout(sizes: &[usize]) -> ParamLayout {
        let mut l = ParamLayout::default();
        for &n in sizes {
            l.slots.push(ParamSlot {
                id: burn::module::ParamId::new(),
                path: String::new(),
                shape: vec![n],
                offset: l.len,
                numel: n,
            });
            l.len += n;
        }
        l
    }

    #[test]
    fn device_updates_match_the_host_adamw_to_1e_6_over_many_steps() {
        // Three groups with their own learning rate and decay, across bucket borders.
        let l = layout(&[7, 300, 5, 64, 129]);
        let groups = vec![
            ParamGroup {
                start: 0,
                end: 312,
                lr: 2e-3,
                decay: true,
            },
            ParamGroup {
                start: 312,
                end: 376,
                lr: 2e-3,
                decay: false,
            },
            ParamGroup {
                start: 376,
                end: 505,
                lr: 1e-2,
                decay: true,
            },
        ];
        let mut host = FlatAdamW::new(CFG, groups, l.len);
        let mut master = values(l.len, 1, 1.0);
        let b = buckets(&l, 200);
        assert_eq!(b.len(), 3);
        let device = Default::default();
        let mut dev = DeviceAdamW::<B>::new(&host, &master, &b, &device);
        for step in 0..40u64 {
            let grads = values(l.len, 100 + step, 0.1 + step as f32 * 0.05);
            let factor = 0.5 + (step % 7) as f64 / 10.0;
            host.update(&mut master, &grads, factor);
            let bucket_grads = b
                .iter()
                .map(|b| f32_tensor::<B>(&grads[b.range()], &device))
                .collect();
            dev.update(bucket_grads, host.step, factor);
        }
        let mut opt = host.clone();
        let mut got = vec![0.0; l.len];
        dev.to_host(&mut opt, &mut got);
        let worst = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        assert!(
            worst(&got, &master) < 1e-6,
            "weights: {}",
            worst(&got, &master)
        );
        assert!(
            worst(&opt.m, &host.m) < 1e-6,
            "m: {}",
            worst(&opt.m, &host.m)
        );
        assert!(
            worst(&opt.v, &host.v) < 1e-6,
            "v: {}",
            worst(&opt.v, &host.v)
        );
        assert_eq!(opt.step, host.step);
    }

    #[test]
    fn a_resumed_state_continues_where_the_host_left_off() {
        let l = layout(&[10, 6]);
        let groups = vec![ParamGroup {
            start: 0,
            end: 16,
            lr: 1e-2,
            decay: true,
        }];
        let mut host = FlatAdamW::new(CFG, groups, l.len);
        let mut master = values(l.len, 3, 1.0);
        for step in 0..5 {
            host.update(&mut master, &values(l.len, 10 + step, 0.2), 1.0);
        }
        // Hand over to the device at step 5 (a checkpoint restored), take 5 more.
        let b = buckets(&l, 8);
        let device = Default::default();
        let mut dev = DeviceAdamW::<B>::new(&host, &master, &b, &device);
        let mut reference = (host.clone(), master.clone());
        for step in 5..10 {
            let g = values(l.len, 10 + step, 0.2);
            reference.0.update(&mut reference.1, &g, 1.0);
            host.step += 1;
            let bg = b
                .iter()
                .map(|b| f32_tensor::<B>(&g[b.range()], &device))
                .collect();
            dev.update(bg, host.step, 1.0);
        }
        dev.to_host(&mut host, &mut master);
        let worst = master
            .iter()
            .zip(&reference.1)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "{worst}");
    }

    #[test]
    fn norm_and_scale_match_the_host_clipping() {
        let device = Default::default();
        let a = values(100, 5, 3.0);
        let b = values(37, 6, 3.0);
        let flat: Vec<f32> = a.iter().chain(&b).copied().collect();
        let t = vec![f32_tensor::<B>(&a, &device), f32_tensor::<B>(&b, &device)];
        let norm = DeviceAdamW::<B>::global_norm(&t);
        let want = crate::train::adamw::global_norm(&flat);
        assert!((norm - want).abs() < 1e-5 * want, "{norm} vs {want}");
        let scaled = DeviceAdamW::<B>::scale(t, 0.5);
        assert!((DeviceAdamW::<B>::global_norm(&scaled) - want / 2.0).abs() < 1e-5 * want);
    }
}
