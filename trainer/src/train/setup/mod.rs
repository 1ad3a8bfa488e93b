//! Everything before the first step of a worker: datasets, model, the initial
//! broadcast, resume, the frozen towers' feature cache and the standardisation it
//! feeds, the sampler and the schedule — ending in a [`Trainer`] and the
//! [`Setup`] the loop runs on.
//!
//! The order matters and is the same on every rank, because most steps are
//! collective: the broadcast of rank 0's weights, the choice of checkpoint, the
//! replica checksum, the feature cache's all-gather, and (under shm) the
//! gradient buffer's allocation.

mod inputs;
mod model;

use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;

use super::comm::Comm;
use super::early_stop::EarlyStopper;
use super::error::TrainError;
use super::feature_cache::{self, BuildReport, CachePlan};
use super::flat::ParamLayout;
use super::gather::checksum;
use super::resume::{ResumeSource, restore};
use super::signals::Heartbeat;
use super::state::LoopState;
use super::trainer::Trainer;
use super::{AdamWConfig, FlatAdamW, LrSchedule, ParamGroup};
use inputs::{Splits, load_splits, record_config};
use model::{broadcast_weights, build_model};
use vigil_config::{OptimSection, RunConfig};
use vigil_data::{Dataset, LoadReport, Position, ShardSampler};
use vigil_model::{ModerationModel, SplitFeatures, Standardize, TextTokenizer};
use vigil_store::checkpoint::CheckpointDir;
use vigil_store::storage::open_checkpoints;

/// What the training loop runs on.
pub struct Setup<B: AutodiffBackend> {
    /// Model, optimizer, gradient buffer and process group.
    pub trainer: Trainer<B>,
    /// The text tower's tokenizer, if there is one.
    pub tokenizer: Option<TextTokenizer>,
    /// The training split.
    pub train: Arc<Dataset>,
    /// The validation split, if configured.
    pub val: Option<Arc<Dataset>>,
    /// Frozen towers' features of the training split.
    pub train_cache: Option<SplitFeatures>,
    /// Frozen towers' features of the validation split.
    pub val_cache: Option<SplitFeatures>,
    /// What loading the training split skipped (logged at a fresh start).
    pub train_report: LoadReport,
    /// This rank's shard of the training split.
    pub sampler: ShardSampler,
    /// Optimizer steps of the run.
    pub total: u64,
    /// Position, early stopping and best metric (restored on resume).
    pub state: LoopState,
    /// The checkpoint directory (writer on rank 0, reader elsewhere).
    pub checkpoints: CheckpointDir,
    /// The launcher's watchdog heartbeat.
    pub heartbeat: Heartbeat,
}

/// What the worker feeds micro-batches from: the training split, its frozen
/// towers' features and this rank's shard of it.
pub struct TrainSplit {
    /// The training split.
    pub data: Arc<Dataset>,
    /// Frozen towers' features of the training split.
    pub cache: Option<SplitFeatures>,
    /// This rank's shard.
    pub sampler: ShardSampler,
}

/// Builds the [`Setup`] of `cfg` on `device`, joining the group in `comm`.
pub fn setup<B: AutodiffBackend>(
    cfg: &RunConfig,
    device: &B::Device,
    mut comm: Comm,
) -> Result<Setup<B>, TrainError> {
    let mut heartbeat = Heartbeat::from_env();
    let (rank, world) = (comm.rank(), comm.world_size());
    let run_dir = cfg.output_dir();
    record_config(cfg, rank, &run_dir)?;
    let splits = load_splits(cfg, (rank == 0).then_some(run_dir.as_path()))?;
    heartbeat.beat();

    let (model, tokenizer) = build_model::<B>(cfg, device)?;
    let (mut model, layout, mut master) = broadcast_weights(model, &mut comm)?;
    let mut opt = optimizer(cfg, &layout, &model);
    let mut state = fresh_state(cfg, world);
    let checkpoints = checkpoint_dir(cfg, rank, &run_dir)?;
    if let Some(source) = ResumeSource::from_config(cfg, &checkpoints, &mut comm)? {
        model = restore::<B>(source, model, &layout, &mut master, &mut opt, &mut state)?;
    }
    verify_replicas(&mut comm, &master, state.step)?;

    let (train_cache, val_cache) = prepare_caches(
        cfg,
        &model,
        tokenizer.as_ref(),
        &splits,
        &mut comm,
        device,
        &mut heartbeat,
    )?;
    standardize_cached(cfg, &mut model, train_cache.as_ref(), device);

    let (sampler, total) = shard_and_length(cfg, splits.train.len(), rank, world)?;
    let trainer = build_trainer(cfg, model, layout, master, opt, comm, total)?;
    let Splits {
        train,
        val,
        train_report,
    } = splits;
    Ok(Setup {
        trainer,
        tokenizer,
        train,
        val,
        train_cache,
        val_cache,
        train_report,
        sampler,
        total,
        state,
        checkpoints,
        heartbeat,
    })
}

