//! `vigil embed` and `vigil bench` from the command line: a run over the committed
//! test images when the pretrained cache is present, and clear failures that
//! write no output file.

use crate::util;

use std::fs;
use std::time::Duration;

use util::{pretrained_or_skip, repo_root, run_with_timeout, texts, vigil};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn embeds_text_and_images_into_jsonl() {
    let (Some(minilm), Some(effnet)) = (
        pretrained_or_skip("all-minilm-l6-v2"),
        pretrained_or_skip("efficientnet-b0/best_efficientnet_b0.pth"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let images = repo_root().join("trainer/tests/fixtures/images");
    fs::copy(images.join("red-circle.png"), dir.path().join("red.png")).unwrap();
    let input = dir.path().join("items.jsonl");
    fs::write(
        &input,
        "{\"id\": \"a\", \"text\": \"hello there\", \"image\": \"red.png\"}\n{\"id\": 2, \"text\": \"ok\"}\n",
    )
    .unwrap();
    let output = dir.path().join("out.jsonl");
    let out = run_with_timeout(
        vigil()
            .arg("embed")
            .arg("--text-encoder")
            .arg(&minilm)
            .arg("--image-encoder")
            .arg(&effnet)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output),
        LIMIT,
    );
    assert!(out.status.success(), "{:?}", texts(&out));
    let rows: Vec<serde_json::Value> = fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["text_embedding"].as_array().unwrap().len(), 384);
    assert_eq!(rows[0]["image_embedding"].as_array().unwrap().len(), 1280);
    assert!(rows[1].get("image_embedding").is_none());
}

#[test]
fn a_corrupt_encoder_fails_naming_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("broken.pth");
    fs::write(&pth, b"not a torch file").unwrap();
    let input = dir.path().join("items.jsonl");
    fs::write(&input, "{\"id\": 1, \"image\": \"x.png\"}\n").unwrap();
    let output = dir.path().join("out.jsonl");
    let out = run_with_timeout(
        vigil()
            .args(["embed", "--image-encoder"])
            .arg(&pth)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output),
        LIMIT,
    );
    assert!(!out.status.success());
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("broken.pth"), "{stderr}");
    assert!(!output.exists());
    // No temporary output is left beside the target.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["broken.pth", "items.jsonl"]);
}

#[test]
fn embed_needs_a_source_and_bench_lists_train() {
    let out = run_with_timeout(vigil().args(["embed", "--input", "x.jsonl"]), LIMIT);
    assert!(!out.status.success());
    assert!(texts(&out).1.contains("--text-encoder"));
    let out = run_with_timeout(vigil().args(["bench", "--help"]), LIMIT);
    assert!(out.status.success());
    assert!(texts(&out).0.contains("train"));
}

#[test]
fn bench_ndarray_without_the_feature_is_a_usage_error() {
    // The tests build `vigil` without `bench-ndarray`: the backend is not compiled in.
    for backend in ["ndarray", "both"] {
        let out = run_with_timeout(
            vigil().args(["bench", "train", "--backend", backend, "--steps", "1"]),
            LIMIT,
        );
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
        assert!(stderr.contains("--features bench-ndarray"), "{stderr}");
        assert!(!stdout.contains("samples/s"), "nothing was timed: {stdout}");
    }
}
