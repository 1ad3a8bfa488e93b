//! Output files that appear whole or not at all.
//!
//! `vigil predict` and `vigil eval` write into a dot-prefixed temporary file
//! beside the target, fsync it, and rename it over the target: a pipeline that
//! picks up `scores.jsonl` never reads half of it, and a failed run leaves the
//! previous file (if any) untouched and no temporary behind.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::error::ServeError;

/// Writes `path` through `fill`, atomically (temporary file, fsync, rename).
/// Returns what `fill` returned; on any error the temporary file is removed.
pub fn write_atomic<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<T, ServeError>,
) -> Result<T, ServeError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ServeError::BadOption {
            flag: "--output",
            message: format!("{} is not a file path", path.display()),
        })?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ServeError::Write { path: p, source }
    };
    let result = (|| {
        // Named by the target: a missing directory is the user's path, not ours.
        let file = std::fs::File::create(&tmp).map_err(write_err(path))?;
        let mut out = BufWriter::new(file);
        let value = fill(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| write_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(write_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(write_err(path))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_nothing_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        write_atomic(&path, |w| {
            writeln!(w, "one").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        let err = write_atomic(&path, |w| {
            writeln!(w, "half").unwrap();
            Err::<(), _>(ServeError::BadOption {
                flag: "--top",
                message: "boom".into(),
            })
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_directory_is_a_user_error_naming_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("absent/report.json");
        let err = write_atomic(&path, |_| Ok(())).unwrap_err();
        assert!(err.is_user_error());
        assert_eq!(err.to_string(), format!("cannot write {}", path.display()));
    }
}
