//! `vigil serve --recall-index` in process: a tiny text model (random weights,
//! published as an export version), its index built with `vigil_recall` from the
//! vectors `vigil embed` writes (what `vigil index build --model` does), and the
//! server on `127.0.0.1:0` answering the recall model `tiny-recall`.
//!
//! - The rows' own ids come back nearest; an oversize `k` is a 400 naming the
//!   limit; auth and `/metrics` apply; without `--recall-index` the model is unknown.
//! - Under a client loop that never stops: a new model version without an index
//!   keeps the old pair; its index swaps both in; an index-only change swaps alone;
//!   no request fails and no response mixes a model with another model's index.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_config::RunConfig;
use vigil_export::{ServingInfo, VersionFiles};
use vigil_model::ModerationModel;
use vigil_model::backend::CpuBackend;
use vigil_recall::manifest::{EmbeddingSource, ModelRef, SourceKind};
use vigil_recall::vectors::read_jsonl;
use vigil_recall::{Bank, HnswParams, IndexRepo, ItemMeta};
use vigil_server::{Limits, RecallServe, ServeOptions, Server, Token};
use vigil_store::repo::ModelRepo;
use vigil_store::storage::Location;

const TOKEN: &str = "s3cret";
const ROWS: usize = 12;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/server sits two levels down")
        .to_path_buf()
}

/// A tiny text-only model's config (scratch encoder, the sample's tokenizer).
fn config() -> RunConfig {
    let tokenizer = repo_root().join("datasets/sample/tokenizer.json");
    let yaml = format!(
        "run: {{name: recall-serve}}\n\
         model:\n  labels: [hate, spam]\n  \
         text: {{encoder: scratch, tokenizer: '{}', hidden: 16, layers: 1, heads: 2, dropout: 0.0}}\n  \
         fusion: {{dim: 16}}\n  head: {{hidden: [], dropout: 0.0}}\n\
         data: {{train: x.jsonl, val: x.jsonl, max_text_len: 32}}\n",
        tokenizer.display()
    );
    RunConfig::from_yaml(&yaml, Path::new("recall-serve.yaml"), &[], &|_| None).unwrap()
}

/// Publishes a freshly initialised model as the next version of `export/tiny`.
fn publish_model(export: &Path, step: u64) -> u64 {
    let cfg = config();
    let device = Default::default();
    let loaded =
        ModerationModel::<CpuBackend>::from_config(&cfg.model, &cfg.data, &device).unwrap();
    let staging = export.join(format!(".files-{step}"));
    loaded
        .model
        .write_model_files(&staging, &cfg.model, &cfg.data, loaded.tokenizer.as_ref())
        .unwrap();
    let mut files = Vec::new();
    for e in std::fs::read_dir(&staging).unwrap() {
        let e = e.unwrap();
        files.push((
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        ));
    }
    std::fs::remove_dir_all(&staging).unwrap();
    let info = ServingInfo {
        run: cfg.run.name.clone(),
        step,
        labels: cfg.model.labels.clone(),
        task: cfg.model.task,
        max_text_len: cfg.data.max_text_len,
        image_size: cfg.data.image_size,
        image_transform: cfg.data.image_transform.unwrap_or_default(),
        has_tokenizer: true,
        pad_to_max_len: false,
    };
    let thresholds: Vec<(String, f32)> =
        cfg.model.labels.iter().map(|l| (l.clone(), 0.5)).collect();
    let built = VersionFiles::build(files, &info, &thresholds, &BTreeMap::new()).unwrap();
    let repo = ModelRepo::new(export, "tiny").unwrap();
    repo.publish(&built.files, json!({ "step": step }))
        .unwrap()
        .version
}

