//! Writes a realistic run's worth of TensorBoard events, with a crash and a resume,
//! into `RUN_DIR/tensorboard/`, plus `RUN_DIR/config.resolved.yaml` and
//! `RUN_DIR/expected.json` (what a reviewer must see after TensorBoard drops the
//! superseded steps), for `scripts/check_tensorboard.py --expect` to verify.
//!
//! Usage: `cargo run -p vigil-trainer --example tensorboard_demo -- RUN_DIR [CONFIG]
//! [--no-session-start]` (CONFIG defaults to `configs/tiny.yaml`). The flag leaves out
//! the resume marker, the bug the checker must catch: CI runs it and expects the
//! checker to fail.
//!
//! The story, with `logging.interval: 2`, histograms every 4 steps, evaluation
//! every 6, a checkpoint at step 6 and 12 steps in all:
//! - attempt 1 starts at step 0 (hparams, config text), logs steps 2..10, evaluates
//!   and checkpoints at 6, and dies after step 10 without an end status;
//! - attempt 2 resumes from the step-6 checkpoint: `session_start(7)`, the config
//!   text again at 7, then steps 8..12 with different values (training is not
//!   bit-reproducible across a restart), evaluation at 12, `hparams_end(Success)`.
//!
//! TensorBoard must show attempt 1 up to step 6 and attempt 2 from step 8 on, each
//! step once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use vigil_config::RunConfig;
use vigil_trainer::logging::{
    HParamsStart, MetricLogger, RunStatus, TensorBoardLogger, WriterOptions, code_block,
    flatten_hparams, tags, wall_time,
};

const USAGE: &str = "tensorboard_demo RUN_DIR [CONFIG] [--no-session-start]";
const STEPS: u64 = 12;
const INTERVAL: u64 = 2;
const HIST_EVERY: u64 = 4;
const EVAL_EVERY: u64 = 6;
const CHECKPOINT: u64 = 6;
const CRASH_AFTER: u64 = 10;
const THRESHOLDS: u32 = 51;
const PARAMS: [&str; 2] = ["text.embeddings.weight", "head.linear.weight"];
const SKIP_REASONS: [&str; 2] = ["bad_image", "text_too_long"];

/// Deterministic pseudo-random numbers (xorshift), so runs are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Scalars of a training step; `attempt` shifts them so superseded points are
/// recognisable if a reader fails to drop them.
fn train_scalars(step: u64, attempt: u32) -> Vec<(&'static str, f64)> {
    let s = step as f64;
    let a = f64::from(attempt);
    vec![
        (tags::TRAIN_LOSS, 0.7 / (1.0 + 0.1 * s) + 0.01 * a),
        (tags::TRAIN_LR, 3e-3 * (s / 2.0).min(1.0)),
        (tags::TRAIN_LR_HEAD, 3e-3 * (s / 2.0).min(1.0)),
        (tags::TRAIN_GRAD_NORM, 2.0 / (1.0 + s) + 0.1 * a),
        (tags::TRAIN_SAMPLES_PER_SEC, 30.0 + a),
        (tags::TRAIN_EPOCH, s / 10.0),
        (tags::TIME_DATA_WAIT_MS, 3.0 + a),
        (tags::TIME_FORWARD_MS, 150.0 + a),
        (tags::TIME_BACKWARD_MS, 160.0 + a),
        (tags::TIME_ALLREDUCE_MS, 12.0 + a),
        (tags::TIME_OPTIMIZER_MS, 100.0 + a),
        (tags::TIME_STEP_MS, 425.0 + 5.0 * a),
    ]
}

fn skipped_scalars(step: u64) -> Vec<(String, f64)> {
    SKIP_REASONS
        .iter()
        .enumerate()
        .map(|(i, r)| (tags::skipped_rows(r), (step / 4 + i as u64) as f64))
        .collect()
}

struct Expected {
    scalars: BTreeMap<String, Vec<(u64, f64)>>,
    histograms: BTreeMap<String, Vec<u64>>,
    pr_curves: BTreeMap<String, Vec<u64>>,
    text_steps: Vec<u64>,
}

