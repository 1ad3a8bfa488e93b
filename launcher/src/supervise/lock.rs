//! One run per output directory: an exclusive `flock` on `<output_dir>/.vigil.lock`.
//!
//! The kernel drops the lock when its holder dies, however it dies, so a stale lock from a
//! crashed or SIGKILLed launcher is simply taken over; the file's text (pid, host, time)
//! only serves the message a refused launch prints. The file is never deleted: deleting a
//! locked file lets two launchers lock two different inodes of the same name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
    /// The previous holder's text when a stale lock was taken over.
    pub took_over: Option<String>,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another launcher holds it.
    #[error(
        "output directory {} is in use by another launch ({holder}); \
         wait for it to finish or choose another run.output_dir",
        dir.display()
    )]
    Held {
        /// The run directory.
        dir: PathBuf,
        /// `pid N on host H since T`.
        holder: String,
    },
    /// The file could not be created or locked.
    #[error("cannot lock {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl OutputLock {
    /// Locks `dir` (created if needed) or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(".vigil.lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let previous = previous.trim().to_string();
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let holder = if previous.is_empty() {
                    "holder unknown".to_string()
                } else {
                    previous
                };
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            return Err(io(err));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let me = format!(
            "pid {} on host {} since unix time {now}",
            std::process::id(),
            hostname()
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(format!("{me}\n").as_bytes()).map_err(io)?;
        Ok(Self {
            _file: file,
            took_over: (!previous.is_empty()).then_some(previous),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutputLock::acquire(dir.path()).unwrap();
        assert_eq!(first.took_over, None);
        let err = OutputLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&hostname()), "{err}");
        drop(first);
        let again = OutputLock::acquire(dir.path()).unwrap();
        assert!(again.took_over.unwrap().contains("pid"));
    }
}
