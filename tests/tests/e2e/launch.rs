//! `vigil launch` end to end, with shell scripts as workers: the environment contract,
//! restarts, failure summaries, preemption, grace-period kills, no orphans, the hang
//! watchdog, two launchers forming one world, and the output-directory lock.
//!
//! Every test uses its own scratch run directory, short grace periods and timeouts, and
//! kills what it started.

use crate::util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use util::{run_with_timeout, texts, vigil};

const LIMIT: Duration = Duration::from_secs(60);
const PREEMPTED: i32 = 75;

/// `vigil launch --output-dir DIR [flags] -- sh -c SCRIPT` (with `--cluster none` so a CI
/// machine's own Slurm or Kubernetes variables cannot leak in).
fn launch(dir: &Path, flags: &[&str], script: &str) -> Command {
    let mut cmd = vigil();
    cmd.arg("launch")
        .arg("--output-dir")
        .arg(dir)
        .args(["--cluster", "none"])
        .args(flags)
        .args(["--", "sh", "-c", script])
        .env_remove("VIGIL_STORE_TOKEN");
    cmd
}

/// Starts a launcher in the background, its output piped.
fn start(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil")
}

/// Waits for a background launcher, killing it after `limit`.
fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let (so, se) = texts(&out);
            panic!("launcher timed out\nstdout:\n{so}\nstderr:\n{se}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Waits until `path` exists (a worker reached a point), or panics.
fn wait_for_file(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

const SIGTERM: i32 = libc::SIGTERM;
const SIGKILL: i32 = libc::SIGKILL;

/// Whether `pid` is a live process (zombies count as dead).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `KEY=VALUE` lines a worker wrote.
fn kv(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Writes the worker's contract variables to `env-RANK.RESTART` (atomically, so a worker
/// stopped mid-write leaves no half file).
const ENV_DUMP: &str = r#"f="$VIGIL_OUTPUT_DIR/env-$RANK.$VIGIL_RESTART_COUNT"; env | grep -E '^(RANK|TORCHELASTIC_RESTART_COUNT|LOCAL_RANK|WORLD_SIZE|LOCAL_WORLD_SIZE|NODE_RANK|GROUP_RANK|GROUP_WORLD_SIZE|MASTER_ADDR|MASTER_PORT|VIGIL_[A-Z_]+)=' > "$f.tmp"; mv "$f.tmp" "$f""#;

/// Waits until N workers wrote their `env-*.0` (so failing first cannot stop them early).
fn wait_envs(n: usize) -> String {
    format!(
        r#"while [ $(ls "$VIGIL_OUTPUT_DIR" | grep -c '^env-[0-9]*\.0$') -lt {n} ]; do sleep 0.02; done"#
    )
}

#[test]
fn every_rank_sees_the_environment_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script = format!("{ENV_DUMP}; echo hello from $RANK; echo warn $RANK >&2");
    let out = run_with_timeout(
        &mut launch(&dir, &["--nproc-per-node", "3"], &script),
        LIMIT,
    );
    let (so, se) = texts(&out);
    assert!(out.status.success(), "{so}{se}");
    let envs: Vec<_> = (0..3)
        .map(|r| kv(&dir.join(format!("env-{r}.0"))))
        .collect();
    for (r, e) in envs.iter().enumerate() {
        let r = r.to_string();
        assert_eq!(e["RANK"], r);
        assert_eq!(e["LOCAL_RANK"], r);
        assert_eq!(e["WORLD_SIZE"], "3");
        assert_eq!(e["LOCAL_WORLD_SIZE"], "3");
        assert_eq!(e["NODE_RANK"], "0");
        assert_eq!(e["GROUP_RANK"], "0");
        assert_eq!(e["GROUP_WORLD_SIZE"], "1");
        assert_eq!(e["MASTER_ADDR"], "127.0.0.1");
        assert_eq!(e["VIGIL_STORE_ADDR"], "127.0.0.1");
        assert_ne!(
            e["MASTER_PORT"], e["VIGIL_STORE_PORT"],
            "MASTER_PORT is left free for torch, not the store's"
        );
        assert_eq!(e["VIGIL_RESTART_COUNT"], "0");
        assert_eq!(e["VIGIL_MAX_RESTARTS"], "0");
        assert_eq!(
            e["VIGIL_STORE_PREFIX"],
            format!("vigil/{}/gen/0/", e["VIGIL_RUN_ID"])
        );
        // The collective's settings come from the launch section (defaults here).
        assert_eq!(e["VIGIL_TRANSPORT"], "auto");
        assert_eq!(e["VIGIL_COLLECTIVE_TIMEOUT_MS"], "600000");
        assert_eq!(e["VIGIL_CONNECT_TIMEOUT_MS"], "300000");
        assert!(e["VIGIL_HEARTBEAT_FILE"].ends_with(&format!("rank-{r}")));
        assert_eq!(e["VIGIL_STORE_TOKEN"].len(), 32, "a fresh 128-bit token");
        // One run: one id, one store, one token.
        for k in [
            "VIGIL_RUN_ID",
            "MASTER_PORT",
            "VIGIL_STORE_PORT",
            "VIGIL_STORE_TOKEN",
        ] {
            assert_eq!(e[k], envs[0][k], "{k}");
        }
        assert!(so.contains(&format!("[rank {r}] hello from {r}")), "{so}");
        assert!(se.contains(&format!("[rank {r}] warn {r}")), "{se}");
        let log = std::fs::read_to_string(dir.join(format!("logs/rank-{r}.log"))).unwrap();
        assert!(log.starts_with("==== vigil: run "), "{log}");
        assert!(log.contains(&format!("hello from {r}\n")), "{log}");
        assert!(log.contains(&format!("warn {r}\n")), "{log}");
    }
    // A fresh run gets a fresh id and token.
    let out = run_with_timeout(
        &mut launch(&dir, &["--nproc-per-node", "1"], &script),
        LIMIT,
    );
    assert!(out.status.success());
    let again = kv(&dir.join("env-0.0"));
    assert_ne!(again["VIGIL_RUN_ID"], envs[0]["VIGIL_RUN_ID"]);
    assert_ne!(again["VIGIL_STORE_TOKEN"], envs[0]["VIGIL_STORE_TOKEN"]);
}

#[test]
fn console_rank0_echoes_only_rank_0_but_logs_every_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let flags = ["--nproc-per-node", "2", "--console", "rank0"];
    let out = run_with_timeout(&mut launch(&dir, &flags, "echo line-$RANK"), LIMIT);
    let (so, _) = texts(&out);
    assert!(out.status.success());
    assert!(
        so.contains("[rank 0] line-0") && !so.contains("line-1"),
        "{so}"
    );
    let log1 = std::fs::read_to_string(dir.join("logs/rank-1.log")).unwrap();
    assert!(log1.contains("line-1"), "{log1}");
}

#[test]
fn a_crash_restarts_the_whole_group_with_the_next_restart_count() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // Rank 1 crashes in the first generation; rank 0 would run long and must be stopped.
    let script = format!(
        "{ENV_DUMP}; if [ $VIGIL_RESTART_COUNT = 0 ]; then \
           if [ $RANK = 1 ]; then {}; exit 3; else sleep 30; fi; fi; echo done-$RANK",
        wait_envs(2)
    );
    let flags = [
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "2",
        "--grace-s",
        "2",
    ];
    let out = run_with_timeout(&mut launch(&dir, &flags, &script), LIMIT);
    let (so, se) = texts(&out);
    assert!(out.status.success(), "{so}{se}");
    for r in 0..2 {
        assert_eq!(
            kv(&dir.join(format!("env-{r}.0")))["VIGIL_RESTART_COUNT"],
            "0"
        );
        let e = kv(&dir.join(format!("env-{r}.1")));
        assert_eq!(e["VIGIL_RESTART_COUNT"], "1");
        assert_eq!(e["TORCHELASTIC_RESTART_COUNT"], "1");
        assert_eq!(
            e["VIGIL_STORE_PREFIX"],
            format!("vigil/{}/gen/1/", e["VIGIL_RUN_ID"])
        );
        assert!(
            !dir.join(format!("env-{r}.2")).exists(),
            "only one restart was needed"
        );
    }
    assert!(se.contains("rank 1 failed: exit code 3"), "{se}");
    assert!(se.contains("restart 1 of 2"), "{se}");
    // The log is appended across restarts, each generation opened by a marker.
    let log = std::fs::read_to_string(dir.join("logs/rank-0.log")).unwrap();
    assert!(
        log.contains("restart 0 rank 0") && log.contains("restart 1 rank 0"),
        "{log}"
    );
    assert!(log.contains("rank 0 killed by SIGTERM"), "{log}");
    assert!(log.contains("done-0"), "{log}");
}

