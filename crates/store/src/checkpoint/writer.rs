//! [`AsyncCheckpointer`]: checkpoint writes on a background thread.
//!
//! The training loop serializes its state to bytes (that part needs the model and
//! stays on the training thread), hands the bytes over, and goes on training while
//! this thread writes, fsyncs and publishes. At most one write is in flight: a
//! second [`submit`](AsyncCheckpointer::submit) while the first is still writing
//! blocks until it finishes, so memory holds at most two checkpoints and saves
//! never reorder. The time the caller was blocked is the *stall* the issue asks to
//! report; it is returned with every save next to the write time.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::dir::{CheckpointDir, CheckpointMeta, SaveReport};
use super::error::StoreError;
use super::store::Files;

struct Job {
    step: u64,
    files: Files,
    meta: CheckpointMeta,
}

/// A finished background save.
#[derive(Debug, Clone)]
pub struct AsyncSaveReport {
    /// What the save did (step, bytes, write time, deletions).
    pub save: SaveReport,
    /// How long [`AsyncCheckpointer::submit`] blocked the caller for this save
    /// (waiting for the previous write), the training-step stall.
    pub stall: Duration,
}

/// Writes checkpoints on a background thread. See the module docs.
pub struct AsyncCheckpointer {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Result<SaveReport, StoreError>>,
    thread: Option<JoinHandle<()>>,
    /// Stall of the save in flight, if any.
    in_flight: Option<Duration>,
}

impl std::fmt::Debug for AsyncCheckpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncCheckpointer")
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}

impl AsyncCheckpointer {
    /// Starts the writer thread for `dir`.
    pub fn new(dir: CheckpointDir) -> Self {
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (result_tx, results) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("vigil-checkpoint".into())
            .spawn(move || {
                for job in job_rx {
                    let result = dir.save(job.step, &job.files, job.meta);
                    drop(job.files);
                    if result_tx.send(result).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning the checkpoint writer thread");
        Self {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
            in_flight: None,
        }
    }

    /// Hands a serialized checkpoint to the writer and returns as soon as it is
    /// queued. If a previous save is still running this waits for it first and
    /// returns its report (or its error); the wait is counted as stall.
    pub fn submit(
        &mut self,
        step: u64,
        files: Files,
        meta: CheckpointMeta,
    ) -> Result<Option<AsyncSaveReport>, StoreError> {
        let start = Instant::now();
        let previous = self.wait()?;
        let jobs = self.jobs.as_ref().ok_or(StoreError::WriterGone)?;
        jobs.send(Job { step, files, meta })
            .map_err(|_| StoreError::WriterGone)?;
        self.in_flight = Some(start.elapsed());
        Ok(previous)
    }

    /// Waits for the save in flight, if any, and returns its report: call before
    /// exiting (end of training, preemption) so the last checkpoint is complete.
    pub fn wait(&mut self) -> Result<Option<AsyncSaveReport>, StoreError> {
        let Some(stall) = self.in_flight.take() else {
            return Ok(None);
        };
        let save = self.results.recv().map_err(|_| StoreError::WriterGone)??;
        Ok(Some(AsyncSaveReport { save, stall }))
    }

    /// Whether a save is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Waits for the last save and stops the thread.
    pub fn finish(mut self) -> Result<Option<AsyncSaveReport>, StoreError> {
        let last = self.wait();
        self.shutdown();
        last
    }

    fn shutdown(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AsyncCheckpointer {
    /// Dropping waits for the write in flight, so a checkpoint handed over is
    /// never abandoned half-written by an orderly exit.
    fn drop(&mut self) {
        let _ = self.wait();
        self.shutdown();
    }
}
