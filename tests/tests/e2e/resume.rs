//! Crash and preemption of real training runs: a worker SIGKILLed at a step the
//! test chooses (mid-epoch, and right after an epoch boundary checkpoint) is
//! restarted by the launcher, and a run preempted with SIGTERM is continued by a
//! second `vigil launch`; each ends with an exported `model.safetensors` whose
//! sha256 equals that of an uninterrupted run.

use crate::util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(240);

/// Two epochs of tiny (40 steps each), a checkpoint every 10 steps, dropout on:
/// masks are re-seeded from (seed, step, rank) every step, so a resumed run must
/// draw the ones the uninterrupted run drew.
const RUN: [&str; 6] = [
    "train.epochs=2",
    "train.max_steps=80",
    "checkpoint.every_steps=10",
    "logging.interval=10",
    "model.text.dropout=0.1",
    "model.head.dropout=0.2",
];

fn command(dir: &Path) -> Command {
    let mut cmd = util::tiny_launch(dir, 2, &RUN);
    cmd.args(["--max-restarts", "1"]);
    cmd
}

fn exported_sha(dir: &Path) -> String {
    let bytes = std::fs::read(dir.join("export/tiny/1/model.safetensors")).unwrap();
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn reference(tmp: &Path, extra: &[&str]) -> String {
    let dir = tmp.join("reference");
    let mut cmd = command(&dir);
    for e in extra {
        cmd.args(["--set", e]);
    }
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    assert!(out.status.success(), "{}", util::texts(&out).1);
    exported_sha(&dir)
}

fn killed_at(tmp: &Path, step: u64) -> (String, String) {
    let dir = tmp.join(format!("killed-{step}"));
    let mut cmd = command(&dir);
    cmd.env("VIGIL_DEBUG_KILL_AT_STEP", step.to_string())
        .env("VIGIL_DEBUG_KILL_RANK", "1");
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    (exported_sha(&dir), format!("{so}{se}"))
}

#[test]
fn sigkill_mid_epoch_and_at_an_epoch_boundary_resume_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let want = reference(tmp.path(), &[]);
    // Mid-epoch: killed after step 25, resumes from the step-20 checkpoint.
    let (got, log) = killed_at(tmp.path(), 25);
    assert!(
        log.contains("restart"),
        "the launcher should report a restart:\n{log}"
    );
    assert!(log.contains("resuming from checkpoint step 20"), "{log}");
    assert_eq!(got, want, "model after a mid-epoch crash differs");
    // Killed after step 41: resumes from step 40, saved exactly at the end of epoch 0.
    let (got, log) = killed_at(tmp.path(), 41);
    assert!(
        log.contains("resuming from checkpoint step 40 (epoch 0, batch 40)"),
        "{log}"
    );
    assert_eq!(
        got, want,
        "model after a crash past an epoch boundary differs"
    );
}

#[test]
fn sigterm_preemption_then_a_second_launch_gives_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    // Long enough (10 epochs) that the signal lands mid-run.
    let long = ["train.epochs=10", "train.max_steps=400"];
    let want = reference(tmp.path(), &long);
    let dir = tmp.path().join("preempted");
    let with_long = |mut cmd: Command| {
        for e in long {
            cmd.args(["--set", e]);
        }
        cmd
    };
    let mut cmd = with_long(command(&dir));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    // Wait for the first checkpoint, then preempt.
    while !dir.join("checkpoints/LATEST").exists() {
        assert!(started.elapsed() < LIMIT, "no checkpoint appeared");
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling a child process we own.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    // The signal lands around step 10 of 400: the launcher must report preemption,
    // and the workers must have checkpointed the step they stopped at (not merely
    // been killed after the grace period, leaving the last periodic checkpoint).
    let first = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(75), "{first}");
    let stopped_at = first
        .split("preempted: checkpoint written at step ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("workers did not checkpoint on SIGTERM:\n{first}"))
        .to_string();
    let latest = std::fs::read_to_string(dir.join("checkpoints/LATEST")).unwrap();
    assert_eq!(latest.trim(), format!("step-{stopped_at}"));
    assert!(
        !dir.join("export/tiny/1").exists(),
        "a preempted run must not export"
    );
    let out = util::run_with_timeout(&mut with_long(command(&dir)), LIMIT);
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{so}{se}");
    let resumed = format!("resuming from checkpoint step {stopped_at} ");
    assert!(format!("{so}{se}").contains(&resumed), "{so}{se}");
    assert_eq!(
        exported_sha(&dir),
        want,
        "model after preemption and resume differs"
    );
}
