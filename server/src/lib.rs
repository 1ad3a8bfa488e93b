//! `vigil serve`: an online moderation server for Vigil's model repositories,
//! speaking the KServe v2 / Open Inference Protocol (with Triton's binary tensor
//! data extension, which `tritonclient` uses by default).
//!
//! It does for a Vigil model repository what TF-Serving and Triton do for theirs:
//! poll it, load the newest complete version in the background, swap it in
//! atomically, so that "publish" means "in production"; requests in flight
//! finish on the version they started on.
//!
//! # Layout
//! - `protocol.rs`: KServe request parsing and validation, response encoding
//!   (pure; every bad input names the input and row).
//! - `moderate.rs`: the `/v1/moderate` JSON body into the same rows (pure).
//! - `batcher.rs`: the dynamic batcher's decisions (admit, flush, take; pure).
//! - `pickup.rs`: the version-pickup decision (keep / load N / pinned; pure).
//! - `limits.rs`: [`Limits`] — body, rows, text, pixels, queue.
//! - `engine.rs`: loaded versions, the bounded queue and its worker threads, the poller.
//! - `http.rs`: axum routes, auth, metrics middleware.
//! - `metrics.rs`: Prometheus text exposition, by hand.
//! - `error.rs`: [`ServerError`].
//!
//! Why OS threads for inference and tokio only for HTTP: a forward pass is
//! seconds of CPU at worst, and on the runtime's threads it would stall every
//! connection; the queue between them is where batching and back-pressure (503
//! at `--queue-bound`) happen.

mod batcher;
mod engine;
mod error;
mod http;
mod limits;
mod metrics;
mod moderate;
mod pickup;
mod protocol;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use batcher::{Decision, Overloaded};
pub use engine::{BatchSettings, Loaded, error_chain};
pub use error::ServerError;
pub use limits::Limits;
pub use pickup::Pickup;
pub use protocol::{BadInput, join_bytes};

use engine::{Current, Engine, Stop, start_poller};
use metrics::Metrics;

/// Everything `vigil serve` is told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model repository of the model (`<export.dir>/<model_name>`).
    pub model_dir: PathBuf,
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
    pub token: Option<String>,
    /// After SIGTERM, how long connections still open may take to finish before
    /// they are closed (a client that never finishes its request cannot hold the
    /// process past it).
    pub drain: Duration,
}

/// Which model directory `--model-repository DIR [--model NAME]` means, and its
/// name: `DIR/NAME`; without `--model`, DIR itself when it holds versions
/// (integer directories), else its only model subdirectory.
pub fn resolve_model(
    repository: &Path,
    model: Option<&str>,
) -> Result<(PathBuf, String), ServerError> {
    let err = |message: String| ServerError::Repository {
        dir: repository.to_path_buf(),
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
        return Ok((dir, name.to_string()));
    }
    let entries = std::fs::read_dir(repository)
        .map_err(|e| err(format!("cannot read the model repository: {e}")))?;
    let mut subdirs = Vec::new();
    let mut versions = false;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || name.starts_with('.') {
            continue;
        }
        if name.parse::<u64>().is_ok() {
            versions = true;
        } else {
            subdirs.push(name);
        }
    }
    let own_name = || {
        std::path::absolute(repository)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into())
    };
    if versions || repository.join("MANIFEST.json").is_file() {
        return Ok((repository.to_path_buf(), own_name()));
    }
    subdirs.sort();
    match subdirs.as_slice() {
        [one] => Ok((repository.join(one), one.clone())),
        [] => Err(err(
            "holds no model (no version directories, no model directory)".into(),
        )),
        many => Err(err(format!(
            "holds several models ({}): choose one with --model NAME",
            many.join(", ")
        ))),
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
        if !problems.is_empty() {
            return Err(ServerError::BadOptions { problems });
        }
        let loaded = Loaded::load(&opts.model_dir, opts.version, opts.threads)?;
        let metrics = Arc::new(Metrics::default());
        metrics.set_version(loaded.version, false);
        let current = Arc::new(Current::new(loaded));
        let engine = Engine::new(
            BatchSettings {
                max_batch: opts.max_batch,
                max_delay: opts.max_delay,
                queue_bound: opts.limits.queue_bound,
                max_image_pixels: opts.limits.max_image_pixels,
            },
            metrics.clone(),
        );
        let workers = engine.start_workers(opts.threads)?;
        let poller = match opts.version {
            Some(_) => None,
            None => {
                let stop = Arc::new(Stop::default());
                let handle = start_poller(
                    opts.model_dir.clone(),
                    opts.poll,
                    opts.threads,
                    current.clone(),
                    metrics.clone(),
                    stop.clone(),
                )?;
                Some((stop, handle))
            }
        };
        let app = Arc::new(http::App {
            model: opts.model_name,
            pinned: opts.version,
            current,
            engine,
            limits: opts.limits,
            metrics,
            token: opts.token,
            draining: Default::default(),
        });
        Ok(Self {
            app,
            workers,
            poller,
            drain: opts.drain,
        })
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
        let draining = app.clone();
        // Notify keeps the permit if the deadline's waiter is not polling yet.
        let begun = Arc::new(tokio::sync::Notify::new());
        let begin = begun.clone();
        let graceful =
            axum::serve(listener, http::router(app.clone())).with_graceful_shutdown(async move {
                shutdown.await;
                draining.draining.store(true, Ordering::Relaxed);
                eprintln!("vigil serve: stopping: draining requests in flight");
                begin.notify_one();
            });
        let drain = self.drain;
        let served = tokio::select! {
            served = std::future::IntoFuture::into_future(graceful) => served,
            () = async {
                begun.notified().await;
                tokio::time::sleep(drain).await;
            } => {
                eprintln!(
                    "vigil serve: drain deadline ({:.1} s) passed with connections still \
                     open: closing them",
                    drain.as_secs_f64()
                );
                Ok(())
            }
        };
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
        served?;
        Ok(())
    }
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
    fn the_model_directory_is_found_with_or_without_a_name() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("tiny/1")).unwrap();
        let (dir, name) = resolve_model(root, None).unwrap();
        assert_eq!((dir, name.as_str()), (root.join("tiny"), "tiny"));
        let (dir, name) = resolve_model(&root.join("tiny"), None).unwrap();
        assert_eq!((dir, name.as_str()), (root.join("tiny"), "tiny"));
        assert!(resolve_model(root, Some("absent")).is_err());
        std::fs::create_dir_all(root.join("other")).unwrap();
        let err = resolve_model(root, None).unwrap_err();
        assert!(err.to_string().contains("other, tiny"), "{err}");
        assert!(err.is_user_error());
        assert_eq!(resolve_model(root, Some("tiny")).unwrap().1, "tiny");
    }
}
