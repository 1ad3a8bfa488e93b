//! Everything before the first step of a worker: datasets, model, the initial
//! broadcast, resume, the frozen towers' feature cache and the standardisation it
//! feeds, the sampler and the schedule — ending in a [`Trainer`] and the
//! [`Setup`] the loop runs on.
//!
//! The order matters and is the same on every rank, because most steps are
//! collective: the broadcast of rank 0's weights, the choice of checkpoint, the
//! replica checksum, the feature cache's all-gather, and (under shm) the
//! gradient buffer's allocation.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;

use super::comm::Comm;
use super::early_stop::EarlyStopper;
use super::error::TrainError;
use super::feature_cache::{self, BuildReport, CachePlan};
use super::flat::{ParamLayout, read_params, write_params};
use super::gather::checksum;
use super::resume::{ResumeSource, restore};
use super::signals::Heartbeat;
use super::state::LoopState;
use super::trainer::Trainer;
use super::{AdamWConfig, FlatAdamW, LrSchedule, ParamGroup};
use vigil_config::{OptimSection, RunConfig};
use vigil_data::{Dataset, LoadReport, Position, ShardSampler, Split};
use vigil_model::{
    LoadedModel, ModelError, ModerationModel, SplitFeatures, Standardize, TextTokenizer,
};
use vigil_store::checkpoint::CheckpointDir;
use vigil_store::storage::{Location, open_checkpoints, open_run_output};

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
    let output = cfg.output_url().as_ref().map(open_run_output).transpose()?;
    if rank == 0 {
        write_resolved_config(cfg, &run_dir)?;
        if let Some(store) = &output {
            store.put_pointer("config.resolved.yaml", cfg.to_yaml().as_bytes())?;
        }
    }
    let writer_dir = (rank == 0).then_some(run_dir.as_path());
    // Data on a bucket is read from a local mirror (docs/src/guides/object-storage.md).
    let data = localized_data(cfg)?;
    let (train, train_report) = Dataset::load(&data, &cfg.model.labels, Split::Train, writer_dir)?;
    let train = Arc::new(train);
    let val = match data.val {
        Some(_) => Some(Arc::new(
            Dataset::load(&data, &cfg.model.labels, Split::Val, writer_dir)?.0,
        )),
        None => None,
    };
    heartbeat.beat();

    B::seed(device, cfg.run.seed);
    let LoadedModel { model, tokenizer } =
        ModerationModel::<B>::from_config(&cfg.model, &cfg.data, device)?;
    let model = match &cfg.model.init_from {
        Some(from) => warm_start(model, from)?,
        None => model,
    };
    // Mixed precision: loaded weights to the half type too (see `precision.rs`).
    let model = match cfg.train.precision {
        vigil_config::Precision::F32 => model,
        p => super::cast_float_params::<B, _>(model, super::float_dtype(p)),
    };
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
    let groups = param_groups(&layout, &vigil_model::trainable_params(&model), &cfg.optim);
    let mut opt = FlatAdamW::new(adam, groups, layout.len);
    let mut state = LoopState {
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
    };

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
        None if rank == 0 => CheckpointDir::new(&run_dir)?.with_retention(retention, monitored),
        None => CheckpointDir::reader(&run_dir)?,
    };
    if let Some(source) = ResumeSource::from_config(cfg, &checkpoints, &mut comm)? {
        model = restore::<B>(source, model, &layout, &mut master, &mut opt, &mut state)?;
    }
    verify_replicas(&mut comm, &master, state.step)?;

    // Frozen towers: features computed once per dataset (or loaded), not every step.
    let plan = CachePlan::from_config(cfg);
    let mut reports = Vec::new();
    let mut prepare = |ds: &Arc<Dataset>| -> Result<_, TrainError> {
        let (features, r) = feature_cache::prepare::<B>(
            plan,
            &model,
            tokenizer.as_ref(),
            ds,
            cfg,
            &mut comm,
            device,
            &mut heartbeat,
        )?;
        reports.extend(r);
        Ok(features)
    };
    let train_cache = plan.any().then(|| prepare(&train)).transpose()?;
    let val_cache = match &val {
        Some(v) if plan.any() => Some(prepare(v)?),
        _ => None,
    };
    if rank == 0 {
        log_cache_reports(&reports);
    }
    // A cached tower's features are standardised with their training-set
    // statistics (identical on every rank: the table is).
    if let Some(c) = train_cache
        .as_ref()
        .filter(|_| cfg.model.fusion.standardize)
    {
        if let Some(t) = &c.text {
            let s = Standardize::fit(&t.values, t.dim, &t.present, device);
            model.fusion.set_text_standardization(s);
        }
        if let Some(t) = &c.image {
            let s = Standardize::fit(&t.values, t.dim, &t.present, device);
            model.fusion.set_image_standardization(s);
        }
    }

    let sampler = ShardSampler::new(
        train.len(),
        rank,
        world,
        cfg.train.batch_size,
        cfg.run.seed,
        true,
        cfg.data.uneven,
    )?;
    let total = total_steps(cfg, sampler.batches_per_epoch() as u64);
    if rank == 0 {
        warn_schedule(cfg, train.len() as u64, world, total);
    }
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
            ms = r.elapsed.as_millis() as u64,
            "feature cache ready"
        );
        eprintln!("{}", r.line());
    }
}

/// `cfg.data` with bucket URLs replaced by their mirror below
/// `<local_dir>/data-cache`; unchanged (no request) when every path is local.
fn localized_data(cfg: &RunConfig) -> Result<vigil_config::DataSection, TrainError> {
    let d = &cfg.data;
    let any_url = [Some(&d.train), d.val.as_ref(), d.image_root.as_ref()]
        .into_iter()
        .flatten()
        .any(|s| vigil_store::storage::is_url(s));
    if !any_url {
        return Ok(d.clone());
    }
    let cache = cfg.local_dir().join("data-cache");
    let (data, report) = vigil_data::localize(d, &cache)
        .map_err(|e| vigil_store::checkpoint::StoreError::Storage(Box::new(e)))?;
    tracing::info!(
        cache = %cache.display(),
        fetched = report.fetched,
        cached = report.cached,
        bytes = report.bytes,
        "data mirrored from the bucket"
    );
    Ok(data)
}

fn write_resolved_config(cfg: &RunConfig, run_dir: &Path) -> Result<(), TrainError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    let path = run_dir.join("config.resolved.yaml");
    vigil_store::atomic::write_atomic(&path, cfg.to_yaml().as_bytes()).map_err(io(&path))
}

/// `model.init_from`: the weights of a checkpoint (`step-<S>`) or export version
/// directory (local or on a bucket), read through the store and verified against
/// its `MANIFEST.json` before the model sees a byte.
fn warm_start<B: burn::tensor::backend::Backend>(
    model: ModerationModel<B>,
    from: &str,
) -> Result<ModerationModel<B>, ModelError> {
    let refuse = |message: String| ModelError::InitFrom {
        source_dir: from.to_string(),
        message,
    };
    let location = Location::parse(from).map_err(|e| refuse(e.to_string()))?;
    if let Location::Local(dir) = &location
        && !dir.is_dir()
    {
        return Err(refuse(
            "not a directory: name a checkpoint (checkpoints/step-<S>) or an export \
             version (<export.dir>/<model>/<N>)"
                .into(),
        ));
    }
    let (_, files) =
        vigil_store::checkpoint::load_dir(&location).map_err(|e| refuse(e.to_string()))?;
    model.warm_start_verified(files, &location)
}
