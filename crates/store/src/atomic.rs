//! Files that appear whole or not at all: the one temp-file-and-rename helper.
//!
//! Every file another process may read while we write it (a resolved config, an
//! evaluation report, a feature table, a rejects list, `vigil predict`'s output)
//! is written into a dot-prefixed temporary beside the target, fsynced, renamed
//! over the target, and the directory fsynced. A reader never sees half a file; a
//! failed write leaves the previous file (if any) and no temporary behind.
//! Directories published the same way (checkpoints, export versions) have their
//! own code in `checkpoint`, since they hold many files.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, directory
/// fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes `path` through `fill`, atomically; returns what `fill` returned. On
/// any error the temporary file is removed and the target left as it was. The
/// error type is the caller's, so `fill` can fail with its own errors; I/O
/// errors of the write itself convert through `From<std::io::Error>`.
pub fn write_atomic_with<T, E: From<std::io::Error>>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<T, E>,
) -> Result<T, E> {
    let tmp = temporary_for(path)?;
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut out = BufWriter::new(file);
        let value = fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(parent_of(path)) {
            // Some filesystems cannot fsync a directory; the rename is done.
            let _ = d.sync_all();
        }
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `.<name>.tmp-<pid>` beside `path`: hidden from readers that skip dot files,
/// and distinct per process so two writers never share a temporary.
fn temporary_for(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a file path", path.display()),
        )
    })?;
    Ok(parent_of(path).join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_nothing_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        write_atomic(&path, b"one\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"half")?;
            Err::<(), _>(std::io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_directory_fails_without_creating_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("absent/report.json");
        assert!(write_atomic(&path, b"x").is_err());
        assert!(!tmp.path().join("absent").exists());
    }
}
