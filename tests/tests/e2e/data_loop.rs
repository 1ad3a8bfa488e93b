//! The data loop through the real binary: `vigil queue` builds one deduplicated,
//! budgeted queue, and `vigil datasets apply-labels` folds reviews back into a new
//! file with provenance, refusing (exit 2, nothing written) reviews of unknown rows.

use crate::util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

const DATA: &str = r#"{"id": "r1", "text": "Win a FREE phone", "labels": {"hate": 0, "spam": 1}}
{"id": "r2", "text": "good morning", "labels": {"hate": 0, "spam": 0}}
{"id": "r3", "text": "send them all back", "labels": {"hate": null, "spam": 0}}
{"id": "r4", "text": "win a free   phone", "labels": {"hate": 0, "spam": 1}}
{"id": "r5", "text": "lunch?", "labels": {"hate": 0, "spam": 0}}
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A temporary directory holding `DATA` as `data.jsonl`; the directory lives as
/// long as the value.
struct Loop {
    tmp: tempfile::TempDir,
    data: String,
}

impl Loop {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = write(tmp.path(), "data.jsonl", DATA);
        Loop { tmp, data }
    }

    fn write(&self, name: &str, text: &str) -> String {
        write(self.tmp.path(), name, text)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn assert_data_untouched(&self) {
        let now = std::fs::read_to_string(&self.data).unwrap();
        assert_eq!(now, DATA, "the original is untouched");
    }

    /// `vigil datasets apply-labels --data DATA --reviews REVIEWS --out OUT EXTRA...`.
    fn apply_labels(&self, reviews: &str, out: &Path, extra: &[&str]) -> Run {
        let out = out.to_str().unwrap();
        let head = ["datasets", "apply-labels", "--data", &self.data];
        vigil(&[&head[..], &["--reviews", reviews, "--out", out], extra].concat())
    }

    /// `vigil queue --data DATA SOURCES... --budget BUDGET --out OUT EXTRA...`, each
    /// source a `(flag, path)` pair.
    fn queue(&self, sources: &[(&str, &str)], budget: &str, out: &Path, extra: &[&str]) -> Run {
        let sources: Vec<&str> = sources.iter().flat_map(|&(f, p)| [f, p]).collect();
        let tail = ["--budget", budget, "--out", out.to_str().unwrap()];
        vigil(&[&["queue", "--data", &self.data][..], &sources, &tail, extra].concat())
    }
}

/// A finished run: its exit code and its output as text.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Exit 0 with every one of `needles` on stdout.
    fn assert_success(&self, needles: &[&str]) {
        assert_eq!(self.code, Some(0), "{}", self.stderr);
        for n in needles {
            assert!(self.stdout.contains(n), "{n:?} not in {}", self.stdout);
        }
    }

    /// Exit 2 (bad input) with every one of `needles` on stderr.
    fn assert_refused(&self, needles: &[&str]) {
        assert_eq!(self.code, Some(2), "{}", self.stderr);
        for n in needles {
            assert!(self.stderr.contains(n), "{n:?} not in {}", self.stderr);
        }
    }
}

fn vigil(args: &[&str]) -> Run {
    let run = util::run_with_timeout(util::vigil().args(args), LIMIT);
    let (stdout, stderr) = util::texts(&run);
    Run {
        code: run.status.code(),
        stdout,
        stderr,
    }
}

#[test]
fn apply_labels_refuses_an_unknown_id_and_writes_nothing() {
    let lp = Loop::new();
    let reviews = lp.write(
        "reviews.jsonl",
        "{\"id\": \"r2\", \"labels\": {\"spam\": 1}}\n{\"id\": \"nope-77\", \"labels\": {\"hate\": 1}}\n",
    );
    let out = lp.path("new.jsonl");
    let run = lp.apply_labels(&reviews, &out, &[]);
    run.assert_refused(&["nope-77", "reviews.jsonl:2"]);
    assert!(!out.exists(), "nothing may be written");
    // Never in place, even with --force.
    lp.apply_labels(&reviews, Path::new(&lp.data), &["--force"])
        .assert_refused(&[]);
    lp.assert_data_untouched();
}

#[test]
fn apply_labels_round_trip_keeps_other_rows_byte_identical() {
    let lp = Loop::new();
    let reviews = lp.write(
        "reviews.jsonl",
        "{\"id\": \"r3\", \"labels\": {\"hate\": 1}, \"rationale\": \"calls to expel a group\", \"reviewed_at\": \"2025-05-03T08:00:00Z\"}\n",
    );
    let out = lp.path("new.jsonl");
    let run = lp.apply_labels(&reviews, &out, &["--reviewer", "kim"]);
    run.assert_success(&["1 rows changed", "hate: 1 changed"]);
    let new = std::fs::read_to_string(&out).unwrap();
    assert_eq!(new.lines().count(), DATA.lines().count());
    for (i, (old, new)) in DATA.lines().zip(new.lines()).enumerate() {
        if i != 2 {
            assert_eq!(old, new, "line {} must be byte-identical", i + 1);
            continue;
        }
        let row: Value = serde_json::from_str(new).unwrap();
        assert_eq!(row["labels"], json!({"hate": 1, "spam": 0}));
        assert_eq!(row["rationale"], "calls to expel a group");
        let p = &row["meta"]["provenance"][0];
        assert_eq!(p["by"], "kim");
        assert_eq!(p["at"], "2025-05-03T08:00:00Z");
        assert_eq!(p["source"], reviews.as_str());
        assert_eq!(p["changes"], json!({"hate": {"old": null, "new": 1}}));
    }
    lp.assert_data_untouched();
}

