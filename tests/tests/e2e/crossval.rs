//! `vigil crossval` with the real binary on the tiny config: every training row gets
//! exactly one out-of-fold score, from the fold that held it out; duplicates and
//! `--group-by` groups stay in one fold; and a crossval whose worker is SIGKILLed
//! mid-fold, or whose own process is SIGKILLed, resumes to byte-identical
//! out-of-fold scores; with a frozen tower, fold 0 computes the features and the
//! other folds gather theirs from its tables, bit for bit what they would compute.

use crate::util;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(240);

/// The sample's training rows, with a planted exact duplicate of row 0's text and
/// image (another id) and a `meta.user` shared by rows 5–9.
fn dataset(dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(util::repo_root().join("datasets/sample/train.jsonl")).unwrap();
    let mut out = String::new();
    let mut first: Option<serde_json::Value> = None;
    for (i, line) in text.lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if (5..10).contains(&i) {
            v["meta"] = serde_json::json!({"user": "u-shared"});
        }
        if i == 0 {
            first = Some(v.clone());
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let mut dup = first.unwrap();
    dup["id"] = "planted-duplicate".into();
    out.push_str(&dup.to_string());
    out.push('\n');
    let path = dir.join("train.jsonl");
    std::fs::write(&path, out).unwrap();
    path
}

/// Three folds, rows grouped by `meta.user`.
const FOLDS: [&str; 4] = ["--folds", "3", "--group-by", "meta.user"];

fn crossval(run: &Path, data: &Path, flags: &[&str]) -> Command {
    let mut cmd = util::vigil();
    cmd.args(["crossval", "configs/tiny.yaml"])
        .args(flags)
        .args(["--nproc-per-node", "2", "--max-restarts", "0"])
        .args(["--output-dir", &run.display().to_string()]);
    for o in [
        "logging.format=json",
        "logging.console=rank0",
        "train.max_steps=30",
        "train.eval_every=15",
        "checkpoint.every_steps=5",
        "model.head.dropout=0.2",
    ] {
        cmd.args(["--set", o]);
    }
    cmd.args(["--set", &format!("data.train={}", data.display())])
        .args([
            "--set",
            &format!(
                "data.image_root={}",
                util::repo_root().join("datasets/sample").display()
            ),
        ]);
    cmd
}

fn ok(out: &Output) -> String {
    let (so, se) = util::texts(out);
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    format!("{so}{se}")
}

fn oof(run: &Path) -> String {
    std::fs::read_to_string(run.join("oof.jsonl")).unwrap()
}

#[test]
fn every_training_row_gets_one_out_of_fold_score_and_groups_stay_together() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let run = tmp.path().join("cv");
    let log = ok(&util::run_with_timeout(
        &mut crossval(&run, &data, &FOLDS),
        LIMIT,
    ));
    assert!(log.contains("641 rows in 636 groups -> 3 folds"), "{log}");
    assert!(log.contains(" oof    641"), "{log}");

    let ids: Vec<String> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let rows: Vec<serde_json::Value> = oof(&run)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids, "out-of-fold rows must follow the training file");
    let fold_of: HashMap<&str, u64> = rows
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["fold"].as_u64().unwrap()))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            r["line"].as_u64(),
            Some(i as u64 + 1),
            "lines name the training file"
        );
        assert!(r["scores"]["spam"].is_number());
    }
    // The planted duplicate and the shared user stay in one fold each.
    assert_eq!(fold_of[ids[0].as_str()], fold_of["planted-duplicate"]);
    let user: HashSet<u64> = (5..10).map(|i| fold_of[ids[i].as_str()]).collect();
    assert_eq!(user.len(), 1, "meta.user rows straddle folds: {user:?}");

    // Each fold trained on the other folds' rows and scored its own.
    for f in 0..3u64 {
        let train =
            std::fs::read_to_string(run.join(format!("folds/fold-{f}.train.jsonl"))).unwrap();
        let val = std::fs::read_to_string(run.join(format!("folds/fold-{f}.val.jsonl"))).unwrap();
        let in_val = val.lines().count();
        assert_eq!(in_val, fold_of.values().filter(|&&x| x == f).count());
        assert_eq!(train.lines().count() + in_val, ids.len());
        for l in train.lines() {
            let id = serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            assert_ne!(
                fold_of[id.as_str()],
                f,
                "fold {f} trained on its own row {id}"
            );
        }
        assert!(run.join(format!("fold-{f}/tensorboard")).is_dir());
        assert!(run.join(format!("fold-{f}/heldout.scores.jsonl")).is_file());
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("crossval.json")).unwrap()).unwrap();
    assert_eq!(summary["k"], 3);
    assert_eq!(summary["rows"], 641);
    assert_eq!(summary["multi_class"], false);
    assert_eq!(summary["folds"].as_array().unwrap().len(), 3);
    assert!(summary["pooled_out_of_fold"]["macro_avg"]["auroc"].is_number());
    // The summary in TensorBoard beside the folds' runs.
    use vigil_trainer::logging::proto::event::What;
    use vigil_trainer::logging::{event_files, read_event_file};
    let mut tags = HashSet::new();
    for file in event_files(&run.join("tensorboard")).unwrap() {
        for ev in read_event_file(&file).unwrap() {
            if let Some(What::Summary(s)) = ev.what {
                tags.extend(s.value.into_iter().map(|v| v.tag));
            }
        }
    }
    for tag in [
        "crossval/macro_auroc",
        "crossval_oof/macro_auroc",
        "crossval/summary",
    ] {
        assert!(tags.contains(tag), "{tag} not in {tags:?}");
    }

    // Run again: every fold is done, nothing retrains, the same scores.
    let before = oof(&run);
    let log = ok(&util::run_with_timeout(
        &mut crossval(&run, &data, &FOLDS),
        LIMIT,
    ));
    assert_eq!(log.matches(": done").count(), 3, "{log}");
    assert_eq!(oof(&run), before);
}

