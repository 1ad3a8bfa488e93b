//! `vigil worker`: one replica of the data-parallel training loop.
//!
//! Each optimizer step: `grad_accum` micro-batches forward and backward, their
//! gradients summed into the flat [`CommBuffer`](vigil_collective::CommBuffer)
//! (shared memory under shm), one all-reduce (mean) on the last micro-step only,
//! clipping by global norm, the flat AdamW update of the fp32 master weights, and
//! the weights written back into the burn module. Every rank applies the same
//! averaged gradient to the same weights, so replicas stay bit-identical; their
//! checksums are compared at start and at every evaluation, and a difference is an
//! error.
//!
//! Rank 0 alone writes: TensorBoard events, evaluation reports, checkpoints (on a
//! background thread) and exports. Every rank can resume: rank 0 chooses the
//! checkpoint and the others load the same step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;

use super::comm::Comm;
use super::early_stop::{EarlyStopper, Verdict, is_better};
use super::error::TrainError;
use super::evaluate::{EvalOutcome, evaluate};
use super::feature_cache::{self, CachePlan};
use super::flat::{ParamLayout, read_grads, read_params, write_params};
use super::gather::checksum;
use super::progress::{Progress, ProgressMode, ProgressRecord};
use super::publish::Exporter;
use super::resume::{ResumeSource, restore, save_checkpoint};
use super::signals::{Heartbeat, install_stop_handler, stop_requested};
use super::state::{LoopState, step_seed};
use super::timing::{Phase, StepTimer};
use super::{AdamWConfig, FlatAdamW, LrSchedule, ParamGroup, clip_global_norm};
use crate::checkpoint::{AsyncCheckpointer, CheckpointDir};
use crate::config::{ExportWhen, OptimSection, RunConfig};
use crate::data::{Dataset, Loader, LoaderOptions, Position, ShardSampler, Split};
use crate::logging::{self, HParamsStart, MetricLogger, RunStatus, tags};
use crate::model::{LoadedModel, ModelInput, ModerationModel, Standardize};

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
            train::<crate::backend::CpuAutodiff>(cfg, &Default::default())
        }
        crate::config::Device::Cuda => cuda(cfg),
    }
}

#[cfg(feature = "cuda")]
fn cuda(cfg: &RunConfig) -> Result<Outcome, TrainError> {
    let local: usize = std::env::var("LOCAL_RANK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let device = burn::backend::cuda::CudaDevice::new(local);
    train::<crate::backend::CudaAutodiff>(cfg, &device)
}

#[cfg(not(feature = "cuda"))]
fn cuda(_cfg: &RunConfig) -> Result<Outcome, TrainError> {
    Err(TrainError::NotCompiledWith { feature: "cuda" })
}

/// Parameter groups as ranges of the flat layout, classified by the model's own
/// rule ([`crate::model::trainable_params`]): encoders at `optim.lr`, fusion and
/// head at `optim.head_lr`; weight decay only where the model says so (not on
/// biases, norms or other 1-D parameters).
pub fn param_groups(
    layout: &ParamLayout,
    params: &[crate::model::ParamInfo],
    optim: &OptimSection,
) -> Vec<ParamGroup> {
    let info: std::collections::HashMap<_, _> = params.iter().map(|p| (p.id, p)).collect();
    let mut groups: Vec<ParamGroup> = Vec::new();
    for s in &layout.slots {
        let (encoder, decay) = info.get(&s.id).map_or((false, true), |p| {
            (p.group == crate::model::ParamGroup::Encoder, p.decay)
        });
        let lr = if encoder { optim.lr } else { optim.head_lr };
        match groups.last_mut() {
            Some(g) if g.end == s.offset && g.lr == lr && g.decay == decay => g.end += s.numel,
            _ => groups.push(ParamGroup {
                start: s.offset,
                end: s.offset + s.numel,
                lr,
                decay,
            }),
        }
    }
    groups
}

/// Optimizer steps of the run: `train.max_steps`, `train.epochs` worth, or the
/// smaller of the two.
pub fn total_steps(cfg: &RunConfig, batches_per_epoch: u64) -> u64 {
    let per_epoch = batches_per_epoch.div_ceil(u64::from(cfg.train.grad_accum));
    let by_epochs = cfg.train.epochs.map(|e| u64::from(e) * per_epoch);
    match (by_epochs, cfg.train.max_steps) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => per_epoch,
    }
}

