//! Debug hooks the end-to-end tests drive, compiled only with the `test-hooks`
//! feature (the `tests` crate turns it on for the binary `cargo test --workspace`
//! builds; `./quickstart.sh`'s release build has none of this).
//!
//! - `VIGIL_DEBUG_KILL_AT_STEP=S`: rank `VIGIL_DEBUG_KILL_RANK` (default 1)
//!   SIGKILLs itself right after optimizer step S, before any checkpoint of that
//!   step, in the first generation only: a crash at a step the test chooses.
//! - `VIGIL_DEBUG_FIRST_GRADS=FILE`: rank 0 writes the reduced gradient of the
//!   first step (before clipping) to FILE as raw little-endian f32.
//! - `VIGIL_DEBUG_DEVICE_STEP=1`: the trainer takes the device-resident step (what
//!   CUDA runs) on the CPU backend, so whole runs test its logic without a GPU.
//! - `VIGIL_DEBUG_KILL_IN_EXPORT=1|2`: rank 0 SIGKILLs itself while exporting, in
//!   the first generation only: `1` before the version is published, `2` after it
//!   is published and before `export-decision.json` is written.

#[cfg(feature = "test-hooks")]
fn var(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok())
}

/// After optimizer step `step` of `rank`: the crash hook.
#[cfg(feature = "test-hooks")]
pub fn after_step(step: u64, rank: usize) {
    if var("VIGIL_DEBUG_KILL_AT_STEP") == Some(step)
        && var("VIGIL_DEBUG_KILL_RANK").unwrap_or(1) == rank as u64
        && var("VIGIL_RESTART_COUNT").unwrap_or(0) == 0
    {
        // SAFETY: raising a signal on our own process has no memory-safety effects.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// Without `test-hooks`: nothing.
#[cfg(not(feature = "test-hooks"))]
pub fn after_step(_step: u64, _rank: usize) {}

/// At point `at` of an export (1 before publishing, 2 after): the crash hook.
#[cfg(feature = "test-hooks")]
pub fn in_export(at: u64) {
    if var("VIGIL_DEBUG_KILL_IN_EXPORT") == Some(at) && var("VIGIL_RESTART_COUNT").unwrap_or(0) == 0
    {
        // SAFETY: raising a signal on our own process has no memory-safety effects.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// Without `test-hooks`: nothing.
#[cfg(not(feature = "test-hooks"))]
pub fn in_export(_at: u64) {}

/// The reduced gradient of step `step` (1-based) on `rank`.
#[cfg(feature = "test-hooks")]
pub fn reduced_grads(step: u64, rank: usize, grads: &[f32]) -> Result<(), super::TrainError> {
    if step != 1 || rank != 0 {
        return Ok(());
    }
    let Some(path) = std::env::var_os("VIGIL_DEBUG_FIRST_GRADS") else {
        return Ok(());
    };
    let path = std::path::PathBuf::from(path);
    std::fs::write(&path, super::state::f32_bytes(grads))
        .map_err(|source| super::TrainError::Io { path, source })
}

/// Without `test-hooks`: nothing.
#[cfg(not(feature = "test-hooks"))]
pub fn reduced_grads(_step: u64, _rank: usize, _grads: &[f32]) -> Result<(), super::TrainError> {
    Ok(())
}

/// Whether `VIGIL_DEBUG_DEVICE_STEP=1` asks for the device-resident step on the CPU.
#[cfg(feature = "test-hooks")]
pub fn device_step_forced() -> bool {
    var("VIGIL_DEBUG_DEVICE_STEP") == Some(1)
}

/// Without `test-hooks`: never.
#[cfg(not(feature = "test-hooks"))]
pub fn device_step_forced() -> bool {
    false
}