/// A feature table's metadata and its tensors' bytes by name.
fn table(path: &Path) -> (serde_json::Value, HashMap<String, Vec<u8>>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let tensors = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, t)| {
            let at = |i: usize| t["data_offsets"][i].as_u64().unwrap() as usize;
            (name.clone(), data[at(0)..at(1)].to_vec())
        })
        .collect();
    (header["__metadata__"].clone(), tensors)
}

#[test]
fn a_frozen_tower_is_computed_by_fold_0_and_gathered_by_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let run = tmp.path().join("cv");
    let frozen = ["--set", "model.image.train_layers=none"];
    let flags: Vec<&str> = FOLDS.iter().chain(&frozen).copied().collect();
    let log = ok(&util::run_with_timeout(
        &mut crossval(&run, &data, &flags),
        LIMIT,
    ));
    let fold_log = |f: usize| {
        let start = log
            .find(&format!("vigil crossval: fold {f}: training"))
            .unwrap_or_else(|| panic!("fold {f} did not train\n{log}"));
        let rest = &log[start + 1..];
        &rest[..rest.find("vigil crossval: ").unwrap_or(rest.len())]
    };
    for split in ["train", "val"] {
        let line = format!("image tower on {split} computed");
        assert!(fold_log(0).contains(&line), "{line} in fold 0\n{log}");
        for f in [1, 2] {
            let line = format!("image tower on {split} gathered for ");
            assert!(fold_log(f).contains(&line), "{line} in fold {f}\n{log}");
            assert!(!fold_log(f).contains(" computed for "), "fold {f}\n{log}");
        }
    }
    // Fold 1's training rows are fold 0's held-out rows and fold 2's.
    assert!(fold_log(1).contains("from 2 tables"), "{}", fold_log(1));

    // The tower key does not depend on the rows; the table key does.
    let cache = |dir: &Path, split: &str| {
        table(&dir.join(format!("feature-cache/{split}-image.safetensors")))
    };
    let (m0, _) = cache(&run.join("fold-0"), "train");
    let (m1, _) = cache(&run.join("fold-1"), "train");
    assert_eq!(m0["tower_key"], m1["tower_key"]);
    assert_ne!(m0["key"], m1["key"]);

    // A fresh run on fold f's files computes exactly the tables fold f gathered.
    for f in [1, 2] {
        let fresh = tmp.path().join(format!("fresh-{f}"));
        let folds = run.join("folds");
        let sets = [
            format!(
                "data.train={}",
                folds.join(format!("fold-{f}.train.jsonl")).display()
            ),
            format!(
                "data.val={}",
                folds.join(format!("fold-{f}.val.jsonl")).display()
            ),
            format!(
                "data.image_root={}",
                util::repo_root().join("datasets/sample").display()
            ),
            "model.image.train_layers=none".into(),
            "train.max_steps=3".into(),
            "train.eval_every=null".into(),
            "checkpoint.every_steps=null".into(),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let out = ok(&util::run_with_timeout(
            &mut util::tiny_launch(&fresh, 2, &sets),
            LIMIT,
        ));
        for split in ["train", "val"] {
            assert!(
                out.contains(&format!("image tower on {split} computed")),
                "{out}"
            );
            let (gm, gt) = cache(&run.join(format!("fold-{f}")), split);
            let (fm, ft) = cache(&fresh, split);
            assert_eq!(gm, fm, "fold {f} {split}: keys");
            assert_eq!(gt.keys().len(), 2);
            for (name, bytes) in &gt {
                assert!(ft[name] == *bytes, "fold {f} {split}: {name} differs");
            }
        }
    }
}

