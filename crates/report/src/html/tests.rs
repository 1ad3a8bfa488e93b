//! The page as a whole: every section once, and every dataset-derived string
//! escaped wherever it lands (text, attribute values, inside the charts' SVG).

use serde_json::Map;

use super::*;
use crate::bootstrap::Bootstrap;
use vigil_config::Task;
use vigil_eval::scored::{ScoredRow, ScoredRows};

/// A string that breaks a page built by formatting: a script, both quotes, `&`.
const HOSTILE: &str = "<script>alert(1)</script> \"dq\" 'sq' & end";
/// [`HOSTILE`] as maud escapes it (`'` stays: attribute values are double-quoted).
const HOSTILE_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt; &quot;dq&quot; 'sq' &amp; end";

fn input(labels: [&str; 2], id: &str, text: &str, meta_value: &str) -> ReportInput {
    let mut meta = Map::new();
    meta.insert("lang".into(), serde_json::Value::from(meta_value));
    let row = |id: &str, text: &str, image: Option<&str>, s: f32, y: bool| ScoredRow {
        id: id.into(),
        line: 1,
        text: Some(text.into()),
        image: image.map(Into::into),
        meta: Some(meta.clone()),
        rationale: Some(format!("why {text}")),
        scores: vec![s, 0.5],
        labels: vec![Some(y), None],
    };
    ReportInput {
        title: "t <i>".into(),
        facts: vec![("run".into(), "r&d".into())],
        config: Some(("c.yaml".into(), "a: <script>".into())),
        skipped: Some(Default::default()),
        history: Vec::new(),
        train_loss: Vec::new(),
        no_history: Some("none".into()),
        step: Some(3),
        task: Task::MultiLabel,
        thresholds: vec![0.5, 0.5],
        rows: ScoredRows {
            labels: labels.map(String::from).to_vec(),
            rows: vec![
                // Scored 0.9 but negative: the top false positive of label 0.
                row(id, text, Some("missing/<img>.jpg"), 0.9, false),
                row("id2", "fine", None, 0.2, true),
                row("id3", "ok", None, 0.7, true),
            ],
        },
        decision: None,
        champion: None,
    }
}

fn opts() -> ReportOptions {
    ReportOptions {
        slice_by: Some("lang".into()),
        bootstrap: Bootstrap {
            resamples: 20,
            seed: 1,
        },
        ..ReportOptions::default()
    }
}

#[test]
fn every_section_is_there_once_and_undefined_is_not_nan() {
    let html = render(&input(["a", "b"], "<id1>", "x", "<b>x</b>"), &opts()).unwrap();
    for s in [
        "run",
        "curves",
        "labels",
        "calibration",
        "errors",
        "bootstrap",
        "slices",
        "decision",
    ] {
        assert_eq!(
            html.matches(&format!("<section id=\"{s}\">")).count(),
            1,
            "{s}"
        );
    }
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"));
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         img-src data:; style-src 'unsafe-inline'\">"
    ));
    assert!(html.ends_with("</body></html>\n"));
    assert!(html.contains("&lt;id1&gt;") && !html.contains("<id1>"));
    assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>x</b>"));
    assert!(html.contains("r&amp;d") && html.contains("t &lt;i&gt;"));
    assert!(html.contains("<pre>a: &lt;script&gt;</pre>"));
    // Label b has no known rows: its metrics are undefined, not NaN.
    assert!(html.contains("<span class=\"undef\">undefined</span>") && !html.contains("NaN"));
    assert_eq!(html.matches("class=\"chart pr-curve\"").count(), 2);
    assert_eq!(html.matches("class=\"chart roc-curve\"").count(), 2);
    assert_eq!(html.matches("class=\"chart reliability\"").count(), 2);
    assert_eq!(html.matches("<table class=\"slices\"").count(), 2);
    assert!(html.contains("<table class=\"misses\" data-kind=\"fp\" data-label=\"a\">"));
}

/// Escaping holds by construction: a row whose id, text, label name and sliced
/// meta value are all [`HOSTILE`] (and whose image path is markup) shows each as
/// text, in cells, attribute values and the charts, and the page has no script.
#[test]
fn dataset_strings_with_script_and_quotes_are_escaped_by_construction() {
    let label = format!("{HOSTILE} label");
    let id = format!("{HOSTILE} id");
    let html = render(&input([&label, "b"], &id, HOSTILE, HOSTILE), &opts()).unwrap();

    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    assert!(
        !html.contains(HOSTILE),
        "a raw hostile string reached the page"
    );
    assert!(
        !html.contains("<img>"),
        "the image path reached the page as markup"
    );

    // The row's text in the errors table, its id as a cell and in the thumbnail's place.
    assert!(html.contains(&format!("<td class=\"row-text\">{HOSTILE_ESCAPED}</td>")));
    assert!(html.contains(&format!("<tr class=\"miss\"><td>{HOSTILE_ESCAPED} id</td>")));
    // The row's rationale beside it, escaped like its text.
    assert!(html.contains(&format!(
        "<td class=\"row-text rationale\">why {HOSTILE_ESCAPED}</td>"
    )));
    assert!(html.contains("no thumbnail: missing/&lt;img&gt;.jpg"));
    // The meta value as a slice, in each label's slice table.
    assert_eq!(
        html.matches(&format!("<tr><td>{HOSTILE_ESCAPED}</td>"))
            .count(),
        2
    );
    // The label name in attribute values stays inside its double quotes …
    let attr = format!("data-label=\"{HOSTILE_ESCAPED} label\"");
    // … on the label block, its PR and ROC figures, reliability, misses (×2), slices.
    assert_eq!(html.matches(&attr).count(), 7, "{html}");
    // … and as text: per-label tables, headings, captions.
    assert!(html.contains(&format!("<h3>{HOSTILE_ESCAPED} label</h3>")));
    assert!(html.contains(&format!(
        "<figcaption>ROC curve of {HOSTILE_ESCAPED} label</figcaption>"
    )));
    // Inside the (unescaped, trusted) SVG, plotters escaped the label itself.
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &quot;dq&quot; &apos;sq&apos;"));
}
