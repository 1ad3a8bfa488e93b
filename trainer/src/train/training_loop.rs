//! [`Loop`]: the training loop's state and one method per [`Action`] of the pure
//! plan ([`LoopPlan`]).
//!
//! The worker ([`super::worker`]) feeds micro-batches to the [`Trainer`] and, after
//! each optimizer step, hands the plan's actions to [`Loop::carry_out`], which
//! dispatches them to [`Loop::log`], [`Loop::histogram`], [`Loop::evaluate`],
//! [`Loop::export`] and [`Loop::checkpoint`] and returns the stop, if any. The
//! same dispatcher pays what a resumed checkpoint still owes
//! ([`LoopPlan::at_start`]), so an action means the same thing whoever asked for
//! it. Rank 0 alone writes: TensorBoard events, evaluation reports, checkpoints
//! (on a background thread) and exports; every rank takes part in evaluation and
//! follows rank 0's decisions.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;

use super::early_stop::Verdict;
use super::error::TrainError;
use super::evaluate::{evaluate, record};
use super::plan::{Action, EvalDecision, LoopPlan, Stop, owed_after};
use super::progress::{Progress, ProgressMode};
use super::publish::Exporter;
use super::resume::save_checkpoint;
use super::setup::{Setup, verify_replicas};
use super::signals::Heartbeat;
use super::state::{ExportInputs, LoopState};
use super::trainer::{StepResult, Trainer};
use crate::logging::{self, HParamsStart, MetricLogger, RunStatus, tags};
use vigil_collective::progress::ProgressRecord;
use vigil_config::RunConfig;
use vigil_data::{Dataset, LoadReport};
use vigil_eval::ExportSchedule;
use vigil_model::{SplitFeatures, TextTokenizer};
use vigil_store::checkpoint::AsyncCheckpointer;

/// Rank 0's mean of the steps since the last log.
#[derive(Default)]
struct Interval {
    loss: f64,
    steps: u64,
}

/// The evaluation split and its cached frozen-tower features.
pub(super) struct Validation {
    /// The validation split, if configured.
    pub data: Option<Arc<Dataset>>,
    /// Its frozen towers' features.
    pub cache: Option<SplitFeatures>,
}

/// Where the run's outputs go: TensorBoard, the console, checkpoints, exports.
struct Outputs {
    logger: Box<dyn MetricLogger>,
    progress: Option<Progress>,
    writer: Option<AsyncCheckpointer>,
    exporter: Exporter,
    export_schedule: ExportSchedule,
}

/// The training loop: everything an action needs, owned in one place.
pub(super) struct Loop<'a, B: AutodiffBackend> {
    cfg: &'a RunConfig,
    device: &'a B::Device,
    /// Model, optimizer, gradient buffer and process group.
    pub trainer: Trainer<B>,
    /// The text tower's tokenizer, if there is one.
    pub tokenizer: Option<TextTokenizer>,
    /// Position, early stopping, best metric and what is owed.
    pub state: LoopState,
    /// The launcher's watchdog heartbeat.
    pub heartbeat: Heartbeat,
    plan: LoopPlan,
    val: Validation,
    out: Outputs,
    interval: Interval,
    rank: usize,
    run_dir: PathBuf,
    total: u64,
}

