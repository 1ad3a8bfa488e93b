//! AdamW over flat fp32 vectors, with parameter groups as ranges.
//!
//! Groups carry their own base learning rate (encoders vs fusion and head) and
//! whether decoupled weight decay applies (not to biases and normalisation
//! weights, as in BERT fine-tuning recipes). The state — master weights, first
//! and second moments, step — is what a checkpoint saves; restoring it continues
//! the exact same sequence of updates.

use serde::{Deserialize, Serialize};

/// A contiguous range of the flat vector with its optimizer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    /// First element.
    pub start: usize,
    /// One past the last element.
    pub end: usize,
    /// Base learning rate (before the schedule's factor).
    pub lr: f64,
    /// Whether weight decay applies.
    pub decay: bool,
}

/// AdamW hyper-parameters shared by all groups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// beta1.
    pub beta1: f64,
    /// beta2.
    pub beta2: f64,
    /// epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// Optimizer state over a flat parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatAdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Groups covering the vector (ranges may be in any order, must not overlap).
    pub groups: Vec<ParamGroup>,
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
    /// Updates taken.
    pub step: u64,
}

impl FlatAdamW {
    /// Fresh state for `len` parameters.
    pub fn new(config: AdamWConfig, groups: Vec<ParamGroup>, len: usize) -> Self {
        Self {
            config,
            groups,
            m: vec![0.0; len],
            v: vec![0.0; len],
            step: 0,
        }
    }

    /// One update of `params` with `grads`, the schedule's factor applied to every
    /// group's base learning rate.
    pub fn update(&mut self, params: &mut [f32], grads: &[f32], lr_factor: f64) {
        assert_eq!(
            params.len(),
            self.m.len(),
            "parameter vector length changed"
        );
        assert_eq!(grads.len(), self.m.len(), "gradient vector length changed");
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
        for g in &self.groups {
            let lr = g.lr * lr_factor;
            let decay = if g.decay {
                (1.0 - lr * c.weight_decay) as f32
            } else {
                1.0
            };
            let step_size = (lr / bc1) as f32;
            let inv_bc2_sqrt = (1.0 / bc2.sqrt()) as f32;
            let eps = c.eps as f32;
            let r = g.start..g.end;
            let (p, gr) = (&mut params[r.clone()], &grads[r.clone()]);
            let (m, v) = (&mut self.m[r.clone()], &mut self.v[r]);
            for i in 0..p.len() {
                let gi = gr[i];
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let denom = v[i].sqrt() * inv_bc2_sqrt + eps;
                p[i] = p[i] * decay - step_size * m[i] / denom;
            }
        }
    }
}

/// Global L2 norm of `grads` (in f64 to be order-stable enough for clipping).
pub fn global_norm(grads: &[f32]) -> f64 {
    grads
        .iter()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt()
}

/// Scales `grads` so their global norm is at most `max_norm`; returns the norm
/// before clipping (what `train/grad_norm` logs).
pub fn clip_global_norm(grads: &mut [f32], max_norm: Option<f64>) -> f64 {
    let norm = global_norm(grads);
    if let Some(max) = max_norm
        && norm > max
        && norm.is_finite()
    {
        let scale = (max / (norm + 1e-6)) as f32;
        grads.iter_mut().for_each(|g| *g *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: AdamWConfig = AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
    };

    #[test]
    fn first_step_matches_pytorch_adamw() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.1) with p=1.0, grad=0.5:
        // p ← 1·(1−0.01) − 0.1·(0.05/0.1)/(sqrt(0.00025/0.001)+1e-8) = 0.89
        let groups = vec![ParamGroup {
            start: 0,
            end: 1,
            lr: 0.1,
            decay: true,
        }];
        let mut opt = FlatAdamW::new(CFG, groups, 1);
        let mut p = [1.0f32];
        opt.update(&mut p, &[0.5], 1.0);
        assert!((p[0] - 0.89).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    fn groups_have_their_own_lr_and_decay() {
        let groups = vec![
            ParamGroup {
                start: 0,
                end: 1,
                lr: 0.1,
                decay: false,
            },
            ParamGroup {
                start: 1,
                end: 2,
                lr: 0.0,
                decay: true,
            },
        ];
        let mut opt = FlatAdamW::new(CFG, groups, 2);
        let mut p = [1.0f32, 1.0];
        opt.update(&mut p, &[0.0, 0.5], 1.0);
        assert_eq!(
            p,
            [1.0, 1.0],
            "zero grad moves nothing; zero lr moves nothing"
        );
    }

    #[test]
    fn clipping_scales_to_max_norm_and_reports_the_raw_norm() {
        let mut g = [3.0f32, 4.0];
        assert_eq!(clip_global_norm(&mut g, Some(1.0)), 5.0);
        assert!((global_norm(&g) - 1.0).abs() < 1e-5);
        let mut g = [0.3f32, 0.4];
        clip_global_norm(&mut g, Some(1.0));
        assert_eq!(g, [0.3, 0.4]);
    }
}
