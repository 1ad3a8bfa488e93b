//! The frozen-tower feature cache: a frozen tower's pooled features, computed once
//! per dataset and kept on disk, so training runs only what trains.
//!
//! A tower with `train_layers: none` maps each row to the same vector at every
//! step: EfficientNet-B0 keeps BatchNorm statistics frozen and has no dropout, and
//! a frozen text tower is run as feature extraction does (evaluation mode, no
//! dropout). Recomputing it every step is most of a quickstart step on CPU; reading
//! a `[rows, dim]` table costs nothing.
//!
//! # Key
//! A table is valid for one tower, one set of weights, one preprocessing and one
//! dataset: its key is a sha256 over the tower's every tensor (names, shapes,
//! values — a warm start or another checkpoint changes it), the preprocessing
//! settings (`data.image_size`, or the text section with `max_text_len` and the
//! tokenizer file), and per row the id, the text or the image file's bytes. A file
//! whose key differs, or that does not parse, is recomputed (with a warning).
//!
//! # Build
//! Rows that have the modality are cut into chunks of [`CHUNK`] in file order, and
//! chunk `c` goes to rank `c mod world`: the work is shared, and each row's
//! features do not depend on the world size. The ranks all-gather their chunks;
//! every rank then holds the whole table, and rank 0 writes
//! `<output_dir>/feature-cache/<split>-<tower>.safetensors` (temporary file,
//! fsync, rename). A restarted worker loads it when every rank can; otherwise all
//! ranks compute it again (they agree first, so the collectives match).
//!
//! The build is inference before training starts, so a rank runs its chunks on
//! its share of the node's cores ([`build_threads`]: cores / `LOCAL_WORLD_SIZE`),
//! whole chunks side by side, each thread with its own copy of the tower; the
//! features do not depend on the thread count. Training keeps one core per rank.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_store::ModuleSnapshot;
use sha2::{Digest, Sha256};

use super::comm::Comm;
use super::error::TrainError;
use super::progress::Ticker;
use super::signals::Heartbeat;
use vigil_config::{RunConfig, TrainLayers};
use vigil_data::{Batch, DataError, Dataset, Position};
use vigil_model::{
    ImageData, ModelInput, ModerationModel, SplitFeatures, Table, TextData, TextTokenizer,
};
use vigil_store::atomic::write_atomic;

/// Rows per forward pass while building a table (also the unit of work per rank).
pub const CHUNK: usize = 32;

/// Version of the key's recipe; bump when preprocessing code changes meaning.
const KEY_VERSION: &str = "vigil-feature-cache v1";

/// Which towers are cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePlan {
    /// The text tower is frozen and cached.
    pub text: bool,
    /// The image tower is frozen and cached.
    pub image: bool,
}

impl CachePlan {
    /// Towers with `train_layers: none`, when `train.feature_cache` is on.
    pub fn from_config(cfg: &RunConfig) -> Self {
        if !cfg.train.feature_cache {
            return Self::default();
        }
        Self {
            text: cfg
                .model
                .text
                .as_ref()
                .is_some_and(|t| t.train_layers == TrainLayers::None),
            image: cfg
                .model
                .image
                .as_ref()
                .is_some_and(|i| i.train_layers == TrainLayers::None),
        }
    }

    /// Whether any tower is cached.
    pub fn any(&self) -> bool {
        self.text || self.image
    }
}

/// What preparing one table did, for the log and the closing figures.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// `train` or `val`.
    pub split: &'static str,
    /// `text` or `image`.
    pub tower: &'static str,
    /// Rows of the dataset.
    pub rows: usize,
    /// Rows that have the modality (the ones run through the tower).
    pub encoded: usize,
    /// Computed now (false: loaded from disk).
    pub computed: bool,
    /// Wall time of the build or load, hashing included.
    pub elapsed: Duration,
    /// The file.
    pub path: PathBuf,
    /// With `run.output_dir` on a bucket: the table's object there, which a
    /// load came from (when the local copy was missing) or a build was uploaded to.
    pub remote: Option<String>,
}

