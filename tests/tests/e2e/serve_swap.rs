//! The swap under load: `vigil serve` answers a client loop (8 concurrent
//! clients, bounded in count and time) while a real `vigil launch` with the
//! champion/challenger gate publishes a better version over a deliberately weak
//! champion. No request fails, every response names version 1 or 2, every
//! request sent after the server logged the swap is answered by version 2, and a
//! damaged version 3 (a hand-corrupted weights file under a valid manifest) is
//! never served.

use crate::serve_util;
use crate::util;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_util::{Served, infer_body, request, rows};

const CLIENTS: usize = 8;
const PER_CLIENT: usize = 5000;
const LOOP_LIMIT: Duration = Duration::from_secs(420);

/// `vigil launch` of tiny with the gate into `export`; returns export-decision.json.
fn launch(run: &Path, export: &Path, steps: u32) -> Value {
    let e = format!("export.dir={}", export.display());
    let s = format!("train.max_steps={steps}");
    let overrides = [
        e.as_str(),
        s.as_str(),
        "train.epochs=10",
        "train.eval_every=null",
        "checkpoint.every_steps=null",
        "logging.histogram_every=null",
        "export.gate={metric: val/macro_auroc, min_delta: 0.001}",
    ];
    let mut cmd = util::tiny_launch(run, 1, &overrides);
    let out = util::run_with_timeout(&mut cmd, Duration::from_secs(400));
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "vigil launch failed\n{so}\n{se}");
    serde_json::from_str(&std::fs::read_to_string(run.join("export-decision.json")).unwrap())
        .unwrap()
}

struct Outcome {
    sent: Instant,
    status: u16,
    version: Option<String>,
    body: String,
}

#[test]
fn a_better_version_published_under_load_is_swapped_in_with_no_failed_request() {
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-swap");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let export = root.join("repo");
    let weak = launch(&root.join("weak"), &export, 3);
    assert_eq!(weak["published_version"], 1, "{weak}");

    let repo = export.display().to_string();
    let s = Served::start(
        &[
            "--model-repository",
            &repo,
            "--model",
            "tiny",
            "--poll-secs",
            "0.2",
            "--threads",
            "2",
            "--queue-bound",
            "64",
            "--max-batch",
            "32",
            "--max-delay-ms",
            "5",
        ],
        Duration::from_secs(60),
    );
    let addr = s.addr;
    let body = infer_body(&rows(
        &util::repo_root().join("datasets/sample/val.jsonl"),
        2,
    ))
    .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, outcomes, body) = (stop.clone(), outcomes.clone(), body.clone());
            std::thread::spawn(move || {
                for _ in 0..PER_CLIENT {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > LOOP_LIMIT {
                        break;
                    }
                    let sent = Instant::now();
                    let o = match request(
                        addr,
                        "POST",
                        "/v2/models/tiny/infer",
                        &[],
                        body.as_bytes(),
                    ) {
                        Ok(r) => Outcome {
                            sent,
                            status: r.status,
                            version: serde_json::from_slice::<Value>(&r.body)
                                .ok()
                                .and_then(|v| v["model_version"].as_str().map(str::to_string)),
                            body: String::from_utf8_lossy(&r.body).into_owned(),
                        },
                        Err(e) => Outcome {
                            sent,
                            status: 0,
                            version: None,
                            body: e.to_string(),
                        },
                    };
                    outcomes.lock().unwrap().push(o);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();

    let better = launch(&root.join("better"), &export, 80);
    assert_eq!(better["published"], true, "{better}");
    assert_eq!(better["published_version"], 2, "{better}");
    let swapped = s.wait_for_log(
        "swapped: serving version 2 (was 1)",
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(1));

    // A damaged version 3: version 2's files with the weights flipped, its
    // manifest intact, moved into place whole (as a writer would).
    let tiny = export.join("tiny");
    let staging = tiny.join(".damaged");
    std::fs::create_dir_all(&staging).unwrap();
    for entry in std::fs::read_dir(tiny.join("2")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), staging.join(entry.file_name())).unwrap();
    }
    let weights = staging.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0xff);
    std::fs::write(&weights, bytes).unwrap();
    std::fs::rename(&staging, tiny.join("3")).unwrap();
    s.wait_for_log("ignoring damaged version 3", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

    let outcomes = outcomes.lock().unwrap();
    let log = s.log_text();
    assert!(
        outcomes.len() >= 100,
        "only {} requests ran",
        outcomes.len()
    );
    for o in outcomes.iter() {
        assert_eq!(o.status, 200, "a request failed: {}\n{log}", o.body);
        let v = o.version.as_deref().unwrap();
        assert!(v == "1" || v == "2", "version {v}");
        if o.sent > swapped {
            assert_eq!(
                v, "2",
                "a request sent after the swap was logged got version {v}"
            );
        }
    }
    let on = |v: &str| {
        outcomes
            .iter()
            .filter(|o| o.version.as_deref() == Some(v))
            .count()
    };
    let after = outcomes.iter().filter(|o| o.sent > swapped).count();
    eprintln!(
        "{} requests: {} on version 1, {} on version 2 ({after} sent after the swap)",
        outcomes.len(),
        on("1"),
        on("2")
    );
    assert!(on("1") > 0 && on("2") > 0 && after > 0);
    assert!(
        !log.contains("loading version 3") && !log.contains("serving version 3"),
        "{log}"
    );
}