#[test]
fn a_sigkill_anywhere_resumes_to_identical_out_of_fold_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let reference = tmp.path().join("reference");
    ok(&util::run_with_timeout(
        &mut crossval(&reference, &data, &FOLDS),
        LIMIT,
    ));
    let want = oof(&reference);

    // A worker SIGKILLed after step 12 of fold 0 (no restarts left): the crossval
    // stops with the fold's failure; run again, it resumes from step 10.
    let killed = tmp.path().join("worker-killed");
    let mut cmd = crossval(&killed, &data, &FOLDS);
    cmd.env("VIGIL_DEBUG_KILL_AT_STEP", "12")
        .env("VIGIL_DEBUG_KILL_RANK", "1");
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    assert!(!out.status.success(), "{}", util::texts(&out).1);
    assert!(!killed.join("oof.jsonl").exists());
    let log = ok(&util::run_with_timeout(
        &mut crossval(&killed, &data, &FOLDS),
        LIMIT,
    ));
    assert!(log.contains("resuming from checkpoint step 10"), "{log}");
    assert_eq!(
        oof(&killed),
        want,
        "out-of-fold scores after a worker SIGKILL differ"
    );

    // The crossval process itself SIGKILLed once fold 1 has started (wherever it
    // is by then), and run again.
    let dead = tmp.path().join("crossval-killed");
    let mut cmd = crossval(&dead, &data, &FOLDS);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while !dead.join("fold-1/checkpoints").exists() && child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < LIMIT, "fold 1 never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    // The orphan guard takes the workers down with the launcher.
    std::thread::sleep(Duration::from_millis(500));
    ok(&util::run_with_timeout(
        &mut crossval(&dead, &data, &FOLDS),
        LIMIT,
    ));
    assert_eq!(
        oof(&dead),
        want,
        "out-of-fold scores after a crossval SIGKILL differ"
    );
}

#[test]
fn crossval_refuses_a_group_field_outside_meta_and_more_folds_than_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let run = tmp.path().join("cv");
    let out = util::run_with_timeout(&mut crossval(&run, &data, &["--group-by", "user"]), LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", util::texts(&out).1);
    assert!(
        util::texts(&out)
            .1
            .contains("--group-by 'user': expected meta.FIELD")
    );

    // Five rows, four of them one user's: two groups cannot make five folds.
    let small = tmp.path().join("small.jsonl");
    let rows: Vec<String> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .skip(4)
        .take(5)
        .map(String::from)
        .collect();
    std::fs::write(&small, rows.join("\n") + "\n").unwrap();
    let out = util::run_with_timeout(
        &mut crossval(&run, &small, &["--folds", "5", "--group-by", "meta.user"]),
        LIMIT,
    );
    let (_, se) = util::texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(
        se.contains("--folds 5 needs at least 5 groups of rows, but the 5 rows form 2"),
        "{se}"
    );
    assert!(
        !run.join("fold-0").exists(),
        "nothing trains after a refusal"
    );
}