impl Expected {
    /// Records what attempt `attempt` logged at `step`; a later attempt's point at
    /// a step replaces everything from that step on (the resume rule).
    fn scalar(&mut self, tag: &str, step: u64, value: f64) {
        let series = self.scalars.entry(tag.to_owned()).or_default();
        series.retain(|(s, _)| *s < step);
        // Values are stored as float32 in the file.
        series.push((step, f64::from(value as f32)));
    }
}

fn evaluate(
    logger: &mut dyn MetricLogger,
    labels: &[String],
    step: u64,
    rng: &mut Rng,
    expected: &mut Expected,
) -> Result<()> {
    let mut macro_auroc = 0.0;
    for (i, label) in labels.iter().enumerate() {
        let n = 200;
        let truth: Vec<bool> = (0..n).map(|_| rng.next() < 0.2 + 0.05 * i as f32).collect();
        let skill = 0.2 + 0.04 * step as f32;
        let scores: Vec<f32> = truth
            .iter()
            .map(|&t| {
                let noise = rng.next();
                (if t {
                    0.5 * skill + noise * (1.0 - 0.5 * skill)
                } else {
                    noise * (1.0 - 0.5 * skill)
                })
                .clamp(0.0, 1.0)
            })
            .collect();
        let tag = tags::pr_curve(label);
        logger.pr_curve(&tag, step, &truth, &scores, THRESHOLDS)?;
        expected.pr_curves.entry(tag).or_default().push(step);
        let auroc = 0.5 + 0.03 * step as f64 - 0.01 * i as f64;
        macro_auroc += auroc / labels.len() as f64;
        for (metric, value) in [
            ("auroc", auroc),
            ("f1", auroc - 0.2),
            ("precision", auroc - 0.1),
        ] {
            let tag = tags::val_label(label, metric);
            logger.scalar(&tag, step, value)?;
            expected.scalar(&tag, step, value);
        }
    }
    let val = [
        (tags::VAL_LOSS.to_owned(), 0.6 / (1.0 + 0.1 * step as f64)),
        (tags::val_macro("auroc"), macro_auroc),
        (tags::val_macro("f1"), macro_auroc - 0.2),
    ];
    for (tag, value) in &val {
        logger.scalar(tag, step, *value)?;
        expected.scalar(tag, step, *value);
    }
    Ok(())
}

fn attempt(
    tb_dir: &Path,
    config: &RunConfig,
    config_text: &str,
    attempt: u32,
    marker: bool,
    expected: &mut Expected,
) -> Result<()> {
    let start = if attempt == 1 { 0 } else { CHECKPOINT + 1 };
    let last = if attempt == 1 { CRASH_AFTER } else { STEPS };
    let mut logger = TensorBoardLogger::open(tb_dir, WriterOptions::default())?;
    if marker {
        logger.session_start(start)?;
    }
    if start == 0 {
        let mut metrics = vec![tags::VAL_LOSS.to_owned(), tags::val_macro("auroc")];
        metrics.extend(
            config
                .model
                .labels
                .iter()
                .map(|l| tags::val_label(l, "auroc")),
        );
        metrics.push(tags::TRAIN_LOSS.to_owned());
        logger.hparams_start(&HParamsStart {
            group_name: config.run.name.clone(),
            hparams: flatten_hparams(config)?,
            metrics,
            start_time_secs: wall_time(),
        })?;
    }
    logger.text(tags::CONFIG_TEXT, start, &code_block("yaml", config_text))?;
    expected.text_steps.retain(|s| *s < start);
    expected.text_steps.push(start);
    // Steps past the resume point that this attempt's predecessor logged are dropped.
    for series in expected
        .histograms
        .values_mut()
        .chain(expected.pr_curves.values_mut())
    {
        series.retain(|s| *s < start);
    }
    for series in expected.scalars.values_mut() {
        series.retain(|(s, _)| *s < start);
    }

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(attempt));
    let mut weights: Vec<Vec<f32>> = PARAMS
        .iter()
        .map(|_| (0..4096).map(|_| (rng.next() - 0.5) * 0.1).collect())
        .collect();
    for step in start.max(1)..=last {
        for w in &mut weights {
            for v in w.iter_mut() {
                *v *= 0.999;
            }
        }
        if step % INTERVAL == 0 {
            let scalars = train_scalars(step, attempt);
            logger.scalars(step, &scalars)?;
            for (tag, v) in scalars {
                expected.scalar(tag, step, v);
            }
            let skipped = skipped_scalars(step);
            let refs: Vec<(&str, f64)> = skipped.iter().map(|(t, v)| (t.as_str(), *v)).collect();
            logger.scalars(step, &refs)?;
            for (tag, v) in &skipped {
                expected.scalar(tag, step, *v);
            }
        }
        if step % HIST_EVERY == 0 {
            for (param, w) in PARAMS.iter().zip(&weights) {
                let grads: Vec<f32> = w.iter().map(|v| v * 0.01 * (rng.next() - 0.5)).collect();
                for (tag, values) in [(tags::weights(param), w), (tags::grads(param), &grads)] {
                    logger.histogram(&tag, step, values)?;
                    expected.histograms.entry(tag).or_default().push(step);
                }
            }
        }
        if step % EVAL_EVERY == 0 {
            evaluate(&mut logger, &config.model.labels, step, &mut rng, expected)?;
        }
        if step % CHECKPOINT == 0 {
            logger.sync()?;
        }
    }
    if attempt == 2 {
        logger.hparams_end(last, RunStatus::Success)?;
        logger.sync()?;
    }
    // Attempt 1 "crashes": the logger is dropped (buffer flushed) without an end.
    Ok(())
}

