//! Which version directory `--model DIR [--version V]` means.
//!
//! `DIR` is normally a model repository, `<export.dir>/<model_name>/`, holding
//! integer version directories. Without `--version` the newest *complete* one is
//! used ([`ModelRepo::newest_complete`]: the highest plain-integer name whose
//! manifest verifies; dot-prefixed staging directories never count, and newer
//! damaged versions are skipped and reported). With `--version V` exactly that
//! version is used, verified, or the command fails — silently serving another
//! version than the one asked for would be worse than stopping.
//!
//! `DIR` may also be one version directory (it holds `MANIFEST.json`): it is
//! verified and used as is, its number taken from the manifest's `meta.version`
//! (or its name). That is what a serving container that mounts a single version
//! sees.

use std::path::{Path, PathBuf};

use super::error::LocateError;
use super::{ModelRepo, parse_version};
use crate::checkpoint::{Corruption, MANIFEST_FILE, StoreError, verify};
use crate::storage::Location;

/// A verified version directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    /// The version directory (what `ModerationModel::from_export` reads).
    pub dir: PathBuf,
    /// Its version number.
    pub version: u64,
    /// Newer versions that were skipped because they did not verify, with why.
    pub skipped: Vec<(u64, String)>,
}

/// Resolves `model` (a repository or a version directory, local or on a bucket)
/// and `version` to one verified version directory (on a bucket: downloaded to a
/// local cache first).
pub fn locate(model: &Location, version: Option<u64>) -> Result<ModelVersion, LocateError> {
    match model {
        Location::Remote(url) => super::remote::locate_remote(url, version),
        Location::Local(dir) => locate_local(dir, version),
    }
}

fn locate_local(model: &Path, version: Option<u64>) -> Result<ModelVersion, LocateError> {
    if model.join(MANIFEST_FILE).is_file() {
        return version_dir(model, version);
    }
    let repo_err = |source| LocateError::Repo {
        dir: model.to_path_buf(),
        source: Box::new(source),
    };
    let repo = ModelRepo::open(model).map_err(repo_err)?;
    match version {
        Some(v) => match repo.version(v) {
            Ok(found) => Ok(ModelVersion {
                dir: PathBuf::from(found.location),
                version: v,
                skipped: Vec::new(),
            }),
            Err(StoreError::Corrupt {
                corruption: Corruption::MissingEntry,
                ..
            }) => Err(LocateError::VersionNotFound {
                dir: model.to_path_buf(),
                version: v,
                available: repo.versions().map_err(repo_err)?,
            }),
            Err(source @ StoreError::Corrupt { .. }) => Err(LocateError::VersionUnusable {
                dir: model.to_path_buf(),
                version: v,
                source: Box::new(source),
            }),
            Err(e) => Err(repo_err(e)),
        },
        None => match repo.newest_complete().map_err(repo_err)? {
            Some(newest) => Ok(ModelVersion {
                dir: PathBuf::from(&newest.version.location),
                version: newest.version.version,
                skipped: newest
                    .skipped
                    .into_iter()
                    .map(|(v, e)| (v, e.to_string()))
                    .collect(),
            }),
            None => Err(LocateError::NoVersion {
                dir: model.to_path_buf(),
                skipped: repo
                    .versions()
                    .map_err(repo_err)?
                    .into_iter()
                    .rev()
                    .filter_map(|v| repo.version(v).err().map(|e| e.to_string()))
                    .collect(),
            }),
        },
    }
}

