//! `vigil serve`: an online moderation server for Vigil's model repositories,
//! speaking the KServe v2 / Open Inference Protocol (with Triton's binary tensor
//! data extension, which `tritonclient` uses by default).
//!
//! It does for a Vigil model repository what TF-Serving and Triton do for theirs:
//! poll it, load the newest complete version in the background, swap it in
//! atomically, so that "publish" means "in production"; requests in flight
//! finish on the version they started on.
//!
//! With `--recall-index` ([`RecallServe`]) it also serves nearest-known-bad
//! search as a second KServe model, `<model>-recall`: rows are embedded by the
//! served model version (its fused vector, the head's input) and searched in the
//! index version built from that same model version; the two are loaded and
//! swapped as one pair (`pairing.rs` has the rule).
//!
//! # Layout
//! - `protocol/`: KServe request parsing and validation, response encoding
//!   (pure; every bad input names the input and row).
//! - `moderate.rs`: the `/v1/moderate` JSON body into the same rows (pure).
//! - `batcher.rs`: the dynamic batcher's decisions (admit, flush, take; pure).
//! - `pickup.rs`: the version-pickup decision (keep / load N / pinned; pure).
//! - `pairing.rs`: which recall index serves beside which model version (pure).
//! - `limits.rs`: [`Limits`] — connections, timeouts, body, in-flight bytes,
//!   rows, text, pixels, queue.
//! - `auth.rs`: [`Token`] — the token file's validation, the constant-time check.
//! - `budget.rs`: the server-wide budget of body bytes held (pure).
//! - `connections.rs`: which connection a new one replaces at the cap (pure).
//! - `listen.rs`: the accept loop — hyper HTTP/1 connections with a header
//!   timeout, the connection cap, the graceful drain.
//! - `verified.rs`: which versions the poller verified, so each is hashed once (pure).
//! - `engine/`: loaded versions, the bounded queue and its worker threads, the poller.
//! - `http.rs`: axum routes, auth, metrics middleware.
//! - `metrics/`: the Prometheus metrics, through the `prometheus-client` crate.
//! - `error.rs`: [`ServerError`].
//!
//! Why OS threads for inference and tokio only for HTTP: a forward pass is
//! seconds of CPU at worst, and on the runtime's threads it would stall every
//! connection; the queue between them is where batching and back-pressure (503
//! at `--queue-bound`) happen.

mod auth;
mod batcher;
mod budget;
mod connections;
mod engine;
mod error;
mod http;
mod limits;
mod listen;
mod metrics;
mod moderate;
mod pairing;
mod pickup;
mod protocol;
mod verified;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vigil_recall::IndexRepo;
use vigil_store::storage::Location;

pub use auth::{Token, TokenProblem};
pub use batcher::{Decision, Overloaded};
pub use engine::{BatchSettings, Loaded, RecallIndex, error_chain, model_identity};
pub use error::ServerError;
pub use limits::Limits;
pub use pickup::Pickup;
pub use protocol::{BadInput, join_bytes};

use engine::{Current, Engine, Poller, RecallSource, Stop, report_skipped, start_poller};
use metrics::Metrics;

/// Everything `vigil serve` is told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model repository of the model (`<export.dir>/<model_name>`).
    pub model_dir: Location,
    /// The model's name in the routes.
    pub model_name: String,
    /// `--version`: serve exactly this one, never swap.
    pub version: Option<u64>,
    /// How often the repository is polled.
    pub poll: Duration,
    /// Rows per batch.
    pub max_batch: usize,
    /// How long a request waits for others to batch with.
    pub max_delay: Duration,
    /// Worker threads (one model replica each).
    pub threads: usize,
    /// Request and queue bounds.
    pub limits: Limits,
    /// Required bearer token.
    pub token: Option<Token>,
    /// After SIGTERM, how long connections still open may take to finish before
    /// they are closed (a client that never finishes its request cannot hold the
    /// process past it).
    pub drain: Duration,
}

