//! The frozen-tower feature cache in real runs: with both towers of
//! `configs/tiny.yaml` frozen, the cached run writes one table per split and
//! tower, trains with the same per-step losses as a run that computes the towers
//! every step, and a second launch on the same run directory loads the tables
//! instead of computing them.

use crate::util;

use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);

/// Both towers frozen (tiny's text tower has no dropout, so its features are the
/// same in training and evaluation mode), a loss per step. Standardisation is off
/// for the comparison: it needs the cached statistics, so only a cached run has it.
const FROZEN: [&str; 5] = [
    "model.fusion.standardize=false",
    "model.text.train_layers=none",
    "model.image.train_layers=none",
    "logging.interval=1",
    "train.max_steps=20",
];

fn run(dir: &Path, extra: &[&str]) -> (String, String) {
    let mut overrides = FROZEN.to_vec();
    overrides.extend_from_slice(extra);
    let out = util::run_with_timeout(&mut util::tiny_launch(dir, 2, &overrides), LIMIT);
    let (so, se) = util::texts(&out);
    assert!(
        out.status.success(),
        "vigil launch failed\nstdout:\n{so}\nstderr:\n{se}"
    );
    (so, se)
}

fn losses(stdout: &str) -> Vec<f64> {
    util::train_records(stdout)
        .iter()
        .map(|r| r["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn cached_towers_train_like_computed_ones_and_a_relaunch_loads_the_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let cached = tmp.path().join("cached");
    let (so, se) = run(&cached, &[]);
    let all = format!("{so}{se}");
    for split in ["train", "val"] {
        for tower in ["text", "image"] {
            let file = cached
                .join("feature-cache")
                .join(format!("{split}-{tower}.safetensors"));
            assert!(file.is_file(), "{} missing\n{all}", file.display());
            assert!(
                all.contains(&format!("{tower} tower on {split} computed")),
                "no build line for {tower}/{split}\n{all}"
            );
        }
    }

    let computed = tmp.path().join("computed");
    let (so2, _) = run(&computed, &["train.feature_cache=false"]);
    assert!(!computed.join("feature-cache").exists());
    let (a, b) = (losses(&so), losses(&so2));
    assert_eq!(a.len(), 20, "{so}");
    assert_eq!(a.len(), b.len());
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "step {}: cached loss {x} vs computed {y}",
            step + 1
        );
    }
    assert!(
        a[15..].iter().sum::<f64>() < a[..5].iter().sum::<f64>(),
        "{a:?}"
    );

    // With standardisation (the default) the cached run trains as well.
    let std = tmp.path().join("standardized");
    let (so4, _) = run(&std, &["model.fusion.standardize=true"]);
    let c = losses(&so4);
    assert!(
        c[15..].iter().sum::<f64>() < c[..5].iter().sum::<f64>(),
        "{c:?}"
    );

    // The same run directory again (it resumes at its last step): the tables are
    // loaded, not computed.
    let (so3, se3) = run(&cached, &[]);
    let all = format!("{so3}{se3}");
    for split in ["train", "val"] {
        for tower in ["text", "image"] {
            assert!(
                all.contains(&format!("{tower} tower on {split} loaded")),
                "{tower}/{split} was not loaded\n{all}"
            );
        }
    }
}
