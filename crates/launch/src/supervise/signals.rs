//! The launcher's own signals: SIGTERM/SIGHUP (preemption) and SIGINT (Ctrl-C; a second
//! one kills at once) are counted, and the supervision loop turns the counts into policy
//! events.
//!
//! The three signals are blocked in every launcher thread and received by one dedicated
//! thread with `sigwait`, rather than by a handler: a handler interrupts whichever thread
//! it lands on, and a blocking socket read with a timeout (the store client) fails with
//! EINTR instead of restarting, which would look like a lost store. Children start with
//! an empty signal mask (the standard library resets it), so workers still receive them.
//!
//! Workers run in their own process groups, so a Ctrl-C in the terminal reaches only the
//! launcher, which then decides what the workers get (torchrun forwarded inconsistently,
//! pytorch/pytorch #67742).

use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

static TERM: AtomicU32 = AtomicU32::new(0);
static INT: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the stop signals in this thread (and so in every thread it creates later) and
/// starts the receiving thread. Call before any other thread exists; idempotent.
pub fn install() -> std::io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        let set = stop_set();
        // SAFETY: set is initialised; the old mask is not needed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            result = Err(std::io::Error::from_raw_os_error(rc));
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("vigil-signals".into())
            .spawn(move || {
                loop {
                    let mut sig = 0;
                    // SAFETY: sigwait on signals blocked in every thread.
                    if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                        continue;
                    }
                    if sig == libc::SIGINT {
                        INT.fetch_add(1, Ordering::SeqCst);
                    } else {
                        TERM.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        if let Err(e) = spawned {
            result = Err(e);
        }
    });
    result
}

/// Whether any stop signal has arrived.
pub fn pending() -> bool {
    counts() != (0, 0)
}

/// Signals received so far: (SIGTERM + SIGHUP, SIGINT).
pub fn counts() -> (u32, u32) {
    (TERM.load(Ordering::SeqCst), INT.load(Ordering::SeqCst))
}
