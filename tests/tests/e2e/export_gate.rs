//! The champion/challenger gate in real runs: the newest published version is
//! re-scored on the same validation data; a worse challenger is not published, a
//! better one is, and `export-decision.json` says why.

use crate::util;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

fn train(run: &Path, repo: &Path, steps: u32) -> Value {
    let mut cmd = util::vigil();
    cmd.args([
        "launch",
        "configs/tiny.yaml",
        "--set",
        "logging.console=rank0",
    ])
    .args(["--set", &format!("run.output_dir={}", run.display())])
    .args(["--set", &format!("export.dir={}", repo.display())])
    .args([
        "--set",
        "train.epochs=10",
        "--set",
        &format!("train.max_steps={steps}"),
    ])
    .args([
        "--set",
        "checkpoint.every_steps=null",
        "--set",
        "train.eval_every=null",
    ])
    .args([
        "--set",
        "export.gate={metric: val/macro_auroc, min_delta: 0.001}",
    ]);
    let out = util::run_with_timeout(&mut cmd, Duration::from_secs(240));
    let (so, se) = util::texts(&out);
    assert!(
        out.status.success(),
        "a rejected challenger still exits 0\n{so}{se}"
    );
    serde_json::from_str(&std::fs::read_to_string(run.join("export-decision.json")).unwrap())
        .unwrap()
}

#[test]
fn a_worse_challenger_is_not_published_and_a_better_one_is() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let first = train(&tmp.path().join("a"), &repo, 80);
    assert_eq!(first["outcome"], "first_version", "{first}");
    assert_eq!(first["published_version"], 1);

    let worse = train(&tmp.path().join("b"), &repo, 5);
    assert_eq!(worse["published"], false, "{worse}");
    assert_eq!(worse["outcome"], "not_better");
    assert_eq!(worse["champion_version"], 1);
    assert!(worse["challenger_score"].as_f64() < worse["champion_score"].as_f64());
    assert!(
        worse["reason"]
            .as_str()
            .unwrap()
            .contains("does not beat champion version 1")
    );
    assert!(!repo.join("tiny/2").exists());

    let better = train(&tmp.path().join("c"), &repo, 400);
    assert_eq!(better["published"], true, "{better}");
    assert_eq!(better["outcome"], "better");
    assert_eq!(better["published_version"], 2);
    assert!(better["challenger_score"].as_f64() > better["champion_score"].as_f64());
    assert!(repo.join("tiny/2/MANIFEST.json").exists());
}
