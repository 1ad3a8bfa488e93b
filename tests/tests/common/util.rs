//! Helpers shared by the end-to-end tests: find the `vigil` binary, run it with a
//! timeout, and give each test a scratch directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root (tests run `vigil` from there, like a user would).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `vigil` binary built for this test run.
pub fn vigil_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_vigil") {
        return PathBuf::from(p);
    }
    // Integration tests of another package: the binary sits beside `deps/`.
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("vigil");
    assert!(
        bin.exists(),
        "{} not built; run `cargo build -p vigil-launcher` first (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// Whether this run is CI's: `CI` set to anything but empty, `0` or `false` (CI
/// services set `CI=true`; `.ci/run` exports `CI=1`).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `sub` inside the pretrained cache (`$VIGIL_PRETRAINED`, default
/// `~/.cache/vigil/pretrained`), or None after printing why the test skips.
///
/// Under CI a missing file fails the test instead: CI fetches the cache first, so a
/// skip there would hide a test that never ran.
pub fn pretrained_or_skip(sub: &str) -> Option<PathBuf> {
    let root = vigil_model::pretrained_cache().unwrap_or_default();
    let path = root.join(sub);
    if path.exists() {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "{} is missing under CI (CI is set): run scripts/fetch-pretrained.sh before the \
         tests (.ci/run does), or set VIGIL_PRETRAINED to the cache",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} not found; run scripts/fetch-pretrained.sh (or set VIGIL_PRETRAINED)",
        path.display()
    );
    None
}

/// A `vigil` command run from the repository root.
pub fn vigil() -> Command {
    let mut cmd = Command::new(vigil_bin());
    cmd.current_dir(repo_root());
    cmd
}

/// Runs `cmd` to completion, killing it after `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "command timed out after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Standard output and error of a finished command, as text.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `vigil launch configs/tiny.yaml` with `nproc` workers into `dir` (its run
/// directory, export under `dir/export`), JSON progress from rank 0, and each of
/// `overrides` as a `--set`.
pub fn tiny_launch(dir: &Path, nproc: u32, overrides: &[&str]) -> Command {
    let mut cmd = vigil();
    cmd.args([
        "launch",
        "configs/tiny.yaml",
        "--nproc-per-node",
        &nproc.to_string(),
    ])
    .args([
        "--set",
        "logging.format=json",
        "--set",
        "logging.console=rank0",
    ])
    .args(["--set", &format!("run.output_dir={}", dir.display())])
    .args([
        "--set",
        &format!("export.dir={}", dir.join("export").display()),
    ]);
    for o in overrides {
        cmd.args(["--set", o]);
    }
    cmd
}

/// The `{"event":"train",...}` progress records in a launch's standard output.
pub fn train_records(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, rest)| rest))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "train")
        .collect()
}

/// The labels of `configs/tiny.yaml` (and of the bundled sample), in logit order.
pub const TINY_LABELS: [&str; 5] = ["hate", "harassment", "violence", "self_harm", "spam"];

/// Every per-label metric an evaluation report holds.
pub const LABEL_METRICS: [&str; 15] = [
    "positives",
    "negatives",
    "unknown",
    "precision",
    "recall",
    "f1",
    "best_threshold",
    "precision_at_best",
    "recall_at_best",
    "f1_at_best",
    "auroc",
    "auprc",
    "precision_at_recall_80",
    "precision_at_recall_90",
    "ece",
];
