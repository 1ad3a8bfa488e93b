//! Checkpoints survive failures: an injected failure between two files, a flipped
//! byte, a truncated file, a missing or bogus `LATEST`, and a writer process
//! SIGKILLed in the middle of saving large checkpoints. After each, `LATEST` (or
//! the fallback) names a complete, verifiable checkpoint.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_store::checkpoint::{
    AsyncCheckpointer, CheckpointDir, CheckpointMeta, Corruption, Files, LocalFs, Ranking,
    RetentionPolicy, StoreError, WriteEvent, WriteHook, config_hash,
};

fn meta(metric: Option<f64>) -> CheckpointMeta {
    CheckpointMeta {
        step: 0,
        config_sha256: config_hash("run: {}"),
        metrics: metric
            .map(|m| [("val/loss".to_string(), m)].into())
            .unwrap_or_default(),
        extra: serde_json::json!({"epoch": 1, "batch_in_epoch": 3}),
    }
}

/// Three files of `size` bytes each whose contents depend on the step (cheap to
/// make, so the writer process spends its time writing).
fn state(step: u64, size: usize) -> Files {
    ["model.mpk", "optim.mpk", "rng.json"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut bytes = vec![i as u8 + 1; size];
            let tag = (step * 3 + i as u64).to_le_bytes();
            let n = tag.len().min(size);
            bytes[..n].copy_from_slice(&tag[..n]);
            if size > 16 {
                bytes[size - 8..].copy_from_slice(&step.to_le_bytes());
            }
            (name.to_string(), bytes)
        })
        .collect()
}

fn flip_byte(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x01]).unwrap();
}

#[test]
fn save_then_resume_returns_the_exact_bytes() {
    let run = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(run.path()).unwrap();
    assert!(dir.resume().unwrap().is_none(), "fresh run resumes nothing");
    dir.save(10, &state(10, 1000), meta(None)).unwrap();
    dir.save(20, &state(20, 1000), meta(None)).unwrap();
    let found = dir.resume().unwrap().unwrap();
    assert_eq!(found.step, 20);
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    let loaded = found.checkpoint;
    assert_eq!(loaded.meta.step, 20);
    assert_eq!(loaded.meta.extra["batch_in_epoch"], 3);
    for (name, bytes) in state(20, 1000) {
        assert_eq!(loaded.files[&name], bytes, "{name}");
    }
    let latest = std::fs::read_to_string(run.path().join("checkpoints/LATEST")).unwrap();
    assert_eq!(latest, "step-20\n");
}

#[test]
fn a_failure_between_two_files_leaves_latest_on_the_previous_checkpoint() {
    let run = tempfile::tempdir().unwrap();
    let root = run.path().join("checkpoints");
    let hook: WriteHook = Arc::new(|ev: &WriteEvent<'_>| match ev {
        WriteEvent::FileWritten {
            entry: "step-20",
            file: "model.mpk",
        } => Err(std::io::Error::other("injected crash after model.mpk")),
        _ => Ok(()),
    });
    let store = LocalFs::new(&root).unwrap().with_hook(hook);
    let dir = CheckpointDir::with_store(Arc::new(store)).unwrap();
    dir.save(10, &state(10, 4096), meta(None)).unwrap();
    let err = dir.save(20, &state(20, 4096), meta(None)).unwrap_err();
    assert!(err.to_string().contains("injected crash"), "{err}");

    // The half-written step sits in a dot-directory nobody reads.
    let names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with(".tmp-step-20")),
        "{names:?}"
    );
    assert!(!names.contains(&"step-20".to_string()));

    // A restarted worker resumes from step 10 without complaint, and cleans up.
    let restarted = CheckpointDir::new(run.path()).unwrap();
    let found = restarted.latest_valid().unwrap().unwrap();
    assert_eq!((found.step, found.warnings.len()), (10, 0));
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert_eq!(left.len(), 2, "step-10 and LATEST only");
}

#[test]
fn a_failure_before_latest_is_replaced_keeps_the_old_latest() {
    let run = tempfile::tempdir().unwrap();
    let hook: WriteHook = Arc::new(|ev: &WriteEvent<'_>| match ev {
        WriteEvent::PointerStaged { .. } => Err(std::io::Error::other("injected")),
        _ => Ok(()),
    });
    let plain = CheckpointDir::new(run.path()).unwrap();
    plain.save(10, &state(10, 100), meta(None)).unwrap();
    let store = LocalFs::new(run.path().join("checkpoints"))
        .unwrap()
        .with_hook(hook);
    let failing = CheckpointDir::with_store(Arc::new(store)).unwrap();
    assert!(failing.save(20, &state(20, 100), meta(None)).is_err());
    // step-20 is complete but LATEST, the authority, still names step-10.
    let found = plain.latest_valid().unwrap().unwrap();
    assert_eq!(found.step, 10);
    assert_eq!(plain.steps().unwrap(), vec![10, 20]);
}

