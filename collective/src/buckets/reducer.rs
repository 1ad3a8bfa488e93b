//! [`GradBuckets`]: bucket buffers plus a communication thread that all-reduces them.
//!
//! A bucket's buffer is *moved* to the communication thread while it is reduced and moved
//! back when done, so the caller can never touch a bucket in flight: asking for a slice of
//! one simply waits for it. That keeps the overlap safe without locks on the data.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::plan::BucketPlan;
use crate::element::ReduceOp;
use crate::error::{Error, Result};
use crate::group::{CommBuffer, ProcessGroup};

/// Options of [`GradBuckets`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketOptions {
    /// Bucket capacity in MiB of `f32` (PyTorch's `bucket_cap_mb`, default 25).
    pub bucket_cap_mb: f64,
    /// Reduction applied to gradients (default [`ReduceOp::Mean`]: averaged gradients).
    pub op: ReduceOp,
}

impl Default for BucketOptions {
    fn default() -> Self {
        BucketOptions {
            bucket_cap_mb: 25.0,
            op: ReduceOp::Mean,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Being filled by the caller.
    Filling,
    /// All parameters ready; waiting for earlier buckets to launch.
    Ready,
    /// On the communication thread.
    InFlight,
    /// Reduced this step.
    Done,
}

type Job = (usize, CommBuffer);
type Completion = (usize, CommBuffer, Result<()>);

/// Gradient buckets reduced in the background (see the module docs of
/// [`crate::buckets`]).
pub struct GradBuckets {
    plan: BucketPlan,
    buffers: Vec<Option<CommBuffer>>,
    state: Vec<State>,
    param_ready: Vec<bool>,
    ready_count: Vec<usize>,
    next_launch: usize,
    no_sync: bool,
    group: Arc<Mutex<ProcessGroup>>,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Completion>,
    thread: Option<JoinHandle<()>>,
    error: Option<Error>,
}

impl std::fmt::Debug for GradBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradBuckets")
            .field("buckets", &self.plan.num_buckets())
            .field("no_sync", &self.no_sync)
            .finish_non_exhaustive()
    }
}

