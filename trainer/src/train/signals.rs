//! SIGTERM/SIGINT → a flag the training loop polls once per step, and the
//! launcher's heartbeat file (`VIGIL_HEARTBEAT_FILE` of the worker contract).
//!
//! The worker proves liveness by touching that file rather than through the store: a
//! file needs no connection, so a worker stuck while its store client is broken or
//! busy still reads as alive or silent exactly as it is. (The launcher's watchdog also
//! accepts store heartbeats, for other programs run under `vigil launch --`.)
//!
//! A preempted worker must not die mid-step: the handler only sets a flag; the
//! loop finishes its step, the ranks agree on stopping (the max of their flags, so
//! one signalled rank stops all), rank 0 checkpoints, and every worker exits with
//! the launcher's "preempted" code.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vigil_collective::group::env::var;

/// Exit code of a worker that stopped for preemption (the launcher's `EX_TEMPFAIL`).
pub const PREEMPTED_EXIT: u8 = 75;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Routes SIGTERM and SIGINT to the stop flag.
pub fn install_stop_handler() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
    // mask calls take initialised sets. A parent may have started us with these
    // signals blocked (masks survive exec), so unblock them.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Proves liveness to the launcher's watchdog by touching `VIGIL_HEARTBEAT_FILE`
/// (at most once a second).
#[derive(Debug)]
pub struct Heartbeat {
    file: Option<PathBuf>,
    last: Option<Instant>,
}

impl Heartbeat {
    /// The heartbeat file the launcher gave this worker, if any.
    pub fn from_env() -> Self {
        Self::to_file(std::env::var_os(var::HEARTBEAT_FILE).map(PathBuf::from))
    }

    /// Beats by touching `file` (`None`: never beats), e.g. a [`WorkerEnv`]'s
    /// `heartbeat_file`.
    ///
    /// [`WorkerEnv`]: vigil_collective::WorkerEnv
    pub fn to_file(file: Option<PathBuf>) -> Self {
        Self { file, last: None }
    }

    /// Beats, unless one was sent in the last second.
    pub fn beat(&mut self) {
        let Some(file) = &self.file else { return };
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        // A missing directory or a full disk must not kill training; the watchdog
        // will say so if beats stop arriving.
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(file)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }
}
