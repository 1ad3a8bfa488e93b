//! The ring all-reduce schedule as pure functions: who sends which segment at each step.
//!
//! The buffer is cut into `n` contiguous segments (sizes differ by at most one element).
//! Reduce-scatter takes `n-1` steps: at step `s` rank `r` sends segment `r-s` to `r+1` and
//! receives segment `r-s-1` from `r-1`, adding it into its own copy; afterwards rank `r`
//! holds the full reduction of segment `r+1`. All-gather takes `n-1` more steps: at step
//! `s` rank `r` sends segment `r+1-s` and receives (overwrites) segment `r-s`. Each rank
//! thus sends and receives `2(n-1)/n` of the buffer — the bandwidth-optimal figure behind
//! nccl-tests' `busbw`. Within a step, segments travel in chunks so that receiving,
//! reducing and forwarding overlap.

use std::ops::Range;

/// One step of the ring for one rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Segment sent to `rank + 1`.
    pub send: usize,
    /// Segment received from `rank - 1`.
    pub recv: usize,
    /// `true` during reduce-scatter (received data is reduced in), `false` during
    /// all-gather (received data overwrites).
    pub reduce: bool,
}

/// The `2(n-1)` steps of a ring all-reduce for `rank` in a ring of `n`.
pub fn schedule(rank: usize, n: usize) -> Vec<Step> {
    let m = |x: isize| x.rem_euclid(n as isize) as usize;
    let r = rank as isize;
    let mut steps = Vec::with_capacity(2 * n.saturating_sub(1));
    for s in 0..n.saturating_sub(1) as isize {
        steps.push(Step {
            send: m(r - s),
            recv: m(r - s - 1),
            reduce: true,
        });
    }
    for s in 0..n.saturating_sub(1) as isize {
        steps.push(Step {
            send: m(r + 1 - s),
            recv: m(r - s),
            reduce: false,
        });
    }
    steps
}

/// Split `len` elements into `n` contiguous segments whose sizes differ by at most one.
pub fn segments(len: usize, n: usize) -> Vec<Range<usize>> {
    let n = n.max(1);
    let (base, extra) = (len / n, len % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let size = base + usize::from(i < extra);
            let r = start..start + size;
            start += size;
            r
        })
        .collect()
}

/// Split `range` into consecutive chunks of at most `chunk` elements (none if empty).
pub fn chunks(range: Range<usize>, chunk: usize) -> impl Iterator<Item = Range<usize>> {
    let chunk = chunk.max(1);
    range
        .clone()
        .step_by(chunk)
        .map(move |s| s..(s + chunk).min(range.end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn segments_cover_the_buffer() {
        for len in [0, 1, 2, 7, 100, 101] {
            for n in 1..6 {
                let segs = segments(len, n);
                assert_eq!(segs.len(), n);
                assert_eq!(segs[0].start, 0);
                assert_eq!(segs[n - 1].end, len);
                for w in segs.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let sizes: Vec<_> = segs.iter().map(|s| s.len()).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
    }

    #[test]
    fn chunks_split_exactly() {
        let c: Vec<_> = chunks(3..10, 3).collect();
        assert_eq!(c, vec![3..6, 6..9, 9..10]);
        assert_eq!(chunks(5..5, 3).count(), 0);
    }

    #[test]
    fn every_send_meets_the_matching_receive() {
        for n in 1..7 {
            let all: Vec<_> = (0..n).map(|r| schedule(r, n)).collect();
            for r in 0..n {
                assert_eq!(all[r].len(), 2 * (n - 1));
                for (t, step) in all[r].iter().enumerate() {
                    let next = &all[(r + 1) % n][t];
                    assert_eq!(step.send, next.recv, "n={n} rank={r} step={t}");
                    assert_eq!(step.reduce, next.reduce);
                }
            }
        }
    }

    /// Simulate the schedule symbolically: each rank's copy of each segment is the set of
    /// ranks whose contributions it contains. At the end every rank must hold every
    /// contribution in every segment, and each step must forward what was just received.
    #[test]
    fn simulation_reaches_the_full_reduction() {
        for n in 1..7 {
            let mut state: Vec<Vec<BTreeSet<usize>>> = (0..n)
                .map(|r| (0..n).map(|_| BTreeSet::from([r])).collect())
                .collect();
            let scheds: Vec<_> = (0..n).map(|r| schedule(r, n)).collect();
            for t in 0..2 * (n - 1) {
                let sent: Vec<_> = (0..n)
                    .map(|r| state[r][scheds[r][t].send].clone())
                    .collect();
                for r in 0..n {
                    let prev = (r + n - 1) % n;
                    let step = scheds[r][t];
                    if t > 0 {
                        // Forwarding: what goes out at step t came in at step t-1.
                        assert_eq!(step.send, scheds[r][t - 1].recv, "n={n} r={r} t={t}");
                    }
                    if step.reduce {
                        state[r][step.recv].extend(sent[prev].iter().copied());
                    } else {
                        state[r][step.recv] = sent[prev].clone();
                    }
                }
            }
            let full: BTreeSet<usize> = (0..n).collect();
            for (r, segs) in state.iter().enumerate() {
                for (seg, got) in segs.iter().enumerate() {
                    assert_eq!(got, &full, "n={n} rank={r} seg={seg}");
                }
            }
        }
    }
}