#[test]
fn queue_dedupes_a_row_in_two_sources_and_respects_the_budget() {
    let lp = Loop::new();
    let issues = lp.write(
        "issues.jsonl",
        "{\"id\": \"r3\", \"rank\": 1, \"issues\": [{\"kind\": \"label_error\", \"label\": \"hate\", \"reason\": \"p=0.93\"}]}\n{\"id\": \"r1\", \"rank\": 2, \"issues\": [{\"kind\": \"outlier\", \"reason\": \"far\"}]}\n",
    );
    let hits = lp.write(
        "hits.jsonl",
        "{\"id\": \"r3\", \"similarity\": 0.97, \"seed\": \"s\"}\n{\"id\": \"r4\", \"similarity\": 0.9}\n{\"id\": \"r5\", \"similarity\": 0.2}\n",
    );
    let out = lp.path("queue.jsonl");
    lp.queue(
        &[("--issues", &issues), ("--recall", &hits)],
        "2",
        &out,
        &[],
    )
    .assert_success(&["2 items"]);
    let items: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = items.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec!["r3", "r4"],
        "r3 once; recall's turn goes to its next row"
    );
    let sources: Vec<&str> = items[0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, vec!["issues", "recall"]);
    // r1 ("Win a FREE phone") is r4's content: its issue rides on r4's item.
    assert_eq!(items[1]["duplicates"], json!(["r1"]));
    assert_eq!(items[1]["priority"], 2);

    // An id the dataset does not have: exit 2 naming it, nothing written.
    let bad = lp.write("bad.jsonl", "{\"id\": \"ghost\", \"similarity\": 1.0}\n");
    let out2 = lp.path("q2.jsonl");
    lp.queue(&[("--recall", &bad)], "5", &out2, &[])
        .assert_refused(&["ghost"]);
    assert!(!out2.exists());
}

#[test]
fn a_label_studio_export_of_a_queue_folds_back() {
    let lp = Loop::new();
    let issues = lp.write(
        "issues.jsonl",
        "{\"id\": \"r2\", \"rank\": 1, \"issues\": [{\"kind\": \"label_error\", \"label\": \"spam\", \"reason\": \"p=0.9\"}]}\n",
    );
    let tasks_path = lp.path("tasks.json");
    let format = ["--format", "labelstudio"];
    lp.queue(&[("--issues", &issues)], "10", &tasks_path, &format)
        .assert_success(&[]);
    let config = std::fs::read_to_string(lp.path("tasks.json.labelstudio.xml")).unwrap();
    assert!(config.contains("<Choices name=\"spam\""), "{config}");
    assert!(config.contains("<TextArea name=\"rationale\""), "{config}");

    // Label Studio's JSON export after one annotation of the imported task.
    let mut tasks: Value =
        serde_json::from_str(&std::fs::read_to_string(&tasks_path).unwrap()).unwrap();
    let task = &mut tasks[0];
    assert_eq!(task["data"]["vigil_id"], "r2");
    task["id"] = json!(1);
    task["annotations"] = json!([{
        "id": 1, "completed_by": {"id": 3, "email": "rev@example.org"}, "was_cancelled": false,
        "created_at": "2025-05-04T10:00:00Z", "updated_at": "2025-05-04T10:01:00Z",
        "result": [
            {"from_name": "spam", "to_name": "text", "type": "choices", "value": {"choices": ["yes"]}},
            {"from_name": "rationale", "to_name": "text", "type": "textarea", "value": {"text": ["a bait greeting from a spam ring"]}}
        ]
    }]);
    let export = lp.write(
        "export.json",
        &serde_json::to_string_pretty(&tasks).unwrap(),
    );
    let out = lp.path("new.jsonl");
    lp.apply_labels(&export, &out, &[])
        .assert_success(&["(labelstudio)"]);
    let new = std::fs::read_to_string(&out).unwrap();
    let r2: Value = serde_json::from_str(new.lines().nth(1).unwrap()).unwrap();
    assert_eq!(r2["labels"]["spam"], 1);
    assert_eq!(r2["rationale"], "a bait greeting from a spam ring");
    assert_eq!(r2["meta"]["provenance"][0]["by"], "rev@example.org");
    assert_eq!(
        r2["meta"]["provenance"][0]["changes"],
        json!({"spam": {"old": 0, "new": 1}})
    );
    assert_eq!(new.lines().next(), DATA.lines().next());
}
