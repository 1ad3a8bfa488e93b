//! `apply_labels` end to end on files: the new file, the refusals, and that nothing
//! is written when the batch is refused.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use vigil_curate::apply::{ApplyOptions, apply_labels};

const DATA: &str = r#"{"id": "a", "text": "first", "labels": {"hate": 0, "spam": 0}}
{"id": "b", "text": "second", "labels": {"hate": 1, "spam": 0}, "meta": {"source": "web"}}
{"id": "c", "image": "img/c.png", "labels": {"hate": null, "spam": 1}}
"#;

fn setup(reviews: &str) -> (tempfile::TempDir, ApplyOptions) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    let rev = dir.path().join("reviews.jsonl");
    std::fs::write(&data, DATA).unwrap();
    std::fs::write(&rev, reviews).unwrap();
    let opts = ApplyOptions {
        data,
        reviews: rev,
        out: dir.path().join("new.jsonl"),
        reviewer: Some("kim".into()),
        force: false,
        labels: None,
    };
    (dir, opts)
}

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_748_736_000)
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_round_trip_changes_only_the_reviewed_labels() {
    let (_dir, opts) = setup(
        "{\"id\": \"b\", \"labels\": {\"hate\": 0}, \"rationale\": \"quoted to condemn it\"}\n",
    );
    let summary = apply_labels(&opts, at()).unwrap();
    assert_eq!(
        (summary.fold.reviewed, summary.fold.changed, summary.rows),
        (1, 1, 3)
    );
    let out = lines(&opts.out);
    let orig: Vec<&str> = DATA.lines().collect();
    assert_eq!(out[0], orig[0]);
    assert_eq!(out[2], orig[2]);
    let b: Value = serde_json::from_str(&out[1]).unwrap();
    assert_eq!(b["labels"], serde_json::json!({"hate": 0, "spam": 0}));
    assert_eq!(b["rationale"], "quoted to condemn it");
    assert_eq!(b["meta"]["source"], "web");
    let p = &b["meta"]["provenance"][0];
    assert_eq!(p["by"], "kim");
    assert_eq!(p["at"], "2025-06-01T00:00:00Z");
    assert_eq!(p["source"], opts.reviews.display().to_string());
    assert_eq!(
        p["changes"],
        serde_json::json!({"hate": {"old": 1, "new": 0}})
    );
    // The original is untouched.
    assert_eq!(std::fs::read_to_string(&opts.data).unwrap(), DATA);
    let text = summary.render(&opts);
    assert!(text.contains("hate: 1 changed (1->0: 1)"), "{text}");
}

#[test]
fn an_unknown_id_is_refused_naming_it_and_nothing_is_written() {
    let (_dir, opts) = setup(
        "{\"id\": \"a\", \"labels\": {\"hate\": 1}}\n{\"id\": \"zz\", \"labels\": {\"hate\": 1}}\n",
    );
    let e = apply_labels(&opts, at()).unwrap_err();
    assert!(e.is_usage());
    let msg = e.to_string();
    assert!(msg.contains("reviews.jsonl:2: id 'zz' is not in"), "{msg}");
    assert!(!opts.out.exists());
}

#[test]
fn an_unknown_label_is_refused_naming_it() {
    let (_dir, opts) = setup("{\"id\": \"a\", \"labels\": {\"nsfw\": 1}}\n");
    let e = apply_labels(&opts, at()).unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("unknown label 'nsfw'"),
        "{e}"
    );
    assert!(!opts.out.exists());
}

#[test]
fn never_in_place_and_an_existing_out_needs_force() {
    let (_dir, mut opts) = setup("{\"id\": \"a\", \"labels\": {\"hate\": 1}}\n");
    let data = opts.data.clone();
    opts.out = data.clone();
    opts.force = true;
    let e = apply_labels(&opts, at()).unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("never edits a dataset in place"),
        "{e}"
    );
    // The same file by another spelling.
    opts.out = data.parent().unwrap().join(".").join("data.jsonl");
    assert!(apply_labels(&opts, at()).is_err());
    assert_eq!(std::fs::read_to_string(&data).unwrap(), DATA);

    opts.out = data.with_file_name("new.jsonl");
    opts.force = false;
    std::fs::write(&opts.out, "keep").unwrap();
    let e = apply_labels(&opts, at()).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(&opts.out).unwrap(), "keep");
    opts.force = true;
    apply_labels(&opts, at()).unwrap();
    assert_ne!(std::fs::read_to_string(&opts.out).unwrap(), "keep");
}

#[test]
fn a_label_studio_export_folds_back() {
    let export = r#"[
  {"id": 11, "data": {"vigil_id": "c", "text": "", "image": "img/c.png"},
   "annotations": [{"completed_by": 2, "updated_at": "2025-05-01T10:00:00.000000Z",
     "result": [{"from_name": "hate", "to_name": "text", "type": "choices", "value": {"choices": ["yes"]}},
                {"from_name": "spam", "to_name": "text", "type": "choices", "value": {"choices": ["yes"]}},
                {"from_name": "rationale", "to_name": "text", "type": "textarea", "value": {"text": ["a hate symbol"]}}]}]}
]"#;
    let (_dir, opts) = setup(export);
    let s = apply_labels(&opts, at()).unwrap();
    assert_eq!(s.format.as_str(), "labelstudio");
    let out = lines(&opts.out);
    let c: Value = serde_json::from_str(&out[2]).unwrap();
    assert_eq!(c["labels"], serde_json::json!({"hate": 1, "spam": 1}));
    let p = &c["meta"]["provenance"][0];
    assert_eq!(p["by"], "label-studio user 2");
    assert_eq!(p["at"], "2025-05-01T10:00:00.000000Z");
    assert_eq!(
        p["changes"],
        serde_json::json!({"hate": {"old": null, "new": 1}})
    );
    assert_eq!(p["confirmed"], serde_json::json!(["spam"]));
}

#[test]
fn argilla_records_fold_back() {
    let (_dir, opts) = setup(
        r#"[{"id": "a", "fields": {"text": "first", "reasons": "x"}, "metadata": {}, "suggestions": {},
             "responses": {"spam": [{"value": "yes", "user_id": "0b0c"}]}, "vectors": {}, "_server_id": null}]"#,
    );
    let s = apply_labels(&opts, at()).unwrap();
    assert_eq!(s.format.as_str(), "argilla");
    let a: Value = serde_json::from_str(&lines(&opts.out)[0]).unwrap();
    assert_eq!(a["labels"]["spam"], 1);
    assert_eq!(a["meta"]["provenance"][0]["by"], "0b0c");
}
