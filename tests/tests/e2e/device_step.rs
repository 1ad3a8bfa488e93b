//! The device-resident optimizer step — what a CUDA run takes: gradients flattened
//! into device buckets, reduced bucket by bucket, clipped and applied by the device
//! AdamW, host state synced only for checkpoints, histograms and replica checks —
//! run on the CPU backend (`VIGIL_DEBUG_DEVICE_STEP=1`, a `test-hooks` switch), so
//! its logic is tested end to end without a GPU: two workers of tiny train the same
//! losses as the host path, pass the replica check at each evaluation, and resume
//! from their own checkpoint after a crash.
//!
//! Tolerance 1e-4 relative per step: both paths reduce the same gradients through
//! the same transport; they differ only in the order of the AdamW arithmetic and in
//! an f32 (device) instead of f64 (host) gradient norm, about 1e-7 relative per
//! step, which 20 steps do not amplify past 1e-5.

use crate::util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);

const RUN: [&str; 5] = [
    "train.max_steps=20",
    "train.eval_every=10",
    "checkpoint.every_steps=5",
    "logging.interval=1",
    "logging.histogram_every=10",
];

/// Step → (loss, grad norm) of a 2-worker tiny run (the last record of a step
/// logged twice across a restart).
fn run(dir: &Path, device: bool, kill_at: Option<u64>) -> BTreeMap<u64, (f64, f64)> {
    let mut cmd = util::tiny_launch(dir, 2, &RUN);
    if device {
        cmd.env("VIGIL_DEBUG_DEVICE_STEP", "1");
    }
    if let Some(step) = kill_at {
        cmd.env("VIGIL_DEBUG_KILL_AT_STEP", step.to_string());
        cmd.args(["--max-restarts", "1"]);
    }
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    let (so, se) = util::texts(&out);
    assert!(
        out.status.success(),
        "device {device}, kill {kill_at:?}:\n{se}"
    );
    util::train_records(&so)
        .iter()
        .map(|r| {
            let step = r["step"].as_u64().expect("step");
            let loss = r["loss"].as_f64().expect("loss");
            (step, (loss, r["grad_norm"].as_f64().unwrap_or(f64::NAN)))
        })
        .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn the_device_step_trains_as_the_host_step_and_resumes_from_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let host = run(&tmp.path().join("host"), false, None);
    let device = run(&tmp.path().join("device"), true, None);
    assert_eq!(host.len(), 20, "{host:?}");
    assert_eq!(device.len(), 20, "{device:?}");
    for (step, (loss, norm)) in &host {
        let (d_loss, d_norm) = device[step];
        assert!(
            close(*loss, d_loss, 1e-4),
            "step {step}: loss {loss} vs device {d_loss}"
        );
        assert!(
            close(*norm, d_norm, 1e-4),
            "step {step}: norm {norm} vs device {d_norm}"
        );
    }
    // An f32 device norm is never bit-equal to the host's f64 one at every step: the
    // switch did take the other path.
    assert!(
        host.iter().any(|(s, (_, n))| device[s].1 != *n),
        "the device path did not run"
    );
    // The device path's checkpoint (written from its synced state) resumes it: rank 1
    // dies after step 13, the group restarts from step 10 and ends where it would have.
    let resumed = run(&tmp.path().join("resumed"), true, Some(13));
    assert_eq!(resumed.len(), 20, "{resumed:?}");
    for step in 11..=20 {
        let (want, _) = device[&step];
        let (got, _) = resumed[&step];
        assert!(
            close(want, got, 1e-4),
            "step {step} after the restart: {got} vs {want}"
        );
    }
}
