//! `build_queue` on files: sources merged and deduplicated under the budget, every
//! format written with its companion, ids checked against the dataset, and a Label
//! Studio round trip through apply-labels.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};
use vigil_curate::apply::{ApplyOptions, apply_labels};
use vigil_curate::queue::{QueueFormat, QueueOptions, build_queue};

const DATA: &str = r#"{"id": "a", "text": "Buy  NOW", "labels": {"hate": 0, "spam": 1}}
{"id": "b", "text": "hello", "labels": {"hate": 0, "spam": 0}, "rationale": "a greeting"}
{"id": "c", "text": "they should all go", "labels": {"hate": null, "spam": 0}}
{"id": "a2", "text": "buy now", "labels": {"hate": 0, "spam": 1}}
{"id": "d", "image": "img/d.png", "labels": {"hate": 1}}
{"id": "e", "text": "plain", "labels": {"hate": 0, "spam": 0}}
"#;

const ISSUES: &str = r#"{"id": "c", "rank": 1, "issues": [{"kind": "label_error", "label": "hate", "given": null, "suggested": 1, "reason": "out-of-fold p=0.94"}]}
{"id": "a", "rank": 2, "issues": [{"kind": "near_duplicate", "reason": "same as a2"}]}
"#;

const PREDICTIONS: &str = r#"{"id": "c", "version": 4, "scores": {"hate": 0.52, "spam": 0.1}, "decisions": {"hate": true, "spam": false}}
{"id": "a2", "version": 4, "scores": {"hate": 0.05, "spam": 0.55}, "decisions": {"hate": false, "spam": true}}
{"id": "e", "version": 4, "scores": {"hate": 0.4, "spam": 0.1}, "decisions": {"hate": false, "spam": false}}
{"id": "b", "version": 4, "scores": {"hate": 0.01, "spam": 0.01}, "decisions": {"hate": false, "spam": false}}
"#;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("data.jsonl", DATA),
            ("issues.jsonl", ISSUES),
            ("pred.jsonl", PREDICTIONS),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn opts(&self, budget: usize, format: QueueFormat, out: &str) -> QueueOptions {
        QueueOptions {
            data: self.path("data.jsonl"),
            issues: Some(self.path("issues.jsonl")),
            predictions: Some(self.path("pred.jsonl")),
            budget,
            format,
            out: self.path(out),
            ..QueueOptions::default()
        }
    }
}

fn jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sources_merge_dedupe_and_respect_the_budget() {
    let f = Files::new();
    let opts = f.opts(3, QueueFormat::Jsonl, "q.jsonl");
    let s = build_queue(&opts).unwrap();
    assert_eq!(s.items, 3);
    let q = jsonl(&opts.out);
    let ids: Vec<&str> = q.iter().map(|v| v["id"].as_str().unwrap()).collect();
    // Turn 1: issues brings c; uncertain's best is c again (no turn used), so a2.
    // Turn 2: issues' a has a2's content (folded in, no turn), and issues runs out;
    // uncertain brings e, and the budget is spent.
    assert_eq!(ids, vec!["c", "a2", "e"]);
    let c = &q[0];
    let sources: Vec<&str> = c["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, vec!["issues", "uncertain"]);
    assert_eq!(c["labels"], json!({"hate": null, "spam": 0}));
    assert_eq!(c["priority"], 1);
    // "Buy  NOW" and "buy now" are one item: a folds into a2 with its issue.
    assert_eq!(q[1]["duplicates"], json!(["a"]));
    assert!(
        q[1]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "near_duplicate")
    );
    assert_eq!(s.duplicates, 1);
}

#[test]
fn an_id_not_in_the_dataset_is_refused_and_nothing_is_written() {
    let f = Files::new();
    std::fs::write(
        f.path("hits.jsonl"),
        "{\"id\": \"b\", \"similarity\": 0.9}\n{\"id\": \"ghost\", \"similarity\": 0.8}\n",
    )
    .unwrap();
    let mut opts = f.opts(10, QueueFormat::LabelStudio, "q.json");
    opts.recall = Some(f.path("hits.jsonl"));
    let e = build_queue(&opts).unwrap_err();
    assert!(e.is_usage());
    let msg = e.to_string();
    assert!(
        msg.contains("hits.jsonl:2: id 'ghost'") && msg.contains("data.jsonl"),
        "{msg}"
    );
    assert!(!opts.out.exists());
    assert!(!f.path("q.json.labelstudio.xml").exists());
}

