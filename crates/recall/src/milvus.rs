//! The bank operations against a Milvus server, for banks larger than one machine's
//! memory or shared by several servers: `milvus://HOST:PORT/COLLECTION` wherever a
//! bank goes.
//!
//! # Why Milvus
//!
//! It is the one vector engine this project can run for real in CI: Milvus 2.3.5's
//! PyPI wheel (`pip install milvus==2.3.5`) carries the actual Milvus standalone
//! server, spoken to over its documented REST API (v1) with the reqwest already in
//! the tree. Qdrant's server is on no registry this project reaches (crates.io's
//! `qdrant` is a 0.0.0 placeholder), and LanceDB is an embedded library whose Rust
//! crate pulls lance and datafusion (minutes of extra compile on 2 cores) without
//! going beyond one machine.
//!
//! # The collection
//!
//! One collection is one index: `pk` (Int64, assigned by Milvus), `vector`
//! (FloatVector, inner-product metric: the vectors are unit, so the inner product is
//! the cosine similarity, as in the embedded graph) and, as dynamic fields, the
//! row's [`ItemMeta`]: `vigil_id`, `labels`, `scores`, `text`, `image`. The
//! [`IndexManifest`] is the collection's description, written once at creation:
//! Milvus 2.3 cannot change a description afterwards, so [`Milvus::manifest`] reads
//! the live count from the server (`count(*)`) and reports no tombstones (Milvus
//! compacts deleted rows away itself).
//!
//! How exact a search is, is the server's setting, not the manifest's `hnsw` (which
//! only records what an embedded build would use; REST v1 passes no search width):
//! Milvus 2.3 searches sealed segments through its `AUTOINDEX` (an HNSW) and
//! growing ones through an interim IVF index (`queryNode.segcore.interimIndex`,
//! nprobe 16 of nlist 128 by default). Measured on Milvus 2.3.5 standalone with
//! random 32-d unit vectors: 2,000 rows are searched exactly (the tests compare
//! with the embedded bank id for id), 20,000 rows in a growing segment give
//! recall@10 ≈ 0.72; `interimIndex.enableIndex: false` on the server makes growing
//! segments exact.
//!
//! # Changes
//!
//! Milvus has no transactions and no upsert by a dynamic field. An add looks up the
//! rows already holding its ids, inserts the new rows, then deletes the old ones: a
//! failure midway leaves an id twice (searches keep its nearer row; the same add
//! again clears it), never missing. Milvus's default consistency (bounded
//! staleness) hides a change for a moment; add and delete poll until their last
//! write is visible (at most [`SETTLE_TIMEOUT`]), so once they return every later
//! search sees the change. Requests are batched under Milvus 2.3's limits: 16,384
//! results per search or query, 64 MiB per insert.
//!
//! # Layout
//!
//! [`MilvusUrl`] parses the URL at the edge. Request bodies and replies are built and
//! read by plain functions below (unit tested without a server); [`Milvus`] does the
//! I/O. It is synchronous, like the CLI: each request runs on the store's shared
//! runtime ([`vigil_store::storage::client::block_on`]), which also installs ring as
//! rustls's crypto provider (reqwest is built without one) and, unlike a private
//! current-thread runtime, may be called from inside another runtime (`vigil
//! serve`). Every request is bounded: [`CONNECT_TIMEOUT`] to connect,
//! [`REQUEST_TIMEOUT`] in all.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_store::storage::client::block_on;

use crate::bank::{Added, ItemMeta, check_meta, check_rows};
use crate::error::RecallError;
use crate::manifest::{FORMAT, IndexManifest};
use crate::recall::Searcher;
use crate::vectors::Vectors;

/// Milvus's port when the URL names none.
pub const DEFAULT_PORT: u16 = 19530;
/// Most neighbours one search returns, and most rows one query returns (Milvus's
/// `topk` and `offset + limit` bound).
pub const MAX_K: usize = 16_384;
/// Widest vector Milvus stores.
pub const MAX_DIMS: usize = 32_768;
/// Longest collection name.
pub const MAX_NAME: usize = 255;
/// Time to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request and its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for a change to become visible to searches, or for a new collection to load.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Rows per insert request, and their bytes (Milvus takes up to 64 MiB).
const INSERT_ROWS: usize = 1000;
const INSERT_BYTES: usize = 8 << 20;
/// Ids per `vigil_id in [..]` query (each may hold a few rows: far below [`MAX_K`]).
const IDS_PER_QUERY: usize = 256;
/// Primary keys per delete.
const PKS_PER_DELETE: usize = 1000;
/// Bytes of one filter expression.
const FILTER_BYTES: usize = 64 << 10;
/// The dynamic fields holding an [`ItemMeta`].
const META_FIELDS: [&str; 5] = ["vigil_id", "labels", "scores", "text", "image"];

