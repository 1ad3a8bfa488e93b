//! `vigil serve` over real HTTP with the real binary: metadata and readiness, infer
//! in the JSON and the binary form with scores equal to `vigil predict`'s, every
//! bad input a 400 naming the input and row, an oversized body 413, overload 503
//! with Retry-After, a pinned version, the bearer token, and SIGTERM draining the
//! requests in flight. Two runs of `configs/tiny.yaml` publish versions 1 and 2
//! into one repository, built once for every test here.

use crate::serve_util;
use crate::util;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use serve_util::{Row, Served, get, infer_body, json_scores, post_json, request, rows};

const START: Duration = Duration::from_secs(60);
const LABELS: usize = util::TINY_LABELS.len();
const VAL: &str = "datasets/sample/val.jsonl";
const INFER: &str = "/v2/models/tiny/infer";

struct Fixture {
    root: PathBuf,
    /// `<root>/repo`: the export dir, holding the model directory `tiny`.
    export: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-http");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let export = root.join("repo");
        for (run, extra) in [("run-1", "run.seed=7"), ("run-2", "run.seed=11")] {
            let e = format!("export.dir={}", export.display());
            let overrides = [
                e.as_str(),
                extra,
                "train.max_steps=20",
                "train.eval_every=null",
                "checkpoint.every_steps=null",
                "logging.histogram_every=null",
            ];
            let mut cmd = util::tiny_launch(&root.join(run), 1, &overrides);
            let out = util::run_with_timeout(&mut cmd, Duration::from_secs(240));
            let (so, se) = util::texts(&out);
            assert!(out.status.success(), "vigil launch failed\n{so}\n{se}");
        }
        assert!(export.join("tiny/2/MANIFEST.json").is_file());
        Fixture { root, export }
    })
}

fn serve(extra: &[&str]) -> Served {
    let f = fixture();
    let repo = f.export.display().to_string();
    let mut args = vec!["--model-repository", repo.as_str(), "--poll-secs", "0.2"];
    args.extend_from_slice(extra);
    Served::start(&args, START)
}

/// Writes `rows` as a dataset file beside copies of their images; returns it.
fn write_rows(dir: &Path, rows: &[Row]) -> PathBuf {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut text = String::new();
    for (i, r) in rows.iter().enumerate() {
        let mut v = json!({ "id": r.id });
        if let Some(t) = &r.text {
            v["text"] = json!(t);
        }
        if let Some(img) = &r.image {
            let rel = format!("img/{i}.png");
            std::fs::write(dir.join(&rel), img).unwrap();
            v["image"] = json!(rel);
        }
        text.push_str(&format!("{v}\n"));
    }
    let file = dir.join("rows.jsonl");
    std::fs::write(&file, text).unwrap();
    file
}

/// Four validation rows: both modalities, text only, image only, both.
fn mixed_rows() -> Vec<Row> {
    let mut r = rows(&util::repo_root().join(VAL), 4);
    r[1].image = None;
    r[2].text = None;
    r
}

/// `vigil predict` of `file` on `version`: id → scores in label order.
fn predict(file: &Path, version: u64) -> HashMap<String, Vec<f64>> {
    let mut cmd = util::vigil();
    cmd.arg("predict")
        .arg("--model")
        .arg(fixture().export.join("tiny"))
        .args(["--version", &version.to_string()])
        .arg("--input")
        .arg(file);
    let out = util::run_with_timeout(&mut cmd, Duration::from_secs(60));
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "vigil predict failed\n{se}");
    so.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let scores = util::TINY_LABELS
                .iter()
                .map(|k| v["scores"][k].as_f64().unwrap())
                .collect();
            (v["id"].as_str().unwrap().to_string(), scores)
        })
        .collect()
}