/// `dir` is one version directory: verify it in its parent's store.
fn version_dir(dir: &Path, asked: Option<u64>) -> Result<ModelVersion, LocateError> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str()))
    else {
        return Err(LocateError::BadExportFile {
            path: dir.join(MANIFEST_FILE),
            message: "a version directory needs a parent directory and a UTF-8 name".into(),
        });
    };
    let repo = ModelRepo::open(parent).map_err(|source| LocateError::Repo {
        dir: parent.to_path_buf(),
        source: Box::new(source),
    })?;
    let manifest = verify(repo.store().as_ref(), name);
    let from_name = parse_version(name);
    let manifest = match manifest {
        Ok(m) => m,
        Err(source) => {
            return Err(LocateError::VersionUnusable {
                dir: dir.clone(),
                version: from_name.unwrap_or(0),
                source: Box::new(source),
            });
        }
    };
    let version = manifest
        .meta
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .or(from_name)
        .ok_or_else(|| LocateError::BadExportFile {
            path: dir.join(MANIFEST_FILE),
            message: "names no version (meta.version), and the directory name is not one".into(),
        })?;
    if let Some(asked) = asked
        && asked != version
    {
        return Err(LocateError::VersionConflict {
            dir,
            found: version,
            asked,
        });
    }
    Ok(ModelVersion {
        dir,
        version,
        skipped: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(p: &Path) -> Location {
        Location::Local(p.to_path_buf())
    }
    use crate::checkpoint::{IfExists, LocalFs, Store};

    fn publish(root: &Path, entry: &str, version: u64) {
        let store = LocalFs::new(root).unwrap();
        let files = vec![("thresholds.json".to_string(), b"{}".to_vec())];
        store
            .publish(
                entry,
                &files,
                serde_json::json!({ "version": version }),
                IfExists::Fail,
            )
            .unwrap();
    }

    #[test]
    fn newest_complete_version_ignoring_staging_and_damaged_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        publish(root, "1", 1);
        publish(root, "2", 2);
        // A higher-numbered staging directory and a version without its manifest.
        std::fs::create_dir_all(root.join(".tmp-9-1-0")).unwrap();
        std::fs::write(root.join(".tmp-9-1-0/MANIFEST.json"), b"{}").unwrap();
        std::fs::create_dir_all(root.join("3")).unwrap();
        let found = locate(&local(root), None).unwrap();
        assert_eq!(found.version, 2);
        assert_eq!(found.dir, root.join("2"));
        assert_eq!(found.skipped.len(), 1);
        assert_eq!(found.skipped[0].0, 3);
    }

    /// Regression (#32): a manifest naming `../../etc/passwd` or a directory made
    /// the whole repository unusable instead of skipping that one version.
    #[test]
    fn a_version_unreadable_for_any_reason_is_skipped_like_a_damaged_one() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        publish(root, "1", 1);
        for (v, name) in [(2u64, "../../etc/passwd"), (3, "sub")] {
            publish(root, &v.to_string(), v);
            let path = root.join(v.to_string()).join("MANIFEST.json");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace("thresholds.json", name)).unwrap();
            std::fs::create_dir_all(root.join(v.to_string()).join("sub")).unwrap();
        }
        let found = locate(&local(root), None).unwrap();
        assert_eq!(found.version, 1);
        let skipped: Vec<u64> = found.skipped.iter().map(|(v, _)| *v).collect();
        assert_eq!(skipped, [3, 2], "{:?}", found.skipped);
    }

    #[test]
    fn an_explicit_version_is_used_or_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        publish(root, "1", 1);
        publish(root, "2", 2);
        assert_eq!(locate(&local(root), Some(1)).unwrap().version, 1);
        let err = locate(&local(root), Some(7)).unwrap_err();
        assert!(matches!(
            err,
            LocateError::VersionNotFound { version: 7, .. }
        ));
        assert!(err.is_user_error());
        assert!(err.to_string().contains("versions present: 1, 2"), "{err}");
        std::fs::create_dir_all(root.join("5")).unwrap();
        let err = locate(&local(root), Some(5)).unwrap_err();
        assert!(matches!(
            err,
            LocateError::VersionUnusable { version: 5, .. }
        ));
        assert!(err.is_user_error());
    }

    #[test]
    fn a_version_directory_is_accepted_itself() {
        let tmp = tempfile::tempdir().unwrap();
        publish(tmp.path(), "4", 4);
        let dir = tmp.path().join("4");
        let found = locate(&local(&dir), None).unwrap();
        assert_eq!(found.version, 4);
        assert_eq!(locate(&local(&dir), Some(4)).unwrap().version, 4);
        let err = locate(&local(&dir), Some(3)).unwrap_err();
        assert!(matches!(err, LocateError::VersionConflict { .. }));
    }

    #[test]
    fn nothing_to_serve_is_a_user_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = locate(&local(tmp.path()), None).unwrap_err();
        assert!(matches!(err, LocateError::NoVersion { .. }));
        assert!(err.is_user_error());
        let err = locate(&local(&tmp.path().join("absent")), None).unwrap_err();
        assert!(err.is_user_error(), "{err}");
    }
}