/// The sample's first `ROWS` texts as `{"id", "text"}` rows.
fn rows(dir: &Path) -> (PathBuf, Vec<(String, String)>) {
    let text = std::fs::read_to_string(repo_root().join("datasets/sample/val.jsonl")).unwrap();
    let rows: Vec<(String, String)> = text
        .lines()
        .take(ROWS)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let path = dir.join("rows.jsonl");
    let lines: Vec<String> = rows
        .iter()
        .map(|(id, text)| json!({ "id": id, "text": text }).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, rows)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Embeds `rows` with model `version` as `vigil index build --model` does and
/// returns the bank (not yet published).
fn build_bank(export: &Path, version: u64, rows: &Path) -> Bank {
    let dir = export.join("tiny").join(version.to_string());
    let mut out = Vec::new();
    let opts = vigil_infer::EmbedOptions {
        source: vigil_infer::EmbedSource::Model(dir.clone()),
        input: rows.to_path_buf(),
        batch_size: 5,
        max_text_len: 128,
        image_size: 224,
        threads: 1,
        scores: true,
    };
    vigil_infer::cpu::embed(&opts, &mut out).unwrap();
    let file = rows.with_extension(format!("v{version}.embed.jsonl"));
    std::fs::write(&file, out).unwrap();
    let embedded = read_jsonl(&file, "embedding").unwrap();
    let labels: Vec<String> = embedded.scores[0].keys().cloned().collect();
    let texts: BTreeMap<String, String> = std::fs::read_to_string(rows)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().into(),
                v["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    let items = embedded
        .vectors
        .ids
        .iter()
        .zip(&embedded.scores)
        .map(|(id, scores)| ItemMeta {
            id: id.clone(),
            scores: labels.iter().map(|l| scores[l]).collect(),
            text: texts.get(id).cloned(),
            ..ItemMeta::default()
        })
        .collect();
    let source = EmbeddingSource {
        kind: SourceKind::Model,
        field: "embedding".into(),
        model: Some(ModelRef {
            name: "tiny".into(),
            version,
            location: export.join("tiny").display().to_string(),
            manifest_sha256: sha256_hex(&std::fs::read(dir.join("MANIFEST.json")).unwrap()),
        }),
        text_encoder: None,
        image_encoder: None,
        max_text_len: None,
        image_size: None,
    };
    Bank::build(
        source,
        labels,
        HnswParams::default(),
        &embedded.vectors,
        items,
        1,
    )
    .unwrap()
}

fn index_repo(export: &Path) -> Location {
    Location::Local(export.join("tiny-recall"))
}

/// A server over `export/tiny` on a port of its own, stopped when dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn start(export: &Path, recall: Option<RecallServe>, limits: Limits) -> Self {
        let opts = ServeOptions {
            model_dir: Location::Local(export.join("tiny")),
            model_name: "tiny".into(),
            version: None,
            poll: Duration::from_millis(100),
            max_batch: 8,
            max_delay: Duration::from_millis(2),
            threads: 2,
            limits,
            token: Some(Token::parse(TOKEN.as_bytes()).unwrap()),
            drain: Duration::from_secs(2),
        };
        let server = Server::start_with_recall(opts, recall).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            server
                .serve(listener, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            stop: Some(tx),
            runtime: Some(runtime),
            done: Some(done),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let (Some(rt), Some(done)) = (self.runtime.take(), self.done.take()) {
            let _ =
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), done).await });
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

struct Reply {
    status: u16,
    body: Value,
    text: String,
}

