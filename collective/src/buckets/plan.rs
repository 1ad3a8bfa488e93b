//! [`BucketPlan`]: which parameter goes in which bucket, at which offset.

use std::ops::Range;

/// Where one parameter's gradient lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSlot {
    /// Bucket index.
    pub bucket: usize,
    /// Offset within the bucket, in elements.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

/// Parameters packed into buckets; identical on every rank for identical inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPlan {
    slots: Vec<ParamSlot>,
    /// Per bucket: the range of parameter indices and the total length.
    buckets: Vec<(Range<usize>, usize)>,
}

impl BucketPlan {
    /// Pack `lengths` (elements per parameter, in order) greedily into buckets of at most
    /// `cap_elems` elements; a parameter larger than the cap gets a bucket of its own.
    pub fn new(lengths: &[usize], cap_elems: usize) -> Self {
        let cap = cap_elems.max(1);
        let mut slots = Vec::with_capacity(lengths.len());
        let mut buckets: Vec<(Range<usize>, usize)> = Vec::new();
        for (p, &len) in lengths.iter().enumerate() {
            let fits = matches!(buckets.last(), Some((_, used)) if *used + len <= cap);
            if !fits {
                buckets.push((p..p, 0));
            }
            let last = buckets.len() - 1;
            let (range, used) = &mut buckets[last];
            slots.push(ParamSlot {
                bucket: last,
                offset: *used,
                len,
            });
            range.end = p + 1;
            *used += len;
        }
        BucketPlan { slots, buckets }
    }

    /// Bucket capacity in elements for `cap_mb` megabytes (MiB) of `f32`.
    pub fn cap_elems(cap_mb: f64) -> usize {
        ((cap_mb.max(0.0) * 1024.0 * 1024.0) / 4.0) as usize
    }

    /// Number of buckets.
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.slots.len()
    }

    /// Where parameter `p` lives, if it exists.
    pub fn slot(&self, p: usize) -> Option<ParamSlot> {
        self.slots.get(p).copied()
    }

    /// Parameters of bucket `b`.
    pub fn params(&self, b: usize) -> Range<usize> {
        self.buckets.get(b).map_or(0..0, |(r, _)| r.clone())
    }

    /// Total elements of bucket `b`.
    pub fn bucket_len(&self, b: usize) -> usize {
        self.buckets.get(b).map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_greedily_in_order() {
        let plan = BucketPlan::new(&[3, 4, 2, 10, 1, 1], 8);
        assert_eq!(plan.num_buckets(), 4);
        assert_eq!(plan.params(0), 0..2);
        assert_eq!(plan.params(1), 2..3);
        assert_eq!(plan.params(2), 3..4); // larger than the cap: alone
        assert_eq!(plan.params(3), 4..6);
        assert_eq!(
            plan.slot(1),
            Some(ParamSlot {
                bucket: 0,
                offset: 3,
                len: 4
            })
        );
        assert_eq!(
            plan.slot(5),
            Some(ParamSlot {
                bucket: 3,
                offset: 1,
                len: 1
            })
        );
        assert_eq!(plan.bucket_len(2), 10);
        assert_eq!(plan.slot(6), None);
    }

    #[test]
    fn every_element_is_placed_once() {
        let lengths: Vec<usize> = (0..50).map(|i| (i * 37) % 101).collect();
        let plan = BucketPlan::new(&lengths, 120);
        for b in 0..plan.num_buckets() {
            let total: usize = plan.params(b).map(|p| lengths[p]).sum();
            assert_eq!(total, plan.bucket_len(b));
            let mut off = 0;
            for p in plan.params(b) {
                let s = plan.slot(p).unwrap();
                assert_eq!((s.bucket, s.offset), (b, off));
                off += s.len;
            }
        }
    }

    #[test]
    fn empty_and_zero_length() {
        assert_eq!(BucketPlan::new(&[], 10).num_buckets(), 0);
        let plan = BucketPlan::new(&[0, 0], 10);
        assert_eq!(plan.num_buckets(), 1);
        assert_eq!(BucketPlan::cap_elems(25.0), 25 * 1024 * 1024 / 4);
    }
}
