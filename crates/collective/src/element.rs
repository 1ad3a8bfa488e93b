//! Element types the collectives work on, and the reductions.
//!
//! A sealed trait rather than a `dtype` enum keeps the reduction loops monomorphic (so they
//! vectorise) and lets the transports move any element type as bytes. Buffers travel in
//! native byte order: every supported platform is little-endian.

use std::fmt::Debug;

/// How values from different ranks are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Element-wise sum.
    Sum,
    /// Element-wise sum divided by the world size (integer division for integer types).
    Mean,
    /// Element-wise maximum.
    Max,
    /// Element-wise minimum.
    Min,
}

impl ReduceOp {
    /// Stable code used in wire headers.
    pub fn code(self) -> u8 {
        match self {
            ReduceOp::Sum => 0,
            ReduceOp::Mean => 1,
            ReduceOp::Max => 2,
            ReduceOp::Min => 3,
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A plain-old-data number type the collectives can reduce: `f32`, `f64`, `i64`, `u64`.
pub trait Element:
    Copy + Send + Sync + Default + PartialEq + Debug + sealed::Sealed + 'static
{
    /// Name for messages.
    const NAME: &'static str;
    /// Stable code used in wire headers, so ranks disagreeing on the type are detected.
    const CODE: u8;
    /// `dst[i] = dst[i] ⊕ src[i]` (Mean accumulates like Sum; see [`Element::divide`]).
    fn reduce(dst: &mut [Self], src: &[Self], op: ReduceOp);
    /// `dst[i] = a[i] ⊕ b[i]`.
    fn reduce3(dst: &mut [Self], a: &[Self], b: &[Self], op: ReduceOp);
    /// Divide every element by `n` (the last step of Mean).
    fn divide(buf: &mut [Self], n: usize);
}

macro_rules! float_element {
    ($t:ty, $name:literal, $code:literal) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const NAME: &'static str = $name;
            const CODE: u8 = $code;
            fn reduce(dst: &mut [Self], src: &[Self], op: ReduceOp) {
                match op {
                    ReduceOp::Sum | ReduceOp::Mean => {
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s)
                    }
                    ReduceOp::Max => dst.iter_mut().zip(src).for_each(|(d, s)| *d = d.max(*s)),
                    ReduceOp::Min => dst.iter_mut().zip(src).for_each(|(d, s)| *d = d.min(*s)),
                }
            }
            fn reduce3(dst: &mut [Self], a: &[Self], b: &[Self], op: ReduceOp) {
                let it = dst.iter_mut().zip(a.iter().zip(b));
                match op {
                    ReduceOp::Sum | ReduceOp::Mean => it.for_each(|(d, (x, y))| *d = *x + *y),
                    ReduceOp::Max => it.for_each(|(d, (x, y))| *d = x.max(*y)),
                    ReduceOp::Min => it.for_each(|(d, (x, y))| *d = x.min(*y)),
                }
            }
            fn divide(buf: &mut [Self], n: usize) {
                let inv = 1.0 / n as $t;
                buf.iter_mut().for_each(|v| *v *= inv);
            }
        }
    };
}

macro_rules! int_element {
    ($t:ty, $name:literal, $code:literal) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const NAME: &'static str = $name;
            const CODE: u8 = $code;
            fn reduce(dst: &mut [Self], src: &[Self], op: ReduceOp) {
                match op {
                    ReduceOp::Sum | ReduceOp::Mean => dst
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, s)| *d = d.wrapping_add(*s)),
                    ReduceOp::Max => dst.iter_mut().zip(src).for_each(|(d, s)| *d = (*d).max(*s)),
                    ReduceOp::Min => dst.iter_mut().zip(src).for_each(|(d, s)| *d = (*d).min(*s)),
                }
            }
            fn reduce3(dst: &mut [Self], a: &[Self], b: &[Self], op: ReduceOp) {
                let it = dst.iter_mut().zip(a.iter().zip(b));
                match op {
                    ReduceOp::Sum | ReduceOp::Mean => {
                        it.for_each(|(d, (x, y))| *d = x.wrapping_add(*y))
                    }
                    ReduceOp::Max => it.for_each(|(d, (x, y))| *d = (*x).max(*y)),
                    ReduceOp::Min => it.for_each(|(d, (x, y))| *d = (*x).min(*y)),
                }
            }
            fn divide(buf: &mut [Self], n: usize) {
                let n = n.max(1) as $t;
                buf.iter_mut().for_each(|v| *v /= n);
            }
        }
    };
}

float_element!(f32, "f32", 1);
float_element!(f64, "f64", 2);
int_element!(i64, "i64", 3);
int_element!(u64, "u64", 4);

/// View a slice of elements as bytes.
pub fn as_bytes<T: Element>(s: &[T]) -> &[u8] {
    // SAFETY: every `Element` is a plain number type without padding or invalid bit
    // patterns; the byte view covers exactly the same memory and lifetime.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

/// View a mutable slice of elements as bytes.
pub fn as_bytes_mut<T: Element>(s: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; every byte pattern is a valid value of every `Element`.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

/// Reinterpret bytes as elements (copying, so alignment does not matter). Trailing bytes
/// that do not form a whole element are ignored.
pub fn from_bytes<T: Element>(b: &[u8]) -> Vec<T> {
    let mut out = vec![T::default(); b.len() / std::mem::size_of::<T>()];
    let n = std::mem::size_of_val(out.as_slice());
    as_bytes_mut(&mut out).copy_from_slice(&b[..n]);
    out
}

/// Cast a byte slice to elements when it is suitably aligned and sized.
pub(crate) fn cast_slice<T: Element>(b: &[u8]) -> Option<&[T]> {
    let size = std::mem::size_of::<T>();
    if !b.len().is_multiple_of(size)
        || !(b.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return None;
    }
    // SAFETY: alignment and length checked above; any bit pattern is a valid `T`.
    Some(unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<T>(), b.len() / size) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions() {
        let mut a = [1.0f32, 5.0, -2.0];
        f32::reduce(&mut a, &[2.0, 1.0, -3.0], ReduceOp::Max);
        assert_eq!(a, [2.0, 5.0, -2.0]);
        f32::reduce(&mut a, &[2.0, 1.0, -3.0], ReduceOp::Sum);
        assert_eq!(a, [4.0, 6.0, -5.0]);
        let mut m = [4i64, 9];
        i64::divide(&mut m, 2);
        assert_eq!(m, [2, 4]);
        let mut u = [3u64, 1];
        u64::reduce(&mut u, &[1, 2], ReduceOp::Min);
        assert_eq!(u, [1, 1]);
        let mut d = [0.0f64; 2];
        f64::reduce3(&mut d, &[1.0, 2.0], &[3.0, 4.0], ReduceOp::Sum);
        assert_eq!(d, [4.0, 6.0]);
    }

    #[test]
    fn byte_round_trip() {
        let v = [1.5f32, -2.0];
        assert_eq!(from_bytes::<f32>(as_bytes(&v)), v.to_vec());
        assert_eq!(cast_slice::<f32>(as_bytes(&v)), Some(&v[..]));
    }
}
