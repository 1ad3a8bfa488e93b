//! A tiny deterministic random-number generator (SplitMix64).
//!
//! The shuffling order of every epoch and the bundled sample dataset must be the
//! same on every rank, every machine and every future build: `rand`'s `StdRng`
//! does not promise a stable algorithm across versions, so the data layer uses its
//! own ten-line generator whose output is fixed by this file alone. SplitMix64
//! passes BigCrush and is plenty for shuffles and synthetic data; it is not for
//! cryptography.

/// SplitMix64 (Steele, Lea, Flood 2014), seeded by any `u64`.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for a sub-stream: `(seed, stream)` pairs give independent,
    /// reproducible sequences (used for `(run.seed, epoch)`).
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut g = Self::new(seed ^ 0x6A09_E667_F3BC_C909);
        let a = g.next_u64();
        Self::new(a ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`), by Lemire's multiply-high (the
    /// tiny bias for huge `n` is irrelevant here and keeps the stream simple).
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of the reference C implementation for seed 0.
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(g.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4)
            .map(|_| SplitMix64::for_stream(1, 0).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            SplitMix64::for_stream(1, 0).next_u64(),
            SplitMix64::for_stream(1, 1).next_u64()
        );
        assert_ne!(
            SplitMix64::for_stream(1, 0).next_u64(),
            SplitMix64::for_stream(2, 0).next_u64()
        );
    }

    #[test]
    fn below_stays_in_range_and_shuffle_permutes() {
        let mut g = SplitMix64::new(9);
        assert!((0..1000).all(|_| g.below(7) < 7));
        let mut v: Vec<usize> = (0..100).collect();
        g.shuffle(&mut v);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(v, s);
    }
}
