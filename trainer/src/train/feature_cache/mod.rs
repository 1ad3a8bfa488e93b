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
//! dataset. Its **tower key** is a sha256 over the tower's every tensor (names,
//! shapes, values — a warm start or another checkpoint changes it) and the
//! preprocessing settings (`data.image_size`, or the text section with
//! `max_text_len` and the tokenizer file); each row's **row key** a sha256 over its
//! id and its text or image file's bytes; the table key a sha256 over the tower key
//! and the row keys in file order. The file stores all three. A file whose table
//! key differs, or that does not parse, is not used (with a warning).
//!
//! # Gathering
//! A missing or stale table is first looked for row by row in other runs' tables
//! (`train.feature_cache_search`, e.g. the other folds of `vigil crossval`): a
//! table with the same tower key holds, under a row's key, the features this run
//! would compute for it (they depend on neither the world size nor the thread
//! count, see below). When every rank finds every row, rank 0's gathered table is
//! used and written as if computed; when any row is found nowhere, the whole
//! table is computed. Gathering reads each candidate's header first and the file
//! only when the tower key matches.
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
//! its share of the node's cores ([`build_threads`](build::build_threads): cores /
//! `LOCAL_WORLD_SIZE`), whole chunks side by side, each thread with its own copy of
//! the tower; the features do not depend on the thread count. Training keeps one
//! core per rank.
//!
//! # Layout
//! - `plan.rs`: [`CachePlan`], which towers are cached.
//! - `report.rs`: [`BuildReport`], what preparing one table did.
//! - `key.rs`: the tower key, the row keys and the table key.
//! - `gather.rs`: a table's rows from other runs' tables.
//! - `build.rs`: computing a table across the group (chunks, threads,
//!   all-gather).
//! - `files.rs`: a table's file on disk and its copy on a bucket.

mod build;
mod files;
mod gather;
mod key;
mod plan;
mod report;

use std::sync::Arc;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use super::comm::Comm;
use super::error::TrainError;
use super::signals::Heartbeat;
use build::{compute, presence};
use files::{TableKeys, fetch_table, read_table, remote_cache, write_table};
use gather::{Search, candidates, gather};
use key::{row_keys, table_key, tower_key};
use vigil_config::RunConfig;
use vigil_data::Dataset;
use vigil_model::{ModerationModel, SplitFeatures, TextTokenizer};

pub use plan::CachePlan;
pub use report::BuildReport;

/// Rows per forward pass while building a table (also the unit of work per rank).
pub const CHUNK: usize = 32;

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
        let tower_key = tower_key(&inner, tower, tokenizer, cfg)?;
        let rows = row_keys(tower, ds)?;
        let keys = TableKeys {
            table: table_key(&tower_key, &rows),
            tower: tower_key,
            rows,
        };
        let key = &keys.table;
        let path = dir.join(format!(
            "{}-{}.safetensors",
            ds.split().as_str(),
            tower.name()
        ));
        let present = presence(ds, tower);
        let encoded = present.iter().filter(|p| **p).count();
        let name = format!("{}-{}.safetensors", ds.split().as_str(), tower.name());
        let mut loaded = read_table(&path, key, &present);
        let mut fetched = None;
        if !matches!(loaded, Ok(Some(_)))
            && let Some(bucket) = &remote
        {
            // The local copy is missing or stale (a rescheduled job on a fresh
            // machine): the run directory's copy on the bucket, if it has the key.
            match fetch_table(bucket, &name, &path) {
                Ok(true) => {
                    loaded = read_table(&path, key, &present);
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
        let mut gathered_from = None;
        let table = match loaded {
            Some(t) if !missing => t,
            _ => {
                let search = &cfg.train.feature_cache_search;
                // The same list on every rank (the config), so all or none enter.
                let gathered = if search.is_empty() {
                    None
                } else {
                    gather_agreed(search, tower, &keys, &present, comm)?
                };
                let t = match gathered {
                    Some((t, tables)) => {
                        gathered_from = Some(tables);
                        t
                    }
                    None => compute::<B::InnerBackend>(
                        &inner, tower, tokenizer, ds, present, cfg, comm, device, heartbeat,
                    )?,
                };
                if comm.rank() == 0 {
                    let bytes = write_table(&dir, &path, &keys, &t)?;
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
            computed: missing && gathered_from.is_none(),
            gathered_from,
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

/// Gathers the table from `train.feature_cache_search` on every rank and agrees:
/// `Some((table, tables))` when every rank found every row with the same width,
/// rank 0's table then copied to all (ranks on other nodes may read other
/// copies); `None` (compute) otherwise.
fn gather_agreed(
    search: &[String],
    tower: Tower,
    keys: &TableKeys,
    present: &[bool],
    comm: &mut Comm,
) -> Result<Option<(vigil_model::Table, usize)>, TrainError> {
    let found = gather(&candidates(search), &keys.tower, &keys.rows, present);
    // 0: not found; else the width (a found table has at least one row).
    let dims = comm.all_gather_u64(match &found {
        Search::Found { table, .. } => table.dim as u64,
        Search::Missing { .. } => 0,
    })?;
    let agreed = dims[0] != 0 && dims.iter().all(|d| *d == dims[0]);
    match found {
        Search::Found { mut table, tables } if agreed => {
            comm.broadcast(&mut table.values, 0)?;
            Ok(Some((table, tables)))
        }
        Search::Missing { rows, tables } if comm.rank() == 0 => {
            tracing::info!(
                tower = tower.name(),
                rows,
                tables,
                "feature cache: rows not found in train.feature_cache_search; computing"
            );
            if tables > 0 {
                eprintln!(
                    "feature cache: {} tower: {rows} rows in none of the {tables} tables of \
                     train.feature_cache_search with this tower; computing",
                    tower.name()
                );
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}
