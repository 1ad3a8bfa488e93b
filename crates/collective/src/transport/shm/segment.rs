//! A shared-memory segment: a file in `/dev/shm` mapped by every local rank, holding a
//! control page (pids, per-rank barrier counters, an abort flag) and one data slot per rank.
//!
//! Lifecycle: local rank 0 removes stale files, creates the file exclusively and publishes
//! a store key; the others open and map it; after an attach barrier rank 0 *unlinks* it.
//! From then on the memory lives exactly as long as some rank maps it, so nothing leaks
//! even if every rank is killed -9. Only a crash inside the short create→attach window can
//! leave a file behind; [`cleanup_stale`] removes those on the next start.
//!
//! Synchronisation is a counter per rank on its own cache line: to pass barrier `e` a rank
//! stores `e` (release) and waits until every counter is `>= e` (acquire). Waiting spins,
//! then yields, then sleeps briefly; every [`LIVENESS_PERIOD`] it checks the pids of the
//! ranks it waits for, so a dead peer is reported within milliseconds and a stopped one at
//! the operation's deadline.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Op, Result};
use crate::transport::link::Fault;

const MAGIC: u64 = 0x5647_5348_4d30_0001;
/// Most ranks one segment supports.
pub const MAX_LOCAL_RANKS: usize = 64;
const PIDS_AT: usize = 64;
const COUNTERS_AT: usize = PIDS_AT + 8 * MAX_LOCAL_RANKS;
const LINE: usize = 128;
const HEADER_BYTES: usize = (COUNTERS_AT + LINE * MAX_LOCAL_RANKS).next_multiple_of(4096);
/// How often a waiting rank checks that the ranks it waits for are alive.
pub const LIVENESS_PERIOD: Duration = Duration::from_millis(50);

/// A mapped segment (see module docs).
pub struct ShmSegment {
    base: *mut u8,
    total: usize,
    n: usize,
    rank: usize,
    slot_bytes: usize,
    epoch: u64,
    path: PathBuf,
}

// SAFETY: the mapping is process-wide memory; concurrent access is coordinated by the
// barrier protocol, and `&mut self` methods hand out slot views.
unsafe impl Send for ShmSegment {}
unsafe impl Sync for ShmSegment {}

impl std::fmt::Debug for ShmSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmSegment")
            .field("path", &self.path)
            .field("n", &self.n)
            .field("rank", &self.rank)
            .field("slot_bytes", &self.slot_bytes)
            .finish()
    }
}

impl ShmSegment {
    /// Create (rank 0) or open (others) the segment at `path` with `n` slots of at least
    /// `slot_bytes` each. `publish` is called by rank 0 once the file is ready; `await_ready`
    /// by the others before opening. The call ends with an attach barrier, after which
    /// rank 0 unlinks the file.
    pub fn attach(
        path: &Path,
        n: usize,
        rank: usize,
        slot_bytes: usize,
        deadline: Instant,
        publish: impl FnOnce() -> Result<()>,
        await_ready: impl FnOnce() -> Result<()>,
    ) -> Result<Self> {
        if n == 0 || n > MAX_LOCAL_RANKS || rank >= n {
            return Err(Error::Config {
                reason: format!(
                    "shared memory supports 1..={MAX_LOCAL_RANKS} local ranks, got {n}"
                ),
            });
        }
        let started = Instant::now();
        let slot_bytes = slot_bytes.max(64).next_multiple_of(4096);
        let total = HEADER_BYTES + n * slot_bytes;
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        let file = if rank == 0 {
            let _ = std::fs::remove_file(path);
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| io("create", e))?;
            f.set_len(total as u64).map_err(|e| io("size", e))?;
            f
        } else {
            await_ready()?;
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| io("open", e))?;
            let len = f.metadata().map_err(|e| io("stat", e))?.len();
            if len != total as u64 {
                return Err(Error::Config {
                    reason: format!("{} has {len} bytes, expected {total}", path.display()),
                });
            }
            f
        };
        // SAFETY: mapping a file we opened read-write with its full length.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io("mmap", std::io::Error::last_os_error()));
        }
        let mut seg = ShmSegment {
            base: base.cast(),
            total,
            n,
            rank,
            slot_bytes,
            epoch: 0,
            path: path.to_path_buf(),
        };
        if rank == 0 {
            seg.word(8).store(n as u64, Ordering::Relaxed);
            seg.word(16).store(slot_bytes as u64, Ordering::Relaxed);
            seg.word(0).store(MAGIC, Ordering::Release);
            publish()?;
        } else if seg.word(0).load(Ordering::Acquire) != MAGIC
            || seg.word(8).load(Ordering::Relaxed) != n as u64
        {
            return Err(Error::Config {
                reason: format!("{} is not our segment", path.display()),
            });
        }
        seg.word(PIDS_AT + 8 * rank)
            .store(u64::from(std::process::id()), Ordering::Release);
        let attached = seg.barrier(deadline);
        if rank == 0 {
            let _ = std::fs::remove_file(path);
        }
        attached.map_err(|f| match f {
            Fault::Lost { peer } => Error::PeerLost {
                rank: peer,
                op: Op::Setup,
                seq: 0,
            },
            Fault::Stalled { peer } | Fault::Mismatch { peer, .. } => Error::Timeout {
                op: Op::Setup,
                seq: 0,
                rank: peer,
                after: started.elapsed(),
            },
        })?;
        Ok(seg)
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset + 8 <= HEADER_BYTES && offset.is_multiple_of(8));
        // SAFETY: in-bounds, 8-aligned (page-aligned base), and only ever accessed atomically.
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }

    fn counter(&self, r: usize) -> &AtomicU64 {
        self.word(COUNTERS_AT + LINE * r)
    }

    /// Number of ranks sharing the segment.
    pub fn ranks(&self) -> usize {
        self.n
    }

    /// This rank's index in the segment.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Bytes per slot.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Raw pointer to the start of slot `r` (page-aligned).
    pub(crate) fn slot_ptr(&self, r: usize) -> *mut u8 {
        assert!(r < self.n, "slot {r} out of range");
        // SAFETY: within the mapping.
        unsafe { self.base.add(HEADER_BYTES + r * self.slot_bytes) }
    }

    /// Tell every waiting rank to give up (called on the failure path).
    pub fn abort(&self) {
        self.word(24).store(self.rank as u64 + 1, Ordering::Release);
    }

    /// Wait until every rank has reached this barrier, or fail naming a missing rank.
    pub(crate) fn barrier(&mut self, deadline: Instant) -> Result<(), Fault> {
        self.epoch += 1;
        let epoch = self.epoch;
        self.counter(self.rank).store(epoch, Ordering::Release);
        let started = Instant::now();
        let mut next_check = started + LIVENESS_PERIOD;
        let mut spins: u32 = 0;
        loop {
            let lagging = (0..self.n).find(|&r| self.counter(r).load(Ordering::Acquire) < epoch);
            let Some(peer) = lagging else { return Ok(()) };
            spins = spins.saturating_add(1);
            if spins < 256 {
                std::hint::spin_loop();
                continue;
            }
            if spins < 2048 {
                std::thread::yield_now();
                continue;
            }
            let now = Instant::now();
            if now >= next_check {
                next_check = now + LIVENESS_PERIOD;
                if !self.alive(peer) {
                    return Err(Fault::Lost { peer });
                }
                if self.word(24).load(Ordering::Acquire) != 0 {
                    return Err(Fault::Stalled { peer });
                }
            }
            if now >= deadline {
                return Err(Fault::Stalled { peer });
            }
            std::thread::sleep(Duration::from_micros(if spins < 8192 { 20 } else { 200 }));
        }
    }

    fn alive(&self, r: usize) -> bool {
        let pid = self.word(PIDS_AT + 8 * r).load(Ordering::Acquire);
        if pid == 0 {
            return true; // not attached yet: the deadline decides
        }
        pid_alive(pid as libc::pid_t)
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        // SAFETY: unmapping the exact region mapped in `attach`.
        unsafe {
            libc::munmap(self.base.cast(), self.total);
        }
    }
}

