//! The scoring loop: a dataset's rows through the loader and the model, batch by
//! batch, in the sampler's order.
//!
//! Training's evaluation (`train::evaluate`, every rank on its shard, and the
//! export gate scoring the champion) and offline scoring (`vigil predict`, `vigil
//! eval` in this crate) are the same loop: build the batches with the
//! [`Loader`] (images decoded only when the model runs its image tower), turn
//! each into tensors with [`ModelInput::from_batch`], run the model in inference
//! mode, and hand the probabilities to the caller, which keeps what it needs (a
//! shard's scores by dataset row, or ids in file order). It sits below both
//! `train` and `serve` so neither imports the other.

use std::sync::Arc;

use burn::tensor::ElementConversion;
use burn::tensor::backend::Backend;

use vigil_config::DataSection;
use vigil_data::{Batch, DataError, Dataset, Loader, LoaderOptions, ShardSampler};
use vigil_model::{ModelError, ModelInput, ModerationModel, SplitFeatures, TextTokenizer};

/// One scored batch, as [`score_batches`] hands it over.
#[derive(Debug)]
pub struct BatchScores<'a> {
    /// The loader's batch (ids, dataset rows, labels and known masks).
    pub batch: &'a Batch,
    /// Probabilities `[rows, labels]`, row-major (sigmoid or softmax by task).
    pub probs: &'a [f32],
    /// The batch's mean masked loss, when asked for.
    pub loss: Option<f64>,
}

/// Scores the batches `sampler` plans over `ds` (epoch 0, from batch 0) with
/// `model`, calling `each` once per batch in order. `data` gives the loader's
/// threads, prefetch and image size; towers with a table in `cached` read it
/// instead of running (their images are then not decoded); `with_loss` also
/// computes each batch's loss (rows without any known label make it meaningless,
/// so offline scoring leaves it off). The first error (a bad image, a batch the
/// model refuses, or `each`'s own) stops the loop.
#[allow(clippy::too_many_arguments)]
pub fn score_batches<B, E>(
    model: &ModerationModel<B>,
    tokenizer: Option<&TextTokenizer>,
    ds: &Arc<Dataset>,
    sampler: &ShardSampler,
    data: &DataSection,
    cached: Option<&SplitFeatures>,
    with_loss: bool,
    device: &B::Device,
    each: impl FnMut(BatchScores<'_>) -> Result<(), E>,
) -> Result<(), E>
where
    B: Backend,
    E: From<ModelError> + From<DataError> + Send,
{
    let scoring = Scoring {
        tokenizer,
        ds,
        sampler,
        data,
        cached,
        with_loss,
        threads: 1,
    };
    score_batches_threads(model, &scoring, device, each)
}

/// What [`score_batches_threads`] scores, and on how many threads.
#[derive(Debug, Clone, Copy)]
pub struct Scoring<'a> {
    /// The text tower's tokenizer, when the model has one.
    pub tokenizer: Option<&'a TextTokenizer>,
    /// The rows.
    pub ds: &'a Arc<Dataset>,
    /// Which rows, in which batches.
    pub sampler: &'a ShardSampler,
    /// The loader's settings.
    pub data: &'a DataSection,
    /// Cached tower features, read instead of running those towers.
    pub cached: Option<&'a SplitFeatures>,
    /// Whether each batch's loss is computed too.
    pub with_loss: bool,
    /// Batches scored side by side (each thread runs its own copy of the model on
    /// whole batches; host backends only, others use one).
    pub threads: usize,
}

/// [`score_batches`] with whole batches scored on `s.threads` threads at once
/// ([`vigil_model::parallel::ordered_map`]); `each` still sees them in order, and every
/// batch's figures are the same as on one thread.
pub fn score_batches_threads<B, E>(
    model: &ModerationModel<B>,
    s: &Scoring<'_>,
    device: &B::Device,
    mut each: impl FnMut(BatchScores<'_>) -> Result<(), E>,
) -> Result<(), E>
where
    B: Backend,
    E: From<ModelError> + From<DataError> + Send,
{
    let images = model.image.is_some() && s.cached.is_none_or(|c| c.image.is_none());
    let opts = LoaderOptions::from_section(s.data, images);
    let loader = Loader::new(s.ds.clone(), s.sampler, 0, 0, opts)?;
    let threads = if vigil_model::kernels::on_host::<B>() {
        s.threads.max(1)
    } else {
        1
    };
    let models = vec![model.clone(); threads];
    let (tokenizer, cached, with_loss) = (s.tokenizer, s.cached, s.with_loss);
    vigil_model::parallel::ordered_map(
        models,
        loader.map(|b| b.map_err(E::from)),
        |model, batch: Batch| -> Result<(Batch, Vec<f32>, Option<f64>), E> {
            let (input, targets) = ModelInput::<B>::from_batch(tokenizer, &batch, cached, device)?;
            let logits = model.forward(&input);
            let loss = with_loss.then(|| {
                let loss: f64 = model.loss(logits.clone(), &targets).into_scalar().elem();
                loss
            });
            let probs = model
                .probabilities(logits)
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|_| ModelError::batch("the model's probabilities are not f32"))?;
            Ok((batch, probs, loss))
        },
        |(batch, probs, loss)| {
            each(BatchScores {
                batch: &batch,
                probs: &probs,
                loss,
            })
        },
    )
}
