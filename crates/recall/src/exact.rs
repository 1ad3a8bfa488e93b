//! Exact nearest neighbours by brute force: the reference an approximate search is
//! measured against (recall@k), and `vigil recall --exact` for small banks.
//!
//! Blocked over the corpus so each block of rows stays in cache while every query
//! of a chunk is scored against it; queries are split across threads.

use crate::ann::Neighbour;

/// The `k` most similar rows of `corpus` (row-major, `dims` wide, unit vectors)
/// for each query, most similar first; ties go to the lower row. Rows whose index
/// is in `skip` (tombstones) are never returned.
pub fn exact_knn(
    corpus: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    threads: usize,
    skip: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<Vec<Neighbour>> {
    let nq = queries.len() / dims.max(1);
    if nq == 0 || dims == 0 {
        return Vec::new();
    }
    let threads = threads.clamp(1, nq);
    let per = nq.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per * dims)
            .map(|qs| s.spawn(move || knn_chunk(corpus, dims, qs, k, skip)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn knn_chunk(
    corpus: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    skip: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<Vec<Neighbour>> {
    const BLOCK: usize = 512;
    let nq = queries.len() / dims;
    let dot = crate::kernel::best_dot();
    let mut best: Vec<Vec<Neighbour>> = vec![Vec::with_capacity(k + 1); nq];
    for (b, block) in corpus.chunks(BLOCK * dims).enumerate() {
        for (qi, q) in queries.chunks_exact(dims).enumerate() {
            let top = &mut best[qi];
            for (r, row) in block.chunks_exact(dims).enumerate() {
                let key = b * BLOCK + r;
                if skip(key) {
                    continue;
                }
                let sim = dot(q, row);
                if top.len() == k && top.last().is_some_and(|w| sim <= w.similarity) {
                    continue;
                }
                let at = top.partition_point(|n| n.similarity >= sim);
                top.insert(
                    at,
                    Neighbour {
                        key: key as u64,
                        similarity: sim,
                    },
                );
                top.truncate(k);
            }
        }
    }
    best
}

/// Fraction of `truth`'s keys found in `found`, over all queries (recall@k).
pub fn recall_at_k(found: &[Vec<Neighbour>], truth: &[Vec<Neighbour>]) -> f64 {
    let mut hit = 0usize;
    let mut all = 0usize;
    for (f, t) in found.iter().zip(truth) {
        all += t.len();
        hit += t
            .iter()
            .filter(|n| f.iter().any(|m| m.key == n.key))
            .count();
    }
    if all == 0 {
        1.0
    } else {
        hit as f64 / all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_returns_the_most_similar_first_and_skips_tombstones() {
        let corpus = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8, -1.0, 0.0];
        let q = [0.8, 0.6];
        let all = exact_knn(&corpus, 2, &q, 3, 1, &|_| false);
        let keys: Vec<u64> = all[0].iter().map(|n| n.key).collect();
        assert_eq!(keys, vec![2, 0, 1]);
        let skipped = exact_knn(&corpus, 2, &q, 2, 2, &|k| k == 0);
        let keys: Vec<u64> = skipped[0].iter().map(|n| n.key).collect();
        assert_eq!(keys, vec![2, 1]);
        assert!((recall_at_k(&skipped, &all) - 2.0 / 3.0).abs() < 1e-9);
    }
}
