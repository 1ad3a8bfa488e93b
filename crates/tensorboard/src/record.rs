//! TFRecord framing, the container of TensorBoard event files, as pure functions.
//!
//! A record is `u64 length (LE) | u32 masked_crc32c(length bytes) | payload |
//! u32 masked_crc32c(payload)`. The CRC is Castagnoli's, "masked" (rotated and
//! offset) so that a CRC stored inside CRC-covered data does not cancel out.
//! Encoding never fails; decoding checks both CRCs and says at which byte offset a
//! file is cut short or corrupt, so a reader can tell a half-written tail (the
//! writer is still running, or crashed) from damage.

/// Bytes of framing around each payload: length, its CRC, the payload's CRC.
pub const FRAMING_BYTES: usize = 8 + 4 + 4;

const MASK_DELTA: u32 = 0xa282_ead8;

/// The masked CRC32C TensorBoard stores: `rotr(crc, 15) + 0xa282ead8`.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Appends one framed record holding `payload` to `out`.
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u64).to_le_bytes();
    out.reserve(payload.len() + FRAMING_BYTES);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
}

/// Why bytes are not a valid record stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The stream ends inside a record (a writer still running, or crashed).
    #[error("record at byte {offset} is cut short: needs {needed} bytes, {available} left")]
    Truncated {
        /// Offset of the record's first byte.
        offset: usize,
        /// Bytes the record needs.
        needed: usize,
        /// Bytes left in the stream.
        available: usize,
    },
    /// The length field does not match its CRC.
    #[error(
        "record at byte {offset}: length CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    LengthCrc {
        /// Offset of the record's first byte.
        offset: usize,
        /// CRC in the file.
        stored: u32,
        /// CRC of the length bytes.
        computed: u32,
    },
    /// The payload does not match its CRC.
    #[error(
        "record at byte {offset}: payload CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    DataCrc {
        /// Offset of the record's first byte.
        offset: usize,
        /// CRC in the file.
        stored: u32,
        /// CRC of the payload bytes.
        computed: u32,
    },
}

/// Decodes the record starting at `offset` of `bytes`: its payload and the offset
/// of the next record. Both CRCs are checked.
pub fn decode_record(bytes: &[u8], offset: usize) -> Result<(&[u8], usize), RecordError> {
    let rest = &bytes[offset.min(bytes.len())..];
    let truncated = |needed: usize| RecordError::Truncated {
        offset,
        needed,
        available: rest.len(),
    };
    if rest.len() < 12 {
        return Err(truncated(12));
    }
    let len_bytes = &rest[..8];
    let stored = u32_at(rest, 8);
    let computed = masked_crc32c(len_bytes);
    if stored != computed {
        return Err(RecordError::LengthCrc {
            offset,
            stored,
            computed,
        });
    }
    let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    let needed = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(FRAMING_BYTES))
        .unwrap_or(usize::MAX);
    if rest.len() < needed {
        return Err(truncated(needed));
    }
    let payload = &rest[12..needed - 4];
    let stored = u32_at(rest, needed - 4);
    let computed = masked_crc32c(payload);
    if stored != computed {
        return Err(RecordError::DataCrc {
            offset,
            stored,
            computed,
        });
    }
    Ok((payload, offset + needed))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Iterates over the payloads of a record stream; stops after the first error.
pub fn records(bytes: &[u8]) -> Records<'_> {
    Records {
        bytes,
        offset: 0,
        failed: false,
    }
}

/// Iterator returned by [`records`].
#[derive(Debug)]
pub struct Records<'a> {
    bytes: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.bytes.len() {
            return None;
        }
        match decode_record(self.bytes, self.offset) {
            Ok((payload, next)) => {
                self.offset = next;
                Some(Ok(payload))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_record(p, &mut out);
        }
        out
    }

    #[test]
    fn crc32c_known_answer_and_mask() {
        // RFC 3720 B.4: CRC32C of 32 zero bytes.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        // ((crc >> 15) | (crc << 17)) + 0xa282ead8, worked out by hand.
        assert_eq!(masked_crc32c(&[0u8; 32]), 0x0fd7_fffa);
    }

    #[test]
    fn known_bytes_of_the_tensorflow_file_header() {
        // The first record TensorFlow writes: an Event with wall_time 0 would differ,
        // so check only the framing of a fixed 3-byte payload byte by byte.
        let out = stream(&[b"abc"]);
        assert_eq!(out.len(), 3 + FRAMING_BYTES);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(
            &out[8..12],
            &masked_crc32c(&3u64.to_le_bytes()).to_le_bytes()
        );
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(&out[15..], &masked_crc32c(b"abc").to_le_bytes());
    }

    #[test]
    fn round_trip_including_empty_payloads() {
        let big = vec![7u8; 100_000];
        let payloads: Vec<&[u8]> = vec![b"", b"x", &big, b"last"];
        let bytes = stream(&payloads);
        let back: Vec<&[u8]> = records(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(back, payloads);
    }

    #[test]
    fn truncated_tail_is_reported_at_its_offset() {
        let bytes = stream(&[b"first", b"second"]);
        let second = 5 + FRAMING_BYTES;
        for cut in [second + 3, second + 12, bytes.len() - 1] {
            let got: Vec<_> = records(&bytes[..cut]).collect();
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0], Ok(&b"first"[..]));
            assert!(
                matches!(got[1], Err(RecordError::Truncated { offset, .. }) if offset == second),
                "cut at {cut}: {:?}",
                got[1]
            );
        }
    }

    #[test]
    fn flipped_length_byte_fails_the_length_crc() {
        let mut bytes = stream(&[b"payload"]);
        bytes[0] ^= 0x01;
        assert!(matches!(
            records(&bytes).next(),
            Some(Err(RecordError::LengthCrc { offset: 0, .. }))
        ));
    }

    #[test]
    fn flipped_payload_or_crc_byte_fails_the_data_crc() {
        for at in [12, 14, 12 + 7] {
            let mut bytes = stream(&[b"payload"]);
            bytes[at] ^= 0x80;
            assert!(
                matches!(
                    records(&bytes).next(),
                    Some(Err(RecordError::DataCrc { offset: 0, .. }))
                ),
                "flip at {at}"
            );
        }
    }

    #[test]
    fn iteration_stops_after_the_first_error() {
        let mut bytes = stream(&[b"a", b"b", b"c"]);
        bytes[1 + FRAMING_BYTES + 12] ^= 0xff; // payload of the second record
        let got: Vec<_> = records(&bytes).collect();
        assert_eq!(got.len(), 2);
        assert!(got[1].is_err());
    }

    #[test]
    fn absurd_length_is_truncation_not_a_panic() {
        let len = u64::MAX.to_le_bytes();
        let mut bytes = len.to_vec();
        bytes.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        assert!(matches!(
            decode_record(&bytes, 0),
            Err(RecordError::Truncated { .. })
        ));
    }
}
