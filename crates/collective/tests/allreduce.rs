//! Collective operations against a plain computation, thread-per-rank.

use vigil_collective::{ReduceOp, TransportKind};

use crate::util::{configs, data, run_ranks, store};

/// Lengths: empty, one, primes, and sizes spanning several TCP chunks (16 KiB = 4096
/// floats in tests) and several shm staging pieces (64 KiB = 16384 floats).
const LENS: &[usize] = &[0, 1, 2, 3, 7, 13, 101, 4099, 40_009, 100_003];

fn check_all_reduce(transport: TransportKind) {
    let s = store();
    for n in 1..=4 {
        let results = run_ranks(configs(&s, n, transport, "ar"), move |mut pg| {
            let rank = pg.rank();
            assert_eq!(
                pg.transport(),
                if n == 1 && transport == TransportKind::Shm {
                    TransportKind::Shm
                } else {
                    transport
                }
            );
            let mut wrong = Vec::new();
            for (i, &len) in LENS.iter().enumerate() {
                for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
                    let seed = i as u64;
                    let mut buf = data(rank, len, seed);
                    pg.all_reduce(&mut buf, op).unwrap();
                    let inputs: Vec<Vec<f32>> = (0..n).map(|r| data(r, len, seed)).collect();
                    let expect: Vec<f32> = (0..len)
                        .map(|k| {
                            let col = inputs.iter().map(|v| v[k]);
                            match op {
                                ReduceOp::Sum => col.sum(),
                                ReduceOp::Mean => col.sum::<f32>() / n as f32,
                                ReduceOp::Max => col.fold(f32::MIN, f32::max),
                                ReduceOp::Min => col.fold(f32::MAX, f32::min),
                            }
                        })
                        .collect();
                    let bad = buf
                        .iter()
                        .zip(&expect)
                        .filter(|(a, b)| (**a - **b).abs() > 1e-3 * b.abs().max(1.0))
                        .count();
                    if bad > 0 {
                        wrong.push((len, op, bad));
                    }
                }
            }
            // Other element types.
            let mut c = [rank as u64 + 1, 10];
            pg.all_reduce(&mut c, ReduceOp::Sum).unwrap();
            assert_eq!(c, [(n * (n + 1) / 2) as u64, 10 * n as u64]);
            let mut m = [-(rank as i64), rank as i64];
            pg.all_reduce(&mut m, ReduceOp::Min).unwrap();
            assert_eq!(m, [-(n as i64 - 1), 0]);
            let mut d = [0.5f64 * rank as f64; 5];
            pg.all_reduce(&mut d, ReduceOp::Max).unwrap();
            assert_eq!(d, [0.5 * (n - 1) as f64; 5]);
            wrong
        });
        for (rank, wrong) in results.into_iter().enumerate() {
            assert!(
                wrong.is_empty(),
                "{transport} n={n} rank={rank}: wrong {wrong:?}"
            );
        }
    }
}

#[test]
fn tcp_all_reduce_matches_plain_sum() {
    check_all_reduce(TransportKind::Tcp);
}

#[test]
fn shm_all_reduce_matches_plain_sum() {
    check_all_reduce(TransportKind::Shm);
}

#[test]
fn shm_shared_buffers_reduce_in_place() {
    let s = store();
    for n in 1..=3 {
        run_ranks(
            configs(&s, n, TransportKind::Shm, "shared"),
            move |mut pg| {
                let rank = pg.rank();
                for len in [0usize, 1, 13, 40_009] {
                    let mut buf = pg.alloc_buffer(len).unwrap();
                    assert_eq!(buf.len(), len);
                    for round in 0..3u64 {
                        buf.copy_from_slice(&data(rank, len, round));
                        pg.all_reduce_buffer(&mut buf, ReduceOp::Sum).unwrap();
                        let inputs: Vec<Vec<f32>> = (0..n).map(|r| data(r, len, round)).collect();
                        for (k, v) in buf.iter().enumerate() {
                            let expect: f32 = inputs.iter().map(|d| d[k]).sum();
                            assert_eq!(*v, expect, "n={n} len={len} k={k}");
                        }
                    }
                }
            },
        );
    }
}

#[test]
fn broadcast_gather_and_barrier() {
    let s = store();
    for transport in [TransportKind::Tcp, TransportKind::Shm] {
        for n in 1..=4 {
            run_ranks(configs(&s, n, transport, "bcast"), move |mut pg| {
                let rank = pg.rank();
                for root in 0..n {
                    let mut buf = if rank == root {
                        data(root, 10_007, 9)
                    } else {
                        vec![0.0; 10_007]
                    };
                    pg.broadcast(&mut buf, root).unwrap();
                    assert_eq!(buf, data(root, 10_007, 9));
                }
                // Variable-length payloads (eval scores differ in count per rank).
                let mine: Vec<f32> = (0..rank * 3).map(|i| i as f32 + rank as f32).collect();
                let all = pg.all_gather(&mine).unwrap();
                for (r, got) in all.iter().enumerate() {
                    let want: Vec<f32> = (0..r * 3).map(|i| i as f32 + r as f32).collect();
                    assert_eq!(got, &want);
                }
                let bytes = pg
                    .all_gather_bytes(format!("rank{rank}").as_bytes())
                    .unwrap();
                assert_eq!(bytes[n - 1], format!("rank{}", n - 1).into_bytes());
                for _ in 0..5 {
                    pg.barrier().unwrap();
                }
            });
        }
    }
}

#[test]
fn mismatched_lengths_are_reported_not_mixed() {
    let s = store();
    let results = run_ranks(configs(&s, 2, TransportKind::Tcp, "mismatch"), |mut pg| {
        let mut buf = vec![1.0f32; 10 + pg.rank()];
        pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap_err()
    });
    for e in results {
        assert!(
            matches!(
                e,
                vigil_collective::Error::Mismatch { .. } | vigil_collective::Error::PeerLost { .. }
            ),
            "{e}"
        );
    }
}

#[test]
fn nccl_without_support_is_an_error_not_a_panic() {
    let s = store();
    let mut cfg = configs(&s, 1, TransportKind::Nccl, "nccl").remove(0);
    cfg.connect_timeout = std::time::Duration::from_secs(5);
    let with_feature = std::hint::black_box(cfg!(feature = "nccl"));
    match vigil_collective::ProcessGroup::new(cfg) {
        Err(vigil_collective::Error::NotCompiledWith { feature: "nccl" }) => assert!(!with_feature),
        // Built with the feature on a machine without libcuda/libnccl.
        Err(vigil_collective::Error::Unavailable { .. }) => assert!(with_feature),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => assert!(with_feature, "NCCL group built without the feature"),
    }
}
