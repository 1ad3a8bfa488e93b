//! [`ModelRepo`]: `<export.dir>/<model_name>/<version>/`, the serving model
//! repository (the Triton and TF-Serving layout: numbered version directories).
//!
//! A version is published through the same [`Store`] as checkpoints: written under
//! a dot-prefixed staging directory, fsynced, manifest last, renamed to the next
//! integer. A serving process polling the directory therefore sees a version
//! either complete or not at all; it must consider only names that are plain
//! integers (never dot-directories) and may verify `MANIFEST.json` before loading.
//! [`ModelRepo::newest_complete`] does exactly that, and is what `vigil predict`
//! uses.
//!
//! Versions only ever increase: the next one is the highest present plus one, and
//! if another writer takes that number first (two retraining jobs at once) the
//! rename fails and the publish retries with the next number. Pruning keeps the
//! newest `export.keep_versions` and never the newest complete version.

pub mod error;
pub mod files;
pub mod locate;
pub mod remote;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{
    Files, IfExists, LocalFs, Manifest, Store, StoreError, read_verified, verify,
};
use crate::storage::Location;
pub use error::LocateError;
pub use files::EXPORT_FILES;
pub use locate::{ModelVersion, locate};
pub use remote::{cache_dir, locate_remote, newest_listed};

/// Staging directories younger than this may belong to a live writer and are left
/// alone by [`ModelRepo::new`].
pub const STALE_STAGING: Duration = Duration::from_secs(3600);

/// How many taken version numbers a publish skips before giving up.
const MAX_PUBLISH_ATTEMPTS: usize = 16;

/// The version of a directory name: a plain decimal integer without leading zeros.
pub fn parse_version(name: &str) -> Option<u64> {
    let canonical = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_digit())
        && (name == "0" || !name.starts_with('0'));
    if canonical { name.parse().ok() } else { None }
}

/// A published, verified version.
#[derive(Debug, Clone)]
pub struct Version {
    /// Its number.
    pub version: u64,
    /// Its location (a directory path for [`LocalFs`]).
    pub location: String,
    /// Its manifest.
    pub manifest: Manifest,
}

/// The newest complete version and the newer ones that were skipped.
#[derive(Debug)]
pub struct Newest {
    /// The newest version that verifies.
    pub version: Version,
    /// Newer versions that did not verify, with why (log them as warnings).
    pub skipped: Vec<(u64, StoreError)>,
}

/// One model's versions in a model repository.
#[derive(Debug, Clone)]
pub struct ModelRepo {
    store: Arc<dyn Store>,
    required: Vec<String>,
}

impl ModelRepo {
    /// The repository of `model_name` under `export_dir` (created if needed), for
    /// publishing. Removes staging leftovers older than [`STALE_STAGING`].
    pub fn new(export_dir: &Path, model_name: &str) -> Result<Self, StoreError> {
        crate::checkpoint::store::check_name(model_name, "model")?;
        let store = LocalFs::new(export_dir.join(model_name))?;
        store.clean_staging(STALE_STAGING)?;
        Ok(Self::with_store(Arc::new(store)))
    }

    /// The repository of `model_name` under `export_dir`, a directory or a bucket
    /// URL (`export.dir: s3://…`), for publishing; cleans stale staging as
    /// [`Self::new`] (on a bucket: manifest-less versions and claims older than
    /// [`STALE_STAGING`]; `config.pbtxt` and `labels.txt` are never touched).
    pub fn at(export_dir: &Location, model_name: &str) -> Result<Self, StoreError> {
        crate::checkpoint::store::check_name(model_name, "model")?;
        match export_dir {
            Location::Local(p) => Self::new(p, model_name),
            Location::Remote(url) => {
                let url = url.join(model_name)?;
                let store = crate::storage::open_store(&Location::Remote(url))?;
                store.clean_staging(STALE_STAGING)?;
                Ok(Self::with_store(store))
            }
        }
    }

    /// The repository at a bucket URL, for reading (`vigil predict --model
    /// s3://…`). Nothing is created or cleaned; an empty prefix has no versions.
    pub fn open_url(url: &crate::storage::RemoteUrl) -> Result<Self, StoreError> {
        let store = crate::storage::open_store(&Location::Remote(url.clone()))?;
        Ok(Self::with_store(store))
    }

