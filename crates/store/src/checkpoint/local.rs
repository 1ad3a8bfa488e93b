//! [`LocalFs`]: the [`Store`] on a POSIX filesystem (local disk, NFS, Lustre).
//!
//! Publishing an entry: create `.tmp-<entry>-<pid>-<n>/`, write and fsync each
//! file, write and fsync `MANIFEST.json` last, fsync the staging directory, rename
//! it to `<entry>`, fsync the parent. Only the rename makes the entry visible, and
//! rename is atomic, so a reader (or a process restarted after SIGKILL or a power
//! cut) sees the old state or the complete new entry, never a half-written one.
//! Deleting renames the entry to `.del-…` before removing it, for the same reason.
//! Pointers (`LATEST`) are replaced by writing a temporary file, fsyncing it and
//! renaming it over the old one.
//!
//! The staging name carries the process id and a counter so that two writers (two
//! scheduled retraining jobs exporting into one model repository) never share a
//! staging directory; the loser of a race for the same version gets
//! [`StoreError::Exists`] from the rename and tries the next version.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::error::StoreError;
use super::manifest::{FileDigest, MANIFEST_FILE, Manifest};
use super::store::{IfExists, Store, WriteEvent, WriteHook, check_files, check_name};

/// Prefix of staging directories and temporary pointer files.
pub const STAGING_PREFIX: &str = ".tmp-";
/// Prefix of entries being deleted.
pub const DELETING_PREFIX: &str = ".del-";

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A [`Store`] rooted at a directory of the local filesystem.
#[derive(Clone)]
pub struct LocalFs {
    root: PathBuf,
    hook: Option<WriteHook>,
}

impl std::fmt::Debug for LocalFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFs")
            .field("root", &self.root)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl LocalFs {
    /// A store in `root`, creating the directory (and its parents) if needed.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| StoreError::io("create directory", &root, e))?;
        Ok(Self { root, hook: None })
    }

    /// The same store, calling `hook` at every [`WriteEvent`] (fault injection).
    pub fn with_hook(mut self, hook: WriteHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `entry`.
    pub fn entry_path(&self, entry: &str) -> PathBuf {
        self.root.join(entry)
    }

    fn unique(&self, prefix: &str, name: &str) -> PathBuf {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(format!("{prefix}{name}-{}-{n}", std::process::id()))
    }

    fn event(&self, event: WriteEvent<'_>, path: &Path) -> Result<(), StoreError> {
        match &self.hook {
            Some(hook) => hook(&event).map_err(|e| StoreError::io("write (hook)", path, e)),
            None => Ok(()),
        }
    }

    fn write_and_sync(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| StoreError::io("create", path, e))?;
        f.write_all(bytes)
            .map_err(|e| StoreError::io("write", path, e))?;
        f.sync_all().map_err(|e| StoreError::io("fsync", path, e))
    }

    fn write_staging(
        &self,
        staging: &Path,
        entry: &str,
        files: &[(String, Vec<u8>)],
        meta: serde_json::Value,
    ) -> Result<Manifest, StoreError> {
        fs::create_dir(staging).map_err(|e| StoreError::io("create directory", staging, e))?;
        let mut digests = Vec::with_capacity(files.len());
        for (name, bytes) in files {
            let path = staging.join(name);
            Self::write_and_sync(&path, bytes)?;
            digests.push((name.as_str(), FileDigest::of(bytes)));
            self.event(WriteEvent::FileWritten { entry, file: name }, &path)?;
        }
        let manifest = Manifest::new(digests, meta);
        let path = staging.join(MANIFEST_FILE);
        Self::write_and_sync(&path, &manifest.to_json())?;
        self.event(WriteEvent::ManifestWritten { entry }, &path)?;
        sync_dir(staging)?;
        Ok(manifest)
    }
}

/// fsyncs a directory, making renames and new names in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

fn is_exists_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty
    ) || e.raw_os_error() == Some(libc::ENOTEMPTY)
        || e.raw_os_error() == Some(libc::EEXIST)
}

