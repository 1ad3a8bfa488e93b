//! One TCP link of the ring: a sending half driven by its own thread and a receiving half
//! read with a deadline. Broadcast and all-gather use these; the all-reduce drives the same
//! sockets itself, non-blocking (see [`super::polled`]), while the sender thread is idle.
//!
//! The sender thread lets an operation queue a chunk and go on receiving the next one.
//! Queued chunks may be *borrowed* from the caller's buffer (no copy), which is sound
//! because every operation ends with [`SendLink::flush`], which returns only once the
//! thread has finished with every queued chunk — on error paths too, after
//! [`SendLink::shutdown`] has made any blocked write return.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What went wrong on a link, before it is named with an operation and sequence number.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The peer closed or reset the connection.
    Lost { peer: usize },
    /// The peer did not send or accept data before the deadline.
    Stalled { peer: usize },
    /// The peer's operation header differs from ours.
    Mismatch { peer: usize, reason: String },
}

pub(crate) fn classify(peer: usize, e: &io::Error) -> Fault {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fault::Stalled { peer },
        _ => Fault::Lost { peer },
    }
}

struct RawChunk {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointer is only dereferenced by the sender thread while the owning operation
// blocks in `flush`, which keeps the memory alive and unmodified (see module docs).
unsafe impl Send for RawChunk {}

enum Msg {
    Begin(Duration),
    Borrowed(RawChunk),
    Owned(Vec<u8>),
    Flush,
}

/// The sending half of a link.
pub(crate) struct SendLink {
    tx: Option<mpsc::Sender<Msg>>,
    acks: mpsc::Receiver<Option<io::Error>>,
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
    pub(crate) peer: usize,
}

impl SendLink {
    pub(crate) fn new(stream: TcpStream, peer: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let (ack_tx, acks) = mpsc::channel();
        let mut out = stream.try_clone()?;
        let thread = std::thread::Builder::new()
            .name(format!("vigil-send-{peer}"))
            .spawn(move || {
                let mut err: Option<io::Error> = None;
                for msg in rx {
                    let data: &[u8] = match &msg {
                        Msg::Begin(t) => {
                            let _ = out.set_write_timeout(Some(*t));
                            continue;
                        }
                        Msg::Flush => {
                            if ack_tx.send(err.take()).is_err() {
                                return;
                            }
                            continue;
                        }
                        Msg::Owned(v) => v,
                        // SAFETY: see `RawChunk`; the memory outlives the next `Flush`.
                        Msg::Borrowed(c) => unsafe { std::slice::from_raw_parts(c.ptr, c.len) },
                    };
                    if err.is_none()
                        && let Err(e) = out.write_all(data)
                    {
                        err = Some(e);
                    }
                }
            })?;
        Ok(SendLink {
            tx: Some(tx),
            acks,
            stream,
            thread: Some(thread),
            peer,
        })
    }

    fn push(&self, msg: Msg) {
        // A dead thread is reported by the next `flush`.
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }

    /// Start an operation: writes time out after `timeout`.
    pub(crate) fn begin(&self, timeout: Duration) {
        self.push(Msg::Begin(timeout));
    }

    /// Queue `bytes` for sending without copying.
    ///
    /// # Safety
    /// `bytes` must stay alive and unmodified until the next [`SendLink::flush`] returns.
    pub(crate) unsafe fn send_borrowed(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.push(Msg::Borrowed(RawChunk {
                ptr: bytes.as_ptr(),
                len: bytes.len(),
            }));
        }
    }

    /// Queue an owned message.
    pub(crate) fn send_owned(&self, bytes: Vec<u8>) {
        self.push(Msg::Owned(bytes));
    }

    /// Wait until everything queued has been written (or failed).
    pub(crate) fn flush(&self) -> Result<(), Fault> {
        self.push(Msg::Flush);
        match self.acks.recv() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(classify(self.peer, &e)),
            Err(_) => Err(Fault::Lost { peer: self.peer }),
        }
    }

    /// The socket, for operations that drive it directly (the thread must be idle: between
    /// a `flush` and the next queued message).
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Tear the connection down; a blocked write in the thread returns at once.
    pub(crate) fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl Drop for SendLink {
    fn drop(&mut self) {
        self.tx.take();
        self.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The receiving half of a link.
pub(crate) struct RecvLink {
    stream: TcpStream,
    pub(crate) peer: usize,
}

impl RecvLink {
    pub(crate) fn new(stream: TcpStream, peer: usize) -> Self {
        RecvLink { stream, peer }
    }

    /// Fill `buf` completely before `deadline`.
    pub(crate) fn read_exact(
        &mut self,
        mut buf: &mut [u8],
        deadline: Instant,
    ) -> Result<(), Fault> {
        let peer = self.peer;
        let mut armed = Duration::ZERO;
        while !buf.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Fault::Stalled { peer });
            }
            // Re-arm the socket timeout only when it has drifted far from the time left:
            // one setsockopt per chunk would be cheap, one per read() is not needed.
            if armed < left / 2 || armed > left {
                self.stream
                    .set_read_timeout(Some(left))
                    .map_err(|e| classify(peer, &e))?;
                armed = left;
            }
            match self.stream.read(buf) {
                Ok(0) => return Err(Fault::Lost { peer }),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match classify(peer, &e) {
                    Fault::Stalled { .. } => continue,
                    other => return Err(other),
                },
            }
        }
        Ok(())
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The socket, for operations that drive it directly.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// Large kernel buffers let a whole pipeline of chunks be in flight on each link.
pub(crate) fn tune(stream: &TcpStream, buf_bytes: usize) {
    use std::os::fd::AsRawFd;
    let _ = stream.set_nodelay(true);
    if buf_bytes == 0 {
        return;
    }
    let fd = stream.as_raw_fd();
    let v = buf_bytes.min(i32::MAX as usize) as libc::c_int;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: plain setsockopt on a valid fd with a c_int option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}
