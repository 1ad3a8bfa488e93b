//! `--model s3://…`: a model repository (or one version) on a bucket.
//!
//! The version is chosen exactly as for a directory ([`super::locate`]): the
//! newest whose manifest verifies, skipping newer damaged or still-uploading ones,
//! or exactly `--version V`. Its files are read once, verified in memory against
//! the manifest, and written to a local cache directory
//! (`<system temp>/vigil/models/<hash of the URL>/<V>/`, published there
//! atomically like any version), from which the model loads as from a local
//! export: one download, no second fetch of what was verified. Other versions
//! there are deleted once untouched for [`CACHE_GRACE`], so a long-lived
//! `vigil serve` keeps the version it serves, not every one it loaded.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::LocateError;
use super::locate::ModelVersion;
use super::{ModelRepo, parse_version};
use crate::checkpoint::{Corruption, IfExists, LocalFs, MANIFEST_FILE, Store, StoreError};
use crate::storage::{Bucket, ObjectStoreStore, RemoteUrl};

/// Where versions downloaded from `url` are kept.
pub fn cache_dir(url: &RemoteUrl) -> PathBuf {
    let hash = crate::checkpoint::config_hash(&url.to_string());
    std::env::temp_dir()
        .join("vigil")
        .join("models")
        .join(&hash[..16])
}

fn repo_err(url: &RemoteUrl) -> impl Fn(StoreError) -> LocateError + '_ {
    move |source| LocateError::Repo {
        dir: PathBuf::from(url.to_string()),
        source: Box::new(source),
    }
}

/// Resolves a bucket URL (a repository or one version) to a verified local copy.
pub fn locate_remote(url: &RemoteUrl, version: Option<u64>) -> Result<ModelVersion, LocateError> {
    let storage = |e| repo_err(url)(StoreError::from(e));
    let bucket = Bucket::open(url).map_err(storage)?;
    if bucket.head(MANIFEST_FILE).map_err(storage)?.is_some() {
        return one_version(url, version);
    }
    let repo = ModelRepo::open_url(url).map_err(repo_err(url))?;
    let err = repo_err(url);
    let candidates = match version {
        Some(v) => vec![v],
        None => repo.versions().map_err(&err)?.into_iter().rev().collect(),
    };
    let mut skipped = Vec::new();
    for v in candidates {
        match repo.load(v) {
            Ok((manifest, files)) => {
                let dir = materialize(url, v, &manifest, files).map_err(&err)?;
                return Ok(ModelVersion {
                    dir,
                    version: v,
                    skipped,
                });
            }
            Err(StoreError::Corrupt {
                corruption: Corruption::MissingEntry,
                ..
            }) if version.is_some() => {
                return Err(LocateError::VersionNotFound {
                    dir: PathBuf::from(url.to_string()),
                    version: v,
                    available: repo.versions().map_err(&err)?,
                });
            }
            Err(source @ StoreError::Corrupt { .. }) if version.is_some() => {
                return Err(LocateError::VersionUnusable {
                    dir: PathBuf::from(url.to_string()),
                    version: v,
                    source: Box::new(source),
                });
            }
            Err(e @ StoreError::Corrupt { .. }) => skipped.push((v, e.to_string())),
            Err(e) => return Err(err(e)),
        }
    }
    Err(LocateError::NoVersion {
        dir: PathBuf::from(url.to_string()),
        skipped: skipped.into_iter().map(|(_, e)| e).collect(),
    })
}

