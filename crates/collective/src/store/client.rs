//! Blocking store client on `std::net::TcpStream`.
//!
//! The trainer is synchronous and the launcher can call this from `spawn_blocking`, so one
//! simple blocking client serves both; every request has a socket timeout, so a dead server
//! gives an error rather than a hang. `connect` retries until its timeout because workers
//! routinely start before the launcher's server is listening. A client may carry a key
//! prefix (see [`StoreClient::with_prefix`]) so a restarted group never reads keys written by
//! the previous generation.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::protocol::{Request, Response};
use crate::error::{Error, Result};

/// Extra time the socket waits beyond a `wait` request's own timeout for the answer.
const WAIT_SLACK: Duration = Duration::from_secs(5);

/// Outcome of [`StoreClient::compare_set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasOutcome {
    /// Whether the new value was written.
    pub swapped: bool,
    /// The value stored now (`None`: the key is absent).
    pub current: Option<Vec<u8>>,
}

/// A blocking connection to the rendezvous store.
#[derive(Debug)]
pub struct StoreClient {
    stream: TcpStream,
    buf: Vec<u8>,
    prefix: String,
    addr: SocketAddr,
    token: String,
    timeout: Duration,
}

impl StoreClient {
    /// Connect and authenticate, retrying refused connections until `timeout` has passed.
    /// `timeout` is also the per-request socket timeout afterwards.
    pub fn connect(addr: impl ToSocketAddrs, token: &str, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| Error::io("resolve store address", e))?
            .collect();
        let Some(&addr) = addrs.first() else {
            return Err(Error::Config {
                reason: "store address resolves to nothing".into(),
            });
        };
        let stream = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(10))) {
                Ok(s) => break s,
                Err(e) if Instant::now() + Duration::from_millis(50) < deadline => {
                    tracing::trace!(%addr, error = %e, "store not reachable yet, retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(Error::io(format!("connect to store at {addr}"), e)),
            }
        };
        let _ = stream.set_nodelay(true);
        let mut client = StoreClient {
            stream,
            buf: Vec::new(),
            prefix: String::new(),
            addr,
            token: token.to_string(),
            timeout,
        };
        match client.request(
            &Request::Auth {
                token: token.as_bytes().to_vec(),
            },
            timeout,
        )? {
            Response::Ok => Ok(client),
            other => Err(unexpected("auth", other)),
        }
    }

    /// Open a second, independent connection with the same token, prefix and timeout.
    pub fn reconnect(&self) -> Result<Self> {
        let c = StoreClient::connect(self.addr, &self.token, self.timeout)?;
        Ok(c.with_prefix(&self.prefix))
    }

    /// Prefix every key with `prefix` (e.g. `"run/<id>/gen/<n>/"`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// The key prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Our end of the connection: its IP is the interface that routes to the store's host,
    /// which is what peers on other nodes should connect to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.stream
            .local_addr()
            .map_err(|e| Error::io("store local_addr", e))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Set `key` to `value`.
    pub fn set(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let req = Request::Set {
            key: self.key(key),
            value: value.as_ref().to_vec(),
        };
        match self.request(&req, self.timeout)? {
            Response::Ok => Ok(()),
            other => Err(unexpected(key, other)),
        }
    }

    /// Read `key`; `None` if absent.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.request(&Request::Get { key: self.key(key) }, self.timeout)? {
            Response::Value(v) => Ok(Some(v)),
            Response::Missing => Ok(None),
            other => Err(unexpected(key, other)),
        }
    }

    /// Wait for `key` to exist, then read it.
    pub fn wait_get(&mut self, key: &str, timeout: Duration) -> Result<Vec<u8>> {
        self.wait(&[key], timeout)?;
        self.get(key)?.ok_or_else(|| Error::BadValue {
            key: key.to_string(),
            reason: "deleted between wait and get".into(),
        })
    }

    /// Are all `keys` present?
    pub fn check(&mut self, keys: &[&str]) -> Result<bool> {
        let keys = keys.iter().map(|k| self.key(k)).collect();
        match self.request(&Request::Check { keys }, self.timeout)? {
            Response::Bool(b) => Ok(b),
            other => Err(unexpected("check", other)),
        }
    }

    /// Block until all `keys` exist; [`Error::StoreTimeout`] after `timeout`.
    pub fn wait(&mut self, keys: &[&str], timeout: Duration) -> Result<()> {
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let req = Request::Wait {
            keys: full,
            timeout_ms: timeout.as_millis() as u64,
        };
        match self.request(&req, timeout + WAIT_SLACK)? {
            Response::Ok => Ok(()),
            Response::TimedOut => Err(Error::StoreTimeout {
                keys: keys.iter().map(|k| k.to_string()).collect(),
                after: timeout,
            }),
            other => Err(unexpected("wait", other)),
        }
    }

    /// Atomically add `delta` to the counter at `key` (absent counts as 0); returns the new
    /// value.
    pub fn add(&mut self, key: &str, delta: i64) -> Result<i64> {
        match self.request(
            &Request::Add {
                key: self.key(key),
                delta,
            },
            self.timeout,
        )? {
            Response::Int(v) => Ok(v),
            Response::Error(reason) => Err(Error::BadValue {
                key: key.to_string(),
                reason,
            }),
            other => Err(unexpected(key, other)),
        }
    }

    /// Set `key` to `desired` if it currently holds `expected` (`None`: if it is absent).
    pub fn compare_set(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        desired: impl AsRef<[u8]>,
    ) -> Result<CasOutcome> {
        let req = Request::CompareSet {
            key: self.key(key),
            expected: expected.map(<[u8]>::to_vec),
            desired: desired.as_ref().to_vec(),
        };
        match self.request(&req, self.timeout)? {
            Response::Swapped { swapped, current } => Ok(CasOutcome { swapped, current }),
            other => Err(unexpected(key, other)),
        }
    }

    /// Delete `key`; returns whether it existed.
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        match self.request(&Request::Delete { key: self.key(key) }, self.timeout)? {
            Response::Bool(b) => Ok(b),
            other => Err(unexpected(key, other)),
        }
    }

    fn request(&mut self, req: &Request, timeout: Duration) -> Result<Response> {
        let io = |e| Error::io(format!("store request to {}", self.addr), e);
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(io)?;
        self.stream
            .set_write_timeout(Some(self.timeout.max(Duration::from_millis(1))))
            .map_err(io)?;
        self.stream.write_all(&req.encode()).map_err(io)?;
        let mut chunk = [0u8; 8192];
        loop {
            if let Some((resp, used)) = Response::decode(&self.buf)? {
                self.buf.drain(..used);
                if let Response::Error(reason) = &resp
                    && reason.starts_with("unauthorized")
                {
                    return Err(Error::StoreRefused {
                        reason: reason.clone(),
                    });
                }
                return Ok(resp);
            }
            let n = self.stream.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "store closed the connection",
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn unexpected(what: &str, resp: Response) -> Error {
    match resp {
        Response::Error(reason) => Error::StoreRefused { reason },
        other => Error::StoreRefused {
            reason: format!("unexpected answer to {what}: {other:?}"),
        },
    }
}
