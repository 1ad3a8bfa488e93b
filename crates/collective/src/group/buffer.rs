//! [`CommBuffer`]: an `f32` buffer placed where the group's transport reduces it fastest —
//! in shared memory under the shm transport (no copy in or out), on the heap otherwise.

use std::ops::{Deref, DerefMut};

use super::ProcessGroup;
use crate::element::ReduceOp;
use crate::error::{Error, Op, Result};
use crate::transport::shm::SharedBuffer;

/// A buffer from [`ProcessGroup::alloc_buffer`]; dereferences to `[f32]`.
#[derive(Debug)]
pub enum CommBuffer {
    /// Plain memory; reduced with [`ProcessGroup::all_reduce`].
    Heap(Vec<f32>),
    /// This rank's slot of a shared segment; reduced in place.
    Shared(SharedBuffer<f32>),
}

impl Deref for CommBuffer {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            CommBuffer::Heap(v) => v,
            CommBuffer::Shared(s) => s.as_slice(),
        }
    }
}

impl DerefMut for CommBuffer {
    fn deref_mut(&mut self) -> &mut [f32] {
        match self {
            CommBuffer::Heap(v) => v,
            CommBuffer::Shared(s) => s.as_mut_slice(),
        }
    }
}

impl ProcessGroup {
    /// Allocate a zeroed buffer of `len` floats where the transport reduces it fastest.
    /// Collective under shm: every rank calls it in the same order with the same `len`.
    pub fn alloc_buffer(&mut self, len: usize) -> Result<CommBuffer> {
        if self.shm.is_some() {
            let mut b = self.alloc_shared::<f32>(len)?;
            b.as_mut_slice().fill(0.0);
            Ok(CommBuffer::Shared(b))
        } else {
            Ok(CommBuffer::Heap(vec![0.0; len]))
        }
    }

    /// Allocate a shared-memory buffer (shm transport only; collective, same order and
    /// length on every rank).
    pub fn alloc_shared<T: crate::Element>(&mut self, len: usize) -> Result<SharedBuffer<T>> {
        let timeout = self.cfg.connect_timeout;
        match self.shm.as_mut() {
            Some(shm) => shm.alloc(&mut self.store, len, timeout),
            None => Err(Error::Config {
                reason: format!(
                    "shared buffers need the shm transport (this group uses {})",
                    self.transport()
                ),
            }),
        }
    }

    /// All-reduce a shared buffer in place (no copies).
    pub fn all_reduce_shared<T: crate::Element>(
        &mut self,
        buf: &mut SharedBuffer<T>,
        op: ReduceOp,
    ) -> Result<()> {
        let seq = self.begin()?;
        if buf.ranks() != self.cfg.local_world_size {
            return Err(Error::Config {
                reason: "buffer belongs to another group".into(),
            });
        }
        let deadline = std::time::Instant::now() + self.cfg.timeout;
        let res = if self.transport() == crate::TransportKind::Hierarchical {
            self.hierarchical_all_reduce_shared(buf, op, seq)
        } else {
            buf.all_reduce(op, deadline)
        };
        res.map_err(|f| {
            buf.abort();
            self.fail(Op::AllReduce, seq, f)
        })
    }

    /// All-reduce a [`CommBuffer`] in place, whichever kind it is.
    pub fn all_reduce_buffer(&mut self, buf: &mut CommBuffer, op: ReduceOp) -> Result<()> {
        match buf {
            CommBuffer::Heap(v) => self.all_reduce(v, op),
            CommBuffer::Shared(s) => self.all_reduce_shared(s, op),
        }
    }
}
