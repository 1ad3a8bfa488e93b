//! [`Engine`]: the bounded queue of [`Job`]s and its worker threads. A worker
//! takes a batch of requests admitted on the same version, decodes their images,
//! scores the rows in one forward pass and answers each request with its share
//! (and, to a recall request, its rows' fused vectors from the same pass).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use vigil_eval::decisions;

use super::{Loaded, decode_image};
use crate::batcher::{Decision, Overloaded, admit, decide, take};
use crate::metrics::Metrics;
use crate::protocol::{BadInput, IMAGE, Rows};

/// What a request gets back: probabilities and decisions, `[n, labels]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Probabilities.
    pub probs: Vec<f32>,
    /// Decisions at the version's thresholds.
    pub decisions: Vec<bool>,
    /// The fused vectors `[n, embedding_dims]`, when the job asked ([`Job::embed`]).
    pub embeddings: Option<Vec<f32>>,
}

/// Why a queued request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Its input is bad (an image that does not decode or is too large): 400.
    Bad(BadInput),
    /// The model failed: 500.
    Failed(String),
}

/// A request waiting for a worker.
#[derive(Debug)]
pub struct Job {
    /// Its rows.
    pub rows: Rows,
    /// The version it was admitted on.
    pub model: Arc<Loaded>,
    /// Whether it wants its rows' fused vectors (a recall request).
    pub embed: bool,
    /// When it was queued.
    pub enqueued: Instant,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Scored, JobError>>,
}

/// Batching settings (`--max-batch`, `--max-delay-ms`, `--queue-bound`) and the
/// pixel bound the workers check.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Rows per batch.
    pub max_batch: usize,
    /// The longest a request waits for others.
    pub max_delay: Duration,
    /// Requests that may wait.
    pub queue_bound: usize,
    /// Largest image, pixels.
    pub max_image_pixels: u64,
    /// Most bytes the image decoder may allocate for one image.
    pub max_image_alloc: u64,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// The bounded queue and its workers.