fn series_json(series: &BTreeMap<String, Vec<u64>>) -> Value {
    series
        .iter()
        .map(|(t, s)| (t.clone(), json!({ "steps": s })))
        .collect()
}

fn main() -> Result<()> {
    let (flags, mut args): (Vec<_>, Vec<_>) = std::env::args_os()
        .skip(1)
        .partition(|a| a.to_string_lossy().starts_with("--"));
    let marker = match flags.first().map(|f| f.to_string_lossy()) {
        None => true,
        Some(f) if f == "--no-session-start" && flags.len() == 1 => false,
        Some(f) => anyhow::bail!("unknown flag {f}; usage: {USAGE}"),
    };
    args.reverse();
    let run_dir = PathBuf::from(args.pop().context(USAGE)?);
    let config_path = args
        .pop()
        .map_or_else(|| PathBuf::from("configs/tiny.yaml"), PathBuf::from);
    let config = RunConfig::load(&config_path, &[])?;
    let config_text = config.to_yaml();
    let tb_dir = run_dir.join("tensorboard");
    if tb_dir.exists() {
        std::fs::remove_dir_all(&tb_dir)
            .with_context(|| format!("clearing {}", tb_dir.display()))?;
    }
    std::fs::create_dir_all(&run_dir)?;
    std::fs::write(run_dir.join("config.resolved.yaml"), &config_text)?;

    let mut expected = Expected {
        scalars: BTreeMap::new(),
        histograms: BTreeMap::new(),
        pr_curves: BTreeMap::new(),
        text_steps: Vec::new(),
    };
    attempt(&tb_dir, &config, &config_text, 1, true, &mut expected)?;
    attempt(&tb_dir, &config, &config_text, 2, marker, &mut expected)?;

    let hparams = flatten_hparams(&config)?;
    let expect = json!({
        "event_files": 2,
        "resumed_at": [CHECKPOINT + 1],
        "scalars": expected.scalars.iter().map(|(t, s)| {
            (t.clone(), json!({
                "steps": s.iter().map(|p| p.0).collect::<Vec<_>>(),
                "values": s.iter().map(|p| p.1).collect::<Vec<_>>(),
            }))
        }).collect::<serde_json::Map<_, _>>(),
        "histograms": series_json(&expected.histograms),
        "pr_curves": expected.pr_curves.iter().map(|(t, s)| {
            (t.clone(), json!({ "steps": s, "num_thresholds": THRESHOLDS }))
        }).collect::<serde_json::Map<_, _>>(),
        "text": { tags::CONFIG_TEXT: { "steps": expected.text_steps, "config_file": "config.resolved.yaml" } },
        "hparams": {
            "keys": hparams.keys().collect::<Vec<_>>(),
            "values": { "optim.lr": 3e-3, "run.name": config.run.name, "train.max_steps": 40 },
            "metrics": [tags::VAL_LOSS, tags::val_macro("auroc")],
            "status": "STATUS_SUCCESS",
        },
    });
    std::fs::write(
        run_dir.join("expected.json"),
        serde_json::to_string_pretty(&expect)?,
    )?;
    println!("wrote {}", tb_dir.display());
    Ok(())
}
