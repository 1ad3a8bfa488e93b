//! The hierarchical transport (shm within nodes, TCP between node leaders), with "nodes"
//! simulated on one machine.

use std::time::Duration;

use vigil_collective::{Error, Op, ReduceOp, TransportKind};

use crate::util::{data, multi_node_configs, run_ranks, store};

#[test]
fn hierarchical_all_reduce_matches_plain_sum() {
    let s = store();
    for (nodes, per_node) in [(2, 2), (3, 2), (2, 3)] {
        let n = nodes * per_node;
        run_ranks(
            multi_node_configs(&s, nodes, per_node, "hier"),
            move |mut pg| {
                assert_eq!(pg.transport(), TransportKind::Hierarchical);
                let rank = pg.rank();
                for (i, len) in [0usize, 1, 13, 4099, 40_009].into_iter().enumerate() {
                    let inputs: Vec<Vec<f32>> = (0..n).map(|r| data(r, len, i as u64)).collect();
                    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
                        let mut buf = inputs[rank].clone();
                        pg.all_reduce(&mut buf, op).unwrap();
                        let mut shared = pg.alloc_buffer(len).unwrap();
                        shared.copy_from_slice(&inputs[rank]);
                        pg.all_reduce_buffer(&mut shared, op).unwrap();
                        for k in 0..len {
                            let col = inputs.iter().map(|v| v[k]);
                            let want = match op {
                                ReduceOp::Sum => col.sum::<f32>(),
                                ReduceOp::Mean => col.sum::<f32>() / n as f32,
                                _ => col.fold(f32::MIN, f32::max),
                            };
                            let close = |g: f32| (g - want).abs() <= 1e-3 * want.abs().max(1.0);
                            assert!(close(buf[k]), "{nodes}x{per_node} {op:?} len {len} k {k}");
                            assert!(close(shared[k]), "shared {nodes}x{per_node} {op:?} k {k}");
                        }
                    }
                }
                let all = pg.all_gather(&[rank as u64]).unwrap();
                assert_eq!(all.len(), n);
                pg.barrier().unwrap();
            },
        );
    }
}

#[test]
fn hierarchical_stalled_rank_is_named() {
    let s = store();
    let mut cfgs = multi_node_configs(&s, 2, 2, "hier-stall");
    for c in &mut cfgs {
        c.timeout = Duration::from_millis(1500);
    }
    let results = run_ranks(cfgs, |mut pg| {
        let mut buf = vec![1.0f32; 10_000];
        pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap();
        if pg.rank() == 3 {
            std::thread::sleep(Duration::from_millis(4500));
            return None;
        }
        Some(pg.all_reduce(&mut buf, ReduceOp::Sum).unwrap_err())
    });
    for (rank, e) in results.into_iter().enumerate().take(3) {
        match e.unwrap() {
            Error::Timeout {
                op: Op::AllReduce,
                seq: 1,
                rank: 3,
                ..
            } => {}
            other => panic!("rank {rank}: expected Timeout naming rank 3, got {other}"),
        }
    }
}
