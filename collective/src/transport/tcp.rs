//! The TCP ring transport: pipelined ring all-reduce, chain broadcast, ring all-gather.
//!
//! Each rank connects to `rank + 1` (its [`SendLink`]) and accepts `rank - 1` (its
//! [`RecvLink`]); listen addresses are exchanged through the store and every link opens
//! with a hello carrying the sender's rank and the run token. Every operation starts with
//! a 32-byte header (op, element type, reduction, sequence number, length) that the
//! receiver compares with its own, so ranks calling different collectives fail with
//! [`Fault::Mismatch`] instead of silently mixing buffers. The schedule comes from
//! [`super::ring`]; this file only moves bytes.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::link::{Fault, RecvLink, SendLink, tune};
use super::ring::{chunks, schedule, segments};
use crate::element::{Element, ReduceOp, cast_slice};
use crate::error::{Error, Op, Result};
use crate::store::StoreClient;
use crate::store::state::constant_time_eq;

const HELLO_MAGIC: &[u8; 4] = b"VGRL";
const HEADER_MAGIC: u32 = 0x5647_4F50;
/// Kernel socket buffer size requested per link.
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Default pipelining granularity.
pub const DEFAULT_CHUNK_BYTES: usize = 256 << 10;
/// Sanity cap on one all-gather payload announced by a peer.
const MAX_GATHER_ITEM: u64 = 1 << 36;

fn op_code(op: Op) -> u8 {
    match op {
        Op::Setup => 0,
        Op::AllReduce => 1,
        Op::Broadcast => 2,
        Op::Barrier => 3,
        Op::AllGather => 4,
    }
}

