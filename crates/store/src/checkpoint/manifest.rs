//! `MANIFEST.json`: the size and sha256 of every file of an entry, plus metadata.
//!
//! The manifest is written last, so its presence means every file it lists was
//! written (and fsynced) first; its hashes let a reader detect truncated files and
//! flipped bytes instead of loading them. The format is documented in the book
//! (`docs/src/reference/run-directory.md`, "`MANIFEST.json`") because serving processes read it too.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::Corruption;

/// Name of the manifest file inside every entry.
pub const MANIFEST_FILE: &str = "MANIFEST.json";

/// The manifest format this code writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// Size and digest of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Length in bytes.
    pub size: u64,
    /// Lowercase hex sha256 of the contents.
    pub sha256: String,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// The digest of everything `reader` yields, read in 1 MiB pieces.
    pub fn of_reader(reader: &mut dyn Read) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(Self {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Whether `found` (the digest of what is on disk for `file`) matches this one.
    pub fn check(&self, file: &str, found: &FileDigest) -> Result<(), Corruption> {
        if found.size != self.size {
            return Err(Corruption::SizeMismatch {
                file: file.to_string(),
                expected: self.size,
                actual: found.size,
            });
        }
        if found.sha256 != self.sha256 {
            return Err(Corruption::HashMismatch {
                file: file.to_string(),
                expected: self.sha256.clone(),
                actual: found.sha256.clone(),
            });
        }
        Ok(())
    }
}

/// The contents of `MANIFEST.json`. Unknown fields are ignored so that a later
/// writer may add information; an incompatible change bumps [`MANIFEST_FORMAT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// When the entry was written, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Every file of the entry except the manifest itself, by name.
    pub files: BTreeMap<String, FileDigest>,
    /// What the writer says about the entry (a checkpoint's step and metrics, an
    /// export's version and scores).
    #[serde(default)]
    pub meta: serde_json::Value,
}

impl Manifest {
    /// A manifest for `files` with `meta`, stamped with the current time.
    pub fn new<'a>(
        files: impl IntoIterator<Item = (&'a str, FileDigest)>,
        meta: serde_json::Value,
    ) -> Self {
        let created_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            format: MANIFEST_FORMAT,
            created_unix_ms,
            files: files
                .into_iter()
                .map(|(name, d)| (name.to_string(), d))
                .collect(),
            meta,
        }
    }

    /// Parses a manifest, rejecting unknown formats.
    pub fn parse(bytes: &[u8]) -> Result<Self, Corruption> {
        let m: Self = serde_json::from_slice(bytes).map_err(|e| Corruption::BadManifest {
            message: e.to_string(),
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(Corruption::BadManifest {
                message: format!(
                    "format {} is not the supported format {MANIFEST_FORMAT}",
                    m.format
                ),
            });
        }
        Ok(m)
    }

    /// The manifest as pretty JSON (what is written to disk).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        out.push(b'\n');
        out
    }

    /// Checks in-memory `files` against the manifest: every listed file present with
    /// the right size and hash. Files not listed are ignored.
    pub fn check_bytes(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<(), Corruption> {
        for (name, want) in &self.files {
            let bytes = files
                .get(name)
                .ok_or_else(|| Corruption::MissingFile { file: name.clone() })?;
            want.check(name, &FileDigest::of(bytes))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_reader_equals_digest_of_bytes() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
        let a = FileDigest::of(&data);
        let b = FileDigest::of_reader(&mut &data[..]).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            FileDigest::of(b"abc").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn check_names_the_problem() {
        let want = FileDigest::of(b"hello");
        assert!(want.check("a", &FileDigest::of(b"hello")).is_ok());
        assert!(matches!(
            want.check("a", &FileDigest::of(b"hell")),
            Err(Corruption::SizeMismatch {
                expected: 5,
                actual: 4,
                ..
            })
        ));
        assert!(matches!(
            want.check("a", &FileDigest::of(b"jello")),
            Err(Corruption::HashMismatch { .. })
        ));
    }

    #[test]
    fn manifest_round_trips_and_rejects_other_formats() {
        let m = Manifest::new(
            [("model.bin", FileDigest::of(b"x"))],
            serde_json::json!({"step": 3}),
        );
        let back = Manifest::parse(&m.to_json()).unwrap();
        assert_eq!(back, m);
        let mut other = m.clone();
        other.format = 99;
        assert!(matches!(
            Manifest::parse(&other.to_json()),
            Err(Corruption::BadManifest { .. })
        ));
        assert!(matches!(
            Manifest::parse(b"{\"format\": 1"),
            Err(Corruption::BadManifest { .. })
        ));
    }

    #[test]
    fn check_bytes_detects_missing_and_changed_files() {
        let m = Manifest::new(
            [("a", FileDigest::of(b"1")), ("b", FileDigest::of(b"2"))],
            serde_json::Value::Null,
        );
        let mut files = BTreeMap::from([("a".to_string(), b"1".to_vec())]);
        assert_eq!(
            m.check_bytes(&files),
            Err(Corruption::MissingFile { file: "b".into() })
        );
        files.insert("b".into(), b"3".to_vec());
        assert!(matches!(
            m.check_bytes(&files),
            Err(Corruption::HashMismatch { .. })
        ));
        files.insert("b".into(), b"2".to_vec());
        assert!(m.check_bytes(&files).is_ok());
    }
}
