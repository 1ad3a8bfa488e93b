//! The 32-byte header that opens every TCP operation.
//!
//! Both neighbours compare it (operation, element type, reduction, sequence number,
//! length), so ranks that call different collectives, or the same one with different
//! sizes, fail with a named mismatch instead of silently mixing buffers.

use crate::error::Op;

const HEADER_MAGIC: u32 = 0x5647_4F50;

pub(crate) fn op_code(op: Op) -> u8 {
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
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32);
        v.extend_from_slice(&HEADER_MAGIC.to_le_bytes());
        v.extend_from_slice(&[op_code(self.op), self.dtype, self.redop, 0]);
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&self.len.to_le_bytes());
        v.extend_from_slice(&self.extra.to_le_bytes());
        v
    }

    /// Describe how `theirs` (raw bytes) differs from `self`, if it does.
    pub(crate) fn diff(&self, theirs: &[u8; 32], compare_len: bool) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seq: u64, len: u64) -> Header {
        Header {
            op: Op::AllReduce,
            dtype: 1,
            redop: 0,
            seq,
            len,
            extra: 0,
        }
    }

    fn bytes(h: Header) -> [u8; 32] {
        h.encode().try_into().unwrap()
    }

    #[test]
    fn equal_headers_agree() {
        assert_eq!(h(3, 10).diff(&bytes(h(3, 10)), true), None);
    }

    #[test]
    fn differences_are_described() {
        assert!(
            h(3, 10)
                .diff(&bytes(h(4, 10)), true)
                .unwrap()
                .contains("#4")
        );
        assert!(
            h(3, 10)
                .diff(&bytes(h(3, 11)), true)
                .unwrap()
                .contains("11 elements")
        );
        assert_eq!(h(3, 10).diff(&bytes(h(3, 11)), false), None);
        assert!(h(3, 10).diff(&[0u8; 32], true).unwrap().contains("magic"));
    }
}
