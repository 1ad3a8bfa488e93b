//! The loader: batches of one rank for one epoch, built ahead of the training step
//! by a small pool of threads.
//!
//! Each worker thread claims the next unbuilt batch index, decodes and resizes its
//! images, and files the finished batch in a reorder buffer; the consumer takes
//! batches strictly in schedule order. A worker may only claim batch `b` while
//! `b < next + prefetch_batches`, so at most `prefetch_batches` batches exist
//! ahead of the consumer (bounded memory), and with enough cores the training
//! step never waits on decoding. Dropping the loader stops and joins the threads.
//!
//! Batches are whole units of work (not single images) so a thread's output is
//! one allocation and the order is decided by the sampler alone: the same
//! `(rank, world, epoch, start_batch)` always yields the same batches, whatever
//! the thread timing.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::batch::Batch;
use super::dataset::Dataset;
use super::error::DataError;
use super::imaging::ImageSpec;
use super::sampler::{Position, ShardSampler};
use vigil_config::DataSection;

/// How batches are built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoaderOptions {
    /// Image side and transform; `None` skips images (text-only model).
    pub image: Option<ImageSpec>,
    /// Decoding threads.
    pub threads: usize,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
}

impl LoaderOptions {
    /// The options of `data`; `with_images` is false for a model without an image
    /// tower (images are then not decoded at all).
    pub fn from_section(data: &DataSection, with_images: bool) -> Self {
        Self {
            image: with_images.then(|| ImageSpec::of(data)),
            threads: data.loader_threads.max(1),
            prefetch: data.prefetch_batches.max(1),
        }
    }
}

struct State {
    /// Next batch index (into `plan`) a worker may claim.
    next_claim: usize,
    /// Next batch index the consumer takes.
    next_take: usize,
    /// Finished batches waiting for the consumer.
    ready: BTreeMap<usize, Result<Batch, DataError>>,
    /// Set on drop: workers exit.
    stop: bool,
    /// Workers still running.
    alive: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when the consumer advances or the loader stops.
    can_claim: Condvar,
    /// Signalled when a batch is ready or a worker exits.
    can_take: Condvar,
}

/// An iterator over one rank's batches of one epoch, from a start batch on.
pub struct Loader {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    total: usize,
    first: u64,
    epoch: u64,
}

impl Loader {
    /// Starts the threads for `epoch` from batch `start_batch` of `sampler`'s
    /// schedule over `dataset`.
    pub fn new(
        dataset: Arc<Dataset>,
        sampler: &ShardSampler,
        epoch: u64,
        start_batch: usize,
        opts: LoaderOptions,
    ) -> Result<Self, DataError> {
        let plan = Arc::new(sampler.batches(epoch, start_batch));
        let total = plan.len();
        let threads = opts.threads.max(1).min(total.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_claim: 0,
                next_take: 0,
                ready: BTreeMap::new(),
                stop: false,
                alive: threads,
            }),
            can_claim: Condvar::new(),
            can_take: Condvar::new(),
        });
        let prefetch = opts.prefetch.max(1);
        let mut loader = Self {
            shared,
            workers: Vec::with_capacity(threads),
            total,
            first: start_batch as u64,
            epoch,
        };
        for i in 0..threads {
            let (shared, plan, dataset) = (loader.shared.clone(), plan.clone(), dataset.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("vigil-data-{i}"))
                .spawn(move || work(&shared, &plan, &dataset, epoch, start_batch, prefetch, opts));
            match spawned {
                Ok(handle) => loader.workers.push(handle),
                Err(source) => {
                    // Count the threads that never started, so `alive` stays truthful; dropping
                    // `loader` stops and joins the ones that did.
                    if let Ok(mut s) = loader.shared.state.lock() {
                        s.alive -= threads - i;
                    }
                    return Err(DataError::Spawn { source });
                }
            }
        }
        Ok(loader)
    }

    /// Batches this loader will still yield.
    pub fn remaining(&self) -> usize {
        let taken = self.shared.state.lock().map_or(self.total, |s| s.next_take);
        self.total - taken
    }

    /// The position of the next batch to be yielded.
    pub fn position(&self) -> Position {
        let taken = self.shared.state.lock().map_or(self.total, |s| s.next_take);
        Position {
            epoch: self.epoch,
            batch: self.first + taken as u64,
        }
    }
}

struct AliveGuard<'a>(&'a Shared);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        // Runs on normal exit and on a panic, so the consumer never waits forever.
        let mut s = match self.0.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        s.alive -= 1;
        self.0.can_take.notify_all();
    }
}

fn work(
    shared: &Shared,
    plan: &[Vec<usize>],
    dataset: &Dataset,
    epoch: u64,
    start: usize,
    prefetch: usize,
    opts: LoaderOptions,
) {
    let _guard = AliveGuard(shared);
    loop {
        let index = {
            let Ok(mut s) = shared.state.lock() else {
                return;
            };
            loop {
                if s.stop || s.next_claim >= plan.len() {
                    return;
                }
                if s.next_claim < s.next_take + prefetch {
                    break;
                }
                s = match shared.can_claim.wait(s) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
            s.next_claim += 1;
            s.next_claim - 1
        };
        let position = Position {
            epoch,
            batch: (start + index) as u64,
        };
        let built =
            Batch::build(dataset, &plan[index], position, opts.image).map_err(|(line, reason)| {
                DataError::ImageDecode {
                    file: dataset.file().to_path_buf(),
                    line,
                    reason,
                }
            });
        let Ok(mut s) = shared.state.lock() else {
            return;
        };
        s.ready.insert(index, built);
        shared.can_take.notify_all();
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut s = match self.shared.state.lock() {
            Ok(s) => s,
            Err(_) => return Some(Err(DataError::LoaderStopped)),
        };
        if s.next_take >= self.total {
            return None;
        }
        loop {
            let want = s.next_take;
            if let Some(batch) = s.ready.remove(&want) {
                s.next_take += 1;
                self.shared.can_claim.notify_all();
                if batch.is_err() {
                    // An error ends the epoch: later batches are not delivered.
                    s.next_take = self.total;
                    s.stop = true;
                }
                return Some(batch);
            }
            if s.alive == 0 {
                s.next_take = self.total;
                return Some(Err(DataError::LoaderStopped));
            }
            s = match self.shared.can_take.wait(s) {
                Ok(s) => s,
                Err(_) => return Some(Err(DataError::LoaderStopped)),
            };
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.state.lock() {
            s.stop = true;
        }
        self.shared.can_claim.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