fn train<B: AutodiffBackend>(cfg: &RunConfig, device: &B::Device) -> Result<Outcome, TrainError> {
    install_stop_handler();
    crate::backend::tune_allocator();
    let mut heartbeat = Heartbeat::from_env();
    let mut comm = Comm::from_env(&cfg.launch)?;
    let (rank, world) = (comm.rank(), comm.world_size());
    let run_dir = cfg.output_dir();
    if rank == 0 {
        write_resolved_config(cfg, &run_dir)?;
    }
    let seed = cfg.run.seed;

    let writer_dir = (rank == 0).then_some(run_dir.as_path());
    let (train_ds, train_report) =
        Dataset::load(&cfg.data, &cfg.model.labels, Split::Train, writer_dir)?;
    let val_ds = match cfg.data.val {
        Some(_) => Some(Arc::new(
            Dataset::load(&cfg.data, &cfg.model.labels, Split::Val, writer_dir)?.0,
        )),
        None => None,
    };
    let train_ds = Arc::new(train_ds);
    heartbeat.beat();

    B::seed(device, seed);
    let LoadedModel { model, tokenizer } =
        ModerationModel::<B>::from_config(&cfg.model, &cfg.data, device)?;
    let layout = ParamLayout::of::<B, _>(&model);
    let mut master = vec![0.0f32; layout.len];
    read_params::<B, _>(&model, &layout, &mut master);
    // Seeded initialisation is already identical; broadcasting rank 0's weights
    // makes it so by construction (as DDP does).
    comm.broadcast(&mut master, 0)?;
    let mut model = write_params::<B, _>(model, &layout, &master);
    let adam = AdamWConfig {
        beta1: cfg.optim.betas[0],
        beta2: cfg.optim.betas[1],
        eps: cfg.optim.eps,
        weight_decay: cfg.optim.weight_decay,
    };
    let groups = param_groups(&layout, &crate::model::trainable_params(&model), &cfg.optim);
    let mut opt = FlatAdamW::new(adam, groups, layout.len);
    let mut state = LoopState {
        step: 0,
        position: Position::default(),
        optimizer_step: 0,
        early_stopper: cfg.train.early_stopping.as_ref().map(EarlyStopper::new),
        best_metric: None,
        world_size: world,
        global_batch: cfg.train.batch_size * world * cfg.train.grad_accum as usize,
    };

    let ckdir = if rank == 0 {
        CheckpointDir::new(&run_dir)?.with_config(&cfg.checkpoint)
    } else {
        CheckpointDir::reader(&run_dir)?
    };
    let source = ResumeSource::from_config(cfg, &ckdir, &mut comm)?;
    if let Some(source) = source {
        let restored = restore::<B>(source, model, &layout, &mut master, &mut opt, &mut state)?;
        model = restored;
    }
    verify_replicas(&mut comm, &master, state.step)?;

    // Frozen towers: features computed once per dataset (or loaded), not every step.
    let plan = CachePlan::from_config(cfg);
    let mut cache_reports = Vec::new();
    let mut prepare_cache = |ds: &Arc<Dataset>| -> Result<_, TrainError> {
        let (t, r) = feature_cache::prepare::<B>(
            plan,
            &model,
            tokenizer.as_ref(),
            ds,
            cfg,
            &mut comm,
            device,
            &mut heartbeat,
        )?;
        cache_reports.extend(r);
        Ok(t)
    };
    let train_cache = plan.any().then(|| prepare_cache(&train_ds)).transpose()?;
    let val_cache = match &val_ds {
        Some(val) if plan.any() => Some(prepare_cache(val)?),
        _ => None,
    };
    // A cached tower's features are standardised with their training-set
    // statistics (identical on every rank: the table is).
    if let Some(c) = train_cache
        .as_ref()
        .filter(|_| cfg.model.fusion.standardize)
    {
        if let Some(t) = &c.text {
            model
                .fusion
                .set_text_standardization(Standardize::fit(&t.values, t.dim, &t.present, device));
        }
        if let Some(t) = &c.image {
            model
                .fusion
                .set_image_standardization(Standardize::fit(&t.values, t.dim, &t.present, device));
        }
    }
    if rank == 0 {
        for r in &cache_reports {
            tracing::info!(
                split = r.split,
                tower = r.tower,
                rows = r.encoded,
                computed = r.computed,
                ms = r.elapsed.as_millis() as u64,
                "feature cache ready"
            );
            eprintln!("{}", r.line());
        }
    }

    let sampler = ShardSampler::new(
        train_ds.len(),
        rank,
        world,
        cfg.train.batch_size,
        seed,
        true,
        cfg.data.uneven,
    )?;
    let batches_per_epoch = sampler.batches_per_epoch() as u64;
    let total = total_steps(cfg, batches_per_epoch);
    let schedule = LrSchedule {
        kind: cfg.optim.schedule,
        warmup_steps: cfg.optim.warmup_steps,
        total_steps: total,
    };
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
    let mut writer = (rank == 0).then(|| AsyncCheckpointer::new(ckdir.clone()));
    let mut exporter = Exporter::new(cfg, rank);
    let decode_images =
        model.image.is_some() && train_cache.as_ref().is_none_or(|c| c.image.is_none());
    let loader_opts = LoaderOptions::from_section(&cfg.data, decode_images);
    let mut grads = comm.alloc(layout.len)?;
    let accum = u64::from(cfg.train.grad_accum);
    let mut scratch = vec![0.0f32; if accum > 1 { layout.len } else { 0 }];
    let mut timer = StepTimer::default();
    let (mut interval_loss, mut interval_n) = (0.0f64, 0u64);
    let mut outcome = None;

    'epochs: while state.step < total {
        let epoch = state.position.epoch;
        if state.position.batch >= batches_per_epoch {
            state.position = Position {
                epoch: epoch + 1,
                batch: 0,
            };
            continue;
        }
        let mut loader = Loader::new(
            train_ds.clone(),
            &sampler,
            epoch,
            state.position.batch as usize,
            loader_opts,
        )?;
        loop {
            // One optimizer step: up to `accum` micro-batches (fewer at an epoch's end).
            let (mut micro, mut loss_sum, mut samples) = (0u64, 0.0f64, 0usize);
            while micro < accum {
                let waited = Instant::now();
                let Some(batch) = loader.next() else { break };
                let batch = batch?;
                timer.add(Phase::DataWait, waited.elapsed());
                B::seed(device, step_seed(seed, state.step * accum + micro, rank));
                let t = Instant::now();
                let (input, targets) = ModelInput::<B>::from_batch(
                    tokenizer.as_ref(),
                    &batch,
                    train_cache.as_ref(),
                    device,
                )?;
                // The loss is a mean over known labels. Weighting each rank's mean by
                // its share of the known labels of all ranks makes the averaged
                // gradient that of the whole global batch: 2 workers at batch B
                // compute what 1 worker at batch 2B does.
                let known = batch.label_known.iter().filter(|k| **k).count() as f64;
                let mut global_known = [known];
                comm.sum_f64(&mut global_known)?;
                let share = if global_known[0] > 0.0 {
                    known * world as f64 / global_known[0]
                } else {
                    0.0
                };
                let loss = model
                    .loss(model.forward(&input), &targets)
                    .mul_scalar(share);
                let loss_value: f64 = loss.clone().into_scalar().elem();
                timer.add(Phase::Forward, t.elapsed());
                let t = Instant::now();
                let step_grads = loss.backward();
                let dst: &mut [f32] = if micro == 0 { &mut grads } else { &mut scratch };
                read_grads::<B, _>(&model, &step_grads, &layout, dst);
                if micro > 0 {
                    grads.iter_mut().zip(&scratch).for_each(|(g, s)| *g += s);
                }
                timer.add(Phase::Backward, t.elapsed());
                micro += 1;
                loss_sum += loss_value;
                samples += batch.len();
                state.position = Position {
                    epoch,
                    batch: batch.position.batch + 1,
                };
            }
            if micro == 0 {
                break;
            }
            if micro > 1 {
                let inv = 1.0 / micro as f32;
                grads.iter_mut().for_each(|g| *g *= inv);
            }
            let t = Instant::now();
            comm.mean_buffer(&mut grads)?;
            let mut sums = [loss_sum / micro as f64, samples as f64];
            comm.sum_f64(&mut sums)?;
            timer.add(Phase::AllReduce, t.elapsed());
            if state.step == 0
                && rank == 0
                && let Some(path) = std::env::var_os("VIGIL_DEBUG_FIRST_GRADS")
            {
                // Test hook: the all-reduced gradient of the first step, raw f32.
                let path = PathBuf::from(path);
                std::fs::write(&path, super::state::f32_bytes(&grads))
                    .map_err(|source| TrainError::Io { path, source })?;
            }
            let t = Instant::now();
            let grad_norm = clip_global_norm(&mut grads, cfg.optim.grad_clip);
            let factor = schedule.factor(state.step);
            opt.update(&mut master, &grads, factor);
            model = write_params::<B, _>(model, &layout, &master);
            timer.add(Phase::Optimizer, t.elapsed());
            state.step += 1;
            state.optimizer_step = opt.step;
            crash_hook(state.step, rank);
            timer.step_done(sums[1] as u64);
            heartbeat.beat();

            let loss = sums[0] / world as f64;
            if !loss.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    step: state.step,
                    value: loss,
                });
            }
            interval_loss += loss;
            interval_n += 1;
            if state.step.is_multiple_of(cfg.logging.interval.max(1)) || state.step == total {
                let stats = timer.take();
                let mean_loss = interval_loss / interval_n.max(1) as f64;
                (interval_loss, interval_n) = (0.0, 0);
                let lr = cfg.optim.lr * factor;
                let lr_head = cfg.optim.head_lr * factor;
                let mut values = vec![
                    (tags::TRAIN_LOSS, mean_loss),
                    (tags::TRAIN_LR, lr),
                    (tags::TRAIN_LR_HEAD, lr_head),
                    (tags::TRAIN_GRAD_NORM, grad_norm),
                    (tags::TRAIN_SAMPLES_PER_SEC, stats.samples_per_sec),
                    (tags::TRAIN_EPOCH, epoch as f64),
                    (tags::TIME_STEP_MS, stats.step_ms),
                ];
                for (name, ms) in &stats.phases_ms {
                    values.push((phase_tag(name), *ms));
                }
                logger.scalars(state.step, &values)?;
                if let Some(p) = &progress {
                    let left = total.saturating_sub(state.step) as f64;
                    p.update(&ProgressRecord {
                        event: "train",
                        step: state.step,
                        total_steps: total,
                        epoch,
                        loss: mean_loss,
                        lr,
                        grad_norm,
                        samples_per_sec: stats.samples_per_sec,
                        eta_s: left * stats.step_ms / 1e3,
                        time_ms: stats
                            .phases_ms
                            .iter()
                            .map(|(n, v)| ((*n).to_string(), serde_json::json!(v)))
                            .collect(),
                    });
                }
            }
            if let Some(every) = cfg.logging.histogram_every
                && state.step.is_multiple_of(every.max(1))
                && rank == 0
            {
                for s in &layout.slots {
                    let r = s.offset..s.offset + s.numel;
                    logger.histogram(&tags::weights(&s.path), state.step, &master[r.clone()])?;
                    logger.histogram(&tags::grads(&s.path), state.step, &grads[r])?;
                }
            }

            let last = state.step >= total;
            let eval_due = cfg
                .train
                .eval_every
                .is_some_and(|e| state.step.is_multiple_of(e))
                || last;
            let mut stop_early = false;
            if eval_due && let Some(val) = &val_ds {
                verify_replicas(&mut comm, &master, state.step)?;
                let ev = evaluate::<B>(
                    &model,
                    tokenizer.as_ref(),
                    val,
                    val_cache.as_ref(),
                    &mut comm,
                    cfg,
                    device,
                    &mut heartbeat,
                )?;
                if rank == 0 {
                    exporter.metrics = ev.scalars.clone();
                }
                stop_early = after_eval(
                    cfg,
                    &mut state,
                    &ev,
                    logger.as_mut(),
                    progress.as_ref(),
                    &run_dir,
                    &mut exporter,
                    &mut comm,
                )?;
                if exporter.pending_eval.take().is_some() {
                    exporter.export(&model, tokenizer.as_ref(), Some(val), device, state.step)?;
                }
            }
            let ckpt_due = cfg
                .checkpoint
                .every_steps
                .is_some_and(|e| state.step.is_multiple_of(e));
            let stop_signal = comm.max_u64(u64::from(stop_requested()))? > 0;
            if ckpt_due || last || stop_early || stop_signal {
                save_checkpoint::<B>(
                    writer.as_mut(),
                    cfg,
                    &model,
                    &master,
                    &opt,
                    &state,
                    &exporter.metrics,
                )?;
                logger.sync()?;
            }
            if stop_signal {
                outcome = Some(Outcome::Preempted { steps: state.step });
                break 'epochs;
            }
            if stop_early {
                outcome = Some(Outcome::EarlyStopped { steps: state.step });
                break 'epochs;
            }
            if last {
                break 'epochs;
            }
        }
        state.position = Position {
            epoch: epoch + 1,
            batch: 0,
        };
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
    let outcome = outcome.unwrap_or(Outcome::Completed { steps: state.step });
    if !matches!(outcome, Outcome::Preempted { .. }) && cfg.export.when == ExportWhen::End {
        exporter.export(
            &model,
            tokenizer.as_ref(),
            val_ds.as_ref(),
            device,
            state.step,
        )?;
    }
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
    comm.barrier()?;
    Ok(outcome)
}