#[test]
fn exhausted_restarts_exit_1_naming_rank_code_restarts_and_log_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script = "if [ $RANK = 1 ]; then echo loading shard; echo 'CUDA error: out of memory' >&2; \
                  exit 7; fi; sleep 30";
    let flags = [
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "1",
        "--grace-s",
        "2",
    ];
    let out = run_with_timeout(&mut launch(&dir, &flags, script), LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("no restarts remain"), "{se}");
    assert!(
        se.contains("1 restart(s) of launch.max_restarts = 1 used"),
        "{se}"
    );
    assert!(
        se.contains("first failure: rank 1 failed: exit code 7"),
        "{se}"
    );
    assert!(se.contains("rank-1.log"), "{se}");
    assert!(se.contains("| CUDA error: out of memory"), "{se}");
    let log = std::fs::read_to_string(dir.join("logs/rank-1.log")).unwrap();
    assert_eq!(log.matches("==== vigil: run").count(), 2, "{log}");
}

#[test]
fn a_worker_exiting_2_is_not_restarted_and_the_launch_exits_2_with_its_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // Rank 1 reports a config error; rank 0 would run long and is stopped. Rank 1
    // fails only once rank 0 has recorded its start (at most 10 s): else a loaded
    // machine lets the launcher stop rank 0 before its first line runs, and the
    // count below could not tell "started once" from "never started".
    let script = r#"echo "$RANK" >> "$VIGIL_OUTPUT_DIR/starts"
                    if [ $RANK = 1 ]; then
                      for _ in $(seq 200); do
                        [ "$(wc -l < "$VIGIL_OUTPUT_DIR/starts")" -ge 2 ] && break
                        sleep 0.05
                      done
                      echo 'vigil: configs/x.yaml: optim.lr: must be > 0' >&2; exit 2
                    fi
                    sleep 30"#;
    let flags = [
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "3",
        "--grace-s",
        "2",
    ];
    let t = Instant::now();
    let out = run_with_timeout(&mut launch(&dir, &flags, script), LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let starts = std::fs::read_to_string(dir.join("starts")).unwrap();
    assert_eq!(starts.lines().count(), 2, "started once: {starts}");
    assert!(!se.contains("restarting"), "{se}");
    assert!(se.contains("rank 1 failed: exit code 2"), "{se}");
    assert!(se.contains("config or data error"), "{se}");
    assert!(se.contains("optim.lr: must be > 0"), "{se}");
}