impl<'a, B: AutodiffBackend> Loop<'a, B> {
    /// The loop over `setup`'s model and state, its outputs opened (a fresh run
    /// logs its config, hyper-parameters and skipped rows first). Returns the
    /// parts of `setup` the worker feeds batches from: the training split, its
    /// features and this rank's shard.
    pub fn open(
        cfg: &'a RunConfig,
        device: &'a B::Device,
        setup: Setup<B>,
    ) -> Result<(Self, super::setup::TrainSplit), TrainError> {
        let Setup {
            trainer,
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
            heartbeat,
        } = setup;
        let rank = trainer.comm.rank();
        let run_dir = cfg.output_dir();
        let plan = LoopPlan::from_config(cfg, total, val.is_some());
        let mode = cfg
            .checkpoint
            .monitor
            .as_ref()
            .map(|m| m.mode)
            .unwrap_or_default();
        let export_schedule =
            ExportSchedule::new(cfg.export.when, mode).with_best(state.best_metric);
        let fresh = state.step == 0;
        // The first step this process logs: TensorBoard drops what an earlier
        // process logged from there on, so a resumed run shows one curve.
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
        let writer = (rank == 0).then(|| AsyncCheckpointer::new(checkpoints));
        let mut exporter = Exporter::new(cfg, rank, &state.run_uid, !fresh);
        if let Some(inputs) = state.owed_export.take() {
            exporter.inputs = inputs;
        }
        let this = Self {
            cfg,
            device,
            trainer,
            tokenizer,
            state,
            heartbeat,
            plan,
            val: Validation {
                data: val,
                cache: val_cache,
            },
            out: Outputs {
                logger,
                progress,
                writer,
                exporter,
                export_schedule,
            },
            interval: Interval::default(),
            rank,
            run_dir,
            total,
        };
        let split = super::setup::TrainSplit {
            data: train,
            cache: train_cache,
            sampler,
        };
        Ok((this, split))
    }

    /// What a checkpoint this process resumed from still owes (the export a
    /// crash, a failure or a preemption interrupted), paid now; the stop if the
    /// run has nothing left to train.
    pub fn at_start(&mut self) -> Result<Option<Stop>, TrainError> {
        let actions = self.plan.at_start(self.state.step, self.state.owed);
        if actions.contains(&Action::Export) && self.rank == 0 {
            eprintln!(
                "resumed at step {}: publishing the export the run still owes",
                self.state.step
            );
        }
        self.carry_out(actions, None)
    }

    /// After optimizer step `step` of `epoch` (already counted in the state):
    /// carries out what the plan says and returns the stop, if any.
    pub fn after_step(
        &mut self,
        step: &StepResult,
        epoch: u64,
    ) -> Result<Option<Stop>, TrainError> {
        self.interval.loss += step.loss;
        self.interval.steps += 1;
        let actions = self.plan.after_step(self.state.step, step.stop_requested);
        self.carry_out(actions, Some((step, epoch)))
    }

    /// Runs `actions` in order (an evaluation appends the rest of its step) and
    /// returns the stop among them.
    fn carry_out(
        &mut self,
        mut actions: Vec<Action>,
        step: Option<(&StepResult, u64)>,
    ) -> Result<Option<Stop>, TrainError> {
        let mut stop = None;
        let mut i = 0;
        while let Some(&action) = actions.get(i) {
            match action {
                Action::Log => {
                    if let Some((step, epoch)) = step {
                        self.log(step, epoch)?;
                    }
                }
                Action::Histogram => self.histogram()?,
                Action::Evaluate => {
                    let decision = self.evaluate()?;
                    actions.extend(self.plan.after_eval(self.state.step, decision));
                }
                Action::Export => self.export()?,
                Action::Checkpoint => self.checkpoint(&actions, i)?,
                Action::Stop(why) => stop = Some(why),
            }
            i += 1;
        }
        Ok(stop)
    }

    /// [`Action::Log`]: the interval's scalars and the progress line.
    fn log(&mut self, step: &StepResult, epoch: u64) -> Result<(), TrainError> {
        let (values, record) = log_interval(
            self.cfg,
            &mut self.trainer,
            step,
            &mut self.interval,
            epoch,
            self.state.step,
            self.total,
        );
        self.out.logger.scalars(self.state.step, &values)?;
        if let Some(p) = &self.out.progress {
            p.update(&record);
        }
        Ok(())
    }

    /// [`Action::Histogram`]: weights and gradients per parameter (rank 0).
    fn histogram(&mut self) -> Result<(), TrainError> {
        if self.rank != 0 {
            return Ok(());
        }
        self.trainer.sync_host();
        let step = self.state.step;
        for s in &self.trainer.layout.slots {
            let r = s.offset..s.offset + s.numel;
            let w = &self.trainer.master[r.clone()];
            self.out
                .logger
                .histogram(&tags::weights(&s.path), step, w)?;
            self.out
                .logger
                .histogram(&tags::grads(&s.path), step, &self.trainer.grads()[r])?;
        }
        Ok(())
    }

