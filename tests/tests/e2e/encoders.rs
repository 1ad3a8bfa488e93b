//! Each Hugging Face architecture through the whole pipeline with the real binary:
//! a 2-worker fine-tune of `configs/tiny.yaml` whose text or image tower is a tiny
//! random checkpoint written by transformers (`crates/model/tests/fixtures/encoders`),
//! a worker SIGKILLed mid-run and restarted by the launcher, an export whose
//! `model.safetensors` is sha256-identical to an uninterrupted run's and whose
//! `text_config.json` / `image_config.json` records the architecture (and whose
//! `config.json` the image transform of the tower's `preprocessor_config.json`), and
//! that export answering through `vigil serve` with the scores `vigil predict` gives.

use crate::serve_util::{Served, infer_body, json_scores, post_json, rows};
use crate::util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);
const VAL: &str = "datasets/sample/val.jsonl";

fn fixture(name: &str) -> String {
    util::repo_root()
        .join("crates/model/tests/fixtures/encoders")
        .join(name)
        .display()
        .to_string()
}

/// Which tower the fixture replaces.
#[derive(Clone, Copy, PartialEq)]
enum Tower {
    Text,
    Image,
    /// Both towers from one CLIP / SigLIP directory.
    Both,
}

/// 16 steps, a checkpoint every 4, the whole encoder training.
fn launch(dir: &Path, name: &str, tower: Tower) -> Command {
    let tower_overrides = match tower {
        Tower::Text => vec![
            "model.text.encoder=bert".to_string(),
            format!("model.text.path={}", fixture(name)),
            "model.text.tokenizer=null".into(),
            "model.text.train_layers=all".into(),
        ],
        Tower::Image => vec![
            "model.image.encoder=pretrained".to_string(),
            format!("model.image.path={}", fixture(name)),
            "model.image.train_layers=all".into(),
        ],
        Tower::Both => vec![
            "model.text.encoder=bert".to_string(),
            format!("model.text.path={}", fixture(name)),
            "model.text.tokenizer=null".into(),
            "model.image.encoder=pretrained".into(),
            format!("model.image.path={}", fixture(name)),
        ],
    };
    let mut overrides: Vec<&str> = tower_overrides.iter().map(String::as_str).collect();
    overrides.extend([
        "data.max_text_len=24",
        "train.max_steps=16",
        "train.eval_every=null",
        "checkpoint.every_steps=4",
        "logging.interval=4",
        "logging.histogram_every=null",
    ]);
    let mut cmd = util::tiny_launch(dir, 2, &overrides);
    cmd.args(["--max-restarts", "1"]);
    cmd
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn fine_tune_resume_and_serve(name: &str, tower: Tower) {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    let out = util::run_with_timeout(&mut launch(&reference, name, tower), LIMIT);
    let (so, se) = util::texts(&out);
    assert!(
        out.status.success(),
        "{name}: vigil launch failed\n{so}\n{se}"
    );
    let version = reference.join("export/tiny/1");
    if tower != Tower::Image {
        let text_config = std::fs::read_to_string(version.join("text_config.json")).unwrap();
        assert!(
            text_config.contains(&format!(
                r#""architecture": "{}""#,
                if tower == Tower::Both { "joint" } else { name }
            )),
            "{name}: {text_config}"
        );
    }
    if tower != Tower::Text {
        let image_config = std::fs::read_to_string(version.join("image_config.json")).unwrap();
        assert!(image_config.contains(r#""kind""#), "{name}: {image_config}");
        let read = |p: &Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let config = read(&version.join("config.json"));
        let processor = read(&Path::new(&fixture(name)).join("preprocessor_config.json"));
        let filter = match processor["resample"].as_u64() {
            Some(2) => "bilinear",
            _ => "bicubic",
        };
        assert_eq!(
            config["data"]["image_transform"]["filter"], filter,
            "{name}: the export records the processor's transform"
        );
    }

    let killed = tmp.path().join("killed");
    let mut cmd = launch(&killed, name, tower);
    cmd.env("VIGIL_DEBUG_KILL_AT_STEP", "10")
        .env("VIGIL_DEBUG_KILL_RANK", "1");
    let out = util::run_with_timeout(&mut cmd, LIMIT);
    let (so, se) = util::texts(&out);
    assert!(
        out.status.success(),
        "{name}: killed run failed\n{so}\n{se}"
    );
    let log = format!("{so}{se}");
    assert!(
        log.contains("resuming from checkpoint step 8"),
        "{name}: {log}"
    );
    assert_eq!(
        sha256(&killed.join("export/tiny/1/model.safetensors")),
        sha256(&version.join("model.safetensors")),
        "{name}: the resumed run's export differs"
    );

    // `vigil predict` on the export, then the same rows through `vigil serve`.
    let val = util::repo_root().join(VAL);
    let out = util::run_with_timeout(
        util::vigil()
            .arg("predict")
            .arg("--model")
            .arg(&version)
            .arg("--input")
            .arg(&val),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{name}: vigil predict failed\n{se}");
    let predicted: Vec<Vec<f64>> = so
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let scores = v["scores"].as_object().unwrap();
            util::TINY_LABELS
                .iter()
                .map(|label| scores[*label].as_f64().unwrap())
                .collect()
        })
        .take(4)
        .collect();
    assert_eq!(predicted.len(), 4, "{name}: {so}");

    let repo = reference.join("export/tiny").display().to_string();
    let mut served = Served::start(
        &["--model-repository", &repo, "--poll-secs", "0.2"],
        Duration::from_secs(60),
    );
    let reply = post_json(
        served.addr,
        "/v2/models/tiny/infer",
        &infer_body(&rows(&val, 4)),
    );
    assert_eq!(
        reply.status,
        200,
        "{name}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let scores = json_scores(&reply.json(), util::TINY_LABELS.len());
    for (got, want) in scores.iter().zip(&predicted) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() < 1e-5,
                "{name}: served {got:?}, predicted {want:?}"
            );
        }
    }
    served.terminate(Duration::from_secs(30));
}

