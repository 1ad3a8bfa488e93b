//! The store server: one tokio task per connection around the pure [`StoreState`].
//!
//! Every connection must send `Auth` with the run's token first; the comparison is
//! constant-time, the first frame is limited to [`MAX_AUTH_FRAME`] bytes and must arrive
//! within [`AUTH_TIMEOUT`], and a refusal is logged with the peer's address. A connection
//! that sends garbage gets an `Error` response and is closed; it never affects the others.
//! `Wait` requests park on a `watch` channel whose version every mutation bumps.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::protocol::{Request, Response};
use super::state::{StoreState, constant_time_eq};
use crate::error::{Error, Result};

/// Largest first (authentication) frame accepted from an unauthenticated peer.
pub const MAX_AUTH_FRAME: usize = 4096;
/// How long an unauthenticated connection may stay silent.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

struct Shared {
    state: Mutex<StoreState>,
    version: watch::Sender<u64>,
    token: Vec<u8>,
}

/// Serve the store on `listener` until `shutdown` completes, then close every connection.
///
/// `token` is the run's secret (`VIGIL_STORE_TOKEN`); clients that do not present it are
/// refused. Returns an error only if accepting connections fails persistently.
pub async fn serve(
    listener: TcpListener,
    token: impl Into<Vec<u8>>,
    shutdown: impl Future,
) -> Result<()> {
    let shared = Arc::new(Shared {
        state: Mutex::new(StoreState::default()),
        version: watch::channel(0).0,
        token: token.into(),
    });
    let local = listener.local_addr().ok();
    tracing::debug!(?local, "store serving");
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tasks.spawn(connection(stream, peer, shared.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "store accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
    tracing::debug!(?local, "store stopped");
    Ok(())
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut authed = false;
    loop {
        if !authed && buf.len() >= 4 {
            let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > MAX_AUTH_FRAME {
                tracing::warn!(%peer, len, "store refused connection: oversized first frame");
                let _ = stream
                    .write_all(&Response::Error("unauthorized".into()).encode())
                    .await;
                return;
            }
        }
        match Request::decode(&buf) {
            Ok(Some((req, used))) => {
                buf.drain(..used);
                let resp = if authed {
                    handle(req, &shared).await
                } else if let Request::Auth { token } = req {
                    if constant_time_eq(&token, &shared.token) {
                        authed = true;
                        Response::Ok
                    } else {
                        tracing::warn!(%peer, "store refused connection: wrong token");
                        let _ = stream
                            .write_all(
                                &Response::Error("unauthorized: wrong token".into()).encode(),
                            )
                            .await;
                        return;
                    }
                } else {
                    tracing::warn!(%peer, "store refused connection: request before auth");
                    let msg = Response::Error("unauthorized: authenticate first".into());
                    let _ = stream.write_all(&msg.encode()).await;
                    return;
                };
                if stream.write_all(&resp.encode()).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                let read = stream.read_buf(&mut buf);
                let n = if authed {
                    read.await
                } else {
                    match tokio::time::timeout(AUTH_TIMEOUT, read).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::warn!(%peer, "store refused connection: no auth in time");
                            return;
                        }
                    }
                };
                match n {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, authed, "store closed connection: bad frame");
                let _ = stream
                    .write_all(&Response::Error(e.to_string()).encode())
                    .await;
                return;
            }
        }
    }
}

async fn handle(req: Request, shared: &Shared) -> Response {
    match req {
        Request::Auth { .. } => Response::Ok,
        Request::Wait { keys, timeout_ms } => {
            let mut rx = shared.version.subscribe();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
            loop {
                rx.borrow_and_update();
                if lock(shared).has_all(&keys) {
                    return Response::Ok;
                }
                match tokio::time::timeout_at(deadline, rx.changed()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) | Err(_) => return Response::TimedOut,
                }
            }
        }
        other => {
            let (resp, changed) = lock(shared).apply(other);
            if changed {
                shared.version.send_modify(|v| *v += 1);
            }
            resp
        }
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, StoreState> {
    // A panic while holding the lock cannot leave the map half-updated (every mutation is a
    // single HashMap call), so a poisoned lock is still consistent.
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A store server running on its own thread with its own tokio runtime, for synchronous
/// hosts (the benchmark, tests, a synchronous launcher). Dropping it stops the server.
pub struct BackgroundStore {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundStore {
    /// Bind `addr` (use port 0 for any free port) and serve with `token`.
    pub fn start(addr: SocketAddr, token: &str) -> Result<Self> {
        let std_listener =
            std::net::TcpListener::bind(addr).map_err(|e| Error::io(format!("bind {addr}"), e))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| Error::io("store local_addr", e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("store set_nonblocking", e))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("build store runtime", e))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let token = token.as_bytes().to_vec();
        let thread = std::thread::Builder::new()
            .name("vigil-store".into())
            .spawn(move || {
                rt.block_on(async move {
                    match TcpListener::from_std(std_listener) {
                        Ok(listener) => {
                            if let Err(e) = serve(listener, token, stopped).await {
                                tracing::error!(error = %e, "store server failed");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "store listener setup failed"),
                    }
                })
            })
            .map_err(|e| Error::io("spawn store thread", e))?;
        Ok(BackgroundStore {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BackgroundStore {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