fn assert_close(got: &[Vec<f64>], ids: &[String], want: &HashMap<String, Vec<f64>>) {
    assert_eq!(got.len(), ids.len());
    for (row, id) in got.iter().zip(ids) {
        for (g, w) in row.iter().zip(&want[id]) {
            assert!((g - w).abs() <= 1e-5, "row {id}: served {g} vs predict {w}");
        }
    }
}

#[test]
fn metadata_readiness_and_scores_equal_predict_in_json_and_binary_form() {
    let s = serve(&[]);
    let a = s.addr;
    assert_eq!(get(a, "/v2/health/live").status, 200);
    assert_eq!(get(a, "/v2/health/ready").status, 200);
    let meta = get(a, "/v2").json();
    assert_eq!(meta["extensions"], json!(["binary_tensor_data"]));
    let m = get(a, "/v2/models/tiny");
    assert_eq!(m.status, 200);
    let m = m.json();
    assert_eq!(m["versions"], json!(["2"]), "{m}");
    assert_eq!(m["inputs"][0]["name"], "text");
    assert_eq!(m["inputs"][1]["name"], "image");
    assert_eq!(
        m["outputs"][0],
        json!({"name": "scores", "datatype": "FP32", "shape": [-1, 5]})
    );
    assert_eq!(m["outputs"][1]["datatype"], "BOOL");
    assert_eq!(get(a, "/v2/models/tiny/ready").status, 200);
    assert_eq!(get(a, "/v2/models/tiny/versions/2/ready").status, 200);
    let nope = get(a, "/v2/models/other");
    assert_eq!(nope.status, 404);
    assert!(
        nope.json()["error"]
            .as_str()
            .unwrap()
            .contains("serves 'tiny'")
    );

    let rows = mixed_rows();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let file = write_rows(&fixture().root.join("mixed"), &rows);
    let want = predict(&file, 2);

    // JSON form.
    let r = post_json(a, INFER, &infer_body(&rows));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["model_version"], "2");
    assert_eq!(v["id"], "req-1");
    assert_close(&json_scores(&v, LABELS), &ids, &want);
    let dec = v["outputs"][1]["data"].as_array().unwrap();
    assert_eq!(dec.len(), rows.len() * LABELS);

    // Binary form, as tritonclient sends it: raw BYTES inputs, raw outputs.
    let empty = Vec::new();
    let texts = vigil_text(&rows);
    let text = serve_util_join(texts.iter().map(|t| t.as_bytes()));
    let image = serve_util_join(
        rows.iter()
            .map(|r| r.image.as_ref().unwrap_or(&empty).as_slice()),
    );
    let head = json!({
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [rows.len()],
             "parameters": {"binary_data_size": text.len()}},
            {"name": "image", "datatype": "BYTES", "shape": [rows.len()],
             "parameters": {"binary_data_size": image.len()}},
        ],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let mut body = head.clone().into_bytes();
    body.extend_from_slice(&text);
    body.extend_from_slice(&image);
    let hl = ("Inference-Header-Content-Length", head.len().to_string());
    let r = request(a, "POST", "/v2/models/tiny/versions/2/infer", &[hl], &body).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let json_len: usize = r
        .header("inference-header-content-length")
        .unwrap()
        .parse()
        .unwrap();
    let v: Value = serde_json::from_slice(&r.body[..json_len]).unwrap();
    assert_eq!(
        v["outputs"][0]["parameters"]["binary_data_size"],
        rows.len() * LABELS * 4
    );
    let raw = &r.body[json_len..];
    let floats: Vec<f64> = raw[..rows.len() * LABELS * 4]
        .chunks(4)
        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
        .collect();
    let got: Vec<Vec<f64>> = floats.chunks(LABELS).map(<[f64]>::to_vec).collect();
    assert_close(&got, &ids, &want);
    assert_eq!(
        raw.len(),
        rows.len() * LABELS * 5,
        "FP32 scores then one byte per decision"
    );

    // The JSON convenience endpoint returns `vigil predict`'s objects.
    let b64 = base64::engine::general_purpose::STANDARD;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| json!({"id": r.id, "text": r.text, "image_base64": r.image.as_ref().map(|i| b64.encode(i))}))
        .collect();
    let r = post_json(a, "/v1/moderate", &json!({ "items": items }));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let results = r.json()["results"].as_array().unwrap().clone();
    let got: Vec<Vec<f64>> = results
        .iter()
        .map(|o| {
            util::TINY_LABELS
                .iter()
                .map(|k| o["scores"][k].as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_close(&got, &ids, &want);
    assert_eq!(results[0]["version"], 2);

    let reply = get(a, "/metrics");
    // The Prometheus text format 0.0.4, not OpenMetrics (prometheus-client does both).
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let metrics = String::from_utf8(reply.body).unwrap();
    assert!(!metrics.contains("# EOF"), "{metrics}");
    for needle in [
        "# TYPE vigil_serve_requests_total counter",
        "# TYPE vigil_serve_request_duration_seconds histogram",
        "vigil_serve_requests_total{endpoint=\"infer\",code=\"200\"} 2",
        "vigil_serve_model_version{model=\"tiny\"} 2",
        "vigil_serve_batch_rows_count{model=\"tiny\"} 3",
        "vigil_serve_queue_depth{model=\"tiny\"} 0",
        "vigil_serve_request_duration_seconds_count{model=\"tiny\"} 3",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
}

fn vigil_text(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|r| r.text.clone().unwrap_or_default())
        .collect()
}

fn serve_util_join<'a>(elements: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

#[test]
fn every_bad_input_is_a_400_naming_input_and_row_and_serving_goes_on() {
    let s = serve(&[
        "--max-rows",
        "8",
        "--max-text-bytes",
        "200",
        "--max-image-pixels",
        "1024",
        "--max-body-bytes",
        "100000",
    ]);
    let a = s.addr;
    let b64 = base64::engine::general_purpose::STANDARD;
    let small_png = {
        // 16×16 fits --max-image-pixels 1024; the sample's 64×64 does not.
        let img = image_png(16);
        b64.encode(img)
    };
    let big_png =
        b64.encode(std::fs::read(util::repo_root().join("datasets/sample/img/00081.png")).unwrap());
    let text = |data: Value, shape: Value| json!({"name": "text", "datatype": "BYTES", "shape": shape, "data": data});
    let image = |data: Value| json!({"name": "image", "datatype": "BYTES", "shape": [data.as_array().unwrap().len()], "data": data});
    let good =
        json!({"inputs": [text(json!(["hello there"]), json!([1])), image(json!([small_png]))]});
    let cases: Vec<Case> = vec![
        (b"{\"inputs\": [".to_vec(), None, None, "malformed JSON"),
        (json!({"inputs": [{"name": "texts", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}).to_string().into_bytes(),
            Some("texts"), None, "unknown input"),
        (json!({"inputs": [{"name": "text", "datatype": "INT32", "shape": [1], "data": [1]}]}).to_string().into_bytes(),
            Some("text"), None, "datatype must be BYTES"),
        (json!({"inputs": [text(json!(["a", "b"]), json!([3]))]}).to_string().into_bytes(),
            Some("text"), None, "shape says 3"),
        (json!({"inputs": [text(json!(["a", "b"]), json!([2])), image(json!(["", "!!not base64!!"]))]}).to_string().into_bytes(),
            Some("image"), Some(1), "bad base64"),
        (json!({"inputs": [text(json!(["a", "b"]), json!([2])), image(json!([small_png, b64.encode(b"plain text, not an image")]))]}).to_string().into_bytes(),
            Some("image"), Some(1), "not a PNG, JPEG or WebP"),
        (json!({"inputs": [text(json!(["a", "b"]), json!([2])), image(json!(["", b64.encode(&image_png(16)[..40])]))]}).to_string().into_bytes(),
            Some("image"), Some(1), "corrupt"),
        (json!({"inputs": [text(json!(["a"]), json!([1])), image(json!([big_png]))]}).to_string().into_bytes(),
            Some("image"), Some(0), "--max-image-pixels 1024"),
        (json!({"inputs": [text(json!(["ok", "x".repeat(300)]), json!([2]))]}).to_string().into_bytes(),
            Some("text"), Some(1), "--max-text-bytes 200"),
        (json!({"inputs": [text(json!(vec!["a"; 9]), json!([9]))]}).to_string().into_bytes(),
            Some("text"), None, "--max-rows 8"),
        (json!({"inputs": [text(json!(["a", "  "]), json!([2]))]}).to_string().into_bytes(),
            Some("text"), Some(1), "neither text nor an image"),
    ];
    for (body, input, row, words) in cases {
        let r = request(a, "POST", INFER, &[], &body).unwrap();
        let shown = String::from_utf8_lossy(&r.body).to_string();
        assert_eq!(r.status, 400, "{words}: {shown}");
        let v = r.json();
        assert_eq!(v["input"].as_str(), input, "{shown}");
        assert_eq!(v["row"].as_u64(), row, "{shown}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(words), "{words}: {msg}");
        if let (Some(i), Some(n)) = (input, row) {
            assert!(msg.contains(&format!("input '{i}' row {n}")), "{msg}");
        }
        let ok = post_json(a, INFER, &good);
        assert_eq!(
            ok.status,
            200,
            "after {words}: {}",
            String::from_utf8_lossy(&ok.body)
        );
    }
    // A binary size past the body, and a bad header length.
    let head = json!({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"binary_data_size": 50}}]})
    .to_string();
    let mut body = head.clone().into_bytes();
    body.extend_from_slice(&serve_util_join([&b"hi"[..]].into_iter()));
    let r = request(
        a,
        "POST",
        INFER,
        &[("Inference-Header-Content-Length", head.len().to_string())],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("binary_data_size 50")
    );
    let r = request(
        a,
        "POST",
        INFER,
        &[("Inference-Header-Content-Length", "-3".into())],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 400);
    // An oversized body: 413, and the server still serves.
    let big = vec![b' '; 200_000];
    let r = request(a, "POST", INFER, &[], &big).unwrap();
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("--max-body-bytes 100000")
    );
    assert_eq!(post_json(a, INFER, &good).status, 200);
    let r = post_json(
        a,
        "/v1/moderate",
        &json!({"items": [{"id": "a", "txt": "x"}]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["row"], 0);
    let metrics = String::from_utf8(get(a, "/metrics").body).unwrap();
    assert!(
        metrics.contains("vigil_serve_requests_total{endpoint=\"infer\",code=\"413\"} 1"),
        "{metrics}"
    );
}

/// A bad body, the input and row its 400 must name, and words of the message.
type Case = (Vec<u8>, Option<&'static str>, Option<u64>, &'static str);

fn image_png(side: u32) -> Vec<u8> {
    // The smallest valid PNG writer we have is the sample's: re-encode a crop.
    let img = image::open(util::repo_root().join("datasets/sample/img/00081.png")).unwrap();
    let crop = img.crop_imm(0, 0, side, side);
    let mut out = std::io::Cursor::new(Vec::new());
    crop.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn overload_answers_503_with_retry_after_and_the_rest_succeed() {
    let s = serve(&[
        "--threads",
        "1",
        "--queue-bound",
        "1",
        "--max-batch",
        "1",
        "--max-delay-ms",
        "0",
    ]);
    let a = s.addr;
    let rows = rows(&util::repo_root().join(VAL), 64);
    let body = infer_body(&rows).to_string();
    let mut saw_503 = false;
    for _attempt in 0..5 {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let body = body.clone();
                std::thread::spawn(move || request(a, "POST", INFER, &[], body.as_bytes()).unwrap())
            })
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            match r.status {
                200 => {}
                503 => {
                    saw_503 = true;
                    assert_eq!(r.header("retry-after"), Some("1"));
                    assert!(
                        r.json()["error"]
                            .as_str()
                            .unwrap()
                            .contains("--queue-bound 1")
                    );
                }
                other => panic!("status {other}: {}", String::from_utf8_lossy(&r.body)),
            }
        }
        if saw_503 {
            break;
        }
    }
    assert!(
        saw_503,
        "16 concurrent requests against a queue of 1 never saw a 503"
    );
    assert_eq!(post_json(a, INFER, &infer_body(&rows[..1])).status, 200);
}

#[test]
fn a_pinned_version_serves_only_itself_and_404s_naming_it() {
    let s = serve(&["--version", "1"]);
    let a = s.addr;
    let body = infer_body(&rows(&util::repo_root().join(VAL), 2));
    let r = post_json(a, "/v2/models/tiny/versions/2/infer", &body);
    assert_eq!(r.status, 404);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("version 2") && msg.contains("loaded version: 1"),
        "{msg}"
    );
    assert_eq!(get(a, "/v2/models/tiny/versions/2").status, 404);
    assert_eq!(get(a, "/v2/models/tiny/versions/2/ready").status, 404);
    let r = post_json(a, "/v2/models/tiny/versions/1/infer", &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model_version"], "1");
    assert_eq!(post_json(a, INFER, &body).json()["model_version"], "1");
    // Pinned: no pickup even though version 2 is newer.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(post_json(a, INFER, &body).json()["model_version"], "1");
    assert!(
        !s.log_text().contains("loading version"),
        "{}",
        s.log_text()
    );
}

#[test]
fn a_bearer_token_is_required_except_by_the_health_probes() {
    let dir = fixture().root.join("auth");
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let t = token.display().to_string();
    let s = serve(&["--auth-token-file", &t]);
    let a = s.addr;
    let body = infer_body(&rows(&util::repo_root().join(VAL), 1)).to_string();
    let r = request(a, "POST", INFER, &[], body.as_bytes()).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let wrong = ("Authorization", "Bearer nope".to_string());
    assert_eq!(
        request(a, "POST", INFER, &[wrong], body.as_bytes())
            .unwrap()
            .status,
        401
    );
    assert_eq!(get(a, "/v2/models/tiny").status, 401);
    assert_eq!(get(a, "/metrics").status, 401);
    let right = ("Authorization", "Bearer s3cret-token".to_string());
    assert_eq!(
        request(
            a,
            "POST",
            INFER,
            std::slice::from_ref(&right),
            body.as_bytes()
        )
        .unwrap()
        .status,
        200
    );
    assert_eq!(
        request(a, "GET", "/v2/models/tiny", &[right], b"")
            .unwrap()
            .status,
        200
    );
    assert_eq!(get(a, "/v2/health/ready").status, 200);
    assert_eq!(get(a, "/v2/health/live").status, 200);
}

#[test]
fn bad_flags_and_files_exit_2_before_listening() {
    let f = fixture();
    let repo = f.export.display().to_string();
    let absent = f.root.join("absent").display().to_string();
    let token = f.root.join("no-token").display().to_string();
    let cases: [(Vec<&str>, &str); 6] = [
        (
            vec!["--model-repository", &absent],
            "cannot read the model repository",
        ),
        (
            vec!["--model-repository", &repo, "--model", "nope"],
            "has no model 'nope'",
        ),
        (
            vec!["--model-repository", &repo, "--max-batch", "0"],
            "--max-batch must be at least 1",
        ),
        (
            vec!["--model-repository", &repo, "--version", "9"],
            "version 9 does not exist",
        ),
        (
            vec!["--model-repository", &repo, "--auth-token-file", &token],
            "--auth-token-file",
        ),
        (
            vec!["--model-repository", &repo, "--drain-secs=-1"],
            "--drain-secs -1: must be 0 or more",
        ),
    ];
    for (args, words) in cases {
        let mut cmd = util::vigil();
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(&args);
        let out = util::run_with_timeout(&mut cmd, Duration::from_secs(60));
        let (_, se) = util::texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {se}");
        assert!(se.contains(words), "{args:?}: {se}");
        assert!(!se.contains("listening"), "{se}");
    }
}

#[test]
fn sigterm_drains_requests_in_flight_then_exits_0() {
    // Requests wait up to 400 ms for a batch, so they are in flight at SIGTERM.
    let mut s = serve(&["--max-delay-ms", "400", "--max-batch", "64"]);
    let a = s.addr;
    let body = infer_body(&rows(&util::repo_root().join(VAL), 2)).to_string();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || request(a, "POST", INFER, &[], body.as_bytes()))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    let code = s.terminate(Duration::from_secs(30));
    for h in handles {
        let r = h.join().unwrap().expect("an in-flight request is answered");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(code, Some(0), "{}", s.log_text());
    let log = s.log_text();
    assert!(
        log.contains("draining") && log.contains("vigil serve: stopped"),
        "{log}"
    );
    // Stopped: the port no longer accepts.
    assert!(request(a, "GET", "/v2/health/live", &[], b"").is_err());
}

#[test]
fn a_client_that_never_finishes_its_request_cannot_hold_sigterm_past_the_drain_deadline() {
    use std::io::Write as _;
    let mut s = serve(&["--drain-secs", "1"]);
    // Headers that promise a body which never comes: graceful shutdown alone
    // would wait for this connection forever.
    let mut stalled = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        stalled,
        "POST {INFER} HTTP/1.1\r\nHost: vigil\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"inputs\""
    )
    .unwrap();
    stalled.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Without the deadline the server would still be running when this limit kills it.
    let code = s.terminate(Duration::from_secs(20));
    let log = s.log_text();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("drain deadline (1.0 s) passed") && log.contains("vigil serve: stopped"),
        "{log}"
    );
    drop(stalled);
}

