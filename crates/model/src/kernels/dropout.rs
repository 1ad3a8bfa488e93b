//! Dropout with burn's arithmetic and a cheaper mask.
//!
//! burn's `Dropout::forward` samples a Bernoulli tensor element by element
//! through its generic distribution sampler (ChaCha, one float per element), then
//! multiplies twice (`x · mask`, then `· 1/keep`), each a node of the autodiff
//! graph. On host backends this draws one seed from the backend's RNG (so
//! `Backend::seed` still makes runs reproducible), expands it with wyrand into a
//! mask already holding `0` or `1/keep`, and multiplies once. The kept values are
//! bit for bit burn's (`x · 1 · s == x · s`); which elements drop differs, as
//! with any other seed.

use burn::nn::Dropout;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};

use super::on_host;

/// `dropout.forward(x)`, faster on host backends; identity without autodiff.
pub fn dropout<B: Backend, const D: usize>(dropout: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    let device = x.device();
    if !B::ad_enabled(&device) || dropout.prob == 0.0 {
        return x;
    }
    if !on_host::<B>() || dropout.prob >= 1.0 {
        return dropout.forward(x);
    }
    let seed_draw = Tensor::<B, 1>::random([2], Distribution::Default, &device).into_data();
    let seed = seed_draw
        .iter::<f32>()
        .fold(0x9e37_79b9_7f4a_7c15u64, |acc, v| {
            acc.rotate_left(32) ^ u64::from(v.to_bits())
        });
    let shape = x.shape();
    let mask = mask(shape.num_elements(), 1.0 - dropout.prob, seed);
    // The mask in x's dtype (half under mixed precision).
    let dtype = x.dtype();
    x * Tensor::<B, D>::from_data(TensorData::new(mask, shape), (&device, dtype))
}

/// `n` values, each `1/keep` with probability `keep`, else `0`.
fn mask(n: usize, keep: f64, seed: u64) -> Vec<f32> {
    let scale = (1.0 / keep) as f32;
    // Keep when a uniform 32-bit draw falls below keep · 2³².
    let threshold = (keep * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let pick = |r: u32| if r < threshold { scale } else { 0.0 };
    let mut state = seed;
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let r = wyrand(&mut state);
        out.push(pick(r as u32));
        out.push(pick((r >> 32) as u32));
    }
    out.truncate(n);
    out
}

/// One step of wyrand (Wang Yi's 64-bit generator).
#[inline(always)]
fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) ^ t) as u64
}

#[cfg(test)]
mod tests {
    use burn::nn::DropoutConfig;

    use super::*;
    use crate::backend::{CpuAutodiff, CpuBackend};

    #[test]
    fn mask_keeps_the_configured_share_with_burns_scale() {
        let m = mask(1_000_001, 0.9, 42);
        assert_eq!(m.len(), 1_000_001);
        let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / m.len() as f64;
        assert!((kept - 0.9).abs() < 0.002, "kept {kept}");
        assert!(m.iter().all(|&v| v == 0.0 || v == (1.0 / 0.9f64) as f32));
        assert_ne!(m, mask(1_000_001, 0.9, 43));
    }

    #[test]
    fn seeded_backend_gives_the_same_mask_and_gradient_is_the_mask() {
        let device = Default::default();
        let layer = DropoutConfig::new(0.1).init();
        let run = || {
            CpuAutodiff::seed(&device, 7);
            let x = Tensor::<CpuAutodiff, 2>::ones([64, 48], &device).require_grad();
            let y = dropout(&layer, x.clone());
            let grads = y.clone().sum().backward();
            (y.into_data(), x.grad(&grads).expect("grad").into_data())
        };
        // The backend RNG is one per process and other tests of this binary draw
        // from it in parallel: one of them may draw between our seed and our mask.
        // The same seed must give the same mask in one of a few tries (three
        // interleavings in a row do not happen by chance; a kernel that ignores
        // the seed fails every try).
        let same = (0..5).any(|_| {
            let (y1, _) = run();
            let (y2, _) = run();
            y1 == y2
        });
        assert!(same, "the same seed gave different masks in every try");
        // d(sum(x · m))/dx = m = y for x = 1 (one run: no race).
        let (y1, g1) = run();
        assert_eq!(y1, g1);
    }

    #[test]
    fn identity_without_autodiff() {
        let layer = DropoutConfig::new(0.5).init();
        let x = Tensor::<CpuBackend, 1>::ones([100], &Default::default());
        assert_eq!(dropout(&layer, x.clone()).into_data(), x.into_data());
    }
}