#[test]
fn a_non_finite_loss_exit_is_not_restarted_and_keeps_its_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script = r#"echo x >> "$VIGIL_OUTPUT_DIR/starts"; exit 65"#;
    let out = run_with_timeout(&mut launch(&dir, &["--max-restarts", "2"], script), LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(65), "{se}");
    assert_eq!(
        std::fs::read_to_string(dir.join("starts")).unwrap(),
        "x\n",
        "{se}"
    );
    assert!(se.contains("NaN or infinite"), "{se}");
}

#[test]
fn a_worker_killed_by_a_signal_is_reported_by_signal_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = run_with_timeout(&mut launch(&dir, &[], "kill -SEGV $$"), LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("rank 0 failed: signal 11 (SIGSEGV)"), "{se}");
}

#[test]
fn sigterm_to_the_launcher_reaches_workers_and_exits_preempted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script = r#"trap 'echo checkpointed > "$VIGIL_OUTPUT_DIR/term-$RANK"; exit 0' TERM
                    touch "$VIGIL_OUTPUT_DIR/ready-$RANK"
                    while :; do sleep 0.05; done"#;
    let flags = [
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "3",
        "--grace-s",
        "10",
    ];
    let child = start(&mut launch(&dir, &flags, script));
    for r in 0..2 {
        wait_for_file(&dir.join(format!("ready-{r}")), LIMIT);
    }
    signal(&child, SIGTERM);
    let t = Instant::now();
    let out = finish(child, LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(PREEMPTED), "{se}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "no SIGKILL wait: workers obeyed"
    );
    for r in 0..2 {
        assert!(
            dir.join(format!("term-{r}")).exists(),
            "rank {r} got no SIGTERM"
        );
    }
    assert!(se.contains("preempted"), "{se}");
    assert!(
        !se.contains("restarting"),
        "preemption never restarts: {se}"
    );
}

#[test]
fn a_worker_ignoring_sigterm_is_killed_after_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script =
        r#"trap '' TERM; echo $$ > "$VIGIL_OUTPUT_DIR/pid-$RANK"; while :; do sleep 0.05; done"#;
    let child = start(&mut launch(&dir, &["--grace-s", "1"], script));
    wait_for_file(&dir.join("pid-0"), LIMIT);
    std::thread::sleep(Duration::from_millis(100));
    let pid = read_pid(&dir.join("pid-0"));
    signal(&child, SIGTERM);
    let t = Instant::now();
    let out = finish(child, LIMIT);
    let waited = t.elapsed();
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(PREEMPTED), "{se}");
    assert!(
        waited >= Duration::from_millis(900),
        "SIGKILL came before the grace: {waited:?}"
    );
    assert!(se.contains("sending SIGKILL"), "{se}");
    assert!(!alive(pid), "worker {pid} survived");
    let log = std::fs::read_to_string(dir.join("logs/rank-0.log")).unwrap();
    assert!(log.contains("killed by SIGKILL"), "{log}");
}

