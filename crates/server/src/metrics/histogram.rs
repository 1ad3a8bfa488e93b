//! [`AtomicHistogram`]: a fixed-bucket histogram observed with atomics only.
//!
//! Why not `prometheus_client`'s own `Histogram`: it takes a mutex on every
//! observation, and the latency histogram is observed by every inference request
//! from every runtime thread. This one is a custom metric of the same crate
//! ([`EncodeMetric`]), so its encoding (cumulative buckets, `le` formatting,
//! escaping of the family's labels) is still the crate's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A histogram with fixed upper bounds; clones share the same counts.
#[derive(Clone, Debug)]
pub struct AtomicHistogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds, ascending; `+Inf` is implied.
    bounds: &'static [f64],
    /// Per bucket (not cumulative), one more than `bounds`: the last is `+Inf`.
    counts: Box<[AtomicU64]>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these upper bounds (ascending, finite).
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Self(Arc::new(Inner {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records `v`: two atomic updates, no lock, no allocation.
    pub fn observe(&self, v: f64) {
        let i = &self.0;
        // The first bound `v` does not exceed (`le` is inclusive); past them all: +Inf.
        let bucket = i.bounds.partition_point(|b| *b < v);
        i.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = i
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let i = &self.0;
        let bounds = i.bounds.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(i.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        // `_count` from the same loads as the buckets, so it always equals the
        // `le="+Inf"` bucket even while requests are being observed.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = f64::from_bits(i.sum.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: [f64; 3] = [1.0, 2.5, 10.0];

    fn loads(h: &AtomicHistogram) -> Vec<u64> {
        h.0.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket() {
        let h = AtomicHistogram::new(&BOUNDS);
        for v in [0.5, 1.0, 1.5, 2.5, 10.0, 11.0] {
            h.observe(v);
        }
        assert_eq!(loads(&h), [2, 2, 1, 1]);
        assert_eq!(f64::from_bits(h.0.sum.load(Ordering::Relaxed)), 26.5);
    }

    #[test]
    fn clones_share_their_counts() {
        let h = AtomicHistogram::new(&BOUNDS);
        h.clone().observe(3.0);
        assert_eq!(loads(&h), [0, 0, 1, 0]);
    }

    #[test]
    fn observations_from_many_threads_are_all_counted() {
        let h = AtomicHistogram::new(&BOUNDS);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| h.observe(0.5)));
            }
        });
        assert_eq!(loads(&h), [4000, 0, 0, 0]);
        assert_eq!(f64::from_bits(h.0.sum.load(Ordering::Relaxed)), 2000.0);
    }
}