/// `milvus://HOST[:PORT]/COLLECTION` (or `milvus+https://` for a server behind TLS),
/// checked: a host, a port, and a collection name Milvus accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilvusUrl {
    tls: bool,
    host: String,
    port: u16,
    collection: String,
}

impl MilvusUrl {
    /// Whether `text` is meant as a Milvus URL (its scheme), before checking it.
    pub fn is_milvus(text: &str) -> bool {
        text.starts_with("milvus://") || text.starts_with("milvus+https://")
    }

    /// Parses and checks `text`; a Usage error naming it says what is wrong.
    pub fn parse(text: &str) -> Result<Self, RecallError> {
        let bad = |why: String| {
            RecallError::Usage(format!(
                "{text:?} is not a Milvus URL: {why} (expected milvus://HOST:PORT/COLLECTION)"
            ))
        };
        let url = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
        let tls = match url.scheme() {
            "milvus" => false,
            "milvus+https" => true,
            other => return Err(bad(format!("the scheme is {other:?}"))),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in the URL are not supported".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it has a query or a fragment".into()));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host".into()))?
            .to_string();
        let port = url.port().unwrap_or(DEFAULT_PORT);
        if port == 0 {
            return Err(bad("port 0".into()));
        }
        let collection = url.path().strip_prefix('/').unwrap_or_default();
        check_collection(collection).map_err(bad)?;
        Ok(Self {
            tls,
            host,
            port,
            collection: collection.to_string(),
        })
    }

    /// The collection's name.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The server's REST root, `http://HOST:PORT` (`https` for `milvus+https`).
    pub fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/v1/vector/{path}", self.base())
    }
}

impl fmt::Display for MilvusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "milvus+https" } else { "milvus" };
        write!(
            f,
            "{scheme}://{}:{}/{}",
            self.host, self.port, self.collection
        )
    }
}

impl FromStr for MilvusUrl {
    type Err = RecallError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Milvus's naming rule: letters, digits and underscores, not starting with a digit,
/// at most [`MAX_NAME`] characters.
fn check_collection(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("no collection name after the host".into());
    };
    if name.len() > MAX_NAME {
        return Err(format!(
            "the collection name is longer than {MAX_NAME} characters"
        ));
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!(
            "the collection name {name:?} must start with a letter or an underscore"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "the collection name {name:?} holds {c:?} (only letters, digits and underscores)"
        ));
    }
    Ok(())
}

// ---- Requests and replies, without I/O. ----