/// The per-operation header both neighbours compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub op: Op,
    pub dtype: u8,
    pub redop: u8,
    pub seq: u64,
    pub len: u64,
    pub extra: u64,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32);
        v.extend_from_slice(&HEADER_MAGIC.to_le_bytes());
        v.extend_from_slice(&[op_code(self.op), self.dtype, self.redop, 0]);
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&self.len.to_le_bytes());
        v.extend_from_slice(&self.extra.to_le_bytes());
        v
    }

    /// Describe how `theirs` (raw bytes) differs from `self`, if it does.
    fn diff(&self, theirs: &[u8; 32], compare_len: bool) -> Option<String> {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&theirs[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let magic = u32::from_le_bytes([theirs[0], theirs[1], theirs[2], theirs[3]]);
        if magic != HEADER_MAGIC {
            return Some("stream out of sync (bad header magic)".into());
        }
        let (op, dtype, redop, seq, len, extra) = (
            theirs[4],
            theirs[5],
            theirs[6],
            u64_at(8),
            u64_at(16),
            u64_at(24),
        );
        if seq != self.seq || op != op_code(self.op) {
            return Some(format!(
                "it is at operation #{seq} (kind {op}), this rank at #{}",
                self.seq
            ));
        }
        if dtype != self.dtype || redop != self.redop {
            return Some("different element type or reduction".into());
        }
        if compare_len && (len != self.len || extra != self.extra) {
            return Some(format!(
                "it passed {len} elements (root {extra}), this rank {}",
                self.len
            ));
        }
        None
    }
}

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
    /// Build the ring: publish our listen address, connect to `rank + 1`, accept `rank - 1`.
    pub(crate) fn connect(
        store: &mut StoreClient,
        rank: usize,
        n: usize,
        token: &str,
        bind_ip: IpAddr,
        deadline: Instant,
        chunk_bytes: usize,
        socket_buffer: usize,
    ) -> Result<Self> {
        let (next, prev) = ((rank + 1) % n, (rank + n - 1) % n);
        let listener = TcpListener::bind((bind_ip, 0))
            .map_err(|e| Error::io(format!("bind ring listener on {bind_ip}"), e))?;
        tune_listener(&listener, socket_buffer);
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("ring listener address", e))?;
        store.set(&format!("tcp/{rank}/addr"), addr.to_string())?;
        let left = deadline.saturating_duration_since(Instant::now());
        let next_addr = match store.wait_get(&format!("tcp/{next}/addr"), left) {
            Ok(v) => v,
            Err(Error::StoreTimeout { after, .. }) => {
                return Err(Error::Timeout {
                    op: Op::Setup,
                    seq: 0,
                    rank: next,
                    after,
                });
            }
            Err(e) => return Err(e),
        };
        let next_addr: SocketAddr =
            String::from_utf8_lossy(&next_addr)
                .parse()
                .map_err(|_| Error::BadValue {
                    key: format!("tcp/{next}/addr"),
                    reason: "not an address".into(),
                })?;

        let mut out = connect_retry(next_addr, deadline, next)?;
        tune(&out, socket_buffer);
        let mut hello = HELLO_MAGIC.to_vec();
        hello.extend_from_slice(&(rank as u32).to_le_bytes());
        hello.extend_from_slice(&(token.len() as u32).to_le_bytes());
        hello.extend_from_slice(token.as_bytes());
        out.write_all(&hello)
            .map_err(|e| Error::io(format!("hello to rank {next}"), e))?;

        let inn = accept_prev(&listener, prev, token, deadline)?;
        tune(&inn, socket_buffer);
        let send = SendLink::new(out, next).map_err(|e| Error::io("spawn sender thread", e))?;
        Ok(TcpRing {
            rank,
            n,
            send,
            recv: RecvLink::new(inn, prev),
            chunk_bytes: chunk_bytes.max(64),
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
        let len = buf.len();
        let base = buf.as_mut_ptr();
        let header = Header {
            op: Op::AllReduce,
            dtype: T::CODE,
            redop: op.code(),
            seq,
            len: len as u64,
            extra: 0,
        };
        self.guarded(|ring| {
            let deadline = Instant::now() + timeout;
            ring.send.begin(timeout);
            ring.exchange_header(header, true, deadline)?;
            let esz = std::mem::size_of::<T>();
            let chunk = (ring.chunk_bytes / esz).max(1);
            let segs = segments(len, ring.n);
            let sched = schedule(ring.rank, ring.n);
            if ring.scratch.len() * 8 < chunk * esz {
                ring.scratch = vec![0u64; (chunk * esz).div_ceil(8)];
            }
            // All access to the buffer below goes through `base` with disjoint ranges: the
            // sender thread reads chunks that this thread no longer writes in this step.
            let bytes = |r: std::ops::Range<usize>| -> &[u8] {
                // SAFETY: `r` lies within `buf`, which outlives `guarded`'s final flush.
                unsafe { std::slice::from_raw_parts(base.add(r.start).cast::<u8>(), r.len() * esz) }
            };
            if let Some(first) = sched.first() {
                for ch in chunks(segs[first.send].clone(), chunk) {
                    // SAFETY: the chunk stays untouched until it is received into again,
                    // which the schedule only does after the peer has read it.
                    unsafe { ring.send.send_borrowed(bytes(ch)) };
                }
            }
            for (t, step) in sched.iter().enumerate() {
                for ch in chunks(segs[step.recv].clone(), chunk) {
                    // SAFETY: this range is not queued for sending until after this write.
                    let dst =
                        unsafe { std::slice::from_raw_parts_mut(base.add(ch.start), ch.len()) };
                    if step.reduce {
                        let nbytes = ch.len() * esz;
                        let scratch = &mut as_u8_mut(&mut ring.scratch)[..nbytes];
                        ring.recv.read_exact(scratch, deadline)?;
                        let src = cast_slice::<T>(scratch).ok_or(Fault::Lost {
                            peer: ring.recv.peer,
                        })?;
                        T::reduce(dst, src, op);
                    } else {
                        ring.recv
                            .read_exact(crate::element::as_bytes_mut(dst), deadline)?;
                    }
                    if t + 1 < sched.len() {
                        // SAFETY: as above; forwarded exactly once per step.
                        unsafe { ring.send.send_borrowed(bytes(ch)) };
                    }
                }
            }
            Ok(())
        })?;
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

fn as_u8_mut(v: &mut [u64]) -> &mut [u8] {
    crate::element::as_bytes_mut(v)
}

fn tune_listener(l: &TcpListener, socket_buffer: usize) {
    use std::os::fd::AsRawFd;
    if socket_buffer == 0 {
        return;
    }
    let v = socket_buffer.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: setsockopt on a valid fd; accepted sockets inherit the receive buffer, which
    // must be set before the handshake to get a large window scale.
    unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn connect_retry(addr: SocketAddr, deadline: Instant, peer: usize) -> Result<TcpStream> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(10))) {
            Ok(s) => return Ok(s),
            Err(_) if Instant::now() + Duration::from_millis(20) < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {
                return Err(Error::Timeout {
                    op: Op::Setup,
                    seq: 0,
                    rank: peer,
                    after: left,
                });
            }
        }
    }
}

fn accept_prev(
    listener: &TcpListener,
    prev: usize,
    token: &str,
    deadline: Instant,
) -> Result<TcpStream> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("ring listener nonblocking", e))?;
    let started = Instant::now();
    loop {
        match listener.accept() {
            Ok((mut s, peer_addr)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = [0u8; 12];
                let ok = s.read_exact(&mut head).is_ok() && &head[..4] == HELLO_MAGIC && {
                    let r = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
                    let tl = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
                    let mut tok = vec![0u8; tl.min(4096)];
                    r == prev
                        && tl == tok.len()
                        && s.read_exact(&mut tok).is_ok()
                        && constant_time_eq(&tok, token.as_bytes())
                };
                if ok {
                    let _ = s.set_read_timeout(None);
                    return Ok(s);
                }
                tracing::warn!(%peer_addr, "ring listener refused a connection: bad hello");
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let after = started.elapsed();
                    return Err(Error::Timeout {
                        op: Op::Setup,
                        seq: 0,
                        rank: prev,
                        after,
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(Error::io("accept ring connection", e)),
        }
    }
}
