//! [`ObjectStoreStore`]: the checkpoint [`Store`] on a bucket prefix, where there
//! is no rename.
//!
//! # Layout (below the prefix)
//! ```text
//! <entry>/<file>…          the files, uploaded first (model.onnx last of them)
//! <entry>/MANIFEST.json     uploaded last: the entry is complete when it verifies
//! .claims/<entry>           the conditional-create claim of an export version
//! <pointer>                 LATEST, config.pbtxt, labels.txt: one PUT each
//! ```
//!
//! Publishing with [`IfExists::Fail`] (export versions) first claims the entry
//! with a conditional create (`If-None-Match: *`) of `.claims/<entry>`: of two
//! writers racing for version N exactly one gets it, the other gets
//! [`StoreError::Exists`] and tries N+1, so neither overwrites the other's
//! files. The claim lives outside `N/`, so a Triton poller sees no `N/` at all
//! until the first file is uploaded; the window that remains is between the
//! first file and `model.onnx` (uploaded after every other file, just before the
//! manifest): Triton finds `N/` without its model file and reports that version
//! unavailable until its next poll.
//!
//! Replacing an entry ([`IfExists::Replace`], a checkpoint of the same step saved
//! again after a resume) deletes its manifest first, so no reader can pair the
//! old manifest with new files. A failed publish deletes what it uploaded (best
//! effort) and its claim; what a crash leaves — files without a manifest, a
//! claim, an unfinished multipart upload — is what [`Store::clean_staging`]
//! removes once older than its bound (multipart uploads a crash left are not
//! listable through `object_store`: a bucket lifecycle rule
//! `AbortIncompleteMultipartUpload` removes those).

use std::io::{Cursor, Read};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::client::Bucket;
use super::error::StorageError;
use crate::checkpoint::store::{check_files, check_name};
use crate::checkpoint::{FileDigest, IfExists, MANIFEST_FILE, Manifest, Store, StoreError};
use crate::checkpoint::{WriteEvent, WriteHook};

/// Prefix of the claim objects of export versions.
pub const CLAIMS: &str = ".claims";

/// Files uploaded after every other file of an entry (just before the manifest),
/// so a model-repository poller finds no model file until the rest is there.
pub const UPLOAD_LAST: &[&str] = &["model.onnx"];

/// The order files of an entry are uploaded in: as given, [`UPLOAD_LAST`] moved
/// to the end.
pub fn upload_order<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let (last, mut first): (Vec<&str>, Vec<&str>) =
        names.iter().copied().partition(|n| UPLOAD_LAST.contains(n));
    first.extend(last);
    first
}

/// Whether leftovers whose newest object was written at `newest_secs` (Unix time)
/// are stale at `now_secs`. Times in the future (clock skew) count as young.
pub fn is_stale(newest_secs: i64, now_secs: i64, older_than: Duration) -> bool {
    now_secs.saturating_sub(newest_secs) >= older_than.as_secs() as i64 && now_secs >= newest_secs
}

/// A [`Store`] on one bucket prefix.
#[derive(Clone)]
pub struct ObjectStoreStore {
    bucket: Bucket,
    hook: Option<WriteHook>,
}

