//! The store's key-value state and request semantics, without I/O.
//!
//! The server holds one [`StoreState`] behind a mutex and calls [`StoreState::apply`] for
//! every request except `Auth` and `Wait`, which involve the connection and time. Counters
//! are stored as decimal ASCII (as torch's TCPStore does) so `get` on a counter is readable.

use std::collections::HashMap;

use super::protocol::{Request, Response};

/// The store's contents.
#[derive(Debug, Default)]
pub struct StoreState {
    map: HashMap<String, Vec<u8>>,
}

impl StoreState {
    /// Are all `keys` present?
    pub fn has_all(&self, keys: &[String]) -> bool {
        keys.iter().all(|k| self.map.contains_key(k))
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `true` when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Apply a request; returns the response and whether the state changed (wakes waiters).
    pub fn apply(&mut self, req: Request) -> (Response, bool) {
        match req {
            Request::Set { key, value } => {
                self.map.insert(key, value);
                (Response::Ok, true)
            }
            Request::Get { key } => match self.map.get(&key) {
                Some(v) => (Response::Value(v.clone()), false),
                None => (Response::Missing, false),
            },
            Request::Check { keys } => (Response::Bool(self.has_all(&keys)), false),
            Request::Add { key, delta } => {
                let current = match self.map.get(&key) {
                    None => 0,
                    Some(v) => match std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) => n,
                        None => {
                            let msg = format!("key {key} does not hold a decimal integer");
                            return (Response::Error(msg), false);
                        }
                    },
                };
                let new = current.wrapping_add(delta);
                self.map.insert(key, new.to_string().into_bytes());
                (Response::Int(new), true)
            }
            Request::CompareSet {
                key,
                expected,
                desired,
            } => {
                let current = self.map.get(&key);
                if current.map(Vec::as_slice) == expected.as_deref() {
                    self.map.insert(key, desired.clone());
                    (
                        Response::Swapped {
                            swapped: true,
                            current: Some(desired),
                        },
                        true,
                    )
                } else {
                    (
                        Response::Swapped {
                            swapped: false,
                            current: current.cloned(),
                        },
                        false,
                    )
                }
            }
            Request::Delete { key } => {
                let existed = self.map.remove(&key).is_some();
                (Response::Bool(existed), existed)
            }
            Request::Auth { .. } | Request::Wait { .. } => {
                (Response::Error("request not valid here".into()), false)
            }
        }
    }
}

/// Compare two secrets in time independent of where they differ (lengths may leak).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn add_counts_from_zero_and_is_readable() {
        let mut s = StoreState::default();
        assert_eq!(
            s.apply(Request::Add {
                key: key("c"),
                delta: 2
            })
            .0,
            Response::Int(2)
        );
        assert_eq!(
            s.apply(Request::Add {
                key: key("c"),
                delta: -5
            })
            .0,
            Response::Int(-3)
        );
        assert_eq!(
            s.apply(Request::Get { key: key("c") }).0,
            Response::Value(b"-3".to_vec())
        );
    }

    #[test]
    fn add_on_non_integer_is_an_error_not_a_reset() {
        let mut s = StoreState::default();
        s.apply(Request::Set {
            key: key("c"),
            value: b"abc".to_vec(),
        });
        assert!(matches!(
            s.apply(Request::Add {
                key: key("c"),
                delta: 1
            })
            .0,
            Response::Error(_)
        ));
        assert_eq!(
            s.apply(Request::Get { key: key("c") }).0,
            Response::Value(b"abc".to_vec())
        );
    }

    #[test]
    fn compare_set_semantics() {
        let mut s = StoreState::default();
        let cas = |s: &mut StoreState, exp: Option<&[u8]>, des: &[u8]| {
            s.apply(Request::CompareSet {
                key: key("k"),
                expected: exp.map(<[u8]>::to_vec),
                desired: des.to_vec(),
            })
            .0
        };
        let swapped = |v: &[u8]| Response::Swapped {
            swapped: true,
            current: Some(v.to_vec()),
        };
        assert_eq!(cas(&mut s, None, b"a"), swapped(b"a"));
        assert_eq!(
            cas(&mut s, None, b"b"),
            Response::Swapped {
                swapped: false,
                current: Some(b"a".to_vec())
            }
        );
        assert_eq!(cas(&mut s, Some(b"a"), b"c"), swapped(b"c"));
    }

    #[test]
    fn delete_and_check() {
        let mut s = StoreState::default();
        s.apply(Request::Set {
            key: key("a"),
            value: vec![],
        });
        assert!(s.has_all(&[key("a")]));
        assert!(!s.has_all(&[key("a"), key("b")]));
        assert_eq!(
            s.apply(Request::Delete { key: key("a") }).0,
            Response::Bool(true)
        );
        assert_eq!(
            s.apply(Request::Delete { key: key("a") }).0,
            Response::Bool(false)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn constant_time_eq_matches_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
