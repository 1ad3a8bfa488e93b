//! Distributed evaluation: each rank scores its shard of the validation set, the
//! shards are gathered on rank 0 as flat `f32` buffers, and rank 0 rebuilds one
//! [`Scores`] in dataset order.
//!
//! The sampler pads shards by repeating rows so every rank has the same number of
//! batches; each scored row therefore carries its dataset index and duplicates
//! are dropped here, so padding never counts twice in a metric.
//!
//! Row indices travel as `f32::from_bits(u32)`: the gather copies bits and never
//! does arithmetic on them, so they arrive exact.

use std::collections::BTreeMap;

use vigil_eval::Scores;

/// One rank's scored rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardScores {
    /// Dataset index of each row.
    pub rows: Vec<u32>,
    /// Probabilities `[rows, labels]`.
    pub probs: Vec<f32>,
    /// Targets `[rows, labels]`.
    pub targets: Vec<f32>,
    /// Known masks `[rows, labels]`.
    pub known: Vec<bool>,
}

impl ShardScores {
    /// Appends one batch.
    pub fn push(&mut self, rows: &[u32], probs: &[f32], targets: &[f32], known: &[bool]) {
        self.rows.extend_from_slice(rows);
        self.probs.extend_from_slice(probs);
        self.targets.extend_from_slice(targets);
        self.known.extend_from_slice(known);
    }

    /// Flat encoding: per row `[index bits, probs.., targets.., known..]`.
    pub fn encode(&self, labels: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows.len() * (1 + 3 * labels));
        for (r, &row) in self.rows.iter().enumerate() {
            out.push(f32::from_bits(row));
            let s = r * labels..(r + 1) * labels;
            out.extend_from_slice(&self.probs[s.clone()]);
            out.extend_from_slice(&self.targets[s.clone()]);
            out.extend(self.known[s].iter().map(|&k| f32::from(u8::from(k))));
        }
        out
    }

    /// Inverse of [`ShardScores::encode`]; `None` if the length does not fit.
    pub fn decode(buf: &[f32], labels: usize) -> Option<Self> {
        let stride = 1 + 3 * labels;
        if !buf.len().is_multiple_of(stride) {
            return None;
        }
        let mut s = Self::default();
        for chunk in buf.chunks_exact(stride) {
            s.rows.push(chunk[0].to_bits());
            s.probs.extend_from_slice(&chunk[1..1 + labels]);
            s.targets
                .extend_from_slice(&chunk[1 + labels..1 + 2 * labels]);
            s.known
                .extend(chunk[1 + 2 * labels..].iter().map(|&k| k > 0.5));
        }
        Some(s)
    }
}

/// Merges every rank's shard into one [`Scores`] ordered by dataset index, keeping
/// the first copy of a row that padding repeated.
pub fn merge(shards: &[ShardScores], labels: &[String]) -> Scores {
    let n = labels.len();
    let mut by_row: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for (s, shard) in shards.iter().enumerate() {
        for (r, &row) in shard.rows.iter().enumerate() {
            by_row.entry(row).or_insert((s, r));
        }
    }
    let mut out = Scores {
        labels: labels.to_vec(),
        ..Default::default()
    };
    for (s, r) in by_row.into_values() {
        let sh = &shards[s];
        let range = r * n..(r + 1) * n;
        out.probs.extend_from_slice(&sh.probs[range.clone()]);
        out.targets.extend_from_slice(&sh.targets[range.clone()]);
        out.known.extend_from_slice(&sh.known[range]);
    }
    out
}

/// An order-sensitive checksum of a parameter vector (FNV-1a over the bits), which
/// ranks compare to prove their replicas are bit-identical.
pub fn checksum(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(rows: &[u32], p: f32) -> ShardScores {
        let mut s = ShardScores::default();
        for &r in rows {
            s.push(&[r], &[p, 1.0 - p], &[1.0, 0.0], &[true, r % 2 == 0]);
        }
        s
    }

    #[test]
    fn encode_decode_round_trips_exact_row_indices() {
        let s = shard(&[0, 7, 16_777_217, u32::MAX], 0.25);
        let back = ShardScores::decode(&s.encode(2), 2).unwrap();
        assert_eq!(back, s);
        assert!(ShardScores::decode(&[1.0, 2.0], 2).is_none());
    }

    #[test]
    fn merge_orders_rows_and_drops_padding_duplicates() {
        // Rank 0 has rows 0, 2, 4; rank 1 has 1, 3 and a padded repeat of 0.
        let labels = vec!["a".to_string(), "b".to_string()];
        let merged = merge(&[shard(&[0, 2, 4], 0.1), shard(&[1, 3, 0], 0.9)], &labels);
        assert_eq!(merged.rows(), 5);
        let firsts: Vec<f32> = merged.probs.chunks(2).map(|c| c[0]).collect();
        assert_eq!(firsts, vec![0.1, 0.9, 0.1, 0.9, 0.1]);
    }

    #[test]
    fn checksum_sees_any_bit_change() {
        let a = [1.0f32, 2.0, 3.0];
        let mut b = a;
        b[2] = f32::from_bits(b[2].to_bits() ^ 1);
        assert_ne!(checksum(&a), checksum(&b));
        assert_ne!(checksum(&[1.0, 2.0]), checksum(&[2.0, 1.0]));
    }
}
