//! `vigil report` and `vigil eval --html` on a real run: one 2-worker run of
//! `configs/tiny.yaml` whose validation file is made here from the bundled
//! sample with a `meta.language` on every row and two rows whose text is
//! `<script>alert(1)</script>` (same inputs, opposite `hate` labels, so one of
//! them is an error at any threshold and is listed). Headless Chromium's view of
//! these pages is checked in CI (`scripts/ci/report.sh`); here the files.

use crate::util;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(240);
const CLI_LIMIT: Duration = Duration::from_secs(60);
const SCRIPT: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const SECTIONS: [&str; 8] = [
    "run",
    "curves",
    "labels",
    "calibration",
    "errors",
    "bootstrap",
    "slices",
    "decision",
];

struct Fixture {
    root: PathBuf,
    run: PathBuf,
    /// A second run whose export is gated against the first run's version 1.
    gated: PathBuf,
    val: PathBuf,
    rows: usize,
}

/// 40 sample rows with `meta.language` (en, fr, de) and their images copied
/// beside the file, plus the two script rows.
fn make_val(root: &Path) -> (PathBuf, usize) {
    let sample = util::repo_root().join("datasets/sample");
    std::fs::create_dir_all(root.join("img")).unwrap();
    let text = std::fs::read_to_string(sample.join("val.jsonl")).unwrap();
    let mut out = String::new();
    let mut rows = 0;
    let mut first_image = None;
    for (i, line) in text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(40)
        .enumerate()
    {
        let mut row: Value = serde_json::from_str(line).unwrap();
        if let Some(img) = row["image"].as_str() {
            std::fs::copy(sample.join(img), root.join(img)).unwrap();
            first_image.get_or_insert(img.to_string());
        }
        let language = ["en", "fr", "de"][i % 3];
        row["meta"] = serde_json::json!({"language": language, "source": "sample"});
        out.push_str(&row.to_string());
        out.push('\n');
        rows += 1;
    }
    for (id, hate) in [("xss-1", 1), ("xss-2", 0)] {
        let row = serde_json::json!({
            "id": id, "text": SCRIPT, "image": first_image.as_deref().unwrap(),
            "labels": {"hate": hate}, "meta": {"language": "en"}
        });
        out.push_str(&row.to_string());
        out.push('\n');
        rows += 1;
    }
    let path = root.join("val-meta.jsonl");
    std::fs::write(&path, out).unwrap();
    (path, rows)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-e2e");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let (val, rows) = make_val(&root);
        let run = root.join("run");
        let val_set = format!("data.val={}", val.display());
        let out = util::run_with_timeout(
            &mut util::tiny_launch(
                &run,
                2,
                &[
                    &val_set,
                    "train.max_steps=20",
                    "train.eval_every=10",
                    "checkpoint.every_steps=null",
                    "logging.histogram_every=null",
                ],
            ),
            LIMIT,
        );
        let (so, se) = util::texts(&out);
        assert!(out.status.success(), "vigil launch failed\n{so}\n{se}");
        let gated = root.join("gated");
        let export_to = format!("export.dir={}", run.join("export").display());
        let out = util::run_with_timeout(
            &mut util::tiny_launch(
                &gated,
                2,
                &[
                    &val_set,
                    &export_to,
                    "run.seed=11",
                    "train.max_steps=20",
                    "train.eval_every=20",
                    "checkpoint.every_steps=null",
                    "logging.histogram_every=null",
                    "export.gate={metric: val/macro_auroc, min_delta: 0.0}",
                ],
            ),
            LIMIT,
        );
        let (so, se) = util::texts(&out);
        assert!(
            out.status.success(),
            "gated vigil launch failed\n{so}\n{se}"
        );
        Fixture {
            root,
            run,
            gated,
            val,
            rows,
        }
    })
}

fn vigil(args: &[&str]) -> (bool, i32, String, String) {
    let out = util::run_with_timeout(util::vigil().args(args), CLI_LIMIT);
    let (so, se) = util::texts(&out);
    (
        out.status.success(),
        out.status.code().unwrap_or(-1),
        so,
        se,
    )
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Every section once, one PR curve, ROC curve and reliability diagram per
/// label, the script rows as escaped text and no script element.
fn assert_page(html: &str) {
    for s in SECTIONS {
        assert_eq!(
            count(html, &format!("<section id=\"{s}\">")),
            1,
            "section {s}"
        );
    }
    for label in util::TINY_LABELS {
        for kind in ["pr-curve", "roc-curve", "reliability"] {
            let fig = format!("<figure class=\"chart {kind}\" data-label=\"{label}\">");
            assert_eq!(count(html, &fig), 1, "{fig}");
        }
    }
    assert!(html.contains(ESCAPED), "the script row is shown as text");
    assert!(
        !html.to_lowercase().contains("<script"),
        "no script element"
    );
    assert!(
        html.contains("data:image/jpeg;base64,"),
        "inline thumbnails"
    );
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
}

#[test]
fn evaluation_writes_per_row_scores_with_meta_matching_its_report() {
    let f = fixture();
    let scores = std::fs::read_to_string(f.run.join("eval/step-20.scores.jsonl")).unwrap();
    let rows: Vec<Value> = scores
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows.len(),
        f.rows,
        "one line per validation row, padding dropped"
    );
    assert_eq!(rows[0]["meta"]["language"], "en");
    assert_eq!(rows[1]["meta"]["language"], "fr");
    let xss = rows.iter().find(|r| r["id"] == "xss-2").unwrap();
    assert_eq!(xss["text"], SCRIPT);
    assert_eq!(xss["labels"]["hate"], 0);
    assert_eq!(
        xss["labels"]["spam"],
        Value::Null,
        "unknown labels are null"
    );
    assert!(Path::new(xss["image"].as_str().unwrap()).is_absolute());
    // The report's positives per label are those of the scores file.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(f.run.join("eval/step-20.json")).unwrap())
            .unwrap();
    for (i, label) in util::TINY_LABELS.iter().enumerate() {
        let positives = rows.iter().filter(|r| r["labels"][label] == 1).count();
        assert_eq!(
            report["report"]["labels"][i]["positives"], positives,
            "{label}"
        );
    }
}

