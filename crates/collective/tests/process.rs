//! Real rank processes: the test binary re-executes itself as the ranks (the ignored
//! `child_entry` test reads its role from the environment).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_collective::{Error, ProcessGroup, ReduceOp, StoreClient};

use crate::util::{LONG, TOKEN, store, unique_run_id};

const CHILD_TIMEOUT_MS: u64 = 1500;

/// Kills its children when dropped, so a failing test leaves no process behind.
struct Ranks(Vec<Child>);

impl Drop for Ranks {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(n: usize, port: u16, transport: &str, mode: &str) -> (Ranks, String) {
    spawn_nodes(n, n, port, transport, mode)
}

/// `n` ranks, `per_node` per simulated node, numbered node by node.
fn spawn_nodes(
    n: usize,
    per_node: usize,
    port: u16,
    transport: &str,
    mode: &str,
) -> (Ranks, String) {
    let run = unique_run_id("proc");
    let exe = std::env::current_exe().unwrap();
    let children = (0..n)
        .map(|r| {
            Command::new(&exe)
                .args([
                    "process::child_entry",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .args(["--test-threads", "1"])
                .env("VIGIL_TEST_CHILD", mode)
                .env("RANK", r.to_string())
                .env("LOCAL_RANK", (r % per_node).to_string())
                .env("NODE_RANK", (r / per_node).to_string())
                .env("WORLD_SIZE", n.to_string())
                .env("LOCAL_WORLD_SIZE", per_node.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("VIGIL_STORE_TOKEN", TOKEN)
                .env("VIGIL_RUN_ID", &run)
                .env("VIGIL_TRANSPORT", transport)
                .env("VIGIL_COLLECTIVE_TIMEOUT_MS", CHILD_TIMEOUT_MS.to_string())
                .env("VIGIL_CONNECT_TIMEOUT_MS", "20000")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    (Ranks(children), format!("vigil/{run}/gen/0/"))
}

/// Wait for a child with a deadline; returns its stdout.
fn finish(child: &mut Child, deadline: Instant) -> String {
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "a rank process hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

#[test]
fn processes_all_reduce_correctly() {
    let s = store();
    for transport in ["tcp", "shm"] {
        let (mut ranks, _) = spawn(3, s.addr().port(), transport, "sum");
        let deadline = Instant::now() + LONG;
        for (r, c) in ranks.0.iter_mut().enumerate() {
            let out = finish(c, deadline);
            assert!(out.contains("CHILD OK"), "{transport} rank {r}: {out}");
        }
    }
}

#[test]
fn processes_on_two_simulated_nodes_use_the_hierarchy() {
    let s = store();
    let (mut ranks, _) = spawn_nodes(4, 2, s.addr().port(), "auto", "sum");
    let deadline = Instant::now() + LONG;
    for (r, c) in ranks.0.iter_mut().enumerate() {
        let out = finish(c, deadline);
        assert!(out.contains("CHILD OK via shm+tcp"), "rank {r}: {out}");
    }
}

fn killed_or_stopped(transport: &str, signal: libc::c_int, expect: &str) {
    let s = store();
    let (mut ranks, prefix) = spawn(3, s.addr().port(), transport, "loop");
    // Wait until the ranks are busy all-reducing, then hit rank 1.
    let mut c = StoreClient::connect(s.addr(), TOKEN, LONG)
        .unwrap()
        .with_prefix(&prefix);
    let deadline = Instant::now() + LONG;
    while c.get("test/progress").unwrap().is_none() {
        assert!(Instant::now() < deadline, "ranks never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    let victim = ranks.0[1].id() as libc::pid_t;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(victim, signal) };
    let t = Instant::now();
    let deadline = t + Duration::from_millis(CHILD_TIMEOUT_MS) + Duration::from_secs(5);
    for r in [0, 2] {
        let out = finish(&mut ranks.0[r], deadline);
        assert!(
            out.contains(expect),
            "{transport} rank {r}: expected {expect:?} in {out:?}"
        );
    }
    // Ranks 0 and 2 are done; `Ranks::drop` kills the stopped or dead rank 1.
}

#[test]
fn tcp_killed_rank_is_reported_by_the_others() {
    killed_or_stopped("tcp", libc::SIGKILL, "PeerLost rank=1 op=all_reduce");
}

#[test]
fn shm_killed_rank_is_reported_by_the_others() {
    killed_or_stopped("shm", libc::SIGKILL, "PeerLost rank=1 op=all_reduce");
}

#[test]
fn tcp_stopped_rank_times_out_by_name() {
    killed_or_stopped("tcp", libc::SIGSTOP, "Timeout rank=1 op=all_reduce");
}

/// The rank side of the tests above; does nothing unless started by them.
#[test]
#[ignore = "run as a child process by the tests in this module"]
fn child_entry() {
    let Ok(mode) = std::env::var("VIGIL_TEST_CHILD") else {
        return;
    };
    let mut pg = ProcessGroup::from_env().unwrap();
    let (rank, n) = (pg.rank(), pg.world_size());
    match mode.as_str() {
        "sum" => {
            for len in [0usize, 1, 13, 70_001, 1 << 20] {
                let mut buf: Vec<f32> = (0..len).map(|i| (i % 7 + rank) as f32).collect();
                pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap();
                for (i, v) in buf.iter().enumerate() {
                    let want = (0..n).map(|r| (i % 7 + r) as f32).sum::<f32>();
                    assert_eq!(*v, want, "len {len} index {i}");
                }
            }
            pg.barrier().unwrap();
            println!("CHILD OK via {}", pg.transport());
        }
        "loop" => {
            let mut buf = vec![rank as f32; 4 << 20];
            loop {
                match pg.all_reduce(&mut buf, ReduceOp::Sum) {
                    Ok(()) => {
                        if rank == 0 {
                            pg.store().add("test/progress", 1).unwrap();
                        }
                    }
                    Err(Error::PeerLost { rank, op, seq }) => {
                        println!("PeerLost rank={rank} op={op} seq={seq}");
                        return;
                    }
                    Err(Error::Timeout { rank, op, seq, .. }) => {
                        println!("Timeout rank={rank} op={op} seq={seq}");
                        return;
                    }
                    Err(e) => {
                        println!("OTHER {e}");
                        return;
                    }
                }
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn bench_runs_ranks_and_reports_rows() {
    use vigil_collective::bench::{BenchOptions, run_parent};
    for transport in ["tcp", "shm"] {
        let opts = BenchOptions {
            nproc: 2,
            transport: transport.into(),
            sizes: vec![4 << 10, 1 << 20],
            iters: 3,
            warmup: 1,
            json: true,
            copy: false,
            timeout_ms: 10_000,
        };
        let exe = std::env::current_exe().unwrap();
        let spawn = |_rank: usize, _env: &[(String, String)]| {
            let mut c = Command::new(&exe);
            c.args([
                "process::bench_child_entry",
                "--exact",
                "--ignored",
                "--nocapture",
            ]);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            c
        };
        let mut out = Vec::new();
        let rows = run_parent(&opts, spawn, &mut out).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .all(|r| r.wrong == 0 && r.busbw_gbps > 0.0 && r.nproc == 2)
        );
        assert_eq!(rows[0].transport, transport);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.get("busbw_gbps").is_some());
        }
    }
}

/// Benchmark rank started by `bench_runs_ranks_and_reports_rows`.
#[test]
#[ignore = "run as a child process by bench_runs_ranks_and_reports_rows"]
fn bench_child_entry() {
    if std::env::var_os(vigil_collective::bench::OPTS_ENV).is_some() {
        vigil_collective::bench::run_rank_from_env().unwrap();
    }
}
