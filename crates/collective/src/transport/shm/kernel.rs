//! The reduction step both shared-memory all-reduces share: rank `r` reduces its range of
//! the buffer across every slot and writes the result back into *every* slot.
//!
//! Writing the result everywhere (instead of each rank later copying the others' ranges out
//! of their slots) saves a pass over the buffer and a barrier: the data just read into the
//! core's cache is written back from there, so memory sees about `2S` of traffic per rank
//! instead of `2.5S`, and after the second barrier every slot already holds the full
//! result. Working in cache-sized chunks keeps the accumulator and the destination lines in
//! L2 between the read and the writes.

use std::ops::Range;

use crate::element::{Element, ReduceOp};
use crate::transport::ring::chunks;

/// Elements per chunk (64 KiB of `f32`): well inside L2.
const CHUNK_BYTES: usize = 64 << 10;

/// Reduce `range` into `acc` (which holds this rank's contribution: its own slot for the
/// in-place all-reduce, the caller's buffer for the copying one) adding every other slot,
/// divide for Mean, and copy the result into every other slot.
///
/// # Safety
/// `acc` and every pointer in `slots` must be valid for `range.end` elements; between the
/// barriers that surround this call no other thread or process may access `range` of any
/// slot, and `acc` must not overlap another rank's slot.
pub(crate) unsafe fn reduce_and_spread<T: Element>(
    slots: &[*mut T],
    rank: usize,
    acc: *mut T,
    range: Range<usize>,
    op: ReduceOp,
) {
    let n = slots.len();
    let per_chunk = (CHUNK_BYTES / std::mem::size_of::<T>()).max(1);
    for c in chunks(range, per_chunk) {
        // SAFETY: per the contract, this rank has exclusive access to `c` in every slot.
        let acc = unsafe { std::slice::from_raw_parts_mut(acc.add(c.start), c.len()) };
        for (q, &p) in slots.iter().enumerate() {
            if q != rank {
                // SAFETY: as above; slot q is a different mapping range than ours.
                let theirs = unsafe { std::slice::from_raw_parts(p.add(c.start), c.len()) };
                T::reduce(acc, theirs, op);
            }
        }
        if op == ReduceOp::Mean {
            T::divide(acc, n);
        }
        for (q, &p) in slots.iter().enumerate() {
            if q != rank {
                // SAFETY: as above.
                let theirs = unsafe { std::slice::from_raw_parts_mut(p.add(c.start), c.len()) };
                theirs.copy_from_slice(acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_gets_the_reduced_range() {
        let mut a: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let mut b: Vec<f32> = (0..100_000).map(|i| (2 * i) as f32).collect();
        let slots = [a.as_mut_ptr(), b.as_mut_ptr()];
        // SAFETY: both vectors outlive the call and nothing else touches them.
        unsafe { reduce_and_spread(&slots, 1, slots[1], 10..70_000, ReduceOp::Sum) };
        assert_eq!(
            (a[9], a[10], a[69_999], a[70_000]),
            (9.0, 30.0, 209_997.0, 70_000.0)
        );
        assert_eq!(a[10..70_000], b[10..70_000]);
    }
}
