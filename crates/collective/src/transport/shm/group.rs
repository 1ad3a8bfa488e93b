//! [`ShmGroup`]: the node's ranks joined through a staging segment.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::buffer::SharedBuffer;
use super::kernel::reduce_and_spread;
use super::segment::{ShmSegment, cleanup_stale};
use crate::element::{Element, ReduceOp};
use crate::error::Result;
use crate::group::GroupConfig;
use crate::store::StoreClient;
use crate::transport::link::Fault;
use crate::transport::ring::{chunks, segments};

/// The local ranks' shared-memory state.
#[derive(Debug)]
pub struct ShmGroup {
    staging: ShmSegment,
    dir: PathBuf,
    stem: String,
    node: usize,
    next_buffer: u64,
}

impl ShmGroup {
    /// Create (local rank 0) or join the node's staging segment.
    pub fn join(cfg: &GroupConfig, store: &mut StoreClient, deadline: Instant) -> Result<Self> {
        if cfg.local_rank == 0 {
            cleanup_stale(&cfg.shm_dir, &cfg.run_id, cfg.restart_count);
        }
        let stem = format!(
            "vigil-{}-g{}-n{}",
            cfg.run_id, cfg.restart_count, cfg.node_rank
        );
        Ok(ShmGroup {
            staging: attach(
                store,
                &cfg.shm_dir,
                &stem,
                cfg.node_rank,
                "staging",
                cfg.local_world_size,
                cfg.local_rank,
                cfg.shm_staging_bytes,
                deadline,
            )?,
            dir: cfg.shm_dir.clone(),
            stem,
            node: cfg.node_rank,
            next_buffer: 0,
        })
    }

    /// Allocate a buffer of `len` elements living in shared memory. Collective: every local
    /// rank must call it, in the same order, with the same `len`.
    pub fn alloc<T: Element>(
        &mut self,
        store: &mut StoreClient,
        len: usize,
        timeout: Duration,
    ) -> Result<SharedBuffer<T>> {
        let id = self.next_buffer;
        self.next_buffer += 1;
        let seg = attach(
            store,
            &self.dir,
            &self.stem,
            self.node,
            &format!("buf{id}"),
            self.staging.ranks(),
            self.staging.rank(),
            len * std::mem::size_of::<T>(),
            Instant::now() + timeout,
        )?;
        Ok(SharedBuffer {
            seg,
            len,
            _t: PhantomData,
        })
    }

    /// Tell ranks waiting in a barrier to give up.
    pub fn abort(&self) {
        self.staging.abort();
    }

    /// All-reduce `buf` by copying it through the staging slots, piece by piece.
    pub(crate) fn all_reduce<T: Element>(
        &mut self,
        buf: &mut [T],
        op: ReduceOp,
        _seq: u64,
        timeout: Duration,
    ) -> Result<(), Fault> {
        let deadline = Instant::now() + timeout;
        let (n, rank) = (self.staging.ranks(), self.staging.rank());
        let cap = (self.staging.slot_bytes() / std::mem::size_of::<T>()).max(1);
        let slot = |seg: &ShmSegment, r: usize| seg.slot_ptr(r).cast::<T>();
        let slots: Vec<*mut T> = (0..n).map(|r| slot(&self.staging, r)).collect();
        for piece in chunks(0..buf.len(), cap) {
            let m = piece.len();
            let local = &mut buf[piece];
            let segs = segments(m, n);
            // Our slot is ours alone until the barrier: the others stopped touching it when
            // they passed the previous operation's last barrier. Our own range is reduced
            // straight from the caller's buffer, so only the others' ranges are copied in.
            // SAFETY: our slot holds `cap >= m` elements.
            let mine = unsafe { std::slice::from_raw_parts_mut(slots[rank], m) };
            for (q, range) in segs.iter().enumerate() {
                if q != rank {
                    mine[range.clone()].copy_from_slice(&local[range.clone()]);
                }
            }
            self.staging.barrier(deadline)?;
            // SAFETY: between the barriers this rank alone touches `segs[rank]` of any slot;
            // `local` is this process's private buffer.
            unsafe { reduce_and_spread(&slots, rank, local.as_mut_ptr(), segs[rank].clone(), op) };
            self.staging.barrier(deadline)?;
            // Our slot now holds everybody else's reduced ranges.
            for (q, range) in segs.iter().enumerate() {
                if q != rank {
                    local[range.clone()].copy_from_slice(&mine[range.clone()]);
                }
            }
        }
        Ok(())
    }
}

impl ShmGroup {
    /// Copy local rank 0's `buf` to every local rank, piece by piece through the staging
    /// slots (the last step of the hierarchical all-reduce).
    pub(crate) fn broadcast_from_leader<T: Element>(
        &mut self,
        buf: &mut [T],
        deadline: Instant,
    ) -> Result<(), Fault> {
        let rank = self.staging.rank();
        let cap = (self.staging.slot_bytes() / std::mem::size_of::<T>()).max(1);
        let leader = self.staging.slot_ptr(0).cast::<T>();
        for piece in chunks(0..buf.len(), cap) {
            let m = piece.len();
            // SAFETY: slot 0 holds `cap >= m` elements; the leader writes it only before the
            // first barrier and the others read it only between the two.
            let shared = unsafe { std::slice::from_raw_parts_mut(leader, m) };
            if rank == 0 {
                shared.copy_from_slice(&buf[piece.clone()]);
            }
            self.staging.barrier(deadline)?;
            if rank != 0 {
                buf[piece].copy_from_slice(shared);
            }
            self.staging.barrier(deadline)?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn attach(
    store: &mut StoreClient,
    dir: &std::path::Path,
    stem: &str,
    node: usize,
    tag: &str,
    n: usize,
    rank: usize,
    slot_bytes: usize,
    deadline: Instant,
) -> Result<ShmSegment> {
    let path = dir.join(format!("{stem}-{tag}"));
    let key = format!("shm/n{node}/{tag}/ready");
    let store = std::cell::RefCell::new(store);
    ShmSegment::attach(
        &path,
        n,
        rank,
        slot_bytes,
        deadline,
        || store.borrow_mut().set(&key, b"1"),
        || {
            let left = deadline.saturating_duration_since(Instant::now());
            store.borrow_mut().wait(&[&key], left)
        },
    )
}