/// For `vigil serve`'s poller on a bucket: the newest version of the repository
/// at `url` that has a `MANIFEST.json` and is not in `failed`, or `None` when `url`
/// is one version (nothing newer can appear there). One LIST, then one HEAD per
/// version from the newest down; no file is read, so an unchanged repository costs
/// no download. Which version has *complete* files is known only by verifying
/// them, and that is [`locate_remote`]'s job when the version is loaded: a version
/// whose manifest does not verify fails to load, goes into `failed`, and is not
/// listed again.
pub fn newest_listed(url: &RemoteUrl, failed: &[u64]) -> Result<Option<u64>, LocateError> {
    let storage = |e| repo_err(url)(StoreError::from(e));
    let bucket = Bucket::open(url).map_err(storage)?;
    if bucket.head(MANIFEST_FILE).map_err(storage)?.is_some() {
        return Ok(None);
    }
    let repo = ModelRepo::open_url(url).map_err(repo_err(url))?;
    for v in repo.versions().map_err(repo_err(url))?.into_iter().rev() {
        if failed.contains(&v) {
            continue;
        }
        if bucket
            .head(&format!("{v}/{MANIFEST_FILE}"))
            .map_err(storage)?
            .is_some()
        {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// `url` is one version (it holds `MANIFEST.json`).
fn one_version(url: &RemoteUrl, asked: Option<u64>) -> Result<ModelVersion, LocateError> {
    let err = repo_err(url);
    let (store, name) = ObjectStoreStore::of_entry(url).map_err(|e| err(e.into()))?;
    let (manifest, files) = crate::checkpoint::read_verified(&store, &name).map_err(|source| {
        LocateError::VersionUnusable {
            dir: PathBuf::from(url.to_string()),
            version: parse_version(&name).unwrap_or(0),
            source: Box::new(source),
        }
    })?;
    let version = manifest
        .meta
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .or(parse_version(&name))
        .unwrap_or(0);
    if let Some(asked) = asked
        && asked != version
    {
        return Err(LocateError::VersionConflict {
            dir: PathBuf::from(url.to_string()),
            found: version,
            asked,
        });
    }
    let dir = materialize(url, version, &manifest, files).map_err(err)?;
    Ok(ModelVersion {
        dir,
        version,
        skipped: Vec::new(),
    })
}

/// Writes verified bytes of `version` into the local cache (atomically) and
/// returns its directory.
fn materialize(
    url: &RemoteUrl,
    version: u64,
    manifest: &crate::checkpoint::Manifest,
    files: std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<PathBuf, StoreError> {
    let cache: Arc<LocalFs> = Arc::new(LocalFs::new(cache_dir(url))?);
    let files: Vec<(String, Vec<u8>)> = files.into_iter().collect();
    let entry = version.to_string();
    cache.publish(&entry, &files, manifest.meta.clone(), IfExists::Replace)?;
    prune_cache(&cache, version);
    Ok(cache.entry_path(&entry))
}

/// How long a downloaded version stays in the local cache after it was last
/// written there: another process (a `vigil predict` of that version) may be
/// loading it.
pub const CACHE_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// The cached versions to delete: every one but `current` written more than
/// [`CACHE_GRACE`] ago (`cached`: version and age), so a long-lived `vigil serve`
/// keeps one version on disk, not every version it ever loaded.
pub fn stale_cached(cached: &[(u64, std::time::Duration)], current: u64) -> Vec<u64> {
    cached
        .iter()
        .filter(|(v, age)| *v != current && *age > CACHE_GRACE)
        .map(|(v, _)| *v)
        .collect()
}

/// Deletes stale downloaded versions beside `current` (best effort: a failure
/// leaves a directory behind, never fails the load).
fn prune_cache(cache: &LocalFs, current: u64) {
    let Ok(entries) = cache.entries() else {
        return;
    };
    let now = std::time::SystemTime::now();
    let cached: Vec<(u64, std::time::Duration)> = entries
        .iter()
        .filter_map(|e| {
            let v = parse_version(e)?;
            let modified = std::fs::metadata(cache.entry_path(e))
                .ok()?
                .modified()
                .ok()?;
            Some((v, now.duration_since(modified).unwrap_or_default()))
        })
        .collect();
    for v in stale_cached(&cached, current) {
        if let Err(e) = cache.delete(&v.to_string()) {
            tracing::warn!("downloaded version {v} not removed from the cache: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_other_versions_past_the_grace_period_are_pruned() {
        let old = CACHE_GRACE + Duration::from_secs(1);
        let fresh = Duration::from_secs(5);
        let cached = [(1, old), (2, fresh), (3, old), (4, old)];
        assert_eq!(stale_cached(&cached, 3), [1, 4]);
        assert_eq!(stale_cached(&cached[..1], 1), Vec::<u64>::new());
    }
}
