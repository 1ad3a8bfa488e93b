//! `vigil predict`, `vigil eval` and `vigil embed --model` on real exports: two 2-worker runs of
//! `configs/tiny.yaml` publish versions 1 and 2 into one model repository, shared
//! by every test here (built once). Beside them sit a complete copy of version 2
//! under a dot-prefixed staging name and a damaged version 3 (no manifest), which
//! predict must never use.

use crate::util;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(240);
const CLI_LIMIT: Duration = Duration::from_secs(60);
const LABELS: [&str; 5] = util::TINY_LABELS;
const VAL: &str = "datasets/sample/val.jsonl";

struct Fixture {
    root: PathBuf,
    /// `<root>/repo/tiny`: the model repository.
    repo: PathBuf,
}

fn launch(run: &Path, repo: &Path, extra: &[&str]) {
    // Both runs publish into one repository: `export.dir` overrides tiny_launch's.
    let export = format!("export.dir={}", repo.display());
    let mut overrides = vec![
        export.as_str(),
        "checkpoint.every_steps=null",
        "logging.histogram_every=null",
    ];
    overrides.extend_from_slice(extra);
    let out = util::run_with_timeout(&mut util::tiny_launch(run, 2, &overrides), LIMIT);
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "vigil launch failed\n{so}\n{se}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Inside the target directory, replaced on every run of this test binary.
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-e2e");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let export = root.join("repo");
        launch(&root.join("run-1"), &export, &[]);
        launch(
            &root.join("run-2"),
            &export,
            &["run.seed=11", "train.max_steps=30", "train.eval_every=null"],
        );
        let repo = export.join("tiny");
        assert!(repo.join("1/MANIFEST.json").is_file());
        assert!(repo.join("2/MANIFEST.json").is_file());
        // A writer's staging directory with a higher number, complete and verifiable.
        copy_dir(&repo.join("2"), &repo.join(".tmp-9-4242-0"));
        // A version a crashed writer left without its manifest.
        copy_dir(&repo.join("2"), &repo.join("3"));
        std::fs::remove_file(repo.join("3/MANIFEST.json")).unwrap();
        Fixture { root, repo }
    })
}

/// Runs `vigil predict --model <repo> --input VAL` plus `args`; returns stdout
/// and stderr.
fn predict_raw(args: &[&str]) -> (String, String) {
    let f = fixture();
    let mut cmd = util::vigil();
    cmd.arg("predict")
        .arg("--model")
        .arg(&f.repo)
        .args(["--input", VAL])
        .args(args);
    let out = util::run_with_timeout(&mut cmd, CLI_LIMIT);
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "vigil predict {args:?} failed\n{se}");
    (so, se)
}

/// [`predict_raw`] with stdout parsed, one value per line.
fn predict(args: &[&str]) -> (Vec<Value>, String) {
    let (so, se) = predict_raw(args);
    let rows = so
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (rows, se)
}

