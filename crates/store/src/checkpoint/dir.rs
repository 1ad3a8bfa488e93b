//! [`CheckpointDir`]: `<run>/checkpoints/step-<S>/` entries, the `LATEST` pointer,
//! resume with fallback, and retention.
//!
//! A save publishes `step-<S>` through the [`Store`] (all files, manifest last,
//! atomic rename), then replaces `LATEST`, then deletes what the
//! [`RetentionPolicy`] says. A crash at any point leaves `LATEST` naming a
//! complete checkpoint: the old one until the new one is whole.
//!
//! Resume trusts nothing: the checkpoint `LATEST` names is verified against its
//! manifest; if `LATEST` is missing, names nothing, or the checkpoint is damaged,
//! the newest checkpoint that verifies is used and each problem is returned as a
//! warning for the log. If checkpoints exist but none verifies, resume fails
//! rather than silently training from scratch over them.
//!
//! What goes *into* a checkpoint (weights, optimizer moments, RNG states, data
//! position) is the training loop's business: here a checkpoint is named files of
//! bytes plus a [`CheckpointMeta`], so this module needs no burn types.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::StoreError;
use super::local::LocalFs;
use super::manifest::Manifest;
use super::retention::{Action, RetentionPolicy, Stored};
use super::store::{Files, IfExists, Store, read_manifest, read_verified, verify};

/// The pointer naming the newest complete checkpoint.
pub const LATEST: &str = "LATEST";

/// The entry name of the checkpoint of `step`: `step-<S>`.
pub fn step_entry(step: u64) -> String {
    format!("step-{step}")
}

/// The step of an entry named `step-<S>`; `None` for anything else.
pub fn parse_step(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The sha256 (hex) of a resolved run config, stored in every checkpoint so that
/// resume can tell whether the config changed.
pub fn config_hash(resolved_yaml: &str) -> String {
    hex::encode(Sha256::digest(resolved_yaml.as_bytes()))
}

/// What a checkpoint's manifest records besides its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Optimizer step the checkpoint was taken after.
    pub step: u64,
    /// [`config_hash`] of the config that produced it.
    pub config_sha256: String,
    /// Evaluation metrics at this step (`val/macro_auroc` → 0.91); retention ranks
    /// checkpoints by the monitored one. Non-finite values are dropped on save.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Anything else the training loop wants to read without loading the files
    /// (epoch, batch position, world size).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// Result of one save.
#[derive(Debug, Clone)]
pub struct SaveReport {
    /// The step saved.
    pub step: u64,
    /// Bytes written (files, without the manifest).
    pub bytes: u64,
    /// Wall time of the save, retention included.
    pub elapsed: Duration,
    /// Steps deleted by retention.
    pub deleted: Vec<u64>,
}

/// A checkpoint read into memory and verified.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its step.
    pub step: u64,
    /// Its metadata.
    pub meta: CheckpointMeta,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its files by name.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A checkpoint found by resume, with what was wrong on the way to it.
#[derive(Debug, Clone)]
pub struct Found<T> {
    /// The checkpoint (a [`Manifest`] from [`CheckpointDir::latest_valid`], a
    /// [`Loaded`] from [`CheckpointDir::resume`]).
    pub checkpoint: T,
    /// The step.
    pub step: u64,
    /// One message per problem met (missing `LATEST`, a damaged checkpoint) —
    /// empty when `LATEST` named a good checkpoint. Log each as a warning.
    pub warnings: Vec<String>,
}

/// The checkpoints of one run.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    store: Arc<dyn Store>,
    retention: Option<(RetentionPolicy, Option<String>)>,
}

impl CheckpointDir {
    /// The checkpoints in `<run_dir>/checkpoints/`, created if needed. Removes
    /// staging leftovers of crashed writers: call it on rank 0 only, the sole writer.
    pub fn new(run_dir: &Path) -> Result<Self, StoreError> {
        let store = LocalFs::new(run_dir.join("checkpoints"))?;
        Self::with_store(Arc::new(store))
    }

    /// The checkpoints in `store` (cleans its staging leftovers as [`Self::new`]).
    pub fn with_store(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        store.clean_staging(Duration::ZERO)?;
        Ok(Self {
            store,
            retention: None,
        })
    }