/// `--recall-index` and the flags that go with it: serve nearest-known-bad search
/// as the KServe model `<model>-recall`.
#[derive(Debug, Clone)]
pub struct RecallServe {
    /// The index repository (`vigil index build --out`), a directory or a bucket URL.
    pub index: Location,
    /// `--recall-max-k`: the most neighbours one row may ask for.
    pub max_k: usize,
    /// `--recall-ef-search`: the search width (None: each index version's own).
    pub ef_search: Option<usize>,
}

impl RecallServe {
    /// The default of `--recall-max-k`.
    pub const DEFAULT_MAX_K: usize = 100;

    /// Every unusable value, by flag.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_k == 0 {
            out.push("--recall-max-k must be at least 1".into());
        }
        if let Some(ef) = self.ef_search
            && !(1..=4096).contains(&ef)
        {
            out.push(format!("--recall-ef-search must be in 1..=4096 (got {ef})"));
        }
        out
    }

    /// The recall model's name beside `model`.
    pub fn model_name(model: &str) -> String {
        format!("{model}-recall")
    }
}

/// Which model directory `--model-repository DIR [--model NAME]` means, and its
/// name: `DIR/NAME`; without `--model`, DIR itself when it holds versions
/// (integer directories), else its only model subdirectory. DIR may be a bucket
/// URL (`s3://bucket/models`): the same rule over its prefixes.
pub fn resolve_model(
    repository: &Location,
    model: Option<&str>,
) -> Result<(Location, String), ServerError> {
    let repository = match repository {
        Location::Remote(url) => return resolve_remote(url, model),
        Location::Local(dir) => dir,
    };
    let err = |message: String| ServerError::Repository {
        dir: repository.display().to_string(),
        message,
    };
    if let Some(name) = model {
        let dir = repository.join(name);
        if !dir.is_dir() {
            return Err(err(format!(
                "has no model '{name}' (no directory {})",
                dir.display()
            )));
        }
        return Ok((Location::Local(dir), name.to_string()));
    }
    let entries = std::fs::read_dir(repository)
        .map_err(|e| err(format!("cannot read the model repository: {e}")))?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let own_name = || {
        std::path::absolute(repository)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into())
    };
    match choose_model(names, repository.join("MANIFEST.json").is_file()).map_err(err)? {
        None => Ok((Location::Local(repository.to_path_buf()), own_name())),
        Some(one) => Ok((Location::Local(repository.join(&one)), one)),
    }
}

/// [`resolve_model`] on a bucket prefix: one LIST (and a LIST of `NAME/` with
/// `--model`). The model directory is returned as its URL, which loading and the
/// poller read as a bucket repository.
fn resolve_remote(
    url: &vigil_store::storage::RemoteUrl,
    model: Option<&str>,
) -> Result<(Location, String), ServerError> {
    use vigil_store::storage::Bucket;
    let err = |message: String| ServerError::Repository {
        dir: url.to_string(),
        message,
    };
    if let Some(name) = model {
        let dir = url.join(name).map_err(|e| err(e.to_string()))?;
        let (dirs, objects) = Bucket::open(&dir)?.list_level("")?;
        if dirs.is_empty() && objects.is_empty() {
            return Err(err(format!("has no model '{name}' (nothing under {dir})")));
        }
        return Ok((Location::Remote(dir), name.to_string()));
    }
    let (dirs, objects) = Bucket::open(url)?.list_level("")?;
    let manifest = objects
        .iter()
        .any(|o| o.location.filename() == Some(vigil_store::checkpoint::MANIFEST_FILE));
    match choose_model(dirs, manifest).map_err(err)? {
        None => {
            let own = url
                .prefix
                .rsplit('/')
                .find(|s| !s.is_empty())
                .unwrap_or("model")
                .to_string();
            Ok((Location::Remote(url.clone()), own))
        }
        Some(one) => {
            let dir = url.join(&one).map_err(|e| err(e.to_string()))?;
            Ok((Location::Remote(dir), one))
        }
    }
}

