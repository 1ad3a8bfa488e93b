//! `vigil embed` and `vigil bench` from the command line: a run over the committed
//! test images when the pretrained cache is present, and clear failures that
//! write no output file.

mod util;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use util::{repo_root, run_with_timeout, texts, vigil};

const LIMIT: Duration = Duration::from_secs(120);

fn pretrained() -> Option<PathBuf> {
    let root = std::env::var_os("VIGIL_PRETRAINED")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vigil/pretrained"))
        })?;
    root.join("efficientnet-b0/best_efficientnet_b0.pth")
        .is_file()
        .then_some(root)
}

#[test]
fn embeds_text_and_images_into_jsonl() {
    let Some(root) = pretrained() else {
        eprintln!("SKIPPED: no pretrained cache; run scripts/fetch-pretrained.sh");
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
            .arg(root.join("all-minilm-l6-v2"))
            .arg("--image-encoder")
            .arg(root.join("efficientnet-b0/best_efficientnet_b0.pth"))
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