fn pid_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc != 0 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    }
    // A killed rank stays a zombie until its parent reaps it; that is dead for us.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => true,
    }
}

/// Remove leftovers in `dir`: this run's files from other restart generations (they crashed
/// before unlinking), and any other `vigil-*` segment whose ranks are all dead. Files of the
/// current generation are left alone: other nodes' ranks may share this machine, and a
/// stale file of our own is replaced when we create it. Returns how many were removed.
pub fn cleanup_stale(dir: &Path, run_id: &str, generation: u64) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let own = format!("vigil-{run_id}-");
    let current = format!("vigil-{run_id}-g{generation}-");
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("vigil-") {
            continue;
        }
        if name.starts_with(&current) {
            continue;
        }
        let stale = name.starts_with(&own) || all_ranks_dead(&entry.path());
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = name, "removed stale shared-memory segment");
            removed += 1;
        }
    }
    removed
}

fn all_ranks_dead(path: &Path) -> bool {
    use std::io::Read;
    let mut head = vec![0u8; PIDS_AT + 8 * MAX_LOCAL_RANKS];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.read_exact(&mut head).is_err() {
        return false;
    }
    let word = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap_or([0; 8]));
    if word(0) != MAGIC {
        return false;
    }
    let pids: Vec<u64> = (0..MAX_LOCAL_RANKS)
        .map(|r| word(PIDS_AT + 8 * r))
        .filter(|p| *p != 0)
        .collect();
    !pids.is_empty() && pids.iter().all(|p| !pid_alive(*p as libc::pid_t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fits_and_lines_do_not_share() {
        const { assert!(COUNTERS_AT + LINE * MAX_LOCAL_RANKS <= HEADER_BYTES) };
        const { assert!(HEADER_BYTES.is_multiple_of(4096)) };
    }

    #[test]
    fn own_leftovers_are_removed_others_kept() {
        let dir = std::env::temp_dir().join(format!("vigil-shm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vigil-runA-g0-n0-staging"), b"x").unwrap();
        std::fs::write(dir.join("vigil-runA-g1-n1-staging"), b"x").unwrap();
        std::fs::write(dir.join("vigil-runB-g0-n0-staging"), b"x").unwrap();
        std::fs::write(dir.join("unrelated"), b"x").unwrap();
        assert_eq!(cleanup_stale(&dir, "runA", 1), 1);
        assert!(dir.join("vigil-runA-g1-n1-staging").exists());
        assert!(dir.join("vigil-runB-g0-n0-staging").exists());
        assert!(dir.join("unrelated").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn single_rank_segment_attaches_and_unlinks() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("vigil-unit-{}-seg", std::process::id()));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seg = ShmSegment::attach(&path, 1, 0, 100, deadline, || Ok(()), || Ok(())).unwrap();
        assert!(!path.exists());
        assert_eq!(seg.slot_bytes(), 4096);
        seg.barrier(deadline).unwrap();
    }
}