impl BuildReport {
    /// One line for the console.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let remote = self
            .remote
            .as_ref()
            .map(|r| {
                let how = if self.computed {
                    "uploaded to"
                } else {
                    "downloaded from"
                };
                format!(" ({how} {r})")
            })
            .unwrap_or_default();
        if self.computed {
            format!(
                "feature cache: {} tower on {} computed for {} rows in {:.1} s ({:.1} rows/s) -> {}{remote}",
                self.tower,
                self.split,
                self.encoded,
                secs,
                self.encoded as f64 / secs.max(1e-9),
                self.path.display()
            )
        } else {
            format!(
                "feature cache: {} tower on {} loaded ({} rows) in {:.2} s from {}{remote}",
                self.tower,
                self.split,
                self.rows,
                secs,
                self.path.display()
            )
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tower {
    Text,
    Image,
}

impl Tower {
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
        }
    }
}

/// Prepares the cached tables of `ds` for the towers `plan` names: loads them
/// from the run directory when every rank can, else computes them across the
/// group (every rank must call this with the same arguments).
#[allow(clippy::too_many_arguments)]
pub fn prepare<B: AutodiffBackend>(
    plan: CachePlan,
    model: &ModerationModel<B>,
    tokenizer: Option<&TextTokenizer>,
    ds: &Arc<Dataset>,
    cfg: &RunConfig,
    comm: &mut Comm,
    device: &B::Device,
    heartbeat: &mut Heartbeat,
) -> Result<(SplitFeatures, Vec<BuildReport>), TrainError> {
    let mut out = SplitFeatures::default();
    let mut reports = Vec::new();
    if !plan.any() {
        return Ok((out, reports));
    }
    let inner = model.valid();
    // Local under `run.local_dir` when `run.output_dir` is a bucket, with a copy
    // in `<output_dir>/feature-cache/` there.
    let dir = cfg.output_dir().join("feature-cache");
    let remote = remote_cache(cfg);
    for tower in [Tower::Text, Tower::Image] {
        let wanted = match tower {
            Tower::Text => plan.text && inner.text.is_some(),
            Tower::Image => plan.image && inner.image.is_some(),
        };
        if !wanted {
            continue;
        }
        let started = Instant::now();
        let key = table_key(&inner, tower, tokenizer, ds, cfg)?;
        let path = dir.join(format!(
            "{}-{}.safetensors",
            ds.split().as_str(),
            tower.name()
        ));
        let present = presence(ds, tower);
        let encoded = present.iter().filter(|p| **p).count();
        let name = format!("{}-{}.safetensors", ds.split().as_str(), tower.name());
        let mut loaded = read_table(&path, &key, &present);
        let mut fetched = None;
        if !matches!(loaded, Ok(Some(_)))
            && let Some(bucket) = &remote
        {
            // The local copy is missing or stale (a rescheduled job on a fresh
            // machine): the run directory's copy on the bucket, if it has the key.
            match fetch_table(bucket, &name, &path) {
                Ok(true) => {
                    loaded = read_table(&path, &key, &present);
                    fetched = Some(bucket.url_of(&name));
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("feature cache not downloaded: {e}; recomputing"),
            }
        }
        let loaded = match loaded {
            Ok(t) => t,
            Err(why) => {
                if path.exists() && comm.rank() == 0 {
                    tracing::warn!(file = %path.display(), "feature cache not used: {why}; recomputing");
                }
                None
            }
        };
        let missing = comm.max_u64(u64::from(loaded.is_none()))? > 0;
        let mut uploaded = None;
        let table = match loaded {
            Some(t) if !missing => t,
            _ => {
                let t = compute::<B::InnerBackend>(
                    &inner, tower, tokenizer, ds, present, cfg, comm, device, heartbeat,
                )?;
                if comm.rank() == 0 {
                    let bytes = write_table(&dir, &path, &key, &t)?;
                    if let Some(bucket) = &remote {
                        // A cache: a failed upload costs a later run a rebuild, not this one.
                        match bucket.put(&name, bytes) {
                            Ok(()) => uploaded = Some(bucket.url_of(&name)),
                            Err(e) => tracing::warn!("feature cache not uploaded: {e}"),
                        }
                    }
                }
                t
            }
        };
        reports.push(BuildReport {
            split: ds.split().as_str(),
            tower: tower.name(),
            rows: ds.len(),
            encoded,
            computed: missing,
            elapsed: started.elapsed(),
            path,
            remote: if missing { uploaded } else { fetched },
        });
        match tower {
            Tower::Text => out.text = Some(table),
            Tower::Image => out.image = Some(table),
        }
    }
    Ok((out, reports))
}

/// Whether each row of `ds` has the tower's modality.
fn presence(ds: &Dataset, tower: Tower) -> Vec<bool> {
    ds.examples()
        .iter()
        .map(|e| match tower {
            Tower::Text => e.text.is_some(),
            Tower::Image => e.image.is_some(),
        })
        .collect()
}

/// Threads one rank builds its chunks on: its share of `cores` among the node's
/// `local_world` ranks, at least one.
pub fn build_threads(cores: usize, local_world: usize) -> usize {
    (cores / local_world.max(1)).max(1)
}

/// Chunks of the rows that have the modality, in file order.
pub fn chunks(present: &[bool]) -> Vec<Vec<usize>> {
    let rows: Vec<usize> = (0..present.len()).filter(|&r| present[r]).collect();
    rows.chunks(CHUNK).map(<[usize]>::to_vec).collect()
}

#[allow(clippy::too_many_arguments)]
fn compute<B: Backend>(
    model: &ModerationModel<B>,
    tower: Tower,
    tokenizer: Option<&TextTokenizer>,
    ds: &Dataset,
    present: Vec<bool>,
    cfg: &RunConfig,
    comm: &mut Comm,
    device: &B::Device,
    heartbeat: &mut Heartbeat,
) -> Result<Table, TrainError> {
    let (rank, world) = (comm.rank(), comm.world_size());
    let all = chunks(&present);
    let mut mine = Vec::new();
    let mut dim = 0usize;
    let mine_rows = all.iter().skip(rank).step_by(world).map(Vec::len).sum();
    let (split, name) = (ds.split().as_str(), tower.name());
    let mut ticker = Ticker::feature_cache(cfg.logging.format, rank, split, name, mine_rows);
    let mut done = 0;
    let threads = if vigil_model::kernels::on_host::<B>() {
        let local_world = std::env::var("LOCAL_WORLD_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        build_threads(vigil_model::parallel::default_threads(), local_world)
    } else {
        1
    };
    vigil_model::parallel::ordered_map(
        vec![model.clone(); threads],
        all.iter().skip(rank).step_by(world).map(Ok),
        |model, chunk: &Vec<usize>| {
            let (feats, d) = encode_chunk(model, tower, tokenizer, ds, chunk, cfg, device)?;
            Ok::<_, TrainError>((chunk.len(), feats, d))
        },
        |(len, feats, d)| {
            dim = d;
            mine.extend(feats);
            heartbeat.beat();
            done += len;
            ticker.update(done);
            Ok(())
        },
    )?;
    // A rank without a chunk learns the width from the others.
    let dim = comm.max_u64(dim as u64)? as usize;
    let gathered = comm.all_gather_f32(&mine)?;
    let mut values = vec![0.0f32; ds.len() * dim];
    for (r, got) in gathered.iter().enumerate() {
        let mut at = 0usize;
        for chunk in all.iter().skip(r).step_by(world) {
            let len = chunk.len() * dim;
            let part = got.get(at..at + len).ok_or(TrainError::Protocol {
                what: "a rank's cached features have a bad length",
            })?;
            for (k, &row) in chunk.iter().enumerate() {
                values[row * dim..(row + 1) * dim].copy_from_slice(&part[k * dim..(k + 1) * dim]);
            }
            at += len;
        }
        if at != got.len() {
            return Err(TrainError::Protocol {
                what: "a rank's cached features have a bad length",
            });
        }
    }
    Ok(Table {
        dim,
        values,
        present,
    })
}

/// Runs the tower on the rows `chunk`: `(values, dim)`.
fn encode_chunk<B: Backend>(
    model: &ModerationModel<B>,
    tower: Tower,
    tokenizer: Option<&TextTokenizer>,
    ds: &Dataset,
    chunk: &[usize],
    cfg: &RunConfig,
    device: &B::Device,
) -> Result<(Vec<f32>, usize), TrainError> {
    let image_size = (tower == Tower::Image).then_some(cfg.data.image_size);
    let batch =
        Batch::build(ds, chunk, Position::default(), image_size).map_err(|(line, reason)| {
            DataError::ImageDecode {
                file: ds.file().to_path_buf(),
                line,
                reason,
            }
        })?;
    // The batch goes through the same ModelInput conversion training uses.
    let (input, _) = ModelInput::<B>::from_batch(
        tokenizer.filter(|_| tower == Tower::Text),
        &batch,
        None,
        device,
    )?;
    let text = input.text.map(|t| t.data);
    let image = input.image.map(|i| i.data);
    let feats: Tensor<B, 2> = match (&model.text, text, &model.image, image) {
        (Some(tower), Some(TextData::Tokens { ids, mask }), _, _) => tower.forward(ids, mask),
        (_, _, Some(tower), Some(ImageData::Pixels(pixels))) => tower.forward(pixels),
        _ => {
            return Err(TrainError::Protocol {
                what: "a cached tower the model or its inputs do not have",
            });
        }
    };
    let dim = feats.dims()[1];
    let values = feats
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|_| TrainError::Protocol {
            what: "tower features are not f32",
        })?;
    Ok((values, dim))
}

/// The sha256 key of one tower's table over `ds` (see the module docs).
fn table_key<B: Backend>(
    model: &ModerationModel<B>,
    tower: Tower,
    tokenizer: Option<&TextTokenizer>,
    ds: &Dataset,
    cfg: &RunConfig,
) -> Result<String, TrainError> {
    let mut h = Sha256::new();
    let field = |h: &mut Sha256, bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(&mut h, KEY_VERSION.as_bytes());
    field(&mut h, tower.name().as_bytes());
    let snapshots = match tower {
        Tower::Text => model.text.as_ref().map(|t| t.collect(None, None, false)),
        Tower::Image => model.image.as_ref().map(|t| t.collect(None, None, false)),
    }
    .unwrap_or_default();
    for s in snapshots {
        field(&mut h, s.full_path().as_bytes());
        let data = s.to_data().map_err(|_| TrainError::Protocol {
            what: "a tower tensor could not be read for the feature-cache key",
        })?;
        field(&mut h, format!("{:?}", data.shape).as_bytes());
        field(&mut h, &data.bytes);
    }
    match tower {
        Tower::Text => {
            let settings = serde_json::json!({
                "text": cfg.model.text,
                "max_text_len": cfg.data.max_text_len,
                "max_text_chars": cfg.data.max_text_chars,
            });
            field(&mut h, settings.to_string().as_bytes());
            if let Some(tok) = tokenizer {
                let path = tok.path();
                let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                field(&mut h, &bytes);
            }
        }
        Tower::Image => field(&mut h, &cfg.data.image_size.to_le_bytes()),
    }
    for e in ds.examples() {
        field(&mut h, e.id.as_bytes());
        match tower {
            Tower::Text => field(&mut h, e.text.as_deref().unwrap_or("\0none").as_bytes()),
            Tower::Image => match &e.image {
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|_| DataError::ImageDecode {
                        file: ds.file().to_path_buf(),
                        line: e.line,
                        reason: vigil_data::BadRow::new(
                            vigil_data::BadRowKind::ImageNotFound,
                            format!(
                                "image '{}' cannot be read",
                                e.image_rel.as_deref().unwrap_or_default()
                            ),
                        ),
                    })?;
                    field(&mut h, &bytes);
                }
                None => field(&mut h, b"\0none"),
            },
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads a table written by [`write_table`] for a dataset whose rows have the
/// modality where `present`: `Ok(None)` when absent, `Err(why)` when present but
/// unusable (another key, bad bytes, another row count).
pub fn read_table(path: &Path, key: &str, present: &[bool]) -> Result<Option<Table>, String> {
    let rows = present.len();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| e.to_string())?;
    let stored = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("key").cloned())
        .unwrap_or_default();
    if stored != key {
        return Err("it was computed for other weights, preprocessing or data".to_string());
    }
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
    let t = st.tensor("features").map_err(|e| e.to_string())?;
    let shape = t.shape();
    if t.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != rows {
        return Err(format!(
            "its features are {:?} {:?}, expected F32 [{rows}, _]",
            t.dtype(),
            shape
        ));
    }
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Some(Table {
        dim: shape[1],
        values,
        present: present.to_vec(),
    }))
}