#[test]
fn sigkill_to_the_launcher_leaves_no_worker_or_grandchild_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // Each worker forks a grandchild, so both PDEATHSIG and the guard are exercised.
    let script = r#"sleep 300 & echo $! > "$VIGIL_OUTPUT_DIR/child-$RANK.tmp"
                    mv "$VIGIL_OUTPUT_DIR/child-$RANK.tmp" "$VIGIL_OUTPUT_DIR/child-$RANK"
                    echo $$ > "$VIGIL_OUTPUT_DIR/pid-$RANK"; wait"#;
    let child = start(&mut launch(&dir, &["--nproc-per-node", "2"], script));
    let mut pids = Vec::new();
    for r in 0..2 {
        wait_for_file(&dir.join(format!("pid-{r}")), LIMIT);
        wait_for_file(&dir.join(format!("child-{r}")), LIMIT);
        std::thread::sleep(Duration::from_millis(50));
        pids.push(read_pid(&dir.join(format!("pid-{r}"))));
        pids.push(read_pid(&dir.join(format!("child-{r}"))));
    }
    assert!(pids.iter().all(|&p| alive(p)));
    signal(&child, SIGKILL);
    let _ = finish(child, LIMIT);
    let t = Instant::now();
    while pids.iter().any(|&p| alive(p)) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivors: Vec<_> = pids.iter().filter(|&&p| alive(p)).collect();
    for &&p in &survivors {
        // SAFETY: cleaning up a leaked test process.
        let _ = unsafe { libc::kill(p, SIGKILL) };
    }
    assert!(survivors.is_empty(), "orphans left: {survivors:?}");
}

#[test]
fn a_hung_worker_is_caught_by_the_heartbeat_watchdog() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // Rank 0 never heartbeats (never watched); rank 1 beats a few times then hangs.
    let script = r#"if [ $RANK = 1 ]; then
                      for i in 1 2 3; do touch "$VIGIL_HEARTBEAT_FILE"; sleep 0.1; done
                      echo stuck in all-reduce; sleep 300
                    fi
                    sleep 300"#;
    let flags = [
        "--nproc-per-node",
        "2",
        "--heartbeat-timeout-s",
        "1",
        "--grace-s",
        "1",
    ];
    let out = run_with_timeout(&mut launch(&dir, &flags, script), LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("rank 1 failed: no heartbeat for"), "{se}");
    assert!(se.contains("(hung)"), "{se}");
    assert!(se.contains("| stuck in all-reduce"), "{se}");
}

#[test]
fn a_worker_whose_store_heartbeats_stop_is_caught_by_the_watchdog() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut cmd = vigil();
    cmd.args(["launch", "--cluster", "none", "--output-dir"])
        .arg(&dir)
        .args([
            "--nproc-per-node",
            "2",
            "--heartbeat-timeout-s",
            "1",
            "--grace-s",
            "1",
        ])
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_rdzv_probe"))
        .arg("hang-after-heartbeats")
        .env_remove("VIGIL_STORE_TOKEN");
    let out = run_with_timeout(&mut cmd, LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("rank 1 failed: no heartbeat for"), "{se}");
    assert!(se.contains("| heartbeats stopped; hanging"), "{se}");
}

/// A port free right now on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node(dir: &Path, port: u16, rank: u32, rdzv_s: u32, extra: &[&str], script: &str) -> Command {
    let endpoint = format!("127.0.0.1:{port}");
    let rank = rank.to_string();
    let rdzv_s = rdzv_s.to_string();
    let mut flags = vec![
        "--nnodes",
        "2",
        "--node-rank",
        &rank,
        "--nproc-per-node",
        "2",
        "--rdzv-endpoint",
        &endpoint,
        "--rdzv-timeout-s",
        &rdzv_s,
        "--grace-s",
        "2",
    ];
    flags.extend_from_slice(extra);
    let mut cmd = launch(dir, &flags, script);
    cmd.env("VIGIL_STORE_TOKEN", "test-token-shared-by-both-nodes");
    cmd
}