#[test]
fn a_flipped_byte_is_detected_and_the_previous_checkpoint_used() {
    let run = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(run.path()).unwrap();
    dir.save(10, &state(10, 5000), meta(None)).unwrap();
    dir.save(20, &state(20, 5000), meta(None)).unwrap();
    flip_byte(&run.path().join("checkpoints/step-20/optim.mpk"), 1234);

    let err = dir.load(20).unwrap_err();
    assert!(
        matches!(err.corruption(), Some(Corruption::HashMismatch { file, .. }) if file == "optim.mpk"),
        "{err}"
    );
    let found = dir.resume().unwrap().unwrap();
    assert_eq!(found.step, 10);
    assert_eq!(found.checkpoint.files["optim.mpk"], state(10, 5000)[1].1);
    let all = found.warnings.join("\n");
    assert!(all.contains("LATEST names step-20"), "{all}");
    assert!(all.contains("optim.mpk has sha256"), "{all}");
}

#[test]
fn truncated_missing_and_unlisted_damage_each_fall_back_with_a_reason() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage); 4] = [
        ("truncated", |ck| {
            let f = ck.join("step-20/model.mpk");
            let len = std::fs::metadata(&f).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&f)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }),
        ("missing file", |ck| {
            std::fs::remove_file(ck.join("step-20/rng.json")).unwrap()
        }),
        ("missing manifest", |ck| {
            std::fs::remove_file(ck.join("step-20/MANIFEST.json")).unwrap()
        }),
        ("bad LATEST", |ck| {
            std::fs::write(ck.join("LATEST"), "garbage").unwrap();
            std::fs::remove_dir_all(ck.join("step-20")).unwrap();
        }),
    ];
    let expect = [
        "bytes, MANIFEST.json says",
        "rng.json is listed in MANIFEST.json but missing",
        "MANIFEST.json is missing",
        "does not name a checkpoint",
    ];
    for ((label, damage), expected) in cases.into_iter().zip(expect) {
        let run = tempfile::tempdir().unwrap();
        let dir = CheckpointDir::new(run.path()).unwrap();
        dir.save(10, &state(10, 300), meta(None)).unwrap();
        dir.save(20, &state(20, 300), meta(None)).unwrap();
        damage(&run.path().join("checkpoints"));
        let found = dir.latest_valid().unwrap().unwrap();
        assert_eq!(found.step, 10, "{label}");
        let all = found.warnings.join("\n");
        assert!(all.contains(expected), "{label}: {all}");
    }
}

#[test]
fn missing_latest_uses_the_newest_complete_checkpoint() {
    let run = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(run.path()).unwrap();
    dir.save(10, &state(10, 100), meta(None)).unwrap();
    dir.save(20, &state(20, 100), meta(None)).unwrap();
    std::fs::remove_file(run.path().join("checkpoints/LATEST")).unwrap();
    let found = dir.latest_valid().unwrap().unwrap();
    assert_eq!(found.step, 20);
    assert!(
        found.warnings[0].contains("LATEST is missing"),
        "{:?}",
        found.warnings
    );
}

#[test]
fn when_every_checkpoint_is_damaged_resume_refuses_instead_of_starting_over() {
    let run = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(run.path()).unwrap();
    dir.save(10, &state(10, 100), meta(None)).unwrap();
    flip_byte(&run.path().join("checkpoints/step-10/model.mpk"), 5);
    let err = dir.resume().unwrap_err();
    assert!(matches!(err, StoreError::NoValidCheckpoint { .. }), "{err}");
    assert!(err.to_string().contains("model.mpk has sha256"), "{err}");
}

#[test]
fn retention_keeps_last_and_best_and_never_latest() {
    let run = tempfile::tempdir().unwrap();
    let policy = RetentionPolicy {
        keep_last: 2,
        keep_best: 1,
        mode: Ranking::LowerFirst,
    };
    let dir = CheckpointDir::new(run.path())
        .unwrap()
        .with_retention(policy, Some("val/loss".into()));
    let losses = [0.9, 0.3, 0.5, 0.6, f64::NAN, 0.7];
    let mut deleted = Vec::new();
    for (i, loss) in losses.iter().enumerate() {
        let step = (i as u64 + 1) * 10;
        deleted.extend(
            dir.save(step, &state(step, 50), meta(Some(*loss)))
                .unwrap()
                .deleted,
        );
    }
    assert_eq!(dir.steps().unwrap(), vec![20, 50, 60]);
    assert_eq!(deleted, vec![10, 30, 40]);
    assert_eq!(dir.latest_pointer().unwrap(), Some(60));
}