#[test]
fn xlm_roberta_fine_tunes_resumes_exactly_and_serves() {
    fine_tune_resume_and_serve("xlm-roberta", Tower::Text);
}

#[test]
fn distilbert_fine_tunes_resumes_exactly_and_serves() {
    fine_tune_resume_and_serve("distilbert", Tower::Text);
}

#[test]
fn deberta_v3_fine_tunes_resumes_exactly_and_serves() {
    fine_tune_resume_and_serve("deberta-v2", Tower::Text);
}

#[test]
fn vit_fine_tunes_resumes_exactly_and_serves() {
    fine_tune_resume_and_serve("vit", Tower::Image);
}

#[test]
fn clip_vision_tower_fine_tunes_resumes_exactly_and_serves() {
    fine_tune_resume_and_serve("clip", Tower::Image);
}

#[test]
fn clip_as_both_towers_fine_tunes_resumes_exactly_and_serves() {
    fine_tune_resume_and_serve("clip", Tower::Both);
}

#[test]
fn siglip_vision_tower_fine_tunes_resumes_exactly_and_serves() {
    fine_tune_resume_and_serve("siglip", Tower::Image);
}

/// `vigil embed` with a CLIP or SigLIP directory as both encoders writes
/// transformers' `text_embeds` and `image_embeds` (joint space, L2-normalised).
#[test]
fn embed_with_a_joint_directory_gives_the_joint_space_vectors() {
    for name in ["clip", "siglip"] {
        let dir = Path::new(&fixture(name)).to_path_buf();
        let read = |p: &Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let r = read(&dir.join("reference.json"));
        let tmp = tempfile::tempdir().unwrap();
        let mut rows = String::new();
        let sentences = r["sentences"].as_array().unwrap();
        let images = r["images"].as_array().unwrap();
        for (i, text) in sentences.iter().enumerate() {
            rows.push_str(&format!(
                "{}\n",
                serde_json::json!({"id": format!("t{i}"), "text": text})
            ));
        }
        for (i, image) in images.iter().enumerate() {
            let src = dir.parent().unwrap().join(image.as_str().unwrap());
            std::fs::copy(&src, tmp.path().join(format!("{i}.png"))).unwrap();
            rows.push_str(&format!(
                "{}\n",
                serde_json::json!({"id": format!("i{i}"), "image": format!("{i}.png")})
            ));
        }
        let input = tmp.path().join("rows.jsonl");
        std::fs::write(&input, rows).unwrap();
        let out = util::run_with_timeout(
            util::vigil()
                .arg("embed")
                .arg("--text-encoder")
                .arg(&dir)
                .arg("--image-encoder")
                .arg(&dir)
                .arg("--input")
                .arg(&input)
                .args(["--max-text-len", &r["max_text_len"].to_string()]),
            LIMIT,
        );
        let (so, se) = util::texts(&out);
        assert!(out.status.success(), "{name}: vigil embed failed\n{se}");
        let lines: Vec<serde_json::Value> = so
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut worst = 0f64;
        for (line, (key, row)) in lines.iter().zip(
            (0..sentences.len())
                .map(|i| ("text_embedding", ("text_embeds", i)))
                .chain((0..images.len()).map(|i| ("image_embedding", ("image_embeds", i)))),
        ) {
            let got = line[key]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: {line}"));
            let want = r[row.0][row.1].as_array().unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                worst = worst.max((g.as_f64().unwrap() - w.as_f64().unwrap()).abs());
            }
        }
        assert!(worst < 1e-4, "{name}: joint vectors differ by {worst}");
    }
}

