//! The [`Trainer`]: one replica's model, optimizer and gradient buffer, and the
//! optimizer step, with one collective per step.
//!
//! A step is `train.grad_accum` micro-batches. Each micro-batch's loss is turned
//! into a *sum* over its known labels ([`ModerationModel::loss_weight`]), its
//! gradient added into the flat buffer locally — no communication, as PyTorch
//! DDP's `no_sync` — and on the last micro-batch one all-reduce (sum) carries the
//! gradients together with the step's counters in the same buffer:
//!
//! ```text
//! [ gradients … | loss weight | loss sum | samples | stop requests ]
//! ```
//!
//! Dividing the summed gradient by the summed weight makes the step's gradient
//! the mean over every known label of every micro-batch of every rank (for
//! multi-class, weighted by class weight), so 1 worker × `grad_accum: 2` × B,
//! 2 workers × B and 1 worker × 2B take the same step. The stop flag rides along,
//! so agreeing on preemption costs nothing either. The counters are f32: exact
//! for counts below 2²⁴, and the loss sum is only logged.
//!
//! Every rank then applies the same update to the same fp32 master weights, so
//! replicas stay bit-identical.

use std::time::Instant;

use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use vigil_collective::CommBuffer;

use super::comm::Comm;
use super::error::TrainError;
use super::flat::{ParamLayout, read_grads, write_params};
use super::precision::{LossScaler, ScaleVerdict};
use super::timing::{Phase, StepTimer};
use super::{FlatAdamW, LrSchedule, clip_global_norm};
use crate::model::{ModelInput, ModerationModel, Targets};

/// Counters carried after the gradients in the step's reduction.
const TAIL: usize = 4;
const WEIGHT: usize = 0;
const LOSS: usize = 1;
const SAMPLES: usize = 2;
const STOP: usize = 3;

/// What one optimizer step did, identical on every rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepResult {
    /// Mean loss over every known label of the global batch.
    pub loss: f64,
    /// Gradient global norm before clipping.
    pub grad_norm: f64,
    /// Rows of the global batch.
    pub samples: u64,
    /// Whether any rank was asked to stop during the step.
    pub stop_requested: bool,
    /// The learning-rate schedule's factor the step used.
    pub lr_factor: f64,
}

/// One replica: model, flat optimizer state, gradient buffer, process group.
pub struct Trainer<B: AutodiffBackend> {
    /// The burn module, holding the current weights.
    pub model: ModerationModel<B>,
    /// The order of trainable parameters in the flat vectors.
    pub layout: ParamLayout,
    /// fp32 master weights, in layout order.
    pub master: Vec<f32>,
    /// AdamW state.
    pub opt: FlatAdamW,
    /// The process group.
    pub comm: Comm,
    /// Learning-rate schedule over the run's steps.
    pub schedule: LrSchedule,
    /// `optim.grad_clip`.
    pub grad_clip: Option<f64>,
    /// Where each phase's time went.
    pub timer: StepTimer,
    /// f16's dynamic loss scaling (`None`: f32 and bf16).
    pub scaler: Option<LossScaler>,
    /// Steps skipped because the f16 gradient overflowed.
    pub skipped_steps: u64,
    buf: CommBuffer,
    scratch: Vec<f32>,
    micro: u32,
    weight: f64,
    loss_sum: f64,
    samples: usize,
    collectives: u64,
    steps_run: u64,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A trainer over `model` whose weights are `master` (already identical on
    /// every rank); allocates the gradient buffer (collective under shm).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: ModerationModel<B>,
        layout: ParamLayout,
        master: Vec<f32>,
        opt: FlatAdamW,
        mut comm: Comm,
        schedule: LrSchedule,
        grad_clip: Option<f64>,
    ) -> Result<Self, TrainError> {
        let buf = comm.alloc(layout.len + TAIL)?;
        Ok(Self {
            model,
            layout,
            master,
            opt,
            comm,
            schedule,
            grad_clip,
            timer: StepTimer::default(),
            scaler: None,
            skipped_steps: 0,
            buf,
            scratch: Vec::new(),
            micro: 0,
            weight: 0.0,
            loss_sum: 0.0,
            samples: 0,
            collectives: 0,
            steps_run: 0,
        })
    }

    /// The reduced gradient of the last step (valid after [`Self::finish_step`]).
    pub fn grads(&self) -> &[f32] {
        &self.buf[..self.layout.len]
    }

    /// Collectives this trainer issued for its steps so far.
    pub fn collectives(&self) -> u64 {
        self.collectives
    }

    /// Optimizer steps this process took (fewer than [`Self::step`] when resumed).
    pub fn steps_run(&self) -> u64 {
        self.steps_run
    }

