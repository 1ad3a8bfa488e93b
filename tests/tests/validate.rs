//! `vigil validate`: every shipped config is valid; user mistakes exit 2 with a
//! message naming the file or override, the key and the line, and write nothing.

mod util;

use std::fs;
use std::time::Duration;

use util::{repo_root, run_with_timeout, texts, vigil};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn every_shipped_config_validates() {
    let dir = repo_root().join("configs");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let out = run_with_timeout(vigil().arg("validate").arg(&path), LIMIT);
            let (so, se) = texts(&out);
            assert!(out.status.success(), "{}: {so}{se}", path.display());
            n += 1;
        }
    }
    assert!(n >= 4, "expected the four documented configs, found {n}");
}

/// A scratch config whose output directory must stay absent after a failed validate.
fn bad_config(body: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let text = format!(
        "run:\n  name: bad\n  output_dir: {}\nmodel:\n  labels: [hate]\n  text:\n    encoder: scratch\n    tokenizer: t.json\ndata:\n  train: t.jsonl\n{body}",
        out_dir.display()
    );
    let cfg = tmp.path().join("bad.yaml");
    fs::write(&cfg, text).unwrap();
    (tmp, cfg, out_dir)
}

fn expect_usage_error(args: &[&str], cfg: &std::path::Path, out_dir: &std::path::Path) -> String {
    let out = run_with_timeout(vigil().arg("validate").arg(cfg).args(args), LIMIT);
    let (so, se) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "stdout: {so}\nstderr: {se}");
    assert!(
        !out_dir.exists(),
        "validate must not create the output directory"
    );
    assert!(
        !se.contains("panicked") && !se.contains("RUST_BACKTRACE"),
        "{se}"
    );
    se
}

#[test]
fn misspelled_key_exits_2_with_file_line_and_suggestion() {
    let (_t, cfg, out) = bad_config("optim:\n  warmpu_steps: 3\n");
    let err = expect_usage_error(&[], &cfg, &out);
    let want = format!("{}:12:3: optim.warmpu_steps: unknown key", cfg.display());
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("did you mean 'warmup_steps'"), "{err}");
}

#[test]
fn wrong_type_exits_2_naming_key_and_line() {
    let (_t, cfg, out) = bad_config("train:\n  batch_size: \"lots\"\n");
    let err = expect_usage_error(&[], &cfg, &out);
    assert!(err.contains(&format!("{}:12:", cfg.display())), "{err}");
    assert!(
        err.contains("train.batch_size: invalid type: string \"lots\""),
        "{err}"
    );
}

#[test]
fn cross_field_problems_exit_2_all_at_once() {
    let (_t, cfg, out) = bad_config(
        "optim:\n  warmup_steps: 50\ntrain:\n  max_steps: 10\ncheckpoint:\n  keep_best: 2\n",
    );
    let err = expect_usage_error(&[], &cfg, &out);
    assert!(
        err.contains(":12:3: optim.warmup_steps: must be < train.max_steps (10)"),
        "{err}"
    );
    assert!(
        err.contains(":16:3: checkpoint.keep_best: needs checkpoint.monitor"),
        "{err}"
    );
}

#[test]
fn unknown_override_key_exits_2() {
    let (_t, cfg, out) = bad_config("");
    let err = expect_usage_error(&["--set", "no.such.key=1"], &cfg, &out);
    assert!(
        err.contains("--set no.such.key=1: no.such.key: unknown key 'no.such.key'"),
        "{err}"
    );
}

#[test]
fn bad_override_value_exits_2() {
    let (_t, cfg, out) = bad_config("");
    let err = expect_usage_error(&["--set", "optim.lr=abc"], &cfg, &out);
    assert!(
        err.contains("--set optim.lr=abc: optim.lr: invalid type: string \"abc\""),
        "{err}"
    );
}

#[test]
fn missing_config_file_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.yaml");
    let out = run_with_timeout(vigil().arg("validate").arg(&missing), LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("nope.yaml"));
}

#[test]
fn print_shows_resolved_config_with_overrides() {
    let out = run_with_timeout(
        vigil().args([
            "validate",
            "configs/tiny.yaml",
            "--print",
            "--set",
            "optim.lr=0.01",
        ]),
        LIMIT,
    );
    let (so, se) = texts(&out);
    assert!(out.status.success(), "{se}");
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&so).unwrap();
    assert_eq!(v["optim"]["lr"].as_f64(), Some(0.01));
    assert_eq!(v["run"]["name"].as_str(), Some("tiny"));
}

#[test]
fn version_and_help_work() {
    let out = run_with_timeout(vigil().arg("--version"), LIMIT);
    assert!(out.status.success());
    assert!(texts(&out).0.starts_with("vigil "));
    let out = run_with_timeout(vigil().args(["validate", "--help"]), LIMIT);
    assert!(out.status.success());
    assert!(texts(&out).0.contains("--set"));
}
