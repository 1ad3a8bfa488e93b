//! Nothing lost (#32): an end-of-run export that failed, crashed or was interrupted
//! is retried by the restart and by a relaunch, and a persistent failure exits
//! non-zero; one unreadable version never hides the good ones below it; `vigil
//! worker` run alone takes the output directory's lock.

use crate::serve_util;
use crate::util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_util::{Served, get};

const LIMIT: Duration = Duration::from_secs(240);

/// A one-worker tiny run of 20 steps (one evaluation, at the end) into `dir`, its
/// export into `export`.
fn tiny(dir: &Path, export: &Path) -> Command {
    let mut cmd = util::tiny_launch(
        dir,
        1,
        &[
            "train.max_steps=20",
            "train.eval_every=null",
            "checkpoint.every_steps=10",
            "logging.histogram_every=null",
        ],
    );
    cmd.args(["--set", &format!("export.dir={}", export.display())]);
    cmd
}

fn versions(repo: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(repo)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn decision(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("export-decision.json")).unwrap())
        .unwrap()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Regression (#32, repro of the issue): `export.dir` under a file. Before, the
/// restart resumed from the last checkpoint, found nothing to do and exited 0
/// without a version; a relaunch after fixing the cause exported nothing either.
#[test]
fn a_failed_export_fails_the_launch_and_a_relaunch_after_the_fix_publishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("notadir");
    std::fs::write(&blocker, "x").unwrap();
    let run = tmp.path().join("run");
    let export = blocker.join("export");

    let out = util::run_with_timeout(&mut tiny(&run, &export), LIMIT);
    let (so, se) = util::texts(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a lost export is a failure\n{so}{se}"
    );
    assert!(
        se.contains(&blocker.display().to_string()),
        "names the path\n{se}"
    );
    assert!(se.contains("Not a directory"), "names the OS error\n{se}");
    // The restart resumed at the last step and tried the export again.
    assert!(
        se.contains("resumed at step 20: publishing the export the run still owes"),
        "{se}"
    );
    assert!(!run.join("export-decision.json").exists());

    std::fs::remove_file(&blocker).unwrap();
    let out = util::run_with_timeout(&mut tiny(&run, &export), LIMIT);
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{so}{se}");
    assert!(se.contains("resuming from checkpoint step 20"), "{se}");
    assert!(
        util::train_records(&so).is_empty(),
        "no step is trained again\n{so}"
    );
    assert_eq!(versions(&export.join("tiny")), [1]);
    let d = decision(&run);
    assert_eq!(d["published"], true, "{d}");
    assert_eq!(d["published_version"], 1, "{d}");

    // Once paid, nothing is owed: a third launch publishes nothing new.
    let out = util::run_with_timeout(&mut tiny(&run, &export), LIMIT);
    assert!(out.status.success(), "{}", util::texts(&out).1);
    assert_eq!(versions(&export.join("tiny")), [1]);
}

/// A crash inside the export: before the version is published, the restart
/// publishes the same bytes an uninterrupted run does; after it is published (and
/// before the decision file), the restart finds it and publishes no second copy.
#[test]
fn a_crash_during_the_export_is_paid_by_the_restart_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let clean_run = tmp.path().join("clean");
    let clean_export = tmp.path().join("clean-export");
    let out = util::run_with_timeout(&mut tiny(&clean_run, &clean_export), LIMIT);
    assert!(out.status.success(), "{}", util::texts(&out).1);
    let want = sha256(&clean_export.join("tiny/1/model.safetensors"));

    for (at, outcome) in [(1, "no_gate"), (2, "already_published")] {
        let run = tmp.path().join(format!("killed-{at}"));
        let export = tmp.path().join(format!("killed-{at}-export"));
        let out = util::run_with_timeout(
            tiny(&run, &export).env("VIGIL_DEBUG_KILL_IN_EXPORT", at.to_string()),
            LIMIT,
        );
        let (so, se) = util::texts(&out);
        assert!(
            out.status.success(),
            "the restart pays the export\n{so}{se}"
        );
        assert!(
            se.contains("resumed at step 20: publishing the export the run still owes"),
            "{se}"
        );
        assert_eq!(versions(&export.join("tiny")), [1], "kill point {at}");
        assert_eq!(sha256(&export.join("tiny/1/model.safetensors")), want);
        let d = decision(&run);
        assert_eq!(d["outcome"], outcome, "kill point {at}: {d}");
        assert_eq!(d["published_version"], 1, "{d}");
    }
}

