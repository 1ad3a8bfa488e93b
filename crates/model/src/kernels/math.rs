//! Vectorisable `erf`, `exp` and the exact (erf) GELU with its derivative, on
//! `f32` slices.
//!
//! burn-flex evaluates GELU one element at a time through `libm::erff` (and
//! `expf` in the backward), which made GELU about a tenth of the MiniLM step.
//! These are branch-free polynomial forms the compiler vectorises; the slice loops
//! are compiled a second time for AVX-512 / AVX2 and picked at run time.
//!
//! Accuracy (checked by the tests below against `f64` references): `erf` within
//! 4e-7 absolute (3.3e-7 measured, a few ulp near ±1; Eigen's rational
//! approximation on [-4, 4], outside which `erf` is ±1 in `f32`), `exp` within
//! 2 ulp (Cephes' `expf` polynomial). GELU stays the
//! exact-erf GELU to float rounding — not the tanh approximation.

use std::f32::consts::FRAC_1_SQRT_2;

/// `erf(x)`, rational approximation (Eigen `generic_fast_erf_float`).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2.mul_add(-2.726_142_3e-10, 2.770_681_4e-8);
    p = x2.mul_add(p, -2.101_024e-6);
    p = x2.mul_add(p, -5.692_506_4e-5);
    p = x2.mul_add(p, -7.349_906_3e-4);
    p = x2.mul_add(p, -2.954_600_1e-3);
    p = x2.mul_add(p, -1.609_603_3e-2);
    let mut q = x2.mul_add(-1.456_607_2e-5, -2.133_740_6e-4);
    q = x2.mul_add(q, -1.682_827e-3);
    q = x2.mul_add(q, -7.373_329e-3);
    q = x2.mul_add(q, -1.426_474e-2);
    x * p / q
}

/// `exp(x)` for `x <= 0` (Cephes `expf`); 0 below -87.3, where `expf` leaves
/// the normal range (so masked attention scores give exactly 0).
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    let zero = x < -87.3;
    let x = x.clamp(-87.3, 0.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = n.mul_add(-0.693_359_4, x);
    let r = n.mul_add(2.121_944_4e-4, r);
    let mut p = r.mul_add(1.987_569_1e-4, 1.398_2e-3);
    p = r.mul_add(p, 8.333_452e-3);
    p = r.mul_add(p, 4.166_579_6e-2);
    p = r.mul_add(p, 1.666_666_5e-1);
    p = r.mul_add(p, 0.5);
    let y = (p * r).mul_add(r, r) + 1.0;
    // 2^n from the float's bits: n + 127 is an integer in [1, 127], so
    // `n + 127 + 2^23` holds it in the low mantissa bits, and shifting them into
    // the exponent field builds 2^n. (`n as i32` is a saturating cast that LLVM
    // does not vectorise: it made this a scalar loop inside every SIMD one.)
    let biased = (n + (8_388_608.0 + 127.0)).to_bits();
    let y = y * f32::from_bits(biased.wrapping_shl(23));
    if zero { 0.0 } else { y }
}

/// Number of independent accumulators in [`lane_sum`] / [`lane_max`] (vectorises).
pub const LANES: usize = 16;

/// Sum of `f(i)` over `0..n`, in [`LANES`] accumulators.
#[inline(always)]
pub fn lane_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let full = n / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    let mut tail = 0.0;
    for i in full..n {
        tail += f(i);
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest value of `x` (`-inf` if empty), in [`LANES`] accumulators.
#[inline(always)]
pub fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&acc)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// Exact GELU, `0.5·x·(1 + erf(x/√2))`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// `d gelu / dx`: `Φ(x) + x·φ(x)`.
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
    let pdf = INV_SQRT_2PI * exp_neg(-0.5 * x * x);
    cdf + x * pdf
}

/// `σ(z) = 1 / (1 + e^-z)` through [`exp_neg`] of `-|z|` (no overflow either side).
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    let e = exp_neg(-z.abs());
    let s = 1.0 / (1.0 + e);
    if z >= 0.0 { s } else { e * s }
}

/// CLIP's quick GELU, `x·σ(1.702·x)`.
#[inline(always)]
pub fn quick_gelu(x: f32) -> f32 {
    x * sigmoid(1.702 * x)
}

/// `d quick_gelu / dx`: `σ(1.702x) + 1.702·x·σ(1.702x)·(1 − σ(1.702x))`.
#[inline(always)]
pub fn quick_gelu_grad(x: f32) -> f32 {
    let s = sigmoid(1.702 * x);
    s + 1.702 * x * s * (1.0 - s)
}

