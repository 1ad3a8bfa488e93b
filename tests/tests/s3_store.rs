//! Object storage against a real S3-compatible server (moto's standalone server
//! with signature checks, started by `scripts/ci/s3.sh`), over HTTP on loopback
//! with signed requests:
//!  - a 2-worker tiny run with `data.*`, `run.output_dir` and `export.dir` on
//!    `s3://`, rank 1 SIGKILLed after step 25: the launcher restarts the group, it
//!    resumes from the bucket's step-20 checkpoint, and the exported
//!    `model.safetensors` equals a local uninterrupted run's; `vigil predict
//!    --model s3://…` scores from the bucket;
//!  - two concurrent `vigil export`s into one bucket model repository (and two
//!    threads racing through the library, multipart-sized files): distinct, complete
//!    versions, while a polling reader never gets one that does not verify;
//!  - wrong credentials, a server that is down and one that never answers: errors
//!    naming the URL after bounded retries, nothing partial left visible.
//!
//! Ignored by default (they need the server): `scripts/ci/s3.sh` runs them with
//! `--include-ignored`, exporting `VIGIL_TEST_S3_BUCKET` and the `AWS_*`
//! environment. Without that bucket they print why they skip, and fail under CI=1.

#[path = "common/serve_util.rs"]
mod serve_util;
#[path = "common/util.rs"]
mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vigil_store::checkpoint::{IfExists, Store, WriteEvent, verify};
use vigil_store::repo::ModelRepo;
use vigil_store::storage::{Bucket, ObjectStoreStore, RemoteUrl};

const LIMIT: Duration = Duration::from_secs(300);

/// The store under test: `s3` (moto), or `az` (Azurite) when
/// `VIGIL_TEST_STORE_SCHEME=az` (the second pass of `scripts/ci/s3.sh`).
fn scheme() -> String {
    std::env::var("VIGIL_TEST_STORE_SCHEME").unwrap_or_else(|_| "s3".into())
}

/// The environment variables naming the server's endpoint and the secret, for
/// the store under test.
fn endpoint_and_secret_vars() -> (&'static str, &'static str) {
    match scheme().as_str() {
        "az" => ("AZURITE_BLOB_STORAGE_URL", "AZURE_STORAGE_ACCOUNT_KEY"),
        _ => ("AWS_ENDPOINT_URL", "AWS_SECRET_ACCESS_KEY"),
    }
}

/// A fresh prefix in the test bucket, or `None` (skip) without one.
fn prefix_or_skip(test: &str) -> Option<RemoteUrl> {
    match std::env::var("VIGIL_TEST_S3_BUCKET") {
        Ok(bucket) if !bucket.is_empty() => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            Some(RemoteUrl {
                scheme: scheme(),
                bucket,
                prefix: format!("{test}-{}-{nanos}", std::process::id()),
            })
        }
        _ => {
            assert!(
                !util::in_ci(),
                "{test}: VIGIL_TEST_S3_BUCKET is not set under CI (scripts/ci/s3.sh sets it)"
            );
            eprintln!(
                "skipping {test}: VIGIL_TEST_S3_BUCKET is not set (scripts/ci/s3.sh starts an \
                 S3 server and runs these tests)"
            );
            None
        }
    }
}