#[test]
fn a_version_that_verifies_but_fails_to_load_is_logged_and_the_old_one_keeps_serving() {
    use vigil_store::checkpoint::{IfExists, LocalFs, Store};
    let f = fixture();
    let repo = f.root.join("unloadable/tiny");
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).unwrap();
    // Version 1: a copy of the fixture's (its manifest still verifies).
    std::fs::create_dir_all(repo.join("1")).unwrap();
    for entry in std::fs::read_dir(f.export.join("tiny/1")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), repo.join("1").join(entry.file_name())).unwrap();
    }
    let r = repo.display().to_string();
    let s = Served::start(&["--model-repository", &r, "--poll-secs", "0.2"], START);
    let body = infer_body(&rows(&util::repo_root().join(VAL), 1));
    assert_eq!(post_json(s.addr, INFER, &body).json()["model_version"], "1");
    // Version 2: a complete, verified version whose weights are not safetensors.
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(repo.join("1"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "MANIFEST.json")
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = if name == "model.safetensors" {
                b"not a safetensors file".to_vec()
            } else {
                std::fs::read(e.path()).unwrap()
            };
            (name, bytes)
        })
        .collect();
    LocalFs::new(&repo)
        .unwrap()
        .publish("2", &files, json!({ "version": 2 }), IfExists::Fail)
        .unwrap();
    s.wait_for_log(
        "version 2 failed to load, still serving 1",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_millis(600));
    let r = post_json(s.addr, INFER, &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model_version"], "1");
    let log = s.log_text();
    assert_eq!(
        log.matches("failed to load").count(),
        1,
        "logged once:\n{log}"
    );
    let metrics = String::from_utf8(get(s.addr, "/metrics").body).unwrap();
    assert!(
        metrics.contains("vigil_serve_model_load_failures_total{model=\"tiny\"} 1"),
        "{metrics}"
    );
}
