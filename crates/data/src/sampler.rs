//! Sharding with PyTorch `DistributedSampler` semantics, positionable for resume.
//!
//! Every epoch the dataset is permuted by a generator seeded with `(seed, epoch)`
//! — the same permutation on every rank, no communication needed. The permuted
//! list is padded by repeating its head (`uneven: pad`) or cut (`uneven: drop`)
//! to a multiple of the world size; rank `r` takes positions `r, r + W, r + 2W,
//! ...` and batches them in order. Every rank thus has the same number of
//! samples and batches (the last batch may be short, equally on all ranks).
//!
//! A [`Position`] `(epoch, batch)` names the next batch to train on; it is saved
//! in checkpoints and a resumed run starts its loader there, getting exactly the
//! batches an uninterrupted run would have seen. The schedule is a pure function
//! of `(len, world, rank, batch_size, seed, shuffle, uneven, epoch)`.

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::rng::SplitMix64;
use vigil_config::UnevenTail;

/// The next batch to deliver: epoch and batch index within it. Serializable for
/// checkpoints.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// Epoch, from 0.
    pub epoch: u64,
    /// Batch index within the epoch, from 0.
    pub batch: u64,
}

/// The batch schedule of one rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSampler {
    len: usize,
    rank: usize,
    world: usize,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    uneven: UnevenTail,
}

impl ShardSampler {
    /// A schedule over `len` examples for `rank` of `world`. `shuffle: false`
    /// keeps file order (evaluation); training shuffles with `seed` (`run.seed`).
    pub fn new(
        len: usize,
        rank: usize,
        world: usize,
        batch_size: usize,
        seed: u64,
        shuffle: bool,
        uneven: UnevenTail,
    ) -> Result<Self, DataError> {
        let bad = |message: String| Err(DataError::Settings { message });
        if world == 0 || rank >= world {
            return bad(format!("rank {rank} is not within a world of {world}"));
        }
        if batch_size == 0 {
            return bad("train.batch_size must be at least 1".into());
        }
        if len == 0 {
            return bad("the dataset has no examples".into());
        }
        if uneven == UnevenTail::Drop && len < world {
            return bad(format!(
                "{len} examples cannot give each of {world} ranks one with data.uneven: drop \
                 (use pad, or fewer workers)"
            ));
        }
        Ok(Self {
            len,
            rank,
            world,
            batch_size,
            seed,
            shuffle,
            uneven,
        })
    }

    /// The evaluation schedule: file order, padded (every example at least once;
    /// gather predictions by [`super::Batch::rows`] to count each once).
    pub fn for_eval(
        len: usize,
        rank: usize,
        world: usize,
        batch_size: usize,
    ) -> Result<Self, DataError> {
        Self::new(len, rank, world, batch_size, 0, false, UnevenTail::Pad)
    }

    /// Examples each rank sees per epoch (including padding repeats).
    pub fn samples_per_rank(&self) -> usize {
        match self.uneven {
            UnevenTail::Pad => self.len.div_ceil(self.world),
            UnevenTail::Drop => self.len / self.world,
        }
    }

    /// Examples all ranks together see per epoch (`samples_per_rank × world`).
    pub fn total_size(&self) -> usize {
        self.samples_per_rank() * self.world
    }

    /// Batches per epoch, equal on every rank.
    pub fn batches_per_epoch(&self) -> usize {
        self.samples_per_rank().div_ceil(self.batch_size)
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The global order of epoch `epoch` before padding and sharding: a
    /// permutation of `0..len` (identity without shuffling), the same on every rank.
    pub fn permutation(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        if self.shuffle {
            SplitMix64::for_stream(self.seed, epoch).shuffle(&mut order);
        }
        order
    }

    /// This rank's examples for `epoch`, in delivery order.
    pub fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        let order = self.permutation(epoch);
        let total = self.total_size();
        (self.rank..total)
            .step_by(self.world)
            .map(|i| order[i % self.len])
            .collect()
    }

    /// The batches of `epoch` from batch `start` on.
    pub fn batches(&self, epoch: u64, start: usize) -> Vec<Vec<usize>> {
        self.epoch_indices(epoch)
            .chunks(self.batch_size)
            .skip(start)
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// The position after `pos` (rolling over into the next epoch).
    pub fn next_position(&self, pos: Position) -> Position {
        if pos.batch + 1 >= self.batches_per_epoch() as u64 {
            Position {
                epoch: pos.epoch + 1,
                batch: 0,
            }
        } else {
            Position {
                epoch: pos.epoch,
                batch: pos.batch + 1,
            }
        }
    }

    /// The position of the `step`-th batch (from 0) of the whole run.
    pub fn position_of(&self, step: u64) -> Position {
        let per = self.batches_per_epoch() as u64;
        Position {
            epoch: step / per,
            batch: step % per,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_like_distributed_sampler() {
        // 10 examples over 4 ranks: 3 each, the first two of the order repeated.
        let ranks: Vec<_> = (0..4)
            .map(|r| ShardSampler::new(10, r, 4, 2, 0, false, UnevenTail::Pad).unwrap())
            .collect();
        assert_eq!(ranks[0].epoch_indices(0), vec![0, 4, 8]);
        assert_eq!(ranks[1].epoch_indices(0), vec![1, 5, 9]);
        assert_eq!(ranks[2].epoch_indices(0), vec![2, 6, 0]);
        assert_eq!(ranks[3].epoch_indices(0), vec![3, 7, 1]);
        assert_eq!(ranks[0].batches_per_epoch(), 2);
        assert_eq!(ranks[0].batches(0, 1), vec![vec![8]]);
    }

    #[test]
    fn drops_the_tail() {
        let s = ShardSampler::new(10, 3, 4, 2, 0, false, UnevenTail::Drop).unwrap();
        assert_eq!(s.epoch_indices(0), vec![3, 7]);
        assert!(ShardSampler::new(3, 0, 4, 2, 0, true, UnevenTail::Drop).is_err());
    }

    #[test]
    fn positions_roll_over() {
        let s = ShardSampler::new(10, 0, 1, 4, 0, true, UnevenTail::Pad).unwrap();
        assert_eq!(s.batches_per_epoch(), 3);
        let p = s.next_position(Position { epoch: 0, batch: 2 });
        assert_eq!(p, Position { epoch: 1, batch: 0 });
        assert_eq!(s.position_of(7), Position { epoch: 2, batch: 1 });
    }
}
