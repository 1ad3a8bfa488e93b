//! `vigil validate`: every shipped config is valid; user mistakes exit 2 with a
//! message naming the file or override, the key and the line, and write nothing.

use crate::util;

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

/// `vigil validate` with the environment `env` and `args`; (exit code, stderr).
fn validate_with(env: &[(&str, &std::path::Path)], args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = vigil();
    cmd.arg("validate").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_with_timeout(&mut cmd, LIMIT);
    let (so, se) = texts(&out);
    assert!(!se.contains("panicked"), "{se}");
    (out.status.code(), format!("{so}{se}"))
}

#[test]
fn schedule_longer_than_an_epoch_bounded_run_exits_2_naming_every_key() {
    // configs/tiny.yaml by epochs: 640 rows / (2 ranks × 8) = 40 steps per epoch.
    let (code, err) = validate_with(
        &[],
        &[
            "configs/tiny.yaml",
            "--set",
            "train.max_steps=null",
            "--set",
            "train.epochs=1",
            "--set",
            "optim.warmup_steps=40",
            "--set",
            "train.eval_every=41",
            "--set",
            "checkpoint.every_steps=100",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    for want in [
        "--set optim.warmup_steps=40: optim.warmup_steps: is 40: the learning rate would never \
         leave warmup, but the run has only 40 steps (train.epochs 1 × 640 rows of data.train \
         / (2 ranks × train.batch_size 8)); make it less than 40 (or 0)",
        "--set train.eval_every=41: train.eval_every: is 41: no evaluation before the last \
         step, but the run has only 40 steps",
        "--set checkpoint.every_steps=100: checkpoint.every_steps: is 100: no checkpoint \
         before the run ends, but the run has only 40 steps",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("warning"), "{err}");
    // The same counts fit two epochs.
    let (code, err) = validate_with(
        &[],
        &[
            "configs/tiny.yaml",
            "--set",
            "train.max_steps=null",
            "--set",
            "train.epochs=2",
            "--set",
            "optim.warmup_steps=40",
            "--set",
            "train.eval_every=41",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn intervals_longer_than_max_steps_exit_2_naming_the_key_and_its_line() {
    let (code, err) = validate_with(
        &[],
        &[
            "configs/tiny.yaml",
            "--set",
            "train.eval_every=50",
            "--set",
            "checkpoint.every_steps=41",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "--set train.eval_every=50: train.eval_every: is 50: no evaluation before the last \
             step, but the run has only 40 steps (train.max_steps); make it at most 40 (or null)"
        ),
        "{err}"
    );
    assert!(
        err.contains("--set checkpoint.every_steps=41: checkpoint.every_steps: is 41"),
        "{err}"
    );
    // A smoke run shortened on the command line: the file's intervals no longer fit,
    // and the error points at their lines in the file.
    let (code, err) = validate_with(&[], &["configs/tiny.yaml", "--set", "train.max_steps=8"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("configs/tiny.yaml:45:") && err.contains("train.eval_every: is 20"),
        "{err}"
    );
    assert!(err.contains("checkpoint.every_steps: is 10"), "{err}");
    // ... and fits once they are shortened too.
    let (code, err) = validate_with(
        &[],
        &[
            "configs/tiny.yaml",
            "--set",
            "train.max_steps=8",
            "--set",
            "train.eval_every=null",
            "--set",
            "checkpoint.every_steps=8",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
}

/// A Hateful-Memes-sized training file (8,500 rows) under `<dir>/hateful_memes/`.
fn hateful_memes_rows(dir: &std::path::Path) {
    let hm = dir.join("hateful_memes");
    fs::create_dir_all(&hm).unwrap();
    let row = "{\"id\":1,\"img\":\"img/1.png\",\"label\":0,\"text\":\"x\"}\n";
    fs::write(hm.join("train.jsonl"), row.repeat(8500)).unwrap();
}

#[test]
fn gpu_8x_schedule_fits_its_340_steps_and_the_old_one_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    hateful_memes_rows(tmp.path());
    let env = [("DATA", tmp.path())];
    let (code, out) = validate_with(&env, &["configs/gpu-8x.yaml"]);
    assert_eq!(code, Some(0), "{out}");
    // What the config said before: 500 warmup steps of a 340-step run.
    let (code, err) = validate_with(
        &env,
        &[
            "configs/gpu-8x.yaml",
            "--set",
            "optim.warmup_steps=500",
            "--set",
            "train.eval_every=500",
            "--set",
            "checkpoint.every_steps=500",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "the run has only 340 steps (train.epochs 10 × 8500 rows of data.train / (8 ranks \
             × train.batch_size 32))"
        ),
        "{err}"
    );
    assert_eq!(err.matches("only 340 steps").count(), 3, "{err}");
}

#[test]
fn version_lists_the_features_and_a_cpu_build_refuses_a_gpu_launch() {
    let out = run_with_timeout(vigil().arg("--version"), LIMIT);
    let (so, _) = texts(&out);
    assert!(out.status.success());
    // The test build is the default (CPU-only) one.
    assert!(so.contains("(features: none (CPU only))"), "{so}");
    // validate accepts the GPU config but notes that this binary cannot run it.
    let (code, out) = validate_with(&[], &["configs/gpu-8x.yaml"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("note: launch.device: cuda needs a vigil built with the `cuda` feature"),
        "{out}"
    );
    // launch refuses it before starting a worker, naming the key, its line and the flag.
    let tmp = tempfile::tempdir().unwrap();
    let out = run_with_timeout(
        vigil()
            .args(["launch", "configs/gpu-8x.yaml"])
            .env("SCRATCH", tmp.path()),
        LIMIT,
    );
    let (so, se) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{so}{se}");
    assert!(
        se.contains("configs/gpu-8x.yaml:12:3: launch.device: cuda needs a vigil built with"),
        "{se}"
    );
    assert!(se.contains("--features cuda,nccl"), "{se}");
    assert!(
        se.contains("launch.backend: nccl needs a vigil built with the `nccl` feature"),
        "{se}"
    );
    assert!(
        fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "launch wrote into the run directory"
    );
}