fn engine(url: &str, reason: impl Into<String>) -> RecallError {
    RecallError::Engine {
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// The start of a body, for a message.
fn head(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// The `data` of a reply, or the error Milvus sent (`{"code": ≠200, "message"}`,
/// with HTTP 200) or the reason it is no Milvus reply.
fn reply_data(url: &str, status: u16, body: &[u8]) -> Result<Value, RecallError> {
    let not_milvus = |what: &str| {
        engine(
            url,
            format!(
                "HTTP {status}, {what}: {}",
                head(&String::from_utf8_lossy(body))
            ),
        )
    };
    let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(body) else {
        return Err(not_milvus("not a Milvus reply"));
    };
    match reply.get("code").and_then(Value::as_i64) {
        Some(200) => Ok(reply.remove("data").unwrap_or(Value::Null)),
        Some(code) => Err(engine(
            url,
            format!(
                "Milvus error {code}: {}",
                reply
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
            ),
        )),
        None => Err(not_milvus("a reply without a code")),
    }
}

/// A string literal of Milvus's filter expressions (Go's quoting: `\"`, `\\` and
/// `\uXXXX` for control characters).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn id_filter(ids: &[&str]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| quote(id)).collect();
    format!("vigil_id in [{}]", quoted.join(","))
}

fn pk_filter(pks: &[i64]) -> String {
    let list: Vec<String> = pks.iter().map(i64::to_string).collect();
    format!("pk in [{}]", list.join(","))
}

/// `items` in order, in runs of at most `max_items` and (unless one item alone is
/// larger) `max_bytes` by `size`.
fn chunks_by<T>(
    items: Vec<T>,
    max_items: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        match out.last_mut() {
            Some(run) if run.len() < max_items && bytes + n <= max_bytes => {
                bytes += n;
                run.push(item);
            }
            _ => {
                bytes = n;
                out.push(vec![item]);
            }
        }
    }
    out
}

/// A primary key as Milvus writes it (a string: it exceeds JSON's safe integers).
fn pk_of(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

fn create_body(collection: &str, manifest: &IndexManifest) -> Result<Value, RecallError> {
    let description = serde_json::to_string(manifest)
        .map_err(|e| RecallError::Usage(format!("manifest: {e}")))?;
    Ok(json!({
        "collectionName": collection,
        "dimension": manifest.dims,
        "metricType": "IP",
        "primaryField": "pk",
        "vectorField": "vector",
        "description": description,
    }))
}

/// One row to insert: the vector and the item's fields (empty ones left out).
/// Serialised directly so the floats are written as `f32`s (`0.6`, not the `f64`
/// `0.6000000238418579` a [`Value`] would hold).
#[derive(serde::Serialize)]
struct Row<'a> {
    vector: &'a [f32],
    vigil_id: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    labels: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    scores: &'a [f32],
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
}

fn row(vector: &[f32], meta: &ItemMeta) -> Result<String, RecallError> {
    serde_json::to_string(&Row {
        vector,
        vigil_id: &meta.id,
        labels: &meta.labels,
        scores: &meta.scores,
        text: meta.text.as_deref(),
        image: meta.image.as_deref(),
    })
    .map_err(|e| RecallError::Usage(format!("id {:?}: {e}", meta.id)))
}

fn search_body(collection: &str, query: &[f32], k: usize) -> Result<String, RecallError> {
    let vector =
        serde_json::to_string(query).map_err(|e| RecallError::Usage(format!("query: {e}")))?;
    Ok(format!(
        "{{\"collectionName\":{},\"vector\":{vector},\"limit\":{k},\"outputFields\":{}}}",
        json!(collection),
        json!(META_FIELDS)
    ))
}

fn insert_body(collection: &str, rows: &[String]) -> String {
    format!(
        "{{\"collectionName\":{},\"data\":[{}]}}",
        json!(collection),
        rows.join(",")
    )
}

/// The primary keys an insert of `n` rows got.
fn inserted_pks(data: &Value, n: usize) -> Result<Vec<i64>, String> {
    let pks: Vec<i64> = data
        .get("insertIds")
        .and_then(Value::as_array)
        .ok_or("an insert reply without insertIds")?
        .iter()
        .map(|v| pk_of(v).ok_or("an insert id that is not an integer"))
        .collect::<Result<_, _>>()?;
    if pks.len() != n {
        return Err(format!("{n} rows sent, {} inserted", pks.len()));
    }
    Ok(pks)
}

/// The item a returned row holds.
fn meta_of(row: &Value) -> Result<ItemMeta, String> {
    let id = row
        .get("vigil_id")
        .and_then(Value::as_str)
        .ok_or("a row without a vigil_id (not written by vigil)")?;
    let list = |field: &str| match row.get(field) {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(v) => v.clone(),
    };
    let text = |field: &str| match row.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("id {id:?}: {field} is not a string")),
    };
    Ok(ItemMeta {
        id: id.to_string(),
        labels: serde_json::from_value(list("labels"))
            .map_err(|_| format!("id {id:?}: labels is not a list of strings"))?,
        scores: serde_json::from_value(list("scores"))
            .map_err(|_| format!("id {id:?}: scores is not a list of numbers"))?,
        text: text("text")?,
        image: text("image")?,
    })
}

/// A search's hits, most similar first, each id once (an add that failed midway can
/// leave an id in two rows: the nearer counts), at most `k`.
fn hits_of(data: Value, k: usize) -> Result<Vec<(ItemMeta, f32)>, String> {
    let Value::Array(rows) = data else {
        return Err("search data is not a list".into());
    };
    let mut hits = Vec::with_capacity(rows.len());
    for row in &rows {
        let distance = row
            .get("distance")
            .and_then(Value::as_f64)
            .ok_or("a hit without a distance")?;
        hits.push((meta_of(row)?, distance as f32));
    }
    hits.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut seen = HashSet::new();
    hits.retain(|(m, _)| seen.insert(m.id.clone()));
    hits.truncate(k);
    Ok(hits)
}

/// The manifest in a collection's description (`describe`'s data).
fn manifest_of(describe: &Value, location: &str) -> Result<IndexManifest, RecallError> {
    let damaged = |reason: String| RecallError::Damaged {
        location: location.to_string(),
        reason,
    };
    let description = describe
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let manifest: IndexManifest = serde_json::from_str(description).map_err(|e| {
        damaged(format!(
            "the collection's description is not a vigil index manifest ({e}): not made by vigil?"
        ))
    })?;
    if manifest.format != FORMAT {
        return Err(damaged(format!(
            "manifest format {} (this vigil reads {FORMAT})",
            manifest.format
        )));
    }
    let width = describe
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|f| f.get("name").and_then(Value::as_str) == Some("vector"))
        .and_then(|f| {
            f.get("type")?
                .as_str()?
                .strip_prefix("FloatVector(")?
                .strip_suffix(')')?
                .parse::<usize>()
                .ok()
        });
    match width {
        Some(w) if w == manifest.dims => Ok(manifest),
        Some(w) => Err(damaged(format!(
            "the vector field has {w} dimensions, the manifest says {}",
            manifest.dims
        ))),
        None => Err(damaged("no FloatVector field named `vector`".into())),
    }
}

