//! The serving export at the end (or at the best evaluation) of a run, behind the
//! champion/challenger gate. What goes into a version's files, and how they are
//! named, is [`vigil_export::format`]'s; this file decides when and whether.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::{AutodiffBackend, Backend};

use super::error::TrainError;
use super::evaluate::score_shard;
use super::gather::merge;
use super::signals::Heartbeat;
use super::state::ExportInputs;
use vigil_config::RunConfig;
use vigil_data::Dataset;
use vigil_eval::EvalReport;
use vigil_eval::{Champion, Decision, decide};
use vigil_eval::{ScoredRows, champion_scores_path};
use vigil_export::format::preprocessing;
use vigil_export::onnx::model::OnnxMetadata;
use vigil_export::onnx::{Signature, to_onnx, triton};
use vigil_export::{MODEL_FILE, ServingInfo, VersionFiles};
use vigil_model::{ModerationModel, TextTokenizer};
use vigil_store::atomic::write_atomic;
use vigil_store::checkpoint::StoreError;
use vigil_store::repo::ModelRepo;
use vigil_store::storage::Location;

/// Rank 0's exporter: remembers the latest evaluation and publishes versions.
#[derive(Debug)]
pub struct Exporter {
    cfg: RunConfig,
    rank: usize,
    /// The latest evaluation: what the next version publishes with (and what a
    /// checkpoint that owes an export carries).
    pub inputs: ExportInputs,
    /// An evaluation step whose model should be exported (`when: best|every`).
    pub pending_eval: Option<u64>,
    /// Versions published by this run.
    pub published: Vec<u64>,
    /// The last gate decision.
    pub decision: Option<Decision>,
    /// The run's identity, recorded in every version it publishes (`meta.run_uid`).
    run_uid: String,
    /// Whether a version of this run may already be published: true when the
    /// run resumed from a checkpoint (whose `run_uid` an earlier process
    /// published under); a fresh run's new identity cannot be in the repository,
    /// so its exports skip the search.
    resumed: bool,
}

impl Exporter {
    /// An exporter for `cfg` on `rank` (only rank 0 writes) of the run `run_uid`,
    /// `resumed` from a checkpoint or not.
    pub fn new(cfg: &RunConfig, rank: usize, run_uid: &str, resumed: bool) -> Self {
        Self {
            run_uid: run_uid.to_string(),
            resumed,
            cfg: cfg.clone(),
            rank,
            inputs: ExportInputs {
                metrics: BTreeMap::new(),
                thresholds: cfg.model.labels.iter().map(|l| (l.clone(), 0.5)).collect(),
            },
            pending_eval: None,
            published: Vec::new(),
            decision: None,
        }
    }