#[test]
fn two_launchers_form_one_world_and_restart_together() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let port = free_port();
    // Rank 3 (node 1) fails in the first generation: both nodes must restart.
    let script = format!(
        "{ENV_DUMP}; if [ $VIGIL_RESTART_COUNT = 0 ]; then \
           if [ $RANK = 3 ]; then {}; exit 5; else sleep 30; fi; fi",
        wait_envs(4)
    );
    // Node 1 first: it must wait for node 0's store to appear.
    let n1 = start(&mut node(
        &dir,
        port,
        1,
        20,
        &["--max-restarts", "1"],
        &script,
    ));
    std::thread::sleep(Duration::from_millis(300));
    let n0 = start(&mut node(
        &dir,
        port,
        0,
        20,
        &["--max-restarts", "1"],
        &script,
    ));
    let o0 = finish(n0, LIMIT);
    let o1 = finish(n1, LIMIT);
    let ((s0, e0), (s1, e1)) = (texts(&o0), texts(&o1));
    assert!(o0.status.success(), "node 0:\n{s0}{e0}\nnode 1:\n{s1}{e1}");
    assert!(o1.status.success(), "node 1:\n{s1}{e1}");
    let run_id = kv(&dir.join("env-0.0"))["VIGIL_RUN_ID"].clone();
    for generation in 0..2 {
        for r in 0..4u32 {
            let e = kv(&dir.join(format!("env-{r}.{generation}")));
            assert_eq!(e["WORLD_SIZE"], "4");
            assert_eq!(e["LOCAL_RANK"], (r % 2).to_string());
            assert_eq!(e["LOCAL_WORLD_SIZE"], "2");
            assert_eq!(e["NODE_RANK"], (r / 2).to_string());
            assert_eq!(e["GROUP_WORLD_SIZE"], "2");
            assert_eq!(e["VIGIL_STORE_PORT"], port.to_string());
            assert_eq!(e["MASTER_PORT"], (port + 1).to_string(), "the store's + 1");
            assert_eq!(e["VIGIL_RUN_ID"], run_id, "one run id for both nodes");
            assert_eq!(e["VIGIL_RESTART_COUNT"], generation.to_string());
        }
    }
    assert!(e0.contains("rank 3 failed: exit code 5 (on node 1)") || e0.contains("restart 1"));
    assert!(e1.contains("rank 3 failed: exit code 5"), "{e1}");
}

#[test]
fn a_config_error_on_one_node_ends_every_node_with_exit_2_and_no_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let port = free_port();
    // Rank 3 (node 1) reports a data error once all four started; the others would run on.
    let script = format!(
        r#"echo "$RANK" >> "$VIGIL_OUTPUT_DIR/starts"; {ENV_DUMP}
           if [ $RANK = 3 ]; then {}; exit 2; fi; sleep 30"#,
        wait_envs(4)
    );
    let restarts = ["--max-restarts", "3"];
    let n1 = start(&mut node(&dir, port, 1, 20, &restarts, &script));
    let n0 = start(&mut node(&dir, port, 0, 20, &restarts, &script));
    let o0 = finish(n0, LIMIT);
    let o1 = finish(n1, LIMIT);
    let ((_, e0), (_, e1)) = (texts(&o0), texts(&o1));
    assert_eq!(o1.status.code(), Some(2), "node 1:\n{e1}");
    assert_eq!(o0.status.code(), Some(2), "node 0:\n{e0}");
    let starts = std::fs::read_to_string(dir.join("starts")).unwrap();
    assert_eq!(starts.lines().count(), 4, "one generation only: {starts}");
    assert!(!e0.contains("restarting") && !e1.contains("restarting"));
    assert!(e0.contains("exit code 2 (on node 1)"), "{e0}");
}

#[test]
fn a_node_that_cannot_reach_the_store_names_the_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let port = free_port();
    let mut cmd = node(&dir, port, 1, 1, &[], "true");
    let t = Instant::now();
    let out = run_with_timeout(&mut cmd, LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.contains(&format!(
            "could not reach the rendezvous store at 127.0.0.1:{port}"
        )),
        "{se}"
    );
    assert!(se.contains("launch.rdzv_timeout_s"), "{se}");
    assert!(t.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_node_other_than_0_without_a_token_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = node(&tmp.path().join("run"), free_port(), 1, 20, &[], "true");
    cmd.env_remove("VIGIL_STORE_TOKEN");
    let out = run_with_timeout(&mut cmd, LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(
        se.contains("VIGIL_STORE_TOKEN") && se.contains("--store-token-file"),
        "{se}"
    );
}

#[test]
fn a_second_launch_on_a_locked_output_dir_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script = r#"touch "$VIGIL_OUTPUT_DIR/ready"; sleep 30"#;
    let first = start(&mut launch(&dir, &["--grace-s", "1"], script));
    wait_for_file(&dir.join("ready"), LIMIT);
    let t = Instant::now();
    let out = run_with_timeout(&mut launch(&dir, &[], "echo should-not-run"), LIMIT);
    let (so, se) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(se.contains("in use by another launch"), "{se}");
    assert!(se.contains(&format!("pid {}", first.id())), "{se}");
    assert!(se.contains("on host "), "{se}");
    assert!(!so.contains("should-not-run"));
    signal(&first, SIGTERM);
    let out = finish(first, LIMIT);
    assert_eq!(out.status.code(), Some(PREEMPTED));
    // A launcher that stopped in order released the lock: the next launch runs and has
    // no stale lock to report.
    let out = run_with_timeout(&mut launch(&dir, &[], "true"), LIMIT);
    let (_, se) = texts(&out);
    assert!(out.status.success(), "{se}");
    assert!(!se.contains("stale"), "{se}");
    // Nor after a run that finished successfully.
    let out = run_with_timeout(&mut launch(&dir, &[], "true"), LIMIT);
    let (_, se) = texts(&out);
    assert!(out.status.success() && !se.contains("stale"), "{se}");
}

