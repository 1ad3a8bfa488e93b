//! `vigil index` and `vigil recall` with the real binary on a tiny trained model:
//! build an index beside the model from its own embeddings and scores, recall from
//! a label and from seed rows (HNSW and exact agree), delete, add, compact, each a
//! new version; bad input exits 2 and publishes nothing; the hits feed `vigil queue`.

use crate::util;

use std::fs;
use std::path::Path;
use std::time::Duration;

use util::{repo_root, run_with_timeout, texts, vigil};

const LIMIT: Duration = Duration::from_secs(300);

fn ok(cmd: &mut std::process::Command) -> (String, String) {
    let out = run_with_timeout(cmd, LIMIT);
    let t = texts(&out);
    assert!(out.status.success(), "{cmd:?} failed\n{}\n{}", t.0, t.1);
    t
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn versions(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    v.sort();
    v
}

fn ids(hits: &[serde_json::Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn index_build_recall_delete_add_compact_on_a_trained_model() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(&mut util::tiny_launch(
        &run,
        1,
        &[
            "checkpoint.every_steps=null",
            "logging.histogram_every=null",
        ],
    ));
    let model = run.join("export/tiny");
    let index = run.join("export/tiny-recall");
    let corpus = repo_root().join("datasets/sample/val.jsonl");

    // Build: every val row, the model's fused vectors and scores.
    let (_, err) = ok(vigil()
        .args(["index", "build", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&corpus)
        .arg("--out")
        .arg(&index)
        .args(["--ef-search", "256"]));
    assert!(err.contains("version 1"), "{err}");
    assert_eq!(versions(&index), vec!["1"]);
    let (info, _) = ok(vigil().args(["index", "info", "--index"]).arg(&index));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let rows = fs::read_to_string(&corpus).unwrap().lines().count() as u64;
    assert_eq!(info["manifest"]["count"], rows);
    assert_eq!(info["manifest"]["embedding"]["kind"], "model");
    assert_eq!(info["manifest"]["embedding"]["model"]["name"], "tiny");
    assert_eq!(info["manifest"]["labels"].as_array().unwrap().len(), 5);

    // Recall from a label: known spam rows are the seeds and never hits.
    let hits_file = dir.path().join("hits.jsonl");
    let page = dir.path().join("hits.html");
    ok(vigil()
        .args(["recall", "--index"])
        .arg(&index)
        .args(["--label", "spam", "--k", "20", "--out"])
        .arg(&hits_file)
        .arg("--html")
        .arg(&page));
    let hits = jsonl(&hits_file);
    assert_eq!(hits.len(), 20);
    let spam_ids: Vec<String> = fs::read_to_string(&corpus)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["labels"]["spam"] == 1)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for w in hits.windows(2) {
        assert!(w[0]["similarity"].as_f64() >= w[1]["similarity"].as_f64());
    }
    for h in &hits {
        assert!(!spam_ids.contains(&h["id"].as_str().unwrap().to_string()));
        assert!(spam_ids.contains(&h["seed"].as_str().unwrap().to_string()));
        assert!(h["score"].as_f64().is_some(), "{h}");
    }
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("Hits (20)") && html.contains(hits[0]["id"].as_str().unwrap()));

    // Exact search gives the same hits on a corpus this small.
    let exact_file = dir.path().join("exact.jsonl");
    ok(vigil()
        .args(["recall", "--index"])
        .arg(&index)
        .args(["--label", "spam", "--k", "20", "--exact", "--out"])
        .arg(&exact_file));
    assert_eq!(ids(&jsonl(&exact_file)), ids(&hits));

    // Seed rows embedded by the index's model: a copy of a corpus row under a new
    // id finds that row first, at similarity 1.
    let first: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&corpus).unwrap().lines().next().unwrap()).unwrap();
    let original = first["id"].as_str().unwrap().to_string();
    let mut probe = first.clone();
    probe["id"] = "probe".into();
    if let Some(img) = first["image"].as_str() {
        // Image paths are relative to the seeds file: copy the image beside it.
        fs::copy(
            corpus.parent().unwrap().join(img),
            dir.path().join("probe.png"),
        )
        .unwrap();
        probe["image"] = "probe.png".into();
    }
    let seeds = dir.path().join("seeds.jsonl");
    fs::write(&seeds, format!("{probe}\n")).unwrap();
    let (seed_hits, _) = ok(vigil()
        .args(["recall", "--index"])
        .arg(&index)
        .arg("--seeds")
        .arg(&seeds)
        .args(["--k", "5"]));
    let seed_hits: Vec<serde_json::Value> = seed_hits
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(seed_hits[0]["id"], original.as_str());
    assert!(seed_hits[0]["similarity"].as_f64().unwrap() > 0.9999);

    // The hits are a review queue's recall source as they are.
    let queue = dir.path().join("queue.jsonl");
    ok(vigil()
        .arg("queue")
        .arg("--data")
        .arg(&corpus)
        .arg("--recall")
        .arg(&hits_file)
        .args(["--budget", "5", "--out"])
        .arg(&queue));
    assert_eq!(jsonl(&queue).len(), 5);

    // Delete the top hit: version 2 never returns it.
    let top = hits[0]["id"].as_str().unwrap().to_string();
    ok(vigil()
        .args(["index", "delete", "--index"])
        .arg(&index)
        .args(["--id", &top]));
    assert_eq!(versions(&index), vec!["1", "2"]);
    let (after, _) = ok(vigil()
        .args(["recall", "--index"])
        .arg(&index)
        .args(["--label", "spam", "--k", "50"]));
    assert!(!after.contains(&format!("\"id\":\"{top}\"")), "{after}");

    // An unknown id, or a bad row, exits 2 and publishes nothing.
    let out = run_with_timeout(
        vigil()
            .args(["index", "delete", "--index"])
            .arg(&index)
            .args(["--id", "no-such-id"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
    assert!(texts(&out).1.contains("no-such-id"));
    let bad = dir.path().join("bad.jsonl");
    fs::write(&bad, "{\"id\":\"n1\",\"text\":\"fine\"}\nnot json\n").unwrap();
    let out = run_with_timeout(
        vigil()
            .args(["index", "add", "--index"])
            .arg(&index)
            .arg("--data")
            .arg(&bad),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
    assert!(texts(&out).1.contains("bad.jsonl:2"), "{:?}", texts(&out));
    assert_eq!(versions(&index), vec!["1", "2"]);

    // Add a row (version 3), then compact the tombstone away (version 4).
    let extra = dir.path().join("extra.jsonl");
    fs::write(
        &extra,
        "{\"id\":\"new-1\",\"text\":\"brand new text to index\"}\n",
    )
    .unwrap();
    let (_, err) = ok(vigil()
        .args(["index", "add", "--index"])
        .arg(&index)
        .arg("--data")
        .arg(&extra));
    assert!(err.contains("1 added, 0 replaced"), "{err}");
    ok(vigil().args(["index", "compact", "--index"]).arg(&index));
    assert_eq!(versions(&index), vec!["1", "2", "3", "4"]);
    let (info, _) = ok(vigil().args(["index", "info", "--index"]).arg(&index));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["version"], 4);
    assert_eq!(info["manifest"]["count"], rows);
    assert_eq!(info["manifest"]["tombstones"], 0);
}

#[test]
fn recall_without_an_index_or_with_an_unknown_label_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_timeout(
        vigil()
            .args(["recall", "--index"])
            .arg(dir.path().join("none"))
            .args(["--label", "spam"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
    assert!(texts(&out).1.contains("no index at"), "{:?}", texts(&out));
    // An index of precomputed vectors, and a label no item carries.
    let emb = dir.path().join("emb.jsonl");
    fs::write(
        &emb,
        "{\"id\":\"a\",\"embedding\":[1,0,0]}\n{\"id\":\"b\",\"embedding\":[0,1,0]}\n",
    )
    .unwrap();
    let index = dir.path().join("idx");
    ok(vigil()
        .args(["index", "build", "--embeddings"])
        .arg(&emb)
        .arg("--out")
        .arg(&index));
    let out = run_with_timeout(
        vigil()
            .args(["recall", "--index"])
            .arg(&index)
            .args(["--label", "spam"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
    assert!(texts(&out).1.contains("\"spam\""), "{:?}", texts(&out));
    // Seeds as precomputed vectors work against a vectors index.
    let seeds = dir.path().join("seeds.jsonl");
    fs::write(&seeds, "{\"id\":\"s\",\"embedding\":[0.9,0.1,0]}\n").unwrap();
    let (hits, _) = ok(vigil()
        .args(["recall", "--index"])
        .arg(&index)
        .arg("--seeds")
        .arg(&seeds)
        .args(["--k", "1"]));
    assert!(hits.contains("\"id\":\"a\""), "{hits}");
}