fn thresholds(version: u32) -> HashMap<String, f64> {
    let path = fixture().repo.join(format!("{version}/thresholds.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn score(row: &Value, label: &str) -> f64 {
    row["scores"][label].as_f64().unwrap()
}

/// `(id, label) -> known target` of the validation file.
fn targets() -> HashMap<(String, String), bool> {
    let text = std::fs::read_to_string(util::repo_root().join(VAL)).unwrap();
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let id = row["id"].as_str().unwrap().to_string();
        if let Some(labels) = row["labels"].as_object() {
            for (label, v) in labels {
                if let Some(v) = v.as_u64() {
                    out.insert((id.clone(), label.clone()), v == 1);
                }
            }
        }
    }
    out
}

fn val_rows() -> usize {
    let text = std::fs::read_to_string(util::repo_root().join(VAL)).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn predict_uses_the_newest_complete_version_never_staging_or_damaged_ones() {
    let (rows, stderr) = predict(&[]);
    assert_eq!(rows.len(), val_rows());
    assert!(rows.iter().all(|r| r["version"] == 2), "{:?}", rows[0]);
    assert!(stderr.contains("skipped damaged version 3"), "{stderr}");
    assert!(!stderr.contains(".tmp-9"), "{stderr}");
    // Fields, and labels within scores, in a fixed order (the model's label order).
    let (first, _) = predict_raw(&["--top", "1"]);
    let at = |key: &str| first.find(&format!("\"{key}\":")).unwrap();
    let order: Vec<usize> = ["id", "version", "scores"]
        .into_iter()
        .chain(LABELS)
        .chain(["decisions"])
        .map(at)
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{first}");
    let t = thresholds(2);
    for row in &rows {
        for label in LABELS {
            let p = score(row, label);
            assert!((0.0..=1.0).contains(&p));
            assert_eq!(row["decisions"][label], p >= t[label], "{row}");
        }
        assert!(row.get("margin").is_none());
    }
}

#[test]
fn version_picks_an_older_version_and_a_missing_or_damaged_one_exits_2() {
    let (v1, _) = predict(&["--version", "1"]);
    let (v2, _) = predict(&[]);
    assert!(v1.iter().all(|r| r["version"] == 1));
    assert_eq!(v1.len(), v2.len());
    assert!(
        v1.iter().zip(&v2).any(|(a, b)| a["scores"] != b["scores"]),
        "versions 1 and 2 are different models"
    );
    // The version directory itself is accepted too.
    let f = fixture();
    let out = util::run_with_timeout(
        util::vigil()
            .arg("predict")
            .arg("--model")
            .arg(f.repo.join("1"))
            .args(["--input", VAL, "--top", "1"]),
        CLI_LIMIT,
    );
    assert!(out.status.success(), "{}", util::texts(&out).1);
    let line: Value = serde_json::from_str(util::texts(&out).0.trim()).unwrap();
    assert_eq!(line, v1[0]);

    for (version, says) in [("7", "version 7 does not exist"), ("3", "version 3")] {
        let output = f.root.join(format!("missing-{version}.jsonl"));
        let out = util::run_with_timeout(
            util::vigil()
                .arg("predict")
                .arg("--model")
                .arg(&f.repo)
                .args(["--version", version, "--input", VAL, "--output"])
                .arg(&output),
            CLI_LIMIT,
        );
        let (_, se) = util::texts(&out);
        assert_eq!(out.status.code(), Some(2), "{se}");
        assert!(se.contains(says), "{se}");
        assert!(!output.exists());
    }
}

#[test]
fn rank_by_label_and_top_make_a_review_queue() {
    let (all, _) = predict(&[]);
    let (queue, _) = predict(&["--rank-by", "spam", "--top", "5"]);
    assert_eq!(queue.len(), 5);
    let spam: Vec<f64> = queue.iter().map(|r| score(r, "spam")).collect();
    assert!(spam.windows(2).all(|w| w[0] >= w[1]), "{spam:?}");
    // The same rows a stable sort of the full output puts first.
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| score(b, "spam").total_cmp(&score(a, "spam")));
    let want: Vec<&Value> = sorted.iter().take(5).map(|r| &r["id"]).collect();
    let got: Vec<&Value> = queue.iter().map(|r| &r["id"]).collect();
    assert_eq!(got, want);
    // Written through --output, the same lines.
    let output = fixture().root.join("queue.jsonl");
    let (stdout, _) = predict(&[
        "--rank-by",
        "spam",
        "--top",
        "5",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(stdout.is_empty());
    let written: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written, queue);
}

#[test]
fn rank_by_uncertainty_orders_by_distance_to_the_shipped_thresholds() {
    let (rows, _) = predict(&["--rank-by", "uncertainty"]);
    assert_eq!(rows.len(), val_rows());
    let t = thresholds(2);
    let margins: Vec<f64> = rows
        .iter()
        .map(|r| {
            let m = r["margin"].as_f64().unwrap();
            let want = LABELS
                .iter()
                .map(|l| (score(r, l) - t[*l]).abs())
                .fold(f64::INFINITY, f64::min);
            assert!((m - want).abs() < 1e-6, "margin {m}, expected {want}");
            m
        })
        .collect();
    assert!(margins.windows(2).all(|w| w[0] <= w[1]));
    let (top, _) = predict(&["--rank-by", "uncertainty", "--top", "3"]);
    assert_eq!(top, rows[..3]);
}

#[test]
fn an_unknown_label_or_a_bad_row_exits_2_and_writes_nothing() {
    let f = fixture();
    let output = f.root.join("never.jsonl");
    let out = util::run_with_timeout(
        util::vigil()
            .arg("predict")
            .arg("--model")
            .arg(&f.repo)
            .args(["--input", VAL, "--rank-by", "hat", "--output"])
            .arg(&output),
        CLI_LIMIT,
    );
    let (_, se) = util::texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(
        se.contains("no label 'hat'") && se.contains(&LABELS.join(", ")),
        "{se}"
    );
    assert!(!output.exists());

    let input = f.root.join("bad.jsonl");
    std::fs::write(
        &input,
        "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"txt\": \"typo\"}\n",
    )
    .unwrap();
    let out = util::run_with_timeout(
        util::vigil()
            .arg("predict")
            .arg("--model")
            .arg(&f.repo)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output),
        CLI_LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(se.contains("bad.jsonl:2:"), "{se}");
    assert!(so.is_empty());
    assert!(!output.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&f.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary output left behind");
}

#[test]
fn eval_prints_the_table_and_writes_a_report_consistent_with_the_scores() {
    let f = fixture();
    let report_path = f.root.join("eval-v1.json");
    let out = util::run_with_timeout(
        util::vigil()
            .arg("eval")
            .arg("--model")
            .arg(&f.repo)
            .args(["--version", "1", "--data", VAL, "--top", "3", "--output"])
            .arg(&report_path),
        CLI_LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{se}");
    assert!(so.contains("auroc") && so.contains("macro"), "{so}");
    for label in LABELS {
        assert!(so.contains(label), "{so}");
    }
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(r["version"], 1);
    assert_eq!(r["task"], "multi_label");
    assert_eq!(r["report"]["rows"], val_rows());

    // Every metric of every label, as training reports them.
    let labels = r["report"]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), LABELS.len());
    for (m, label) in labels.iter().zip(LABELS) {
        assert_eq!(m["label"], label);
        for key in util::LABEL_METRICS {
            assert!(m.get(key).is_some(), "{label}: no {key}");
        }
    }
    // The same numbers training computed for this model on this data (version 1
    // is run 1's final model; batching differs, so compare to float tolerance).
    let trained: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root.join("run-1/eval/step-40.json")).unwrap(),
    )
    .unwrap();
    for (ours, theirs) in labels
        .iter()
        .zip(trained["report"]["labels"].as_array().unwrap())
    {
        assert_eq!(ours["positives"], theirs["positives"]);
        for key in ["auroc", "auprc", "f1_at_best"] {
            let (a, b) = (ours[key].as_f64().unwrap(), theirs[key].as_f64().unwrap());
            assert!((a - b).abs() < 1e-4, "{key}: eval {a}, training {b}");
        }
    }

    // False positives and negatives agree with predict's scores and the labels.
    let (v1, _) = predict(&["--version", "1"]);
    let scores: HashMap<String, &Value> = v1
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    let truth = targets();
    let t = thresholds(1);
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), LABELS.len());
    for (e, m) in errors.iter().zip(labels) {
        let label = e["label"].as_str().unwrap();
        let th = e["threshold"].as_f64().unwrap();
        assert!((th - t[label]).abs() < 1e-6);
        let c = &e["counts"];
        let count = |k: &str| c[k].as_u64().unwrap();
        assert_eq!(
            count("tp") + count("fn"),
            m["positives"].as_u64().unwrap(),
            "{label}"
        );
        assert_eq!(count("fp") + count("tn"), m["negatives"].as_u64().unwrap());
        let (fps, fns) = (
            e["false_positives"].as_array().unwrap(),
            e["false_negatives"].as_array().unwrap(),
        );
        assert_eq!(fps.len() as u64, count("fp").min(3));
        assert_eq!(fns.len() as u64, count("fn").min(3));
        for (list, positive) in [(fps, false), (fns, true)] {
            let mut last: Option<f64> = None;
            for miss in list {
                let id = miss["id"].as_str().unwrap();
                let s = miss["score"].as_f64().unwrap();
                assert_eq!(truth[&(id.to_string(), label.to_string())], positive);
                assert!((s - score(scores[id], label)).abs() < 1e-6, "{id} {label}");
                assert_eq!(s >= th, !positive, "{id} {label} {s} vs {th}");
                if let Some(prev) = last {
                    assert!(if positive { prev <= s } else { prev >= s });
                }
                last = Some(s);
            }
        }
        // No unlisted false positive scores higher than the last one listed.
        if let Some(lowest) = fps.last().and_then(|m| m["score"].as_f64()) {
            let higher = v1
                .iter()
                .filter(|r| {
                    let id = r["id"].as_str().unwrap().to_string();
                    truth.get(&(id, label.to_string())) == Some(&false)
                        && score(r, label) >= th
                        && score(r, label) > lowest
                })
                .count();
            assert!(higher < fps.len().max(1), "{label}: a worse FP is missing");
        }
    }
}