    /// Publishes `model` as the next version if the gate allows; writes
    /// `export-decision.json`. A no-op on ranks other than 0 or without `export.dir`.
    pub fn export<B: AutodiffBackend>(
        &mut self,
        model: &ModerationModel<B>,
        tokenizer: Option<&TextTokenizer>,
        val: Option<&Arc<Dataset>>,
        device: &B::Device,
        step: u64,
    ) -> Result<(), TrainError> {
        let Some(dir) = self.cfg.export.dir.clone() else {
            return Ok(());
        };
        if self.rank != 0 {
            return Ok(());
        }
        let dir = Location::parse(&dir).map_err(StoreError::from)?;
        let repo = ModelRepo::at(&dir, &self.cfg.export.model_name)?;
        // A restart of a run that published this step's version and then died
        // (before the decision file, or before its process could exit 0) finds
        // that version instead of publishing a second copy or gating against it.
        let uid = self.run_uid.as_str();
        let ours = |meta: &serde_json::Value| {
            meta.get("run_uid").and_then(|u| u.as_str()) == Some(uid)
                && meta.get("step").and_then(|s| s.as_u64()) == Some(step)
        };
        if self.resumed
            && let Some(version) = repo.find_published(ours)?
        {
            return self.decided(Decision::already_published(version, step));
        }
        let gate = self.cfg.export.gate.clone();
        let champion = match (&gate, repo.newest_complete()?) {
            (Some(g), Some(newest)) => {
                let version = newest.version.version;
                // On a bucket: the verified version, downloaded once to a local cache.
                let path = match &dir {
                    Location::Remote(_) => dir
                        .join(&self.cfg.export.model_name)
                        .map_err(|e| e.to_string())
                        .and_then(|repo| {
                            vigil_store::repo::locate(&repo, Some(version))
                                .map(|v| v.dir)
                                .map_err(|e| e.to_string())
                        }),
                    Location::Local(_) => Ok(PathBuf::from(&newest.version.location)),
                };
                match path.and_then(|p| self.score_champion::<B>(&p, val, device, &g.metric)) {
                    Ok(score) => Champion::Scored { version, score },
                    Err(why) => Champion::Unscorable { version, why },
                }
            }
            _ => Champion::None,
        };
        let challenger = gate
            .as_ref()
            .and_then(|g| self.inputs.metrics.get(&g.metric).copied());
        let mut decision = decide(gate.as_ref(), &champion, challenger);
        if decision.published {
            let (files, sig) = version_files(
                &self.cfg,
                model,
                tokenizer,
                step,
                &self.inputs.thresholds,
                &self.inputs.metrics,
            )?;
            let meta = serde_json::json!({
                "run": self.cfg.run.name,
                "run_uid": self.run_uid,
                "step": step,
            });
            super::hooks::in_export(1);
            let version = repo.publish(&files, meta)?;
            super::hooks::in_export(2);
            if let Some(sig) = &sig {
                write_triton_files(&repo, &self.cfg, sig)?;
            }
            decision.published_version = Some(version.version);
            repo.prune(self.cfg.export.keep_versions)?;
        }
        self.decided(decision)
    }

    /// Records `decision`: `export-decision.json`, the log line, the summary.
    fn decided(&mut self, decision: Decision) -> Result<(), TrainError> {
        if let Some(v) = decision.published_version
            && !self.published.contains(&v)
        {
            self.published.push(v);
        }
        decision.write(&self.cfg.output_dir())?;
        eprintln!("{}", decision.summary());
        self.decision = Some(decision);
        Ok(())
    }

    fn score_champion<B: AutodiffBackend>(
        &self,
        version_dir: &Path,
        val: Option<&Arc<Dataset>>,
        device: &B::Device,
        metric: &str,
    ) -> Result<f64, String> {
        let val = val.ok_or("no validation data (data.val) to score it on")?;
        let champion = ModerationModel::<B::InnerBackend>::from_export(version_dir, device)
            .map_err(|e| e.to_string())?;
        if champion.model.labels() != self.cfg.model.labels.as_slice() {
            return Err(format!(
                "its labels {:?} are not this run's {:?}",
                champion.model.labels(),
                self.cfg.model.labels
            ));
        }
        let mut hb = Heartbeat::from_env();
        let (shard, _, _) = score_shard(
            &champion.model,
            champion.tokenizer.as_ref(),
            val,
            None,
            0,
            1,
            &self.cfg,
            device,
            &mut hb,
        )
        .map_err(|e| e.to_string())?;
        let scores = merge(&[shard], &self.cfg.model.labels);
        // The champion's rows beside the evaluation reports: `vigil report` puts
        // a paired bootstrap of challenger − champion per label in the decision.
        // Best effort: the decision does not depend on this file.
        if let Some(rows) = ScoredRows::join(val, &scores) {
            let path = champion_scores_path(&self.cfg.output_dir());
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| write_atomic(&path, rows.to_jsonl().as_bytes()));
            if let Err(e) = written {
                tracing::warn!("could not write {}: {e}", path.display());
            }
        }
        let report = EvalReport::compute(&scores);
        report
            .metric(metric)
            .ok_or_else(|| format!("its {metric} is undefined on this data"))
    }

    /// Where a user finds the run's outputs.
    pub fn summary(&self, run_dir: &Path, step: u64) -> String {
        let mut s = format!(
            "finished at step {step}\n  TensorBoard: tensorboard --logdir {}\n  evaluation reports: {}\n  checkpoints: {}",
            run_dir.join("tensorboard").display(),
            run_dir.join("eval").display(),
            run_dir.join("checkpoints").display(),
        );
        if let (Some(dir), Some(v)) = (&self.cfg.export.dir, self.published.last()) {
            s.push_str(&format!(
                "\n  exported model: {}",
                Path::new(dir)
                    .join(&self.cfg.export.model_name)
                    .join(v.to_string())
                    .display()
            ));
        } else if let Some(d) = &self.decision {
            s.push_str(&format!("\n  {}", d.summary()));
        }
        s
    }
}

