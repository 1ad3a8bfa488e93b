//! Costs of TensorBoard logging on the training thread, printed as figures:
//! histogram bucketing (weights of a MiniLM-sized model are 22.7M values), PR
//! curves, and writing scalar events.
//!
//! `cargo bench -p vigil-tensorboard --bench tensorboard` (release), or quicker and
//! slower-running: `cargo test -p vigil-tensorboard --bench tensorboard`.

use std::hint::black_box;
use std::time::Instant;

use vigil_tensorboard::{Histogram, MetricLogger, TensorBoardLogger, WriterOptions, compute_curve};

fn time<T>(what: &str, per: f64, unit: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what:<48} {:>9.1} ms  {:>8.1} {unit}",
        secs * 1e3,
        per / secs / 1e6
    );
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    };
    for n in [1_000_000usize, 22_700_000] {
        let values: Vec<f32> = (0..n).map(|_| next()).collect();
        let h = time(
            &format!("histogram of {n} f32"),
            n as f64,
            "M values/s",
            || Histogram::from_values(black_box(&values)),
        );
        black_box(h);
    }
    let n = 100_000;
    let labels: Vec<bool> = (0..n).map(|i| i % 7 == 0).collect();
    let scores: Vec<f32> = (0..n).map(|_| next() + 0.5).collect();
    let c = time(
        "PR curve, 100k examples, 51 thresholds",
        n as f64,
        "M examples/s",
        || compute_curve(black_box(&labels), black_box(&scores), 51),
    )?;
    black_box(c);

    let dir = std::env::temp_dir().join(format!("vigil-tb-bench-{}", std::process::id()));
    let mut logger = TensorBoardLogger::open(&dir, WriterOptions::default())?;
    let steps = 100_000u64;
    time(
        "100k steps x 12 scalars, one event each",
        (steps * 12) as f64,
        "M scalars/s",
        || {
            for step in 0..steps {
                let values: Vec<(&str, f64)> =
                    (0..12).map(|_| ("train/loss", step as f64)).collect();
                logger.scalars(step, &values)?;
            }
            logger.flush()
        },
    )?;
    let bytes = std::fs::metadata(logger.path())?.len();
    println!(
        "event file: {:.1} bytes per scalar",
        bytes as f64 / (steps * 12) as f64
    );
    drop(logger);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