/// Copies version `from` of `repo` to `to`, its manifest naming `name` in place of
/// `thresholds.json`.
fn bad_copy(repo: &Path, from: u64, to: u64, name: &str) -> PathBuf {
    let src = repo.join(from.to_string());
    let dst = repo.join(to.to_string());
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let manifest = dst.join("MANIFEST.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("\"thresholds.json\""));
    std::fs::write(
        &manifest,
        text.replace("\"thresholds.json\"", &format!("\"{name}\"")),
    )
    .unwrap();
    std::fs::create_dir_all(dst.join("sub")).unwrap();
    dst
}

/// Regression (#32): a manifest naming `../../etc/passwd` or a directory made
/// `vigil predict` exit 1 and `vigil serve` refuse to start although version 1 was
/// fine.
#[test]
fn a_repository_with_unreadable_versions_predicts_and_serves_the_good_one() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let export = tmp.path().join("export");
    let out = util::run_with_timeout(&mut tiny(&run, &export), LIMIT);
    assert!(out.status.success(), "{}", util::texts(&out).1);
    let repo = export.join("tiny");
    bad_copy(&repo, 1, 2, "../../etc/passwd");
    bad_copy(&repo, 1, 3, "sub");

    let rows = tmp.path().join("rows.jsonl");
    std::fs::write(&rows, "{\"id\": \"a\", \"text\": \"hello there\"}\n").unwrap();
    let out = util::run_with_timeout(
        util::vigil().args([
            "predict",
            "--model",
            repo.to_str().unwrap(),
            "--input",
            rows.to_str().unwrap(),
        ]),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{so}{se}");
    let row: Value = serde_json::from_str(so.lines().next().unwrap()).unwrap();
    assert_eq!(row["version"], 1, "{row}");
    for v in ["2", "3"] {
        assert!(
            se.contains(&format!("version {v}")),
            "warns about {v}\n{se}"
        );
    }

    // `vigil export --model` republishes the newest good version.
    let again = tmp.path().join("again");
    let out = util::run_with_timeout(
        util::vigil().args([
            "export",
            "--model",
            repo.to_str().unwrap(),
            "--repository",
            again.to_str().unwrap(),
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", util::texts(&out).1);

    // `vigil serve` starts, serves version 1 and warns about 2 and 3.
    let mut served = Served::start(
        &[
            "--model-repository",
            repo.to_str().unwrap(),
            "--poll-secs",
            "1",
        ],
        LIMIT,
    );
    assert_eq!(
        get(served.addr, "/v2/models/tiny/versions/1/ready").status,
        200
    );
    let meta = get(served.addr, "/v2/models/tiny").json();
    assert_eq!(meta["versions"], serde_json::json!(["1"]), "{meta}");
    let log = served.log_text();
    assert!(
        log.contains("version 2") && log.contains("version 3"),
        "{log}"
    );
    assert_eq!(served.terminate(Duration::from_secs(30)), Some(0));
}

/// `vigil worker` alone takes the lock `vigil launch` takes: a second one on the same
/// output directory is refused at once, naming the holder.
#[test]
fn a_lone_worker_holds_the_output_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let lock = run.join(".vigil.lock");
    let mut first = util::vigil()
        .args(["worker", "configs/tiny.yaml"])
        .args(["--set", &format!("run.output_dir={}", run.display())])
        .args([
            "--set",
            &format!("export.dir={}", run.join("export").display()),
        ])
        .args([
            "--set",
            "train.max_steps=100000",
            "--set",
            "train.epochs=1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid")) {
        assert!(t.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = util::run_with_timeout(
        &mut util::tiny_launch(&run, 1, &[]),
        Duration::from_secs(30),
    );
    let (_, se) = util::texts(&out);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("in use by another launch"), "{se}");
    assert!(se.contains(&format!("pid {}", first.id())), "{se}");
}