/// Defines `pub fn $name` whose body is compiled for AVX-512, AVX2+FMA and the
/// baseline, picking the best the CPU has at run time.
macro_rules! multiversion {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) { imp($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                {
                    // SAFETY: the CPU supports the features `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for `avx2`.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion!(
    /// `out[i] = gelu(x[i])`.
    gelu_slice(x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len());
        for (o, &v) in out.iter_mut().zip(x) {
            *o = gelu(v);
        }
    }
);

multiversion!(
    /// `grad[i] *= gelu'(x[i])` (the backward, in place on the incoming gradient).
    gelu_backward_inplace(x: &[f32], grad: &mut [f32]) {
        assert_eq!(x.len(), grad.len());
        for (g, &v) in grad.iter_mut().zip(x) {
            *g *= gelu_grad(v);
        }
    }
);

multiversion!(
    /// `out[i] = grad[i] * gelu'(x[i])`.
    gelu_backward_slice(x: &[f32], grad: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), grad.len());
        assert_eq!(x.len(), out.len());
        for ((o, &g), &v) in out.iter_mut().zip(grad).zip(x) {
            *o = g * gelu_grad(v);
        }
    }
);

multiversion!(
    /// `out[i] = quick_gelu(x[i])`.
    quick_gelu_slice(x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len());
        for (o, &v) in out.iter_mut().zip(x) {
            *o = quick_gelu(v);
        }
    }
);

multiversion!(
    /// `grad[i] *= quick_gelu'(x[i])` (in place on the incoming gradient).
    quick_gelu_backward_inplace(x: &[f32], grad: &mut [f32]) {
        assert_eq!(x.len(), grad.len());
        for (g, &v) in grad.iter_mut().zip(x) {
            *g *= quick_gelu_grad(v);
        }
    }
);

multiversion!(
    /// `out[i] = grad[i] * quick_gelu'(x[i])`.
    quick_gelu_backward_slice(x: &[f32], grad: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), grad.len());
        assert_eq!(x.len(), out.len());
        for ((o, &g), &v) in out.iter_mut().zip(grad).zip(x) {
            *o = g * quick_gelu_grad(v);
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 (libm's, correctly rounded to well below f32 precision).
    fn erf64(x: f64) -> f64 {
        libm_erf(x)
    }

    // Abramowitz–Stegun would be too coarse for a reference; use the series /
    // continued fraction through `f64` arithmetic instead.
    fn libm_erf(x: f64) -> f64 {
        // erf via the Maclaurin series for |x| < 3, erfc continued fraction beyond.
        let a = x.abs();
        let r = if a < 3.0 {
            let mut sum = a;
            let mut term = a;
            let x2 = a * a;
            let mut n = 0.0;
            loop {
                n += 1.0;
                term *= -x2 / n;
                let add = term / (2.0 * n + 1.0);
                sum += add;
                if add.abs() <= 1e-17 * sum.abs() {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // Lentz continued fraction for erfc.
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
        };
        r.copysign(x)
    }

    fn grid() -> impl Iterator<Item = f32> {
        (-24_000..=24_000).map(|i| i as f32 * 5e-4)
    }

    #[test]
    fn erf_within_4e_7() {
        let worst = grid()
            .map(|x| (erf(x) as f64 - erf64(x as f64)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 4e-7, "max |erf error| {worst:e}");
    }

    #[test]
    fn exp_within_2_ulp() {
        assert_eq!(exp_neg(-1e4), 0.0);
        for x in (0..=87_000).map(|i| -(i as f32) * 1e-3) {
            let want = (x as f64).exp();
            let got = exp_neg(x) as f64;
            assert!(
                (got - want).abs() <= 2.5 * f32::EPSILON as f64 * want,
                "exp({x}) = {got:e}, want {want:e}"
            );
        }
    }

    #[test]
    fn gelu_and_grad_match_f64() {
        let mut worst = (0.0f64, 0.0f64);
        for x in grid() {
            let xd = x as f64;
            let cdf = 0.5 * (1.0 + erf64(xd / 2f64.sqrt()));
            let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let e = ((gelu(x) as f64 - xd * cdf).abs()) / xd.abs().max(1.0);
            let g = (gelu_grad(x) as f64 - (cdf + xd * pdf)).abs();
            worst = (worst.0.max(e), worst.1.max(g));
        }
        assert!(worst.0 < 4e-7 && worst.1 < 6e-7, "worst {worst:?}");
    }

    #[test]
    fn slices_agree_with_scalar() {
        let x: Vec<f32> = grid().step_by(97).collect();
        let g: Vec<f32> = x.iter().map(|v| v.sin()).collect();
        let mut out = vec![0.0; x.len()];
        gelu_slice(&x, &mut out);
        assert!(out.iter().zip(&x).all(|(o, &v)| *o == gelu(v)));
        let mut back = vec![0.0; x.len()];
        gelu_backward_slice(&x, &g, &mut back);
        let mut inplace = g.clone();
        gelu_backward_inplace(&x, &mut inplace);
        for i in 0..x.len() {
            let want = g[i] * gelu_grad(x[i]);
            assert!((back[i] - want).abs() <= 1e-6 * want.abs().max(1e-30));
            assert_eq!(back[i], inplace[i]);
        }
    }
}
