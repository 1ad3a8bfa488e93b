//! Serving exports: a reader polling the model repository during repeated
//! publishes and prunes never sees an incomplete version; concurrent writers get
//! distinct, increasing versions; the gate publishes only a better challenger and
//! says why in `export-decision.json`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vigil_config::{Gate, MonitorMode};
use vigil_eval::{Champion, DECISION_FILE, Decision, Outcome, decide};
use vigil_store::checkpoint::{Files, MANIFEST_FILE, StoreError, load_dir};
use vigil_store::repo::{EXPORT_FILES, ModelRepo};

fn export_files(tag: u64, model_bytes: usize) -> Files {
    EXPORT_FILES
        .iter()
        .map(|name| {
            let bytes = if *name == "model.safetensors" {
                (0..model_bytes).map(|i| (i as u64 ^ tag) as u8).collect()
            } else {
                format!("{{\"file\": \"{name}\", \"tag\": {tag}}}").into_bytes()
            };
            (name.to_string(), bytes)
        })
        .collect()
}

/// What a serving process that does not use this crate checks: numbered
/// directories only, every file present, manifest present.
fn serving_view(dir: &Path) -> Vec<(u64, Vec<String>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(v) = name.parse::<u64>() else { continue };
        let missing: Vec<String> = EXPORT_FILES
            .iter()
            .chain([&MANIFEST_FILE])
            .filter(|f| !e.path().join(f).is_file())
            .map(|f| f.to_string())
            .collect();
        // A version removed by pruning between listing and checking is fine.
        if !missing.is_empty() && e.path().exists() {
            out.push((v, missing));
        }
    }
    out
}

#[test]
fn a_polling_reader_never_sees_an_incomplete_version() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = ModelRepo::new(tmp.path(), "moderation").unwrap();
    let model_dir = tmp.path().join("moderation");
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let repo = repo.clone();
        let done = done.clone();
        let model_dir = model_dir.clone();
        std::thread::spawn(move || {
            let (mut polls, mut verified, mut newest_seen) = (0u64, 0u64, 0u64);
            while !done.load(Ordering::Acquire) {
                polls += 1;
                let bad = serving_view(&model_dir);
                assert!(bad.is_empty(), "incomplete versions visible: {bad:?}");
                for v in repo.versions().unwrap() {
                    match repo.version(v) {
                        Ok(_) => verified += 1,
                        Err(e) => {
                            // Only a version pruned while being read may fail.
                            assert!(
                                !repo.store().has_entry(&v.to_string()).unwrap(),
                                "version {v} is visible but does not verify: {e}"
                            );
                        }
                    }
                }
                if let Some(newest) = repo.newest_complete().unwrap() {
                    assert!(newest.skipped.is_empty(), "{:?}", newest.skipped);
                    let v = newest.version.version;
                    assert!(
                        v >= newest_seen,
                        "newest went back from {newest_seen} to {v}"
                    );
                    newest_seen = v;
                }
            }
            (polls, verified, newest_seen)
        })
    };

    for i in 0..30u64 {
        let published = repo
            .publish(&export_files(i, 256 << 10), serde_json::json!({"step": i}))
            .unwrap();
        assert_eq!(published.version, i + 1);
        assert_eq!(published.manifest.meta["version"], i + 1);
        repo.prune(3).unwrap();
    }
    done.store(true, Ordering::Release);
    let (polls, verified, newest_seen) = reader.join().unwrap();
    eprintln!("reader: {polls} polls, {verified} versions verified, newest seen {newest_seen}");
    assert!(polls > 1);
    assert_eq!(repo.versions().unwrap(), vec![28, 29, 30]);
    let names: Vec<String> = std::fs::read_dir(&model_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn two_writers_get_distinct_increasing_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let repo = ModelRepo::new(tmp.path(), "m").unwrap();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..12u64 {
                    let v = repo
                        .publish(&export_files(w * 100 + i, 1024), serde_json::Value::Null)
                        .unwrap()
                        .version;
                    if let Some(&prev) = mine.last() {
                        assert!(v > prev, "writer {w}: {v} after {prev}");
                    }
                    mine.push(v);
                }
                mine
            })
        })
        .collect();
    let all: Vec<u64> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), 24);
    assert_eq!(distinct, (1..=24).collect());
}

