//! [`Loaded`]: one exported version with a model replica per worker, and how it
//! scores (and embeds) rows; [`Current`]: the version new requests run on, with
//! the recall index paired with it ([`Serving`]), replaced whole on a swap.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use vigil_config::Task;
use vigil_data::ImageSpec;
use vigil_infer::{ServeError, ServedModel};
use vigil_model::backend::CpuBackend;
use vigil_model::{ModelInput, ModerationModel, TextTokenizer};
use vigil_store::storage::Location;

use super::error_chain;
use super::recall::RecallIndex;
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
    /// Width of the fused vector (the head's input) that recall searches with.
    pub embedding_dims: usize,
    /// sha256 of the version's `MANIFEST.json` as its repository holds it: the
    /// key its recall index is found by (set only when recall is served, by
    /// [`Loaded::identified`]).
    pub identity: Option<String>,
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
            embedding_dims: served.model.fusion.output_dim(),
            identity: None,
            replicas,
            task: served.task(),
            tokenizer: served.tokenizer,
            image: ImageSpec::of(&served.data),
            thresholds: served.thresholds,
        })
    }

    /// With [`Loaded::identity`] read from `repo` (where it was loaded from).
    pub fn identified(mut self, repo: &Location) -> Result<Self, String> {
        self.identity = Some(super::recall::model_identity(repo, self.version)?);
        Ok(self)
    }

    /// Scores rows on `worker`'s replica: probabilities `[n, labels]` and, when
    /// `fused`, the fused vectors `[n, embedding_dims]` the head scored them from.
    pub(super) fn score(
        &self,
        worker: usize,
        texts: &[Option<String>],
        images: &[f32],
        present: &[bool],
        fused: bool,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), String> {
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
        // `forward` is `head(embed(x).fused)`: the same pass, the vector kept.
        let embedded = model.embed(&input).fused;
        let vectors = match fused {
            false => None,
            true => Some(
                embedded
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .map_err(|_| "the model's embeddings are not f32".to_string())?,
            ),
        };
        let probs = model
            .probabilities(model.head.forward(embedded))
            .into_data();
        let probs = probs
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|_| "the model's probabilities are not f32".to_string())?;
        Ok((probs, vectors))
    }
}

/// A model version and the recall index embedded by it, served as one unit: a
/// request that takes it embeds with this model and searches this index.
#[derive(Debug, Clone)]
pub struct Serving {
    /// The model version.
    pub model: Arc<Loaded>,
    /// Its recall index (None: recall not served, or no index for it yet).
    pub index: Option<Arc<RecallIndex>>,
}

/// The pair served now; replaced whole on a swap.
#[derive(Debug)]
pub struct Current(RwLock<Serving>);

impl Current {
    /// Starts with `loaded` and its index, if any.
    pub fn new(loaded: Loaded, index: Option<RecallIndex>) -> Self {
        Self(RwLock::new(Serving {
            model: Arc::new(loaded),
            index: index.map(Arc::new),
        }))
    }

    /// The version new requests run on.
    pub fn get(&self) -> Arc<Loaded> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .model
            .clone()
    }

    /// The pair new recall requests run on.
    pub fn serving(&self) -> Serving {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the pair; returns the one it replaced.
    pub(super) fn set(&self, serving: Serving) -> Serving {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|p| p.into_inner()),
            serving,
        )
    }
}
