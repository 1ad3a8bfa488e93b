//! `vigil export`: publish an existing checkpoint or export version as the next
//! version of a model repository, with every file today's export writes
//! (`model.onnx` included) and the repository's Triton files — for runs made
//! before the ONNX export existed, or to move a model into another repository.
//!
//! A checkpoint (`<run>/checkpoints/step-<S>`) brings its run's
//! `config.resolved.yaml` (two levels up), its verified `model.safetensors`, and
//! the thresholds of the run's last evaluation at or before step S
//! (`<run>/eval/step-<E>.json`; 0.5 without one). A version brings its
//! `config.json`, weights, `thresholds.json` and `metrics.json`. Publishing is
//! [`ModelRepo::publish`]: the same staging, manifest and rename as training.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use super::error::TrainError;
use super::publish::{version_files, write_triton_files};
use vigil_config::{RunConfig, TritonInstance};
use vigil_export::VersionFiles;
use vigil_model::ModerationModel;
use vigil_store::repo::ModelRepo;
use vigil_store::storage::Location;

/// What `vigil export` publishes.
#[derive(Debug, Clone)]
pub enum ExportSource {
    /// A training checkpoint directory (`<run>/checkpoints/step-<S>`), local or on
    /// a bucket.
    Checkpoint(Location),
    /// A version directory (what `vigil predict --model` accepts, already located).
    Version(PathBuf),
}

/// What was published.
#[derive(Debug, Clone)]
pub struct Republished {
    /// The new version's number.
    pub version: u64,
    /// Its directory.
    pub location: String,
    /// The training step of the model.
    pub step: u64,
}

fn bad(location: &dyn std::fmt::Display, message: impl Into<String>) -> TrainError {
    TrainError::ExportSource {
        location: location.to_string(),
        message: message.into(),
    }
}

/// The last component of a location: a directory's name, a prefix's last key.
fn last_name(location: &Location) -> Option<String> {
    match location {
        Location::Local(p) => p.file_name()?.to_str().map(str::to_string),
        Location::Remote(u) => Some(u.split_last().1).filter(|n| !n.is_empty()),
    }
}

/// The step of a `step-<S>` directory name.
fn step_of(dir: &Location) -> Option<u64> {
    vigil_store::checkpoint::parse_step(&last_name(dir)?)
}

/// The run directory a checkpoint belongs to (two levels up): a directory or,
/// for `--checkpoint s3://…/checkpoints/step-<S>`, a bucket prefix.
enum RunDir {
    Local(PathBuf),
    Remote(vigil_store::storage::Bucket),
}

impl RunDir {
    /// The run directory of the checkpoint `dir` (a path or a URL).
    fn of_checkpoint(dir: &Location) -> Result<Self, TrainError> {
        let dir = match dir {
            Location::Remote(url) => {
                let run = url.parent().parent();
                let bucket = vigil_store::storage::Bucket::open(&run)
                    .map_err(vigil_store::checkpoint::StoreError::from)?;
                return Ok(Self::Remote(bucket));
            }
            Location::Local(dir) => dir,
        };
        if !dir.is_dir() {
            return Err(bad(
                &dir.display(),
                "not a directory (name checkpoints/step-<S>)",
            ));
        }
        dir.parent()
            .and_then(Path::parent)
            .map(|p| Self::Local(p.to_path_buf()))
            .ok_or_else(|| bad(&dir.display(), "has no run directory two levels up"))
    }

    /// Where `key` is, for messages.
    fn path(&self, key: &str) -> String {
        match self {
            Self::Local(d) => d.join(key).display().to_string(),
            Self::Remote(b) => b.url_of(key).to_string(),
        }
    }