#[test]
fn a_stale_lock_from_a_killed_launcher_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let first = start(&mut launch(
        &dir,
        &[],
        r#"touch "$VIGIL_OUTPUT_DIR/ready"; sleep 30"#,
    ));
    wait_for_file(&dir.join("ready"), LIMIT);
    signal(&first, SIGKILL);
    let _ = finish(first, LIMIT);
    let out = run_with_timeout(&mut launch(&dir, &[], "true"), LIMIT);
    let (_, se) = texts(&out);
    assert!(out.status.success(), "{se}");
    assert!(se.contains("took over a stale lock"), "{se}");
}

#[test]
fn usage_mistakes_exit_2() {
    let out = run_with_timeout(vigil().args(["launch"]), LIMIT);
    assert_eq!(out.status.code(), Some(2));
    let out = run_with_timeout(
        vigil().args(["launch", "--cluster", "none", "--nnodes", "2", "--", "true"]),
        LIMIT,
    );
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(se.contains("launch.rdzv_endpoint"), "{se}");
}

#[test]
fn slurm_variables_place_the_launcher_in_the_world() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut cmd = vigil();
    cmd.args(["launch", "--output-dir"])
        .arg(&dir)
        .args(["--", "sh", "-c", ENV_DUMP])
        .env_remove("VIGIL_STORE_TOKEN")
        .env("SLURM_PROCID", "0")
        .env("SLURM_NTASKS", "1")
        .env("SLURM_NNODES", "1")
        .env("SLURM_NODEID", "0")
        .env("SLURM_JOB_NODELIST", "localhost")
        .env("SLURM_GPUS_ON_NODE", "2");
    let out = run_with_timeout(&mut cmd, LIMIT);
    assert!(out.status.success(), "{:?}", texts(&out));
    let e = kv(&dir.join("env-1.0"));
    assert_eq!(
        e["WORLD_SIZE"], "2",
        "SLURM_GPUS_ON_NODE sets the workers per node"
    );
}

/// Where a config-driven launch writes: `config.resolved.yaml` beside the logs.
#[test]
fn a_config_launch_writes_the_resolved_config_and_obeys_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("run");
    let mut cmd = vigil();
    cmd.args([
        "launch",
        "configs/tiny.yaml",
        "--cluster",
        "none",
        "--nproc-per-node",
        "1",
    ])
    .arg("--set")
    .arg(format!("run.output_dir={}", dir.display()))
    .args(["--", "sh", "-c", ENV_DUMP])
    .env_remove("VIGIL_STORE_TOKEN");
    let out = run_with_timeout(&mut cmd, LIMIT);
    assert!(out.status.success(), "{:?}", texts(&out));
    let resolved = std::fs::read_to_string(dir.join("config.resolved.yaml")).unwrap();
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&resolved).unwrap();
    assert_eq!(v["launch"]["nproc_per_node"].as_u64(), Some(1));
    let e = kv(&dir.join("env-0.0"));
    assert_eq!(e["WORLD_SIZE"], "1");
    assert_eq!(
        e["VIGIL_MAX_RESTARTS"], "1",
        "tiny.yaml's launch.max_restarts"
    );
}

#[test]
fn sigterm_to_one_node_preempts_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let port = free_port();
    let script = r#"trap 'touch "$VIGIL_OUTPUT_DIR/term-$RANK"; exit 0' TERM
                    touch "$VIGIL_OUTPUT_DIR/ready-$RANK"
                    while :; do sleep 0.05; done"#;
    let n0 = start(&mut node(
        &dir,
        port,
        0,
        20,
        &["--max-restarts", "2"],
        script,
    ));
    let n1 = start(&mut node(
        &dir,
        port,
        1,
        20,
        &["--max-restarts", "2"],
        script,
    ));
    for r in 0..4 {
        wait_for_file(&dir.join(format!("ready-{r}")), LIMIT);
    }
    signal(&n1, SIGTERM);
    let (o0, o1) = (finish(n0, LIMIT), finish(n1, LIMIT));
    assert_eq!(o1.status.code(), Some(PREEMPTED), "{:?}", texts(&o1));
    assert_eq!(o0.status.code(), Some(PREEMPTED), "{:?}", texts(&o0));
    for r in 0..4 {
        assert!(
            dir.join(format!("term-{r}")).exists(),
            "rank {r} got no SIGTERM"
        );
    }
}