/// Copies `dir` (a flat folder of files) into `to`.
fn copy_dir(dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn the_whole_loop_reports_a_planted_conflicting_duplicate_and_folds_its_review_back() {
    let tmp = tempfile::tempdir().unwrap();
    // The dataset beside its images (as `vigil embed` wants them), with row 1's text
    // and image again under another id and the opposite `spam` label.
    copy_dir(
        &util::repo_root().join("datasets/sample/img"),
        &tmp.path().join("img"),
    );
    let data = dataset(tmp.path());
    let mut text = std::fs::read_to_string(&data).unwrap();
    let mut twin: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let original = twin["id"].as_str().unwrap().to_string();
    assert_eq!(twin["labels"]["spam"], 1);
    twin["id"] = "planted-twin".into();
    twin["labels"]["spam"] = 0.into();
    text.push_str(&format!("{twin}\n"));
    std::fs::write(&data, text).unwrap();

    let run = tmp.path().join("cv");
    let mut cmd = crossval(&run, &data, &FOLDS);
    cmd.args([
        "--export-folds",
        "--set",
        &format!("data.image_root={}", tmp.path().display()),
    ]);
    ok(&util::run_with_timeout(&mut cmd, LIMIT));
    let oof_rows = oof(&run);
    let fold_of = |id: &str| {
        oof_rows
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["id"] == id)
            .unwrap()["fold"]
            .clone()
    };
    assert_eq!(
        fold_of("planted-twin"),
        fold_of(&original),
        "exact twins share a fold"
    );

    let emb = tmp.path().join("emb.jsonl");
    let mut cmd = util::vigil();
    cmd.args(["embed", "--model"])
        .arg(run.join("fold-0/export/tiny/1"))
        .arg("--input")
        .arg(&data)
        .arg("--output")
        .arg(&emb);
    ok(&util::run_with_timeout(&mut cmd, LIMIT));

    let issues = tmp.path().join("issues.jsonl");
    let mut cmd = util::vigil();
    cmd.args(["datasets", "issues", "--scores"])
        .arg(run.join("oof.jsonl"))
        .arg("--embeddings")
        .arg(&emb)
        .arg("--out")
        .arg(&issues)
        .arg("--html")
        .arg(tmp.path().join("issues.html"));
    ok(&util::run_with_timeout(&mut cmd, LIMIT));
    let flagged: Vec<serde_json::Value> = std::fs::read_to_string(&issues)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let conflict = flagged
        .iter()
        .flat_map(|r| {
            r["issues"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |i| (r["id"].as_str().unwrap(), i))
        })
        .find(|(id, i)| {
            i["kind"] == "conflicting_duplicate"
                && ((*id == "planted-twin" && i["with"] == original.as_str())
                    || (*id == original && i["with"] == "planted-twin"))
        });
    assert!(
        conflict.is_some(),
        "the planted twin is not reported: {flagged:?}"
    );
    let page = std::fs::read_to_string(tmp.path().join("issues.html")).unwrap();
    assert!(page.contains("planted-twin"));

    // Queue it, review the twin (the same message as its spam original), fold it back.
    let queue = tmp.path().join("queue.jsonl");
    let mut cmd = util::vigil();
    let budget = flagged.len().to_string();
    cmd.args(["queue", "--budget", &budget, "--data"])
        .arg(&data)
        .arg("--issues")
        .arg(&issues)
        .arg("--out")
        .arg(&queue);
    ok(&util::run_with_timeout(&mut cmd, LIMIT));
    let queued = std::fs::read_to_string(&queue).unwrap();
    assert!(queued.contains("\"planted-twin\"") || queued.contains(&format!("\"{original}\"")));
    assert!(queued.contains("conflicting_duplicate"), "{queued}");
    let reviews = tmp.path().join("reviews.jsonl");
    std::fs::write(
        &reviews,
        "{\"id\": \"planted-twin\", \"labels\": {\"spam\": 1}, \"rationale\": \"same message as its twin\", \"reviewer\": \"ops-1\"}\n",
    )
    .unwrap();
    let fixed = tmp.path().join("fixed.jsonl");
    let mut cmd = util::vigil();
    cmd.args(["datasets", "apply-labels", "--data"])
        .arg(&data)
        .arg("--reviews")
        .arg(&reviews)
        .arg("--out")
        .arg(&fixed);
    ok(&util::run_with_timeout(&mut cmd, LIMIT));
    let row: serde_json::Value = std::fs::read_to_string(&fixed)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["id"] == "planted-twin")
        .unwrap();
    assert_eq!(row["labels"]["spam"], 1);
    assert_eq!(row["rationale"], "same message as its twin");
    assert_eq!(row["meta"]["provenance"][0]["by"], "ops-1");
    assert_eq!(row["meta"]["provenance"][0]["changes"]["spam"]["old"], 0);
}