    /// The bytes of `key` (`config.resolved.yaml`, `eval/step-<E>.json`).
    fn read(&self, key: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Local(d) => std::fs::read(d.join(key)).map_err(|e| e.to_string()),
            Self::Remote(b) => match b.get(key) {
                Ok(Some(bytes)) => Ok(bytes.to_vec()),
                Ok(None) => Err("no such object".into()),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// The steps `E` of the run's `eval/step-<E>.json` reports.
    fn eval_steps(&self) -> Vec<u64> {
        let names: Vec<String> = match self {
            Self::Local(d) => std::fs::read_dir(d.join("eval"))
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .collect()
                })
                .unwrap_or_default(),
            Self::Remote(b) => b
                .list_level("eval")
                .map(|(_, objects)| {
                    objects
                        .iter()
                        .filter_map(|o| o.location.filename().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        };
        names
            .iter()
            .filter_map(|name| {
                name.strip_prefix("step-")?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()
            })
            .collect()
    }
}

/// `report.labels[].best_threshold` of the newest `eval/step-<E>.json` with
/// `E <= step` (0.5 for a label without one).
fn last_thresholds(run: &RunDir, step: u64, labels: &[String]) -> Vec<(String, f32)> {
    let best = run.eval_steps().into_iter().filter(|&s| s <= step).max();
    let report: Option<serde_json::Value> = best
        .and_then(|s| run.read(&format!("eval/step-{s}.json")).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    labels
        .iter()
        .map(|l| {
            let t = report
                .as_ref()
                .and_then(|r| r["report"]["labels"].as_array())
                .and_then(|ls| ls.iter().find(|m| m["label"] == l.as_str()))
                .and_then(|m| m["best_threshold"].as_f64())
                .map_or(0.5, |t| t as f32);
            (l.clone(), t)
        })
        .collect()
}

/// Publishes `source` as the next version of the repository `repository`
/// (`<export.dir>/<model_name>`; its last component is the model name).
pub fn republish<B: Backend>(
    source: &ExportSource,
    repository: &Location,
    instance: TritonInstance,
    device: &B::Device,
) -> Result<Republished, TrainError> {
    let parent = match repository {
        Location::Local(p) => p.parent().map(|p| Location::Local(p.to_path_buf())),
        Location::Remote(u) => Some(Location::Remote(u.parent())),
    };
    let (name, parent) = match (last_name(repository), parent) {
        (Some(n), Some(p)) => (n, p),
        _ => {
            return Err(bad(
                repository,
                "name the model repository <export.dir>/<model_name>",
            ));
        }
    };
    let (mut cfg, model, tokenizer, step, thresholds, metrics) = match source {
        ExportSource::Checkpoint(dir) => {
            let run = RunDir::of_checkpoint(dir)?;
            let step = step_of(dir)
                .ok_or_else(|| bad(dir, "is not a checkpoint directory named step-<S>"))?;
            let resolved = run.path("config.resolved.yaml");
            let text = run
                .read("config.resolved.yaml")
                .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
                .map_err(|e| bad(&resolved, format!("the run's config cannot be read: {e}")))?;
            let mut cfg = RunConfig::from_yaml(&text, Path::new(&resolved), &[], &|_| None)?;
            cfg.model.init_from = None;
            let loaded = ModerationModel::<B>::from_config(&cfg.model, &cfg.data, device)?;
            // Read and verified once (on a bucket: one download of each file).
            let (manifest, files) = vigil_store::checkpoint::load_dir(dir)?;
            let model = loaded.model.warm_start_verified(files, dir)?;
            let metrics: BTreeMap<String, f64> = manifest.meta["metrics"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                        .collect()
                })
                .unwrap_or_default();
            let thresholds = last_thresholds(&run, step, &cfg.model.labels);
            (cfg, model, loaded.tokenizer, step, thresholds, metrics)
        }
        ExportSource::Version(dir) => {
            let loaded = ModerationModel::<B>::from_export(dir, device)?;
            let path = dir.join(vigil_export::CONFIG_FILE);
            let config: serde_json::Value = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| bad(&path.display(), "not a JSON object"))?;
            let mut cfg = RunConfig {
                model: serde_json::from_value(config["model"].clone())
                    .map_err(|e| bad(&path.display(), format!("\"model\": {e}")))?,
                data: serde_json::from_value(config["data"].clone())
                    .map_err(|e| bad(&path.display(), format!("\"data\": {e}")))?,
                ..Default::default()
            };
            if let Some(run) = config["run"].as_str() {
                cfg.run.name = run.to_string();
            }
            let labels = loaded.model.labels().to_vec();
            let serving = VersionFiles::read(dir, &labels)
                .map_err(|e| bad(&e.path.display(), e.message.clone()))?;
            let thresholds = labels.iter().cloned().zip(serving.thresholds).collect();
            let step = config["step"].as_u64().unwrap_or(0);
            (
                cfg,
                loaded.model,
                loaded.tokenizer,
                step,
                thresholds,
                serving.metrics,
            )
        }
    };
    // `version_files` stages the model's files under the run directory; here that
    // is the export root (a dot-directory, removed when done), never the caller's
    // working directory.
    cfg.run.output_dir = Some(parent.to_string());
    cfg.export.dir = Some(parent.to_string());
    cfg.export.model_name = name.clone();
    cfg.export.onnx = true;
    cfg.export.triton_instance = instance;
    let (files, sig) = version_files(
        &cfg,
        &model,
        tokenizer.as_ref(),
        step,
        &thresholds,
        &metrics,
    )?;
    // A local directory or a bucket URL (`--repository s3://…/<model_name>`).
    let repo = ModelRepo::at(&parent, &name)?;
    let meta = serde_json::json!({ "run": cfg.run.name, "step": step });
    let version = repo.publish(&files, meta)?;
    if let Some(sig) = &sig {
        write_triton_files(&repo, &cfg, sig)?;
    }
    Ok(Republished {
        version: version.version,
        location: version.location,
        step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_come_from_the_last_evaluation_at_or_before_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let eval = dir.path().join("eval");
        std::fs::create_dir_all(&eval).unwrap();
        let report = |t: f64| {
            serde_json::json!({ "report": { "labels": [
                { "label": "hate", "best_threshold": t },
                { "label": "spam", "best_threshold": "undefined" },
            ]}})
            .to_string()
        };
        for (step, t) in [(20, 0.2), (40, 0.4), (60, 0.6)] {
            std::fs::write(eval.join(format!("step-{step}.json")), report(t)).unwrap();
        }
        std::fs::write(eval.join("step-x.json"), "not a report").unwrap();
        let labels = ["hate".to_string(), "spam".to_string(), "new".to_string()];
        let run = RunDir::Local(dir.path().to_path_buf());
        let got = last_thresholds(&run, 50, &labels);
        assert_eq!(
            got,
            [
                ("hate".to_string(), 0.4),
                ("spam".to_string(), 0.5),
                ("new".to_string(), 0.5)
            ]
        );
        assert_eq!(last_thresholds(&run, 10, &labels[..1])[0].1, 0.5);
        let at = |s: &str| Location::parse(s).unwrap();
        assert_eq!(step_of(&at("run/checkpoints/step-40")), Some(40));
        assert_eq!(step_of(&at("s3://b/run/checkpoints/step-40")), Some(40));
        assert_eq!(step_of(&at("run/checkpoints/latest")), None);
    }
}