impl GradBuckets {
    /// Plan buckets for parameters of `lengths` and allocate their buffers (zeroed) where
    /// the group's transport reduces them fastest. Collective: every rank must call it with
    /// the same lengths and options.
    pub fn new(mut group: ProcessGroup, lengths: &[usize], opts: BucketOptions) -> Result<Self> {
        let plan = BucketPlan::new(lengths, BucketPlan::cap_elems(opts.bucket_cap_mb));
        let buffers = (0..plan.num_buckets())
            .map(|b| group.alloc_buffer(plan.bucket_len(b)).map(Some))
            .collect::<Result<Vec<_>>>()?;
        let group = Arc::new(Mutex::new(group));
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Completion>();
        let worker_group = group.clone();
        let op = opts.op;
        let thread = std::thread::Builder::new()
            .name("vigil-buckets".into())
            .spawn(move || {
                for (b, mut buf) in job_rx {
                    let res = match worker_group.lock() {
                        Ok(mut g) => g.all_reduce_buffer(&mut buf, op),
                        Err(_) => Err(Error::Bucket {
                            reason: "group lock poisoned".into(),
                        }),
                    };
                    if done_tx.send((b, buf, res)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io("spawn bucket thread", e))?;
        let n = plan.num_buckets();
        Ok(GradBuckets {
            param_ready: vec![false; plan.num_params()],
            ready_count: vec![0; n],
            state: vec![State::Filling; n],
            buffers,
            plan,
            next_launch: 0,
            no_sync: false,
            group,
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            error: None,
        })
    }

    /// The bucket plan.
    pub fn plan(&self) -> &BucketPlan {
        &self.plan
    }

    /// In `no_sync` mode (gradient-accumulation micro-steps) nothing is reduced: marking
    /// parameters ready and [`reduce`](Self::reduce) only record the step, and gradients
    /// keep accumulating in the buckets until a step with `no_sync` off.
    pub fn set_no_sync(&mut self, on: bool) {
        self.no_sync = on;
    }

    /// Whether `no_sync` mode is on.
    pub fn no_sync(&self) -> bool {
        self.no_sync
    }

    fn slot(&self, p: usize) -> Result<super::plan::ParamSlot> {
        self.plan.slot(p).ok_or_else(|| Error::Bucket {
            reason: format!(
                "parameter {p} out of range ({} parameters)",
                self.plan.num_params()
            ),
        })
    }

    /// The gradient slice of parameter `p`, waiting first if its bucket is being reduced.
    pub fn grad_mut(&mut self, p: usize) -> Result<&mut [f32]> {
        let s = self.slot(p)?;
        self.wait_bucket(s.bucket)?;
        let buf = self.buffers[s.bucket].as_mut().ok_or_else(in_flight)?;
        Ok(&mut buf[s.offset..s.offset + s.len])
    }

    /// Read the gradient of parameter `p` (after [`wait`](Self::wait), the reduced value).
    pub fn grad(&mut self, p: usize) -> Result<&[f32]> {
        Ok(self.grad_mut(p)?)
    }

    /// Mark parameter `p`'s gradient complete; launches its bucket (and any ready
    /// successors) once every parameter in it is ready, unless in `no_sync` mode.
    pub fn mark_ready(&mut self, p: usize) -> Result<()> {
        let s = self.slot(p)?;
        if !self.param_ready[p] {
            self.param_ready[p] = true;
            self.ready_count[s.bucket] += 1;
            if self.ready_count[s.bucket] == self.plan.params(s.bucket).len() {
                self.mark_bucket_ready(s.bucket)?;
            }
        }
        Ok(())
    }

    /// Mark a whole bucket complete (e.g. when the caller fills buckets, not parameters).
    pub fn mark_bucket_ready(&mut self, b: usize) -> Result<()> {
        if b >= self.plan.num_buckets() {
            return Err(Error::Bucket {
                reason: format!("bucket {b} out of range"),
            });
        }
        if self.state[b] == State::Filling {
            self.state[b] = State::Ready;
        }
        self.launch_ready()
    }

    fn launch_ready(&mut self) -> Result<()> {
        if self.no_sync {
            return Ok(());
        }
        while self.next_launch < self.state.len() && self.state[self.next_launch] == State::Ready {
            let b = self.next_launch;
            let buf = self.buffers[b].take().ok_or_else(in_flight)?;
            let sent = self.jobs.as_ref().map(|j| j.send((b, buf)));
            match sent {
                Some(Ok(())) => {}
                Some(Err(mpsc::SendError((_, buf)))) => {
                    self.buffers[b] = Some(buf);
                    return Err(Error::Bucket {
                        reason: "communication thread is gone".into(),
                    });
                }
                None => {
                    return Err(Error::Bucket {
                        reason: "reducer closed".into(),
                    });
                }
            }
            self.state[b] = State::InFlight;
            self.next_launch += 1;
        }
        Ok(())
    }

    /// Launch every bucket not launched yet, then [`wait`](Self::wait) for all of them.
    pub fn reduce(&mut self) -> Result<()> {
        for b in 0..self.state.len() {
            if self.state[b] == State::Filling {
                self.state[b] = State::Ready;
            }
        }
        self.launch_ready()?;
        self.wait()
    }

    fn wait_bucket(&mut self, b: usize) -> Result<()> {
        while self.state.get(b) == Some(&State::InFlight) {
            self.receive_one()?;
        }
        Ok(())
    }

    fn receive_one(&mut self) -> Result<()> {
        let (b, buf, res) = self.done.recv().map_err(|_| Error::Bucket {
            reason: "communication thread is gone".into(),
        })?;
        self.buffers[b] = Some(buf);
        self.state[b] = State::Done;
        if let Err(e) = res
            && self.error.is_none()
        {
            self.error = Some(e);
        }
        Ok(())
    }

    /// Wait for every launched bucket; then start a new step (all buckets filling again).
    /// Returns the first error of the step. In `no_sync` mode only resets the marks.
    pub fn wait(&mut self) -> Result<()> {
        while self.state.contains(&State::InFlight) {
            self.receive_one()?;
        }
        let unlaunched = self.state.iter().any(|s| *s != State::Done);
        if !self.no_sync && unlaunched && self.state.contains(&State::Done) {
            // Some buckets were reduced and others not: ranks would diverge.
            self.error.get_or_insert(Error::Bucket {
                reason: "wait() called before every bucket was launched; use reduce()".into(),
            });
        }
        self.state.fill(State::Filling);
        self.param_ready.fill(false);
        self.ready_count.fill(0);
        self.next_launch = 0;
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Zero every bucket (start of a new accumulation).
    pub fn zero(&mut self) -> Result<()> {
        self.wait()?;
        for buf in self.buffers.iter_mut().flatten() {
            buf.fill(0.0);
        }
        Ok(())
    }

    /// Run `f` with the process group (e.g. to gather metrics), after in-flight buckets.
    pub fn with_group<R>(&mut self, f: impl FnOnce(&mut ProcessGroup) -> R) -> Result<R> {
        for b in 0..self.state.len() {
            self.wait_bucket(b)?;
        }
        let mut g = self.group.lock().map_err(|_| Error::Bucket {
            reason: "group lock poisoned".into(),
        })?;
        Ok(f(&mut g))
    }
}

fn in_flight() -> Error {
    Error::Bucket {
        reason: "bucket buffer is on the communication thread".into(),
    }
}

impl Drop for GradBuckets {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
