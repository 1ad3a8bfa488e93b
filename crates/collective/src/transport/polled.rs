//! The ring all-reduce driven by one thread with non-blocking sockets and `poll(2)`.
//!
//! Both sockets are switched to non-blocking mode for the operation (the link's sender
//! thread is idle between operations, so nothing else uses them) and restored afterwards.
//! One loop alternates between writing whatever is queued and reading whatever has
//! arrived; a completed chunk is reduced at once and queued for forwarding while its bytes
//! are still in this core's cache. Compared with a sender thread per link this avoids a
//! thread hand-off and a wake-up per chunk, which matters with the small, cache-sized
//! chunks that make loopback fast.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::header::Header;
use super::link::{Fault, classify};
use super::ring::{chunks, schedule, segments};
use crate::element::{Element, ReduceOp, cast_slice};

/// Pieces completed per loop turn before writing again.
const MAX_PIECES_PER_TURN: usize = 2;

/// One expected incoming piece: the 32-byte header, or a chunk of the buffer.
enum Incoming {
    Header,
    Chunk {
        range: Range<usize>,
        reduce: bool,
        forward: bool,
    },
}

/// The sockets and parameters of one all-reduce.
pub(crate) struct Polled<'a> {
    pub out: &'a TcpStream,
    pub inn: &'a TcpStream,
    pub next: usize,
    pub prev: usize,
    pub rank: usize,
    pub n: usize,
    pub chunk_bytes: usize,
    pub scratch: &'a mut Vec<u64>,
}

