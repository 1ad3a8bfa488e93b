//! The sbatch script of `vigil render slurm` under a real Slurm (`slurmctld` + `slurmd`,
//! e.g. `scripts/slurm-local.sh start`): a job trains `configs/tiny.yaml` and exports;
//! a second job is preempted mid-training with `scancel --signal=TERM --full` (the batch
//! shell is signalled too), exits 75, requeues itself, runs again, resumes from its
//! checkpoint and exports a model whose sha256 equals the uninterrupted job's.
//!
//! Ignored by default (it needs a running Slurm, which `cargo test --workspace` does not
//! start): `scripts/ci/cluster.sh` starts one and runs it with `--include-ignored`. Without
//! `sbatch` it prints why it skips, and fails instead under CI (CI=1).

#[path = "common/util.rs"]
mod util;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Each job, start to end (the requeued one includes its second run).
const LIMIT: Duration = Duration::from_secs(300);

/// Ten epochs of tiny: long enough (about 400 steps) that the signal lands mid-run.
const RUN: [&str; 2] = ["train.epochs=10", "train.max_steps=400"];

fn slurm_or_skip() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            )
        });
    let reason = match up {
        Err(_) => "sinfo/sbatch not found (install slurm-wlm)".to_string(),
        Ok((false, _)) => "sinfo failed: no slurmctld reachable".to_string(),
        Ok((true, states)) if !states.contains("idle") && !states.contains("mix") => {
            format!("no idle Slurm node (sinfo: {})", states.trim())
        }
        Ok(_) => return true,
    };
    assert!(
        !util::in_ci(),
        "{reason} under CI (CI is set): start one with scripts/slurm-local.sh start \
         (scripts/ci/cluster.sh does)"
    );
    eprintln!("SKIPPED: {reason}; run `sudo scripts/slurm-local.sh start` to test under Slurm");
    false
}

fn run(cmd: &mut Command) -> String {
    let out = util::run_with_timeout(cmd, Duration::from_secs(60));
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{cmd:?}: {se}{so}");
    so
}

/// `scontrol show job -o J` as key/value pairs (empty once Slurm forgot the job).
fn job_info(job: &str) -> HashMap<String, String> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", job])
        .output()
        .expect("scontrol");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Renders the job (repository paths, as a user in a checkout would) into `tmp`.
fn render(tmp: &Path) -> PathBuf {
    let mut cmd = util::vigil();
    cmd.args([
        "render",
        "slurm",
        "configs/tiny.yaml",
        "--nodes",
        "1",
        // Fits a 2-CPU laptop or CI machine (the default is 2 CPUs per worker).
        "--cpus-per-task",
        "2",
        "--mem",
        "2G",
        "--time",
        "00:30:00",
    ]);
    for r in RUN {
        cmd.args(["--set", r]);
    }
    let script = run(&mut cmd);
    assert!(script.contains("#SBATCH --signal=B:TERM@65"), "{script}");
    assert!(script.contains("#SBATCH --output=%x-%j.out"), "{script}");
    let path = tmp.join("job.sbatch");
    std::fs::write(&path, script).unwrap();
    path
}

/// Submits `script` from the repository root (so the config's relative paths and the
/// `%x-%j.out` log resolve there) with the run directory `dir`; returns the job id.
fn submit(script: &Path, dir: &Path) -> String {
    let out = run(Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .current_dir(util::repo_root())
        .env("VIGIL_OUTPUT", dir)
        .env("VIGIL_EXPORT", dir.join("export")));
    out.trim().split(';').next().unwrap().to_string()
}

/// Waits until the job ends; returns its final `scontrol` record and its log (moved out
/// of the repository root into `dir`).
fn wait_done(job: &str, dir: &Path, started: Instant) -> (HashMap<String, String>, String) {
    loop {
        let info = job_info(job);
        let state = info.get("JobState").map(String::as_str).unwrap_or("");
        if matches!(
            state,
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY"
        ) {
            let log_path = util::repo_root().join(format!("tiny-{job}.out"));
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            std::fs::write(dir.with_extension("out"), &log).unwrap();
            let _ = std::fs::remove_file(&log_path);
            return (info, log);
        }
        if started.elapsed() > LIMIT {
            let _ = Command::new("scancel").arg(job).status();
            panic!("job {job} not done after {LIMIT:?}: {info:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
#[ignore = "needs a running Slurm: scripts/ci/cluster.sh starts one (scripts/slurm-local.sh)"]
fn sbatch_trains_and_a_preempted_job_requeues_and_resumes_to_the_same_model() {
    if !slurm_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = render(tmp.path());

    // 1. Uninterrupted.
    let reference = tmp.path().join("reference");
    let started = Instant::now();
    let job = submit(&script, &reference);
    let (info, log) = wait_done(&job, &reference, started);
    let plain_wall = started.elapsed();
    assert_eq!(info["JobState"], "COMPLETED", "{info:?}\n{log}");
    assert_eq!(info["ExitCode"], "0:0", "{info:?}\n{log}");
    assert!(log.contains("finished at step 400"), "{log}");
    let want = sha256(&reference.join("export/tiny/1/model.safetensors"));

    // 2. Preempted after its first checkpoint with the whole job signalled.
    let preempted = tmp.path().join("preempted");
    let started = Instant::now();
    let job = submit(&script, &preempted);
    while !preempted.join("checkpoints/LATEST").exists() {
        assert!(started.elapsed() < LIMIT, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    run(Command::new("scancel").args(["--signal=TERM", "--full", &job]));
    // The script requeues on 75; Slurm holds a requeued job back (BeginTime, about two
    // minutes): release it at once instead of waiting. `Restarts` counts up while the
    // job is still COMPLETING/REQUEUED, before it is PENDING: wait for PENDING (or a
    // state past it), or the release is missed and the job sits out the hold.
    loop {
        let info = job_info(&job);
        if info.get("Restarts").is_some_and(|r| r != "0") {
            match info.get("JobState").map(String::as_str).unwrap_or("") {
                "PENDING" => {
                    let _ = Command::new("scontrol")
                        .args(["update", &format!("JobId={job}"), "StartTime=now"])
                        .status();
                    break;
                }
                "COMPLETING" | "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD" | "" => {}
                _ => break,
            }
        }
        if started.elapsed() > LIMIT {
            let _ = Command::new("scancel").arg(&job).status();
            panic!("job {job} was not requeued: {info:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (info, log) = wait_done(&job, &preempted, started);
    let preempt_wall = started.elapsed();
    assert_eq!(info["JobState"], "COMPLETED", "{info:?}\n{log}");
    assert_eq!(info["Restarts"], "1", "{info:?}\n{log}");
    assert!(log.contains("vigil job: SIGTERM"), "the trap ran:\n{log}");
    assert!(log.contains("preempted"), "{log}");
    assert!(
        log.contains(&format!("vigil job {job} (restart 1)")),
        "{log}"
    );
    assert!(log.contains("resuming from checkpoint step"), "{log}");
    assert!(log.contains("finished at step 400"), "{log}");
    let got = sha256(&preempted.join("export/tiny/1/model.safetensors"));
    assert_eq!(
        got, want,
        "the resumed job's model differs from the uninterrupted one"
    );
    println!(
        "slurm wall times: uninterrupted job {:.1} s; preempted + requeued + resumed job {:.1} s",
        plain_wall.as_secs_f64(),
        preempt_wall.as_secs_f64()
    );
}