/// Test hook: `VIGIL_DEBUG_KILL_AT_STEP=S` makes rank `VIGIL_DEBUG_KILL_RANK`
/// (default rank 1) SIGKILL itself right after optimizer step S, before any
/// checkpoint of that step, in the first generation only: a crash at a step the
/// test chooses.
fn crash_hook(step: u64, rank: usize) {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if var("VIGIL_DEBUG_KILL_AT_STEP") == Some(step)
        && var("VIGIL_DEBUG_KILL_RANK").unwrap_or(1) == rank as u64
        && var("VIGIL_RESTART_COUNT").unwrap_or(0) == 0
    {
        // SAFETY: raising a signal on our own process has no memory-safety effects.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
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

/// Rank 0 decides on early stopping and best-model export after an evaluation;
/// every rank learns the decision (a broadcast), so all stop at the same step.
#[allow(clippy::too_many_arguments)]
fn after_eval(
    cfg: &RunConfig,
    state: &mut LoopState,
    ev: &EvalOutcome,
    logger: &mut dyn MetricLogger,
    progress: Option<&Progress>,
    run_dir: &Path,
    exporter: &mut Exporter,
    comm: &mut Comm,
) -> Result<bool, TrainError> {
    let mut decision = [0.0f32; 2];
    if let Some(report) = &ev.report {
        super::evaluate::record(report, ev, state.step, logger, progress, run_dir, cfg)?;
        let monitored = monitored_metric(cfg).and_then(|m| report.metric(&m));
        if let Some(es) = state.early_stopper.as_mut() {
            let value = report.metric(&cfg.train.early_stopping.as_ref().expect("set").monitor);
            if es.observe(value) == Verdict::Stop {
                decision[0] = 1.0;
            }
        }
        let mode = cfg
            .checkpoint
            .monitor
            .as_ref()
            .map(|m| m.mode)
            .unwrap_or_default();
        let improved = match (monitored, state.best_metric) {
            (Some(v), None) => v.is_finite(),
            (Some(v), Some(b)) => is_better(mode, v, b, 0.0),
            _ => false,
        };
        if improved {
            state.best_metric = monitored;
        }
        let export_now = match cfg.export.when {
            ExportWhen::Every => true,
            ExportWhen::Best => improved,
            ExportWhen::End => false,
        };
        exporter.thresholds = report.thresholds();
        if export_now {
            decision[1] = 1.0;
        }
    }
    comm.broadcast(&mut decision, 0)?;
    if decision[1] > 0.5 {
        exporter.pending_eval = Some(state.step);
    }
    Ok(decision[0] > 0.5)
}

/// The metric that ranks checkpoints and "best" exports.
fn monitored_metric(cfg: &RunConfig) -> Option<String> {
    cfg.checkpoint
        .monitor
        .as_ref()
        .map(|m| m.metric.clone())
        .or_else(|| cfg.export.gate.as_ref().map(|g| g.metric.clone()))
}

/// Compares replica checksums; any difference is an error (never a warning).
fn verify_replicas(comm: &mut Comm, master: &[f32], step: u64) -> Result<(), TrainError> {
    let sums = comm.all_gather_u64(checksum(master))?;
    if sums.iter().any(|&s| s != sums[0]) {
        return Err(TrainError::Diverged {
            step,
            checksums: sums,
        });
    }
    Ok(())
}

fn write_resolved_config(cfg: &RunConfig, run_dir: &Path) -> Result<(), TrainError> {
    let io = |path: PathBuf| {
        move |source| TrainError::Io {
            path: path.clone(),
            source,
        }
    };
    std::fs::create_dir_all(run_dir).map_err(io(run_dir.to_path_buf()))?;
    let path = run_dir.join("config.resolved.yaml");
    let tmp = run_dir.join(".config.resolved.yaml.tmp");
    std::fs::write(&tmp, cfg.to_yaml()).map_err(io(tmp.clone()))?;
    std::fs::rename(&tmp, &path).map_err(io(path.clone()))
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
