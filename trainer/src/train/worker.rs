//! `vigil worker`: one replica of the data-parallel training loop.
//!
//! The worker is three parts:
//! - [`super::setup`]: datasets, model, the initial broadcast, resume, the
//!   feature cache and standardisation, ending in a [`Trainer`];
//! - [`Trainer`] (`trainer.rs`): model, optimizer, parameter layout, gradient
//!   buffer and process group; one optimizer step with one collective;
//! - [`LoopPlan`] (`plan.rs`): after step S, what to do (log, histogram,
//!   evaluate, export, checkpoint, stop), a pure function.
//!
//! This file feeds micro-batches to the trainer; [`Loop`] (`training_loop.rs`)
//! carries out the plan's actions, one method each. Rank 0 alone writes:
//! TensorBoard events, evaluation reports, checkpoints (on a background thread)
//! and exports. Replica checksums are compared at start and at every evaluation;
//! a difference is an error.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;

use super::error::TrainError;
use super::plan::Stop;
use super::setup::setup;
use super::signals::{install_stop_handler, stop_requested};
use super::state::step_seed;
use super::timing::Phase;
use super::training_loop::Loop;
use super::{Comm, hooks};
use vigil_config::RunConfig;
use vigil_data::{Batch, Dataset, Loader, LoaderOptions, Position, ShardSampler};
use vigil_model::ModelInput;

/// How a worker's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Trained to the last step.
    Completed {
        /// Optimizer steps taken.
        steps: u64,
    },
    /// Early stopping ended training.
    EarlyStopped {
        /// The step it stopped at.
        steps: u64,
    },
    /// A stop signal arrived; a checkpoint was written at `steps`.
    Preempted {
        /// The step checkpointed.
        steps: u64,
    },
}

/// Runs one worker of `cfg` on the configured device.
pub fn run(cfg: &RunConfig) -> Result<Outcome, TrainError> {
    // The image transform is fixed once, here: the config's, else the image
    // tower's own (a Hugging Face `preprocessor_config.json`). The resolved config,
    // the feature cache's key and every export then record what training used.
    let mut cfg = cfg.clone();
    if cfg.model.image.is_some() {
        cfg.data.image_transform = Some(vigil_model::image_transform(&cfg.model, &cfg.data)?);
    }
    let cfg = &cfg;
    match cfg.launch.device {
        vigil_config::Device::Cpu => {
            let device = Default::default();
            // The same recipe as on CUDA: half weights and activations through the
            // device's default float dtype (burn-flex has bf16/f16 tensors; the fused
            // kernels fall back to burn's ops for them), f32 loss, master weights and
            // moments.
            super::set_device_precision::<vigil_model::backend::CpuAutodiff>(
                &device,
                cfg.train.precision,
            )
            .map_err(|reason| TrainError::Precision {
                precision: cfg.train.precision.to_string(),
                reason,
            })?;
            tracing::info!(precision = %cfg.train.precision, "training on the CPU");
            train::<vigil_model::backend::CpuAutodiff>(cfg, &device)
        }
        vigil_config::Device::Cuda => cuda(cfg),
    }
}

#[cfg(feature = "cuda")]
fn cuda(cfg: &RunConfig) -> Result<Outcome, TrainError> {
    let env = vigil_collective::WorkerEnv::detect(|k| std::env::var(k).ok())?;
    let choice = super::comm::cuda_choice(env.as_ref())?;
    let device = burn::backend::cuda::CudaDevice::new(choice.ordinal);
    // Half weights and activations: the device's default float dtype, before any
    // tensor exists on it (see `precision.rs`).
    super::set_device_precision::<vigil_model::backend::CudaAutodiff>(&device, cfg.train.precision)
        .map_err(|reason| TrainError::Precision {
            precision: cfg.train.precision.to_string(),
            reason,
        })?;
    tracing::info!(
        ordinal = choice.ordinal,
        visible_as = choice.visible_as.as_deref().unwrap_or("-"),
        precision = %cfg.train.precision,
        "training on CUDA"
    );
    train::<vigil_model::backend::CudaAutodiff>(cfg, &device)
}

