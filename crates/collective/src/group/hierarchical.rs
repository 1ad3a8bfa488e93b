//! The hierarchical all-reduce for several nodes with several ranks each: reduce within
//! the node through shared memory, all-reduce between one leader per node (local rank 0)
//! over a TCP ring, then hand the result out through shared memory again.
//!
//! Only `1/local_world_size` of the cross-node traffic of a flat ring goes over the
//! network, and the in-node steps run at memory speed. Faults from the shared-memory steps
//! name local ranks and faults from the leaders' ring name nodes; both are translated to
//! global ranks here (ranks are numbered node by node, which `resolve` checked).

use std::time::Instant;

use super::ProcessGroup;
use crate::element::{Element, ReduceOp};
use crate::transport::link::Fault;
use crate::transport::shm::SharedBuffer;

fn renamed(f: Fault, to_global: impl Fn(usize) -> usize) -> Fault {
    match f {
        Fault::Lost { peer } => Fault::Lost {
            peer: to_global(peer),
        },
        Fault::Stalled { peer } => Fault::Stalled {
            peer: to_global(peer),
        },
        Fault::Mismatch { peer, reason } => Fault::Mismatch {
            peer: to_global(peer),
            reason,
        },
    }
}

impl ProcessGroup {
    fn node_maps(
        &self,
    ) -> (
        impl Fn(usize) -> usize + use<>,
        impl Fn(usize) -> usize + use<>,
    ) {
        let (node, lws) = (self.cfg.node_rank, self.cfg.local_world_size);
        (move |local| node * lws + local, move |node| node * lws)
    }

    /// Hierarchical all-reduce of a plain buffer (copies through the staging segment).
    pub(crate) fn hierarchical_all_reduce<T: Element>(
        &mut self,
        buf: &mut [T],
        op: ReduceOp,
        seq: u64,
    ) -> Result<(), Fault> {
        let deadline = Instant::now() + self.cfg.timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let (local, node) = self.node_maps();
        let inner = if op == ReduceOp::Mean {
            ReduceOp::Sum
        } else {
            op
        };
        let me = Fault::Lost {
            peer: self.cfg.rank,
        };
        let shm = self.shm.as_mut().ok_or(me)?;
        shm.all_reduce(buf, inner, seq, left())
            .map_err(|f| renamed(f, &local))?;
        if let Some(leaders) = self.leaders.as_mut() {
            leaders
                .all_reduce(buf, inner, seq, left())
                .map_err(|f| renamed(f, &node))?;
        }
        shm.broadcast_from_leader(buf, deadline)
            .map_err(|f| renamed(f, &local))?;
        if op == ReduceOp::Mean {
            T::divide(buf, self.cfg.world_size);
        }
        Ok(())
    }

    /// Hierarchical all-reduce of a shared buffer (in place within the node).
    pub(crate) fn hierarchical_all_reduce_shared<T: Element>(
        &mut self,
        buf: &mut SharedBuffer<T>,
        op: ReduceOp,
        seq: u64,
    ) -> Result<(), Fault> {
        let deadline = Instant::now() + self.cfg.timeout;
        let left = deadline.saturating_duration_since(Instant::now());
        let (local, node) = self.node_maps();
        let inner = if op == ReduceOp::Mean {
            ReduceOp::Sum
        } else {
            op
        };
        buf.all_reduce(inner, deadline)
            .map_err(|f| renamed(f, &local))?;
        if let Some(leaders) = self.leaders.as_mut() {
            let res = leaders.all_reduce(buf.as_mut_slice(), inner, seq, left);
            res.map_err(|f| renamed(f, &node))?;
        }
        buf.spread_from_leader(deadline)
            .map_err(|f| renamed(f, &local))?;
        if op == ReduceOp::Mean {
            T::divide(buf.as_mut_slice(), self.cfg.world_size);
        }
        Ok(())
    }
}