/// Writes `table` to `path` atomically ([`write_atomic`]: temporary file, fsync,
/// rename).
pub fn write_table(
    dir: &Path,
    path: &Path,
    key: &str,
    table: &Table,
) -> Result<Vec<u8>, TrainError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes: Vec<u8> = table.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![table.rows(), table.dim],
        &bytes,
    )
    .map_err(|_| TrainError::Protocol {
        what: "feature table shape does not match its values",
    })?;
    let meta = std::collections::HashMap::from([("key".to_string(), key.to_string())]);
    let out = safetensors::serialize([("features", view)], Some(meta)).map_err(|_| {
        TrainError::Protocol {
            what: "feature table could not be serialised",
        }
    })?;
    write_atomic(path, &out).map_err(io(path))?;
    Ok(out)
}

/// `<run.output_dir>/feature-cache/` when the run directory is a bucket (a
/// warning and no bucket copy when it cannot be opened: the cache is optional).
fn remote_cache(cfg: &RunConfig) -> Option<vigil_store::storage::Bucket> {
    let url = cfg.output_url()?;
    match url
        .join("feature-cache")
        .and_then(|u| vigil_store::storage::Bucket::open(&u))
    {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!("feature cache kept local only: {e}");
            None
        }
    }
}

/// Downloads the bucket's `name` to `path` (atomically; each rank of a node may
/// do it at once): `Ok(false)` when the bucket has none.
fn fetch_table(
    bucket: &vigil_store::storage::Bucket,
    name: &str,
    path: &Path,
) -> Result<bool, String> {
    let Some(bytes) = bucket.get(name).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_atomic(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_threads_share_the_cores_among_local_ranks() {
        assert_eq!(build_threads(2, 1), 2);
        assert_eq!(build_threads(2, 2), 1);
        assert_eq!(build_threads(16, 4), 4);
        assert_eq!(build_threads(2, 3), 1);
        assert_eq!(build_threads(8, 0), 8);
    }

    #[test]
    fn chunks_skip_absent_rows_and_keep_file_order() {
        let mut present = vec![true; 70];
        present[3] = false;
        let c = chunks(&present);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].len(), CHUNK);
        assert!(!c[0].contains(&3));
        assert_eq!(c[0][3], 4);
        assert_eq!(c[2], vec![65, 66, 67, 68, 69]);
        assert!(chunks(&[false, false]).is_empty());
    }

    #[test]
    fn table_round_trips_and_a_wrong_key_or_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train-image.safetensors");
        let present = [true, true];
        assert_eq!(read_table(&path, "k", &present).unwrap(), None);
        let t = Table {
            dim: 3,
            values: vec![1.0, -2.0, 3.5, 0.0, 0.0, 0.25],
            present: present.to_vec(),
        };
        write_table(dir.path(), &path, "k", &t).unwrap();
        assert_eq!(read_table(&path, "k", &present).unwrap(), Some(t.clone()));
        assert!(
            read_table(&path, "other", &present)
                .unwrap_err()
                .contains("other weights")
        );
        assert!(read_table(&path, "k", &[true; 3]).is_err());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&path, bytes).unwrap();
        assert!(read_table(&path, "k", &present).is_err());
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