impl Store for LocalFs {
    fn location(&self, entry: &str) -> String {
        self.root.join(entry).display().to_string()
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
        let target = self.entry_path(entry);
        let exists = || StoreError::Exists {
            location: target.display().to_string(),
        };
        if if_exists == IfExists::Fail && target.exists() {
            return Err(exists());
        }
        let staging = self.unique(STAGING_PREFIX, entry);
        // A failure while staging leaves the directory behind, exactly as a crash
        // would; `clean_staging` removes it at the next start.
        let manifest = self.write_staging(&staging, entry, files, meta)?;

        let mut old = None;
        if target.exists() {
            match if_exists {
                IfExists::Fail => {
                    let _ = fs::remove_dir_all(&staging);
                    return Err(exists());
                }
                IfExists::Replace => {
                    let del = self.unique(DELETING_PREFIX, entry);
                    fs::rename(&target, &del).map_err(|e| StoreError::io("rename", &target, e))?;
                    old = Some(del);
                }
            }
        }
        if let Err(e) = fs::rename(&staging, &target) {
            let _ = fs::remove_dir_all(&staging);
            return Err(if is_exists_error(&e) {
                exists()
            } else {
                StoreError::io("rename", &staging, e)
            });
        }
        sync_dir(&self.root)?;
        if let Some(old) = old {
            let _ = fs::remove_dir_all(old);
        }
        self.event(WriteEvent::Published { entry }, &target)?;
        Ok(manifest)
    }

    fn entries(&self) -> Result<Vec<String>, StoreError> {
        let rd = fs::read_dir(&self.root).map_err(|e| StoreError::io("list", &self.root, e))?;
        let mut out = Vec::new();
        for item in rd {
            let item = item.map_err(|e| StoreError::io("list", &self.root, e))?;
            let Some(name) = item.file_name().to_str().map(String::from) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            // `is_dir` follows symlinks: a linked-in version counts.
            if item.path().is_dir() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn has_entry(&self, entry: &str) -> Result<bool, StoreError> {
        check_name(entry, "entry")?;
        Ok(self.entry_path(entry).is_dir())
    }

    fn open(&self, entry: &str, file: &str) -> Result<Option<Box<dyn Read + Send>>, StoreError> {
        check_name(entry, "entry")?;
        check_name(file, "file")?;
        let path = self.entry_path(entry).join(file);
        match File::open(&path) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("open", path, e)),
        }
    }