/// `count(*)`'s answer.
fn count_of(data: &Value) -> Option<usize> {
    let v = data.get(0)?.get("count(*)")?;
    v.as_u64()
        .or_else(|| v.as_str()?.parse().ok())
        .map(|n| n as usize)
}

/// An error and its sources, for a message.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

// ---- The handle. ----

/// A Milvus collection holding an index, through the server's REST API.
#[derive(Debug)]
pub struct Milvus {
    url: MilvusUrl,
    client: reqwest::Client,
    /// The stored manifest (its count is the creation's, 0), read once.
    stored: OnceLock<IndexManifest>,
}

impl Milvus {
    /// A handle on `url`'s server, which must answer; the collection need not exist
    /// (see [`Self::create`]).
    pub fn connect(url: &MilvusUrl) -> Result<Self, RecallError> {
        let client = block_on(async {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .build()
        })
        .map_err(|e| engine(&url.base(), chain(&e)))?;
        let milvus = Self {
            url: url.clone(),
            client,
            stored: OnceLock::new(),
        };
        milvus.exists()?;
        Ok(milvus)
    }

    /// A handle on `url`'s collection, which must exist and hold a vigil index.
    pub fn open(url: &MilvusUrl) -> Result<Self, RecallError> {
        let milvus = Self::connect(url)?;
        if !milvus.exists()? {
            return Err(RecallError::Usage(format!(
                "no collection {:?} at {}: build one with `vigil index build --out {url}`",
                url.collection,
                url.base()
            )));
        }
        milvus.stored()?;
        Ok(milvus)
    }

    /// The URL.
    pub fn url(&self) -> &MilvusUrl {
        &self.url
    }