fn upload_dir(local: &Path, bucket: &Bucket, key: &str) {
    for item in std::fs::read_dir(local).unwrap() {
        let item = item.unwrap();
        let name = item.file_name().to_string_lossy().to_string();
        let sub = if key.is_empty() {
            name.clone()
        } else {
            format!("{key}/{name}")
        };
        if item.path().is_dir() {
            upload_dir(&item.path(), bucket, &sub);
        } else {
            bucket
                .put(&sub, std::fs::read(item.path()).unwrap())
                .unwrap();
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn get(url: &RemoteUrl, key: &str) -> Option<Vec<u8>> {
    Bucket::open(url)
        .unwrap()
        .get(key)
        .unwrap()
        .map(|b| b.to_vec())
}

#[test]
#[ignore = "needs an S3 server: scripts/ci/s3.sh"]
fn s3_tiny_run_killed_resumes_from_the_bucket_and_exports_the_local_model() {
    let Some(base) = prefix_or_skip("e2e") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bucket = Bucket::open(&base).unwrap();
    upload_dir(&util::repo_root().join("datasets/sample"), &bucket, "data");

    let local = tmp.path().join("local");
    let out = util::run_with_timeout(&mut util::tiny_launch(&local, 2, &[]), LIMIT);
    assert!(out.status.success(), "{}", util::texts(&out).1);
    let want = std::fs::read(local.join("export/tiny/1/model.safetensors")).unwrap();

    let work = tmp.path().join("work");
    let mut cmd = util::vigil();
    cmd.args(["launch", "configs/tiny.yaml", "--max-restarts", "1"]);
    for set in [
        format!("run.output_dir={base}/run"),
        format!("export.dir={base}/export"),
        format!("data.train={base}/data/train.jsonl"),
        format!("data.val={base}/data/val.jsonl"),
        format!("run.local_dir={}", work.display()),
        "logging.console=rank0".to_string(),
    ] {
        cmd.args(["--set", &set]);
    }
    cmd.env("VIGIL_DEBUG_KILL_AT_STEP", "25")
        .env("VIGIL_DEBUG_KILL_RANK", "1");
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let log = format!("{so}{se}");
    assert!(log.contains("restart"), "no restart reported:\n{log}");
    assert!(
        log.contains("resuming from checkpoint step 20"),
        "not resumed from the bucket's checkpoint:\n{log}"
    );
    assert!(
        log.contains(&work.display().to_string()),
        "local dir not named:\n{log}"
    );
    // Nothing of the run directory went to a local directory named `s3:`.
    assert!(!util::repo_root().join("s3:").exists());

    let run = base.join("run").unwrap();
    let latest = get(&run, "checkpoints/LATEST").expect("LATEST in the bucket");
    assert_eq!(String::from_utf8_lossy(&latest).trim(), "step-40");
    let ckpts = ObjectStoreStore::new(Bucket::open(&run.join("checkpoints").unwrap()).unwrap());
    verify(&ckpts, "step-40").unwrap();
    assert!(get(&run, "config.resolved.yaml").is_some());
    assert!(get(&run, "eval/step-40.json").is_some());
    // TensorBoard events and logs stay in the local working directory.
    assert!(work.join("tensorboard").is_dir());
    assert!(work.join("logs/rank-0.log").is_file());

    let export = base.join("export/tiny").unwrap();
    let got = get(&export, "1/model.safetensors").expect("exported to the bucket");
    assert_eq!(
        sha256(&got),
        sha256(&want),
        "bucket run's model differs from the local run's"
    );
    verify(&ObjectStoreStore::new(Bucket::open(&export).unwrap()), "1").unwrap();

    let out = util::run_with_timeout(
        util::vigil().args([
            "predict",
            "--model",
            &export.to_string(),
            "--input",
            "datasets/sample/val.jsonl",
        ]),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{se}");
    let rows: Vec<serde_json::Value> = so
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty());
    assert!(
        rows[0]["scores"].is_object() || rows[0]["probabilities"].is_object(),
        "{}",
        rows[0]
    );

    // `vigil eval --model s3://…` scores the labelled file from the bucket.
    let out = util::run_with_timeout(
        util::vigil().args([
            "eval",
            "--model",
            &export.to_string(),
            "--data",
            "datasets/sample/val.jsonl",
        ]),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "vigil eval failed:\n{so}\n{se}");
    assert!(
        so.to_lowercase().contains("auroc"),
        "no metrics in the eval output:\n{so}"
    );

    // `vigil export --checkpoint s3://…/checkpoints/step-40`: the run's config and
    // its step-40 evaluation come from the bucket too, so the new version carries
    // the same weights and thresholds as the one training exported.
    let ckpt = run.join("checkpoints/step-40").unwrap();
    let out = util::run_with_timeout(
        util::vigil().args([
            "export",
            "--checkpoint",
            &ckpt.to_string(),
            "--repository",
            &export.to_string(),
        ]),
        LIMIT,
    );
    let (_, se) = util::texts(&out);
    assert!(
        out.status.success(),
        "vigil export --checkpoint failed:\n{se}"
    );
    assert!(se.contains("published version 2 (step 40)"), "{se}");
    verify(&ObjectStoreStore::new(Bucket::open(&export).unwrap()), "2").unwrap();
    assert_eq!(
        get(&export, "2/thresholds.json"),
        get(&export, "1/thresholds.json"),
        "the thresholds of the bucket's eval/step-40.json were not used"
    );
    let republished = get(&export, "2/model.safetensors").unwrap();
    assert_eq!(
        sha256(&republished),
        sha256(&want),
        "other weights exported"
    );
}

/// `vigil launch` of tiny (1 worker) with `run.output_dir` on the bucket and the
/// local working directory `work`.
fn bucket_launch(output: &RemoteUrl, work: &Path, overrides: &[&str]) -> (bool, String) {
    let mut cmd = util::tiny_launch(work, 1, overrides);
    cmd.args(["--set", &format!("run.output_dir={output}")])
        .args(["--set", &format!("run.local_dir={}", work.display())]);
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    let (so, se) = util::texts(&out);
    (out.status.success(), format!("{so}{se}"))
}

#[test]
#[ignore = "needs an S3 server: scripts/ci/s3.sh"]
fn s3_feature_cache_warm_start_resume_and_missing_objects_use_the_bucket() {
    let Some(base) = prefix_or_skip("paths") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = base.join("run").unwrap();
    let frozen = [
        "model.text.train_layers=none",
        "model.image.train_layers=none",
        "train.max_steps=10",
        "train.eval_every=10",
        "checkpoint.every_steps=10",
    ];
    // The tables are built and uploaded to `<output_dir>/feature-cache/`.
    let (ok, log) = bucket_launch(&run, &tmp.path().join("a"), &frozen);
    assert!(ok, "{log}");
    for split in ["train", "val"] {
        for tower in ["text", "image"] {
            let key = format!("feature-cache/{split}-{tower}.safetensors");
            assert!(get(&run, &key).is_some(), "{key} not on the bucket\n{log}");
            assert!(
                log.contains(&format!("{tower} tower on {split} computed")),
                "{log}"
            );
        }
    }
    assert!(
        log.contains(&format!("(uploaded to {}://", base.scheme)),
        "{log}"
    );
    // A relaunch on another machine (a fresh local directory) downloads them
    // instead of computing them.
    let (ok, log) = bucket_launch(&run, &tmp.path().join("b"), &frozen);
    assert!(ok, "{log}");
    for split in ["train", "val"] {
        for tower in ["text", "image"] {
            assert!(
                log.contains(&format!("{tower} tower on {split} loaded")),
                "{tower}/{split} not loaded from the bucket\n{log}"
            );
        }
    }
    assert!(
        log.contains(&format!("(downloaded from {}://", base.scheme)),
        "{log}"
    );

    // `model.init_from` and `train.resume` name the bucket's checkpoint.
    let ckpt = run.join("checkpoints/step-10").unwrap();
    let warm = tmp.path().join("warm");
    let init = format!("model.init_from={ckpt}");
    let out = util::run_with_timeout(
        &mut util::tiny_launch(
            &warm,
            1,
            &[
                &init,
                "train.max_steps=4",
                "train.eval_every=null",
                "checkpoint.every_steps=null",
            ],
        ),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "init_from a URL: {}",
        util::texts(&out).1
    );
    let resumed = tmp.path().join("resumed");
    let resume = format!("train.resume={ckpt}");
    let mut overrides = frozen.to_vec();
    overrides.extend([resume.as_str(), "train.max_steps=12"]);
    let out = util::run_with_timeout(&mut util::tiny_launch(&resumed, 1, &overrides), LIMIT);
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "resume from a URL:\n{so}\n{se}");
    assert!(
        format!("{so}{se}").contains("resuming from checkpoint step 10"),
        "{so}\n{se}"
    );

    // A row whose image object does not exist is a bad row, as a missing file is:
    // exit 2 naming the file and line.
    let bucket = Bucket::open(&base).unwrap();
    upload_dir(&util::repo_root().join("datasets/sample"), &bucket, "data");
    let train =
        std::fs::read_to_string(util::repo_root().join("datasets/sample/train.jsonl")).unwrap();
    let mut lines: Vec<String> = train.lines().map(str::to_string).collect();
    let mut row: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    row["image"] = "images/not-in-the-bucket.png".into();
    lines[2] = row.to_string();
    bucket
        .put("data/broken.jsonl", lines.join("\n").into_bytes())
        .unwrap();
    let broken = format!("data.train={base}/data/broken.jsonl");
    let out = util::run_with_timeout(
        &mut util::tiny_launch(&tmp.path().join("broken"), 1, &[&broken]),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert_eq!(out.status.code(), Some(2), "{so}\n{se}");
    let all = format!("{so}{se}");
    assert!(
        all.contains("broken.jsonl:3") && all.contains("not-in-the-bucket.png"),
        "the bad row is not named:\n{all}"
    );
}

/// Requests for `key` the S3 server logged so far (`VIGIL_TEST_S3_LOG`: moto's
/// request log, which `scripts/ci/s3.sh` names); `None` without the log.
fn server_gets(url: &RemoteUrl, key: &str) -> Option<usize> {
    let log = std::fs::read_to_string(std::env::var("VIGIL_TEST_S3_LOG").ok()?).ok()?;
    let needle = format!("\"GET /{}/{}/{key} ", url.bucket, url.prefix);
    Some(log.lines().filter(|l| l.contains(&needle)).count())
}

#[test]
#[ignore = "needs an S3 server: scripts/ci/s3.sh"]
fn s3_serve_loads_a_bucket_repository_and_polls_it_by_listing() {
    use serve_util::{Served, infer_body, post_json, rows};
    let Some(base) = prefix_or_skip("serve") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("run");
    let short = [
        "train.max_steps=10",
        "train.eval_every=10",
        "checkpoint.every_steps=10",
    ];
    let out = util::run_with_timeout(&mut util::tiny_launch(&local, 1, &short), LIMIT);
    assert!(out.status.success(), "{}", util::texts(&out).1);
    let source = local.join("export/tiny");
    let models = base.join("models").unwrap();
    let repo = models.join("tiny").unwrap();
    let export = || {
        let out = util::run_with_timeout(
            util::vigil().args([
                "export",
                "--model",
                &source.display().to_string(),
                "--repository",
                &repo.to_string(),
            ]),
            LIMIT,
        );
        assert!(out.status.success(), "{}", util::texts(&out).1);
    };
    export();

    // `--model-repository s3://…/models` finds its only model, `tiny`.
    let mut served = Served::start(
        &[
            "--model-repository",
            &models.to_string(),
            "--poll-secs",
            "0.2",
            "--threads",
            "1",
        ],
        LIMIT,
    );
    let body = infer_body(&rows(
        &util::repo_root().join("datasets/sample/val.jsonl"),
        2,
    ));
    let infer = "/v2/models/tiny/infer";
    let reply = post_json(served.addr, infer, &body);
    assert_eq!(reply.status, 200, "{}", served.log_text());
    assert_eq!(reply.json()["model_version"], "1");
    // About ten polls: each lists the bucket; none reads the served files again.
    std::thread::sleep(Duration::from_secs(2));
    if let Some(n) = server_gets(&repo, "1/model.safetensors") {
        assert_eq!(n, 1, "the weights were downloaded on a poll");
    }

    // A new version is picked up and swapped in.
    export();
    served.wait_for_log("swapped: serving version 2", Duration::from_secs(60));
    assert_eq!(
        post_json(served.addr, infer, &body).json()["model_version"],
        "2"
    );

    // A version whose manifest lists bytes it does not have fails to load once,
    // is not downloaded again, and version 2 keeps serving.
    let bucket = Bucket::open(&repo).unwrap();
    for (key, _) in bucket.list_all("2").unwrap() {
        let bytes = bucket.get(&key).unwrap().unwrap();
        let key3 = format!("3/{}", key.strip_prefix("2/").unwrap());
        let bytes = if key3.ends_with("model.safetensors") {
            vec![0u8; bytes.len()]
        } else {
            bytes.to_vec()
        };
        if !key3.ends_with("MANIFEST.json") {
            bucket.put(&key3, bytes).unwrap();
        }
    }
    bucket
        .put(
            "3/MANIFEST.json",
            bucket.get("2/MANIFEST.json").unwrap().unwrap(),
        )
        .unwrap();
    served.wait_for_log("version 3 failed to load", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        post_json(served.addr, infer, &body).json()["model_version"],
        "2"
    );
    if let Some(n) = server_gets(&repo, "3/model.safetensors") {
        assert_eq!(n, 1, "a failed version was downloaded again");
    }
    assert_eq!(served.terminate(Duration::from_secs(30)), Some(0));
}

/// A reader polling `repo` until `stop`: every version it gets verifies; returns
/// how often it saw a listed version that was not complete yet.
fn poll(repo: ModelRepo, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let (mut polls, mut incomplete) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            if let Some(newest) = repo.newest_complete().unwrap() {
                // What a server would load: it verified, so its files are whole.
                repo.version(newest.version.version).unwrap();
                incomplete += newest.skipped.len();
            }
            polls += 1;
        }
        (polls, incomplete)
    })
}

