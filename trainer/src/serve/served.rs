//! [`ServedModel`]: one exported version loaded for inference, and the scoring
//! of a JSONL file with it.
//!
//! Rows are read by the data layer exactly as training reads them
//! ([`Dataset::load_file`] in the export's `data.format`, every row checked
//! before anything is scored, the first bad row an error `FILE:LINE: reason`),
//! and batched by the same [`Loader`] (images decoded and resized on its threads
//! at the export's `data.image_size`). So a row that trains is a row that
//! scores, with identical preprocessing. Image paths are relative to the input
//! file's directory (the export's `data.image_root` belonged to the training
//! machine).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::Backend;

use super::error::ServeError;
use super::locate::{ModelVersion, locate};
use crate::config::{DataSection, OnBadRow, Task};
use crate::data::{Dataset, LoadOptions, Loader, LoaderOptions, ShardSampler, Split};
use crate::metrics::Scores;
use crate::model::{ModelError, ModelInput, ModerationModel, TextTokenizer};

/// The per-label decision thresholds of a version.
pub const THRESHOLDS_FILE: &str = "thresholds.json";

/// A loaded version: model, tokenizer, preprocessing settings and thresholds.
#[derive(Debug)]
pub struct ServedModel<B: Backend> {
    /// Which version, where.
    pub version: ModelVersion,
    /// The model (inference backend: dropout is off).
    pub model: ModerationModel<B>,
    /// Its tokenizer (None without a text tower).
    pub tokenizer: Option<TextTokenizer>,
    /// The export's `data` section: format, text and image preprocessing.
    pub data: DataSection,
    /// One threshold per label, in label order.
    pub thresholds: Vec<f32>,
}

/// Scores of a file's rows, in file order.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The input file.
    pub file: PathBuf,
    /// Row ids (integer ids as decimal text).
    pub ids: Vec<String>,
    /// Probabilities, targets and known masks `[rows, labels]`.
    pub scores: Scores,
}

impl<B: Backend> ServedModel<B> {
    /// Resolves `model` / `version` ([`locate`]) and loads that version.
    pub fn load(
        model: &Path,
        version: Option<u64>,
        device: &B::Device,
    ) -> Result<Self, ServeError> {
        let version = locate(model, version)?;
        let loaded = ModerationModel::<B>::from_export(&version.dir, device)?;
        let data = read_data_section(&version.dir)?;
        let thresholds = read_thresholds(&version.dir, loaded.model.labels())?;
        Ok(Self {
            version,
            model: loaded.model,
            tokenizer: loaded.tokenizer,
            data,
            thresholds,
        })
    }

    /// Label names, in output order.
    pub fn labels(&self) -> &[String] {
        self.model.labels()
    }

    /// Multi-label (sigmoid) or multi-class (softmax).
    pub fn task(&self) -> Task {
        self.model.task()
    }

    /// Scores every row of `file` in batches of `batch_size`. Any bad row fails
    /// the whole file before a batch is scored.
    pub fn score_file(
        &self,
        file: &Path,
        batch_size: usize,
        device: &B::Device,
    ) -> Result<Scored, ServeError> {
        let with_images = self.model.image.is_some();
        let mut opts = LoadOptions::from_section(&self.data)?;
        opts.image_root = None;
        opts.on_bad_row = OnBadRow::Fail;
        opts.check_images = with_images;
        let (ds, _) = Dataset::load_file(file, self.labels(), Split::Val, &opts)?;
        let ds = Arc::new(ds);
        let sampler = ShardSampler::for_eval(ds.len(), 0, 1, batch_size.max(1))?;
        let loader_opts = LoaderOptions::from_section(&self.data, with_images);
        let mut ids = Vec::with_capacity(ds.len());
        let mut scores = Scores {
            labels: self.labels().to_vec(),
            ..Default::default()
        };
        for batch in Loader::new(ds.clone(), &sampler, 0, 0, loader_opts)? {
            let batch = batch?;
            let input = ModelInput::<B>::from_vecs(
                self.tokenizer.as_ref(),
                &batch.texts,
                &batch.images,
                &batch.image_present,
                batch.image_size,
                device,
            )?;
            let probs = self
                .model
                .probabilities(self.model.forward(&input))
                .into_data()
                .convert::<f32>();
            let probs = probs
                .as_slice::<f32>()
                .map_err(|_| ModelError::batch("the model's probabilities are not f32"))?;
            ids.extend(batch.ids.iter().cloned());
            scores.probs.extend_from_slice(probs);
            scores.targets.extend_from_slice(&batch.labels);
            scores.known.extend_from_slice(&batch.label_known);
        }
        Ok(Scored {
            file: file.to_path_buf(),
            ids,
            scores,
        })
    }
}

/// The `data` section of a version's `config.json`.
fn read_data_section(dir: &Path) -> Result<DataSection, ServeError> {
    let path = dir.join("config.json");
    let bad = |message: String| ServeError::BadExportFile {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let data = v
        .get("data")
        .cloned()
        .ok_or_else(|| bad("has no \"data\" section".into()))?;
    serde_json::from_value(data).map_err(|e| bad(format!("\"data\": {e}")))
}

/// `thresholds.json`: `{label: threshold}` for exactly the model's labels.
pub fn read_thresholds(dir: &Path, labels: &[String]) -> Result<Vec<f32>, ServeError> {
    let path = dir.join(THRESHOLDS_FILE);
    let bad = |message: String| ServeError::BadExportFile {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    parse_thresholds(&text, labels).map_err(bad)
}

/// Parses `thresholds.json` text against `labels`.
pub fn parse_thresholds(text: &str, labels: &[String]) -> Result<Vec<f32>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object of thresholds: {e}"))?;
    if let Some(extra) = map.keys().find(|k| !labels.contains(k)) {
        return Err(format!(
            "threshold for '{extra}', which is not a label of the model ({})",
            labels.join(", ")
        ));
    }
    labels
        .iter()
        .map(|l| match map.get(l).and_then(serde_json::Value::as_f64) {
            Some(t) if (0.0..=1.0).contains(&t) => Ok(t as f32),
            Some(t) => Err(format!("threshold of '{l}' is {t}, outside [0, 1]")),
            None => Err(format!("no numeric threshold for label '{l}'")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["hate".into(), "spam".into()]
    }

    #[test]
    fn thresholds_come_in_label_order() {
        let t = parse_thresholds(r#"{"spam": 0.25, "hate": 0.5}"#, &labels()).unwrap();
        assert_eq!(t, vec![0.5, 0.25]);
    }

    #[test]
    fn thresholds_must_cover_exactly_the_labels() {
        let e = parse_thresholds(r#"{"hate": 0.5}"#, &labels()).unwrap_err();
        assert!(e.contains("'spam'"), "{e}");
        let e = parse_thresholds(r#"{"hate": 0.5, "spam": 0.5, "x": 1}"#, &labels()).unwrap_err();
        assert!(e.contains("'x'"), "{e}");
        let e = parse_thresholds(r#"{"hate": 1.5, "spam": 0.5}"#, &labels()).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        assert!(parse_thresholds("[0.5]", &labels()).is_err());
    }
}
