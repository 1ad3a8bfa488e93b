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
//! This file feeds micro-batches to the trainer and carries out the plan's
//! actions. Rank 0 alone writes: TensorBoard events, evaluation reports,
//! checkpoints (on a background thread) and exports. Replica checksums are
//! compared at start and at every evaluation; a difference is an error.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;

use super::early_stop::Verdict;
use super::error::TrainError;
use super::evaluate::{evaluate, record};
use super::plan::{Action, EvalDecision, LoopPlan, Stop, owed_after};
use super::progress::{Progress, ProgressMode, ProgressRecord};
use super::publish::Exporter;
use super::resume::save_checkpoint;
use super::setup::{Setup, setup, verify_replicas};
use super::signals::{install_stop_handler, stop_requested};
use super::state::step_seed;
use super::timing::Phase;
use super::trainer::{StepResult, Trainer};
use super::{Comm, hooks};
use crate::checkpoint::AsyncCheckpointer;
use crate::config::RunConfig;
use crate::data::{Batch, Dataset, Loader, LoaderOptions, Position, ShardSampler};
use crate::export::ExportSchedule;
use crate::logging::{self, HParamsStart, MetricLogger, RunStatus, tags};
use crate::model::ModelInput;

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
    match cfg.launch.device {
        crate::config::Device::Cpu => {
            let device = Default::default();
            // The same recipe as on CUDA: half weights and activations through the
            // device's default float dtype (burn-flex has bf16/f16 tensors; the fused
            // kernels fall back to burn's ops for them), f32 loss, master weights and
            // moments.
            super::set_device_precision::<crate::backend::CpuAutodiff>(
                &device,
                cfg.train.precision,
            )
            .map_err(|reason| TrainError::Precision {
                precision: cfg.train.precision.to_string(),
                reason,
            })?;
            tracing::info!(precision = %cfg.train.precision, "training on the CPU");
            train::<crate::backend::CpuAutodiff>(cfg, &device)
        }
        crate::config::Device::Cuda => cuda(cfg),
    }
}

