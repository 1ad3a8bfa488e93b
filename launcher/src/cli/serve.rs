//! `vigil serve`: the KServe v2 / Open Inference Protocol server over a model
//! repository, picking up each new complete version. The server lives in the
//! `vigil-server` crate; this file is flags, the listener and the runtime.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vigil_store::storage::Location;

use clap::Args;
use vigil_server::{
    Limits, RecallServe, ServeOptions, Server, ServerError, Token, check_exposure,
    fd_limit_warning, resolve_model, shutdown_signal,
};

/// Arguments of `vigil serve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Endpoints (KServe v2 / Open Inference Protocol, with Triton's binary \
    tensor data extension): GET /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME[/versions/V], \
    /v2/models/NAME[/versions/V]/ready; POST /v2/models/NAME[/versions/V]/infer (inputs text and \
    image: BYTES [n], an empty element means that modality is missing; outputs scores FP32 [n, labels] \
    and decisions BOOL [n, labels]); POST /v1/moderate {\"items\": [{\"id\", \"text\"?, \
    \"image_base64\"?}]}; GET /metrics (Prometheus). With --recall-index, the model NAME-recall \
    on the same /v2/models routes: the same inputs plus parameters k (default 10, at most \
    --recall-max-k) and label; outputs ids BYTES [n, k], similarity FP32 [n, k] and score FP32 \
    [n, k] (the nearest indexed items, searched in the index built from the served model version; \
    503 until one exists). Exit codes: 0 stopped by SIGTERM/SIGINT after \
    draining; 2 bad flag, no usable version, unreadable or invalid token file, a non-loopback \
    --listen without a token or --insecure, address in use; 1 other failures. Each open connection \
    is a file descriptor: keep the limit (ulimit -n, systemd LimitNOFILE) above --max-connections \
    plus 64."
)]
pub struct ServeArgs {
    /// Model repository: `<export.dir>` (holding model directories) or one model's
    /// directory `<export.dir>/<model_name>` (holding integer versions); a directory
    /// or a bucket URL (`s3://…`, `gs://…`, `az://…`: polled by listing, each new
    /// version downloaded and verified once).
    #[arg(long, value_name = "DIR|URL")]
    model_repository: Location,
    /// The model directory inside --model-repository (default: the only one).
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Address to listen on (loopback by default; port 0 picks a free one). A
    /// non-loopback address needs --auth-token-file or --insecure.
    #[arg(long, default_value = "127.0.0.1:8000", value_name = "ADDR")]
    listen: String,
    /// Serve a non-loopback --listen address without --auth-token-file (logged as
    /// a warning): anyone who can connect can use the model.
    #[arg(long)]
    insecure: bool,
    /// Serve exactly this version and never swap (default: the newest complete one).
    #[arg(long, value_name = "V")]
    version: Option<u64>,
    /// Seconds between polls of the repository for a newer complete version (fractions allowed).
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    poll_secs: f64,
    /// After SIGTERM, how long requests in flight may take before the connections
    /// still open are closed (seconds; below Kubernetes' default 30 s grace period).
    #[arg(long, default_value_t = 25.0, value_name = "S")]
    drain_secs: f64,
    /// Most rows in one batch (dynamic batching; 1: every request runs alone).
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_batch: usize,
    /// Longest a request waits for others to batch with, milliseconds.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    max_delay_ms: u64,
    /// Inference worker threads, one model replica each (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Most requests waiting for a worker; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = Limits::default().queue_bound, value_name = "N")]
    queue_bound: usize,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = Limits::default().max_body_bytes, value_name = "BYTES")]
    max_body_bytes: usize,
    /// Most rows in one request.
    #[arg(long, default_value_t = Limits::default().max_rows, value_name = "N")]
    max_rows: usize,
    /// Longest text element in bytes.
    #[arg(long, default_value_t = Limits::default().max_text_bytes, value_name = "BYTES")]
    max_text_bytes: usize,
    /// Most pixels (width × height) of one image, read from its header before
    /// decoding; the decoder may allocate 4 bytes per pixel of this bound.
    #[arg(long, default_value_t = Limits::default().max_image_pixels, value_name = "N")]
    max_image_pixels: u64,
    /// Bytes of request bodies held at once by all requests together; a body that
    /// does not fit (by its Content-Length, before it is read) is answered 503 with
    /// Retry-After. At least --max-body-bytes.
    #[arg(long, default_value_t = Limits::default().max_inflight_bytes, value_name = "BYTES")]
    max_inflight_bytes: usize,
    /// Seconds a client has to send its whole request headers; also how long an
    /// idle keep-alive connection stays open.
    #[arg(long, default_value_t = Limits::default().header_timeout.as_secs_f64(), value_name = "S")]
    header_timeout_secs: f64,
    /// Seconds a client has to send its whole body once its headers arrived (408
    /// beyond).
    #[arg(long, default_value_t = Limits::default().body_timeout.as_secs_f64(), value_name = "S")]
    body_timeout_secs: f64,
    /// Most connections open at once; past it a new connection replaces the
    /// longest-idle one (waiting for headers or between requests), or is answered
    /// 503 and closed when every connection is in a request.
    #[arg(long, default_value_t = Limits::default().max_connections, value_name = "N")]
    max_connections: usize,
    /// File holding a token every request but the health probes must send as
    /// `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Also serve nearest-known-bad search as the model NAME-recall, from this
    /// index repository (`vigil index build --model ... --out DIR|URL`, by
    /// convention `<export.dir>/<model>-recall`): the index version built from the
    /// served model version, loaded and swapped with it as one pair; a new model
    /// version without an index yet waits until one is published.
    #[arg(long, value_name = "DIR|URL")]
    recall_index: Option<Location>,
    /// Most neighbours one row of a recall request may ask for (parameter k; more
    /// is a 400 naming this limit).
    #[arg(long, default_value_t = RecallServe::DEFAULT_MAX_K, value_name = "N", requires = "recall_index")]
    recall_max_k: usize,
    /// Candidate list of the recall search (HNSW efSearch, 1..=4096; default:
    /// each index version's own).
    #[arg(long, value_name = "N", requires = "recall_index")]
    recall_ef_search: Option<usize>,
}