#[test]
fn newest_complete_skips_a_damaged_version_and_prune_keeps_it_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = ModelRepo::new(tmp.path(), "m").unwrap();
    for i in 0..3 {
        repo.publish(&export_files(i, 4096), serde_json::Value::Null)
            .unwrap();
    }
    // Damage the newest version behind the writer's back (disk corruption).
    let model = tmp.path().join("m/3/model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let newest = repo.newest_complete().unwrap().unwrap();
    assert_eq!(newest.version.version, 2);
    assert_eq!(newest.skipped.len(), 1);
    assert!(
        newest.skipped[0]
            .1
            .to_string()
            .contains("model.safetensors")
    );
    // keep 1 would delete 2, the newest complete version: it is protected.
    assert_eq!(repo.prune(1).unwrap(), vec![1]);
    assert_eq!(repo.versions().unwrap(), vec![2, 3]);
}

#[test]
fn an_export_missing_a_required_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = ModelRepo::new(tmp.path(), "m").unwrap();
    let mut files = export_files(0, 10);
    files.retain(|(n, _)| n != "thresholds.json");
    let err = repo.publish(&files, serde_json::Value::Null).unwrap_err();
    assert!(
        matches!(&err, StoreError::MissingRequiredFile { file } if file == "thresholds.json"),
        "{err}"
    );
    assert!(repo.versions().unwrap().is_empty());
}

/// The flow a scheduled retraining run follows at export time, with scores the
/// training loop would compute by evaluating both models on the same data.
fn gated_export(
    repo: &ModelRepo,
    out: &Path,
    gate: &Gate,
    score_of: fn(u64) -> f64,
    new: f64,
) -> Decision {
    let champion = match repo.newest_complete().unwrap() {
        None => Champion::None,
        Some(n) => Champion::Scored {
            version: n.version.version,
            score: score_of(n.version.version),
        },
    };
    let mut decision = decide(Some(gate), &champion, Some(new));
    if decision.published {
        let v = repo
            .publish(&export_files(7, 64), serde_json::json!({"score": new}))
            .unwrap();
        decision.published_version = Some(v.version);
    }
    decision.write(out).unwrap();
    decision
}

#[test]
fn the_gate_publishes_a_better_challenger_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let repo = ModelRepo::new(&tmp.path().join("export"), "moderation").unwrap();
    let gate = Gate {
        metric: "val/macro_auprc".into(),
        mode: MonitorMode::Max,
        min_delta: 0.01,
    };
    // Scores of published versions on the shared validation data.
    let score_of = |v: u64| [0.0, 0.80, 0.86][v as usize];

    let first = gated_export(&repo, &out, &gate, score_of, 0.80);
    assert_eq!(
        (first.outcome, first.published_version),
        (Outcome::FirstVersion, Some(1))
    );

    let worse = gated_export(&repo, &out, &gate, score_of, 0.805);
    assert!(!worse.published);
    assert_eq!(
        repo.versions().unwrap(),
        vec![1],
        "a worse model was published"
    );
    let on_disk = Decision::read(&out.join(DECISION_FILE)).unwrap();
    assert_eq!(on_disk.outcome, Outcome::NotBetter);
    assert_eq!(on_disk.champion_version, Some(1));
    assert_eq!(on_disk.champion_score, Some(0.80));
    assert_eq!(on_disk.challenger_score, Some(0.805));
    assert!(
        on_disk.reason.contains("min_delta 0.01"),
        "{}",
        on_disk.reason
    );
    assert!(worse.summary().contains("challenger rejected"));

    let better = gated_export(&repo, &out, &gate, score_of, 0.86);
    assert!(better.published);
    assert_eq!(better.published_version, Some(2));
    assert_eq!(repo.versions().unwrap(), vec![1, 2]);
    let on_disk = Decision::read(&out.join(DECISION_FILE)).unwrap();
    assert_eq!(on_disk.outcome, Outcome::Better);

    // Warm start from the published version: verified files, weights included.
    let (manifest, files) = load_dir(&tmp.path().join("export/moderation/2").into()).unwrap();
    assert_eq!(manifest.meta["version"], 2);
    assert!(files.contains_key("model.safetensors"));
}
