//! Index versions in a repository of their own, `<dir>/<version>/` with
//! `index.json`, `items.jsonl` and `graph.usearch`, published through the store
//! exactly like model versions: staged, fsynced, manifest (with every file's
//! sha256) last, renamed to the next integer; on a bucket, claimed and uploaded
//! manifest last. Readers take the newest version that verifies.
//!
//! The conventional place is beside the model, `<export.dir>/<model>-recall/`, so
//! `vigil serve` finds it; each version's store manifest records the sha256 of the
//! model version it was embedded with, so a server can pick the index that belongs
//! to the model version it serves without reading every index.

use std::sync::Arc;

use vigil_store::checkpoint::StoreError;
use vigil_store::repo::ModelRepo;
use vigil_store::storage::{Location, open_store};

use crate::bank::{Bank, INDEX_FILES};
use crate::error::RecallError;

/// The store-manifest key holding the embedding model version's manifest sha256.
pub const MODEL_SHA_KEY: &str = "model_manifest_sha256";

/// A repository of index versions.
#[derive(Debug, Clone)]
pub struct IndexRepo {
    repo: ModelRepo,
    location: String,
}

/// A loaded version.
#[derive(Debug)]
pub struct Loaded {
    /// Its number.
    pub version: u64,
    /// Where it is.
    pub location: String,
    /// The bank.
    pub bank: Bank,
}

impl IndexRepo {
    /// The repository at `location`, created if needed (for publishing).
    pub fn create(location: &Location) -> Result<Self, RecallError> {
        let store = open_store(location)?;
        Ok(Self::with_store(store, location))
    }

    /// The repository at `location`, which must exist (for reading and changing).
    pub fn open(location: &Location) -> Result<Self, RecallError> {
        if let Location::Local(p) = location
            && !p.is_dir()
        {
            return Err(RecallError::Usage(format!(
                "no index at {}: build one with `vigil index build`",
                p.display()
            )));
        }
        Self::create(location)
    }

    fn with_store(store: Arc<dyn vigil_store::checkpoint::Store>, location: &Location) -> Self {
        Self {
            repo: ModelRepo::with_store(store).with_required_files(&INDEX_FILES),
            location: location.to_string(),
        }
    }

    /// Where the repository is.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Publishes `bank` as the next version; returns its number and location.
    pub fn publish(&self, bank: &Bank) -> Result<(u64, String), RecallError> {
        let files = bank.to_files()?;
        let m = bank.manifest();
        let mut meta = serde_json::json!({
            "kind": "vigil-index",
            "count": m.count,
            "tombstones": m.tombstones,
            "dims": m.dims,
        });
        if let Some(model) = &m.embedding.model {
            meta[MODEL_SHA_KEY] = model.manifest_sha256.clone().into();
            meta["model_version"] = model.version.into();
        }
        let v = self.repo.publish(&files, meta)?;
        Ok((v.version, v.location))
    }

    /// Version numbers present, ascending.
    pub fn versions(&self) -> Result<Vec<u64>, RecallError> {
        Ok(self.repo.versions()?)
    }

    /// The newest version whose store manifest names the model version with this
    /// manifest sha256 (unverified until loaded).
    pub fn newest_for_model(&self, manifest_sha256: &str) -> Result<Option<u64>, RecallError> {
        Ok(self.repo.find_published(|meta| {
            meta.get(MODEL_SHA_KEY).and_then(|v| v.as_str()) == Some(manifest_sha256)
        })?)
    }

    /// Loads `version`, or the newest that verifies; `ef_search` overrides the
    /// manifest's.
    pub fn load(
        &self,
        version: Option<u64>,
        ef_search: Option<usize>,
        threads: usize,
    ) -> Result<Loaded, RecallError> {
        let version = match version {
            Some(v) if !self.repo.versions()?.contains(&v) => {
                return Err(RecallError::Usage(format!(
                    "no index version {v} at {}",
                    self.location
                )));
            }
            Some(v) => v,
            None => match self.repo.newest_complete()? {
                Some(n) => n.version.version,
                None => {
                    return Err(RecallError::Usage(format!(
                        "no complete index version at {}",
                        self.location
                    )));
                }
            },
        };
        let (_, files) = self.repo.load(version).map_err(|e| match e {
            StoreError::Storage(_) => RecallError::Store(e),
            other => RecallError::Damaged {
                location: self.repo.location(version),
                reason: other.to_string(),
            },
        })?;
        let location = self.repo.location(version);
        let bank = Bank::from_files(&files, &location, ef_search, threads)?;
        Ok(Loaded {
            version,
            location,
            bank,
        })
    }
}
