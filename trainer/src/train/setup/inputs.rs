//! The run's inputs before the first step: `config.resolved.yaml` in the run
//! directory (and on its bucket), and the training and validation splits, read
//! from a local mirror when `data.*` name a bucket.

use std::path::Path;
use std::sync::Arc;

use vigil_config::RunConfig;
use vigil_data::{Dataset, LoadReport, Split};
use vigil_store::storage::open_run_output;

use super::super::error::TrainError;

/// The datasets of a run, as loaded.
pub(super) struct Splits {
    /// The training split.
    pub(super) train: Arc<Dataset>,
    /// The validation split, if configured.
    pub(super) val: Option<Arc<Dataset>>,
    /// What loading the training split skipped.
    pub(super) train_report: LoadReport,
}

/// Opens the run's output on its bucket (every rank, when `run.output_dir` is
/// one); rank 0 writes `config.resolved.yaml` to the run directory and there.
pub(super) fn record_config(
    cfg: &RunConfig,
    rank: usize,
    run_dir: &Path,
) -> Result<(), TrainError> {
    let output = cfg.output_url().as_ref().map(open_run_output).transpose()?;
    if rank == 0 {
        write_resolved_config(cfg, run_dir)?;
        if let Some(store) = &output {
            store.put_pointer("config.resolved.yaml", cfg.to_yaml().as_bytes())?;
        }
    }
    Ok(())
}

/// Loads the training and validation splits; `writer_dir` (rank 0's run
/// directory) receives the rejected rows.
pub(super) fn load_splits(
    cfg: &RunConfig,
    writer_dir: Option<&Path>,
) -> Result<Splits, TrainError> {
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
    Ok(Splits {
        train,
        val,
        train_report,
    })
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
    let (data, report) =
        vigil_data::localize(d, &cache).map_err(vigil_store::checkpoint::StoreError::from)?;
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