/// AdamW of `cfg.optim` over the flat layout, with the model's parameter groups.
fn optimizer<B: AutodiffBackend>(
    cfg: &RunConfig,
    layout: &ParamLayout,
    model: &ModerationModel<B>,
) -> FlatAdamW {
    let adam = AdamWConfig {
        beta1: cfg.optim.betas[0],
        beta2: cfg.optim.betas[1],
        eps: cfg.optim.eps,
        weight_decay: cfg.optim.weight_decay,
    };
    let groups = param_groups(layout, &vigil_model::trainable_params(model), &cfg.optim);
    FlatAdamW::new(adam, groups, layout.len)
}

/// The loop state of a fresh start (a new run uid; resume overwrites the rest).
fn fresh_state(cfg: &RunConfig, world: usize) -> LoopState {
    LoopState {
        step: 0,
        position: Position::default(),
        optimizer_step: 0,
        early_stopper: cfg.train.early_stopping.as_ref().map(EarlyStopper::new),
        best_metric: None,
        world_size: world,
        global_batch: cfg.train.batch_size * world * cfg.train.grad_accum as usize,
        run_uid: super::state::new_run_uid(),
        owed: Default::default(),
        owed_export: None,
    }
}

/// The checkpoint directory: on the run's bucket when `run.output_dir` is one,
/// else under the run directory; a writer (with retention) on rank 0, a reader
/// elsewhere.
fn checkpoint_dir(
    cfg: &RunConfig,
    rank: usize,
    run_dir: &Path,
) -> Result<CheckpointDir, TrainError> {
    let remote = cfg
        .output_url()
        .as_ref()
        .map(open_checkpoints)
        .transpose()?;
    let (retention, monitored) = cfg.checkpoint.retention();
    let checkpoints = match remote {
        Some(store) if rank == 0 => {
            CheckpointDir::with_store(store)?.with_retention(retention, monitored)
        }
        Some(store) => CheckpointDir::open_read_only(store),
        None if rank == 0 => CheckpointDir::new(run_dir)?.with_retention(retention, monitored),
        None => CheckpointDir::reader(run_dir)?,
    };
    Ok(checkpoints)
}

/// Frozen towers: features computed once per dataset (or loaded), not every step;
/// `(train, val)` tables, none when no tower is cached. Rank 0 logs each table.
fn prepare_caches<B: AutodiffBackend>(
    cfg: &RunConfig,
    model: &ModerationModel<B>,
    tokenizer: Option<&TextTokenizer>,
    splits: &Splits,
    comm: &mut Comm,
    device: &B::Device,
    heartbeat: &mut Heartbeat,
) -> Result<(Option<SplitFeatures>, Option<SplitFeatures>), TrainError> {
    let plan = CachePlan::from_config(cfg);
    let rank = comm.rank();
    let mut reports = Vec::new();
    let mut prepare = |ds: &Arc<Dataset>| -> Result<_, TrainError> {
        let (features, r) =
            feature_cache::prepare::<B>(plan, model, tokenizer, ds, cfg, comm, device, heartbeat)?;
        reports.extend(r);
        Ok(features)
    };
    let train_cache = plan.any().then(|| prepare(&splits.train)).transpose()?;
    let val_cache = match &splits.val {
        Some(v) if plan.any() => Some(prepare(v)?),
        _ => None,
    };
    if rank == 0 {
        log_cache_reports(&reports);
    }
    Ok((train_cache, val_cache))
}

/// A cached tower's features are standardised with their training-set
/// statistics (identical on every rank: the table is).
fn standardize_cached<B: AutodiffBackend>(
    cfg: &RunConfig,
    model: &mut ModerationModel<B>,
    train_cache: Option<&SplitFeatures>,
    device: &B::Device,
) {
    if let Some(c) = train_cache.filter(|_| cfg.model.fusion.standardize) {
        if let Some(t) = &c.text {
            let s = Standardize::fit(&t.values, t.dim, &t.present, device);
            model.fusion.set_text_standardization(s);
        }
        if let Some(t) = &c.image {
            let s = Standardize::fit(&t.values, t.dim, &t.present, device);
            model.fusion.set_image_standardization(s);
        }
    }
}