#[test]
#[ignore = "needs an S3 server: scripts/ci/s3.sh"]
fn s3_concurrent_exporters_publish_distinct_complete_versions() {
    let Some(base) = prefix_or_skip("exporters") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let short = [
        "train.max_steps=10",
        "train.eval_every=10",
        "checkpoint.every_steps=10",
    ];
    let out = util::run_with_timeout(&mut util::tiny_launch(&run, 1, &short), LIMIT);
    assert!(out.status.success(), "{}", util::texts(&out).1);
    let source = run.join("export/tiny");
    let want = std::fs::read(source.join("1/model.safetensors")).unwrap();

    let repo_url = base.join("repo/tiny").unwrap();
    let repo = ModelRepo::open_url(&repo_url).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = poll(repo.clone(), stop.clone());
    let exporters: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = util::vigil();
            cmd.args([
                "export",
                "--model",
                &source.display().to_string(),
                "--repository",
                &repo_url.to_string(),
            ]);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in exporters {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", util::texts(&out).1);
    }
    stop.store(true, Ordering::Relaxed);
    let (polls, _) = reader.join().unwrap();
    assert!(polls > 0);
    assert_eq!(repo.versions().unwrap(), [1, 2]);
    for v in [1, 2] {
        let (_, files) = repo.load(v).unwrap();
        assert_eq!(files["model.safetensors"], want, "version {v} damaged");
    }
    // The Triton files at the repository root, one PUT each.
    assert!(get(&repo_url, "config.pbtxt").is_some());
    assert!(get(&repo_url, "labels.txt").is_some());

    // An export to a server that never answers fails after bounded retries,
    // naming the URL, and leaves the repository as it was.
    let start = Instant::now();
    let out = util::run_with_timeout(
        util::vigil()
            .args(["export", "--model", &source.display().to_string()])
            .args(["--repository", &repo_url.to_string()])
            .env(endpoint_and_secret_vars().0, silent_server())
            .env("VIGIL_STORAGE_RETRIES", "1")
            .env("VIGIL_STORAGE_TIMEOUT_S", "2")
            .env("VIGIL_STORAGE_RETRY_TIMEOUT_S", "5"),
        Duration::from_secs(90),
    );
    let se = util::texts(&out).1;
    assert!(!out.status.success(), "{se}");
    assert!(se.contains(&repo_url.to_string()), "{se}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(repo.versions().unwrap(), [1, 2]);
}

#[test]
#[ignore = "needs an S3 server: scripts/ci/s3.sh"]
fn s3_racing_writers_never_share_a_version_and_readers_see_only_complete_ones() {
    let Some(base) = prefix_or_skip("race") else {
        return;
    };
    let repo = ModelRepo::open_url(&base)
        .unwrap()
        .with_required_files(&["model.safetensors"]);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = poll(repo.clone(), stop.clone());
    // 20 MiB: above the multipart threshold, so parts are in flight while the
    // other writer and the reader run.
    let writers: Vec<_> = (0..2u8)
        .map(|w| {
            let repo = repo.clone();
            std::thread::spawn(move || {
                (0..3u8)
                    .map(|i| {
                        let big = vec![w * 16 + i; 20 << 20];
                        let files = vec![
                            ("model.safetensors".to_string(), big),
                            ("model.onnx".to_string(), vec![w, i]),
                        ];
                        let v = repo.publish(&files, serde_json::json!({ "w": w, "i": i }));
                        (v.unwrap().version, w * 16 + i)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut published: Vec<(u64, u8)> = writers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    let (polls, _) = reader.join().unwrap();
    assert!(polls > 0);
    published.sort();
    let versions: Vec<u64> = published.iter().map(|p| p.0).collect();
    assert_eq!(
        versions,
        (1..=6).collect::<Vec<_>>(),
        "versions shared or skipped"
    );
    for (v, fill) in published {
        let (manifest, files) = repo.load(v).unwrap();
        assert!(
            files["model.safetensors"].iter().all(|&b| b == fill),
            "version {v} mixed"
        );
        assert_eq!(manifest.meta["version"], v);
    }
}

#[test]
#[ignore = "needs an S3 server: scripts/ci/s3.sh"]
fn s3_a_crashed_publish_is_invisible_and_cleaned_up() {
    let Some(base) = prefix_or_skip("crash") else {
        return;
    };
    let bucket = Bucket::open(&base).unwrap();
    let hook: vigil_store::checkpoint::WriteHook = Arc::new(|e: &WriteEvent<'_>| match e {
        WriteEvent::FileWritten { .. } => Err(std::io::Error::other("injected crash")),
        _ => Ok(()),
    });
    let store = ObjectStoreStore::new(bucket.clone()).with_hook(hook);
    let files = vec![
        ("model.safetensors".to_string(), vec![1u8; 10]),
        ("labels.json".to_string(), b"[]".to_vec()),
    ];
    assert!(
        store
            .publish("1", &files, serde_json::Value::Null, IfExists::Fail)
            .is_err()
    );
    let clean = ObjectStoreStore::new(bucket.clone());
    assert_eq!(
        clean.entries().unwrap(),
        ["1"],
        "the leftover prefix is listed"
    );
    let repo = ModelRepo::with_store(Arc::new(clean.clone())).with_required_files(&[]);
    assert!(
        repo.newest_complete().unwrap().is_none(),
        "a manifest-less version was used"
    );
    // Young leftovers of a possibly live writer stay; stale ones go, with the claim.
    assert!(
        clean
            .clean_staging(Duration::from_secs(3600))
            .unwrap()
            .is_empty()
    );
    let removed = clean.clean_staging(Duration::ZERO).unwrap();
    assert!(removed.contains(&"1".to_string()), "{removed:?}");
    assert!(bucket.list_all("").unwrap().is_empty());
    // The number is free again and the next publish completes.
    let v = repo.publish(&files, serde_json::Value::Null).unwrap();
    assert_eq!(v.version, 1);
}

/// The endpoint of a server that accepts connections and never answers.
fn silent_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    url
}

/// `vigil predict --model <url>` with `env`, expecting a failure naming `url`
/// within `within`; returns standard error.
fn predict_fails(url: &str, env: &[(&str, &str)], within: Duration) -> String {
    let start = Instant::now();
    let mut cmd = util::vigil();
    cmd.args([
        "predict",
        "--model",
        url,
        "--input",
        "datasets/sample/val.jsonl",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = util::run_with_timeout(&mut cmd, within + Duration::from_secs(30));
    let (_, se) = util::texts(&out);
    assert_eq!(out.status.code(), Some(1), "an I/O failure exits 1:\n{se}");
    assert!(se.contains(url), "the error does not name {url}:\n{se}");
    assert!(
        start.elapsed() < within,
        "took {:?}:\n{se}",
        start.elapsed()
    );
    se
}

#[test]
#[ignore = "needs an S3 server: scripts/ci/s3.sh"]
fn s3_refused_down_and_silent_servers_fail_naming_the_url() {
    let Some(base) = prefix_or_skip("failures") else {
        return;
    };
    let url = format!("{base}/repo/tiny");
    let fast = [
        ("VIGIL_STORAGE_RETRIES", "2"),
        ("VIGIL_STORAGE_TIMEOUT_S", "2"),
        ("VIGIL_STORAGE_RETRY_TIMEOUT_S", "10"),
    ];
    let (endpoint_var, secret_var) = endpoint_and_secret_vars();
    // Wrong credentials: the server checks signatures (moto with IAM auth on;
    // Azurite checks Shared Key signatures).
    let mut env = fast.to_vec();
    env.push((secret_var, "bm90LXRoZS1zZWNyZXQ="));
    let se = predict_fails(&url, &env, Duration::from_secs(30));
    assert!(
        se.contains("SignatureDoesNotMatch")
            || se.contains("AuthorizationFailure")
            || se.contains("403"),
        "no refusal in:\n{se}"
    );

    // Down: nothing listens on the port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut env = fast.to_vec();
    env.push((endpoint_var, endpoint.as_str()));
    let se = predict_fails(&url, &env, Duration::from_secs(30));
    assert!(se.contains("retries") || se.contains("retry"), "{se}");

    // Silent: accepts connections and never answers.
    let silent = silent_server();
    let mut env = fast.to_vec();
    env.push((endpoint_var, silent.as_str()));
    predict_fails(&url, &env, Duration::from_secs(40));
}

#[test]
#[ignore = "needs an S3 server: scripts/ci/s3.sh"]
fn s3_the_output_lease_refuses_a_second_launch_and_expired_leases_are_taken_over() {
    use vigil_store::storage::lease::{LEASE_KEY, Lease, LeaseRecord};
    let Some(base) = prefix_or_skip("lease") else {
        return;
    };
    let run = base.join("run").unwrap();
    let first = Lease::acquire(&run, "pid 1 on host a", Duration::from_secs(30)).unwrap();
    let e = Lease::acquire(&run, "pid 2 on host b", Duration::from_secs(30)).unwrap_err();
    assert!(e.to_string().contains("pid 1 on host a"), "{e}");

    // A launch on the held prefix stops at once, naming the lease and its holder.
    let start = Instant::now();
    let out = util::run_with_timeout(
        util::vigil()
            .args(["launch", "configs/tiny.yaml", "--set"])
            .arg(format!("run.output_dir={run}")),
        Duration::from_secs(60),
    );
    let se = util::texts(&out).1;
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.contains(&format!("{run}/{LEASE_KEY}")) && se.contains("pid 1 on host a"),
        "{se}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    drop(first);
    assert!(get(&run, LEASE_KEY).is_none(), "the lease was not released");

    // A holder that died: its lease expired, and is taken over.
    let dead = LeaseRecord {
        holder: "pid 3 on host c".into(),
        expires_unix_s: 1,
    };
    Bucket::open(&run)
        .unwrap()
        .put(LEASE_KEY, serde_json::to_vec(&dead).unwrap())
        .unwrap();
    let next = Lease::acquire(&run, "pid 4 on host d", Duration::from_secs(30)).unwrap();
    assert_eq!(next.took_over.as_deref(), Some("pid 3 on host c"));
}
