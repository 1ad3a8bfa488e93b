//! Building the ring's links: address exchange through the store, connect to `rank + 1`
//! with a hello (rank and run token), accept `rank - 1` and check its hello.
//!
//! Connecting first and accepting second cannot deadlock: `connect` completes through the
//! kernel's backlog before the peer calls `accept`, and the hello fits in the socket
//! buffer. A connection with a bad hello (a stray client, a port scanner) is logged and
//! dropped; accepting goes on until the deadline.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::link::tune;
use crate::error::{Error, Op, Result};
use crate::group::GroupConfig;
use crate::store::StoreClient;
use crate::store::state::constant_time_eq;

const HELLO_MAGIC: &[u8; 4] = b"VGRL";

/// Which ring to build: our position in it, its size, and the store key namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingSpec {
    /// Our index in the ring.
    pub rank: usize,
    /// Number of members.
    pub n: usize,
    /// Store key namespace (`tcp` for the global ring, `leaders` for node leaders).
    pub tag: &'static str,
}

/// Publish our address, connect to the next member, accept the previous one; returns the
/// (outgoing, incoming) streams, tuned.
pub(crate) fn connect_links(
    store: &mut StoreClient,
    cfg: &GroupConfig,
    spec: RingSpec,
    bind_ip: IpAddr,
    deadline: Instant,
) -> Result<(TcpStream, TcpStream)> {
    let (rank, n, token, tag) = (spec.rank, spec.n, cfg.token.as_str(), spec.tag);
    let (next, prev) = ((rank + 1) % n, (rank + n - 1) % n);
    let listener = TcpListener::bind((bind_ip, 0))
        .map_err(|e| Error::io(format!("bind ring listener on {bind_ip}"), e))?;
    tune_listener(&listener, cfg.socket_buffer());
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("ring listener address", e))?;
    store.set(&format!("{tag}/{rank}/addr"), addr.to_string())?;
    let left = deadline.saturating_duration_since(Instant::now());
    let next_addr = match store.wait_get(&format!("{tag}/{next}/addr"), left) {
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
                key: format!("{tag}/{next}/addr"),
                reason: "not an address".into(),
            })?;

    let mut out = connect_retry(next_addr, deadline, next)?;
    tune(&out, cfg.socket_buffer());
    let mut hello = HELLO_MAGIC.to_vec();
    hello.extend_from_slice(&(rank as u32).to_le_bytes());
    hello.extend_from_slice(&(token.len() as u32).to_le_bytes());
    hello.extend_from_slice(token.as_bytes());
    out.write_all(&hello)
        .map_err(|e| Error::io(format!("hello to rank {next}"), e))?;

    let inn = accept_prev(&listener, prev, token, deadline)?;
    tune(&inn, cfg.socket_buffer());
    Ok((out, inn))
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
