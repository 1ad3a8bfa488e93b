//! Whole training runs of `configs/tiny.yaml` through `vigil launch` with real
//! worker processes: the loss falls, replicas stay identical, the evaluation
//! report is complete, runs are reproducible, and 2 workers at batch B compute
//! the gradient 1 worker computes at batch 2B.

use crate::util;

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

/// The all-reduced first gradient of a 1-step run (the `test-hooks` dump).
fn first_grads(tmp: &Path, nproc: u32, batch: u32, accum: u32) -> Vec<f32> {
    let name = format!("w{nproc}-b{batch}-a{accum}");
    let dir = tmp.join(&name);
    let file: PathBuf = tmp.join(format!("grads-{name}.f32"));
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
            "train.eval_every=null",
            "--set",
            "checkpoint.every_steps=1",
        ])
        .args([
            "--set",
            "optim.warmup_steps=0",
            "--set",
            "optim.grad_clip=null",
        ])
        .args(["--set", &format!("train.batch_size={batch}")])
        .args(["--set", &format!("train.grad_accum={accum}")]);
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    assert!(out.status.success(), "{}", util::texts(&out).1);
    read_f32(&file)
}

fn assert_same_gradient(want: &[f32], got: &[f32], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}");
    let scale = want.iter().fold(0f32, |m, g| m.max(g.abs()));
    let diff = want
        .iter()
        .zip(got)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(scale > 0.0, "{what}: a zero gradient proves nothing");
    assert!(
        diff <= 1e-5 * scale.max(1.0),
        "{what}: max |Δgrad| {diff} (max |grad| {scale})"
    );
}

/// The step's gradient is the mean over every known label of the global batch,
/// however the batch is split over ranks and micro-batches.
#[test]
fn one_worker_at_2b_two_workers_at_b_and_two_micro_batches_of_b_take_the_same_first_gradient() {
    let tmp = tempfile::tempdir().unwrap();
    let one = first_grads(tmp.path(), 1, 16, 1);
    assert_same_gradient(&one, &first_grads(tmp.path(), 2, 8, 1), "2 workers × 8");
    assert_same_gradient(
        &one,
        &first_grads(tmp.path(), 1, 8, 2),
        "1 worker × grad_accum 2 × 8",
    );
    assert_same_gradient(
        &one,
        &first_grads(tmp.path(), 2, 4, 2),
        "2 workers × grad_accum 2 × 4",
    );
}

/// Gradients, the loss's counters and the stop flag share one all-reduce per
/// optimizer step, whatever `train.grad_accum` is (it was grad_accum + 3).
#[test]
fn an_optimizer_step_issues_one_collective_with_gradient_accumulation() {
    let tmp = tempfile::tempdir().unwrap();
    let recs = launch(
        &tmp.path().join("accum"),
        2,
        &[
            "train.grad_accum=2",
            "train.max_steps=6",
            "train.eval_every=null",
            "checkpoint.every_steps=null",
            "logging.interval=1",
        ],
    );
    assert_eq!(recs.len(), 6);
    for r in &recs {
        assert_eq!(r["collectives_per_step"].as_f64(), Some(1.0), "{r}");
    }
}

/// Every f32 tensor of a safetensors file, by name.
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .into_iter()
        .filter(|(k, v)| k != "__metadata__" && v["dtype"] == "F32")
        .map(|(k, v)| {
            let o = &v["data_offsets"];
            let (a, b) = (
                o[0].as_u64().unwrap() as usize,
                o[1].as_u64().unwrap() as usize,
            );
            let f = data[a..b]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (k, f)
        })
        .collect()
}

/// The largest |a - b| over every tensor of two weight files of one architecture.
fn max_weight_diff(a: &Path, b: &Path) -> f32 {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter()
        .flat_map(|(k, x)| x.iter().zip(&b[k]).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

/// `model.init_from` takes a verified export version's weights: a warm-started
/// run at a vanishing learning rate exports the weights it started from (a run
/// from the seeded initialisation does not), and a tampered copy is refused
/// before training (exit 2, naming the file).
#[test]
fn a_warm_start_takes_the_verified_weights_and_refuses_a_tampered_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    launch(&first, 2, &["train.max_steps=10", "train.eval_every=null"]);
    let version = first.join("export/tiny/1");
    let still = [
        "optim.lr=1e-12",
        "optim.head_lr=1e-12",
        "optim.warmup_steps=0",
        "train.max_steps=1",
        "train.eval_every=null",
        "checkpoint.every_steps=null",
    ];
    let warm = tmp.path().join("warm");
    let init = format!("model.init_from={}", version.display());
    launch(&warm, 2, &[&[init.as_str()][..], &still[..]].concat());
    let cold = tmp.path().join("cold");
    launch(&cold, 2, &still);
    let weights = |dir: &Path| dir.join("export/tiny/1/model.safetensors");
    let warm_diff = max_weight_diff(&weights(&first), &weights(&warm));
    let cold_diff = max_weight_diff(&weights(&first), &weights(&cold));
    assert!(
        warm_diff < 1e-6,
        "the warm start moved the weights by {warm_diff}"
    );
    assert!(
        cold_diff > 1e-3,
        "the seeded initialisation is {cold_diff} from the trained weights"
    );

    // One flipped byte in a copy of the version: its sha256 no longer matches.
    let tampered = tmp.path().join("tampered/7");
    std::fs::create_dir_all(&tampered).unwrap();
    for entry in std::fs::read_dir(&version).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tampered.join(entry.file_name())).unwrap();
    }
    let file = tampered.join("model.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let mut cmd = util::vigil();
    cmd.args(["worker", "configs/tiny.yaml"])
        .args([
            "--set",
            &format!("run.output_dir={}", tmp.path().join("third").display()),
        ])
        .args(["--set", "export.dir=null"])
        .args(["--set", &format!("model.init_from={}", tampered.display())]);
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    let (_, se) = util::texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(
        se.contains("model.init_from") && se.contains("model.safetensors"),
        "{se}"
    );
}