/// The choice of [`resolve_model`] from a repository's entry names (directories
/// or prefixes) and whether it holds a `MANIFEST.json` itself: `None` for the
/// repository itself (it holds versions, or is one), `Some(name)` for its only
/// model directory, else what is wrong. Dot-prefixed names (staging, claims)
/// never count.
pub fn choose_model(names: Vec<String>, manifest: bool) -> Result<Option<String>, String> {
    let names: Vec<String> = names.into_iter().filter(|n| !n.starts_with('.')).collect();
    if manifest || names.iter().any(|n| n.parse::<u64>().is_ok()) {
        return Ok(None);
    }
    let mut subdirs = names;
    subdirs.sort();
    match subdirs.as_slice() {
        [one] => Ok(Some(one.clone())),
        [] => Err("holds no model (no version directories, no model directory)".into()),
        many => Err(format!(
            "holds several models ({}): choose one with --model NAME",
            many.join(", ")
        )),
    }
}

/// A started server: version loaded, workers and poller running, not yet listening.
#[derive(Debug)]
pub struct Server {
    app: Arc<http::App>,
    workers: Vec<std::thread::JoinHandle<()>>,
    poller: Option<(Arc<Stop>, std::thread::JoinHandle<()>)>,
    drain: Duration,
}

impl Server {
    /// Validates the options, loads the version to serve and starts the workers
    /// and (unless pinned) the poller.
    pub fn start(opts: ServeOptions) -> Result<Self, ServerError> {
        Self::start_with_recall(opts, None)
    }

    /// [`Server::start`], also serving `recall` (when given) as the model
    /// `<model>-recall`: the index repository must exist; the index version for
    /// the loaded model version is loaded now when there is one (else the recall
    /// model answers 503 until one is published), and the poller runs even with a
    /// pinned version, to follow the index.
    pub fn start_with_recall(
        opts: ServeOptions,
        recall: Option<RecallServe>,
    ) -> Result<Self, ServerError> {
        let mut problems = opts.limits.problems();
        if opts.max_batch == 0 {
            problems.push("--max-batch must be at least 1".into());
        }
        if opts.threads == 0 {
            problems.push("--threads must be at least 1".into());
        }
        if opts.poll.is_zero() {
            problems.push("--poll-secs must be more than 0".into());
        }
        problems.extend(recall.iter().flat_map(RecallServe::problems));
        if !problems.is_empty() {
            return Err(ServerError::BadOptions { problems });
        }
        let source = match &recall {
            None => None,
            Some(r) => Some(RecallSource {
                repo: IndexRepo::open(&r.index).map_err(|source| ServerError::Recall {
                    index: r.index.to_string(),
                    source,
                })?,
                ef_search: r.ef_search,
                threads: opts.threads,
            }),
        };
        let mut loaded = Loaded::load(&opts.model_dir, opts.version, opts.threads)?;
        let mut reported = Vec::new();
        report_skipped(&loaded.skipped, &mut reported);
        let recall_name = recall
            .as_ref()
            .map(|_| RecallServe::model_name(&opts.model_name));
        let metrics = Arc::new(Metrics::with_recall(
            &opts.model_name,
            recall_name.as_deref(),
        ));
        metrics.set_version(loaded.version, false);
        let mut failed_indexes = Vec::new();
        let index = match &source {
            None => None,
            Some(source) => {
                loaded = loaded.identified(&opts.model_dir).map_err(|message| {
                    ServerError::Repository {
                        dir: opts.model_dir.to_string(),
                        message,
                    }
                })?;
                first_index(source, &loaded, &metrics, &mut failed_indexes)
            }
        };
        let current = Arc::new(Current::new(loaded, index));
        let engine = Engine::new(
            BatchSettings {
                max_batch: opts.max_batch,
                max_delay: opts.max_delay,
                queue_bound: opts.limits.queue_bound,
                max_image_pixels: opts.limits.max_image_pixels,
                max_image_alloc: opts.limits.max_image_alloc(),
            },
            metrics.clone(),
        );
        let workers = engine.start_workers(opts.threads)?;
        let poller = match (opts.version, &source) {
            (Some(_), None) => None,
            _ => {
                let stop = Arc::new(Stop::default());
                let handle = start_poller(
                    Poller {
                        repo: opts.model_dir.clone(),
                        every: opts.poll,
                        replicas: opts.threads,
                        pinned: opts.version,
                        recall: source.clone(),
                        current: current.clone(),
                        metrics: metrics.clone(),
                        stop: stop.clone(),
                    },
                    reported,
                    failed_indexes,
                )?;
                Some((stop, handle))
            }
        };
        let app = Arc::new(http::App {
            model: opts.model_name,
            pinned: opts.version,
            current,
            engine,
            budget: budget::Budget::new(opts.limits.max_inflight_bytes),
            limits: opts.limits,
            metrics,
            token: opts.token,
            draining: Default::default(),
            recall: recall
                .zip(recall_name)
                .map(|(r, name)| http::RecallSettings {
                    name,
                    max_k: r.max_k,
                    index: r.index.to_string(),
                }),
        });
        Ok(Self {
            app,
            workers,
            poller,
            drain: opts.drain,
        })
    }

