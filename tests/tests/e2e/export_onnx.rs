//! `vigil export` on a real run: a 2-worker run of `configs/tiny.yaml` (which
//! exports model.onnx and the Triton files itself), then its last checkpoint and its
//! published version are published again into a second repository, and
//! `vigil predict` scores every copy the same. Bad sources exit 2, naming them.

use crate::util;

use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);
const VAL: &str = "datasets/sample/val.jsonl";

fn predict(repo: &Path, version: &str) -> String {
    let out = util::run_with_timeout(
        util::vigil().args(["predict", "--model"]).arg(repo).args([
            "--version",
            version,
            "--input",
            VAL,
        ]),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "vigil predict failed\n{se}");
    // The version number differs between repositories; the scores must not.
    so.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("version");
            v.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn checkpoints_and_versions_are_republished_with_onnx_and_triton_files() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-onnx-e2e");
    let _ = std::fs::remove_dir_all(&root);
    let run = root.join("run");
    let out = util::run_with_timeout(
        &mut util::tiny_launch(&run, 2, &["logging.histogram_every=null"]),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "vigil launch failed\n{so}\n{se}");
    let trained = run.join("export/tiny");
    for f in ["config.pbtxt", "labels.txt", "1/model.onnx"] {
        assert!(trained.join(f).is_file(), "the run wrote {f}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trained.join("1/MANIFEST.json")).unwrap()).unwrap();
    assert!(manifest["files"]["model.onnx"]["sha256"].is_string());

    let repo = root.join("other/tiny");
    let ckpt = run.join("checkpoints/step-40");
    let out = util::run_with_timeout(
        util::vigil()
            .args(["export", "--checkpoint"])
            .arg(&ckpt)
            .arg("--repository")
            .arg(&repo),
        LIMIT,
    );
    let (_, se) = util::texts(&out);
    assert!(
        out.status.success(),
        "vigil export --checkpoint failed\n{se}"
    );
    assert!(se.contains("published version 1 (step 40)"), "{se}");
    let out = util::run_with_timeout(
        util::vigil()
            .args(["export", "--model"])
            .arg(&trained)
            .args(["--triton-instance", "gpu", "--repository"])
            .arg(&repo),
        LIMIT,
    );
    let (_, se) = util::texts(&out);
    assert!(out.status.success(), "vigil export --model failed\n{se}");
    assert!(se.contains("published version 2"), "{se}");
    let pbtxt = std::fs::read_to_string(repo.join("config.pbtxt")).unwrap();
    assert!(
        pbtxt.contains("name: \"tiny\"") && pbtxt.contains("KIND_GPU"),
        "{pbtxt}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("labels.txt")).unwrap(),
        "hate\nharassment\nviolence\nself_harm\nspam\n"
    );
    // The step-40 checkpoint is the exported model, with the step-40 evaluation's
    // thresholds: scores and decisions equal everywhere.
    let want = predict(&trained, "1");
    assert_eq!(predict(&repo, "1"), want);
    assert_eq!(predict(&repo, "2"), want);

    for (args, names) in [
        (
            vec!["--checkpoint", "/nonexistent/step-3"],
            "/nonexistent/step-3",
        ),
        (vec!["--model", "/nonexistent/repo"], "/nonexistent/repo"),
    ] {
        let out = util::run_with_timeout(
            util::vigil()
                .arg("export")
                .args(&args)
                .arg("--repository")
                .arg(root.join("never/tiny")),
            LIMIT,
        );
        let (_, se) = util::texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {se}");
        assert!(se.contains(names), "{se}");
        assert!(!root.join("never").exists(), "nothing is written");
    }
}