/// This rank's shard of the `rows` training rows and the run's optimizer steps;
/// rank 0 warns when the schedule does not fit that length.
fn shard_and_length(
    cfg: &RunConfig,
    rows: usize,
    rank: usize,
    world: usize,
) -> Result<(ShardSampler, u64), TrainError> {
    let sampler = ShardSampler::new(
        rows,
        rank,
        world,
        cfg.train.batch_size,
        cfg.run.seed,
        true,
        cfg.data.uneven,
    )?;
    let total = total_steps(cfg, sampler.batches_per_epoch() as u64);
    if rank == 0 {
        warn_schedule(cfg, rows as u64, world, total);
    }
    Ok((sampler, total))
}

/// The [`Trainer`] over `total` steps of `cfg.optim`'s schedule, with f16's loss
/// scaler when `train.precision` is f16.
fn build_trainer<B: AutodiffBackend>(
    cfg: &RunConfig,
    model: ModerationModel<B>,
    layout: ParamLayout,
    master: Vec<f32>,
    opt: FlatAdamW,
    comm: Comm,
    total: u64,
) -> Result<Trainer<B>, TrainError> {
    let schedule = LrSchedule {
        kind: cfg.optim.schedule,
        warmup_steps: cfg.optim.warmup_steps,
        total_steps: total,
    };
    let mut trainer = Trainer::new(
        model,
        layout,
        master,
        opt,
        comm,
        schedule,
        cfg.optim.grad_clip,
    )?;
    if cfg.train.precision == vigil_config::Precision::F16 {
        trainer.scaler = Some(super::LossScaler::default());
    }
    Ok(trainer)
}

/// Parameter groups as ranges of the flat layout, classified by the model's own
/// rule ([`vigil_model::trainable_params`]): encoders at `optim.lr`, fusion and
/// head at `optim.head_lr`; weight decay only where the model says so (not on
/// biases, norms or other 1-D parameters).
pub fn param_groups(
    layout: &ParamLayout,
    params: &[vigil_model::ParamInfo],
    optim: &OptimSection,
) -> Vec<ParamGroup> {
    let info: std::collections::HashMap<_, _> = params.iter().map(|p| (p.id, p)).collect();
    let mut groups: Vec<ParamGroup> = Vec::new();
    for s in &layout.slots {
        let (encoder, decay) = info.get(&s.id).map_or((false, true), |p| {
            (p.group == vigil_model::ParamGroup::Encoder, p.decay)
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
/// smaller of the two ([`RunConfig::total_steps`]).
pub fn total_steps(cfg: &RunConfig, batches_per_epoch: u64) -> u64 {
    cfg.total_steps(batches_per_epoch)
}

/// Compares replica checksums; any difference is an error (never a warning).
pub fn verify_replicas(comm: &mut Comm, master: &[f32], step: u64) -> Result<(), TrainError> {
    let sums = comm.all_gather_u64(checksum(master))?;
    if sums.iter().any(|&s| s != sums[0]) {
        return Err(TrainError::Diverged {
            step,
            checksums: sums,
        });
    }
    Ok(())
}

/// The schedule against the run's real length (the data size may not have been
/// known at validation): a warning, since the run itself is still sound.
fn warn_schedule(cfg: &RunConfig, rows: u64, world: usize, total: u64) {
    let how = if cfg.train.max_steps == Some(total) {
        "train.max_steps".to_string()
    } else {
        format!(
            "{} epochs of {rows} training rows on {world} ranks × batch {}",
            cfg.train.epochs.unwrap_or(1),
            cfg.train.batch_size
        )
    };
    for p in vigil_config::schedule_problems(cfg, total, &how) {
        tracing::warn!(key = %p.key, "{}", p.message);
        eprintln!("warning: {}: {}", p.key, p.message);
    }
}

fn log_cache_reports(reports: &[BuildReport]) {
    for r in reports {
        tracing::info!(
            split = r.split,
            tower = r.tower,
            rows = r.encoded,
            computed = r.computed,
            gathered_from = r.gathered_from,
            ms = r.elapsed.as_millis() as u64,
            "feature cache ready"
        );
        eprintln!("{}", r.line());
    }
}
