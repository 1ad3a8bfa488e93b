//! `vigil datasets synth` reproduces the bundled sample byte for byte, and
//! `vigil datasets audit` reports and exits as documented.

use crate::util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn synth_reproduces_the_bundled_sample_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sample");
    let run = util::run_with_timeout(
        util::vigil()
            .args(["datasets", "synth", "--out"])
            .arg(&out)
            .args(["--rows", "800", "--seed", "2026"]),
        LIMIT,
    );
    let (stdout, stderr) = util::texts(&run);
    assert!(run.status.success(), "{stderr}");
    assert!(stdout.contains("640 train rows, 160 val rows"), "{stdout}");
    let want = files(&util::repo_root().join("datasets/sample"));
    let got = files(&out);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "file lists differ"
    );
    for (name, bytes) in &want {
        assert!(got[name] == *bytes, "{name} differs from datasets/sample");
    }
}

#[test]
fn audit_of_the_sample_is_clean_and_strict_passes() {
    let run = util::run_with_timeout(
        util::vigil().args([
            "datasets",
            "audit",
            "datasets/sample/val.jsonl",
            "--against",
            "datasets/sample/train.jsonl",
            "--strict",
            "--json",
        ]),
        LIMIT,
    );
    let (stdout, stderr) = util::texts(&run);
    assert!(run.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["rows"], 160);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["leakage"]["shared_items"], 0);
    assert_eq!(report["labels"].as_array().unwrap().len(), 5);
}

#[test]
fn audit_strict_exits_3_on_findings_and_2_on_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"id\": \"a\", \"text\": \"x\", \"labels\": {\"hate\": 1}}\n\
         {\"id\": \"b\", \"text\": \"x\", \"labels\": {\"hate\": 0}}\n\
         {\"id\": \"c\", \"image\": \"img/none.png\"}\n",
    )
    .unwrap();
    let run = util::run_with_timeout(
        util::vigil()
            .args(["datasets", "audit", "--strict"])
            .arg(&file),
        LIMIT,
    );
    let (stdout, _) = util::texts(&run);
    assert_eq!(run.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("1 with conflicting labels"), "{stdout}");
    assert!(
        stdout.contains("bad.jsonl:3: image 'img/none.png' not found"),
        "{stdout}"
    );
    let lenient =
        util::run_with_timeout(util::vigil().args(["datasets", "audit"]).arg(&file), LIMIT);
    assert_eq!(lenient.status.code(), Some(0));

    let missing = util::run_with_timeout(
        util::vigil().args(["datasets", "audit", "no/such/file.jsonl"]),
        LIMIT,
    );
    let (_, stderr) = util::texts(&missing);
    assert_eq!(missing.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no/such/file.jsonl"), "{stderr}");
}