    /// The recall index version served now and where it was read from (None:
    /// recall not served, or no index for the served version yet).
    pub fn recall_serving(&self) -> Option<(u64, String)> {
        let s = self.app.current.serving();
        s.index.map(|i| (i.version, i.location.clone()))
    }

    /// The version served now and its directory.
    pub fn serving(&self) -> (u64, PathBuf) {
        let l = self.app.current.get();
        (l.version, l.dir.clone())
    }

    /// Serves HTTP on `listener` until `shutdown` resolves; then stops accepting,
    /// lets every request in flight finish (the queue drains) for at most the
    /// drain deadline, closes what is still open, and stops the workers and the
    /// poller.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let app = self.app.clone();
        let settings = listen::ConnSettings {
            header_timeout: app.limits.header_timeout,
            max_connections: app.limits.max_connections,
            drain: self.drain,
        };
        let draining = app.clone();
        listen::serve(
            listener,
            http::router(app.clone()),
            settings,
            shutdown,
            move || {
                draining.draining.store(true, Ordering::Relaxed);
                eprintln!("vigil serve: stopping: draining requests in flight");
            },
        )
        .await;
        app.engine.close();
        let (workers, poller) = (self.workers, self.poller);
        tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
            if let Some((stop, handle)) = poller {
                stop.stop();
                let _ = handle.join();
            }
        })
        .await
        .map_err(std::io::Error::other)?;
        Ok(())
    }
}

/// The index version for the model version loaded at start: loaded now, or
/// None (logged) when there is none yet or it fails to load (remembered in
/// `failed`, so the poller does not try it again).
fn first_index(
    source: &RecallSource,
    loaded: &Loaded,
    metrics: &Metrics,
    failed: &mut Vec<u64>,
) -> Option<RecallIndex> {
    let id = loaded.identity.as_deref().unwrap_or_default();
    let location = source.repo.location();
    match source.repo.newest_for_model(id) {
        Ok(Some(v)) => match source.load(v, loaded) {
            Ok(index) => {
                metrics.set_recall_version(v, false);
                Some(index)
            }
            Err(e) => {
                failed.push(v);
                metrics.recall_load_failed();
                eprintln!(
                    "vigil serve: error: recall index version {v} failed to load; the recall \
                     model answers 503 until another is published: {e}"
                );
                None
            }
        },
        Ok(None) => {
            eprintln!(
                "vigil serve: no recall index in {location} names version {} yet; the recall \
                 model answers 503 until one is published",
                loaded.version
            );
            None
        }
        Err(e) => {
            eprintln!(
                "vigil serve: warning: {location}: {}; the recall model answers 503 until the \
                 index can be read",
                error_chain(&e)
            );
            None
        }
    }
}

/// The accept queue's length asked of the kernel (Linux caps it at
/// `net.core.somaxconn`, 4096 by default): std's 128 fills during a connection
/// flood, and a real client's SYN is then dropped and retried a second later.
const BACKLOG: libc::c_int = 4096;