    /// The checkpoints in `<run_dir>/checkpoints/` for reading only (ranks other
    /// than 0, tools): no cleanup, so a live writer's staging is left alone.
    pub fn reader(run_dir: &Path) -> Result<Self, StoreError> {
        let store = LocalFs::new(run_dir.join("checkpoints"))?;
        Ok(Self::open_read_only(Arc::new(store)))
    }

    /// Opens the checkpoints in `store` for reading only: no cleanup.
    pub fn open_read_only(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            retention: None,
        }
    }

    /// Applies `policy` after every save, ranking by `metric` in
    /// [`CheckpointMeta::metrics`] (`None`: only `keep_last` matters).
    pub fn with_retention(mut self, policy: RetentionPolicy, metric: Option<String>) -> Self {
        self.retention = Some((policy, metric));
        self
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Steps of the visible checkpoints, ascending (complete or not: verify to know).
    pub fn steps(&self) -> Result<Vec<u64>, StoreError> {
        let mut steps: Vec<u64> = self
            .store
            .entries()?
            .iter()
            .filter_map(|e| parse_step(e))
            .collect();
        steps.sort_unstable();
        Ok(steps)
    }

    /// The step `LATEST` names, if it exists and names a `step-<S>`.
    pub fn latest_pointer(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .store
            .get_pointer(LATEST)?
            .and_then(|b| parse_step(String::from_utf8_lossy(&b).trim())))
    }

    /// Saves the checkpoint of `step`: publishes `step-<S>` (replacing one of the
    /// same step), points `LATEST` at it, then applies retention.
    pub fn save(
        &self,
        step: u64,
        files: &Files,
        mut meta: CheckpointMeta,
    ) -> Result<SaveReport, StoreError> {
        let start = Instant::now();
        meta.step = step;
        meta.metrics.retain(|_, v| v.is_finite());
        let entry = step_entry(step);
        let json = serde_json::to_value(&meta).map_err(|source| StoreError::Json {
            op: "encode",
            what: format!("metadata of {entry}"),
            source,
        })?;
        self.store.publish(&entry, files, json, IfExists::Replace)?;
        self.store
            .put_pointer(LATEST, format!("{entry}\n").as_bytes())?;

        let mut deleted = Vec::new();
        if let Some((policy, metric)) = &self.retention {
            let existing = self.stored(metric.as_deref())?;
            let new = Stored {
                step,
                metric: metric.as_ref().and_then(|m| meta.metrics.get(m).copied()),
            };
            for action in policy.plan(&existing, Some(step), Some(new)) {
                if let Action::Delete(s) = action {
                    self.store.delete(&step_entry(s))?;
                    deleted.push(s);
                }
            }
        }
        Ok(SaveReport {
            step,
            bytes: files.iter().map(|(_, b)| b.len() as u64).sum(),
            elapsed: start.elapsed(),
            deleted,
        })
    }

    /// Every checkpoint with its monitored metric as recorded in its manifest (an
    /// unreadable manifest counts as unevaluated).
    fn stored(&self, metric: Option<&str>) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        for step in self.steps()? {
            let value = metric.and_then(|m| {
                let manifest = read_manifest(self.store.as_ref(), &step_entry(step)).ok()?;
                manifest.meta.get("metrics")?.get(m)?.as_f64()
            });
            out.push(Stored {
                step,
                metric: value,
            });
        }
        Ok(out)
    }

    /// Reads and verifies the checkpoint of `step`.
    pub fn load(&self, step: u64) -> Result<Loaded, StoreError> {
        let entry = step_entry(step);
        let (manifest, files) = read_verified(self.store.as_ref(), &entry)?;
        let meta = decode_meta(&self.store.location(&entry), &manifest)?;
        Ok(Loaded {
            step,
            meta,
            manifest,
            files,
        })
    }

    /// The checkpoint to resume from, verified (files hashed, not kept in memory):
    /// the one `LATEST` names, else the newest that verifies. `None` when there
    /// are no checkpoints at all.
    pub fn latest_valid(&self) -> Result<Option<Found<Manifest>>, StoreError> {
        self.find(|dir, step| verify(dir.store.as_ref(), &step_entry(step)))
    }

    /// Like [`Self::latest_valid`], but reads the checkpoint into memory in the
    /// same pass: what `train.resume: auto` calls.
    pub fn resume(&self) -> Result<Option<Found<Loaded>>, StoreError> {
        self.find(|dir, step| dir.load(step))
    }

    fn find<T>(
        &self,
        mut try_step: impl FnMut(&Self, u64) -> Result<T, StoreError>,
    ) -> Result<Option<Found<T>>, StoreError> {
        let mut warnings = Vec::new();
        let steps = self.steps()?;
        let pointer = self.store.get_pointer(LATEST)?;
        let named = match &pointer {
            None if steps.is_empty() => return Ok(None),
            None => {
                warnings.push(format!(
                    "{} is missing; using the newest complete checkpoint",
                    self.store.location(LATEST)
                ));
                None
            }
            Some(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                let step = parse_step(text.trim());
                if step.is_none() {
                    warnings.push(format!(
                        "{} does not name a checkpoint (it holds {:?}); using the newest complete checkpoint",
                        self.store.location(LATEST),
                        text.trim()
                    ));
                }
                step
            }
        };
        let mut tried = None;
        if let Some(step) = named {
            tried = Some(step);
            match try_step(self, step) {
                Ok(checkpoint) => {
                    return Ok(Some(Found {
                        checkpoint,
                        step,
                        warnings,
                    }));
                }
                Err(e) => warnings.push(format!(
                    "LATEST names step-{step}, but {e}; falling back to the newest complete checkpoint"
                )),
            }
        }
        for &step in steps.iter().rev().filter(|&&s| Some(s) != tried) {
            match try_step(self, step) {
                Ok(checkpoint) => {
                    warnings.push(format!("resuming from step-{step}"));
                    return Ok(Some(Found {
                        checkpoint,
                        step,
                        warnings,
                    }));
                }
                Err(e) => warnings.push(format!("skipping step-{step}: {e}")),
            }
        }
        if steps.is_empty() {
            // Only a stale LATEST is left (checkpoints removed by hand): nothing to lose.
            return Ok(None);
        }
        Err(StoreError::NoValidCheckpoint {
            location: self.store.location(""),
            problems: warnings,
        })
    }
}

