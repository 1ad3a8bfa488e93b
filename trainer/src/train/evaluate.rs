//! Distributed evaluation: every rank scores its shard of the validation set in
//! file order, the shards are gathered on rank 0, and rank 0 computes the report,
//! writes `eval/step-<S>.json` and the per-row scores `eval/step-<S>.scores.jsonl`
//! (what `vigil report` reads: [`vigil_eval::scored`]), logs `val/*` scalars
//! and one PR curve per label, and prints a short table. The per-batch loop is [`vigil_infer::score`]'s, the same
//! one `vigil predict` and `vigil eval` run.

use std::path::Path;
use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::comm::Comm;
use super::error::TrainError;
use super::gather::{ShardScores, merge};
use super::grid::{Tile, error_grid, png};
use super::progress::{Progress, Ticker};
use super::signals::Heartbeat;
use crate::logging::{MetricLogger, tags};
use vigil_config::{RunConfig, UnevenTail};
use vigil_data::{Dataset, ShardSampler};
use vigil_eval::label_errors;
use vigil_eval::{EvalReport, Scores};
use vigil_eval::{ScoredRows, scores_file_name};
use vigil_infer::score::score_batches;
use vigil_model::{ModerationModel, SplitFeatures, TextTokenizer};
use vigil_store::atomic::write_atomic;
use vigil_store::storage::upload_run_file;

/// Thresholds of the PR curves logged per label.
const PR_THRESHOLDS: u32 = 101;

/// What one evaluation produced.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    /// The report (rank 0 only).
    pub report: Option<EvalReport>,
    /// The merged scores (rank 0 only).
    pub scores: Option<Scores>,
    /// Mean validation loss over all scored rows (every rank).
    pub loss: f64,
    /// `val/*` scalars of the report (rank 0 only), for checkpoint metadata.
    pub scalars: std::collections::BTreeMap<String, f64>,
}

/// Scores `val` with `model` (in evaluation mode: no dropout, no autodiff) across
/// the group; rank 0 gets the report.
#[allow(clippy::too_many_arguments)]
pub fn evaluate<B: AutodiffBackend>(
    model: &ModerationModel<B>,
    tokenizer: Option<&TextTokenizer>,
    val: &Arc<Dataset>,
    cached: Option<&SplitFeatures>,
    comm: &mut Comm,
    cfg: &RunConfig,
    device: &B::Device,
    heartbeat: &mut Heartbeat,
) -> Result<EvalOutcome, TrainError> {
    let inner = model.valid();
    let (rank, world) = (comm.rank(), comm.world_size());
    let (shard, loss_sum, rows) = score_shard::<B::InnerBackend>(
        &inner, tokenizer, val, cached, rank, world, cfg, device, heartbeat,
    )?;
    let labels = cfg.model.labels.clone();
    let gathered = comm.all_gather_f32(&shard.encode(labels.len()))?;
    let mut sums = [loss_sum, rows as f64];
    comm.sum_f64(&mut sums)?;
    let loss = sums[0] / sums[1].max(1.0);
    if rank != 0 {
        return Ok(EvalOutcome {
            report: None,
            scores: None,
            loss,
            scalars: Default::default(),
        });
    }
    let shards = gathered
        .iter()
        .map(|b| ShardScores::decode(b, labels.len()))
        .collect::<Option<Vec<_>>>()
        .ok_or(TrainError::Protocol {
            what: "evaluation scores of a rank have a bad length",
        })?;
    let scores = merge(&shards, &labels);
    let report = EvalReport::compute(&scores);
    let mut scalars: std::collections::BTreeMap<String, f64> =
        report.scalars().into_iter().collect();
    scalars.insert(tags::VAL_LOSS.to_string(), loss);
    Ok(EvalOutcome {
        report: Some(report),
        scores: Some(scores),
        loss,
        scalars,
    })
}

/// Scores one rank's shard of `ds` (world 1 scores everything, as the export gate
/// does for the champion); `cached` holds frozen towers' features of `ds`.
#[allow(clippy::too_many_arguments)]
pub fn score_shard<B: Backend>(
    model: &ModerationModel<B>,
    tokenizer: Option<&TextTokenizer>,
    ds: &Arc<Dataset>,
    cached: Option<&SplitFeatures>,
    rank: usize,
    world: usize,
    cfg: &RunConfig,
    device: &B::Device,
    heartbeat: &mut Heartbeat,
) -> Result<(ShardScores, f64, usize), TrainError> {
    let sampler = ShardSampler::new(
        ds.len(),
        rank,
        world,
        cfg.train.batch_size,
        cfg.run.seed,
        false,
        UnevenTail::Pad,
    )?;
    let mut shard = ShardScores::default();
    let (mut loss_sum, mut rows) = (0.0f64, 0usize);
    let mut ticker = Ticker::eval(cfg.logging.format, rank, sampler.samples_per_rank());
    score_batches::<B, TrainError>(
        model,
        tokenizer,
        ds,
        &sampler,
        &cfg.data,
        cached,
        true,
        device,
        |scored| {
            let batch = scored.batch;
            loss_sum += scored.loss.unwrap_or(0.0) * batch.len() as f64;
            rows += batch.len();
            let idx: Vec<u32> = batch.rows.iter().map(|&r| r as u32).collect();
            shard.push(&idx, scored.probs, &batch.labels, &batch.label_known);
            heartbeat.beat();
            ticker.update(rows);
            Ok(())
        },
    )?;
    Ok((shard, loss_sum, rows))
}

