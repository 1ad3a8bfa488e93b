//! [`ServedModel`]: one exported version loaded for inference, and the scoring
//! of a JSONL file with it.
//!
//! Rows are read by the data layer exactly as training reads them
//! ([`Dataset::load_file`] in the export's `data.format`, every row checked
//! before anything is scored, the first bad row an error `FILE:LINE: reason`),
//! and batched and scored by the same loop as training's evaluation
//! ([`score_batches_threads`]: the loader decodes and resizes images on its threads at the
//! export's `data.image_size`). So a row that trains is a row that
//! scores, with identical preprocessing. Image paths are relative to the input
//! file's directory (the export's `data.image_root` belonged to the training
//! machine).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::Backend;

use super::error::ServeError;
use crate::score::{Scoring, score_batches_threads};
use vigil_config::{DataSection, OnBadRow, Task};
use vigil_data::{Dataset, LoadOptions, ShardSampler, Split};
use vigil_eval::Scores;
use vigil_export::VersionFiles;
use vigil_model::{ModerationModel, TextTokenizer};
use vigil_store::repo::{ModelVersion, locate};
use vigil_store::storage::Location;

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
    /// The rows scored (text, image path, meta), for reports.
    pub dataset: Arc<Dataset>,
}

impl<B: Backend> ServedModel<B> {
    /// Resolves `model` / `version` ([`locate`]) and loads that version.
    pub fn load(
        model: &Location,
        version: Option<u64>,
        device: &B::Device,
    ) -> Result<Self, ServeError> {
        let version = locate(model, version)?;
        let loaded = ModerationModel::<B>::from_export(&version.dir, device)?;
        let files = VersionFiles::read(&version.dir, loaded.model.labels())?;
        Ok(Self {
            version,
            model: loaded.model,
            tokenizer: loaded.tokenizer,
            data: files.data,
            thresholds: files.thresholds,
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

    /// Scores every row of `file` in batches of `batch_size`, `threads` batches at
    /// once (see [`score_batches_threads`]; the scores do not depend on it). Any
    /// bad row fails the whole file before a batch is scored.
    pub fn score_file(
        &self,
        file: &Path,
        batch_size: usize,
        threads: usize,
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
        let mut ids = Vec::with_capacity(ds.len());
        let mut scores = Scores {
            labels: self.labels().to_vec(),
            ..Default::default()
        };
        let scoring = Scoring {
            tokenizer: self.tokenizer.as_ref(),
            ds: &ds,
            sampler: &sampler,
            data: &self.data,
            cached: None,
            with_loss: false,
            threads,
        };
        score_batches_threads::<B, ServeError>(&self.model, &scoring, device, |scored| {
            let batch = scored.batch;
            ids.extend(batch.ids.iter().cloned());
            scores.probs.extend_from_slice(scored.probs);
            scores.targets.extend_from_slice(&batch.labels);
            scores.known.extend_from_slice(&batch.label_known);
            Ok(())
        })?;
        Ok(Scored {
            file: file.to_path_buf(),
            ids,
            scores,
            dataset: ds,
        })
    }
}