#[test]
fn async_saves_overlap_the_caller_and_report_the_stall() {
    let run = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(run.path()).unwrap();
    let mut writer = AsyncCheckpointer::new(dir.clone());
    let mut reports = Vec::new();
    for step in 1..=4u64 {
        let files = state(step, 1 << 20);
        let t = Instant::now();
        if let Some(r) = writer.submit(step, files, meta(None)).unwrap() {
            reports.push(r);
        }
        let returned_after = t.elapsed();
        // The "training steps" until the next save: the caller is free while the
        // writer works. Longer than a write, so the stall should be near zero.
        std::thread::sleep(Duration::from_millis(150));
        eprintln!("submit {step} returned after {returned_after:?}");
    }
    reports.extend(writer.finish().unwrap());
    assert_eq!(
        reports.iter().map(|r| r.save.step).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    for r in &reports {
        eprintln!(
            "step {}: {} bytes written in {:?}, caller stalled {:?}",
            r.save.step, r.save.bytes, r.save.elapsed, r.stall
        );
        assert_eq!(r.save.bytes, 3 << 20);
    }
    assert_eq!(dir.latest_valid().unwrap().unwrap().step, 4);
}

#[test]
fn async_write_errors_reach_the_caller() {
    let run = tempfile::tempdir().unwrap();
    let hook: WriteHook = Arc::new(|ev: &WriteEvent<'_>| match ev {
        WriteEvent::ManifestWritten { .. } => Err(std::io::Error::other("disk full")),
        _ => Ok(()),
    });
    let store = LocalFs::new(run.path()).unwrap().with_hook(hook);
    let dir = CheckpointDir::with_store(Arc::new(store)).unwrap();
    let mut writer = AsyncCheckpointer::new(dir);
    writer.submit(1, state(1, 10), meta(None)).unwrap();
    let err = writer.wait().unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
}

// ---- A real writer process, SIGKILLed while saving. ----

const CHILD_ENV: &str = "VIGIL_TEST_CKPT_CHILD_RUN";

/// Not a test on its own: the body of the child process `sigkill_*` spawns. It
/// resumes like a restarted worker, then saves 3 × 4 MiB checkpoints forever.
#[test]
#[ignore = "child process of a_writer_killed_mid_save_leaves_latest_complete"]
fn child_writer_loop() {
    let Ok(run) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = CheckpointDir::new(Path::new(&run)).unwrap().with_retention(
        RetentionPolicy {
            keep_last: 2,
            keep_best: 0,
            mode: Ranking::HigherFirst,
        },
        None,
    );
    let mut step = match dir.resume().unwrap() {
        Some(found) => {
            // Bit-exact: the bytes read back are the bytes this step wrote.
            for (name, bytes) in state(found.step, 4 << 20) {
                assert_eq!(found.checkpoint.files[&name], bytes);
            }
            found.step
        }
        None => 0,
    };
    // Bounded, so an orphaned child (the parent test died) stops by itself.
    let stop = Instant::now() + Duration::from_secs(30);
    while Instant::now() < stop {
        step += 1;
        dir.save(step, &state(step, 4 << 20), meta(None)).unwrap();
    }
}

/// Kills and reaps the child when dropped, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_writer_killed_mid_save_leaves_latest_complete() {
    let run = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let ck = run.path().join("checkpoints");
    let mut killed_mid_write = 0;
    let rounds = 8;
    for round in 0..rounds {
        let mut child = KillOnDrop(
            Command::new(&exe)
                .args([
                    "--exact",
                    "checkpoint_resume::child_writer_loop",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_ENV, run.path())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        // Let it resume and save at least one new checkpoint, then kill it at a
        // varying moment of its save loop.
        let before = CheckpointDir::open_read_only(Arc::new(LocalFs::new(&ck).unwrap()))
            .latest_pointer()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "child made no progress");
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!("child exited early: {status}");
            }
            let now = std::fs::read_to_string(ck.join("LATEST")).ok();
            if now.is_some()
                && now.as_deref().map(str::trim) != before.map(|s| format!("step-{s}")).as_deref()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis((round as u64 * 37) % 120));
        // SIGKILL: no destructor, no cleanup, like the OOM killer.
        child.0.kill().unwrap();
        child.0.wait().unwrap();

        let staging = std::fs::read_dir(&ck)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        if staging > 0 {
            killed_mid_write += 1;
        }
        // What a restarted worker sees: LATEST names a complete checkpoint.
        let reader = CheckpointDir::open_read_only(Arc::new(LocalFs::new(&ck).unwrap()));
        let found = reader.latest_valid().unwrap().expect("a checkpoint exists");
        assert!(
            found.warnings.is_empty(),
            "round {round}: LATEST was not usable: {:?}",
            found.warnings
        );
        let loaded = reader.load(found.step).unwrap();
        assert_eq!(loaded.files["rng.json"], state(found.step, 4 << 20)[2].1);
        eprintln!(
            "round {round}: killed; LATEST = step-{} verified; staging leftovers: {staging}",
            found.step
        );
    }
    eprintln!("killed during a write (staging left behind) in {killed_mid_write}/{rounds} rounds");
}
