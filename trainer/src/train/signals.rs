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
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use vigil_collective::group::env::var;

/// Exit code of a worker that stopped for preemption: the worker contract's.
pub use vigil_collective::PREEMPTED_EXIT;

/// The stop flag the handlers set (registered once per process).
fn stop_flag() -> &'static Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            // signal-hook's handler only stores to the atomic (async-signal-safe). A
            // registration cannot fail for these two signals; if it did, a stop
            // request would kill the worker as before, which the launcher handles.
            if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&flag)) {
                tracing::warn!("cannot route signal {sig} to the stop flag: {e}");
            }
        }
        flag
    })
}

/// Routes SIGTERM and SIGINT to the stop flag.
pub fn install_stop_handler() {
    stop_flag();
    // A parent may have started us with these signals blocked (masks survive exec),
    // so unblock them.
    // SAFETY: the mask calls take an initialised set and a null old-set pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    stop_flag().load(Ordering::SeqCst)
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