    /// [`Action::Evaluate`]: scores the validation split on every rank; rank 0
    /// records the report and decides early stopping and "export now", and every
    /// rank follows its decision.
    fn evaluate(&mut self) -> Result<EvalDecision, TrainError> {
        let Some(val) = self.val.data.clone() else {
            // The plan evaluates only with a validation split.
            return Ok(EvalDecision::default());
        };
        let step = self.state.step;
        self.trainer.sync_host();
        verify_replicas(&mut self.trainer.comm, &self.trainer.master, step)?;
        let ev = evaluate::<B>(
            &self.trainer.model,
            self.tokenizer.as_ref(),
            &val,
            self.val.cache.as_ref(),
            &mut self.trainer.comm,
            self.cfg,
            self.device,
            &mut self.heartbeat,
        )?;
        let mut decision = [0.0f32; 2];
        if let Some(report) = &ev.report {
            record(
                report,
                &ev,
                &val,
                step,
                self.out.logger.as_mut(),
                self.out.progress.as_ref(),
                &self.run_dir,
                self.cfg,
            )?;
            self.out.exporter.inputs = ExportInputs {
                metrics: ev.scalars.clone(),
                thresholds: report.thresholds(),
            };
            if let (Some(es), Some(rule)) = (
                self.state.early_stopper.as_mut(),
                &self.cfg.train.early_stopping,
            ) && es.observe(report.metric(&rule.monitor)) == Verdict::Stop
            {
                decision[0] = 1.0;
            }
            let ranked = monitored_metric(self.cfg).and_then(|m| report.metric(&m));
            if self.out.export_schedule.after_evaluation(ranked) {
                decision[1] = 1.0;
            }
            self.state.best_metric = self.out.export_schedule.best();
        }
        // Only rank 0 has the report: every rank follows its decision.
        self.trainer.comm.broadcast(&mut decision, 0)?;
        Ok(EvalDecision {
            stop_early: decision[0] > 0.5,
            export: decision[1] > 0.5,
        })
    }

    /// [`Action::Export`]: publishes a version behind the gate (rank 0). A
    /// checkpoint that owes this export is made durable first, so a crash while
    /// exporting resumes from it.
    fn export(&mut self) -> Result<(), TrainError> {
        if let Some(w) = self.out.writer.as_mut()
            && let Some(report) = w.wait()?
        {
            tracing::info!(step = report.save.step, "checkpoint written");
        }
        self.out.exporter.export(
            &self.trainer.model,
            self.tokenizer.as_ref(),
            self.val.data.as_ref(),
            self.device,
            self.state.step,
        )
    }

    /// [`Action::Checkpoint`] at `actions[at]`: the state after this step, with
    /// what the rest of the step owes, to the background writer (rank 0).
    fn checkpoint(&mut self, actions: &[Action], at: usize) -> Result<(), TrainError> {
        self.state.owed = owed_after(actions, at);
        self.state.owed_export = self
            .state
            .owed
            .export
            .then(|| self.out.exporter.inputs.clone());
        self.trainer.sync_host();
        save_checkpoint::<B>(
            self.out.writer.as_mut(),
            self.cfg,
            &self.trainer.model,
            &self.trainer.master,
            &self.trainer.opt,
            &self.state,
            &self.out.exporter.inputs.metrics,
        )?;
        self.out.logger.sync()?;
        Ok(())
    }

    /// Ends the run after `stop`: waits for the last checkpoint, closes the
    /// TensorBoard session, prints where the outputs are, and meets the other
    /// ranks at a barrier. Returns the steps taken.
    pub fn finish(mut self, stop: Stop) -> Result<u64, TrainError> {
        if let Some(w) = self.out.writer.take()
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
        let status = if stop == Stop::Preempted {
            RunStatus::Running
        } else {
            RunStatus::Success
        };
        self.out.logger.hparams_end(self.state.step, status)?;
        self.out.logger.sync()?;
        if let Some(p) = &self.out.progress {
            p.finish();
            p.println(&self.out.exporter.summary(&self.run_dir, self.state.step));
        }
        self.trainer.comm.barrier()?;
        Ok(self.state.step)
    }
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
    report: &LoadReport,
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