    /// The repository at `dir` (`<export.dir>/<model_name>`), for reading:
    /// `vigil predict --model DIR`. Nothing is created or cleaned.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        if !dir.is_dir() {
            return Err(StoreError::io(
                "open model repository",
                dir,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Ok(Self::with_store(Arc::new(LocalFs::new(dir)?)))
    }

    /// The repository in `store`, requiring [`EXPORT_FILES`] in every version.
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            required: EXPORT_FILES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The same repository requiring `files` in every version instead.
    pub fn with_required_files(mut self, files: &[&str]) -> Self {
        self.required = files.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The location of `version`.
    pub fn location(&self, version: u64) -> String {
        self.store.location(&version.to_string())
    }

    /// Visible version numbers, ascending (verify to know they are complete).
    pub fn versions(&self) -> Result<Vec<u64>, StoreError> {
        let mut v: Vec<u64> = self
            .store
            .entries()?
            .iter()
            .filter_map(|e| parse_version(e))
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// The number the next publish will try: highest present plus one, from 1.
    pub fn next_version(&self) -> Result<u64, StoreError> {
        Ok(self.versions()?.last().map_or(1, |v| v + 1))
    }

    /// Publishes `files` as the next version and returns it. `meta` (a JSON object
    /// or null) goes into the manifest with `"version"` added.
    pub fn publish(&self, files: &Files, meta: serde_json::Value) -> Result<Version, StoreError> {
        for required in &self.required {
            if !files.iter().any(|(name, _)| name == required) {
                return Err(StoreError::MissingRequiredFile {
                    file: required.clone(),
                });
            }
        }
        let mut last = None;
        let mut tried = 0;
        for _ in 0..MAX_PUBLISH_ATTEMPTS {
            // On a bucket a version claimed by another writer is not listed until
            // its first file lands: never retry a number already lost.
            let version = self.next_version()?.max(tried + 1);
            tried = version;
            let mut meta = match &meta {
                serde_json::Value::Object(m) => m.clone(),
                _ => serde_json::Map::new(),
            };
            meta.insert("version".into(), version.into());
            let entry = version.to_string();
            match self
                .store
                .publish(&entry, files, meta.into(), IfExists::Fail)
            {
                Ok(manifest) => {
                    return Ok(Version {
                        version,
                        location: self.store.location(&entry),
                        manifest,
                    });
                }
                Err(e @ StoreError::Exists { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Verifies `version` (manifest and every file's sha256).
    pub fn version(&self, version: u64) -> Result<Version, StoreError> {
        let entry = version.to_string();
        let manifest = verify(self.store.as_ref(), &entry)?;
        Ok(Version {
            version,
            location: self.store.location(&entry),
            manifest,
        })
    }

    /// The newest version whose manifest's `meta` satisfies `is_it` (manifests
    /// only, files unverified): how a resumed run finds the version it published
    /// before a crash, by its `run_uid` and step. Unreadable manifests are passed
    /// over; only a failing listing or object store is an error.
    pub fn find_published(
        &self,
        is_it: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<Option<u64>, StoreError> {
        for v in self.versions()?.into_iter().rev() {
            match crate::checkpoint::store::read_manifest(self.store.as_ref(), &v.to_string()) {
                Ok(m) if is_it(&m.meta) => return Ok(Some(v)),
                Ok(_) => {}
                Err(e @ StoreError::Storage(_)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(None)
    }

    /// Reads `version` into memory, verified: the files a server or warm start loads.
    pub fn load(&self, version: u64) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), StoreError> {
        read_verified(self.store.as_ref(), &version.to_string())
    }

    /// The newest version whose manifest verifies, skipping (and reporting) newer
    /// ones that cannot be used; `None` when no version verifies. Staging
    /// directories are never considered.
    ///
    /// A version is skipped whatever made it unreadable — damaged bytes, a
    /// manifest naming `../x` or a directory, a file the process may not read —
    /// because one bad version must never hide the good ones below it. Only a
    /// failing object store is an error of the whole repository: a bucket that
    /// cannot be reached says nothing about which version is good.
    pub fn newest_complete(&self) -> Result<Option<Newest>, StoreError> {
        let mut skipped = Vec::new();
        for v in self.versions()?.into_iter().rev() {
            match self.version(v) {
                Ok(version) => return Ok(Some(Newest { version, skipped })),
                Err(e @ StoreError::Storage(_)) => return Err(e),
                Err(e) => skipped.push((v, e)),
            }
        }
        Ok(None)
    }

    /// Deletes all but the newest `keep` versions (at least one is kept) and never
    /// the newest complete one. Returns the deleted versions.
    pub fn prune(&self, keep: usize) -> Result<Vec<u64>, StoreError> {
        let versions = self.versions()?;
        let keep = keep.max(1);
        if versions.len() <= keep {
            return Ok(Vec::new());
        }
        let protected = self.newest_complete()?.map(|n| n.version.version);
        let cut = versions.len() - keep;
        let mut deleted = Vec::new();
        for &v in &versions[..cut] {
            if Some(v) != protected {
                self.store.delete(&v.to_string())?;
                deleted.push(v);
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_integers_are_versions() {
        assert_eq!(parse_version("1"), Some(1));
        assert_eq!(parse_version("120"), Some(120));
        for bad in ["", "01", "1a", "-1", ".tmp-3-1-0", "+3", "v3"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }
}
