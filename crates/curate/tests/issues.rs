//! `vigil datasets issues` end to end through the library: an out-of-fold scores file
//! and embeddings in, the issues JSONL out.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vigil_curate::CurateError;
use vigil_curate::confident::{self, FilterBy, Options, RankBy};
use vigil_curate::issues::{self, EmbeddingSource, IssuesOptions, Kind};
use vigil_curate::neighbours::{self, Embeddings, OutlierRule};
use vigil_data::rng::SplitMix64;

fn write_lines(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// 60 rows, labels spam/hate; row 7 is labelled spam=1 at probability 0.01, row 8 has
/// hate unknown. Embeddings: rows 0/6 near-identical with the same labels, rows 2/3
/// near-identical with different spam, row 59 alone on its own axis.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let mut rng = SplitMix64::new(42);
    let mut oof = Vec::new();
    let mut emb = Vec::new();
    for i in 0..60 {
        let spam = i % 2 == 0;
        let hate = i % 3 == 0;
        let mut ps = if spam {
            0.7 + 0.25 * rng.unit()
        } else {
            0.05 + 0.25 * rng.unit()
        };
        let ph = if hate {
            0.6 + 0.3 * rng.unit()
        } else {
            0.1 + 0.3 * rng.unit()
        };
        let (mut ls, mut lh) = (json!(u8::from(spam)), json!(u8::from(hate)));
        if i == 7 {
            ls = json!(1);
            ps = 0.01;
        }
        if i == 8 {
            lh = Value::Null;
        }
        if i == 3 {
            ls = json!(1 - u8::from(spam));
        }
        let mut row = json!({
            "id": format!("s{i}"), "line": i + 1, "text": format!("text {i}"),
            "scores": {"spam": ps, "hate": ph}, "labels": {"spam": ls, "hate": lh}, "fold": i % 5,
        });
        if i == 7 {
            row["rationale"] = json!("looks like an ad");
            row["image"] = json!("/nonexistent/7.png");
        }
        oof.push(row);
        let mut v: Vec<f64> = (0..8).map(|_| rng.unit() - 0.5).collect();
        v[7] = 0.0;
        match i {
            6 => v = emb[0..8].to_vec(),
            3 => v = emb[2 * 8..3 * 8].to_vec(),
            59 => v = vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            _ => {}
        }
        if i == 6 {
            v[0] += 0.01;
        }
        emb.extend_from_slice(&v);
    }
    let oof_path = dir.join("oof.jsonl");
    write_lines(&oof_path, &oof);
    let emb_rows: Vec<Value> = (0..60)
        .map(|i| json!({"id": format!("s{i}"), "embedding": emb[i * 8..(i + 1) * 8]}))
        .collect();
    let emb_path = dir.join("emb.jsonl");
    write_lines(&emb_path, &emb_rows);
    (oof_path, emb_path)
}

fn options(emb: &Path) -> IssuesOptions {
    IssuesOptions {
        embeddings: Some(EmbeddingSource {
            path: emb.to_path_buf(),
            key: None,
        }),
        threads: 2,
        ..IssuesOptions::default()
    }
}

#[test]
fn every_kind_is_found_ranked_and_written_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (oof, emb) = fixture(dir.path());
    let out = dir.path().join("issues.jsonl");
    let found = issues::run(&oof, &options(&emb), &out).unwrap();
    let rows: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), found.rows.len());
    let by_id = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    let kinds = |r: &Value| -> Vec<String> {
        r["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["kind"].as_str().unwrap().into())
            .collect()
    };

    // The glaring label error ranks first, with its rationale, image and labels.
    let first = &rows[0];
    assert_eq!(first["id"], "s7");
    assert_eq!(first["rank"], 1);
    assert_eq!(first["rationale"], "looks like an ad");
    assert_eq!(first["image"], "/nonexistent/7.png");
    let e = &first["issues"][0];
    assert_eq!(
        (e["kind"].as_str(), e["label"].as_str()),
        (Some("label_error"), Some("spam"))
    );
    assert_eq!(
        (e["given"].as_u64(), e["suggested"].as_u64()),
        (Some(1), Some(0))
    );
    assert!((e["self_confidence"].as_f64().unwrap() - 0.01).abs() < 1e-6);
    assert!(e["reason"].as_str().unwrap().contains("'spam'"));

    // Pairs and the outlier.
    assert!(kinds(by_id("s0")).contains(&"near_duplicate".to_string()));
    assert_eq!(
        by_id("s0")["issues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == "near_duplicate")
            .unwrap()["with"],
        "s6"
    );
    let s2 = by_id("s2");
    assert!(
        kinds(s2).contains(&"conflicting_duplicate".to_string()),
        "{s2}"
    );
    assert!(!kinds(s2).contains(&"near_duplicate".to_string()));
    assert!(kinds(by_id("s59")).contains(&"outlier".to_string()));

    // Ranks are 1..n, label errors before every other tier.
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["rank"], i + 1);
    }
    let last_error = rows
        .iter()
        .rposition(|r| kinds(r).contains(&"label_error".to_string()))
        .unwrap();
    let first_other = rows
        .iter()
        .position(|r| !kinds(r).contains(&"label_error".to_string()))
        .unwrap();
    assert!(last_error < first_other);

    // The unknown label is shown as null, and never flagged.
    assert!(rows.iter().all(|r| {
        r["id"] != "s8"
            || r["issues"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["label"] != "hate")
    }));
    assert_eq!(found.summary.by_kind.get(&Kind::Outlier), Some(&1));
    assert_eq!(found.summary.embedded, Some(60));
    let text = found.summary.to_string();
    assert!(
        text.contains("label_error") && text.contains("rows with a vector: 60"),
        "{text}"
    );
}

