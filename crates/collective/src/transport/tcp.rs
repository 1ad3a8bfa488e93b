//! The TCP ring transport: pipelined ring all-reduce, chain broadcast, ring all-gather.
//!
//! The all-reduce, which carries almost all the bytes, runs in [`super::polled`] (one
//! thread, non-blocking sockets); broadcast and all-gather queue their sends on the link's
//! sender thread. Each rank connects to `rank + 1` (its [`SendLink`]) and accepts `rank - 1` (its
//! [`RecvLink`]); listen addresses are exchanged through the store and every link opens
//! with a hello carrying the sender's rank and the run token. Every operation starts with
//! a 32-byte header (op, element type, reduction, sequence number, length) that the
//! receiver compares with its own, so ranks calling different collectives fail with
//! [`Fault::Mismatch`] instead of silently mixing buffers. The schedule comes from
//! [`super::ring`]; this file only moves bytes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::handshake::{RingSpec, connect_links};
use super::header::Header;
use super::link::{Fault, RecvLink, SendLink};
use super::polled::Polled;
use super::ring::chunks;
use crate::element::{Element, ReduceOp};
use crate::error::{Error, Op, Result};
use crate::group::GroupConfig;
use crate::store::StoreClient;

/// Socket buffer per link when all ranks share a node. Measured on loopback (2 ranks,
/// 64 MB): 128 KiB buffers with 32 KiB chunks ran ~1.6x faster than 4 MiB with 256 KiB,
/// because the bytes are still in cache when the receiver copies them out.
pub const LOCAL_SOCKET_BUFFER: usize = 128 << 10;
/// Default pipelining granularity (see [`LOCAL_SOCKET_BUFFER`]).
pub const DEFAULT_CHUNK_BYTES: usize = 32 << 10;
/// Sanity cap on one all-gather payload announced by a peer.
const MAX_GATHER_ITEM: u64 = 1 << 36;

/// A rank's two links of the ring.
pub(crate) struct TcpRing {
    rank: usize,
    n: usize,
    send: SendLink,
    recv: RecvLink,
    chunk_bytes: usize,
    /// Receive buffer for reduce-scatter chunks; `u64` for 8-byte alignment.
    scratch: Vec<u64>,
}

impl TcpRing {
    /// Build the ring (see [`super::handshake`]) with `cfg`'s chunk and buffer sizes.
    pub(crate) fn connect(
        store: &mut StoreClient,
        cfg: &GroupConfig,
        spec: RingSpec,
        bind_ip: IpAddr,
        deadline: Instant,
    ) -> Result<Self> {
        let (rank, n) = (spec.rank, spec.n);
        let (out, inn) = connect_links(store, cfg, spec, bind_ip, deadline)?;
        let next = (rank + 1) % n;
        let send = SendLink::new(out, next).map_err(|e| Error::io("spawn sender thread", e))?;
        Ok(TcpRing {
            rank,
            n,
            send,
            recv: RecvLink::new(inn, (rank + n - 1) % n),
            chunk_bytes: cfg.chunk_bytes.max(64),
            scratch: Vec::new(),
        })
    }

    /// Tear down both links (peers see EOF at once).
    pub(crate) fn shutdown(&self) {
        self.send.shutdown();
        self.recv.shutdown();
    }

    /// Run `body`, then wait for the sender thread to finish with the caller's buffer. On
    /// failure the links are shut down first so that a blocked write returns.
    fn guarded<R>(&mut self, body: impl FnOnce(&mut Self) -> Result<R, Fault>) -> Result<R, Fault> {
        let res = body(self);
        if res.is_err() {
            self.shutdown();
            let _ = self.send.flush();
            return res;
        }
        match self.send.flush() {
            Ok(()) => res,
            Err(f) => {
                self.shutdown();
                Err(f)
            }
        }
    }

    fn exchange_header(
        &mut self,
        h: Header,
        compare_len: bool,
        deadline: Instant,
    ) -> Result<(), Fault> {
        self.send.send_owned(h.encode());
        let mut theirs = [0u8; 32];
        self.recv.read_exact(&mut theirs, deadline)?;
        match h.diff(&theirs, compare_len) {
            None => Ok(()),
            Some(reason) => Err(Fault::Mismatch {
                peer: self.recv.peer,
                reason,
            }),
        }
    }