/// Loads the model, listens, serves until SIGTERM/SIGINT, drains, exits 0.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    match serve(args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_user_error() => {
            eprintln!(
                "vigil: {}",
                super::errors::render_chain(&anyhow::Error::new(e))
            );
            Ok(ExitCode::from(vigil_launch::exit::USAGE))
        }
        Err(e) => Err(e.into()),
    }
}

fn serve(args: ServeArgs) -> Result<(), ServerError> {
    if !args.poll_secs.is_finite() || args.poll_secs <= 0.0 {
        return Err(ServerError::BadOptions {
            problems: vec![format!(
                "--poll-secs {}: must be more than 0",
                args.poll_secs
            )],
        });
    }
    if !args.drain_secs.is_finite() || args.drain_secs < 0.0 {
        return Err(ServerError::BadOptions {
            problems: vec![format!(
                "--drain-secs {}: must be 0 or more",
                args.drain_secs
            )],
        });
    }
    let mut problems = Vec::new();
    for (flag, v) in [
        ("--header-timeout-secs", args.header_timeout_secs),
        ("--body-timeout-secs", args.body_timeout_secs),
    ] {
        if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
            problems.push(format!("{flag} {v}: must be more than 0 and at most 86400"));
        }
    }
    if !problems.is_empty() {
        return Err(ServerError::BadOptions { problems });
    }
    let token = args
        .auth_token_file
        .as_ref()
        .map(|path| {
            let bad = |message: String| ServerError::TokenFile {
                path: path.clone(),
                message,
            };
            let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            Token::parse(&bytes).map_err(|e| bad(e.to_string()))
        })
        .transpose()?;
    let (model_dir, model_name) = resolve_model(&args.model_repository, args.model.as_deref())?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let opts = ServeOptions {
        model_dir,
        model_name: model_name.clone(),
        version: args.version,
        poll: Duration::from_secs_f64(args.poll_secs),
        max_batch: args.max_batch,
        max_delay: Duration::from_millis(args.max_delay_ms),
        threads,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_rows: args.max_rows,
            max_text_bytes: args.max_text_bytes,
            max_image_pixels: args.max_image_pixels,
            queue_bound: args.queue_bound,
            max_inflight_bytes: args.max_inflight_bytes,
            header_timeout: Duration::from_secs_f64(args.header_timeout_secs),
            body_timeout: Duration::from_secs_f64(args.body_timeout_secs),
            max_connections: args.max_connections,
        },
        token,
        drain: Duration::from_secs_f64(args.drain_secs),
    };
    let recall = args.recall_index.map(|index| RecallServe {
        index,
        max_k: args.recall_max_k,
        ef_search: args.recall_ef_search,
    });
    let recall_name = recall
        .as_ref()
        .map(|_| RecallServe::model_name(&model_name));
    let listener = vigil_server::bind(&args.listen)?;
    let exposure = check_exposure(listener.local_addr()?, opts.token.is_some(), args.insecure)?;
    listener.set_nonblocking(true)?;
    let server = Server::start_with_recall(opts, recall)?;
    let (version, dir) = server.serving();
    let addr = listener.local_addr()?;
    eprintln!(
        "vigil serve: model '{model_name}' version {version} ({}), {threads} worker threads{}",
        dir.display(),
        match args.version {
            Some(_) => ", pinned".to_string(),
            None => format!(", polling every {}s", args.poll_secs),
        }
    );
    if let Some(name) = &recall_name {
        match server.recall_serving() {
            Some((v, location)) => {
                eprintln!("vigil serve: model '{name}': recall index version {v} ({location})")
            }
            None => eprintln!("vigil serve: model '{name}': no recall index loaded yet (503)"),
        }
    }
    for warning in exposure
        .into_iter()
        .chain(fd_limit_warning(args.max_connections))
    {
        eprintln!("{warning}");
    }
    eprintln!("vigil serve: listening on http://{addr}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        server.serve(listener, shutdown_signal()).await
    })?;
    eprintln!("vigil serve: stopped");
    Ok(())
}
