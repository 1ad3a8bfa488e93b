//! A rank that stalls or disappears mid-operation: every other rank returns a named error
//! within the timeout, never hangs. Thread-per-rank; see `process.rs` for real processes.

use std::time::{Duration, Instant};

use vigil_collective::{Error, Op, ReduceOp, TransportKind};

use crate::util::{SHORT, configs, run_ranks, store};

fn stalled_rank_is_named(transport: TransportKind) {
    let s = store();
    let mut cfgs = configs(&s, 3, transport, "stall");
    for c in &mut cfgs {
        c.timeout = SHORT;
    }
    let results = run_ranks(cfgs, |mut pg| {
        let mut buf = vec![1.0f32; 100_000];
        pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap();
        if pg.rank() == 2 {
            // Stall: keep the links open but never join the next operation.
            std::thread::sleep(SHORT * 3);
            return None;
        }
        let t = Instant::now();
        let err = pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap_err();
        // The group is poisoned afterwards.
        let again = pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap_err();
        assert!(
            matches!(again, Error::Poisoned { failed_seq: 1 }),
            "{again}"
        );
        Some((err, t.elapsed()))
    });
    for (rank, r) in results.into_iter().enumerate().take(2) {
        let (err, took) = r.unwrap();
        match err {
            Error::Timeout {
                op: Op::AllReduce,
                seq: 1,
                rank: 2,
                ..
            } => {}
            other => panic!("{transport} rank {rank}: expected Timeout naming rank 2, got {other}"),
        }
        assert!(
            took < SHORT + Duration::from_secs(2),
            "rank {rank} took {took:?}"
        );
    }
}

#[test]
fn tcp_stalled_rank_is_named_by_everyone() {
    stalled_rank_is_named(TransportKind::Tcp);
}

#[test]
fn shm_stalled_rank_is_named_by_everyone() {
    stalled_rank_is_named(TransportKind::Shm);
}

#[test]
fn tcp_rank_leaving_mid_run_is_reported_lost() {
    let s = store();
    let mut cfgs = configs(&s, 3, TransportKind::Tcp, "lost");
    for c in &mut cfgs {
        c.timeout = Duration::from_secs(10);
    }
    let results = run_ranks(cfgs, |mut pg| {
        let mut buf = vec![1.0f32; 1 << 20];
        if pg.rank() == 2 {
            pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap();
            drop(pg); // closes its sockets while the others are in operation #1
            return None;
        }
        let t = Instant::now();
        pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap();
        let err = pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap_err();
        Some((err, t.elapsed()))
    });
    for (rank, r) in results.into_iter().enumerate().take(2) {
        let (err, took) = r.unwrap();
        assert!(
            matches!(
                err,
                Error::PeerLost {
                    rank: 2,
                    op: Op::AllReduce,
                    seq: 1
                }
            ),
            "rank {rank}: {err}"
        );
        // Far below the 10 s timeout: loss is detected from the closed connection.
        assert!(took < Duration::from_secs(5), "rank {rank} took {took:?}");
    }
}

#[test]
fn restarted_generation_ignores_stale_keys_and_files() {
    let s = store();
    let gen0 = configs(&s, 3, TransportKind::Shm, "restart");
    let (run, dir) = (gen0[0].run_id.clone(), gen0[0].shm_dir.clone());
    // Generation 0 joins, works, and dies (its keys stay in the store).
    run_ranks(gen0.clone(), |mut pg| {
        let mut b = vec![1.0f32; 10];
        pg.all_reduce(&mut b, ReduceOp::Sum).unwrap();
    });
    // A crash between create and unlink would leave a file like this one behind.
    let stale = dir.join(format!("vigil-{run}-g0-n0-buf7"));
    std::fs::write(&stale, b"leftover").unwrap();
    let gen1: Vec<_> = gen0
        .into_iter()
        .map(|mut c| {
            c.restart_count = 1;
            c
        })
        .collect();
    let sums = run_ranks(gen1, |mut pg| {
        let mut b = vec![pg.rank() as f32; 1000];
        pg.all_reduce(&mut b, ReduceOp::Sum).unwrap();
        b[999]
    });
    assert_eq!(sums, vec![3.0; 3]);
    assert!(
        !stale.exists(),
        "stale segment of generation 0 was not removed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("vigil-{run}-"))
        })
        .collect();
    assert!(leftovers.is_empty(), "segments left behind: {leftovers:?}");
}