    /// Forward and backward of one micro-batch; its gradient is added to the
    /// step's, locally. `labels`/`known` are the batch's host-side targets (what
    /// the loss averages over).
    pub fn micro_step(
        &mut self,
        input: &ModelInput<B>,
        targets: &Targets<B>,
        labels: &[f32],
        known: &[bool],
        rows: usize,
    ) -> Result<(), TrainError> {
        let t = Instant::now();
        let weight = self.model.loss_weight(labels, known);
        let loss = self
            .model
            .loss(self.model.forward(input), targets)
            .mul_scalar(weight);
        let value: f64 = loss.clone().into_scalar().elem();
        let loss = match &self.scaler {
            Some(s) => loss.mul_scalar(s.scale()),
            None => loss,
        };
        self.timer.add(Phase::Forward, t.elapsed());
        let t = Instant::now();
        let grads = loss.backward();
        let len = self.layout.len;
        if self.micro == 0 {
            read_grads::<B, _>(&self.model, &grads, &self.layout, &mut self.buf[..len]);
        } else {
            self.scratch.resize(len, 0.0);
            read_grads::<B, _>(&self.model, &grads, &self.layout, &mut self.scratch);
            self.buf[..len]
                .iter_mut()
                .zip(&self.scratch)
                .for_each(|(g, s)| *g += s);
        }
        self.timer.add(Phase::Backward, t.elapsed());
        self.micro += 1;
        self.weight += weight;
        self.loss_sum += value;
        self.samples += rows;
        Ok(())
    }

    /// Micro-batches accumulated since the last step.
    pub fn pending_micro_steps(&self) -> u32 {
        self.micro
    }

    /// Ends optimizer step `step + 1` (`step`: steps done before it, the
    /// schedule's position, which the loop state owns): one all-reduce of
    /// gradients and counters, clipping, the AdamW update of the master weights,
    /// and the weights written back into the module. `stop_requested` is this
    /// rank's stop flag; the result says whether any rank's was set.
    pub fn finish_step(
        &mut self,
        step: u64,
        stop_requested: bool,
    ) -> Result<StepResult, TrainError> {
        let len = self.layout.len;
        let tail = &mut self.buf[len..];
        tail[WEIGHT] = self.weight as f32;
        tail[LOSS] = self.loss_sum as f32;
        tail[SAMPLES] = self.samples as f32;
        tail[STOP] = f32::from(u8::from(stop_requested));
        let t = Instant::now();
        self.comm.sum_buffer(&mut self.buf)?;
        self.collectives += 1;
        self.timer.add(Phase::AllReduce, t.elapsed());
        let tail: [f32; TAIL] = self.buf[len..].try_into().expect("the tail has TAIL slots");
        let weight = f64::from(tail[WEIGHT]);
        // f16: every rank sees the same reduced buffer, so every rank takes (or
        // skips) the same step.
        let verdict = match self.scaler.as_mut() {
            Some(s) => s.after_reduce(&self.buf[..len]),
            None => ScaleVerdict::Step { unscale: 1.0 },
        };
        let lr_factor = self.schedule.factor(step);
        let mut grad_norm = f64::NAN;
        match verdict {
            ScaleVerdict::Step { unscale } => {
                let mut inv = 1.0 / f64::from(unscale);
                if weight > 0.0 {
                    inv /= weight;
                }
                if inv != 1.0 {
                    let inv = inv as f32;
                    self.buf[..len].iter_mut().for_each(|g| *g *= inv);
                }
                super::hooks::reduced_grads(step + 1, self.comm.rank(), &self.buf[..len])?;
                let t = Instant::now();
                grad_norm = clip_global_norm(&mut self.buf[..len], self.grad_clip);
                self.opt
                    .update(&mut self.master, &self.buf[..len], lr_factor);
                self.model = write_params::<B, _>(self.model.clone(), &self.layout, &self.master);
                self.timer.add(Phase::Optimizer, t.elapsed());
            }
            ScaleVerdict::Skip { next_scale } => {
                self.skipped_steps += 1;
                if self.comm.rank() == 0 {
                    tracing::warn!(
                        step = step + 1,
                        next_scale,
                        "f16 gradient overflowed: step skipped, loss scale halved"
                    );
                }
            }
        }
        self.steps_run += 1;
        self.timer.step_done(tail[SAMPLES] as u64);
        let result = StepResult {
            loss: if weight > 0.0 {
                f64::from(tail[LOSS]) / weight
            } else {
                0.0
            },
            grad_norm,
            samples: tail[SAMPLES] as u64,
            stop_requested: tail[STOP] > 0.0,
            lr_factor,
        };
        (self.micro, self.weight, self.loss_sum, self.samples) = (0, 0.0, 0.0, 0);
        if !result.loss.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: step + 1,
                value: result.loss,
            });
        }
        Ok(result)
    }
}
