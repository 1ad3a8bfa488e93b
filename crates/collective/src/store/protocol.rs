//! The store's wire format: pure encode/decode, no I/O.
//!
//! A frame is `u32 length (LE)` followed by `length` payload bytes; the payload is a tag byte
//! and the tag's fields. Byte strings are `u32 len + bytes`, integers little-endian. The
//! decoder takes a byte slice and answers "a whole frame and how many bytes it used", "need
//! more bytes", or an error; it checks every length against the bytes present and against
//! [`MAX_FRAME`] *before* allocating, so garbage can neither panic it nor make it reserve
//! gigabytes. The connection code around it only reads sockets and appends to a buffer.

pub use super::codec::{MAX_FRAME, ProtocolError};
use super::codec::{Reader, Writer, split_frame};

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Must be the first request on a connection.
    Auth {
        /// The run's secret (`VIGIL_STORE_TOKEN`).
        token: Vec<u8>,
    },
    /// Set `key` to `value`.
    Set {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
    /// Read `key` (answer `Value` or `Missing`).
    Get {
        /// Key.
        key: String,
    },
    /// Are all keys present? (answer `Bool`)
    Check {
        /// Keys.
        keys: Vec<String>,
    },
    /// Block until all keys are present (answer `Ok`) or the timeout expires (`TimedOut`).
    Wait {
        /// Keys.
        keys: Vec<String>,
        /// Timeout in milliseconds.
        timeout_ms: u64,
    },
    /// Atomically add `delta` to the decimal integer stored at `key` (missing = 0).
    Add {
        /// Key.
        key: String,
        /// Amount to add.
        delta: i64,
    },
    /// Set `key` to `desired` if its value is `expected` (`None`: if it is absent).
    CompareSet {
        /// Key.
        key: String,
        /// Expected current value; `None` means "absent".
        expected: Option<Vec<u8>>,
        /// New value.
        desired: Vec<u8>,
    },
    /// Remove `key` (answer `Bool`: whether it existed).
    Delete {
        /// Key.
        key: String,
    },
}

/// A server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Success without a value.
    Ok,
    /// A value.
    Value(Vec<u8>),
    /// The key does not exist.
    Missing,
    /// A counter's new value.
    Int(i64),
    /// A yes/no answer.
    Bool(bool),
    /// A wait timed out.
    TimedOut,
    /// Compare-and-set outcome: whether it swapped and the value now stored.
    Swapped {
        /// Whether `desired` was written.
        swapped: bool,
        /// The value stored after the operation (`None`: absent).
        current: Option<Vec<u8>>,
    },
    /// The request was refused (unauthenticated, bad counter, ...).
    Error(String),
}

impl Request {
    /// Encode as one frame (header included).
    pub fn encode(&self) -> Vec<u8> {
        let w = match self {
            Request::Auth { token } => {
                let mut w = Writer::new(1);
                w.bytes(token);
                w
            }
            Request::Set { key, value } => {
                let mut w = Writer::new(2);
                w.bytes(key.as_bytes()).bytes(value);
                w
            }
            Request::Get { key } => {
                let mut w = Writer::new(3);
                w.bytes(key.as_bytes());
                w
            }
            Request::Check { keys } => {
                let mut w = Writer::new(4);
                w.keys(keys);
                w
            }
            Request::Wait { keys, timeout_ms } => {
                let mut w = Writer::new(5);
                w.keys(keys).u64(*timeout_ms);
                w
            }
            Request::Add { key, delta } => {
                let mut w = Writer::new(6);
                w.bytes(key.as_bytes()).u64(*delta as u64);
                w
            }
            Request::CompareSet {
                key,
                expected,
                desired,
            } => {
                let mut w = Writer::new(7);
                w.bytes(key.as_bytes()).opt_bytes(expected).bytes(desired);
                w
            }
            Request::Delete { key } => {
                let mut w = Writer::new(8);
                w.bytes(key.as_bytes());
                w
            }
        };
        w.finish()
    }

    /// Decode one request from the front of `buf` (see the module docs).
    pub fn decode(buf: &[u8]) -> Result<Option<(Request, usize)>, ProtocolError> {
        let Some((payload, used)) = split_frame(buf)? else {
            return Ok(None);
        };
        let mut r = Reader { buf: payload };
        let req = match r.u8()? {
            1 => Request::Auth { token: r.bytes()? },
            2 => Request::Set {
                key: r.key()?,
                value: r.bytes()?,
            },
            3 => Request::Get { key: r.key()? },
            4 => Request::Check { keys: r.keys()? },
            5 => Request::Wait {
                keys: r.keys()?,
                timeout_ms: r.u64()?,
            },
            6 => Request::Add {
                key: r.key()?,
                delta: r.u64()? as i64,
            },
            7 => Request::CompareSet {
                key: r.key()?,
                expected: r.opt_bytes()?,
                desired: r.bytes()?,
            },
            8 => Request::Delete { key: r.key()? },
            t => return Err(ProtocolError::UnknownTag(t)),
        };
        r.finish()?;
        Ok(Some((req, used)))
    }
}

