//! The benchmark rank: time all-reduces of each size and let rank 0 publish the row.

use std::time::Instant;

use super::options::BenchOptions;
use super::report::BenchRow;
use crate::element::ReduceOp;
use crate::error::Result;
use crate::group::{CommBuffer, ProcessGroup, TransportKind};

const PATTERN: usize = 1024;

/// Iteration `it`'s input on `rank`: small integers, so float sums are exact.
fn value(k: usize, it: usize, rank: usize) -> f32 {
    ((k % PATTERN) + it % 7 + rank) as f32
}

fn fill(buf: &mut [f32], it: usize, rank: usize) {
    let block: Vec<f32> = (0..PATTERN).map(|k| value(k, it, rank)).collect();
    for chunk in buf.chunks_mut(PATTERN) {
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

fn count_wrong(buf: &[f32], it: usize, n: usize) -> u64 {
    let block: Vec<f32> = (0..PATTERN)
        .map(|k| (0..n).map(|r| value(k, it, r)).sum())
        .collect();
    buf.chunks(PATTERN)
        .map(|c| c.iter().zip(&block).filter(|(a, b)| a != b).count() as u64)
        .sum()
}

/// Rank entry point: options from [`super::OPTS_ENV`], group from the worker environment.
pub fn run_rank_from_env() -> Result<()> {
    let opts = BenchOptions::from_env()?;
    let mut pg = ProcessGroup::from_env()?;
    let (rank, n) = (pg.rank(), pg.world_size());
    let label = match pg.transport() {
        TransportKind::Shm if opts.copy => "shm-copy".to_string(),
        t => t.to_string(),
    };
    for (i, &bytes) in opts.sizes.iter().enumerate() {
        let elems = bytes / 4;
        let mut buf = if opts.copy {
            CommBuffer::Heap(vec![0.0; elems])
        } else {
            pg.alloc_buffer(elems)?
        };
        let mut times = Vec::with_capacity(opts.iters);
        let mut wrong = 0u64;
        for it in 0..opts.warmup + opts.iters {
            fill(&mut buf, it, rank);
            pg.barrier()?;
            let t = Instant::now();
            pg.all_reduce_buffer(&mut buf, ReduceOp::Sum)?;
            let dt = t.elapsed().as_secs_f64();
            wrong += count_wrong(&buf, it, n);
            if it >= opts.warmup {
                times.push(dt);
            }
        }
        drop(buf);
        // An iteration lasts as long as its slowest rank.
        let all = pg.all_gather(&times)?;
        let slowest: Vec<f64> = (0..times.len())
            .map(|k| {
                all.iter()
                    .filter_map(|t| t.get(k))
                    .fold(0.0f64, |a, b| a.max(*b))
            })
            .collect();
        let mut w = [wrong];
        pg.all_reduce(&mut w, ReduceOp::Sum)?;
        if rank == 0 {
            let row = BenchRow::from_times(elems * 4, &slowest, w[0], &label, n);
            pg.store()
                .set(&format!("bench/result/{i}"), row.json_line())?;
        }
    }
    pg.barrier()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_sums_are_checked() {
        let n = 3;
        let mut buf = vec![0.0f32; 3000];
        let mut sum = vec![0.0f32; 3000];
        for r in 0..n {
            fill(&mut buf, 5, r);
            sum.iter_mut().zip(&buf).for_each(|(s, v)| *s += v);
        }
        assert_eq!(count_wrong(&sum, 5, n), 0);
        sum[17] += 1.0;
        assert_eq!(count_wrong(&sum, 5, n), 1);
    }
}