fn decode_meta(location: &str, manifest: &Manifest) -> Result<CheckpointMeta, StoreError> {
    serde_json::from_value(manifest.meta.clone()).map_err(|source| StoreError::Json {
        op: "decode",
        what: format!("checkpoint metadata in {location}/MANIFEST.json"),
        source,
    })
}

/// Reads and verifies the checkpoint directory at `location` (`train.resume: <path>`).
pub fn load_checkpoint_dir(location: &crate::storage::Location) -> Result<Loaded, StoreError> {
    let (manifest, files) = load_dir(location)?;
    let meta = decode_meta(&location.to_string(), &manifest)?;
    Ok(Loaded {
        step: meta.step,
        meta,
        manifest,
        files,
    })
}

/// Reads and verifies the entry at `location` (a checkpoint `step-<S>` directory or an
/// export version directory): what `train.resume: <path>` and `model.init_from`
/// use. Returns the manifest and every file it lists.
pub fn load_dir(
    location: &crate::storage::Location,
) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), StoreError> {
    let path = match location {
        // `s3://bucket/runs/a/checkpoints/step-20`: the entry in its parent prefix.
        crate::storage::Location::Remote(url) => {
            let (store, name) = crate::storage::ObjectStoreStore::of_entry(url)?;
            return read_verified(&store, &name);
        }
        crate::storage::Location::Local(path) => path,
    };
    let name =
        path.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| StoreError::InvalidName {
                name: path.display().to_string(),
                what: "checkpoint or export directory",
            })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => ".".into(),
    };
    let store = LocalFs::new(parent)?;
    read_verified(&store, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_round_trip_and_reject_others() {
        assert_eq!(step_entry(120), "step-120");
        assert_eq!(parse_step("step-120"), Some(120));
        for bad in [
            "step-",
            "step-+1",
            "step-1a",
            "step--1",
            "LATEST",
            ".tmp-step-1",
            "7",
        ] {
            assert_eq!(parse_step(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_hash_is_sha256_hex() {
        assert_eq!(config_hash("a").len(), 64);
        assert_ne!(config_hash("a"), config_hash("b"));
    }
}