    fn delete(&self, entry: &str) -> Result<(), StoreError> {
        check_name(entry, "entry")?;
        let target = self.entry_path(entry);
        let del = self.unique(DELETING_PREFIX, entry);
        match fs::rename(&target, &del) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("rename", target, e)),
        }
        sync_dir(&self.root)?;
        fs::remove_dir_all(&del).map_err(|e| StoreError::io("remove", del, e))
    }

    fn put_pointer(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_name(name, "pointer")?;
        let tmp = self.unique(STAGING_PREFIX, name);
        Self::write_and_sync(&tmp, bytes)?;
        // A failure here leaves the temporary file, as a crash would.
        self.event(WriteEvent::PointerStaged { name }, &tmp)?;
        let target = self.root.join(name);
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io("rename", tmp, e));
        }
        sync_dir(&self.root)
    }

    fn get_pointer(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_name(name, "pointer")?;
        let path = self.root.join(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }

    fn clean_staging(&self, older_than: Duration) -> Result<Vec<String>, StoreError> {
        let rd = fs::read_dir(&self.root).map_err(|e| StoreError::io("list", &self.root, e))?;
        let now = SystemTime::now();
        let mut removed = Vec::new();
        for item in rd {
            let item = item.map_err(|e| StoreError::io("list", &self.root, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(STAGING_PREFIX) || name.starts_with(DELETING_PREFIX)) {
                continue;
            }
            let Ok(md) = item.metadata() else { continue };
            // A time in the future (clock skew on a shared filesystem) counts as
            // young: better to leave garbage than to remove a live writer's work.
            let age = md
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(Duration::ZERO);
            if age < older_than {
                continue;
            }
            let path = item.path();
            let res = if md.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match res {
                Ok(()) => removed.push(name),
                // Another cleaner got there first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove", path, e)),
            }
        }
        removed.sort();
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::store::{read_verified, verify};
    use std::sync::Arc;

    fn files(n: usize, tag: u8) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| (format!("f{i}.bin"), vec![tag; 100 + i]))
            .collect()
    }

    #[test]
    fn publish_makes_a_verified_entry_and_leaves_no_staging() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalFs::new(tmp.path().join("ck")).unwrap();
        let m = s
            .publish(
                "step-1",
                &files(3, 1),
                serde_json::json!({"step": 1}),
                IfExists::Fail,
            )
            .unwrap();
        assert_eq!(m.files.len(), 3);
        assert_eq!(verify(&s, "step-1").unwrap(), m);
        let (_, read) = read_verified(&s, "step-1").unwrap();
        assert_eq!(read["f2.bin"], vec![1u8; 102]);
        assert_eq!(s.entries().unwrap(), vec!["step-1"]);
        let names: Vec<_> = fs::read_dir(s.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["step-1"]);
    }

    #[test]
    fn existing_entries_fail_or_are_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalFs::new(tmp.path()).unwrap();
        s.publish("7", &files(1, 1), serde_json::Value::Null, IfExists::Fail)
            .unwrap();
        let err = s
            .publish("7", &files(1, 2), serde_json::Value::Null, IfExists::Fail)
            .unwrap_err();
        assert!(matches!(err, StoreError::Exists { .. }), "{err}");
        s.publish(
            "7",
            &files(1, 3),
            serde_json::Value::Null,
            IfExists::Replace,
        )
        .unwrap();
        let (_, read) = read_verified(&s, "7").unwrap();
        assert_eq!(read["f0.bin"][0], 3);
        assert_eq!(
            s.clean_staging(Duration::ZERO).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_failure_between_files_leaves_only_staging_which_cleanup_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let hook: WriteHook = Arc::new(|ev: &WriteEvent<'_>| match ev {
            WriteEvent::FileWritten { file: "f1.bin", .. } => {
                Err(std::io::Error::other("injected"))
            }
            _ => Ok(()),
        });
        let s = LocalFs::new(tmp.path()).unwrap().with_hook(hook);
        let err = s
            .publish(
                "step-2",
                &files(3, 1),
                serde_json::Value::Null,
                IfExists::Fail,
            )
            .unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert!(s.entries().unwrap().is_empty());
        let cleaned = s.clean_staging(Duration::ZERO).unwrap();
        assert_eq!(cleaned.len(), 1);
        assert!(cleaned[0].starts_with(".tmp-step-2-"), "{cleaned:?}");
        // Young leftovers of a possibly live writer are kept when asked.
        let _ = s.publish(
            "step-3",
            &files(3, 1),
            serde_json::Value::Null,
            IfExists::Fail,
        );
        assert!(
            s.clean_staging(Duration::from_secs(3600))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn pointers_are_replaced_whole_and_deletes_are_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalFs::new(tmp.path()).unwrap();
        assert_eq!(s.get_pointer("LATEST").unwrap(), None);
        s.put_pointer("LATEST", b"step-1\n").unwrap();
        s.put_pointer("LATEST", b"step-2\n").unwrap();
        assert_eq!(s.get_pointer("LATEST").unwrap().unwrap(), b"step-2\n");
        s.publish("a", &files(1, 1), serde_json::Value::Null, IfExists::Fail)
            .unwrap();
        s.delete("a").unwrap();
        s.delete("a").unwrap();
        assert!(s.entries().unwrap().is_empty());
        assert!(s.open("a", "f0.bin").unwrap().is_none());
    }
}