/// Errors shown per kind in each label's TensorBoard grid.
const GRID_ERRORS: usize = super::grid::COLUMNS;

/// Per label, the grid of the top false positives and negatives at the
/// thresholds this evaluation would ship, as a TensorBoard image.
fn log_error_grids(
    report: &EvalReport,
    scores: &Scores,
    val: &Dataset,
    step: u64,
    logger: &mut dyn MetricLogger,
    cfg: &RunConfig,
) -> Result<(), TrainError> {
    let ids: Vec<String> = val.examples().iter().map(|e| e.id.clone()).collect();
    if ids.len() != scores.rows() {
        return Ok(());
    }
    let thresholds: Vec<f32> = report.thresholds().into_iter().map(|(_, t)| t).collect();
    let index: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let errors = label_errors(&ids, scores, &thresholds, cfg.model.task, GRID_ERRORS);
    for e in &errors {
        let tiles = |misses: &[vigil_eval::Miss]| -> Vec<Tile<'_>> {
            misses
                .iter()
                .map(|m| Tile {
                    image: index
                        .get(m.id.as_str())
                        .and_then(|&i| val.example(i).image.as_deref()),
                    score: m.score,
                })
                .collect()
        };
        let img = error_grid(
            &tiles(&e.false_positives),
            &tiles(&e.false_negatives),
            e.threshold,
        );
        logger.image(
            &tags::error_grid(&e.label),
            step,
            &png(&img),
            img.width(),
            img.height(),
        )?;
    }
    Ok(())
}

/// Rank 0: writes the report and scores files, logs scalars and PR curves,
/// prints the table. `val` is the dataset `ev` scored.
#[allow(clippy::too_many_arguments)]
pub fn record(
    report: &EvalReport,
    ev: &EvalOutcome,
    val: &Dataset,
    step: u64,
    logger: &mut dyn MetricLogger,
    progress: Option<&Progress>,
    run_dir: &Path,
    cfg: &RunConfig,
) -> Result<(), TrainError> {
    let dir = run_dir.join("eval");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let file = dir.join(format!("step-{step}.json"));
    let body = serde_json::json!({
        "step": step,
        "run": cfg.run.name,
        "vigil_version": env!("CARGO_PKG_VERSION"),
        "val_file": cfg.data.val,
        "loss": ev.loss,
        "report": report,
    });
    let text = serde_json::to_string_pretty(&body).expect("a report serializes");
    write_atomic(&file, text.as_bytes()).map_err(io(&file))?;
    let output_url = cfg.output_url();
    if let Some(url) = &output_url {
        upload_run_file(url, &format!("eval/step-{step}.json"), text.as_bytes())?;
    }
    if let Some(scores) = &ev.scores {
        let rows = ScoredRows::join(val, scores).ok_or(TrainError::Protocol {
            what: "the gathered evaluation scores do not cover the validation rows",
        })?;
        let scores_file = dir.join(scores_file_name(step));
        let jsonl = rows.to_jsonl();
        write_atomic(&scores_file, jsonl.as_bytes()).map_err(io(&scores_file))?;
        let key = format!("eval/{}", scores_file_name(step));
        if let Some(url) = &output_url {
            upload_run_file(url, &key, jsonl.as_bytes())?;
        }
    }

    let values: Vec<(&str, f64)> = ev.scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    logger.scalars(step, &values)?;
    if let Some(scores) = &ev.scores {
        for (l, label) in scores.labels.iter().enumerate() {
            let pairs = scores.pairs(l);
            if pairs.is_empty() {
                continue;
            }
            let ys: Vec<bool> = pairs.iter().map(|p| p.1).collect();
            let ss: Vec<f32> = pairs.iter().map(|p| p.0).collect();
            logger.pr_curve(&tags::pr_curve(label), step, &ys, &ss, PR_THRESHOLDS)?;
        }
    }
    if let Some(scores) = &ev.scores {
        log_error_grids(report, scores, val, step, logger, cfg)?;
    }
    logger.flush()?;
    if let Some(p) = progress {
        p.println(&format!(
            "eval step {step}: loss {:.4}, macro AUROC {}, macro AUPRC {} ({})\n{}",
            ev.loss,
            report.macro_avg.auroc,
            report.macro_avg.auprc,
            file.display(),
            report.table()
        ));
    }
    Ok(())
}