impl std::fmt::Debug for ObjectStoreStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStoreStore({})", self.bucket.url())
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl ObjectStoreStore {
    /// The store at `bucket`'s prefix. Makes no request.
    pub fn new(bucket: Bucket) -> Self {
        Self { bucket, hook: None }
    }

    /// The store holding the one entry `url` names, and that entry's name:
    /// `s3://b/runs/a/checkpoints/step-20` is entry `step-20` of the store at
    /// `s3://b/runs/a/checkpoints`. Makes no request.
    pub fn of_entry(url: &super::RemoteUrl) -> Result<(Self, String), StorageError> {
        let (parent, name) = url.split_last();
        Ok((Self::new(Bucket::open(&parent)?), name))
    }

    /// The same store, calling `hook` at every [`WriteEvent`] (fault injection).
    pub fn with_hook(mut self, hook: WriteHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The bucket prefix.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    fn event(&self, event: WriteEvent<'_>, key: &str) -> Result<(), StoreError> {
        match &self.hook {
            Some(hook) => {
                hook(&event).map_err(|e| StoreError::io("write (hook)", self.bucket.url_of(key), e))
            }
            None => Ok(()),
        }
    }

    fn claim_key(entry: &str) -> String {
        format!("{CLAIMS}/{entry}")
    }

    fn upload(
        &self,
        entry: &str,
        files: &[(String, Vec<u8>)],
        meta: serde_json::Value,
        uploaded: &mut Vec<String>,
    ) -> Result<Manifest, StoreError> {
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let mut digests = Vec::with_capacity(files.len());
        for name in upload_order(&names) {
            let bytes = &files.iter().find(|(n, _)| n == name).expect("listed").1;
            let key = format!("{entry}/{name}");
            uploaded.push(key.clone());
            self.bucket.put(&key, Bytes::copy_from_slice(bytes))?;
            digests.push((name, FileDigest::of(bytes)));
            self.event(WriteEvent::FileWritten { entry, file: name }, &key)?;
        }
        let manifest = Manifest::new(digests, meta);
        let key = format!("{entry}/{MANIFEST_FILE}");
        uploaded.push(key.clone());
        self.bucket.put(&key, Bytes::from(manifest.to_json()))?;
        self.event(WriteEvent::ManifestWritten { entry }, &key)?;
        Ok(manifest)
    }
}

impl Store for ObjectStoreStore {
    fn location(&self, entry: &str) -> String {
        self.bucket.url_of(entry)
    }

    fn publish(
        &self,
        entry: &str,
        files: &[(String, Vec<u8>)],
        meta: serde_json::Value,
        if_exists: IfExists,
    ) -> Result<Manifest, StoreError> {
        check_name(entry, "entry")?;
        check_files(files)?;
        let exists = || StoreError::Exists {
            location: self.location(entry),
        };
        let manifest_key = format!("{entry}/{MANIFEST_FILE}");
        let mut claimed = false;
        match if_exists {
            IfExists::Fail => {
                if self.has_entry(entry)? {
                    return Err(exists());
                }
                let claim = serde_json::json!({
                    "pid": std::process::id(),
                    "at_unix_s": now_secs(),
                });
                if !self
                    .bucket
                    .create(&Self::claim_key(entry), Bytes::from(claim.to_string()))?
                {
                    return Err(exists());
                }
                claimed = true;
            }
            IfExists::Replace => {
                // The old manifest goes first: from here the entry is incomplete.
                self.bucket.delete(&manifest_key)?;
            }
        }
        let mut uploaded = Vec::new();
        match self.upload(entry, files, meta, &mut uploaded) {
            Ok(manifest) => {
                self.event(WriteEvent::Published { entry }, &manifest_key)?;
                Ok(manifest)
            }
            Err(e) => {
                // Best effort: the manifest first, so nothing half-written verifies.
                uploaded.sort_by_key(|k| !k.ends_with(MANIFEST_FILE));
                if self.hook.is_none() {
                    for key in &uploaded {
                        let _ = self.bucket.delete(key);
                    }
                    if claimed {
                        let _ = self.bucket.delete(&Self::claim_key(entry));
                    }
                }
                Err(e)
            }
        }
    }

    fn entries(&self) -> Result<Vec<String>, StoreError> {
        let (dirs, _) = self.bucket.list_level("")?;
        Ok(dirs.into_iter().filter(|d| !d.starts_with('.')).collect())
    }

    fn has_entry(&self, entry: &str) -> Result<bool, StoreError> {
        check_name(entry, "entry")?;
        let (dirs, objects) = self.bucket.list_level(entry)?;
        Ok(!dirs.is_empty() || !objects.is_empty())
    }

    fn open(&self, entry: &str, file: &str) -> Result<Option<Box<dyn Read + Send>>, StoreError> {
        check_name(entry, "entry")?;
        check_name(file, "file")?;
        let bytes = self.bucket.get(&format!("{entry}/{file}"))?;
        Ok(bytes.map(|b| Box::new(Cursor::new(b)) as Box<dyn Read + Send>))
    }

    fn delete(&self, entry: &str) -> Result<(), StoreError> {
        check_name(entry, "entry")?;
        // Manifest first: the entry stops verifying in one request.
        self.bucket.delete(&format!("{entry}/{MANIFEST_FILE}"))?;
        for (key, _) in self.bucket.list_all(entry)? {
            self.bucket.delete(&key)?;
        }
        self.bucket
            .delete(&Self::claim_key(entry))
            .map_err(StoreError::from)
    }

    fn put_pointer(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_name(name, "pointer")?;
        self.event(WriteEvent::PointerStaged { name }, name)?;
        // One PUT: readers see the old object or the new one.
        self.bucket
            .put(name, Bytes::copy_from_slice(bytes))
            .map_err(StoreError::from)
    }

    fn get_pointer(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_name(name, "pointer")?;
        Ok(self.bucket.get(name)?.map(|b| b.to_vec()))
    }

    fn clean_staging(&self, older_than: Duration) -> Result<Vec<String>, StoreError> {
        let now = now_secs();
        let mut removed = Vec::new();
        let (dirs, _) = self.bucket.list_level("")?;
        for entry in dirs.iter().filter(|d| !d.starts_with('.')) {
            let objects = self.bucket.list_all(entry)?;
            let manifest = format!("{entry}/{MANIFEST_FILE}");
            if objects.iter().any(|(k, _)| *k == manifest) {
                continue;
            }
            let newest = objects
                .iter()
                .map(|(_, m)| m.last_modified.timestamp())
                .max()
                .unwrap_or(i64::MIN);
            if !is_stale(newest, now, older_than) {
                continue;
            }
            for (key, _) in &objects {
                self.bucket.delete(key)?;
            }
            self.bucket.delete(&Self::claim_key(entry))?;
            removed.push(entry.clone());
        }
        // Claims of writers that died before uploading anything.
        let claims = self.bucket.list_all(CLAIMS)?;
        for (key, meta) in claims {
            let Some(entry) = key.strip_prefix(&format!("{CLAIMS}/")) else {
                continue;
            };
            if dirs.iter().any(|d| d == entry)
                || !is_stale(meta.last_modified.timestamp(), now, older_than)
            {
                continue;
            }
            self.bucket.delete(&key)?;
            removed.push(key);
        }
        removed.sort();
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_onnx_model_is_uploaded_after_every_other_file() {
        assert_eq!(
            upload_order(&["model.onnx", "a", "model.safetensors", "b"]),
            ["a", "model.safetensors", "b", "model.onnx"]
        );
        assert_eq!(upload_order(&["x"]), ["x"]);
    }

    #[test]
    fn leftovers_are_stale_only_past_the_bound() {
        let h = Duration::from_secs(3600);
        assert!(is_stale(0, 3600, h));
        assert!(!is_stale(1, 3600, h));
        assert!(is_stale(100, 100, Duration::ZERO));
        // Written "in the future" (skew): young, even with a zero bound.
        assert!(!is_stale(200, 100, Duration::ZERO));
        assert!(is_stale(i64::MIN, 0, h));
    }
}
