//! The HTTP layer (axum): routes of the KServe v2 protocol, `/v1/moderate`,
//! `/metrics`; authentication and request metrics in one middleware.
//!
//! Handlers only read the body (bounded), call the pure parsers in
//! [`crate::protocol`], queue the rows on the [`Engine`] and await the answer;
//! every refusal is a JSON `{"error": ...}` body with the status the protocol
//! expects (400 bad input, 401 no token, 404 unknown model or version not
//! loaded, 408 body too slow, 413 body too large, 503 overloaded, over the
//! in-flight byte budget, or draining).
//!
//! The token is checked in the middleware, before any handler reads a byte of
//! the body: an unauthenticated client cannot make the server buffer anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use http_body_util::BodyExt;
use prometheus_client::encoding::prometheus_text;

use crate::auth::Token;
use crate::budget::{Budget, Reservation};
use crate::engine::{Current, Engine, Job, JobError, Loaded, Scored, check_image_header};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::protocol::{
    self, BadInput, DECISIONS, IMAGE, InferRequest, Rows, SCORES, TEXT, encode_response,
};

/// The header naming the JSON part's length in a binary-extension body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    /// The model's name (the `{name}` in the routes).
    pub model: String,
    /// `--version`, when pinned.
    pub pinned: Option<u64>,
    /// The version served.
    pub current: Arc<Current>,
    /// The queue.
    pub engine: Arc<Engine>,
    /// Request bounds.
    pub limits: Limits,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The bearer token, if required.
    pub token: Option<Token>,
    /// Body bytes held by all requests (`--max-inflight-bytes`).
    pub budget: Arc<Budget>,
    /// Set on SIGTERM: readiness answers 503 while the server drains.
    pub draining: AtomicBool,
}

/// The router over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer))
        .route("/v1/moderate", post(moderate))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn bad(b: &BadInput) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(b.to_json())).into_response()
}

/// The endpoint label of a path, for metrics.
fn endpoint(path: &str) -> &'static str {
    if path.ends_with("/infer") {
        "infer"
    } else if path == "/v1/moderate" {
        "moderate"
    } else if path.starts_with("/v2/health") {
        "health"
    } else if path == "/metrics" {
        "metrics"
    } else if path.starts_with("/v2") {
        "metadata"
    } else {
        "other"
    }
}

/// Authentication (health probes are exempt, as Kubernetes' kubelet sends no
/// token) and per-request metrics.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let label = endpoint(req.uri().path());
    let response = match &app.token {
        Some(token) if label != "health" && !authorized(req.headers(), token) => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong 'Authorization: Bearer' token".into(),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        _ => next.run(req).await,
    };
    let timed = matches!(label, "infer" | "moderate");
    app.metrics.request(
        label,
        response.status().as_u16(),
        timed.then(|| started.elapsed().as_secs_f64()),
    );
    response
}

fn authorized(headers: &HeaderMap, token: &Token) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| token.admits(v.as_bytes()))
}

async fn server_metadata() -> Response {
    axum::Json(json!({
        "name": "vigil",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
    .into_response()
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(app): State<Arc<App>>) -> StatusCode {
    if app.draining.load(Ordering::Relaxed) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// The loaded version if `params` name this model and (if any) that version.
#[allow(clippy::result_large_err)]
fn resolve(app: &App, params: &HashMap<String, String>) -> Result<Arc<Loaded>, Response> {
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    if name != app.model {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown model '{name}' (this server serves '{}')",
                app.model
            ),
        ));
    }
    let loaded = app.current.get();
    if let Some(v) = params.get("version")
        && v.parse::<u64>().ok() != Some(loaded.version)
    {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "version {v} of model '{name}' is not loaded; loaded version: {}",
                loaded.version
            ),
        ));
    }
    Ok(loaded)
}

async fn model_metadata(
    State(app): State<Arc<App>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    let loaded = match resolve(&app, &params) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let l = loaded.labels.len() as i64;
    let mut inputs = Vec::new();
    if loaded.towers.text {
        inputs.push(json!({ "name": TEXT, "datatype": "BYTES", "shape": [-1] }));
    }
    if loaded.towers.image {
        inputs.push(json!({ "name": IMAGE, "datatype": "BYTES", "shape": [-1] }));
    }
    axum::Json(json!({
        "name": app.model,
        "versions": [loaded.version.to_string()],
        "platform": "vigil",
        "inputs": inputs,
        "outputs": [
            { "name": SCORES, "datatype": "FP32", "shape": [-1, l] },
            { "name": DECISIONS, "datatype": "BOOL", "shape": [-1, l] },
        ],
        "parameters": { "labels": loaded.labels, "pinned": app.pinned.is_some() },
    }))
    .into_response()
}

async fn model_ready(
    State(app): State<Arc<App>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    match resolve(&app, &params) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(r) => r,
    }
}

