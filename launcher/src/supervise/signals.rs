//! The launcher's own signals: SIGTERM/SIGHUP (preemption) and SIGINT (Ctrl-C; a second
//! one kills at once) are counted by async-signal-safe handlers and read by the
//! supervision loop, which turns them into policy events. Nothing else runs in a handler.
//!
//! Workers run in their own process groups, so a Ctrl-C in the terminal reaches only the
//! launcher, which then decides what the workers get (torchrun forwarded inconsistently,
//! pytorch/pytorch #67742).

use std::sync::atomic::{AtomicU32, Ordering};

static TERM: AtomicU32 = AtomicU32::new(0);
static INT: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGINT {
        INT.fetch_add(1, Ordering::SeqCst);
    } else {
        TERM.fetch_add(1, Ordering::SeqCst);
    }
}

/// Installs the handlers (idempotent).
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a handler that only touches atomics is valid.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Signals received so far: (SIGTERM + SIGHUP, SIGINT).
pub fn counts() -> (u32, u32) {
    (TERM.load(Ordering::SeqCst), INT.load(Ordering::SeqCst))
}
