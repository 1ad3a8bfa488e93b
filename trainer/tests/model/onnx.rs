//! `model.onnx` parity: for each architecture, a model built here is exported
//! (the training loop's `version_files`, published in a model repository with its
//! Triton files), then `vigil predict`'s scores (`run_predict`) and
//! `scripts/onnx_client.py`'s (ONNX Runtime, the client's own tokenization and
//! image preprocessing) must agree within 1e-4 on every row and label, and
//! `scripts/onnx_checks.py` must pass (ONNX checker with full_check, dynamic batch
//! and sequence axes, config.pbtxt parsed by tritonclient).
//!
//! Python comes from `$VIGIL_PYTHON`, else `python3`. Without
//! onnx/onnxruntime/tokenizers/pillow/tritonclient the tests skip with a printed
//! reason; with `VIGIL_PYTHON` set under CI they fail instead. `.ci/run`'s suite
//! runs before those packages are installed, so `scripts/ci/onnx.sh` installs
//! them and reruns these tests with `VIGIL_PYTHON` set to the CI venv's python.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil_config::{
    DataSection, ExportSection, FusionKind, ImageEncoder, ImageTower, ModelSection, Pooling,
    RunConfig, RunSection, Task, TextEncoder, TextTower,
};
use vigil_infer::{PredictOptions, run_predict};
use vigil_model::backend::CpuBackend;
use vigil_model::{ModerationModel, Standardize};
use vigil_store::repo::{ModelRepo, files::ONNX_FILE};
use vigil_trainer::train::{version_files, write_triton_files};

use super::util::{in_ci, pretrained_or_skip, write_tokenizer};

