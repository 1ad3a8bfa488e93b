//! One run per output directory: an exclusive `flock` on `<output_dir>/.vigil.lock`.
//!
//! The kernel drops the lock when its holder dies, however it dies, so a stale lock from a
//! crashed or SIGKILLed launcher is simply taken over; the file's text (pid, host, time)
//! serves the message a refused launch prints, and tells a stale lock from a released one:
//! a launcher that ends in order (success, failure or preemption) empties the file before
//! it unlocks, so only a holder that died leaves its text behind, and only then does the
//! next launch report taking over a stale lock. The file is never deleted: deleting a
//! locked file lets two launchers lock two different inodes of the same name.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A held lock; dropping it releases the directory (and marks it released).
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    /// The previous holder's text when a stale lock (its holder died) was taken over.
    pub took_over: Option<String>,
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Still holding the flock: nobody can read the text between this and the unlock
        // that closing the file does. A failure only costs a "stale" message next time.
        let _ = self.file.set_len(0);
    }
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
    /// The lease of a run directory on a bucket is held, or the bucket failed
    /// (`vigil_store::storage::lease`).
    #[error(transparent)]
    Bucket(#[from] vigil_store::storage::StorageError),
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

/// What a run holds on its output for as long as it runs: the directory's lock and,
/// when the run directory is a bucket (`output_url`), its lease — a flock cannot
/// reach a bucket. Dropping it releases both.
#[derive(Debug)]
pub struct OutputHold {
    _lock: OutputLock,
    _lease: Option<vigil_store::storage::lease::Lease>,
}

impl OutputHold {
    /// Takes `dir`'s lock and `url`'s lease, saying so when a stale lock or an
    /// expired lease is taken over; `vigil launch` (node 0) and a `vigil worker`
    /// run alone both hold their output through this.
    pub fn acquire(
        dir: &Path,
        url: Option<&vigil_store::storage::RemoteUrl>,
    ) -> Result<Self, LockError> {
        use vigil_store::storage::lease::{Lease, ttl_from_env};
        let lock = OutputLock::acquire(dir)?;
        if let Some(prev) = &lock.took_over {
            eprintln!(
                "vigil: took over a stale lock of {} ({prev})",
                dir.display()
            );
        }
        let lease = match url {
            Some(url) => {
                let holder = format!("pid {} on host {}", std::process::id(), hostname());
                let lease = Lease::acquire(url, &holder, ttl_from_env())?;
                if let Some(prev) = &lease.took_over {
                    eprintln!("vigil: took over an expired lease of {url} ({prev})");
                }
                Some(lease)
            }
            None => None,
        };
        Ok(Self {
            _lock: lock,
            _lease: lease,
        })
    }
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
        // std's `File::try_lock` is `flock(LOCK_EX | LOCK_NB)` on Unix: the same
        // kernel lock, released when the holder dies however it dies.
        let locked = file.try_lock();
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let previous = previous.trim().to_string();
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
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
            Err(TryLockError::Error(err)) => return Err(io(err)),
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
            file,
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
        // Released in order: the next holder has nothing to report.
        let again = OutputLock::acquire(dir.path()).unwrap();
        assert_eq!(again.took_over, None);
    }

    #[test]
    fn only_a_lock_whose_holder_died_is_reported_as_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let held = OutputLock::acquire(dir.path()).unwrap();
        // A holder that died: the kernel released its flock, its text stays in the file.
        // (Forgetting the lock skips the orderly release; closing the descriptor drops
        // the flock as the holder's death would.)
        let fd = std::os::fd::AsRawFd::as_raw_fd(&held.file);
        std::mem::forget(held);
        // SAFETY: closing the descriptor of the forgotten File, which nothing else uses.
        unsafe {
            libc::close(fd);
        }
        let next = OutputLock::acquire(dir.path()).unwrap();
        let prev = next.took_over.clone().expect("a stale lock");
        assert!(
            prev.contains(&format!("pid {}", std::process::id())),
            "{prev}"
        );
        drop(next);
        let clean = OutputLock::acquire(dir.path()).unwrap();
        assert_eq!(clean.took_over, None);
    }
}