/// A directory of an architecture Vigil does not compute stops the run before
/// anything is written: exit 2, naming the file, the type and the supported list.
#[test]
fn an_unsupported_model_type_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("electra");
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(&fixture("bert")).to_path_buf();
    for file in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    let config = std::fs::read_to_string(src.join("config.json"))
        .unwrap()
        .replace(r#""model_type": "bert""#, r#""model_type": "electra""#);
    std::fs::write(dir.join("config.json"), config).unwrap();
    let run = tmp.path().join("run");
    let path = format!("model.text.path={}", dir.display());
    let out = util::run_with_timeout(
        &mut util::tiny_launch(
            &run,
            1,
            &[
                "model.text.encoder=bert",
                &path,
                "model.text.tokenizer=null",
            ],
        ),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert_eq!(out.status.code(), Some(2), "{so}{se}");
    assert!(
        se.contains("config.json: model_type: 'electra' is not a supported text encoder")
            && se.contains("supported: bert, roberta, xlm-roberta"),
        "{se}"
    );
    assert!(!run.join("export").exists(), "nothing is exported");
}

/// Frozen Hugging Face towers take the feature cache (keyed by architecture and
/// image transform), and bf16 trains them.
#[test]
fn frozen_hf_towers_use_the_feature_cache_and_bf16_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!("model.text.path={}", fixture("xlm-roberta"));
    let image = format!("model.image.path={}", fixture("clip"));
    let base = [
        "model.text.encoder=bert",
        text.as_str(),
        "model.text.tokenizer=null",
        "model.image.encoder=pretrained",
        image.as_str(),
        "data.max_text_len=24",
        "train.max_steps=8",
        "train.eval_every=null",
        "checkpoint.every_steps=null",
        "logging.histogram_every=null",
    ];
    let frozen = [
        &base[..],
        &[
            "model.text.train_layers=none",
            "model.image.train_layers=none",
        ],
    ]
    .concat();
    let out = util::run_with_timeout(
        &mut util::tiny_launch(&tmp.path().join("cached"), 2, &frozen),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{so}{se}");
    for tower in ["text", "image"] {
        assert!(
            so.contains(&format!(
                r#""event":"feature_cache","split":"train","tower":"{tower}""#
            )),
            "the frozen {tower} tower should be cached:\n{so}"
        );
    }
    let bf16 = [&base[..], &["train.precision=bf16"]].concat();
    let out = util::run_with_timeout(
        &mut util::tiny_launch(&tmp.path().join("bf16"), 2, &bf16),
        LIMIT,
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{so}{se}");
    assert!(
        tmp.path()
            .join("bf16/export/tiny/1/model.safetensors")
            .is_file()
    );
}