impl Polled<'_> {
    /// All-reduce `buf` in place; the header is compared with the previous rank's.
    pub(crate) fn all_reduce<T: Element>(
        &mut self,
        buf: &mut [T],
        op: ReduceOp,
        header: Header,
        deadline: Instant,
    ) -> Result<(), Fault> {
        set_nonblocking(self.out, self.inn, true).map_err(|e| classify(self.next, &e))?;
        let res = self.run(buf, op, header, deadline);
        let restored = set_nonblocking(self.out, self.inn, false);
        res?;
        restored.map_err(|e| classify(self.next, &e))
    }

    fn run<T: Element>(
        &mut self,
        buf: &mut [T],
        op: ReduceOp,
        header: Header,
        deadline: Instant,
    ) -> Result<(), Fault> {
        let esz = std::mem::size_of::<T>();
        let chunk = (self.chunk_bytes / esz).max(1);
        let segs = segments(buf.len(), self.n);
        let sched = schedule(self.rank, self.n);
        if self.scratch.len() * 8 < chunk * esz {
            *self.scratch = vec![0u64; (chunk * esz).div_ceil(8)];
        }

        // What we will receive, in order.
        let mut incoming: VecDeque<Incoming> = VecDeque::from([Incoming::Header]);
        for (t, step) in sched.iter().enumerate() {
            for range in chunks(segs[step.recv].clone(), chunk) {
                let forward = t + 1 < sched.len();
                incoming.push_back(Incoming::Chunk {
                    range,
                    reduce: step.reduce,
                    forward,
                });
            }
        }
        // What we send, in order: byte ranges of `buf` (the header is sent first).
        let ours = header.encode();
        let mut header_sent = 0usize;
        let mut outgoing: VecDeque<Range<usize>> = VecDeque::new();
        if let Some(first) = sched.first() {
            // Contiguous: one range for the whole first segment.
            let s = segs[first.send].clone();
            if !s.is_empty() {
                outgoing.push_back(s.start * esz..s.end * esz);
            }
        }
        let mut theirs = [0u8; 32];
        let mut got = 0usize; // bytes of the current incoming piece received so far

        let base = buf.as_mut_ptr().cast::<u8>();
        let total = std::mem::size_of_val(buf);
        let mut out = self.out;
        let mut inn = self.inn;
        loop {
            let want_send = header_sent < ours.len() || !outgoing.is_empty();
            let want_recv = !incoming.is_empty();
            if !want_send && !want_recv {
                return Ok(());
            }
            let mut progressed = false;

            // Write as much as the socket takes.
            while header_sent < ours.len() || !outgoing.is_empty() {
                let res = if header_sent < ours.len() {
                    out.write(&ours[header_sent..])
                } else {
                    let r = outgoing[0].clone();
                    debug_assert!(r.end <= total);
                    // SAFETY: `r` lies within `buf`; the chunk is not written again before
                    // it is sent (the schedule receives into a segment only after sending it).
                    let bytes = unsafe { std::slice::from_raw_parts(base.add(r.start), r.len()) };
                    out.write(bytes)
                };
                match res {
                    Ok(0) => return Err(Fault::Lost { peer: self.next }),
                    Ok(k) => {
                        progressed = true;
                        if header_sent < ours.len() {
                            header_sent += k;
                        } else {
                            outgoing[0].start += k;
                            if outgoing[0].is_empty() {
                                outgoing.pop_front();
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(classify(self.next, &e)),
                }
            }

            // Read what has arrived, finishing pieces as they complete; go back to writing
            // after a few so that forwarded chunks leave while they are still in cache.
            let mut completed = 0;
            while let Some(piece) = incoming.front() {
                if completed == MAX_PIECES_PER_TURN {
                    break;
                }
                let (dst, need): (&mut [u8], usize) = match piece {
                    Incoming::Header => (&mut theirs[got..], 32),
                    Incoming::Chunk {
                        range,
                        reduce: true,
                        ..
                    } => {
                        let nbytes = range.len() * esz;
                        let s = crate::element::as_bytes_mut(self.scratch.as_mut_slice());
                        (&mut s[got..nbytes], nbytes)
                    }
                    Incoming::Chunk {
                        range,
                        reduce: false,
                        ..
                    } => {
                        let (a, b) = (range.start * esz, range.end * esz);
                        // SAFETY: `a..b` lies within `buf` and is not queued for sending
                        // until it has been received.
                        let d = unsafe {
                            std::slice::from_raw_parts_mut(base.add(a + got), b - a - got)
                        };
                        (d, b - a)
                    }
                };
                if need > got {
                    match inn.read(dst) {
                        Ok(0) => return Err(Fault::Lost { peer: self.prev }),
                        Ok(k) => {
                            got += k;
                            progressed = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(classify(self.prev, &e)),
                    }
                    if got < need {
                        continue;
                    }
                }
                // The piece is complete.
                got = 0;
                completed += 1;
                match incoming.pop_front() {
                    Some(Incoming::Header) => {
                        if let Some(reason) = header.diff(&theirs, true) {
                            return Err(Fault::Mismatch {
                                peer: self.prev,
                                reason,
                            });
                        }
                    }
                    Some(Incoming::Chunk {
                        range,
                        reduce,
                        forward,
                    }) => {
                        if reduce {
                            let nbytes = range.len() * esz;
                            let s = crate::element::as_bytes(self.scratch.as_slice());
                            let src = cast_slice::<T>(&s[..nbytes])
                                .ok_or(Fault::Lost { peer: self.prev })?;
                            // SAFETY: `range` lies within `buf`; not queued for sending yet.
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(
                                    base.cast::<T>().add(range.start),
                                    range.len(),
                                )
                            };
                            T::reduce(dst, src, op);
                        }
                        if forward {
                            let r = range.start * esz..range.end * esz;
                            match outgoing.back_mut() {
                                Some(last) if last.end == r.start => last.end = r.end,
                                _ => outgoing.push_back(r),
                            }
                        }
                    }
                    None => {}
                }
            }

            if progressed {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                let peer = if want_recv { self.prev } else { self.next };
                return Err(Fault::Stalled { peer });
            }
            let wait_ms = (deadline - now).as_millis().clamp(1, 100) as libc::c_int;
            let mut fds = [
                libc::pollfd {
                    fd: inn.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: out.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                },
            ];
            let nfds = if want_send { 2 } else { 1 };
            // SAFETY: `fds` is a valid array of `nfds` pollfd structures.
            unsafe { libc::poll(fds.as_mut_ptr(), nfds, wait_ms) };
        }
    }
}

fn set_nonblocking(a: &TcpStream, b: &TcpStream, on: bool) -> io::Result<()> {
    a.set_nonblocking(on)?;
    b.set_nonblocking(on)
}