#[test]
fn embed_reads_training_rows_through_the_data_layer() {
    let f = fixture();
    // Training rows as they are (labels ignored), images relative to the file; a
    // row with an integer id and no image keeps its id's type and gets the image
    // placeholder in the fused vector.
    let dir = f.root.join("embed");
    std::fs::create_dir_all(&dir).unwrap();
    let val = util::repo_root().join(VAL);
    let mut rows: Vec<String> = std::fs::read_to_string(&val)
        .unwrap()
        .lines()
        .take(3)
        .map(str::to_string)
        .collect();
    for row in &rows {
        let image = serde_json::from_str::<Value>(row).unwrap()["image"]
            .as_str()
            .unwrap()
            .to_string();
        std::fs::create_dir_all(dir.join(&image).parent().unwrap()).unwrap();
        std::fs::copy(val.parent().unwrap().join(&image), dir.join(&image)).unwrap();
    }
    rows.push(r#"{"id": 42, "text": "no image here"}"#.to_string());
    let input = dir.join("items.jsonl");
    std::fs::write(&input, rows.join("\n") + "\n").unwrap();
    let output = dir.join("vectors.jsonl");
    let out = util::run_with_timeout(
        util::vigil()
            .arg("embed")
            .arg("--model")
            .arg(f.repo.join("2"))
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .args(["--batch-size", "3"]),
        CLI_LIMIT,
    );
    let (_, se) = util::texts(&out);
    assert!(out.status.success(), "{se}");
    let lines: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0]["id"].is_string());
    assert_eq!(lines[3]["id"], 42);
    for row in &lines {
        // tiny.yaml: interaction fusion of dim 32.
        assert_eq!(row["embedding"].as_array().unwrap().len(), 32 * 32);
        assert_eq!(row["text_embedding"].as_array().unwrap().len(), 32);
    }
    assert!(lines[0]["image_embedding"].is_array());
    assert!(lines[3].get("image_embedding").is_none());

    // A duplicate id is a bad row of the data layer: exit 2, FILE:LINE, no output.
    let bad = dir.join("dup.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"a\", \"text\": \"y\"}\n",
    )
    .unwrap();
    let never = dir.join("never.jsonl");
    let out = util::run_with_timeout(
        util::vigil()
            .arg("embed")
            .arg("--model")
            .arg(f.repo.join("2"))
            .arg("--input")
            .arg(&bad)
            .arg("--output")
            .arg(&never),
        CLI_LIMIT,
    );
    let (_, se) = util::texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(
        se.contains("dup.jsonl:2:") && se.contains("duplicate id"),
        "{se}"
    );
    assert!(!never.exists());
}
