//! Byte-level reading and writing of frames and their fields, shared by requests and
//! responses, with the frame limit and [`ProtocolError`]. Every read checks the remaining
//! length first, so no input can make it panic or allocate more than the frame holds.
//!
//! `protocol.rs` builds messages on top of this file and re-exports its public items; this
//! file imports nothing from there, so the dependency points one way.

use std::fmt;

/// Largest payload accepted in one frame (values are addresses, ids and small JSON).
pub const MAX_FRAME: usize = 16 << 20;

/// Why a byte sequence is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The frame header announces more than [`MAX_FRAME`] bytes.
    TooLarge {
        /// Announced payload length.
        len: usize,
    },
    /// The payload ended before a field did, or has bytes left after the last field.
    Malformed(&'static str),
    /// Unknown tag byte.
    UnknownTag(u8),
    /// A key is not UTF-8.
    BadKey,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::TooLarge { len } => {
                write!(f, "frame of {len} bytes exceeds the limit of {MAX_FRAME}")
            }
            ProtocolError::Malformed(what) => write!(f, "malformed frame: {what}"),
            ProtocolError::UnknownTag(t) => write!(f, "unknown message tag {t}"),
            ProtocolError::BadKey => f.write_str("key is not valid UTF-8"),
        }
    }
}

impl std::error::Error for ProtocolError {}

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError::Malformed(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1, "truncated byte")?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        let b = self.take(4, "truncated u32")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, ProtocolError> {
        let b = self.take(8, "truncated u64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let n = self.u32()? as usize;
        Ok(self.take(n, "byte string longer than the frame")?.to_vec())
    }
    pub(crate) fn key(&mut self) -> Result<String, ProtocolError> {
        String::from_utf8(self.bytes()?).map_err(|_| ProtocolError::BadKey)
    }
    pub(crate) fn keys(&mut self) -> Result<Vec<String>, ProtocolError> {
        let n = self.u32()? as usize;
        // Every key takes at least 4 bytes: reject counts the frame cannot hold before
        // reserving memory for them.
        if n > self.buf.len() / 4 {
            return Err(ProtocolError::Malformed("key count larger than the frame"));
        }
        (0..n).map(|_| self.key()).collect()
    }
    pub(crate) fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            _ => Err(ProtocolError::Malformed("bad option flag")),
        }
    }
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::Malformed("trailing bytes"))
        }
    }
}

#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(tag: u8) -> Self {
        let mut w = Writer { buf: vec![0; 4] };
        w.buf.push(tag);
        w
    }
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
        self
    }
    pub(crate) fn keys(&mut self, keys: &[String]) -> &mut Self {
        self.u32(keys.len() as u32);
        for k in keys {
            self.bytes(k.as_bytes());
        }
        self
    }
    pub(crate) fn opt_bytes(&mut self, b: &Option<Vec<u8>>) -> &mut Self {
        match b {
            None => self.u8(0),
            Some(b) => self.u8(1).bytes(b),
        }
    }
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf
    }
}

/// Split one frame off the front of `buf`: `Ok(None)` if more bytes are needed, else the
/// payload and the total number of bytes the frame used.
pub(crate) fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge { len });
    }
    if len == 0 {
        return Err(ProtocolError::Malformed("empty frame"));
    }
    match buf.get(4..4 + len) {
        Some(payload) => Ok(Some((payload, 4 + len))),
        None => Ok(None),
    }
}