fn retry_later(status: StatusCode, message: String) -> Response {
    let mut r = error(status, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Reads the body up to `--max-body-bytes` (more: 413) within
/// `--body-timeout-secs` (later: 408), holding its bytes in the in-flight budget:
/// the declared `Content-Length` is reserved before anything is read, a chunked
/// body's bytes as they arrive; what does not fit is a 503 with `Retry-After`.
/// The reservation is the caller's to keep while it holds the body or what was
/// parsed from it.
async fn read_body(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Vec<u8>, Reservation), Response> {
    let limit = app.limits.max_body_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than --max-body-bytes {limit}"),
        )
    };
    let over_budget = |want: usize| {
        retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "overloaded: {want} more body bytes do not fit beside the {} held by requests in \
                 flight (--max-inflight-bytes {}); retry shortly",
                app.budget.held(),
                app.budget.limit()
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let want = declared.unwrap_or(0);
    let Some(mut held) = app.budget.reserve(want) else {
        return Err(over_budget(want));
    };
    let read = async {
        let mut body = body;
        let mut out = Vec::with_capacity(want);
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read".into(),
                ));
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let total = out.len() + data.len();
            if total > limit {
                return Err(too_large());
            }
            if !held.grow_to(total) {
                return Err(over_budget(total - held.bytes()));
            }
            out.extend_from_slice(&data);
        }
        Ok(out)
    };
    match tokio::time::timeout(app.limits.body_timeout, read).await {
        Ok(Ok(body)) => Ok((body, held)),
        Ok(Err(r)) => Err(r),
        Err(_) => {
            let mut r = error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within --body-timeout-secs {}",
                    app.limits.body_timeout.as_secs_f64()
                ),
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
    }
}

/// Every image's header against `--max-image-pixels`, before the rows are
/// queued: a decompression bomb is a 400 in microseconds, without a worker.
fn check_images(rows: &Rows, limits: &Limits) -> Result<(), BadInput> {
    for (row, img) in rows.images.iter().enumerate() {
        if let Some(bytes) = img {
            check_image_header(bytes, limits.max_image_pixels).map_err(|message| BadInput {
                input: Some(IMAGE.into()),
                row: Some(row),
                message,
            })?;
        }
    }
    Ok(())
}

/// Queues `rows` on `model`'s version and waits for the scores.
async fn run(app: &App, rows: Rows, model: Arc<Loaded>) -> Result<Scored, Response> {
    let (tx, rx) = oneshot::channel();
    let job = Job {
        rows,
        model,
        enqueued: Instant::now(),
        reply: tx,
    };
    if let Err((o, _)) = app.engine.submit(job) {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "overloaded: {} requests are waiting (--queue-bound {}); retry shortly",
                o.queued, app.limits.queue_bound
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(r);
    }
    match rx.await {
        Ok(Ok(scored)) => Ok(scored),
        Ok(Err(JobError::Bad(b))) => Err(bad(&b)),
        Ok(Err(JobError::Failed(msg))) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, msg)),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the worker stopped before answering".into(),
        )),
    }
}

async fn infer(
    State(app): State<Arc<App>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let loaded = match resolve(&app, &params) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let (body, _held) = match read_body(&app, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let header_len = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Inference-Header-Content-Length must be a non-negative integer".into(),
                );
            }
        },
    };
    let req: InferRequest =
        match protocol::parse_infer(&body, header_len, loaded.towers, &app.limits) {
            Ok(r) => r,
            Err(b) => return bad(&b),
        };
    // The rows hold copies of what they need; the body is not held past parsing.
    drop(body);
    if loaded.towers.image
        && let Err(b) = check_images(&req.rows, &app.limits)
    {
        return bad(&b);
    }
    let version = loaded.version;
    let labels = loaded.labels.len();
    let scored = match run(&app, req.rows, loaded).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let enc = encode_response(
        &app.model,
        version,
        req.id.as_deref(),
        req.outputs,
        labels,
        &scored.probs,
        &scored.decisions,
    );
    match enc.binary {
        None => ([(header::CONTENT_TYPE, "application/json")], enc.json).into_response(),
        Some(tail) => {
            let json_len = enc.json.len();
            let mut bytes = enc.json;
            bytes.extend_from_slice(&tail);
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        header::HeaderName::from_static(HEADER_LENGTH),
                        json_len.to_string(),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
    }
}

async fn moderate(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let (body, _held) = match read_body(&app, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let loaded = app.current.get();
    let (ids, rows) = match crate::moderate::parse_moderate(&body, &app.limits) {
        Ok(x) => x,
        Err(b) => return bad(&b),
    };
    drop(body);
    if !loaded.towers.image && rows.images.iter().any(Option::is_some) {
        return bad(&BadInput {
            input: Some(IMAGE.into()),
            row: rows.images.iter().position(Option::is_some),
            message: "this model has no image tower".into(),
        });
    }
    if let Err(b) = check_images(&rows, &app.limits) {
        return bad(&b);
    }
    let (version, labels) = (loaded.version, loaded.labels.clone());
    let scored = match run(&app, rows, loaded).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let l = labels.len().max(1);
    let results: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(r, id)| {
            // The fields and label order of `vigil predict`'s lines.
            let mut scores = serde_json::Map::new();
            let mut decisions = serde_json::Map::new();
            for (k, label) in labels.iter().enumerate() {
                scores.insert(label.clone(), json!(scored.probs[r * l + k]));
                decisions.insert(label.clone(), json!(scored.decisions[r * l + k]));
            }
            json!({ "id": id, "version": version, "scores": scores, "decisions": decisions })
        })
        .collect();
    axum::Json(json!({ "model_version": version.to_string(), "results": results })).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        app.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let token = Token::parse(b"s3cret").unwrap();
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, &token));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret"),
        );
        assert!(authorized(&h, &token));
        assert!(!authorized(&h, &Token::parse(b"s3cre").unwrap()));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized(&h, &token));
    }

    #[test]
    fn endpoints_are_labelled_for_metrics() {
        assert_eq!(endpoint("/v2/models/tiny/versions/2/infer"), "infer");
        assert_eq!(endpoint("/v2/health/ready"), "health");
        assert_eq!(endpoint("/v2/models/tiny"), "metadata");
        assert_eq!(endpoint("/v1/moderate"), "moderate");
    }
}