/// A version's files, `(name, bytes)` in publishing order.
pub type Files = Vec<(String, Vec<u8>)>;

/// The files of a version of `model` at `step` (the model's own, the serving
/// metadata, thresholds, metrics and, with `export.onnx`, `model.onnx`) and the
/// ONNX signature when one was written. Also what `vigil export` publishes.
pub fn version_files<B: Backend>(
    cfg: &RunConfig,
    model: &ModerationModel<B>,
    tokenizer: Option<&TextTokenizer>,
    step: u64,
    thresholds: &[(String, f32)],
    metrics: &BTreeMap<String, f64>,
) -> Result<(Files, Option<Signature>), TrainError> {
    // The model writes what `ModerationModel::from_export` (and so `vigil embed
    // --model`, the gate's champion) reads back; the export format adds the
    // serving metadata.
    let staging = cfg
        .output_dir()
        .join(format!(".export-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    model.write_model_files(&staging, &cfg.model, &cfg.data, tokenizer)?;
    let mut model_files = Vec::new();
    let names: Vec<String> = std::fs::read_dir(&staging)
        .map_err(|source| TrainError::Io {
            path: staging.clone(),
            source,
        })?
        .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
        .collect();
    for name in names {
        let path = staging.join(&name);
        let bytes = std::fs::read(&path).map_err(|source| TrainError::Io { path, source })?;
        let bytes = if name == MODEL_FILE {
            super::resume::canonical_safetensors(bytes)?
        } else {
            bytes
        };
        model_files.push((name, bytes));
    }
    let _ = std::fs::remove_dir_all(&staging);
    let info = ServingInfo {
        run: cfg.run.name.clone(),
        step,
        labels: cfg.model.labels.clone(),
        task: cfg.model.task,
        max_text_len: cfg.data.max_text_len,
        image_size: cfg.data.image_size,
        image_transform: cfg.data.image_transform.unwrap_or_default(),
        has_tokenizer: tokenizer.is_some(),
        pad_to_max_len: tokenizer.is_some_and(|t| t.pads_to_max()),
    };
    let bad_config = |_| TrainError::Protocol {
        what: "the model wrote a bad config.json",
    };
    let built = VersionFiles::build(model_files, &info, thresholds, metrics).map_err(bad_config)?;
    if !cfg.export.onnx {
        return Ok((built.files, None));
    }
    let by_label: BTreeMap<&str, f32> = thresholds.iter().map(|(l, t)| (l.as_str(), *t)).collect();
    let meta = OnnxMetadata {
        thresholds: serde_json::json!(by_label),
        preprocessing: preprocessing(&info),
        run: cfg.run.name.clone(),
        step,
    };
    let (bytes, sig) = to_onnx(model, cfg.data.image_size, &meta)?;
    let built = built.with_onnx(bytes, sig.to_json()).map_err(bad_config)?;
    Ok((built.files, Some(sig)))
}

/// Writes Triton's `config.pbtxt` and `labels.txt` into the repository root
/// (each atomically), for the model `sig` describes.
pub fn write_triton_files(
    repo: &ModelRepo,
    cfg: &RunConfig,
    sig: &Signature,
) -> Result<(), TrainError> {
    let config = triton::config_pbtxt(&cfg.export.model_name, sig, cfg.export.triton_instance);
    repo.store()
        .put_pointer(triton::CONFIG_PBTXT, config.as_bytes())?;
    repo.store().put_pointer(
        triton::LABELS_TXT,
        triton::labels_txt(&cfg.model.labels).as_bytes(),
    )?;
    Ok(())
}
