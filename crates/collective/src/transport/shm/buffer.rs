//! [`SharedBuffer`]: a buffer the caller fills directly in shared memory, all-reduced in
//! place with no copy in or out.

use std::marker::PhantomData;
use std::time::Instant;

use super::kernel::reduce_and_spread;
use super::segment::ShmSegment;
use crate::element::{Element, ReduceOp};
use crate::transport::link::Fault;
use crate::transport::ring::segments;

/// `len` elements of this rank's slot in a shared segment (see the module docs of
/// [`crate::transport::shm`]). Obtained from [`crate::ProcessGroup::alloc_shared`].
#[derive(Debug)]
pub struct SharedBuffer<T: Element = f32> {
    pub(super) seg: ShmSegment,
    pub(super) len: usize,
    pub(super) _t: PhantomData<T>,
}

impl<T: Element> SharedBuffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's contents.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: our slot holds at least `len` elements, is page-aligned, and other ranks
        // only read it during an all-reduce, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.seg.slot_ptr(self.seg.rank()).cast(), self.len) }
    }

    /// The buffer's contents, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`; `&mut self` makes the view exclusive in this process.
        unsafe {
            std::slice::from_raw_parts_mut(self.seg.slot_ptr(self.seg.rank()).cast(), self.len)
        }
    }

    /// Ranks sharing the buffer.
    pub fn ranks(&self) -> usize {
        self.seg.ranks()
    }

    pub(crate) fn abort(&self) {
        self.seg.abort();
    }

    /// Local rank 0 copies its contents into every other rank's slot (the last step of the
    /// hierarchical all-reduce); the others wait.
    pub(crate) fn spread_from_leader(&mut self, deadline: Instant) -> Result<(), Fault> {
        if self.seg.rank() == 0 {
            let mine = self.as_slice().as_ptr();
            for q in 1..self.seg.ranks() {
                // SAFETY: the other ranks do not touch their slots until the barrier below,
                // and slot q does not overlap ours.
                unsafe {
                    std::ptr::copy_nonoverlapping(mine, self.seg.slot_ptr(q).cast::<T>(), self.len)
                };
            }
        }
        self.seg.barrier(deadline)
    }

    /// All-reduce in place: reduce our `1/n` across every slot and write it into all of
    /// them (see [`super::kernel`]); two barriers, no copies.
    pub(crate) fn all_reduce(&mut self, op: ReduceOp, deadline: Instant) -> Result<(), Fault> {
        let (n, rank, len) = (self.seg.ranks(), self.seg.rank(), self.len);
        let slots: Vec<*mut T> = (0..n).map(|r| self.seg.slot_ptr(r).cast::<T>()).collect();
        let my = segments(len, n)[rank].clone();
        self.seg.barrier(deadline)?;
        // SAFETY: between the two barriers this rank alone touches `my` in every slot.
        unsafe { reduce_and_spread(&slots, rank, slots[rank], my, op) };
        // After this barrier every slot holds the whole result and nobody touches another
        // rank's slot until the next operation's first barrier.
        self.seg.barrier(deadline)
    }
}
