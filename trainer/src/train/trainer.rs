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
//!
//! Two paths take that step. On the CPU backends (tensors in host memory) the
//! gradients are copied into the flat host buffer above, reduced there and applied
//! by the flat host AdamW — measured, and bit-exact on resume. On other backends
//! (CUDA) the step is device-resident (`DeviceStep`): gradients are flattened into a
//! few `f32` bucket tensors on the device ([`super::bucket`]), the counters appended
//! to the last one, each bucket all-reduced in place (NCCL on the device buffer),
//! clipped and applied by [`DeviceAdamW`], and the module's weights written from the
//! device master weights: the host sees four counters and the gradient norm. The
//! host `master` and moments are brought up to date only when read (checkpoint,
//! histograms, replica check: [`Trainer::sync_host`]).

use std::time::Instant;

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, ElementConversion, Tensor, TensorData};
use vigil_collective::CommBuffer;

use super::bucket::{BUCKET_CAP, Bucket, buckets, flatten_grads, write_params_from_buckets};
use super::comm::Comm;
use super::device_adamw::DeviceAdamW;
use super::error::TrainError;
use super::flat::{ParamLayout, read_grads, write_params};
use super::precision::{LossScaler, ScaleVerdict};
use super::timing::{Phase, StepTimer};
use super::{FlatAdamW, LrSchedule, clip_global_norm};
use vigil_model::{ModelInput, ModerationModel, Targets};

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
    device: Option<DeviceStep<B>>,
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
        let on_host = vigil_model::kernels::on_host::<B>();
        let mut trainer = Self {
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
            device: None,
            micro: 0,
            weight: 0.0,
            loss_sum: 0.0,
            samples: 0,
            collectives: 0,
            steps_run: 0,
        };
        if !on_host || super::hooks::device_step_forced() {
            trainer.use_device_step(true);
        }
        Ok(trainer)
    }

    /// Takes optimizer steps on the device (`true`; what a non-host backend such as
    /// CUDA does from [`Self::new`]) or through the flat host buffer (`false`; the CPU
    /// default). Between steps only; the state carries over (tests run the device
    /// path on the CPU backend this way).
    pub fn use_device_step(&mut self, on: bool) {
        self.sync_host();
        self.device = on.then(|| {
            let device = self.model.devices().into_iter().next().unwrap_or_default();
            let buckets = buckets(&self.layout, BUCKET_CAP);
            DeviceStep {
                opt: DeviceAdamW::new(&self.opt, &self.master, &buckets, &device),
                buckets,
                grads: None,
                last: None,
                device,
            }
        });
    }

    /// Whether steps run on the device ([`Self::use_device_step`]).
    pub fn device_step(&self) -> bool {
        self.device.is_some()
    }

    /// Brings the host `master`, AdamW moments and [`Self::grads`] up to date with the
    /// device path's state (a no-op on the host path): before a checkpoint, histograms
    /// or the replica check read them.
    pub fn sync_host(&mut self) {
        let Some(d) = self.device.as_mut() else {
            return;
        };
        d.opt.to_host(&mut self.opt, &mut self.master);
        if let Some(last) = d.last.take() {
            for (b, g) in d.buckets.iter().zip(&last) {
                let v = g.clone().into_data().convert::<f32>();
                self.buf[b.range()].copy_from_slice(v.as_slice::<f32>().expect("f32"));
            }
            d.last = Some(last);
        }
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
        if let Some(d) = self.device.as_mut() {
            let mine =
                flatten_grads::<B, _>(&self.model, &grads, &self.layout, &d.buckets, &d.device);
            d.grads = Some(match d.grads.take() {
                None => mine,
                Some(acc) => acc.into_iter().zip(mine).map(|(a, g)| a + g).collect(),
            });
        } else if self.micro == 0 {
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
        if self.device.is_some() {
            return self.finish_device_step(step, stop_requested);
        }
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
            ScaleVerdict::Skip { next_scale } => self.skip_step(step, next_scale),
        }
        self.finish(step, tail, grad_norm, lr_factor)
    }

    /// [`Self::finish_step`] on the device: the step's buckets (counters appended to
    /// the last) reduced one by one in place, then the f16 check, unscaling, clipping
    /// and AdamW as device tensor ops; reads back only the counters and the norm.
    fn finish_device_step(
        &mut self,
        step: u64,
        stop_requested: bool,
    ) -> Result<StepResult, TrainError> {
        let d = self.device.as_mut().expect("the device path");
        let counters = [
            self.weight as f32,
            self.loss_sum as f32,
            self.samples as f32,
            f32::from(u8::from(stop_requested)),
        ];
        let counters = Tensor::<B::InnerBackend, 1>::from_data(
            TensorData::new(counters.to_vec(), [TAIL]),
            (&d.device, DType::F32),
        );
        let mut grads = d.grads.take().unwrap_or_default();
        let last_len = grads.last().map(|g| g.shape().num_elements());
        match grads.pop() {
            Some(last) => grads.push(Tensor::cat(vec![last, counters], 0)),
            None => grads.push(counters),
        }
        let t = Instant::now();
        let mut reduced = Vec::with_capacity(grads.len());
        for g in grads {
            reduced.push(self.comm.sum_tensor(g)?);
        }
        self.collectives += 1;
        self.timer.add(Phase::AllReduce, t.elapsed());
        let last = reduced.pop().expect("the counters' bucket");
        let cut = last_len.unwrap_or(0);
        let tail_t = last.clone().slice(cut..cut + TAIL);
        if last_len.is_some() {
            reduced.push(last.slice(0..cut));
        }
        let tail_v = tail_t.into_data().convert::<f32>();
        let tail: [f32; TAIL] = tail_v
            .as_slice::<f32>()
            .expect("f32")
            .try_into()
            .expect("the tail has TAIL slots");
        let weight = f64::from(tail[WEIGHT]);
        let lr_factor = self.schedule.factor(step);
        let mut grad_norm = f64::NAN;
        // f16: a non-finite norm is a non-finite gradient somewhere (the same verdict
        // on every rank: the reduced buckets are identical).
        let verdict = match self.scaler.as_mut() {
            Some(s) => {
                let norm = DeviceAdamW::<B::InnerBackend>::global_norm(&reduced);
                s.after_reduce(&[norm as f32])
            }
            None => ScaleVerdict::Step { unscale: 1.0 },
        };
        match verdict {
            ScaleVerdict::Step { unscale } => {
                let t = Instant::now();
                let mut inv = 1.0 / f64::from(unscale);
                if weight > 0.0 {
                    inv /= weight;
                }
                if inv != 1.0 {
                    reduced = DeviceAdamW::<B::InnerBackend>::scale(reduced, inv as f32);
                }
                grad_norm = DeviceAdamW::<B::InnerBackend>::global_norm(&reduced);
                if let Some(max) = self.grad_clip
                    && grad_norm > max
                    && grad_norm.is_finite()
                {
                    let clip = (max / (grad_norm + 1e-6)) as f32;
                    reduced = DeviceAdamW::<B::InnerBackend>::scale(reduced, clip);
                }
                self.opt.step += 1;
                d.opt.update(reduced.clone(), self.opt.step, lr_factor);
                self.model = write_params_from_buckets::<B, _>(
                    self.model.clone(),
                    &self.layout,
                    &d.buckets,
                    &d.opt.masters(),
                );
                d.last = Some(reduced);
                self.timer.add(Phase::Optimizer, t.elapsed());
            }
            ScaleVerdict::Skip { next_scale } => self.skip_step(step, next_scale),
        }
        self.finish(step, tail, grad_norm, lr_factor)
    }

    /// An f16 step whose gradients overflowed, either path: not applied, counted
    /// and logged (the scaler has halved the scale).
    fn skip_step(&mut self, step: u64, next_scale: f32) {
        self.skipped_steps += 1;
        if self.comm.rank() == 0 {
            tracing::warn!(
                step = step + 1,
                next_scale,
                "f16 gradient overflowed: step skipped, loss scale halved"
            );
        }
    }

    /// The step's bookkeeping, either path: counters reset, the result from the
    /// reduced counters.
    fn finish(
        &mut self,
        step: u64,
        tail: [f32; TAIL],
        grad_norm: f64,
        lr_factor: f64,
    ) -> Result<StepResult, TrainError> {
        let weight = f64::from(tail[WEIGHT]);
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

/// The device-resident step's state ([`Trainer::use_device_step`]).
struct DeviceStep<B: AutodiffBackend> {
    buckets: Vec<Bucket>,
    opt: DeviceAdamW<B::InnerBackend>,
    /// The step's gradient so far (summed over its micro-batches), one tensor per bucket.
    grads: Option<Vec<Tensor<B::InnerBackend, 1>>>,
    /// The last step's reduced, clipped gradient (what [`Trainer::grads`] shows after
    /// [`Trainer::sync_host`]).
    last: Option<Vec<Tensor<B::InnerBackend, 1>>>,
    device: burn::tensor::Device<B::InnerBackend>,
}
