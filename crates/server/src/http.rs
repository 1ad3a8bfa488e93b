//! The HTTP layer (axum): routes of the KServe v2 protocol, `/v1/moderate`,
//! `/metrics`; authentication and request metrics in one middleware.
//!
//! Handlers only read the body (bounded), call the pure parsers in
//! [`crate::protocol`], queue the rows on the [`Engine`] and await the answer;
//! every refusal is a JSON `{"error": ...}` body with the status the protocol
//! expects (400 bad input, 401 no token, 404 unknown model or version not
//! loaded, 408 body too slow, 413 body too large, 503 overloaded, over the
//! in-flight byte budget, draining, or no recall index loaded yet).
//!
//! With `--recall-index` the same routes serve a second model, `<model>-recall`:
//! its rows are queued like the model's (the same limits, batches and workers),
//! answered with their fused vectors, and searched in the index paired with the
//! version that embedded them ([`Serving`]): one snapshot of the pair per request.
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
use crate::engine::{Current, Engine, Job, JobError, Loaded, Scored, Serving, check_image_header};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::protocol::{
    self, BadInput, DECISIONS, Encoded, IDS, IMAGE, InferRequest, RecallHeader, Rows, SCORE,
    SCORES, SIMILARITY, TEXT, choose_label, encode_recall, encode_response, parse_recall,
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
    /// The recall model, when `--recall-index` is given.
    pub recall: Option<RecallSettings>,
}

/// The recall model's settings (`--recall-index`).
#[derive(Debug, Clone)]
pub struct RecallSettings {
    /// Its name in the routes, `<model>-recall`.
    pub name: String,
    /// `--recall-max-k`: the most neighbours a row may ask for.
    pub max_k: usize,
    /// The index repository, for messages.
    pub index: String,
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

/// The endpoint label of a path, for metrics: the recall model's infer is
/// `recall` (`recall`: its name, when served).
fn endpoint(path: &str, recall: Option<&str>) -> &'static str {
    let recall_model = recall.is_some_and(|name| {
        path.strip_prefix("/v2/models/")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if recall_model && path.ends_with("/infer") {
        "recall"
    } else if path.ends_with("/infer") {
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
    let label = endpoint(
        req.uri().path(),
        app.recall.as_ref().map(|r| r.name.as_str()),
    );
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
    let seconds = started.elapsed().as_secs_f64();
    app.metrics
        .request(label, response.status().as_u16(), timed.then_some(seconds));
    if label == "recall" {
        app.metrics.recall_latency(seconds);
    }
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

/// What a `/v2/models/{name}` route names.
enum Target {
    /// The model, at its loaded version.
    Model(Arc<Loaded>),
    /// The recall model: the pair served (its index loaded).
    Recall(Serving),
}

/// The loaded version if `params` name this model and (if any) that version;
/// the served pair if they name the recall model (503 while it has no index).
#[allow(clippy::result_large_err)]
fn resolve_target(app: &App, params: &HashMap<String, String>) -> Result<Target, Response> {
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    match &app.recall {
        Some(r) if name == r.name => {}
        _ => return resolve(app, params).map(Target::Model),
    }
    let serving = app.current.serving();
    let Some(index) = &serving.index else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "model '{name}' is not ready: no recall index is loaded for version {} of '{}' \
                 (none in {} names it yet: vigil index build --model ... --out {})",
                serving.model.version,
                app.model,
                app.recall.as_ref().map_or("", |r| r.index.as_str()),
                app.recall.as_ref().map_or("", |r| r.index.as_str()),
            ),
        ));
    };
    if let Some(v) = params.get("version")
        && v.parse::<u64>().ok() != Some(index.version)
    {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "version {v} of model '{name}' is not loaded; loaded version: {}",
                index.version
            ),
        ));
    }
    Ok(Target::Recall(serving))
}