#[derive(Debug)]
pub struct Engine {
    queue: Mutex<Queue>,
    wake: Condvar,
    settings: BatchSettings,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// A queue with these settings; no workers yet ([`Engine::start_workers`]).
    pub fn new(settings: BatchSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            settings,
            metrics,
        })
    }

    /// Starts `threads` workers; they run until [`Engine::close`] and an empty queue.
    pub fn start_workers(self: &Arc<Self>, threads: usize) -> std::io::Result<Vec<JoinHandle<()>>> {
        (0..threads.max(1))
            .map(|w| {
                let engine = self.clone();
                std::thread::Builder::new()
                    .name(format!("vigil-serve-{w}"))
                    .spawn(move || {
                        while let Some(batch) = engine.next_batch() {
                            engine.run_batch(w, batch);
                        }
                    })
            })
            .collect()
    }

    /// Queues a request, or gives it back when the queue is at its bound.
    pub fn submit(&self, job: Job) -> Result<(), (Overloaded, Job)> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(o) = admit(q.jobs.len(), self.settings.queue_bound) {
            return Err((o, job));
        }
        q.jobs.push_back(job);
        self.metrics.set_queue_depth(q.jobs.len());
        drop(q);
        self.wake.notify_one();
        Ok(())
    }

    /// Lets the workers finish what is queued and exit.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.wake.notify_all();
    }

    /// Blocks until a batch is due (None: closed and empty).
    fn next_batch(&self) -> Option<Vec<Job>> {
        let s = self.settings;
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let Some(head) = q.jobs.front() else {
                if q.closed {
                    return None;
                }
                q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            let rows: Vec<usize> = q
                .jobs
                .iter()
                .take_while(|j| Arc::ptr_eq(&j.model, &head.model))
                .map(|j| j.rows.len())
                .collect();
            let total: usize = rows.iter().sum();
            let waited = head.enqueued.elapsed();
            let decision = if q.closed {
                Decision::Flush
            } else {
                decide(total, waited, s.max_batch, s.max_delay)
            };
            match decision {
                Decision::Flush => {
                    let k = take(&rows, s.max_batch);
                    let batch: Vec<Job> = q.jobs.drain(..k).collect();
                    self.metrics.set_queue_depth(q.jobs.len());
                    if !q.jobs.is_empty() {
                        self.wake.notify_one();
                    }
                    return Some(batch);
                }
                Decision::Wait(d) => {
                    q = self
                        .wake
                        .wait_timeout(q, d)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    /// Decodes the batch's images, scores it, answers every request.
    fn run_batch(&self, worker: usize, jobs: Vec<Job>) {
        let Some(model) = jobs.first().map(|j| j.model.clone()) else {
            return;
        };
        let side = model.image.size as usize;
        let plane = if model.towers.image {
            3 * side * side
        } else {
            0
        };
        let mut live = Vec::with_capacity(jobs.len());
        let (mut texts, mut images, mut present) = (Vec::new(), Vec::new(), Vec::new());
        for job in jobs {
            let n = job.rows.len();
            let start = images.len();
            images.resize(start + n * plane, 0.0);
            let mut bad = None;
            if plane > 0 {
                for (row, img) in job.rows.images.iter().enumerate() {
                    if let Some(bytes) = img {
                        let out = &mut images[start + row * plane..start + (row + 1) * plane];
                        if let Err(message) = decode_image(
                            bytes,
                            &model.image,
                            self.settings.max_image_pixels,
                            self.settings.max_image_alloc,
                            out,
                        ) {
                            bad = Some(BadInput {
                                input: Some(IMAGE.into()),
                                row: Some(row),
                                message,
                            });
                            break;
                        }
                    }
                }
            }
            if let Some(bad) = bad {
                images.truncate(start);
                let _ = job.reply.send(Err(JobError::Bad(bad)));
                continue;
            }
            texts.extend(job.rows.texts.iter().cloned());
            present.extend(job.rows.images.iter().map(|i| plane > 0 && i.is_some()));
            live.push(job);
        }
        if live.is_empty() {
            return;
        }
        let rows = texts.len();
        self.metrics.batch(rows);
        let fused = live.iter().any(|j| j.embed);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            model.score(worker, &texts, &images, &present, fused)
        }));
        let dims = model.embedding_dims;
        let (probs, vectors) = match result {
            Ok(Ok((p, v)))
                if p.len() == rows * model.labels.len()
                    && v.as_ref().is_none_or(|v| v.len() == rows * dims) =>
            {
                (p, v)
            }
            Ok(Ok((p, v))) => {
                let msg = format!(
                    "the model returned {} values ({} embedding values) for {rows} rows",
                    p.len(),
                    v.map_or(0, |v| v.len())
                );
                return fail_all(live, &msg);
            }
            Ok(Err(e)) => return fail_all(live, &e),
            Err(_) => return fail_all(live, "the model panicked on this batch"),
        };
        let l = model.labels.len();
        let mut offset = 0;
        for job in live {
            let n = job.rows.len();
            let p = probs[offset * l..(offset + n) * l].to_vec();
            let embeddings = match (&vectors, job.embed) {
                (Some(v), true) => Some(v[offset * dims..(offset + n) * dims].to_vec()),
                _ => None,
            };
            offset += n;
            let d = p
                .chunks(l.max(1))
                .flat_map(|row| decisions(row, &model.thresholds, model.task))
                .collect();
            let _ = job.reply.send(Ok(Scored {
                probs: p,
                decisions: d,
                embeddings,
            }));
        }
    }
}

fn fail_all(jobs: Vec<Job>, message: &str) {
    eprintln!("vigil serve: error: a batch failed: {message}");
    for job in jobs {
        let _ = job.reply.send(Err(JobError::Failed(message.to_string())));
    }
}
