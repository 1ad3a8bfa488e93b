//! Whole training runs of `configs/tiny.yaml` through `vigil launch` with real
//! worker processes: the loss falls, replicas stay identical, the evaluation
//! report is complete, runs are reproducible, and 2 workers at batch B compute
//! the gradient 1 worker computes at batch 2B.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(240);
const LABELS: [&str; 5] = util::TINY_LABELS;

/// Runs `vigil launch configs/tiny.yaml` into `dir` with extra overrides; returns
/// the JSON progress records rank 0 printed.
fn launch(dir: &Path, nproc: u32, extra: &[&str]) -> Vec<Value> {
    let out = util::run_with_timeout(&mut util::tiny_launch(dir, nproc, extra), LIMIT);
    let (so, se) = util::texts(&out);
    assert!(
        out.status.success(),
        "vigil launch failed\nstdout:\n{so}\nstderr:\n{se}"
    );
    util::train_records(&so)
}

fn losses(records: &[Value]) -> Vec<(u64, f64)> {
    records
        .iter()
        .map(|r| (r["step"].as_u64().unwrap(), r["loss"].as_f64().unwrap()))
        .collect()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn two_workers_learn_and_write_a_complete_evaluation_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let recs = launch(
        &dir,
        2,
        &[
            "train.epochs=6",
            "train.max_steps=240",
            "train.eval_every=120",
            "logging.interval=20",
        ],
    );
    let l = losses(&recs);
    assert_eq!(l.last().unwrap().0, 240, "{l:?}");
    let first = (l[0].1 + l[1].1) / 2.0;
    let last = (l[l.len() - 1].1 + l[l.len() - 2].1) / 2.0;
    assert!(last < first * 0.9, "loss did not fall: {l:?}");

    // Replica checksums are compared at every evaluation; a divergence fails the
    // run, so reaching the final report proves the replicas stayed identical.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval/step-240.json")).unwrap())
            .unwrap();
    let labels = report["report"]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), LABELS.len());
    for (m, name) in labels.iter().zip(LABELS) {
        assert_eq!(m["label"], name);
        for k in util::LABEL_METRICS {
            assert!(
                m.get(k).is_some_and(|v| !v.is_null()),
                "{name}: missing {k}"
            );
        }
    }
    for avg in ["macro_avg", "micro_avg"] {
        for k in [
            "precision",
            "recall",
            "f1",
            "f1_at_best",
            "auroc",
            "auprc",
            "ece",
        ] {
            assert!(report["report"][avg].get(k).is_some(), "{avg}.{k}");
        }
    }
    let auroc = report["report"]["macro_avg"]["auroc"].as_f64().unwrap();
    assert!(auroc > 0.6, "macro AUROC {auroc}");
    // The exported version and its tuned thresholds.
    let thresholds: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("export/tiny/1/thresholds.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(thresholds.as_object().unwrap().len(), LABELS.len());
}

#[test]
fn two_runs_with_one_config_give_identical_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let a = launch(&tmp.path().join("a"), 2, &["logging.interval=1"]);
    let b = launch(&tmp.path().join("b"), 2, &["logging.interval=1"]);
    assert_eq!(losses(&a).len(), 40);
    assert_eq!(losses(&a), losses(&b));
}

#[test]
fn one_worker_at_2b_and_two_workers_at_b_take_the_same_first_gradient() {
    let tmp = tempfile::tempdir().unwrap();
    let grads = |nproc: u32, batch: u32| -> Vec<f32> {
        let dir = tmp.path().join(format!("w{nproc}"));
        let file: PathBuf = tmp.path().join(format!("grads-{nproc}.f32"));
        let mut cmd = util::vigil();
        cmd.env("VIGIL_DEBUG_FIRST_GRADS", &file)
            .args([
                "launch",
                "configs/tiny.yaml",
                "--nproc-per-node",
                &nproc.to_string(),
            ])
            .args(["--set", &format!("run.output_dir={}", dir.display())])
            .args(["--set", "export.dir=null", "--set", "train.max_steps=1"])
            .args([
                "--set",
                "optim.warmup_steps=0",
                "--set",
                "optim.grad_clip=null",
            ])
            .args(["--set", &format!("train.batch_size={batch}")]);
        let out = util::run_with_timeout(&mut cmd, LIMIT);
        assert!(out.status.success(), "{}", util::texts(&out).1);
        read_f32(&file)
    };
    let one = grads(1, 16);
    let two = grads(2, 8);
    assert_eq!(one.len(), two.len());
    let scale = one.iter().fold(0f32, |m, g| m.max(g.abs()));
    let diff = one
        .iter()
        .zip(&two)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(scale > 0.0);
    assert!(
        diff <= 1e-5 * scale.max(1.0),
        "max |Δgrad| {diff} (max |grad| {scale})"
    );
}