#[test]
fn sigterm_while_waiting_for_other_nodes_exits_preempted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // Node 0 alone: it waits for node 1, which never comes.
    let n0 = start(&mut node(&dir, free_port(), 0, 60, &[], "true"));
    std::thread::sleep(Duration::from_millis(500));
    signal(&n0, SIGTERM);
    let t = Instant::now();
    let out = finish(n0, LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(PREEMPTED), "{se}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the wait was not cut short"
    );
    assert!(
        se.contains("stopped by a signal while waiting for 2 nodes"),
        "{se}"
    );
}

#[test]
fn a_second_sigint_kills_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script = r#"trap '' TERM INT; echo $$ > "$VIGIL_OUTPUT_DIR/pid-$RANK"; while :; do sleep 0.05; done"#;
    let child = start(&mut launch(&dir, &["--grace-s", "60"], script));
    wait_for_file(&dir.join("pid-0"), LIMIT);
    std::thread::sleep(Duration::from_millis(100));
    let pid = read_pid(&dir.join("pid-0"));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        alive(pid),
        "the first SIGINT only asks (SIGTERM, which this worker ignores)"
    );
    let t = Instant::now();
    signal(&child, libc::SIGINT);
    let out = finish(child, LIMIT);
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(PREEMPTED), "{se}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the 60 s grace was not skipped"
    );
    assert!(!alive(pid));
}

#[test]
fn a_detached_grandchild_holding_the_output_does_not_hold_the_launcher() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // The grandchild leaves the worker's process group (setsid) but keeps its stdout: the
    // log pipe never reaches end-of-file while it lives.
    let script = r#"setsid sh -c 'echo $$ > "$VIGIL_OUTPUT_DIR/escaped"; exec sleep 30' &
                    while [ ! -s "$VIGIL_OUTPUT_DIR/escaped" ]; do sleep 0.02; done; echo done"#;
    let t = Instant::now();
    let out = run_with_timeout(&mut launch(&dir, &[], script), LIMIT);
    let waited = t.elapsed();
    let escaped = read_pid(&dir.join("escaped"));
    // SAFETY: cleaning up the process this test made escape.
    unsafe { libc::kill(escaped, SIGKILL) };
    assert!(out.status.success(), "{:?}", texts(&out));
    assert!(
        waited < Duration::from_secs(15),
        "launcher waited {waited:?} for a stray pipe"
    );
    let log = std::fs::read_to_string(dir.join("logs/rank-0.log")).unwrap();
    assert!(
        log.contains("output still open after the worker exited"),
        "{log}"
    );
}

#[test]
fn orphans_reparented_to_the_launcher_are_reaped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // A double fork: the inner child outlives its parent and is reparented to the launcher
    // (a child subreaper), then exits; it must not stay a zombie.
    let script = r#"(sh -c 'sleep 0.2' &) ; touch "$VIGIL_OUTPUT_DIR/forked"; sleep 3"#;
    let child = start(&mut launch(&dir, &[], script));
    wait_for_file(&dir.join("forked"), LIMIT);
    std::thread::sleep(Duration::from_millis(1200));
    let launcher = child.id() as i32;
    let zombies: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            let rest: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            rest.len() > 2 && rest[0] == "Z" && rest[1] == launcher.to_string()
        })
        .collect();
    signal(&child, SIGTERM);
    let _ = finish(child, LIMIT);
    assert!(
        zombies.is_empty(),
        "zombie children of the launcher: {zombies:?}"
    );
}

#[test]
fn the_collective_builds_its_group_from_the_launchers_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let port = free_port();
    let probe = env!("CARGO_BIN_EXE_rdzv_probe");
    let cmd = |rank: u32| {
        let mut c = vigil();
        c.args(["launch", "--cluster", "none", "--output-dir"])
            .arg(&dir)
            .args(["--nnodes", "2", "--nproc-per-node", "2", "--node-rank"])
            .arg(rank.to_string())
            .args([
                "--rdzv-endpoint",
                &format!("127.0.0.1:{port}"),
                "--rdzv-timeout-s",
                "20",
            ])
            .args(["--", probe, "all-reduce"])
            .env("VIGIL_STORE_TOKEN", "collective-interop-token")
            .env("VIGIL_TRANSPORT", "tcp");
        c
    };
    let n0 = start(&mut cmd(0));
    let n1 = start(&mut cmd(1));
    let (o0, o1) = (finish(n0, LIMIT), finish(n1, LIMIT));
    let ((s0, e0), (s1, e1)) = (texts(&o0), texts(&o1));
    assert!(
        o0.status.success() && o1.status.success(),
        "{s0}{e0}\n{s1}{e1}"
    );
    let all = format!("{s0}{s1}");
    for r in 0..4 {
        // 1 + 2 + 3 + 4 on every rank of the 4-rank world spanning both launchers.
        assert!(
            all.contains(&format!("all-reduce rank {r} of 4 via tcp: sum 10")),
            "{all}"
        );
    }
}

