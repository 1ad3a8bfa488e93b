//! Checkpoint and export throughput, printed (no assertions).
//!
//! `cargo bench -p vigil-store --bench checkpoint [-- MODEL_MB [ROUNDS]]`
//!
//! Default sizes are those of the all-MiniLM-L6-v2 text tower (22.7M f32
//! parameters): 91 MB of weights plus 182 MB of AdamW moments per checkpoint, and
//! a 91 MB `model.safetensors` per export. Figures: synchronous save (write +
//! fsync + rename), verification (re-hash), resume (read + verify), the stall an
//! [`AsyncCheckpointer`] causes when the caller keeps "training", and export
//! publish / newest-complete discovery. Writes to a temporary directory under
//! `$VIGIL_BENCH_DIR` (default: the system temp dir) and removes it.

use std::time::{Duration, Instant};

use vigil_store::checkpoint::{
    AsyncCheckpointer, CheckpointDir, CheckpointMeta, Files, Ranking, RetentionPolicy,
};
use vigil_store::repo::{EXPORT_FILES, ModelRepo};

fn blob(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn checkpoint(model: usize, seed: u64) -> Files {
    vec![
        ("model.mpk".into(), blob(model, seed)),
        ("optim.mpk".into(), blob(2 * model, seed + 1)),
        ("rng.json".into(), b"{\"state\": [1,2,3]}".to_vec()),
    ]
}

fn meta() -> CheckpointMeta {
    CheckpointMeta {
        step: 0,
        config_sha256: String::new(),
        metrics: Default::default(),
        extra: serde_json::Value::Null,
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let model_mb: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(91);
    let rounds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let model = model_mb * 1_000_000;
    let base = std::env::var_os("VIGIL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(base).expect("temp dir");
    println!(
        "checkpoint of {} MB (model {model_mb} MB + AdamW moments), {rounds} rounds, in {}",
        3 * model_mb,
        tmp.path().display()
    );

    let dir = CheckpointDir::new(tmp.path()).unwrap().with_retention(
        RetentionPolicy {
            keep_last: 2,
            keep_best: 0,
            mode: Ranking::HigherFirst,
        },
        None,
    );
    let states: Vec<Files> = (0..rounds).map(|r| checkpoint(model, r)).collect();
    let bytes: u64 = states[0].iter().map(|(_, b)| b.len() as u64).sum();

    for (r, files) in states.iter().enumerate() {
        let t = Instant::now();
        dir.save(r as u64 + 1, files, meta()).unwrap();
        let d = t.elapsed();
        println!(
            "sync save   step {}: {d:>10.1?}  {:>7.0} MB/s",
            r + 1,
            mbps(bytes, d)
        );
    }
    let t = Instant::now();
    let found = dir.latest_valid().unwrap().unwrap();
    let d = t.elapsed();
    println!(
        "verify      step {}: {d:>10.1?}  {:>7.0} MB/s (re-hash from page cache)",
        found.step,
        mbps(bytes, d)
    );
    let t = Instant::now();
    let resumed = dir.resume().unwrap().unwrap();
    let d = t.elapsed();
    println!(
        "resume      step {}: {d:>10.1?}  {:>7.0} MB/s (read + verify)",
        resumed.step,
        mbps(bytes, d)
    );
    drop(resumed);

    // Background saves while the caller "trains" for longer than a write takes.
    let step_time = Duration::from_millis(100);
    let steps_between = 20u64;
    let mut writer = AsyncCheckpointer::new(dir.clone());
    let mut reports = Vec::new();
    let t = Instant::now();
    for (r, files) in states.into_iter().enumerate() {
        reports.extend(writer.submit(100 + r as u64, files, meta()).unwrap());
        for _ in 0..steps_between {
            std::thread::sleep(step_time);
        }
    }
    reports.extend(writer.finish().unwrap());
    let wall = t.elapsed();
    for r in &reports {
        println!(
            "async save  step {}: write {:>10.1?}, caller stalled {:>10.1?}",
            r.save.step, r.save.elapsed, r.stall
        );
    }
    // And back to back, where the second save must wait for the first.
    let mut writer = AsyncCheckpointer::new(dir.clone());
    let a = checkpoint(model, 77);
    let b = checkpoint(model, 78);
    writer.submit(200, a, meta()).unwrap();
    let first = writer.submit(201, b, meta()).unwrap().unwrap();
    let second = writer.finish().unwrap().unwrap();
    println!(
        "async back-to-back: first stalled {:.1?}, second stalled {:.1?} (waited for the first write of {:.1?}); {} step sleeps took {wall:.1?}",
        first.stall,
        second.stall,
        first.save.elapsed,
        rounds * steps_between
    );

    // Exports.
    let repo = ModelRepo::new(&tmp.path().join("export"), "moderation").unwrap();
    let export: Files = EXPORT_FILES
        .iter()
        .map(|n| {
            let b = if *n == "model.safetensors" {
                blob(model, 9)
            } else {
                b"{}".to_vec()
            };
            (n.to_string(), b)
        })
        .collect();
    for _ in 0..rounds {
        let t = Instant::now();
        let v = repo.publish(&export, serde_json::Value::Null).unwrap();
        let d = t.elapsed();
        println!(
            "export publish v{}: {d:>10.1?}  {:>7.0} MB/s",
            v.version,
            mbps(model as u64, d)
        );
        repo.prune(2).unwrap();
    }
    let t = Instant::now();
    let newest = repo.newest_complete().unwrap().unwrap();
    println!(
        "newest_complete -> v{} (verified): {:.1?}",
        newest.version.version,
        t.elapsed()
    );
}
