//! The storage interface under checkpoints and exports, and verification on top of it.
//!
//! A [`Store`] holds *entries* (a checkpoint `step-<S>`, an export version `7`),
//! each a flat set of named files plus a `MANIFEST.json`, and a few small
//! *pointer* objects (`LATEST`). Publishing is all-or-nothing: on a POSIX
//! filesystem ([`LocalFs`](super::LocalFs)) it writes a dot-prefixed staging
//! directory and renames it into place; on an object store it would upload every
//! file and then the manifest last, readers treating an entry without a manifest
//! as absent. Everything above this trait (resume, retention, model versions) is
//! written against it, so adding S3 or GCS means one more implementation.
//!
//! Verification is a free function over any store: it re-hashes every file the
//! manifest lists, so a truncated file or a flipped byte is caught before loading.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use super::error::{Corruption, StoreError};
use super::manifest::{FileDigest, MANIFEST_FILE, Manifest};

/// Files to publish: `(name, bytes)` pairs, names plain (no paths).
pub type Files = Vec<(String, Vec<u8>)>;

/// What [`Store::publish`] does when the entry already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Fail with [`StoreError::Exists`] (export versions are never rewritten).
    Fail,
    /// Replace it (a checkpoint of the same step saved again after a resume).
    Replace,
}

/// A point in a write, reported to a [`WriteHook`] (tests inject failures there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteEvent<'a> {
    /// One file of `entry` was written and fsynced into the staging area.
    FileWritten {
        /// The entry being published.
        entry: &'a str,
        /// The file just written.
        file: &'a str,
    },
    /// The manifest of `entry` was written; the entry is not yet visible.
    ManifestWritten {
        /// The entry being published.
        entry: &'a str,
    },
    /// `entry` is now visible to readers.
    Published {
        /// The entry just published.
        entry: &'a str,
    },
    /// The new contents of pointer `name` are staged but not yet in place.
    PointerStaged {
        /// The pointer being replaced (`LATEST`).
        name: &'a str,
    },
}

/// Called at every [`WriteEvent`]; an error aborts the write right there, leaving
/// what a crash at that point would leave.
pub type WriteHook = std::sync::Arc<dyn Fn(&WriteEvent<'_>) -> std::io::Result<()> + Send + Sync>;

/// Where checkpoints and exports are kept. See the module docs for the contract.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A human-readable location of `entry` (a path or URL) for messages.
    fn location(&self, entry: &str) -> String;

    /// Publishes `entry` atomically: every file, then `MANIFEST.json` (sizes,
    /// sha256 and `meta`) last, then the whole entry becomes visible at once.
    /// Returns the manifest written.
    fn publish(
        &self,
        entry: &str,
        files: &[(String, Vec<u8>)],
        meta: serde_json::Value,
        if_exists: IfExists,
    ) -> Result<Manifest, StoreError>;

    /// Visible entries (never staging areas), sorted by name.
    fn entries(&self) -> Result<Vec<String>, StoreError>;

    /// Whether `entry` is visible.
    fn has_entry(&self, entry: &str) -> Result<bool, StoreError>;

    /// Opens one file of an entry; `None` if the entry or file does not exist.
    fn open(&self, entry: &str, file: &str) -> Result<Option<Box<dyn Read + Send>>, StoreError>;

    /// Removes `entry` so that readers see it either whole or not at all.
    /// Removing an absent entry succeeds.
    fn delete(&self, entry: &str) -> Result<(), StoreError>;

    /// Replaces the small object `name` atomically (readers see old or new bytes).
    fn put_pointer(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// Reads the small object `name`; `None` if it does not exist.
    fn get_pointer(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes staging leftovers of writers that crashed, older than `older_than`
    /// (zero when this process is the only writer). Returns what was removed.
    fn clean_staging(&self, older_than: Duration) -> Result<Vec<String>, StoreError>;
}

/// Checks that `name` is a plain file or entry name.
pub fn check_name(name: &str, what: &'static str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 200;
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: name.to_string(),
            what,
        })
    }
}

/// Checks the names of files to publish: plain, unique, not the manifest's name.
pub fn check_files(files: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in files {
        check_name(name, "file")?;
        if name == MANIFEST_FILE || !seen.insert(name.as_str()) {
            return Err(StoreError::InvalidName {
                name: name.clone(),
                what: "file (duplicate or reserved)",
            });
        }
    }
    Ok(())
}

fn corrupt(store: &dyn Store, entry: &str, corruption: Corruption) -> StoreError {
    StoreError::Corrupt {
        location: store.location(entry),
        corruption,
    }
}

fn read_all(
    store: &dyn Store,
    entry: &str,
    mut reader: Box<dyn Read + Send>,
    file: &str,
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io("read", format!("{}/{file}", store.location(entry)), e))?;
    Ok(bytes)
}

/// Reads and parses the manifest of `entry` (without checking the files).
pub fn read_manifest(store: &dyn Store, entry: &str) -> Result<Manifest, StoreError> {
    let Some(reader) = store.open(entry, MANIFEST_FILE)? else {
        let why = if store.has_entry(entry)? {
            Corruption::MissingManifest
        } else {
            Corruption::MissingEntry
        };
        return Err(corrupt(store, entry, why));
    };
    let bytes = read_all(store, entry, reader, MANIFEST_FILE)?;
    Manifest::parse(&bytes).map_err(|c| corrupt(store, entry, c))
}

/// Verifies `entry`: its manifest parses and every file it lists has the recorded
/// size and sha256. Streams the files, so memory stays small.
pub fn verify(store: &dyn Store, entry: &str) -> Result<Manifest, StoreError> {
    let manifest = read_manifest(store, entry)?;
    for (name, want) in &manifest.files {
        let Some(mut reader) = store.open(entry, name)? else {
            return Err(corrupt(
                store,
                entry,
                Corruption::MissingFile { file: name.clone() },
            ));
        };
        let found = FileDigest::of_reader(&mut reader)
            .map_err(|e| StoreError::io("read", format!("{}/{name}", store.location(entry)), e))?;
        want.check(name, &found)
            .map_err(|c| corrupt(store, entry, c))?;
    }
    Ok(manifest)
}

/// Reads every file `entry`'s manifest lists into memory and verifies it, reading
/// each byte once. What resume and warm start use.
pub fn read_verified(
    store: &dyn Store,
    entry: &str,
) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), StoreError> {
    let manifest = read_manifest(store, entry)?;
    let mut files = BTreeMap::new();
    for name in manifest.files.keys() {
        let Some(reader) = store.open(entry, name)? else {
            return Err(corrupt(
                store,
                entry,
                Corruption::MissingFile { file: name.clone() },
            ));
        };
        files.insert(name.clone(), read_all(store, entry, reader, name)?);
    }
    manifest
        .check_bytes(&files)
        .map_err(|c| corrupt(store, entry, c))?;
    Ok((manifest, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain() {
        for bad in ["", ".tmp-1", "a/b", "..", "a\\b", "x\0"] {
            assert!(check_name(bad, "entry").is_err(), "{bad:?}");
        }
        for good in ["step-10", "7", "model.safetensors", "LATEST"] {
            assert!(check_name(good, "entry").is_ok(), "{good:?}");
        }
    }

    #[test]
    fn files_must_be_unique_and_not_the_manifest() {
        let f = |n: &str| (n.to_string(), Vec::new());
        assert!(check_files(&[f("a"), f("b")]).is_ok());
        assert!(check_files(&[f("a"), f("a")]).is_err());
        assert!(check_files(&[f(MANIFEST_FILE)]).is_err());
    }
}