    /// Ring all-reduce of `buf` in place (see [`super::ring`]).
    pub(crate) fn all_reduce<T: Element>(
        &mut self,
        buf: &mut [T],
        op: ReduceOp,
        seq: u64,
        timeout: Duration,
    ) -> Result<(), Fault> {
        let header = Header {
            op: Op::AllReduce,
            dtype: T::CODE,
            redop: op.code(),
            seq,
            len: buf.len() as u64,
            extra: 0,
        };
        let deadline = Instant::now() + timeout;
        let mut p = Polled {
            out: self.send.stream(),
            inn: self.recv.stream(),
            next: self.send.peer,
            prev: self.recv.peer,
            rank: self.rank,
            n: self.n,
            chunk_bytes: self.chunk_bytes,
            scratch: &mut self.scratch,
        };
        let res = p.all_reduce(buf, op, header, deadline);
        if res.is_err() {
            self.shutdown();
        }
        res?;
        if op == ReduceOp::Mean {
            T::divide(buf, self.n);
        }
        Ok(())
    }

    /// Pipelined chain broadcast of `buf` from `root` along the ring.
    pub(crate) fn broadcast(
        &mut self,
        buf: &mut [u8],
        root: usize,
        seq: u64,
        timeout: Duration,
    ) -> Result<(), Fault> {
        let len = buf.len();
        let base = buf.as_mut_ptr();
        let header = Header {
            op: Op::Broadcast,
            dtype: 0,
            redop: 0,
            seq,
            len: len as u64,
            extra: root as u64,
        };
        self.guarded(|ring| {
            let deadline = Instant::now() + timeout;
            ring.send.begin(timeout);
            ring.exchange_header(header, true, deadline)?;
            let forward = (ring.rank + 1) % ring.n != root;
            for ch in chunks(0..len, ring.chunk_bytes) {
                // SAFETY: `ch` lies within `buf`; each chunk is written once, then only read.
                let dst = unsafe { std::slice::from_raw_parts_mut(base.add(ch.start), ch.len()) };
                if ring.rank != root {
                    ring.recv.read_exact(dst, deadline)?;
                }
                if forward {
                    // SAFETY: `buf` outlives the flush in `guarded`.
                    unsafe { ring.send.send_borrowed(dst) };
                }
            }
            Ok(())
        })
    }

    /// Ring all-gather of variable-length byte payloads; returns them indexed by rank.
    pub(crate) fn all_gather(
        &mut self,
        mine: &[u8],
        op: Op,
        seq: u64,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>, Fault> {
        let (n, rank) = (self.n, self.rank);
        let mut items: Vec<Vec<u8>> = vec![Vec::new(); n];
        items[rank] = mine.to_vec();
        let header = Header {
            op,
            dtype: 0,
            redop: 0,
            seq,
            len: 0,
            extra: 0,
        };
        let items = self.guarded(move |ring| {
            let deadline = Instant::now() + timeout;
            ring.send.begin(timeout);
            ring.exchange_header(header, false, deadline)?;
            for s in 0..n - 1 {
                let send = (rank + n - s) % n;
                let recv = (rank + 2 * n - s - 1) % n;
                // Owned copies: payloads are small (metrics, addresses), and on an error
                // path `items` is dropped before the sender thread is done.
                let mut msg = (items[send].len() as u64).to_le_bytes().to_vec();
                msg.extend_from_slice(&items[send]);
                ring.send.send_owned(msg);
                let mut len = [0u8; 8];
                ring.recv.read_exact(&mut len, deadline)?;
                let len = u64::from_le_bytes(len);
                if len > MAX_GATHER_ITEM {
                    let reason = format!("announced a {len}-byte payload");
                    return Err(Fault::Mismatch {
                        peer: ring.recv.peer,
                        reason,
                    });
                }
                let mut item = vec![0u8; len as usize];
                ring.recv.read_exact(&mut item, deadline)?;
                items[recv] = item;
            }
            Ok(items)
        })?;
        Ok(items)
    }
}