type B = CpuBackend;
const LABELS: [&str; 3] = ["hate", "spam", "violence"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python with every package the checks need, or None after saying why.
fn python_or_skip() -> Option<PathBuf> {
    let py = std::env::var_os("VIGIL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(&py)
        .args([
            "-c",
            "import onnx, onnxruntime, tokenizers, PIL, numpy, tritonclient.grpc.model_config_pb2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    // The suite runs before CI installs these packages; `scripts/ci/onnx.sh` then
    // reruns these tests with VIGIL_PYTHON set, where a missing package fails.
    assert!(
        !(in_ci() && std::env::var_os("VIGIL_PYTHON").is_some()),
        "{} lacks onnx/onnxruntime/tokenizers/pillow/tritonclient under CI \
         (scripts/ci/onnx.sh installs them into the CI venv)",
        py.display()
    );
    eprintln!(
        "SKIPPED: {} cannot import onnx, onnxruntime, tokenizers, PIL and tritonclient; \
         set VIGIL_PYTHON to a python that has them (scripts/ci/onnx.sh runs these tests)",
        py.display()
    );
    None
}

/// With `VIGIL_ONNX_KEEP=DIR`, copies `repo` to `DIR/name` (to inspect an export,
/// or to benchmark the quickstart model's ONNX file).
fn keep(repo: &Path, name: &str) {
    if let Some(dir) = std::env::var_os("VIGIL_ONNX_KEEP") {
        let dst = Path::new(&dir).join(name);
        let _ = std::fs::remove_dir_all(&dst);
        std::fs::create_dir_all(Path::new(&dir)).unwrap();
        run(Command::new("cp").arg("-r").arg(repo).arg(&dst), "cp -r");
    }
}

/// Runs `cmd` with a timeout; its stdout, or a panic with its stderr.
fn run(cmd: &mut Command, what: &str) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(600);
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn section(
    dir: &Path,
    text: Option<Pooling>,
    image: bool,
    fusion: FusionKind,
    task: Task,
) -> ModelSection {
    let mut m = ModelSection {
        labels: LABELS.iter().map(|s| s.to_string()).collect(),
        task,
        ..Default::default()
    };
    m.text = text.map(|pooling| TextTower {
        encoder: TextEncoder::Scratch,
        tokenizer: Some(write_tokenizer(dir).display().to_string()),
        hidden: 16,
        layers: 2,
        heads: 2,
        pooling,
        ..Default::default()
    });
    m.image = image.then(|| ImageTower {
        encoder: ImageEncoder::ScratchCnn,
        channels: 4,
        ..Default::default()
    });
    m.fusion.kind = fusion;
    m.fusion.dim = 8;
    m.head.hidden = vec![16];
    m.head.dropout = 0.0;
    m
}

fn data() -> DataSection {
    DataSection {
        max_text_len: 12,
        image_size: 16,
        ..Default::default()
    }
}

/// Rows with texts of every length, some without text, some without an image,
/// images of several sizes (so resizing runs both ways).
fn write_rows(dir: &Path, n: usize, seed: u64) -> PathBuf {
    let words = [
        "the", "cat", "dog", "hate", "you", "love", "buy", "now", "cheap", "spam", "hurt", "!",
        "friendly", "messages", "zzz",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let img_dir = dir.join("img");
    std::fs::create_dir_all(&img_dir).unwrap();
    let mut lines = String::new();
    for i in 0..n {
        let mut row = serde_json::json!({ "id": format!("r{i}") });
        if i % 5 != 3 {
            let len = rng.random_range(0..20);
            let text: Vec<&str> = (0..len)
                .map(|_| words[rng.random_range(0..words.len())])
                .collect();
            row["text"] = text.join(" ").into();
        }
        if i % 4 != 1 || i % 5 == 3 {
            let (w, h) = [(16, 16), (23, 9), (40, 31), (7, 12)][i % 4];
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([
                    (x * 11 + y * 3) as u8,
                    rng.random::<u8>(),
                    (255 - y * 7) as u8,
                ])
            });
            let name = format!("{i}.png");
            img.save(img_dir.join(&name)).unwrap();
            row["image"] = format!("img/{name}").into();
        }
        lines.push_str(&format!("{row}\n"));
    }
    let path = dir.join("rows.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

/// Publishes `model` as the next version of `<dir>/export/m` with `export.onnx`.
fn publish(
    dir: &Path,
    model: &ModerationModel<B>,
    tokenizer: Option<&vigil_model::TextTokenizer>,
    m: &ModelSection,
    d: &DataSection,
) -> PathBuf {
    let export = dir.join("export");
    let cfg = RunConfig {
        // The export stages its files under the run directory: keep it in `dir`.
        run: RunSection {
            output_dir: Some(dir.join("run").display().to_string()),
            ..Default::default()
        },
        model: m.clone(),
        data: d.clone(),
        export: ExportSection {
            dir: Some(export.display().to_string()),
            model_name: "m".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let thresholds: Vec<(String, f32)> = m
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), 0.3 + 0.1 * i as f32))
        .collect();
    let (files, sig) =
        version_files(&cfg, model, tokenizer, 7, &thresholds, &BTreeMap::new()).unwrap();
    assert!(files.iter().any(|(n, _)| n == ONNX_FILE));
    let repo = ModelRepo::new(&export, "m").unwrap();
    repo.publish(&files, serde_json::json!({ "step": 7 }))
        .unwrap();
    write_triton_files(&repo, &cfg, &sig.expect("export.onnx is on by default")).unwrap();
    export.join("m")
}

fn predict(repo: &Path, rows: &Path, batch_size: usize) -> Vec<serde_json::Value> {
    let opts = PredictOptions {
        model: repo.into(),
        version: None,
        input: rows.to_path_buf(),
        rank_by: None,
        top: None,
        batch_size,
        threads: 2,
    };
    let mut out = Vec::new();
    run_predict::<B>(&opts, &mut out, &Default::default()).unwrap();
    lines(&String::from_utf8(out).unwrap())
}

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn client(py: &Path, repo: &Path, rows: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = run(
        Command::new(py)
            .arg(repo_root().join("scripts/onnx_client.py"))
            .arg("--model")
            .arg(repo)
            .arg("--input")
            .arg(rows)
            .args(extra),
        "onnx_client.py",
    );
    lines(&out)
}

/// Every row and label within 1e-4; decisions equal unless a score is that close
/// to its threshold. Returns the largest difference.
fn assert_same(rust: &[serde_json::Value], onnx: &[serde_json::Value]) -> f64 {
    assert_eq!(rust.len(), onnx.len());
    let mut worst = 0.0f64;
    for (a, b) in rust.iter().zip(onnx) {
        assert_eq!(a["id"], b["id"]);
        assert_eq!(a["version"], b["version"]);
        let (sa, sb) = (
            a["scores"].as_object().unwrap(),
            b["scores"].as_object().unwrap(),
        );
        assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
        for (label, pa) in sa {
            let (pa, pb) = (pa.as_f64().unwrap(), sb[label].as_f64().unwrap());
            let d = (pa - pb).abs();
            worst = worst.max(d);
            if d > 1e-4 {
                eprintln!("DIFF row {} label {label}: {pa} vs {pb}", a["id"]);
            }
            if d < 1e-6 {
                assert_eq!(a["decisions"][label], b["decisions"][label], "{}", a["id"]);
            }
        }
    }
    assert!(worst <= 1e-4, "scores differ by up to {worst}");
    worst
}

/// Builds, exports and compares one architecture.
fn parity(m: ModelSection, standardize: bool) {
    parity_with(m, data(), standardize);
}

fn parity_with(m: ModelSection, d: DataSection, standardize: bool) {
    let Some(py) = python_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let device = Default::default();
    let mut loaded = ModerationModel::<B>::from_config(&m, &d, &device).unwrap();
    if standardize {
        // A frozen, cached tower's statistics: far from the identity.
        let mut rng = StdRng::seed_from_u64(3);
        let mut fit = |dim: usize| {
            let rows = 40;
            let values: Vec<f32> = (0..rows * dim)
                .map(|i| rng.random_range(-1.0..1.0) * (1 + i % 5) as f32 + (i % 3) as f32)
                .collect();
            Standardize::<B>::fit(&values, dim, &vec![true; rows], &device)
        };
        if let Some(t) = &loaded.model.text {
            let s = fit(t.output_dim());
            loaded.model.fusion.set_text_standardization(s);
        }
        if let Some(i) = &loaded.model.image {
            let s = fit(i.output_dim());
            loaded.model.fusion.set_image_standardization(s);
        }
    }
    let repo = publish(dir, &loaded.model, loaded.tokenizer.as_ref(), &m, &d);
    let rows = write_rows(dir, 23, 11);
    let rust = predict(&repo, &rows, 5);
    let onnx = client(&py, &repo, &rows, &["--batch-size", "4"]);
    let worst = assert_same(&rust, &onnx);
    // One row at a time, and every batch padded to max_text_len: same scores.
    let single = client(&py, &repo, &rows, &["--batch-size", "1"]);
    assert_same(&rust, &single);
    if m.text.is_some() {
        let padded = client(&py, &repo, &rows, &["--batch-size", "64", "--pad-to-max"]);
        assert_same(&rust, &padded);
    }
    run(
        Command::new(&py)
            .arg(repo_root().join("scripts/onnx_checks.py"))
            .arg(&repo),
        "onnx_checks.py",
    );
    eprintln!("onnx parity: largest difference {worst:.2e}");
}

#[test]
fn onnx_matches_predict_text_only() {
    let tmp = tempfile::tempdir().unwrap();
    parity(
        section(
            tmp.path(),
            Some(Pooling::Mean),
            false,
            FusionKind::Concat,
            Task::MultiLabel,
        ),
        false,
    );
}

/// The Hugging Face text architectures beyond BERT, on the tiny random checkpoints
/// of `crates/model/tests/fixtures/encoders` (RoBERTa's position offset, DistilBERT
/// without token types, XLM-R's `<pad>` id), each fine-tunable weight exported.
#[test]
fn onnx_matches_predict_for_each_hugging_face_text_architecture() {
    for name in ["roberta", "xlm-roberta", "distilbert", "deberta-v2"] {
        let dir = repo_root()
            .join("crates/model/tests/fixtures/encoders")
            .join(name);
        let tmp = tempfile::tempdir().unwrap();
        let mut m = section(
            tmp.path(),
            Some(Pooling::Mean),
            false,
            FusionKind::Concat,
            Task::MultiLabel,
        );
        if let Some(t) = &mut m.text {
            t.encoder = TextEncoder::Bert;
            t.path = Some(dir.display().to_string());
            t.tokenizer = None;
        }
        eprintln!("{name}:");
        parity(m, false);
    }
}

/// The Hugging Face image towers (ViT, CLIP's and SigLIP's vision halves) on the
/// tiny fixtures, with their processors' transforms (Pillow bilinear / bicubic,
/// CLIP's shortest-edge resize and centre crop): the client reproduces them with
/// Pillow, the scores agree with `vigil predict`.
#[test]
fn onnx_matches_predict_for_each_hugging_face_image_architecture() {
    for name in ["vit", "clip", "siglip"] {
        let dir = repo_root()
            .join("crates/model/tests/fixtures/encoders")
            .join(name);
        let tmp = tempfile::tempdir().unwrap();
        let mut m = section(
            tmp.path(),
            Some(Pooling::Mean),
            true,
            FusionKind::Gated,
            Task::MultiLabel,
        );
        if let Some(i) = &mut m.image {
            i.encoder = ImageEncoder::Pretrained;
            i.path = Some(dir.display().to_string());
        }
        let mut d = data();
        d.image_size = 32;
        d.image_transform = Some(vigil_model::image_transform(&m, &d).unwrap());
        eprintln!("{name}: {:?}", d.image_transform);
        parity_with(m, d, false);
    }
}

/// A CLIP or SigLIP directory as both towers (its text half with the text
/// projection, its vision half with the visual one): CLIP's causal text mask and
/// last-token pooling, SigLIP's rows padded to their full length.
#[test]
fn onnx_matches_predict_for_clip_and_siglip_as_both_towers() {
    for name in ["clip", "siglip"] {
        let dir = repo_root()
            .join("crates/model/tests/fixtures/encoders")
            .join(name);
        let tmp = tempfile::tempdir().unwrap();
        let mut m = section(
            tmp.path(),
            Some(Pooling::Mean),
            true,
            FusionKind::Interaction,
            Task::MultiLabel,
        );
        if let Some(t) = &mut m.text {
            t.encoder = TextEncoder::Bert;
            t.path = Some(dir.display().to_string());
            t.tokenizer = None;
        }
        if let Some(i) = &mut m.image {
            i.encoder = ImageEncoder::Pretrained;
            i.path = Some(dir.display().to_string());
        }
        let mut d = data();
        d.image_size = 32;
        d.max_text_len = 24;
        d.image_transform = Some(vigil_model::image_transform(&m, &d).unwrap());
        eprintln!("{name}:");
        parity_with(m, d, false);
    }
}

#[test]
fn onnx_matches_predict_image_only() {
    let tmp = tempfile::tempdir().unwrap();
    parity(
        section(tmp.path(), None, true, FusionKind::Concat, Task::MultiLabel),
        false,
    );
}

#[test]
fn onnx_matches_predict_for_every_fusion_kind() {
    for kind in [
        FusionKind::Concat,
        FusionKind::Gated,
        FusionKind::Interaction,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        parity(
            section(
                tmp.path(),
                Some(Pooling::Mean),
                true,
                kind,
                Task::MultiLabel,
            ),
            false,
        );
    }
}

#[test]
fn onnx_matches_predict_multi_class_with_cls_pooling() {
    let tmp = tempfile::tempdir().unwrap();
    parity(
        section(
            tmp.path(),
            Some(Pooling::Cls),
            true,
            FusionKind::Gated,
            Task::MultiClass,
        ),
        false,
    );
}

#[test]
fn onnx_matches_predict_with_standardised_frozen_tower_features() {
    let tmp = tempfile::tempdir().unwrap();
    parity(
        section(
            tmp.path(),
            Some(Pooling::Mean),
            true,
            FusionKind::Interaction,
            Task::MultiLabel,
        ),
        true,
    );
}

/// The quickstart architecture with its real pretrained weights (MiniLM +
/// EfficientNet-B0, standardised frozen image features), on sample rows.
#[test]
fn onnx_matches_predict_for_the_pretrained_quickstart_model() {
    let Some(_) = pretrained_or_skip("all-minilm-l6-v2") else {
        return;
    };
    let Some(py) = python_or_skip() else { return };
    let root = repo_root();
    let cfg = RunConfig::load(&root.join("configs/quickstart.yaml"), &[]).unwrap();
    let device = Default::default();
    let mut loaded = ModerationModel::<B>::from_config(&cfg.model, &cfg.data, &device).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let values: Vec<f32> = (0..30 * 1280).map(|_| rng.random_range(0.0..2.0)).collect();
    let s = Standardize::<B>::fit(&values, 1280, &[true; 30], &device);
    loaded.model.fusion.set_image_standardization(s);
    let tmp = tempfile::tempdir().unwrap();
    let repo = publish(
        tmp.path(),
        &loaded.model,
        loaded.tokenizer.as_ref(),
        &cfg.model,
        &cfg.data,
    );
    // The first validation rows (images copied beside them); two lose a modality.
    let sample = root.join("datasets/sample");
    let text = std::fs::read_to_string(sample.join("val.jsonl")).unwrap();
    let mut rows = String::new();
    for (i, line) in text.lines().take(12).enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(img) = v["image"].as_str() {
            let dst = tmp.path().join(img);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(sample.join(img), &dst).unwrap();
        }
        if i == 3 {
            v.as_object_mut().unwrap().remove("text");
        }
        if i == 4 {
            v.as_object_mut().unwrap().remove("image");
        }
        rows.push_str(&format!("{v}\n"));
    }
    let rows_path = tmp.path().join("rows.jsonl");
    std::fs::write(&rows_path, rows).unwrap();
    keep(&repo, "quickstart");
    let rust = predict(&repo, &rows_path, 6);
    let onnx = client(&py, &repo, &rows_path, &["--batch-size", "5"]);
    let worst = assert_same(&rust, &onnx);
    run(
        Command::new(&py)
            .arg(root.join("scripts/onnx_checks.py"))
            .arg(&repo),
        "onnx_checks.py",
    );
    eprintln!("quickstart onnx parity: largest difference {worst:.2e}");
}

/// A version whose model.onnx is truncated or altered is damaged: the manifest
/// catches it and predict serves the previous version.
#[test]
fn a_damaged_model_onnx_makes_its_version_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let m = section(
        dir,
        Some(Pooling::Mean),
        true,
        FusionKind::Concat,
        Task::MultiLabel,
    );
    let d = data();
    let loaded = ModerationModel::<B>::from_config(&m, &d, &Default::default()).unwrap();
    let repo = publish(dir, &loaded.model, loaded.tokenizer.as_ref(), &m, &d);
    publish(dir, &loaded.model, loaded.tokenizer.as_ref(), &m, &d);
    publish(dir, &loaded.model, loaded.tokenizer.as_ref(), &m, &d);
    let rows = write_rows(dir, 3, 1);
    // Version 3 truncated, version 2 with one byte flipped.
    let v3 = repo.join("3").join(ONNX_FILE);
    let bytes = std::fs::read(&v3).unwrap();
    std::fs::write(&v3, &bytes[..bytes.len() / 2]).unwrap();
    let v2 = repo.join("2").join(ONNX_FILE);
    let mut bytes = std::fs::read(&v2).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&v2, &bytes).unwrap();
    let opts = PredictOptions {
        model: repo.clone().into(),
        version: None,
        input: rows,
        rank_by: None,
        top: None,
        batch_size: 4,
        threads: 2,
    };
    let mut out = Vec::new();
    let summary = run_predict::<B>(&opts, &mut out, &Default::default()).unwrap();
    assert_eq!(summary.version.version, 1);
    let skipped: Vec<u64> = summary.version.skipped.iter().map(|s| s.0).collect();
    assert_eq!(skipped, [3, 2]);
    assert!(
        summary.version.skipped[0].1.contains(ONNX_FILE),
        "{}",
        summary.version.skipped[0].1
    );
    // Asking for the damaged version by number fails instead of serving another.
    let err = run_predict::<B>(
        &PredictOptions {
            version: Some(3),
            ..opts
        },
        &mut Vec::new(),
        &Default::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains('3'), "{err}");
}