#[test]
fn each_evaluation_logs_a_png_grid_of_errors_per_label_to_tensorboard() {
    use vigil_trainer::logging::proto::event::What;
    use vigil_trainer::logging::proto::summary::value::Value as V;
    use vigil_trainer::logging::{event_files, read_event_file};
    let f = fixture();
    let mut seen = Vec::new();
    for file in event_files(&f.run.join("tensorboard")).unwrap() {
        for ev in read_event_file(&file).unwrap() {
            if let Some(What::Summary(s)) = ev.what {
                for v in s.value {
                    if let Some(V::Image(img)) = v.value {
                        assert_eq!(&img.encoded_image_string[..4], b"\x89PNG", "{}", v.tag);
                        assert_eq!(img.colorspace, 3);
                        assert!(img.width > 0 && img.height > 0);
                        seen.push((v.tag, ev.step));
                    }
                }
            }
        }
    }
    seen.sort();
    let mut want: Vec<(String, i64)> = util::TINY_LABELS
        .iter()
        .flat_map(|l| [10, 20].map(|s| (format!("errors/{l}"), s)))
        .collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn report_of_a_run_has_every_section_and_escapes_row_text() {
    let f = fixture();
    let out = f.root.join("run-report.html");
    let (ok, _, so, se) = vigil(&[
        "report",
        f.run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--slice-by",
        "meta.language",
        "--top",
        "50",
        "--bootstrap",
        "200",
    ]);
    assert!(ok, "{so}\n{se}");
    assert!(so.contains("report: ") && so.contains("bytes"), "{so}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert_page(&html);
    assert!(
        html.contains("evaluation step</th><td>20"),
        "the last evaluation by default"
    );
    assert!(
        html.contains("evaluated by</th><td>vigil 0."),
        "the run's vigil version"
    );
    assert!(
        html.contains("figure class=\"chart steps-loss\""),
        "train/val loss over steps"
    );
    // One slice table per label with en, fr and de rows.
    assert_eq!(
        count(&html, "<table class=\"slices\""),
        util::TINY_LABELS.len()
    );
    for lang in ["<tr><td>en</td>", "<tr><td>fr</td>", "<tr><td>de</td>"] {
        assert_eq!(count(&html, lang), util::TINY_LABELS.len(), "{lang}");
    }
    assert!(html.contains("95% CI"));
    // An earlier step, and the default output path.
    let (ok, _, so, se) = vigil(&["report", f.run.to_str().unwrap(), "--step", "10"]);
    assert!(ok, "{so}\n{se}");
    let html = std::fs::read_to_string(f.run.join("report-step-10.html")).unwrap();
    assert!(html.contains("evaluation step</th><td>10"));
}

#[test]
fn eval_html_reports_an_export_on_a_file_with_meta() {
    let f = fixture();
    let out = f.root.join("eval-report.html");
    let model = f.run.join("export/tiny");
    let (ok, _, so, se) = vigil(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        f.val.to_str().unwrap(),
        "--top",
        "50",
        "--html",
        out.to_str().unwrap(),
        "--slice-by",
        "meta.language",
        "--bootstrap",
        "100",
    ]);
    assert!(ok, "{so}\n{se}");
    assert!(so.contains("html report: "), "{so}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert_page(&html);
    assert!(html.contains("an export evaluation has no training history"));
    assert!(html.contains("config.json"));
}

#[test]
fn a_gated_run_shows_champion_and_challenger_with_paired_intervals() {
    let f = fixture();
    assert!(f.gated.join("eval/champion.scores.jsonl").is_file());
    let out = f.root.join("gated.html");
    let (ok, _, so, se) = vigil(&[
        "report",
        f.gated.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--bootstrap",
        "100",
    ]);
    assert!(ok, "{so}\n{se}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("champion (version 1)"),
        "the decision names the champion"
    );
    assert!(html.contains("val/macro_auroc"));
    assert_eq!(count(&html, "<table class=\"decision-labels\">"), 1);
    let table = html
        .split("<table class=\"decision-labels\">")
        .nth(1)
        .unwrap();
    let table = table.split("</table>").next().unwrap();
    assert!(
        table.contains("class=\"ci\">["),
        "paired intervals: {table}"
    );
}

#[test]
fn bad_run_dirs_steps_and_slice_fields_exit_2_and_write_nothing() {
    let f = fixture();
    let out = f.root.join("never.html");
    let o = out.to_str().unwrap();
    let missing = f.root.join("no-such-run");
    let (ok, code, _, se) = vigil(&["report", missing.to_str().unwrap(), "--out", o]);
    assert!(!ok && code == 2, "{se}");
    assert!(se.contains("config.resolved.yaml"), "{se}");
    let run = f.run.to_str().unwrap();
    let (ok, code, _, se) = vigil(&["report", run, "--step", "7", "--out", o]);
    assert!(!ok && code == 2, "{se}");
    assert!(
        se.contains("no evaluation at step 7") && se.contains("10, 20"),
        "{se}"
    );
    let (ok, code, _, se) = vigil(&["report", run, "--slice-by", "language", "--out", o]);
    assert!(!ok && code == 2, "{se}");
    assert!(se.contains("meta.FIELD"), "{se}");
    assert!(!out.exists(), "nothing half-written");
}
