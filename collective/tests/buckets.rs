//! Gradient buckets: overlap, `no_sync` accumulation, and agreement with a plain mean.

use vigil_collective::buckets::{BucketOptions, GradBuckets};
use vigil_collective::{ReduceOp, TransportKind};

use crate::util::{configs, data, run_ranks, store};

const LENGTHS: &[usize] = &[1, 7, 4099, 13, 10_007, 0, 3, 2003, 6151];

fn grads(rank: usize, step: u64) -> Vec<Vec<f32>> {
    LENGTHS
        .iter()
        .enumerate()
        .map(|(p, &len)| data(rank, len, step * 100 + p as u64))
        .collect()
}

fn check(transport: TransportKind) {
    let s = store();
    for n in [1usize, 2, 3] {
        run_ranks(configs(&s, n, transport, "buckets"), move |pg| {
            let rank = pg.rank();
            // ~2.6k floats per bucket: the parameters spread over several buckets.
            let opts = BucketOptions {
                bucket_cap_mb: 0.01,
                op: ReduceOp::Mean,
            };
            let mut b = GradBuckets::new(pg, LENGTHS, opts).unwrap();
            assert!(b.plan().num_buckets() >= 5);
            for step in 0..3u64 {
                // Two accumulation micro-steps without communication, then a synced one.
                b.zero().unwrap();
                for micro in 0..3u64 {
                    b.set_no_sync(micro < 2);
                    let g = grads(rank, step * 10 + micro);
                    for (p, gp) in g.iter().enumerate() {
                        let slot = b.grad_mut(p).unwrap();
                        slot.iter_mut().zip(gp).for_each(|(s, v)| *s += *v);
                        b.mark_ready(p).unwrap();
                    }
                    b.reduce().unwrap();
                }
                let inputs: Vec<Vec<Vec<f32>>> = (0..n)
                    .flat_map(|r| (0..3).map(move |m| grads(r, step * 10 + m)))
                    .collect();
                for p in 0..LENGTHS.len() {
                    let got = b.grad(p).unwrap();
                    for (i, g) in got.iter().enumerate() {
                        let w = inputs.iter().map(|x| x[p][i]).sum::<f32>() / n as f32;
                        assert!(
                            (g - w).abs() <= 1e-3 * w.abs().max(1.0),
                            "p={p} i={i}: {g} vs {w}"
                        );
                    }
                }
            }
            let gathered = b
                .with_group(|g| g.all_gather(&[rank as f32]))
                .unwrap()
                .unwrap();
            assert_eq!(gathered.len(), n);
        });
    }
}

#[test]
fn tcp_buckets_average_gradients() {
    check(TransportKind::Tcp);
}

#[test]
fn shm_buckets_average_gradients() {
    check(TransportKind::Shm);
}
