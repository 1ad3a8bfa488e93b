//! The accept loop: each TCP connection served by hyper's HTTP/1 connection with
//! a header read timeout, at most `--max-connections` at once ([`Slots`] decides
//! which connection a new one replaces), and a graceful drain on shutdown.
//!
//! Why not `axum::serve`: it sets no timer on hyper's connection, which disables
//! hyper's header read timeout, and it accepts without bound; a client that opens
//! connections and sends nothing held them (and their file descriptors) forever.
//! hyper's header timer starts whenever the connection waits for a request — on
//! accept and again after each response — so `--header-timeout-secs` is also the
//! keep-alive idle timeout. The body's deadline (`--body-timeout-secs`) is the
//! handler's (`http.rs`), as hyper reads a body only when asked.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower_service::Service;

use crate::connections::{Admit, ConnId, Slots};

/// Connections a newcomer evicted that may still be closing (their task closes the
/// socket when it next runs) before the loop stops accepting: bounds the descriptors
/// a flood can make the server hold to `max_connections` plus this.
pub const CLOSING_MARGIN: usize = 32;

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// Whole request headers must arrive within this (and an idle keep-alive
    /// connection is closed after it).
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// After shutdown, how long open connections may take to finish.
    pub drain: Duration,
}

/// The open connections and how to close each.
#[derive(Debug)]
struct Table {
    slots: Slots,
    evict: HashMap<ConnId, Arc<Notify>>,
}

type Shared = Arc<Mutex<Table>>;

fn lock(t: &Shared) -> std::sync::MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks a connection busy while a request handler runs.
struct Busy {
    table: Shared,
    id: ConnId,
}

impl Busy {
    fn enter(table: Shared, id: ConnId) -> Self {
        lock(&table).slots.set_busy(id, true, Instant::now());
        Self { table, id }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        lock(&self.table)
            .slots
            .set_busy(self.id, false, Instant::now());
    }
}

/// What a connection refused at the cap is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
content-length: 0\r\nconnection: close\r\n\r\n";

/// Whether an accept error means the process is out of file descriptors.
fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting,
/// calls `on_shutdown`, lets open connections finish their requests for at most
/// `settings.drain`, and closes what is still open.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_shutdown: impl FnOnce(),
) {
    let table: Shared = Arc::new(Mutex::new(Table {
        slots: Slots::new(settings.max_connections),
        evict: HashMap::new(),
    }));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut fd_warned = false;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            // At the bound, evicted connections close before anything new is accepted.
            a = listener.accept(), if tasks.len() < settings.max_connections + CLOSING_MARGIN => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if out_of_fds(&e) => {
                if !fd_warned {
                    eprintln!(
                        "vigil serve: warning: cannot accept: {e}; lower --max-connections or \
                         raise the file descriptor limit (ulimit -n, systemd LimitNOFILE)"
                    );
                    fd_warned = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            // A connection reset before it was accepted, and the like.
            Err(_) => continue,
        };
        fd_warned = false;
        let admit = {
            let mut t = lock(&table);
            let admit = t.slots.admit(Instant::now());
            if let Admit::Evict { victim, .. } = admit
                && let Some(n) = t.evict.remove(&victim)
            {
                n.notify_one();
            }
            admit
        };
        let id = match admit {
            Admit::Open(id) | Admit::Evict { id, .. } => id,
            Admit::Refuse => {
                let _ = stream.try_write(REFUSED);
                continue;
            }
        };
        let evicted = Arc::new(Notify::new());
        lock(&table).evict.insert(id, evicted.clone());
        tasks.spawn(connection(
            stream,
            router.clone(),
            settings.header_timeout,
            id,
            evicted,
            table.clone(),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    on_shutdown();
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(settings.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        eprintln!(
            "vigil serve: drain deadline ({:.1} s) passed with connections still open: \
             closing them",
            settings.drain.as_secs_f64()
        );
        tasks.shutdown().await;
    }
}

async fn connection(
    stream: TcpStream,
    router: Router,
    header_timeout: Duration,
    id: ConnId,
    evicted: Arc<Notify>,
    table: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let busy_table = table.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::enter(busy_table.clone(), id);
        let mut router = router.clone();
        async move {
            let response = router.call(req).await;
            drop(busy);
            response
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = evicted.notified() => {}
        _ = async { stop.wait_for(|s| *s).await.is_ok() } => {
            // Idle connections close now; one in a request finishes it first.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = evicted.notified() => {}
            }
        }
    }
    let mut t = lock(&table);
    t.slots.close(id);
    t.evict.remove(&id);
}
