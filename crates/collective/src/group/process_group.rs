//! [`ProcessGroup`]: one rank's membership in the group, and the collective operations.
//!
//! Every operation gets the next sequence number, runs on the transport, and on failure
//! goes through `ProcessGroup::fail`: publish what this rank saw, tear the links down (so
//! every other rank fails fast instead of waiting out its timeout), read everybody's
//! reports and name the culprit (see [`super::diagnose`]). After a failure the group is
//! poisoned: it must be rebuilt, which is what the launcher's restart does.

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use super::config::{GroupConfig, TransportKind};
use super::diagnose::{Observation, culprit};
use crate::element::{Element, ReduceOp, as_bytes, as_bytes_mut, from_bytes};
use crate::error::{Error, Op, Result};
use crate::store::StoreClient;
use crate::transport::handshake::RingSpec;
use crate::transport::link::Fault;
use crate::transport::shm::ShmGroup;
use crate::transport::tcp::TcpRing;

/// Longest the failure path waits for other ranks' reports.
const MAX_REPORT_GRACE: Duration = Duration::from_millis(300);

/// One rank's handle on the group.
pub struct ProcessGroup {
    pub(crate) cfg: GroupConfig,
    pub(crate) store: StoreClient,
    transport: TransportKind,
    pub(crate) ring: Option<TcpRing>,
    /// Under the hierarchical transport, on each node's local rank 0: the ring of leaders.
    pub(crate) leaders: Option<TcpRing>,
    pub(crate) shm: Option<crate::transport::shm::ShmGroup>,
    pub(crate) nccl: Option<crate::transport::nccl::NcclComm>,
    seq: u64,
    failed: Option<u64>,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.cfg.rank)
            .field("world_size", &self.cfg.world_size)
            .field("transport", &self.transport)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl ProcessGroup {
    /// Join the group described by the environment (`RANK`, `WORLD_SIZE`, ...; see
    /// [`WorkerEnv`](super::env::WorkerEnv)).
    pub fn from_env() -> Result<Self> {
        Self::new(super::env::WorkerEnv::from_env()?.group_config()?)
    }

    /// Join the group described by `cfg`: connect to the store, exchange addresses, build
    /// the transports. Blocks until every rank has joined or `cfg.connect_timeout` passes.
    pub fn new(cfg: GroupConfig) -> Result<Self> {
        cfg.validate()?;
        let resolved =
            super::choice::resolve_transport(&cfg, crate::transport::nccl::check_libraries)?;
        if let Some(why) = &resolved.fallback {
            if cfg.rank == 0 {
                eprintln!("warning: {why}");
            }
            tracing::warn!(rank = cfg.rank, "{why}");
        }
        let transport = resolved.kind;
        let deadline = Instant::now() + cfg.connect_timeout;
        let store_addr = (cfg.master_addr.as_str(), cfg.master_port)
            .to_socket_addrs()
            .map_err(|e| Error::io(format!("resolve MASTER_ADDR {}", cfg.master_addr), e))?
            .next()
            .ok_or_else(|| Error::Env {
                var: super::env::var::MASTER_ADDR.into(),
                reason: format!("{} resolves to no address", cfg.master_addr),
            })?;
        let store = StoreClient::connect(store_addr, &cfg.token, cfg.connect_timeout)?
            .with_prefix(&cfg.key_prefix());
        let mut pg = ProcessGroup {
            cfg,
            store,
            transport,
            ring: None,
            leaders: None,
            shm: None,
            nccl: None,
            seq: 0,
            failed: None,
        };
        pg.connect_transports(deadline)?;
        tracing::debug!(rank = pg.cfg.rank, world = pg.cfg.world_size, %transport, "group ready");
        Ok(pg)
    }

    fn connect_transports(&mut self, deadline: Instant) -> Result<()> {
        let n = self.cfg.world_size;
        if n > 1 {
            // Our end of the store connection is on the interface that routes to the
            // master, which is the one peers on other nodes can reach.
            let bind_ip = self.store.local_addr()?.ip();
            let spec = RingSpec {
                rank: self.cfg.rank,
                n,
                tag: "tcp",
            };
            let ring = TcpRing::connect(&mut self.store, &self.cfg, spec, bind_ip, deadline)?;
            self.ring = Some(ring);
        }
        match self.transport {
            TransportKind::Hierarchical => {
                let shm = ShmGroup::join(&self.cfg, &mut self.store, deadline)?;
                self.shm = Some(shm);
                if self.cfg.local_rank == 0 {
                    let nodes = self.cfg.uniform_nodes().unwrap_or(1);
                    let spec = RingSpec {
                        rank: self.cfg.node_rank,
                        n: nodes,
                        tag: "leaders",
                    };
                    let bind_ip = self.store.local_addr()?.ip();
                    let leaders =
                        TcpRing::connect(&mut self.store, &self.cfg, spec, bind_ip, deadline)?;
                    self.leaders = Some(leaders);
                }
            }
            TransportKind::Shm if n > 1 => {
                let shm =
                    crate::transport::shm::ShmGroup::join(&self.cfg, &mut self.store, deadline)?;
                self.shm = Some(shm);
            }
            TransportKind::Nccl => {
                self.nccl = Some(crate::transport::nccl::NcclComm::new(
                    &self.cfg,
                    &mut self.store,
                    deadline,
                )?);
            }
            _ => {}
        }
        Ok(())
    }

    /// This rank (`RANK`).
    pub fn rank(&self) -> usize {
        self.cfg.rank
    }

    /// Number of ranks (`WORLD_SIZE`).
    pub fn world_size(&self) -> usize {
        self.cfg.world_size
    }

    /// The transport `all_reduce` uses (after resolving `auto`).
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// The NCCL communicator, under the nccl transport (for device buffers).
    pub fn nccl(&mut self) -> Option<&mut crate::transport::nccl::NcclComm> {
        self.nccl.as_mut()
    }

    /// The configuration the group was built from.
    pub fn config(&self) -> &GroupConfig {
        &self.cfg
    }

    /// The group's store connection; keys are prefixed with run id and restart generation.
    pub fn store(&mut self) -> &mut StoreClient {
        &mut self.store
    }

    /// Number of operations started so far (the next one gets this sequence number).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn begin(&mut self) -> Result<u64> {
        if let Some(failed_seq) = self.failed {
            return Err(Error::Poisoned { failed_seq });
        }
        let seq = self.seq;
        self.seq += 1;
        Ok(seq)
    }

    fn ring(&mut self) -> Result<&mut TcpRing> {
        // `new` builds the ring whenever world_size > 1, the only case that calls this.
        self.ring.as_mut().ok_or_else(|| Error::Config {
            reason: "group has no TCP ring".into(),
        })
    }

    /// Reduce `buf` across all ranks in place; every rank ends with the same values.
    pub fn all_reduce<T: Element>(&mut self, buf: &mut [T], op: ReduceOp) -> Result<()> {
        let seq = self.begin()?;
        if self.cfg.world_size == 1 {
            return Ok(());
        }
        if let Some(nccl) = self.nccl.as_mut() {
            return match nccl.all_reduce_host(buf, op) {
                Ok(res) => res,
                Err(crate::transport::nccl::Aborted(why)) => {
                    Err(self.nccl_failed(Op::AllReduce, seq, why))
                }
            };
        }
        let timeout = self.cfg.timeout;
        let res = if self.transport == TransportKind::Hierarchical {
            self.hierarchical_all_reduce(buf, op, seq)
        } else if let Some(shm) = self.shm.as_mut() {
            shm.all_reduce(buf, op, seq, timeout)
        } else {
            self.ring()?.all_reduce(buf, op, seq, timeout)
        };
        res.map_err(|f| self.fail(Op::AllReduce, seq, f))
    }

    /// Sum-or-other-reduce `len` `f32` at CUDA device address `ptr` in place, under the
    /// NCCL transport (the trainer's gradient buckets, reduced without a host copy);
    /// failures are the same named-rank errors as [`Self::all_reduce`]'s.
    ///
    /// # Safety
    /// `ptr` must be the start of a device allocation of at least `len` `f32` on this
    /// group's CUDA device, kept alive and untouched by other work until this returns.
    pub unsafe fn all_reduce_device_f32(
        &mut self,
        ptr: u64,
        len: usize,
        op: ReduceOp,
    ) -> Result<()> {
        let seq = self.begin()?;
        if self.cfg.world_size == 1 {
            return Ok(());
        }
        let Some(nccl) = self.nccl.as_mut() else {
            return Err(Error::Config {
                reason: format!(
                    "device buffers need the nccl transport (this group uses {})",
                    self.transport
                ),
            });
        };
        // SAFETY: forwarded from the caller.
        match unsafe { nccl.all_reduce_raw_f32(ptr, len, op) } {
            Ok(res) => res,
            Err(crate::transport::nccl::Aborted(why)) => {
                Err(self.nccl_failed(Op::AllReduce, seq, why))
            }
        }
    }

    /// Copy `buf` from `root` to every rank.
    pub fn broadcast<T: Element>(&mut self, buf: &mut [T], root: usize) -> Result<()> {
        self.broadcast_bytes(as_bytes_mut(buf), root)
    }

    /// Copy `buf` (raw bytes) from `root` to every rank; lengths must agree.
    pub fn broadcast_bytes(&mut self, buf: &mut [u8], root: usize) -> Result<()> {
        if root >= self.cfg.world_size {
            let reason = format!(
                "broadcast root {root} >= world size {}",
                self.cfg.world_size
            );
            return Err(Error::Config { reason });
        }
        let seq = self.begin()?;
        if self.cfg.world_size == 1 {
            return Ok(());
        }
        let timeout = self.cfg.timeout;
        let res = self.ring()?.broadcast(buf, root, seq, timeout);
        res.map_err(|f| self.fail(Op::Broadcast, seq, f))
    }

    /// Return once every rank has entered the barrier.
    pub fn barrier(&mut self) -> Result<()> {
        let seq = self.begin()?;
        if self.cfg.world_size == 1 {
            return Ok(());
        }
        let timeout = self.cfg.timeout;
        let res = self.ring()?.all_gather(&[], Op::Barrier, seq, timeout);
        res.map(|_| ()).map_err(|f| self.fail(Op::Barrier, seq, f))
    }

    /// Gather every rank's byte payload (lengths may differ); result indexed by rank.
    pub fn all_gather_bytes(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let seq = self.begin()?;
        if self.cfg.world_size == 1 {
            return Ok(vec![mine.to_vec()]);
        }
        let timeout = self.cfg.timeout;
        let res = self.ring()?.all_gather(mine, Op::AllGather, seq, timeout);
        res.map_err(|f| self.fail(Op::AllGather, seq, f))
    }

    /// Gather every rank's slice (lengths may differ); result indexed by rank.
    pub fn all_gather<T: Element>(&mut self, mine: &[T]) -> Result<Vec<Vec<T>>> {
        let items = self.all_gather_bytes(as_bytes(mine))?;
        Ok(items.iter().map(|b| from_bytes::<T>(b)).collect())
    }

    /// Turn a transport fault into the error every rank agrees on (see module docs).
    pub(crate) fn fail(&mut self, op: Op, seq: u64, fault: Fault) -> Error {
        self.failed = Some(seq);
        let mine = match fault {
            Fault::Mismatch { peer, reason } => {
                self.teardown();
                return Error::Mismatch {
                    op,
                    seq,
                    rank: peer,
                    reason,
                };
            }
            Fault::Lost { peer } => Observation::Lost(peer),
            Fault::Stalled { peer } => Observation::Stalled(peer),
        };
        let me = self.cfg.rank;
        let published = self
            .store
            .set(&format!("fault/{me}"), mine.encode())
            .is_ok();
        self.teardown();
        let verdict = if published {
            std::thread::sleep((self.cfg.timeout / 4).min(MAX_REPORT_GRACE));
            let reports: Vec<Option<Observation>> = (0..self.cfg.world_size)
                .map(|r| {
                    let v = self.store.get(&format!("fault/{r}")).ok().flatten();
                    v.and_then(|b| Observation::decode(&b))
                })
                .collect();
            culprit(&reports, mine)
        } else {
            mine
        };
        tracing::warn!(rank = me, %op, seq, ?verdict, "collective operation failed");
        match verdict {
            Observation::Lost(rank) => Error::PeerLost { rank, op, seq },
            Observation::Stalled(rank) => Error::Timeout {
                op,
                seq,
                rank,
                after: self.cfg.timeout,
            },
        }
    }

    /// After an aborted NCCL operation: poison the group, publish that this rank was in
    /// operation `seq`, read the other ranks' reports and name the one that filed none
    /// (see `transport::nccl::watch`).
    fn nccl_failed(
        &mut self,
        op: Op,
        seq: u64,
        why: crate::transport::nccl::watch::Watch,
    ) -> Error {
        use crate::transport::nccl::watch;
        self.failed = Some(seq);
        let me = self.cfg.rank;
        let published = self
            .store
            .set(&format!("nccl-fault/{me}"), seq.to_string().into_bytes())
            .is_ok();
        self.teardown();
        let blamed = if published {
            std::thread::sleep((self.cfg.timeout / 4).min(MAX_REPORT_GRACE));
            let reports: Vec<Option<u64>> = (0..self.cfg.world_size)
                .map(|r| {
                    let v = self.store.get(&format!("nccl-fault/{r}")).ok().flatten();
                    v.and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
                })
                .collect();
            watch::culprit(&reports, me)
        } else {
            None
        };
        tracing::warn!(rank = me, %op, seq, ?why, ?blamed, "NCCL operation aborted");
        watch::abort_error(op, seq, why, blamed, self.cfg.timeout)
    }

    fn teardown(&mut self) {
        if let Some(ring) = &self.ring {
            ring.shutdown();
        }
        if let Some(leaders) = &self.leaders {
            leaders.shutdown();
        }
        if let Some(shm) = &self.shm {
            shm.abort();
        }
    }
}