/// The loaded version if `params` name this model and (if any) that version.
#[allow(clippy::result_large_err)]
fn resolve(app: &App, params: &HashMap<String, String>) -> Result<Arc<Loaded>, Response> {
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    if name != app.model {
        let served = match &app.recall {
            Some(r) => format!("'{}', '{}'", app.model, r.name),
            None => format!("'{}'", app.model),
        };
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("unknown model '{name}' (this server serves {served})"),
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

/// The inputs a version takes, for metadata.
fn input_metadata(loaded: &Loaded) -> Vec<Value> {
    let mut inputs = Vec::new();
    if loaded.towers.text {
        inputs.push(json!({ "name": TEXT, "datatype": "BYTES", "shape": [-1] }));
    }
    if loaded.towers.image {
        inputs.push(json!({ "name": IMAGE, "datatype": "BYTES", "shape": [-1] }));
    }
    inputs
}

async fn model_metadata(
    State(app): State<Arc<App>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    let loaded = match resolve_target(&app, &params) {
        Ok(Target::Model(l)) => l,
        Ok(Target::Recall(s)) => return recall_metadata(&app, &s),
        Err(r) => return r,
    };
    let l = loaded.labels.len() as i64;
    axum::Json(json!({
        "name": app.model,
        "versions": [loaded.version.to_string()],
        "platform": "vigil",
        "inputs": input_metadata(&loaded),
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
    match resolve_target(&app, &params) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(r) => r,
    }
}

/// The recall model's metadata: the model's inputs, the neighbours' outputs, and
/// the pair behind them.
fn recall_metadata(app: &App, serving: &Serving) -> Response {
    let (Some(r), Some(index)) = (&app.recall, &serving.index) else {
        return error(StatusCode::NOT_FOUND, "recall is not served".into());
    };
    let mut outputs = vec![
        json!({ "name": IDS, "datatype": "BYTES", "shape": [-1, -1] }),
        json!({ "name": SIMILARITY, "datatype": "FP32", "shape": [-1, -1] }),
    ];
    if !index.labels.is_empty() {
        outputs.push(json!({ "name": SCORE, "datatype": "FP32", "shape": [-1, -1] }));
    }
    axum::Json(json!({
        "name": r.name,
        "versions": [index.version.to_string()],
        "platform": "vigil-recall",
        "inputs": input_metadata(&serving.model),
        "outputs": outputs,
        "parameters": {
            "embedding_model": app.model,
            "embedding_model_version": serving.model.version.to_string(),
            "labels": index.labels,
            "items": index.len(),
            "k": { "default": protocol::DEFAULT_K.min(r.max_k), "max": r.max_k },
            "pinned": app.pinned.is_some(),
        },
    }))
    .into_response()
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

/// Queues `rows` on `model`'s version and waits for the scores (and, with
/// `embed`, the fused vectors).
async fn run(app: &App, rows: Rows, model: Arc<Loaded>, embed: bool) -> Result<Scored, Response> {
    let (tx, rx) = oneshot::channel();
    let job = Job {
        rows,
        model,
        embed,
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

/// `Inference-Header-Content-Length`, when given.
#[allow(clippy::result_large_err)]
fn header_length(headers: &HeaderMap) -> Result<Option<usize>, Response> {
    match headers.get(HEADER_LENGTH) {
        None => Ok(None),
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(error(
                StatusCode::BAD_REQUEST,
                "Inference-Header-Content-Length must be a non-negative integer".into(),
            )),
        },
    }
}

/// An encoded response: JSON, or JSON then the raw outputs.
fn encoded(enc: Encoded) -> Response {
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

async fn infer(
    State(app): State<Arc<App>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let loaded = match resolve_target(&app, &params) {
        Ok(Target::Model(l)) => l,
        Ok(Target::Recall(s)) => return recall(&app, s, &headers, body).await,
        Err(r) => return r,
    };
    let (body, _held) = match read_body(&app, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let header_len = match header_length(&headers) {
        Ok(n) => n,
        Err(r) => return r,
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
    let scored = match run(&app, req.rows, loaded, false).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    encoded(encode_response(
        &app.model,
        version,
        req.id.as_deref(),
        req.outputs,
        labels,
        &scored.probs,
        &scored.decisions,
    ))
}

/// The recall model's infer: the rows parsed and bounded as the model's, `k`
/// within `--recall-max-k`, embedded by the pair's model through the queue, each
/// row's nearest items searched in the pair's index.
async fn recall(app: &App, serving: Serving, headers: &HeaderMap, body: Body) -> Response {
    let (Some(settings), Some(index)) = (&app.recall, serving.index.clone()) else {
        return error(StatusCode::NOT_FOUND, "recall is not served".into());
    };
    let model = serving.model;
    let (body, _held) = match read_body(app, headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let header_len = match header_length(headers) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let req = match parse_recall(&body, header_len, model.towers, &app.limits, settings.max_k) {
        Ok(r) => r,
        Err(b) => return bad(&b),
    };
    drop(body);
    if model.towers.image
        && let Err(b) = check_images(&req.rows, &app.limits)
    {
        return bad(&b);
    }
    let label = match choose_label(&index.labels, req.label.as_deref()) {
        Ok(l) => l,
        Err(b) => return bad(&b),
    };
    let mut outputs = req.outputs;
    if label.is_none() && outputs[2].is_some() {
        if req.explicit_outputs {
            return bad(&BadInput {
                input: Some(SCORE.into()),
                row: None,
                message: format!("the index holds no scores (it returns: {IDS}, {SIMILARITY})"),
            });
        }
        outputs[2] = None;
    }
    let model_version = model.version;
    let scored = match run(app, req.rows, model, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(vectors) = scored.embeddings else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the worker returned no embeddings".into(),
        );
    };
    let rows = match index.search(vectors, req.k, label).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil serve: error: a recall search failed: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    };
    encoded(encode_recall(
        &RecallHeader {
            model: &settings.name,
            index_version: index.version,
            model_version,
            id: req.id.as_deref(),
            label: label.map(|l| index.labels[l].as_str()),
        },
        outputs,
        &rows,
    ))
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
    let scored = match run(&app, rows, loaded, false).await {
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
        assert_eq!(endpoint("/v2/models/tiny/versions/2/infer", None), "infer");
        assert_eq!(endpoint("/v2/health/ready", None), "health");
        assert_eq!(endpoint("/v2/models/tiny", None), "metadata");
        assert_eq!(endpoint("/v1/moderate", None), "moderate");
        let r = Some("tiny-recall");
        assert_eq!(endpoint("/v2/models/tiny-recall/infer", r), "recall");
        assert_eq!(
            endpoint("/v2/models/tiny-recall/versions/3/infer", r),
            "recall"
        );
        assert_eq!(endpoint("/v2/models/tiny-recall", r), "metadata");
        assert_eq!(endpoint("/v2/models/tiny/infer", r), "infer");
        assert_eq!(endpoint("/v2/models/tiny-recallx/infer", r), "infer");
        assert_eq!(endpoint("/v2/models/tiny-recall/infer", None), "infer");
    }
}
