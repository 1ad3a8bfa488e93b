use std::path::Path;

use super::*;

const MINIMAL: &str = "\
run:
  name: t
model:
  labels: [hate, spam]
  text:
    encoder: scratch
data:
  train: data/train.jsonl
optim:
  lr: 1e-3
  warmup_steps: 10
train:
  batch_size: 4
  max_steps: 100
";

fn env(v: &str) -> Option<String> {
    (v == "SCRATCH").then(|| "/scratch".to_string())
}

fn load(text: &str, overrides: &[&str]) -> Result<RunConfig, ConfigError> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    RunConfig::from_yaml(text, Path::new("configs/x.yaml"), &o, &env)
}

fn error_text(text: &str, overrides: &[&str]) -> String {
    load(text, overrides).expect_err("should fail").to_string()
}

#[test]
fn minimal_config_gets_defaults() {
    let c = load(MINIMAL, &[]).unwrap();
    assert_eq!(c.model.labels, ["hate", "spam"]);
    assert_eq!(c.launch.nproc_per_node, 1);
    assert_eq!(c.train.resume, Resume::Auto);
    assert_eq!(c.output_dir(), Path::new("checkpoints/t"));
}

#[test]
fn misspelled_key_names_file_line_and_suggestion() {
    let text = MINIMAL.replace("warmup_steps", "warmpu_steps");
    let msg = error_text(&text, &[]);
    assert_eq!(
        msg,
        "configs/x.yaml:11:3: optim.warmpu_steps: unknown key 'optim.warmpu_steps' \
         (did you mean 'warmup_steps'?)"
    );
}

#[test]
fn wrong_type_names_key_and_line() {
    let text = MINIMAL.replace("batch_size: 4", "batch_size: \"lots\"");
    let msg = error_text(&text, &[]);
    assert!(msg.starts_with("configs/x.yaml:13:"), "{msg}");
    assert!(
        msg.contains("train.batch_size: invalid type: string \"lots\""),
        "{msg}"
    );
}

#[test]
fn cross_field_problems_are_all_reported_with_lines() {
    let text = MINIMAL
        .replace("warmup_steps: 10", "warmup_steps: 500")
        .replace("[hate, spam]", "[hate, hate]");
    let msg = error_text(&text, &[]);
    assert!(msg.starts_with("2 problems"), "{msg}");
    assert!(
        msg.contains("configs/x.yaml:4:3: model.labels: 'hate' appears twice"),
        "{msg}"
    );
    assert!(
        msg.contains("configs/x.yaml:11:3: optim.warmup_steps: must be < train.max_steps (100)"),
        "{msg}"
    );
}

#[test]
fn overrides_apply_and_are_typed() {
    let c = load(
        MINIMAL,
        &[
            "optim.lr=2e-5",
            "train.batch_size=8",
            "model.head.pos_weight.hate=3",
        ],
    )
    .unwrap();
    assert_eq!(c.optim.lr, 2e-5);
    assert_eq!(c.train.batch_size, 8);
    assert_eq!(c.model.head.pos_weight["hate"], 3.0);
    let c = load(
        MINIMAL,
        &[
            "train.early_stopping.monitor=val/macro_auroc",
            "data.val=v.jsonl",
        ],
    )
    .unwrap();
    assert_eq!(c.train.early_stopping.unwrap().patience, 3);
}

#[test]
fn unknown_override_key_is_an_error() {
    assert_eq!(
        error_text(MINIMAL, &["no.such.key=1"]),
        "--set no.such.key=1: no.such.key: unknown key 'no.such.key'"
    );
    let msg = error_text(MINIMAL, &["optim.lrr=1"]);
    assert!(
        msg.contains("unknown key 'optim.lrr' (did you mean 'lr'?)"),
        "{msg}"
    );
    let msg = error_text(MINIMAL, &["optim.lr.x=1"]);
    assert!(msg.contains("unknown key 'optim.lr.x'"), "{msg}");
}

#[test]
fn bad_override_value_names_the_override() {
    let msg = error_text(MINIMAL, &["optim.lr=abc"]);
    assert!(
        msg.starts_with("--set optim.lr=abc: optim.lr: invalid type: string \"abc\""),
        "{msg}"
    );
    let msg = error_text(MINIMAL, &["optim.warmup_steps=1000"]);
    assert!(
        msg.contains("--set optim.warmup_steps=1000: optim.warmup_steps: must be <"),
        "{msg}"
    );
    assert!(error_text(MINIMAL, &["optim.lr"]).contains("expected KEY=VALUE"));
}