#[test]
fn no_source_or_out_as_an_input_is_a_usage_error() {
    let f = Files::new();
    let mut opts = f.opts(3, QueueFormat::Jsonl, "q.jsonl");
    opts.issues = None;
    opts.predictions = None;
    assert!(
        build_queue(&opts)
            .unwrap_err()
            .to_string()
            .contains("no source")
    );
    let mut opts = f.opts(3, QueueFormat::Jsonl, "data.jsonl");
    opts.out = f.path("data.jsonl");
    assert!(build_queue(&opts).unwrap_err().is_usage());
    assert_eq!(std::fs::read_to_string(f.path("data.jsonl")).unwrap(), DATA);
}

#[test]
fn argilla_writes_records_and_settings() {
    let f = Files::new();
    let opts = f.opts(2, QueueFormat::Argilla, "records.json");
    let s = build_queue(&opts).unwrap();
    assert_eq!(s.written.len(), 2);
    let records: Value =
        serde_json::from_str(&std::fs::read_to_string(&opts.out).unwrap()).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 2);
    assert_eq!(records[0]["id"], "c");
    assert_eq!(records[0]["suggestions"]["spam"]["value"], "no");
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(f.path("records.json.argilla-settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(settings["questions"][0]["name"], "hate");
}

/// The loop a reviewer runs: queue for Label Studio, annotate, export, fold back.
#[test]
fn a_label_studio_queue_folds_back_through_apply_labels() {
    let f = Files::new();
    let opts = f.opts(2, QueueFormat::LabelStudio, "tasks.json");
    build_queue(&opts).unwrap();
    let xml = std::fs::read_to_string(f.path("tasks.json.labelstudio.xml")).unwrap();
    assert!(xml.contains("<Choices name=\"hate\""), "{xml}");
    let tasks: Value = serde_json::from_str(&std::fs::read_to_string(&opts.out).unwrap()).unwrap();
    // What Label Studio exports after a reviewer answered the first task.
    let mut export = tasks.clone();
    for (i, t) in export.as_array_mut().unwrap().iter_mut().enumerate() {
        t["id"] = json!(100 + i);
        t["annotations"] = if i == 0 {
            json!([{"id": 1, "completed_by": 7, "was_cancelled": false,
                    "updated_at": "2025-05-02T09:00:00Z",
                    "result": [
                        {"from_name": "hate", "to_name": "text", "type": "choices", "value": {"choices": ["yes"]}},
                        {"from_name": "rationale", "to_name": "text", "type": "textarea", "value": {"text": ["a call to expel a group"]}}]}])
        } else {
            json!([])
        };
    }
    std::fs::write(
        f.path("export.json"),
        serde_json::to_string_pretty(&export).unwrap(),
    )
    .unwrap();
    let apply = ApplyOptions {
        data: f.path("data.jsonl"),
        reviews: f.path("export.json"),
        out: f.path("new.jsonl"),
        reviewer: None,
        force: false,
        labels: None,
    };
    let s = apply_labels(&apply, SystemTime::now()).unwrap();
    assert_eq!((s.fold.reviewed, s.fold.changed), (1, 1));
    let new = std::fs::read_to_string(&apply.out).unwrap();
    for (i, (old, new)) in DATA.lines().zip(new.lines()).enumerate() {
        if i == 2 {
            let c: Value = serde_json::from_str(new).unwrap();
            assert_eq!(c["labels"]["hate"], 1);
            assert_eq!(c["rationale"], "a call to expel a group");
            assert_eq!(c["meta"]["provenance"][0]["by"], "label-studio user 7");
        } else {
            assert_eq!(old, new, "line {}", i + 1);
        }
    }
}

#[test]
fn an_image_prefix_points_the_tool_at_the_files() {
    let f = Files::new();
    std::fs::write(
        f.path("recall.jsonl"),
        "{\"id\": \"d\", \"similarity\": 0.9}\n",
    )
    .unwrap();
    let opts = QueueOptions {
        recall: Some(f.path("recall.jsonl")),
        image_prefix: Some("/data/local-files/?d=memes/".into()),
        ..f.opts(10, QueueFormat::LabelStudio, "tasks.json")
    };
    build_queue(&opts).unwrap();
    let tasks: Value = serde_json::from_str(&std::fs::read_to_string(&opts.out).unwrap()).unwrap();
    let d = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["data"]["vigil_id"] == "d")
        .expect("the recall hit is queued");
    assert_eq!(d["data"]["image"], "/data/local-files/?d=memes/img/d.png");
}