impl Response {
    /// Encode as one frame (header included).
    pub fn encode(&self) -> Vec<u8> {
        let w = match self {
            Response::Ok => Writer::new(1),
            Response::Value(v) => {
                let mut w = Writer::new(2);
                w.bytes(v);
                w
            }
            Response::Missing => Writer::new(3),
            Response::Int(i) => {
                let mut w = Writer::new(4);
                w.u64(*i as u64);
                w
            }
            Response::Bool(b) => {
                let mut w = Writer::new(5);
                w.u8(*b as u8);
                w
            }
            Response::TimedOut => Writer::new(6),
            Response::Swapped { swapped, current } => {
                let mut w = Writer::new(7);
                w.u8(*swapped as u8).opt_bytes(current);
                w
            }
            Response::Error(msg) => {
                let mut w = Writer::new(8);
                w.bytes(msg.as_bytes());
                w
            }
        };
        w.finish()
    }

    /// Decode one response from the front of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Option<(Response, usize)>, ProtocolError> {
        let Some((payload, used)) = split_frame(buf)? else {
            return Ok(None);
        };
        let mut r = Reader { buf: payload };
        let resp = match r.u8()? {
            1 => Response::Ok,
            2 => Response::Value(r.bytes()?),
            3 => Response::Missing,
            4 => Response::Int(r.u64()? as i64),
            5 => Response::Bool(r.u8()? != 0),
            6 => Response::TimedOut,
            7 => Response::Swapped {
                swapped: r.u8()? != 0,
                current: r.opt_bytes()?,
            },
            8 => Response::Error(String::from_utf8_lossy(&r.bytes()?).into_owned()),
            t => return Err(ProtocolError::UnknownTag(t)),
        };
        r.finish()?;
        Ok(Some((resp, used)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Request> {
        vec![
            Request::Auth {
                token: b"secret".to_vec(),
            },
            Request::Set {
                key: "a/b".into(),
                value: vec![1, 2, 3],
            },
            Request::Get { key: "k".into() },
            Request::Check {
                keys: vec!["x".into(), "y".into()],
            },
            Request::Wait {
                keys: vec!["x".into()],
                timeout_ms: 1234,
            },
            Request::Add {
                key: "c".into(),
                delta: -7,
            },
            Request::CompareSet {
                key: "c".into(),
                expected: None,
                desired: b"1".to_vec(),
            },
            Request::CompareSet {
                key: "c".into(),
                expected: Some(vec![]),
                desired: vec![],
            },
            Request::Delete { key: "c".into() },
        ]
    }

    #[test]
    fn requests_round_trip_and_report_incomplete_prefixes() {
        for req in samples() {
            let bytes = req.encode();
            assert_eq!(
                Request::decode(&bytes),
                Ok(Some((req.clone(), bytes.len())))
            );
            for cut in 0..bytes.len() {
                assert_eq!(
                    Request::decode(&bytes[..cut]),
                    Ok(None),
                    "{req:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn responses_round_trip() {
        let all = [
            Response::Ok,
            Response::Value(b"v".to_vec()),
            Response::Missing,
            Response::Int(-3),
            Response::Bool(true),
            Response::TimedOut,
            Response::Swapped {
                swapped: false,
                current: Some(b"x".to_vec()),
            },
            Response::Error("no".into()),
        ];
        for resp in all {
            let bytes = resp.encode();
            assert_eq!(Response::decode(&bytes), Ok(Some((resp, bytes.len()))));
        }
    }

    #[test]
    fn oversized_frame_is_rejected_before_it_arrives() {
        let header = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert_eq!(
            Request::decode(&header),
            Err(ProtocolError::TooLarge { len: MAX_FRAME + 1 })
        );
    }

    #[test]
    fn huge_key_count_is_rejected_without_allocating() {
        let mut w = Writer::new(4);
        w.u32(u32::MAX);
        assert!(matches!(
            Request::decode(&w.finish()),
            Err(ProtocolError::Malformed(_))
        ));
    }

    /// Property test by seeded random search: arbitrary bytes, and valid frames with random
    /// mutations, never panic the decoder, and whatever it accepts re-encodes to the bytes.
    #[test]
    fn decoder_never_panics_on_garbage() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(0x5EED);
        let samples = samples();
        for i in 0..50_000 {
            let mut bytes: Vec<u8> = if i % 2 == 0 {
                let n = rng.random_range(0..64);
                (0..n).map(|_| rng.random()).collect()
            } else {
                samples[i % samples.len()].encode()
            };
            let flips = rng.random_range(0..4);
            for _ in 0..flips {
                if !bytes.is_empty() {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] = rng.random();
                }
            }
            if let Ok(Some((req, used))) = Request::decode(&bytes) {
                assert_eq!(req.encode(), bytes[..used].to_vec());
            }
            let _ = Response::decode(&bytes);
        }
    }
}