#[cfg(not(feature = "cuda"))]
fn cuda(_cfg: &RunConfig) -> Result<Outcome, TrainError> {
    Err(TrainError::NotCompiledWith { feature: "cuda" })
}

/// The training split's batches across epochs, from a resumable position.
struct Epochs {
    dataset: Arc<Dataset>,
    sampler: ShardSampler,
    options: LoaderOptions,
    loader: Option<Loader>,
}

impl Epochs {
    /// The next micro-batch of the epoch `position` is in, or `None` at the
    /// epoch's end (then [`Self::next_epoch`]).
    fn next(&mut self, position: Position) -> Result<Option<Batch>, TrainError> {
        if position.batch >= self.sampler.batches_per_epoch() as u64 {
            return Ok(None);
        }
        if self.loader.is_none() {
            self.loader = Some(Loader::new(
                self.dataset.clone(),
                &self.sampler,
                position.epoch,
                position.batch as usize,
                self.options,
            )?);
        }
        let loader = self.loader.as_mut().expect("just set");
        Ok(loader.next().transpose()?)
    }

    fn next_epoch(&mut self, position: &mut Position) {
        self.loader = None;
        *position = Position {
            epoch: position.epoch + 1,
            batch: 0,
        };
    }
}

fn train<B: AutodiffBackend>(cfg: &RunConfig, device: &B::Device) -> Result<Outcome, TrainError> {
    install_stop_handler();
    vigil_model::backend::tune_allocator();
    let comm = Comm::from_env(&cfg.launch)?;
    let setup = setup::<B>(cfg, device, comm)?;
    let (mut lp, split) = Loop::open(cfg, device, setup)?;
    let rank = lp.trainer.comm.rank();
    let decode_images =
        lp.trainer.model.image.is_some() && split.cache.as_ref().is_none_or(|c| c.image.is_none());
    let mut epochs = Epochs {
        dataset: split.data.clone(),
        sampler: split.sampler,
        options: LoaderOptions::from_section(&cfg.data, decode_images),
        loader: None,
    };
    let accum = u64::from(cfg.train.grad_accum);
    let mut stop = lp.at_start()?;

    while stop.is_none() {
        // One optimizer step: up to `accum` micro-batches (fewer at an epoch's end).
        let epoch = lp.state.position.epoch;
        while u64::from(lp.trainer.pending_micro_steps()) < accum {
            let waited = Instant::now();
            let Some(batch) = epochs.next(lp.state.position)? else {
                break;
            };
            lp.trainer.timer.add(Phase::DataWait, waited.elapsed());
            let micro = u64::from(lp.trainer.pending_micro_steps());
            B::seed(
                device,
                step_seed(cfg.run.seed, lp.state.step * accum + micro, rank),
            );
            let (input, targets) = ModelInput::<B>::from_batch(
                lp.tokenizer.as_ref(),
                &batch,
                split.cache.as_ref(),
                device,
            )?;
            lp.trainer.micro_step(
                &input,
                &targets,
                &batch.labels,
                &batch.label_known,
                batch.len(),
            )?;
            lp.state.position = Position {
                epoch,
                batch: batch.position.batch + 1,
            };
        }
        if lp.trainer.pending_micro_steps() == 0 {
            epochs.next_epoch(&mut lp.state.position);
            continue;
        }
        let step = lp.trainer.finish_step(lp.state.step, stop_requested())?;
        lp.state.step += 1;
        lp.state.optimizer_step = lp.trainer.opt.step;
        hooks::after_step(lp.state.step, rank);
        lp.heartbeat.beat();
        stop = lp.after_step(&step, epoch)?;
    }

    let stop = stop.unwrap_or(Stop::Completed);
    let steps = lp.finish(stop)?;
    Ok(match stop {
        Stop::Completed => Outcome::Completed { steps },
        Stop::EarlyStopped => Outcome::EarlyStopped { steps },
        Stop::Preempted => Outcome::Preempted { steps },
    })
}