#[test]
fn environment_variables_expand_in_strings() {
    let text = MINIMAL.replace("data/train.jsonl", "${SCRATCH}/train.jsonl");
    let c = load(&text, &["run.output_dir=${NOPE:-/tmp/out}"]).unwrap();
    assert_eq!(c.data.train, "/scratch/train.jsonl");
    assert_eq!(c.run.output_dir.as_deref(), Some("/tmp/out"));
    let msg = error_text(&MINIMAL.replace("data/train.jsonl", "${NOPE}/t.jsonl"), &[]);
    assert!(
        msg.contains("configs/x.yaml:8:3: data.train: environment variable NOPE is not set"),
        "{msg}"
    );
}

#[test]
fn train_layers_and_resume_accept_words_numbers_and_paths() {
    let c = load(
        MINIMAL,
        &[
            "model.text.train_layers=2",
            "train.resume=runs/x/checkpoints/step-5",
        ],
    )
    .unwrap();
    assert_eq!(c.model.text.unwrap().train_layers, TrainLayers::Top(2));
    assert_eq!(
        c.train.resume,
        Resume::Path("runs/x/checkpoints/step-5".into())
    );
    assert!(
        error_text(MINIMAL, &["model.text.train_layers=some"]).contains("model.text.train_layers")
    );
}

#[test]
fn resolved_yaml_round_trips() {
    let c = load(MINIMAL, &[]).unwrap();
    let again = load(&c.to_yaml(), &[]).unwrap();
    assert_eq!(c, again);
}

#[test]
fn empty_file_reports_missing_essentials() {
    let msg = error_text("", &[]);
    assert!(
        msg.contains("model.labels: must list at least one label"),
        "{msg}"
    );
    assert!(msg.contains("data.train: is required"), "{msg}");
}

#[test]
fn a_bucket_output_dir_keeps_local_files_in_the_local_dir() {
    let c = load(MINIMAL, &["run.output_dir=s3://b/runs/a"]).unwrap();
    assert_eq!(c.output_url().unwrap().to_string(), "s3://b/runs/a");
    let local = c.output_dir();
    assert!(
        local.starts_with(std::env::temp_dir().join("vigil")),
        "{local:?}"
    );
    assert!(!local.to_string_lossy().contains("s3:"), "{local:?}");
    assert_eq!(local, c.local_dir());
    let c = load(
        MINIMAL,
        &["run.output_dir=gs://b/x", "run.local_dir=/scratch/w"],
    )
    .unwrap();
    assert_eq!(c.output_dir(), Path::new("/scratch/w"));
    // Local paths are unchanged; a file:// URL is its path.
    let c = load(MINIMAL, &["run.output_dir=out/a"]).unwrap();
    assert_eq!(
        (c.output_dir(), c.output_url()),
        (PathBuf::from("out/a"), None)
    );
    let c = load(MINIMAL, &["run.output_dir=file:///data/run"]).unwrap();
    assert_eq!(c.output_dir(), Path::new("/data/run"));
}

#[test]
fn unknown_schemes_and_url_local_dirs_are_config_errors() {
    let e = error_text(
        MINIMAL,
        &[
            "run.output_dir=s4://b/x",
            "export.dir=http://h/x",
            "data.train=s3://b/../t.jsonl",
            "run.local_dir=s3://b/w",
        ],
    );
    for key in [
        "run.output_dir",
        "export.dir",
        "data.train",
        "run.local_dir",
    ] {
        assert!(e.contains(key), "{key} missing in:\n{e}");
    }
}
#[test]
fn feature_cache_search_takes_a_flow_list_of_local_directories() {
    assert!(
        load(MINIMAL, &[])
            .unwrap()
            .train
            .feature_cache_search
            .is_empty()
    );
    let c = load(
        MINIMAL,
        &[r#"train.feature_cache_search=["/r/fold-0/feature-cache", "b, c"]"#],
    )
    .unwrap();
    assert_eq!(
        c.train.feature_cache_search,
        ["/r/fold-0/feature-cache", "b, c"]
    );
    let e = error_text(MINIMAL, &["train.feature_cache_search=[a, s3://b/fc, '']"]);
    assert!(e.contains("train.feature_cache_search[1]"), "{e}");
    assert!(e.contains("train.feature_cache_search[2]"), "{e}");
    assert!(!e.contains("train.feature_cache_search[0]"), "{e}");
}

#[test]
fn retention_ignores_keep_best_without_monitor() {
    use vigil_store::checkpoint::Ranking;
    let mut c = CheckpointSection {
        keep_best: 3,
        ..Default::default()
    };
    assert_eq!(c.retention().0.keep_best, 0);
    c.monitor = Some(Monitor {
        metric: "val/loss".into(),
        mode: MonitorMode::Min,
    });
    let (p, metric) = c.retention();
    assert_eq!(
        (p.keep_last, p.keep_best, p.mode),
        (2, 3, Ranking::LowerFirst)
    );
    assert_eq!(metric.as_deref(), Some("val/loss"));
}
