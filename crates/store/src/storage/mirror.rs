//! Datasets on a bucket: the data files and the image prefix are copied into a
//! local cache directory, and the dataset loader reads the copies.
//!
//! Why a mirror rather than reads per row: the loader's rules (bad rows, image
//! path escapes, symlinks) then apply unchanged, a missing object is a missing
//! file and so a bad row exactly as before, and a restarted worker (or the second
//! rank on a node) finds the cache warm. Objects are fetched with bounded
//! concurrency ([`CONCURRENCY`]); one already in the cache with the same size and
//! ETag is not fetched again. Keys that would leave the prefix (a `..` segment)
//! are not mirrored, so a row naming one is a bad row. Every file is written under
//! a temporary name and renamed into place, so two ranks mirroring at once, or a
//! crash, never leave a half-written file under the real name.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectMeta;

use super::client::{Bucket, block_on};
use super::error::StorageError;
use super::url::{RemoteUrl, check_key};

/// Objects fetched at once.
pub const CONCURRENCY: usize = 8;

/// What [`localize`] copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MirrorReport {
    /// Objects downloaded.
    pub fetched: usize,
    /// Objects already in the cache.
    pub cached: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// The cache path of `url` below `cache`: `<cache>/<scheme>/<bucket>/<prefix>`.
pub fn cache_path(cache: &Path, url: &RemoteUrl) -> PathBuf {
    let mut p = cache.join(&url.scheme).join(&url.bucket);
    for seg in url.prefix.split('/').filter(|s| !s.is_empty()) {
        p.push(seg);
    }
    p
}

fn etag_file(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".vigil-etag");
    path.with_file_name(format!(".{}", name.to_string_lossy()))
}

fn is_cached(path: &Path, meta: &ObjectMeta) -> bool {
    let Ok(md) = std::fs::metadata(path) else {
        return false;
    };
    let tag = std::fs::read_to_string(etag_file(path)).ok();
    md.len() == meta.size && tag.as_deref() == meta.e_tag.as_deref().or(Some(""))
}

fn write_atomic(path: &Path, bytes: &[u8], meta: &ObjectMeta) -> Result<(), StorageError> {
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| StorageError::Cache {
            op,
            path: p,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(
        ".tmp-{}-{}-{n}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", &tmp))?;
    std::fs::write(etag_file(path), meta.e_tag.as_deref().unwrap_or(""))
        .map_err(io("write", path))?;
    Ok(())
}

/// Copies every object below `url` into `dir` (keys relative to `url`).
pub fn mirror_prefix(url: &RemoteUrl, dir: &Path) -> Result<MirrorReport, StorageError> {
    let bucket = Bucket::open(url)?;
    let objects = bucket.list_all("")?;
    let mut report = MirrorReport::default();
    let mut todo = Vec::new();
    let mut listed = std::collections::HashSet::new();
    for (key, meta) in objects {
        if check_key(&key).is_err() || key.split('/').any(|s| s.starts_with(".tmp-")) {
            continue;
        }
        let mut path = dir.to_path_buf();
        path.extend(key.split('/'));
        listed.insert(path.clone());
        if is_cached(&path, &meta) {
            report.cached += 1;
        } else {
            todo.push((key, meta, path));
        }
    }
    // A copy whose object is gone from the bucket is removed, so a deleted image
    // is a missing file (a bad row) on a warm cache too.
    for path in stale_copies(&mirrored_files(dir), &listed) {
        remove_copy(&path);
    }
    let results: Vec<Result<(Bytes, ObjectMeta, PathBuf), StorageError>> = {
        let bucket = bucket.clone();
        block_on(async move {
            futures::stream::iter(todo)
                .map(|(key, meta, path)| {
                    let bucket = bucket.clone();
                    async move {
                        // The blocking `get` runs on a blocking thread, not a worker.
                        tokio::task::spawn_blocking(move || {
                            let bytes = bucket.get(&key)?.unwrap_or_default();
                            Ok((bytes, meta, path))
                        })
                        .await
                        .expect("a mirror download panicked")
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await
        })
    };
    for r in results {
        let (bytes, meta, path) = r?;
        write_atomic(&path, &bytes, &meta)?;
        report.fetched += 1;
        report.bytes += bytes.len() as u64;
    }
    Ok(report)
}

/// Files below `dir` that a mirror wrote (those with an ETag sidecar).
fn mirrored_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() && etag_file(&path).is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// The copies that no listed object has any more.
fn stale_copies(copies: &[PathBuf], listed: &std::collections::HashSet<PathBuf>) -> Vec<PathBuf> {
    copies
        .iter()
        .filter(|p| !listed.contains(*p))
        .cloned()
        .collect()
}

/// Removes a copy and its sidecar (nothing if absent).
fn remove_copy(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(etag_file(path));
}

/// Copies the one object `url` to `path` (unless cached).
pub fn mirror_file(url: &RemoteUrl, path: &Path) -> Result<MirrorReport, StorageError> {
    let (parent, name) = url.split_last();
    let bucket = Bucket::open(&parent)?;
    let Some(meta) = bucket.head(&name)? else {
        // Left absent (an old copy removed): the loader reports the missing data
        // file, naming it.
        remove_copy(path);
        return Ok(MirrorReport::default());
    };
    if is_cached(path, &meta) {
        return Ok(MirrorReport {
            cached: 1,
            ..MirrorReport::default()
        });
    }
    let bytes = bucket.get(&name)?.unwrap_or_default();
    write_atomic(path, &bytes, &meta)?;
    Ok(MirrorReport {
        fetched: 1,
        bytes: bytes.len() as u64,
        ..MirrorReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RemoteUrl {
        super::super::url::Location::parse(s)
            .unwrap()
            .remote()
            .unwrap()
            .clone()
    }

    #[test]
    fn cache_paths_follow_the_key() {
        let p = cache_path(Path::new("/c"), &url("s3://b/data/train.jsonl"));
        assert_eq!(p, Path::new("/c/s3/b/data/train.jsonl"));
        assert_eq!(
            cache_path(Path::new("/c"), &url("gs://b")),
            Path::new("/c/gs/b")
        );
    }

    #[test]
    fn copies_of_deleted_objects_are_found_and_only_mirrored_files_count() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = |n: usize| ObjectMeta {
            location: object_store::path::Path::from("k"),
            last_modified: Default::default(),
            size: n as u64,
            e_tag: Some("\"t\"".into()),
            version: None,
        };
        let kept = tmp.path().join("img/kept.png");
        let gone = tmp.path().join("img/gone.png");
        write_atomic(&kept, b"k", &meta(1)).unwrap();
        write_atomic(&gone, b"g", &meta(1)).unwrap();
        std::fs::write(tmp.path().join("img/not-ours.txt"), b"x").unwrap();
        let mut copies = mirrored_files(tmp.path());
        copies.sort();
        assert_eq!(copies, [gone.clone(), kept.clone()]);
        let listed = std::collections::HashSet::from([kept.clone()]);
        let stale = stale_copies(&copies, &listed);
        assert_eq!(stale.as_slice(), std::slice::from_ref(&gone));
        remove_copy(&gone);
        assert!(!gone.exists() && !etag_file(&gone).exists());
        assert!(kept.exists() && tmp.path().join("img/not-ours.txt").exists());
    }

    #[test]
    fn a_data_file_s_parent_is_its_prefix() {
        assert_eq!(url("s3://b/d/t.jsonl").parent().to_string(), "s3://b/d");
        assert_eq!(url("s3://b/t.jsonl").parent().to_string(), "s3://b");
    }
}
