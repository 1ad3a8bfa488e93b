//! `vigil bench serve`: throughput and latency of `vigil serve` over loopback
//! HTTP at concurrency 1 and 16, with and without dynamic batching, next to
//! `vigil predict`'s rows/s on the same model (the scoring loop without HTTP).
//!
//! The server runs in this process (the library's `Server` on its own runtime,
//! as `vigil serve` runs it); clients are OS threads sending one-row infer
//! requests (text and image, JSON form, one connection each) in a closed loop.
//! Figures only: nothing here asserts a speed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vigil_store::storage::Location;

use clap::Args;
use vigil_server::{Limits, ServeOptions, Server, resolve_model};

/// Arguments of `vigil bench serve`.
#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    /// Model repository (as `vigil serve --model-repository`).
    #[arg(long, value_name = "DIR|URL")]
    model_repository: Location,
    /// The model directory inside it (default: the only one).
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Rows to send (and to score with predict's loop): a dataset file.
    #[arg(long, default_value = "datasets/sample/val.jsonl", value_name = "FILE")]
    input: PathBuf,
    /// Requests per configuration (one row each).
    #[arg(long, default_value_t = 64)]
    requests: usize,
    /// Worker threads of the server (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// One request body per row of the input (text and base64 image).
fn bodies(input: &std::path::Path) -> anyhow::Result<Vec<String>> {
    use base64::Engine as _;
    let dir = input.parent().unwrap_or(std::path::Path::new("."));
    let text = std::fs::read_to_string(input)?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line)?;
        let t = row["text"].as_str().unwrap_or("").to_string();
        let img = match row["image"].as_str() {
            Some(p) => {
                base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(p))?)
            }
            None => String::new(),
        };
        let body = serde_json::json!({"inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [1], "data": [t]},
            {"name": "image", "datatype": "BYTES", "shape": [1], "data": [img]},
        ]});
        out.push(body.to_string());
    }
    anyhow::ensure!(!out.is_empty(), "{}: no rows", input.display());
    Ok(out)
}

fn post(addr: SocketAddr, path: &str, body: &str) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let status = std::str::from_utf8(&raw[..raw.len().min(12)])
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(status)
}

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: usize,
}

fn load(addr: SocketAddr, path: &str, bodies: &Arc<Vec<String>>, conc: usize, n: usize) -> Figures {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..conc)
        .map(|_| {
            let (next, bodies, path) = (next.clone(), bodies.clone(), path.to_string());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let t = Instant::now();
                    match post(addr, &path, &bodies[i % bodies.len()]) {
                        Ok(200) => lat.push(t.elapsed()),
                        _ => failed += 1,
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let mut lat: Vec<Duration> = Vec::new();
    let mut failed = 0;
    for h in handles {
        let (l, f) = h.join().unwrap_or_default();
        lat.extend(l);
        failed += f;
    }
    let wall = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(f64::NAN)
    };
    Figures {
        rps: lat.len() as f64 / wall,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        failed,
    }
}

/// Runs every configuration and prints one line each, then predict's rows/s.
pub fn run(a: ServeBenchArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    let (model_dir, name) = resolve_model(&a.model_repository, a.model.as_deref())?;
    let bodies = Arc::new(bodies(&a.input)?);
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let path = format!("/v2/models/{name}/infer");
    println!(
        "vigil bench serve: model '{name}' ({}), {threads} worker threads, {} one-row requests \
         (text + image) per line",
        model_dir, a.requests
    );
    println!(
        "{:<26} {:>11} {:>10} {:>10} {:>10} {:>7}",
        "batching", "concurrency", "req/s", "p50 ms", "p99 ms", "failed"
    );
    for (label, max_batch, delay_ms) in
        [("off (--max-batch 1)", 1, 0), ("on (32 rows, 5 ms)", 32, 5)]
    {
        let server = Server::start(ServeOptions {
            model_dir: model_dir.clone(),
            model_name: name.clone(),
            version: None,
            poll: Duration::from_secs(3600),
            max_batch,
            max_delay: Duration::from_millis(delay_ms),
            threads,
            limits: Limits::default(),
            token: None,
            drain: Duration::from_secs(5),
        })?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let serving = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)?;
                server
                    .serve(listener, async {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        });
        // Warm-up: the first batch pays one-time allocations.
        let _ = load(addr, &path, &bodies, 1, 4);
        for conc in [1, 16] {
            let f = load(addr, &path, &bodies, conc, a.requests);
            println!(
                "{label:<26} {conc:>11} {:>10.1} {:>10.1} {:>10.1} {:>7}",
                f.rps, f.p50_ms, f.p99_ms, f.failed
            );
        }
        let _ = stop_tx.send(());
        serving
            .join()
            .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
    }
    // `vigil predict`'s loop on the same model and rows (batch 32, no HTTP).
    let t = Instant::now();
    let scored = vigil_infer::cpu::score_file(&model_dir, &a.input, 32, 1)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "vigil predict (batch 32, same model, {} rows of {}): {:.1} rows/s",
        scored.ids.len(),
        a.input.display(),
        scored.ids.len() as f64 / secs
    );
    Ok(ExitCode::SUCCESS)
}
