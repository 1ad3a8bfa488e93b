//! Output files of `vigil predict`, `vigil eval` and `vigil embed`, which appear
//! whole or not at all.
//!
//! The temporary-file-fsync-rename work is [`vigil_store::atomic::write_atomic_with`]'s;
//! this only keeps the command's own error ([`ServeError`]) as it is and names
//! the target in an I/O failure, so a pipeline that picks up `scores.jsonl` never
//! reads half of it and a failed run leaves the previous file untouched.

use std::io::Write;
use std::path::Path;

use super::error::ServeError;

/// Why writing through the helper failed: the write itself, or `fill`.
enum Fail {
    Io(std::io::Error),
    Serve(ServeError),
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Writes `path` through `fill`, atomically; returns what `fill` returned. On
/// any error nothing is left behind and the target is as it was.
pub fn write_output<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<T, ServeError>,
) -> Result<T, ServeError> {
    vigil_store::atomic::write_atomic_with(path, |w| fill(w).map_err(Fail::Serve)).map_err(|f| {
        match f {
            Fail::Io(source) => ServeError::Write {
                path: path.to_path_buf(),
                source,
            },
            Fail::Serve(e) => e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_keeps_the_commands_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        write_output(&path, |w| {
            writeln!(w, "one").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        let err = write_output(&path, |w| {
            writeln!(w, "half").unwrap();
            Err::<(), _>(ServeError::BadOption {
                flag: "--top",
                message: "boom".into(),
            })
        })
        .unwrap_err();
        assert!(matches!(err, ServeError::BadOption { flag: "--top", .. }));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_directory_is_a_user_error_naming_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("absent/report.json");
        let err = write_output(&path, |_| Ok(())).unwrap_err();
        assert!(err.is_user_error());
        assert_eq!(err.to_string(), format!("cannot write {}", path.display()));
    }
}