#[cfg(feature = "cuda")]
fn cuda(cfg: &RunConfig) -> Result<Outcome, TrainError> {
    let env = vigil_collective::WorkerEnv::detect(|k| std::env::var(k).ok())?;
    let choice = super::comm::cuda_choice(env.as_ref())?;
    let device = burn::backend::cuda::CudaDevice::new(choice.ordinal);
    // Half weights and activations: the device's default float dtype, before any
    // tensor exists on it (see `precision.rs`).
    super::set_device_precision::<crate::backend::CudaAutodiff>(&device, cfg.train.precision)
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
    train::<crate::backend::CudaAutodiff>(cfg, &device)
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

/// Rank 0's mean of the steps since the last log.
#[derive(Default)]
struct Interval {
    loss: f64,
    steps: u64,
}

fn train<B: AutodiffBackend>(cfg: &RunConfig, device: &B::Device) -> Result<Outcome, TrainError> {
    install_stop_handler();
    crate::backend::tune_allocator();
    let comm = Comm::from_env(&cfg.launch)?;
    let Setup {
        mut trainer,
        tokenizer,
        train,
        val,
        train_cache,
        val_cache,
        train_report,
        sampler,
        total,
        mut state,
        checkpoints,
        mut heartbeat,
    } = setup::<B>(cfg, device, comm)?;
    let rank = trainer.comm.rank();
    let run_dir = cfg.output_dir();
    let plan = LoopPlan::from_config(cfg, total, val.is_some());
    let mode = cfg
        .checkpoint
        .monitor
        .as_ref()
        .map(|m| m.mode)
        .unwrap_or_default();
    let mut export_schedule =
        ExportSchedule::new(cfg.export.when, mode).with_best(state.best_metric);

    let fresh = state.step == 0;
    // The first step this process logs: TensorBoard drops what an earlier process
    // logged from there on, so a resumed run shows one curve.
    let first_logged = if fresh { 0 } else { state.step + 1 };
    let mut logger = logging::open_logger(
        &cfg.logging,
        rank,
        &run_dir.join("tensorboard"),
        first_logged,
    )?;
    if fresh {
        log_run_start(logger.as_mut(), cfg, &train_report)?;
    }
    let progress = (rank == 0)
        .then(|| Progress::new(ProgressMode::detect(cfg.logging.format), state.step, total));
    let mut writer = (rank == 0).then(|| AsyncCheckpointer::new(checkpoints.clone()));
    let mut exporter = Exporter::new(cfg, rank, &state.run_uid);
    if let Some(inputs) = state.owed_export.take() {
        exporter.restore_inputs(inputs);
    }
    let decode_images =
        trainer.model.image.is_some() && train_cache.as_ref().is_none_or(|c| c.image.is_none());
    let mut epochs = Epochs {
        dataset: train.clone(),
        sampler,
        options: LoaderOptions::from_section(&cfg.data, decode_images),
        loader: None,
    };
    let accum = u64::from(cfg.train.grad_accum);
    let mut interval = Interval::default();
    // A checkpoint may owe the end of its step: the export a crash, a failure or
    // a preemption interrupted is published now, before this process stops.
    let mut stop = None;
    for action in plan.at_start(state.step, state.owed) {
        match action {
            Action::Export => {
                if rank == 0 {
                    eprintln!(
                        "resumed at step {}: publishing the export the run still owes",
                        state.step
                    );
                }
                exporter.export(
                    &trainer.model,
                    tokenizer.as_ref(),
                    val.as_ref(),
                    device,
                    state.step,
                )?;
            }
            Action::Stop(why) => stop = Some(why),
            // `at_start` owes only an export and a stop.
            _ => {}
        }
    }

    while stop.is_none() {
        // One optimizer step: up to `accum` micro-batches (fewer at an epoch's end).
        let epoch = state.position.epoch;
        while u64::from(trainer.pending_micro_steps()) < accum {
            let waited = Instant::now();
            let Some(batch) = epochs.next(state.position)? else {
                break;
            };
            trainer.timer.add(Phase::DataWait, waited.elapsed());
            let micro = u64::from(trainer.pending_micro_steps());
            B::seed(
                device,
                step_seed(cfg.run.seed, state.step * accum + micro, rank),
            );
            let (input, targets) = ModelInput::<B>::from_batch(
                tokenizer.as_ref(),
                &batch,
                train_cache.as_ref(),
                device,
            )?;
            trainer.micro_step(
                &input,
                &targets,
                &batch.labels,
                &batch.label_known,
                batch.len(),
            )?;
            state.position = Position {
                epoch,
                batch: batch.position.batch + 1,
            };
        }
        if trainer.pending_micro_steps() == 0 {
            epochs.next_epoch(&mut state.position);
            continue;
        }
        let step = trainer.finish_step(state.step, stop_requested())?;
        state.step += 1;
        state.optimizer_step = trainer.opt.step;
        hooks::after_step(state.step, rank);
        heartbeat.beat();
        interval.loss += step.loss;
        interval.steps += 1;

        let mut actions = plan.after_step(state.step, step.stop_requested);
        let mut i = 0;
        while let Some(&action) = actions.get(i) {
            i += 1;
            match action {
                Action::Log => {
                    let record = log_interval(
                        cfg,
                        &mut trainer,
                        &step,
                        &mut interval,
                        epoch,
                        state.step,
                        total,
                    );
                    logger.scalars(state.step, &record.0)?;
                    if let Some(p) = &progress {
                        p.update(&record.1);
                    }
                }
                Action::Histogram if rank == 0 => {
                    trainer.sync_host();
                    for s in &trainer.layout.slots {
                        let r = s.offset..s.offset + s.numel;
                        let w = &trainer.master[r.clone()];
                        logger.histogram(&tags::weights(&s.path), state.step, w)?;
                        logger.histogram(&tags::grads(&s.path), state.step, &trainer.grads()[r])?;
                    }
                }
                Action::Histogram => {}
                Action::Evaluate => {
                    let val = val
                        .as_ref()
                        .expect("the plan evaluates only with a val split");
                    trainer.sync_host();
                    verify_replicas(&mut trainer.comm, &trainer.master, state.step)?;
                    let ev = evaluate::<B>(
                        &trainer.model,
                        tokenizer.as_ref(),
                        val,
                        val_cache.as_ref(),
                        &mut trainer.comm,
                        cfg,
                        device,
                        &mut heartbeat,
                    )?;
                    let mut decision = [0.0f32; 2];
                    if let Some(report) = &ev.report {
                        record(
                            report,
                            &ev,
                            val,
                            state.step,
                            logger.as_mut(),
                            progress.as_ref(),
                            &run_dir,
                            cfg,
                        )?;
                        exporter.metrics = ev.scalars.clone();
                        exporter.thresholds = report.thresholds();
                        if let (Some(es), Some(rule)) =
                            (state.early_stopper.as_mut(), &cfg.train.early_stopping)
                            && es.observe(report.metric(&rule.monitor)) == Verdict::Stop
                        {
                            decision[0] = 1.0;
                        }
                        let ranked = monitored_metric(cfg).and_then(|m| report.metric(&m));
                        if export_schedule.after_evaluation(ranked) {
                            decision[1] = 1.0;
                        }
                        state.best_metric = export_schedule.best();
                    }
                    // Only rank 0 has the report: every rank follows its decision.
                    trainer.comm.broadcast(&mut decision, 0)?;
                    actions.extend(plan.after_eval(
                        state.step,
                        EvalDecision {
                            stop_early: decision[0] > 0.5,
                            export: decision[1] > 0.5,
                        },
                    ));
                }
                Action::Export => {
                    // A checkpoint that owes this export must be durable before the
                    // export starts: a crash while exporting then resumes from it.
                    if let Some(w) = writer.as_mut()
                        && let Some(report) = w.wait()?
                    {
                        tracing::info!(step = report.save.step, "checkpoint written");
                    }
                    exporter.export(
                        &trainer.model,
                        tokenizer.as_ref(),
                        val.as_ref(),
                        device,
                        state.step,
                    )?
                }
                Action::Checkpoint => {
                    // What the rest of this step owes travels in the checkpoint.
                    state.owed = owed_after(&actions, i - 1);
                    state.owed_export = state.owed.export.then(|| exporter.inputs());
                    trainer.sync_host();
                    save_checkpoint::<B>(
                        writer.as_mut(),
                        cfg,
                        &trainer.model,
                        &trainer.master,
                        &trainer.opt,
                        &state,
                        &exporter.metrics,
                    )?;
                    logger.sync()?;
                }
                Action::Stop(why) => stop = Some(why),
            }
        }
    }

    if let Some(w) = writer.take()
        && let Some(report) = w.finish()?
    {
        tracing::info!(
            step = report.save.step,
            bytes = report.save.bytes,
            write_ms = report.save.elapsed.as_millis() as u64,
            stall_ms = report.stall.as_millis() as u64,
            "checkpoint written"
        );
    }
    let steps = state.step;
    let outcome = match stop.unwrap_or(Stop::Completed) {
        Stop::Completed => Outcome::Completed { steps },
        Stop::EarlyStopped => Outcome::EarlyStopped { steps },
        Stop::Preempted => Outcome::Preempted { steps },
    };
    let status = if matches!(outcome, Outcome::Preempted { .. }) {
        RunStatus::Running
    } else {
        RunStatus::Success
    };
    logger.hparams_end(state.step, status)?;
    logger.sync()?;
    if let Some(p) = &progress {
        p.finish();
        p.println(&exporter.summary(&run_dir, state.step));
    }
    trainer.comm.barrier()?;
    Ok(outcome)
}

/// The interval's scalars and progress record after `done` of `total` steps
/// (and resets the interval).
fn log_interval<B: AutodiffBackend>(
    cfg: &RunConfig,
    trainer: &mut Trainer<B>,
    step: &StepResult,
    interval: &mut Interval,
    epoch: u64,
    done: u64,
    total: u64,
) -> (Vec<(&'static str, f64)>, ProgressRecord) {
    let stats = trainer.timer.take();
    let mean_loss = interval.loss / interval.steps.max(1) as f64;
    *interval = Interval::default();
    let lr = cfg.optim.lr * step.lr_factor;
    let mut values = vec![
        (tags::TRAIN_LOSS, mean_loss),
        (tags::TRAIN_LR, lr),
        (tags::TRAIN_LR_HEAD, cfg.optim.head_lr * step.lr_factor),
        (tags::TRAIN_GRAD_NORM, step.grad_norm),
        (tags::TRAIN_SAMPLES_PER_SEC, stats.samples_per_sec),
        (tags::TRAIN_EPOCH, epoch as f64),
        (tags::TIME_STEP_MS, stats.step_ms),
    ];
    for (name, ms) in &stats.phases_ms {
        values.push((phase_tag(name), *ms));
    }
    let left = total.saturating_sub(done) as f64;
    let record = ProgressRecord {
        event: "train",
        step: done,
        total_steps: total,
        epoch,
        loss: mean_loss,
        lr,
        grad_norm: step.grad_norm,
        samples_per_sec: stats.samples_per_sec,
        eta_s: left * stats.step_ms / 1e3,
        collectives_per_step: trainer.collectives() as f64 / trainer.steps_run().max(1) as f64,
        time_ms: stats
            .phases_ms
            .iter()
            .map(|(n, v)| ((*n).to_string(), serde_json::json!(v)))
            .collect(),
    };
    (values, record)
}

fn phase_tag(name: &str) -> &'static str {
    match name {
        "data_wait" => tags::TIME_DATA_WAIT_MS,
        "forward" => tags::TIME_FORWARD_MS,
        "backward" => tags::TIME_BACKWARD_MS,
        "allreduce" => tags::TIME_ALLREDUCE_MS,
        _ => tags::TIME_OPTIMIZER_MS,
    }
}

/// The metric that ranks checkpoints and "best" exports.
fn monitored_metric(cfg: &RunConfig) -> Option<String> {
    cfg.checkpoint
        .monitor
        .as_ref()
        .map(|m| m.metric.clone())
        .or_else(|| cfg.export.gate.as_ref().map(|g| g.metric.clone()))
}

fn log_run_start(
    logger: &mut dyn MetricLogger,
    cfg: &RunConfig,
    report: &crate::data::LoadReport,
) -> Result<(), TrainError> {
    logger.text(
        tags::CONFIG_TEXT,
        0,
        &logging::code_block("yaml", &cfg.to_yaml()),
    )?;
    let hparams = logging::flatten_hparams(cfg).unwrap_or_default();
    let mut metrics = vec![
        tags::TRAIN_LOSS.to_string(),
        tags::val_macro("auroc"),
        tags::val_macro("auprc"),
        tags::val_macro("f1"),
    ];
    metrics.dedup();
    logger.hparams_start(&HParamsStart {
        group_name: cfg.run.name.clone(),
        hparams,
        metrics,
        start_time_secs: logging::wall_time(),
    })?;
    for (kind, n) in report.skipped_by_kind() {
        logger.scalar(&tags::skipped_rows(&kind.to_string()), 0, n as f64)?;
    }
    Ok(())
}
