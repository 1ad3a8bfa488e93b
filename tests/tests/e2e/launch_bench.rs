//! Launch latency: wall time from starting `vigil launch --nproc-per-node 2` to both
//! workers past their store rendezvous (the `rdzv_probe` worker), and to the launcher's
//! exit. A benchmark: it prints figures and asserts only that the launch worked.
//!
//! `cargo test -p vigil-e2e --test e2e launch_bench -- --nocapture`

use crate::util;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use util::{run_with_timeout, texts, vigil};

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn launch_to_rendezvous_latency() {
    let probe = env!("CARGO_BIN_EXE_rdzv_probe");
    let tmp = tempfile::tempdir().unwrap();
    let mut to_rdzv = Vec::new();
    let mut to_exit = Vec::new();
    for i in 0..7 {
        let dir = tmp.path().join(format!("run-{i}"));
        let mut cmd = vigil();
        cmd.args([
            "launch",
            "--cluster",
            "none",
            "--nproc-per-node",
            "2",
            "--output-dir",
        ])
        .arg(&dir)
        .arg("--")
        .arg(probe)
        .env_remove("VIGIL_STORE_TOKEN");
        let t0 = unix_ns();
        let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
        let t_exit = unix_ns();
        let (so, se) = texts(&out);
        assert!(out.status.success(), "{so}{se}");
        let past: Vec<u128> = so
            .lines()
            .filter_map(|l| l.split("past-rendezvous-unix-ns ").nth(1))
            .map(|n| n.trim().parse().unwrap())
            .collect();
        assert_eq!(past.len(), 2, "{so}");
        if i > 0 {
            // The first run warms the page cache; it is not counted.
            to_rdzv.push((past.iter().max().unwrap() - t0) as f64 / 1e6);
            to_exit.push((t_exit - t0) as f64 / 1e6);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "vigil launch, 2 workers, rdzv_probe: launch -> all past rendezvous: median {:.1} ms \
         (min {:.1}, max {:.1}); launch -> launcher exit: median {:.1} ms",
        median(&mut to_rdzv),
        to_rdzv[0],
        to_rdzv[to_rdzv.len() - 1],
        median(&mut to_exit)
    );
}