#[test]
fn the_label_errors_alone_follow_confident_learnings_rank() {
    let dir = tempfile::tempdir().unwrap();
    let (oof, _) = fixture(dir.path());
    let data = issues::Oof::read(&oof).unwrap();
    let probs: Vec<f64> = data
        .rows
        .iter()
        .flat_map(|r| r.scores.iter().map(|&x| f64::from(x)))
        .collect();
    let labels: Vec<Option<bool>> = data.rows.iter().flat_map(|r| r.labels.clone()).collect();
    for rank_by in [RankBy::SelfConfidence, RankBy::NormalizedMargin] {
        let confident = Options {
            filter_by: FilterBy::Both,
            rank_by,
            ..Options::default()
        };
        let want = confident::find_multilabel_issues(&probs, 2, &labels, &confident);
        let opts = IssuesOptions {
            confident,
            ..IssuesOptions::default()
        };
        let found = issues::find_issues(&oof, &opts).unwrap();
        let got: Vec<&str> = found.rows.iter().map(|r| r.id.as_str()).collect();
        let want: Vec<&str> = want
            .ranked
            .iter()
            .map(|&i| data.rows[i].id.as_str())
            .collect();
        assert!(!got.is_empty());
        assert_eq!(got, want);
        assert_eq!(found.summary.embedded, None);
        assert!(
            found
                .rows
                .iter()
                .all(|r| r.issues.iter().all(|i| i.kind == Kind::LabelError))
        );
    }
}

#[test]
fn a_bad_line_names_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (oof, emb) = fixture(dir.path());
    let mut text = std::fs::read_to_string(&oof).unwrap();
    text.push_str("{\"id\": \"x\", \"scores\": {\"spam\": 0.5}, \"labels\": {}}\n");
    std::fs::write(&oof, text).unwrap();
    let out = dir.path().join("issues.jsonl");
    let e = issues::run(&oof, &options(&emb), &out).unwrap_err();
    assert!(matches!(e, CurateError::BadLine { line: 61, .. }), "{e}");
    assert!(
        e.to_string().contains("oof.jsonl:61") && e.to_string().contains("hate"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn an_embedding_id_missing_from_the_scores_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (oof, emb) = fixture(dir.path());
    let mut text = std::fs::read_to_string(&emb).unwrap();
    text.push_str("{\"id\": \"ghost\", \"embedding\": [1,0,0,0,0,0,0,0]}\n");
    std::fs::write(&emb, text).unwrap();
    let out = dir.path().join("issues.jsonl");
    let e = issues::run(&oof, &options(&emb), &out).unwrap_err();
    assert!(e.is_usage() && e.to_string().contains("'ghost'"), "{e}");
    assert!(!out.exists());
}

#[test]
fn an_outlier_fraction_flags_that_many_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (oof, emb) = fixture(dir.path());
    let opts = IssuesOptions {
        outliers: OutlierRule::Fraction(0.1),
        ..options(&emb)
    };
    let found = issues::find_issues(&oof, &opts).unwrap();
    assert_eq!(found.summary.by_kind.get(&Kind::Outlier), Some(&6));
}

/// Not a test of speed (that is not asserted), a figure: `cargo test -p vigil-curate
/// --release -- --ignored --nocapture neighbour_search_figure`.
#[test]
#[ignore]
fn neighbour_search_figure() {
    let (n, d) = (10_000, 384);
    let mut rng = SplitMix64::new(9);
    let raw: Vec<f32> = (0..n * d).map(|_| rng.unit() as f32 - 0.5).collect();
    let ids = (0..n).map(|i| i.to_string()).collect();
    let emb = Embeddings::new("embedding", ids, d, raw);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = std::time::Instant::now();
    let nb = neighbours::search(&emb, 10, 0.95, threads);
    println!(
        "{n} x {d}, k=10, {threads} threads: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(nb.knn.len(), n);
}