/// Binds `addr` (`host:port`) for [`Server::serve`], with a long accept queue.
pub fn bind(addr: &str) -> Result<std::net::TcpListener, ServerError> {
    let bind_err = |source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: listen(2) on a socket this function owns; calling it again on a
        // listening socket only changes the queue's length.
        if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
            return Err(bind_err(std::io::Error::last_os_error()));
        }
    }
    Ok(listener)
}

/// Whether serving on `addr` with (or without) a token is allowed: a
/// non-loopback address without a token is refused unless `insecure`, and then
/// the returned warning is for the log.
pub fn check_exposure(
    addr: std::net::SocketAddr,
    has_token: bool,
    insecure: bool,
) -> Result<Option<String>, ServerError> {
    if has_token || addr.ip().is_loopback() {
        return Ok(None);
    }
    if !insecure {
        return Err(ServerError::Exposed {
            addr: addr.to_string(),
        });
    }
    Ok(Some(format!(
        "vigil serve: warning: listening on {addr}, reachable from other hosts, without \
         --auth-token-file (--insecure): anyone who can connect can use the model"
    )))
}

/// Open file descriptors the process may hold beyond its connections (evicted ones
/// still closing, at most [`listen::CLOSING_MARGIN`]; the listener, model and
/// repository files, the runtime's own).
const FD_SPARE: u64 = 64 + listen::CLOSING_MARGIN as u64;

/// A warning when the soft file descriptor limit is below `--max-connections`
/// plus what the rest of the process needs: connections past it fail to be
/// accepted, and the poller cannot open the repository.
pub fn fd_limit_warning(max_connections: usize) -> Option<String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let need = max_connections as u64 + FD_SPARE;
    (lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need).then(|| {
        format!(
            "vigil serve: warning: the file descriptor limit ({}) is below --max-connections \
             {max_connections} + {FD_SPARE}: raise it (ulimit -n {need}; systemd LimitNOFILE) \
             or lower --max-connections",
            lim.rlim_cur
        )
    })
}

/// Resolves on SIGTERM or SIGINT (what Kubernetes and a terminal send).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_choice_reads_a_listing_the_same_for_directories_and_prefixes() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_model(names(&["1", "2", ".claims"]), false), Ok(None));
        assert_eq!(choose_model(names(&[]), true), Ok(None), "one version");
        assert_eq!(
            choose_model(names(&["tiny", ".tmp-x"]), false),
            Ok(Some("tiny".into()))
        );
        let err = choose_model(names(&["b", "a"]), false).unwrap_err();
        assert!(err.contains("a, b"), "{err}");
        assert!(choose_model(names(&[".claims"]), false).is_err());
        assert!("ftp://host/models".parse::<Location>().is_err());
    }

    #[test]
    fn a_non_loopback_address_without_a_token_needs_insecure() {
        let public: std::net::SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let local6: std::net::SocketAddr = "[::1]:8000".parse().unwrap();
        assert_eq!(check_exposure(local, false, false).unwrap(), None);
        assert_eq!(check_exposure(local6, false, false).unwrap(), None);
        assert_eq!(check_exposure(public, true, false).unwrap(), None);
        let err = check_exposure(public, false, false).unwrap_err();
        assert!(err.to_string().contains("--insecure"), "{err}");
        assert!(err.is_user_error(), "{err}");
    }

    #[test]
    fn the_model_directory_is_found_with_or_without_a_name() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("tiny/1")).unwrap();
        let tiny = Location::Local(root.join("tiny"));
        let root = &Location::Local(root.to_path_buf());
        let (dir, name) = resolve_model(root, None).unwrap();
        assert_eq!((&dir, name.as_str()), (&tiny, "tiny"));
        let (dir, name) = resolve_model(&tiny, None).unwrap();
        assert_eq!((&dir, name.as_str()), (&tiny, "tiny"));
        assert!(resolve_model(root, Some("absent")).is_err());
        std::fs::create_dir_all(tmp.path().join("other")).unwrap();
        let err = resolve_model(root, None).unwrap_err();
        assert!(err.to_string().contains("other, tiny"), "{err}");
        assert!(err.is_user_error());
        assert_eq!(resolve_model(root, Some("tiny")).unwrap().1, "tiny");
    }
}