    fn send(&self, path: &str, body: Option<String>) -> Result<Value, RecallError> {
        let url = self.url.endpoint(path);
        let request = match body {
            Some(body) => self
                .client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
            None => self.client.get(&url),
        };
        let got = block_on(async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        });
        let (status, body) = got.map_err(|e| {
            let why = if e.is_connect() {
                "cannot connect (is Milvus running there?)"
            } else if e.is_timeout() {
                "no answer in time"
            } else {
                "the request failed"
            };
            engine(&url, format!("{why}: {}", chain(&e.without_url())))
        })?;
        reply_data(&url, status, &body)
    }

    fn post(&self, path: &str, body: String) -> Result<Value, RecallError> {
        self.send(path, Some(body))
    }

    /// Rows matching `filter`, with `fields`.
    fn query(
        &self,
        filter: &str,
        fields: &[&str],
        limit: usize,
    ) -> Result<Vec<Value>, RecallError> {
        let body = json!({
            "collectionName": self.url.collection,
            "filter": filter,
            "outputFields": fields,
            "limit": limit,
        });
        match self.post("query", body.to_string())? {
            Value::Array(rows) => Ok(rows),
            Value::Null => Ok(Vec::new()),
            _ => Err(engine(
                &self.url.endpoint("query"),
                "query data is not a list",
            )),
        }
    }

    /// Whether the collection exists.
    pub fn exists(&self) -> Result<bool, RecallError> {
        let names = self.send("collections", None)?;
        let names = names
            .as_array()
            .ok_or_else(|| engine(&self.url.endpoint("collections"), "the list is not a list"))?;
        Ok(names
            .iter()
            .any(|n| n.as_str() == Some(self.url.collection.as_str())))
    }

    fn describe(&self) -> Result<Value, RecallError> {
        self.send(
            &format!(
                "collections/describe?collectionName={}",
                self.url.collection
            ),
            None,
        )
    }

    fn read_manifest(&self) -> Result<IndexManifest, RecallError> {
        manifest_of(&self.describe()?, &self.url.to_string())
    }

    fn stored(&self) -> Result<&IndexManifest, RecallError> {
        if let Some(m) = self.stored.get() {
            return Ok(m);
        }
        let m = self.read_manifest()?;
        Ok(self.stored.get_or_init(|| m))
    }

    /// Creates the collection for an index described by `manifest` (its counts are
    /// not stored). An existing collection is refused unless `replace`, and only a
    /// vigil index is ever replaced.
    pub fn create(&mut self, manifest: &IndexManifest, replace: bool) -> Result<(), RecallError> {
        if !(1..=MAX_DIMS).contains(&manifest.dims) {
            return Err(RecallError::Usage(format!(
                "Milvus stores vectors of 1 to {MAX_DIMS} dimensions, not {}",
                manifest.dims
            )));
        }
        if manifest.metric != "cosine" {
            return Err(RecallError::Usage(format!(
                "metric {:?}: a vigil index is cosine over unit vectors",
                manifest.metric
            )));
        }
        if self.exists()? {
            if !replace {
                return Err(RecallError::Usage(format!(
                    "{} already exists; replace it explicitly to build it anew",
                    self.url
                )));
            }
            if let Err(e) = self.read_manifest() {
                return Err(match e {
                    RecallError::Damaged { reason, .. } => RecallError::Usage(format!(
                        "{} exists and is not a vigil index ({reason}); not replacing it",
                        self.url
                    )),
                    other => other,
                });
            }
            self.drop_collection()?;
        }
        let mut stored = manifest.clone();
        stored.count = 0;
        stored.tombstones = 0;
        self.post(
            "collections/create",
            create_body(&self.url.collection, &stored)?.to_string(),
        )?;
        self.stored = OnceLock::from(stored);
        self.wait_loaded()
    }

    /// Milvus loads a new collection into memory before it can be searched.
    fn wait_loaded(&self) -> Result<(), RecallError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let state = self.describe()?;
            let state = state
                .get("load")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if state == "LoadStateLoaded" {
                return Ok(());
            }
            if start.elapsed() > SETTLE_TIMEOUT {
                return Err(engine(
                    &self.url.endpoint("collections/describe"),
                    format!(
                        "{} is still not loaded after {} s (load state {state:?})",
                        self.url,
                        SETTLE_TIMEOUT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Drops the collection; whether it existed.
    pub fn drop_collection(&mut self) -> Result<bool, RecallError> {
        if !self.exists()? {
            return Ok(false);
        }
        let body = json!({"collectionName": self.url.collection});
        self.post("collections/drop", body.to_string())?;
        self.stored = OnceLock::new();
        Ok(true)
    }

    /// The index's manifest, `count` read from the server, no tombstones.
    pub fn manifest(&self) -> Result<IndexManifest, RecallError> {
        let mut m = self.read_manifest()?;
        m.count = self.count()?;
        m.tombstones = 0;
        Ok(m)
    }

    /// Live items.
    pub fn count(&self) -> Result<usize, RecallError> {
        // Milvus counts only without a limit (0 is none); pks are positive.
        let rows = self.query("pk >= 0", &["count(*)"], 0)?;
        count_of(&Value::Array(rows))
            .ok_or_else(|| engine(&self.url.endpoint("query"), "count(*) gave no number"))
    }

    /// The primary keys of the rows holding each of `ids` (absent: no row).
    fn pks_of(&self, ids: Vec<&str>) -> Result<HashMap<String, Vec<i64>>, RecallError> {
        let mut out: HashMap<String, Vec<i64>> = HashMap::new();
        for run in chunks_by(ids, IDS_PER_QUERY, FILTER_BYTES, |id| id.len() + 4) {
            let rows = self.query(&id_filter(&run), &["pk", "vigil_id"], MAX_K)?;
            if rows.len() >= MAX_K {
                return Err(engine(
                    &self.url.endpoint("query"),
                    format!("{} ids hold {MAX_K} rows or more", run.len()),
                ));
            }
            for row in &rows {
                let (Some(pk), Some(id)) = (
                    row.get("pk").and_then(pk_of),
                    row.get("vigil_id").and_then(Value::as_str),
                ) else {
                    return Err(engine(
                        &self.url.endpoint("query"),
                        format!("a row without pk or vigil_id: {}", head(&row.to_string())),
                    ));
                };
                out.entry(id.to_string()).or_default().push(pk);
            }
        }
        Ok(out)
    }

    /// Deletes rows by primary key; the last batch (the newest delete).
    fn delete_pks(&self, pks: Vec<i64>) -> Result<Vec<i64>, RecallError> {
        let mut last = Vec::new();
        for run in chunks_by(pks, PKS_PER_DELETE, usize::MAX, |_| 0) {
            let body = json!({"collectionName": self.url.collection, "id": run});
            self.post("delete", body.to_string())?;
            last = run;
        }
        Ok(last)
    }

    /// Waits until searches see `present` and not `absent`: the last writes of a
    /// change, so every earlier write is visible too (Milvus orders writes by
    /// timestamp and serves reads at one).
    fn settle(&self, present: &[i64], absent: &[i64]) -> Result<(), RecallError> {
        let probe: Vec<i64> = present.iter().chain(absent).copied().collect();
        if probe.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let rows = self.query(&pk_filter(&probe), &["pk"], probe.len())?;
            let seen: HashSet<i64> = rows
                .iter()
                .filter_map(|r| r.get("pk").and_then(pk_of))
                .collect();
            if present.iter().all(|p| seen.contains(p)) && !absent.iter().any(|p| seen.contains(p))
            {
                return Ok(());
            }
            if start.elapsed() > SETTLE_TIMEOUT {
                return Err(engine(
                    &self.url.endpoint("query"),
                    format!(
                        "Milvus accepted the change but searches still do not see it after {} s",
                        SETTLE_TIMEOUT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Adds `vectors` with `meta` per row (same order, same ids): an upsert by id.
    /// A bad row changes nothing; see the module docs for a failing server.
    pub fn add(&self, vectors: &Vectors, meta: Vec<ItemMeta>) -> Result<Added, RecallError> {
        check_meta(vectors, &meta)?;
        if vectors.is_empty() {
            return Ok(Added::default());
        }
        check_rows(vectors, &meta, self.stored()?)?;
        let old = self.pks_of(meta.iter().map(|m| m.id.as_str()).collect())?;
        let rows: Vec<String> = meta
            .iter()
            .enumerate()
            .map(|(i, m)| row(vectors.row(i), m))
            .collect::<Result<_, _>>()?;
        let mut last_new = Vec::new();
        for run in chunks_by(rows, INSERT_ROWS, INSERT_BYTES, String::len) {
            let data = self.post("insert", insert_body(&self.url.collection, &run))?;
            last_new = inserted_pks(&data, run.len())
                .map_err(|r| engine(&self.url.endpoint("insert"), r))?;
        }
        let last_old = self.delete_pks(old.values().flatten().copied().collect())?;
        self.settle(&last_new, &last_old)?;
        Ok(Added {
            added: meta.len() - old.len(),
            replaced: old.len(),
        })
    }

    /// Deletes `ids`. An id that is not in the index is an error naming it and
    /// nothing is deleted.
    pub fn delete(&self, ids: &[String]) -> Result<usize, RecallError> {
        let mut seen = HashSet::new();
        let ids: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let found = self.pks_of(ids.clone())?;
        if let Some(id) = ids.iter().find(|id| !found.contains_key(**id)) {
            return Err(RecallError::Usage(format!(
                "id {id:?} is not in {} (or is already deleted); nothing was deleted",
                self.url
            )));
        }
        let last = self.delete_pks(found.values().flatten().copied().collect())?;
        self.settle(&[], &last)?;
        Ok(ids.len())
    }
}

impl Searcher for Milvus {
    fn dims(&self) -> usize {
        self.stored().map_or(0, |m| m.dims)
    }

    fn nearest(&self, query: &[f32], k: usize) -> Result<Vec<(ItemMeta, f32)>, RecallError> {
        let dims = self.stored()?.dims;
        if query.len() != dims {
            return Err(RecallError::Usage(format!(
                "a query of {} dimensions against an index of {dims}",
                query.len()
            )));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        if k > MAX_K {
            return Err(RecallError::Usage(format!(
                "Milvus returns at most {MAX_K} neighbours a query, not {k}"
            )));
        }
        let data = self.post("search", search_body(&self.url.collection, query, k)?)?;
        hits_of(data, k).map_err(|r| engine(&self.url.endpoint("search"), r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ann::HnswParams;
    use crate::manifest::{EmbeddingSource, SourceKind};

    fn manifest(dims: usize) -> IndexManifest {
        IndexManifest {
            format: FORMAT,
            dims,
            metric: "cosine".into(),
            hnsw: HnswParams::default(),
            embedding: EmbeddingSource {
                kind: SourceKind::Vectors,
                field: "embedding".into(),
                model: None,
                text_encoder: None,
                image_encoder: None,
                max_text_len: None,
                image_size: None,
            },
            labels: vec!["toxic".into(), "spam".into()],
            count: 0,
            tombstones: 0,
            data_dir: None,
        }
    }

    #[test]
    fn urls_parse_with_a_default_port_and_print_back() {
        let u = MilvusUrl::parse("milvus://127.0.0.1:19531/vigil_bank").unwrap();
        assert_eq!(u.collection(), "vigil_bank");
        assert_eq!(u.base(), "http://127.0.0.1:19531");
        assert_eq!(u.to_string(), "milvus://127.0.0.1:19531/vigil_bank");
        assert_eq!(
            u.endpoint("search"),
            "http://127.0.0.1:19531/v1/vector/search"
        );
        let u: MilvusUrl = "milvus://db.internal/_bank2".parse().unwrap();
        assert_eq!(u.base(), "http://db.internal:19530");
        let u = MilvusUrl::parse("milvus+https://[::1]:443/b").unwrap();
        assert_eq!(u.base(), "https://[::1]:443");
        assert_eq!(u.to_string(), "milvus+https://[::1]:443/b");
        assert!(MilvusUrl::is_milvus("milvus://h/c"));
        assert!(!MilvusUrl::is_milvus("s3://bucket/bank"));
    }

    #[test]
    fn bad_urls_are_usage_errors_naming_the_url() {
        for (text, why) in [
            ("http://h:1/c", "scheme"),
            ("milvus://h:1", "no collection"),
            ("milvus://h:1/", "no collection"),
            ("milvus://h:1/a/b", "\"a/b\""),
            ("milvus://h:1/c/", "\"c/\""),
            ("milvus://h:1/1bank", "start with a letter"),
            ("milvus://h:1/my-bank", "'-'"),
            ("milvus://h:1/my%20bank", "'%'"),
            ("milvus://u:p@h:1/c", "credentials"),
            ("milvus://h:1/c?x=1", "query"),
            ("milvus://h:0/c", "port 0"),
            ("milvus:///c", "host"),
            ("milvus://h:99999/c", "port"),
        ] {
            let e = MilvusUrl::parse(text).unwrap_err();
            assert!(e.is_usage(), "{text}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("{text:?}")), "{msg}");
            assert!(msg.contains(why), "{text}: {msg}");
        }
        let long = format!("milvus://h/{}", "a".repeat(MAX_NAME + 1));
        assert!(
            MilvusUrl::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("longer")
        );
    }

    #[test]
    fn replies_give_their_data_or_milvus_s_message() {
        let url = "http://h:1/v1/vector/search";
        let data = reply_data(url, 200, br#"{"code":200,"data":{"insertCount":1}}"#).unwrap();
        assert_eq!(data["insertCount"], 1);
        assert_eq!(
            reply_data(url, 200, br#"{"code":200}"#).unwrap(),
            Value::Null
        );
        let e = reply_data(
            url,
            200,
            br#"{"code":100,"message":"collection not found[collection=x]"}"#,
        )
        .unwrap_err();
        assert!(!e.is_usage());
        assert_eq!(
            e.to_string(),
            "http://h:1/v1/vector/search: Milvus error 100: collection not found[collection=x]"
        );
        let e = reply_data(url, 502, b"<html>bad gateway</html>").unwrap_err();
        assert!(
            e.to_string()
                .contains("HTTP 502, not a Milvus reply: <html>"),
            "{e}"
        );
        let e = reply_data(url, 200, br#"{"data":[]}"#).unwrap_err();
        assert!(e.to_string().contains("without a code"), "{e}");
        let e = reply_data(url, 200, &[b'x'; 1000]).unwrap_err();
        assert!(e.to_string().len() < 400, "{e}");
    }

    #[test]
    fn filters_quote_ids_as_milvus_reads_them() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("new\nline\u{1}"), r#""new\u000aline\u0001""#);
        assert_eq!(quote("ünï 😀 it's"), "\"ünï 😀 it's\"");
        assert_eq!(id_filter(&["a", "b\"c"]), r#"vigil_id in ["a","b\"c"]"#);
        assert_eq!(pk_filter(&[1, -2]), "pk in [1,-2]");
    }

    #[test]
    fn batches_respect_counts_and_bytes() {
        let sizes = |runs: &Vec<Vec<usize>>| runs.iter().map(Vec::len).collect::<Vec<_>>();
        let runs = chunks_by((0..10).collect(), 4, usize::MAX, |_| 1);
        assert_eq!(sizes(&runs), vec![4, 4, 2]);
        assert_eq!(runs.concat(), (0..10).collect::<Vec<_>>());
        // Bytes: 3 + 3 fit in 7, a third does not; one item over the limit goes alone.
        let runs = chunks_by(vec![3, 3, 3, 20, 1], 100, 7, |n| *n);
        assert_eq!(runs, vec![vec![3, 3], vec![3], vec![20], vec![1]]);
        assert!(chunks_by(Vec::<u8>::new(), 4, 4, |_| 1).is_empty());
    }

    #[test]
    fn rows_round_trip_through_a_search_reply() {
        let full = ItemMeta {
            id: "p1".into(),
            labels: vec!["toxic".into()],
            scores: vec![0.25, 0.5],
            text: Some("hello".into()),
            image: Some("img/1.png".into()),
        };
        let bare = ItemMeta {
            id: "p2".into(),
            ..ItemMeta::default()
        };
        let r = row(&[0.6, 0.8], &full).unwrap();
        assert!(
            r.starts_with(r#"{"vector":[0.6,0.8],"vigil_id":"p1","#),
            "{r}"
        );
        let b = row(&[1.0, 0.0], &bare).unwrap();
        assert_eq!(b, r#"{"vector":[1.0,0.0],"vigil_id":"p2"}"#);
        let body = insert_body("bank", &[r, b]);
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["collectionName"], "bank");
        assert_eq!(parsed["data"][1]["vigil_id"], "p2");
        // What Milvus sends back: the dynamic fields, the pk and the distance; hits
        // come sorted, each id once (the nearer row of a duplicate).
        let mut reply = vec![];
        for (m, d, pk) in [(&bare, 0.5, "7"), (&full, 0.9, "8"), (&bare, 0.1, "9")] {
            let mut hit: Value = serde_json::from_str(&row(&[], m).unwrap()).unwrap();
            hit.as_object_mut().unwrap().remove("vector");
            hit["distance"] = json!(d);
            hit["pk"] = json!(pk);
            hit["id"] = json!(pk);
            reply.push(hit);
        }
        let hits = hits_of(Value::Array(reply.clone()), 10).unwrap();
        assert_eq!(hits, vec![(full.clone(), 0.9), (bare.clone(), 0.5)]);
        assert_eq!(hits_of(Value::Array(reply), 1).unwrap().len(), 1);
        let e = hits_of(json!([{"distance": 1.0, "pk": "1"}]), 1).unwrap_err();
        assert!(e.contains("vigil_id"), "{e}");
        let e = hits_of(
            json!([{"distance": 1.0, "vigil_id": "a", "labels": [1]}]),
            1,
        )
        .unwrap_err();
        assert!(e.contains("labels"), "{e}");
        assert!(hits_of(json!({}), 1).is_err());
        let search: Value =
            serde_json::from_str(&search_body("bank", &[0.6, 0.8], 7).unwrap()).unwrap();
        assert_eq!(search["limit"], 7);
        assert_eq!(search["outputFields"][0], "vigil_id");
    }

    #[test]
    fn insert_ids_and_counts_are_read_as_milvus_writes_them() {
        let data = json!({"insertCount": 2, "insertIds": ["470991351649927215", 12]});
        assert_eq!(
            inserted_pks(&data, 2).unwrap(),
            vec![470991351649927215, 12]
        );
        assert!(
            inserted_pks(&data, 3)
                .unwrap_err()
                .contains("3 rows sent, 2")
        );
        assert!(inserted_pks(&json!({}), 1).is_err());
        assert_eq!(count_of(&json!([{"count(*)": "2000"}])), Some(2000));
        assert_eq!(count_of(&json!([{"count(*)": 5}])), Some(5));
        assert_eq!(count_of(&json!([])), None);
    }

    #[test]
    fn the_manifest_is_the_collection_s_description() {
        let m = manifest(32);
        let body = create_body("bank", &m).unwrap();
        assert_eq!(body["dimension"], 32);
        assert_eq!(body["metricType"], "IP");
        let describe = |description: &Value, ty: &str| {
            json!({
                "collectionName": "bank",
                "description": description,
                "fields": [
                    {"autoId": true, "name": "pk", "primaryKey": true, "type": "Int64"},
                    {"autoId": false, "name": "vector", "primaryKey": false, "type": ty},
                ],
                "load": "LoadStateLoaded",
            })
        };
        let d = describe(&body["description"], "FloatVector(32)");
        assert_eq!(manifest_of(&d, "milvus://h:1/bank").unwrap(), m);
        let e = manifest_of(&describe(&body["description"], "FloatVector(8)"), "loc").unwrap_err();
        assert!(e.to_string().contains("8 dimensions"), "{e}");
        let e = manifest_of(
            &describe(&json!("someone else's"), "FloatVector(32)"),
            "milvus://h:1/x",
        )
        .unwrap_err();
        assert!(matches!(e, RecallError::Damaged { .. }));
        assert!(e.to_string().starts_with("index milvus://h:1/x: "), "{e}");
        let mut old = m.clone();
        old.format = FORMAT + 1;
        let d = describe(
            &json!(serde_json::to_string(&old).unwrap()),
            "FloatVector(32)",
        );
        assert!(
            manifest_of(&d, "loc")
                .unwrap_err()
                .to_string()
                .contains("format")
        );
    }
}