/// One HTTP/1.1 request (`Connection: close`), with the token unless `auth` is false.
fn request(addr: SocketAddr, method: &str, path: &str, body: &Value, auth: bool) -> Reply {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if auth {
        head.push_str(&format!("Authorization: Bearer {TOKEN}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut payload = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    let text = String::from_utf8_lossy(&payload).into_owned();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
    out
}

fn recall_body(texts: &[&str], k: Option<u64>) -> Value {
    let mut v = json!({
        "id": "q",
        "inputs": [{ "name": "text", "datatype": "BYTES", "shape": [texts.len()], "data": texts }],
    });
    if let Some(k) = k {
        v["parameters"] = json!({ "k": k });
    }
    v
}

fn output<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {v}"))
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn recall_returns_the_rows_own_ids_within_the_limits_and_the_auth_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path();
    let v1 = publish_model(export, 1);
    let (rows_file, rows) = rows(export);
    let bank = build_bank(export, v1, &rows_file);
    IndexRepo::create(&index_repo(export))
        .unwrap()
        .publish(&bank)
        .unwrap();

    let limits = Limits {
        max_rows: ROWS,
        ..Limits::default()
    };
    let recall = RecallServe {
        index: index_repo(export),
        max_k: 5,
        ef_search: None,
    };
    let s = Running::start(export, Some(recall), limits.clone());
    let texts: Vec<&str> = rows.iter().map(|(_, t)| t.as_str()).collect();

    let r = request(
        s.addr,
        "POST",
        "/v2/models/tiny-recall/infer",
        &recall_body(&texts, Some(3)),
        true,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["model_name"], "tiny-recall");
    assert_eq!(r.body["model_version"], "1", "the index version");
    assert_eq!(r.body["id"], "q");
    assert_eq!(r.body["parameters"]["embedding_model_version"], "1");
    let ids = output(&r.body, "ids");
    assert_eq!(ids["shape"], json!([ROWS, 3]));
    let sims = output(&r.body, "similarity")["data"].as_array().unwrap();
    let scores = output(&r.body, "score")["data"].as_array().unwrap();
    let label = r.body["parameters"]["label"].as_str().unwrap();
    let l = bank
        .manifest()
        .labels
        .iter()
        .position(|x| x == label)
        .unwrap();
    for (row, (id, _)) in rows.iter().enumerate() {
        assert_eq!(ids["data"][row * 3], json!(id), "row {row}: {}", r.text);
        let sim = sims[row * 3].as_f64().unwrap();
        assert!(sim > 0.999, "row {row}: similarity {sim}");
        let stored = bank.get(id).unwrap().meta.scores[l];
        assert!((scores[row * 3].as_f64().unwrap() - f64::from(stored)).abs() < 1e-6);
    }

    // The binary form and the other label.
    let mut b = recall_body(&texts[..2], Some(1));
    b["parameters"]["binary_data_output"] = json!(true);
    b["parameters"]["label"] = json!(bank.manifest().labels[1]);
    let r = request(
        s.addr,
        "POST",
        "/v2/models/tiny-recall/versions/1/infer",
        &b,
        true,
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Over the limits: k past --recall-max-k, rows past --max-rows, an unknown label.
    let r = request(
        s.addr,
        "POST",
        "/v2/models/tiny-recall/infer",
        &recall_body(&texts, Some(6)),
        true,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("k 6 exceeds the limit 5 (--recall-max-k)"),
        "{}",
        r.text
    );
    let many: Vec<&str> = texts.iter().chain(&texts[..1]).copied().collect();
    let r = request(
        s.addr,
        "POST",
        "/v2/models/tiny-recall/infer",
        &recall_body(&many, None),
        true,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("--max-rows 12"), "{}", r.text);
    let mut b = recall_body(&texts[..1], None);
    b["parameters"] = json!({ "label": "nope" });
    let r = request(s.addr, "POST", "/v2/models/tiny-recall/infer", &b, true);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("not a label of the index"), "{}", r.text);
    let r = request(
        s.addr,
        "POST",
        "/v2/models/tiny-recall/versions/9/infer",
        &recall_body(&texts[..1], None),
        true,
    );
    assert_eq!(r.status, 404, "{}", r.text);

    // Auth applies as to the model.
    let r = request(
        s.addr,
        "POST",
        "/v2/models/tiny-recall/infer",
        &recall_body(&texts[..1], None),
        false,
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let r = request(s.addr, "GET", "/v2/models/tiny-recall", &Value::Null, false);
    assert_eq!(r.status, 401, "{}", r.text);

    // Metadata, readiness, and the model itself unchanged.
    let r = request(s.addr, "GET", "/v2/models/tiny-recall", &Value::Null, true);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["versions"], json!(["1"]));
    assert_eq!(r.body["parameters"]["embedding_model_version"], "1");
    assert_eq!(r.body["parameters"]["k"], json!({ "default": 5, "max": 5 }));
    assert_eq!(r.body["parameters"]["items"], ROWS);
    let r = request(
        s.addr,
        "GET",
        "/v2/models/tiny-recall/ready",
        &Value::Null,
        true,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let infer = json!({"inputs": [{ "name": "text", "datatype": "BYTES", "shape": [1], "data": [texts[0]] }]});
    let r = request(s.addr, "POST", "/v2/models/tiny/infer", &infer, true);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(output(&r.body, "scores")["shape"], json!([1, 2]));

    // /metrics counts the recall model's requests and times them under its name.
    let r = request(s.addr, "GET", "/metrics", &Value::Null, true);
    for line in [
        "vigil_serve_requests_total{endpoint=\"recall\",code=\"200\"} 2",
        "vigil_serve_requests_total{endpoint=\"recall\",code=\"400\"} 3",
        "vigil_serve_requests_total{endpoint=\"recall\",code=\"401\"} 1",
        "vigil_serve_request_duration_seconds_count{model=\"tiny-recall\"} 7",
        "vigil_serve_model_version{model=\"tiny-recall\"} 1",
    ] {
        assert!(
            r.text.lines().any(|l| l == line),
            "{line} missing:\n{}",
            r.text
        );
    }
    drop(s);

    // Without --recall-index the recall model is unknown.
    let s = Running::start(export, None, limits);
    let r = request(
        s.addr,
        "POST",
        "/v2/models/tiny-recall/infer",
        &recall_body(&texts[..1], None),
        true,
    );
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.text.contains("unknown model 'tiny-recall'"), "{}", r.text);
}

/// What one recall request of the client loop saw.
#[derive(Debug, Clone)]
struct Seen {
    client: usize,
    status: u16,
    index: String,
    model: String,
    top: String,
    text: String,
}

#[test]
fn the_index_swaps_with_its_model_version_under_load_with_no_failed_request() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path();
    let v1 = publish_model(export, 1);
    let (rows_file, rows) = rows(export);
    let repo = IndexRepo::create(&index_repo(export)).unwrap();
    let recall = RecallServe {
        index: index_repo(export),
        max_k: 10,
        ef_search: Some(64),
    };
    let s = Running::start(export, Some(recall), Limits::default());
    let addr = s.addr;
    let query = rows[0].1.clone();
    let body = recall_body(&[&query], Some(2));

    // No index for the served version yet: the recall model is not ready.
    let r = request(addr, "POST", "/v2/models/tiny-recall/infer", &body, true);
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        r.text.contains("no recall index is loaded for version 1"),
        "{}",
        r.text
    );
    let r = request(
        addr,
        "GET",
        "/v2/models/tiny-recall/ready",
        &Value::Null,
        true,
    );
    assert_eq!(r.status, 503, "{}", r.text);
    let (i1, _) = repo.publish(&build_bank(export, v1, &rows_file)).unwrap();
    wait_for("the first index", Duration::from_secs(30), || {
        request(addr, "POST", "/v2/models/tiny-recall/infer", &body, true).status == 200
    });

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let clients: Vec<_> = (0..3)
        .map(|client| {
            let (stop, seen, body) = (stop.clone(), seen.clone(), body.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(240)
                {
                    let r = request(addr, "POST", "/v2/models/tiny-recall/infer", &body, true);
                    let ids = r.body["outputs"]
                        .as_array()
                        .and_then(|o| o.iter().find(|o| o["name"] == "ids"));
                    seen.lock().unwrap().push(Seen {
                        client,
                        status: r.status,
                        index: r.body["model_version"].as_str().unwrap_or_default().into(),
                        model: r.body["parameters"]["embedding_model_version"]
                            .as_str()
                            .unwrap_or_default()
                            .into(),
                        top: ids
                            .and_then(|o| o["data"][0].as_str())
                            .unwrap_or_default()
                            .into(),
                        text: r.text,
                    });
                }
            })
        })
        .collect();
    let last = |seen: &Arc<Mutex<Vec<Seen>>>| seen.lock().unwrap().last().cloned();
    let count = |seen: &Arc<Mutex<Vec<Seen>>>| seen.lock().unwrap().len();
    wait_for(
        "requests on the first pair",
        Duration::from_secs(30),
        || count(&seen) > 20,
    );

    // A new model version without an index: the pair stays, model included.
    let v2 = publish_model(export, 2);
    std::thread::sleep(Duration::from_millis(1500));
    let infer =
        json!({"inputs": [{ "name": "text", "datatype": "BYTES", "shape": [1], "data": [query] }]});
    let r = request(addr, "POST", "/v2/models/tiny/infer", &infer, true);
    assert_eq!(r.body["model_version"], "1", "held: {}", r.text);
    let held = last(&seen).unwrap();
    assert_eq!(
        (held.index.as_str(), held.model.as_str()),
        ("1", "1"),
        "{}",
        held.text
    );

    // Its index: both swap as one.
    let (i2, _) = repo.publish(&build_bank(export, v2, &rows_file)).unwrap();
    wait_for("the second pair", Duration::from_secs(60), || {
        last(&seen).is_some_and(|s| s.index == i2.to_string())
    });
    let r = request(addr, "POST", "/v2/models/tiny/infer", &infer, true);
    assert_eq!(r.body["model_version"], "2", "{}", r.text);

    // An index-only change for the served model (`vigil index delete`): alone.
    let mut bank = repo.load(Some(i2), None, 1).unwrap().bank;
    bank.delete(&[rows[0].0.clone()]).unwrap();
    let (i3, _) = repo.publish(&bank).unwrap();
    wait_for("the third index", Duration::from_secs(60), || {
        last(&seen).is_some_and(|s| s.index == i3.to_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

    let seen = seen.lock().unwrap();
    let pairs = [
        (i1.to_string(), v1.to_string()),
        (i2.to_string(), v2.to_string()),
        (i3.to_string(), v2.to_string()),
    ];
    let mut on = [0usize; 3];
    let mut latest = [0usize; 3];
    for s in seen.iter() {
        assert_eq!(s.status, 200, "a request failed: {}", s.text);
        let which = pairs
            .iter()
            .position(|(i, m)| *i == s.index && *m == s.model)
            .unwrap_or_else(|| panic!("index {} with model {}: {}", s.index, s.model, s.text));
        on[which] += 1;
        // Each client's requests follow one another: once a newer pair answered
        // it, an older one never does again.
        assert!(
            which >= latest[s.client],
            "client {} went back to pair {which}",
            s.client
        );
        latest[s.client] = which;
        // The deleted row never comes back from the index it was deleted from.
        if which == 2 {
            assert_ne!(s.top, rows[0].0, "{}", s.text);
        } else {
            assert_eq!(s.top, rows[0].0, "{}", s.text);
        }
    }
    eprintln!(
        "{} recall requests: {on:?} on (index, model) {pairs:?}",
        seen.len()
    );
    assert!(on.iter().all(|&n| n > 0), "{on:?}");
}