#[test]
fn kubeflow_variables_place_the_launcher_and_name_the_store_port() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let port = free_port();
    let mut cmd = vigil();
    cmd.args(["launch", "--output-dir"])
        .arg(&dir)
        .args(["--", "sh", "-c", ENV_DUMP])
        .env_remove("VIGIL_STORE_TOKEN")
        .env("PET_NNODES", "1")
        .env("PET_NPROC_PER_NODE", "2")
        .env("PET_NODE_RANK", "0")
        .env("PET_MASTER_ADDR", "127.0.0.1")
        .env("PET_MASTER_PORT", port.to_string());
    let out = run_with_timeout(&mut cmd, LIMIT);
    assert!(out.status.success(), "{:?}", texts(&out));
    let e = kv(&dir.join("env-1.0"));
    assert_eq!(e["WORLD_SIZE"], "2");
    assert_eq!(
        e["VIGIL_STORE_PORT"],
        port.to_string(),
        "the store listens where PET_ says"
    );
}

#[test]
fn nodes_share_a_token_through_a_token_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let token_file = tmp.path().join("token");
    let port = free_port();
    let mk = |rank: u32| {
        let mut c = node(&dir, port, rank, 20, &[], ENV_DUMP);
        c.env_remove("VIGIL_STORE_TOKEN")
            .env("VIGIL_STORE_TOKEN_FILE", &token_file);
        c
    };
    // Node 1 starts first and waits for node 0 to write the file.
    let n1 = start(&mut mk(1));
    std::thread::sleep(Duration::from_millis(200));
    let n0 = start(&mut mk(0));
    let (o0, o1) = (finish(n0, LIMIT), finish(n1, LIMIT));
    assert!(o0.status.success(), "{:?}", texts(&o0));
    assert!(o1.status.success(), "{:?}", texts(&o1));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    for r in 0..4 {
        let e = kv(&dir.join(format!("env-{r}.0")));
        assert_eq!(e["VIGIL_STORE_TOKEN"], token.trim());
        assert_eq!(e["WORLD_SIZE"], "4");
    }
}

/// Every worker of every node runs node 0's resolved config (handed over through the
/// store): a `${VAR}` that node 1's launcher sees differently, and that the workers do not
/// see at all, still reads as node 0's launcher resolved it.
#[test]
fn every_worker_runs_node_0s_resolved_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let port = free_port();
    // Each worker prints the config it would train on; `env -u` hides the variable.
    let script = format!(
        r#"env -u VIGIL_E2E_NAME {} worker configs/tiny.yaml --print-config > "$VIGIL_OUTPUT_DIR/config-$RANK.yaml""#,
        util::vigil_bin().display()
    );
    let node = |rank: u32, name: &str| {
        let mut c = vigil();
        c.args([
            "launch",
            "configs/tiny.yaml",
            "--cluster",
            "none",
            "--output-dir",
        ])
        .arg(&dir)
        .args(["--nnodes", "2", "--nproc-per-node", "2", "--node-rank"])
        .arg(rank.to_string())
        .arg("--rdzv-endpoint")
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "--rdzv-timeout-s",
            "20",
            "--set",
            "run.name=${VIGIL_E2E_NAME}",
        ])
        .args(["--", "sh", "-c", &script])
        .env("VIGIL_STORE_TOKEN", "resolved-config-token")
        .env("VIGIL_E2E_NAME", name);
        c
    };
    let n1 = start(&mut node(1, "from-node-1"));
    let n0 = start(&mut node(0, "from-node-0"));
    let (o0, o1) = (finish(n0, LIMIT), finish(n1, LIMIT));
    let ((s0, e0), (s1, e1)) = (texts(&o0), texts(&o1));
    assert!(
        o0.status.success() && o1.status.success(),
        "node 0:\n{s0}{e0}\nnode 1:\n{s1}{e1}"
    );
    let name = |path: PathBuf| {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        v["run"]["name"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(name(dir.join("config.resolved.yaml")), "from-node-0");
    for rank in 0..4 {
        let got = name(dir.join(format!("config-{rank}.yaml")));
        assert_eq!(got, "from-node-0", "rank {rank} runs node 0's config");
    }
    // Alone, `vigil worker` resolves the config in its own environment.
    let out = run_with_timeout(
        vigil()
            .args(["worker", "configs/tiny.yaml", "--print-config"])
            .args(["--set", "run.name=${VIGIL_E2E_NAME}"])
            .env("VIGIL_E2E_NAME", "alone")
            .env_remove("WORLD_SIZE")
            .env_remove("MASTER_ADDR"),
        LIMIT,
    );
    let (so, se) = texts(&out);
    assert!(out.status.success(), "{se}");
    assert!(so.contains("name: alone"), "{so}");
}
