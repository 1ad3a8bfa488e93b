//! [`Loaded`]: one exported version with a model replica per worker, and how it
//! scores rows; [`Current`]: the version new requests run on, replaced whole on
//! a swap.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use vigil_config::Task;
use vigil_data::ImageSpec;
use vigil_infer::{ServeError, ServedModel};
use vigil_model::backend::CpuBackend;
use vigil_model::{ModelInput, ModerationModel, TextTokenizer};
use vigil_store::storage::Location;

use super::error_chain;
use crate::protocol::Towers;
use crate::verified::Skipped;

type B = CpuBackend;

/// One exported version, loaded with one model replica per worker.
#[derive(Debug)]
pub struct Loaded {
    /// Its version number.
    pub version: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// Label names, in output order.
    pub labels: Vec<String>,
    /// Which inputs it takes.
    pub towers: Towers,
    /// Newer versions passed over when it was located, with why (none for an
    /// explicit version): reported at start by [`report_skipped`](super::report_skipped).
    pub skipped: Skipped,
    replicas: Vec<Mutex<ModerationModel<B>>>,
    tokenizer: Option<TextTokenizer>,
    pub(super) image: ImageSpec,
    pub(super) task: Task,
    pub(super) thresholds: Vec<f32>,
}

impl Loaded {
    /// Loads `version` (None: the newest complete one) of the model repository
    /// `repo` with `replicas` copies of the model.
    pub fn load(
        repo: &Location,
        version: Option<u64>,
        replicas: usize,
    ) -> Result<Self, ServeError> {
        let device = Default::default();
        let served = ServedModel::<B>::load(repo, version, &device)?;
        let towers = Towers {
            text: served.model.text.is_some(),
            image: served.model.image.is_some(),
        };
        let replicas = (0..replicas.max(1))
            .map(|_| Mutex::new(served.model.clone()))
            .collect();
        Ok(Self {
            version: served.version.version,
            dir: served.version.dir.clone(),
            labels: served.labels().to_vec(),
            towers,
            skipped: served.version.skipped.clone(),
            replicas,
            task: served.task(),
            tokenizer: served.tokenizer,
            image: ImageSpec::of(&served.data),
            thresholds: served.thresholds,
        })
    }

    /// Scores rows on `worker`'s replica: probabilities `[n, labels]`.
    pub(super) fn score(
        &self,
        worker: usize,
        texts: &[Option<String>],
        images: &[f32],
        present: &[bool],
    ) -> Result<Vec<f32>, String> {
        let device = Default::default();
        let replica = &self.replicas[worker % self.replicas.len()];
        let model = replica.lock().unwrap_or_else(|p| p.into_inner());
        let input = ModelInput::<B>::from_vecs(
            self.tokenizer.as_ref(),
            texts,
            images,
            present,
            self.image.size as usize,
            &device,
        )
        .map_err(|e| error_chain(&e))?;
        let probs = model.probabilities(model.forward(&input)).into_data();
        probs
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|_| "the model's probabilities are not f32".to_string())
    }
}

/// The version served now; replaced whole on a swap.
#[derive(Debug)]
pub struct Current(RwLock<Arc<Loaded>>);

impl Current {
    /// Starts with `loaded`.
    pub fn new(loaded: Loaded) -> Self {
        Self(RwLock::new(Arc::new(loaded)))
    }

    /// The version new requests run on.
    pub fn get(&self) -> Arc<Loaded> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn set(&self, loaded: Arc<Loaded>) -> Arc<Loaded> {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|p| p.into_inner()),
            loaded,
        )
    }
}
