//! The scoring loop: a dataset's rows through the loader and the model, batch by
//! batch, in the sampler's order.
//!
//! Training's evaluation (`train::evaluate`, every rank on its shard, and the
//! export gate scoring the champion) and offline scoring (`vigil predict`, `vigil
//! eval` in [`crate::serve`]) are the same loop: build the batches with the
//! [`Loader`] (images decoded only when the model runs its image tower), turn
//! each into tensors with [`ModelInput::from_batch`], run the model in inference
//! mode, and hand the probabilities to the caller, which keeps what it needs (a
//! shard's scores by dataset row, or ids in file order). It sits below both
//! `train` and `serve` so neither imports the other.

use std::sync::Arc;

use burn::tensor::ElementConversion;
use burn::tensor::backend::Backend;

use crate::config::DataSection;
use crate::data::{Batch, DataError, Dataset, Loader, LoaderOptions, ShardSampler};
use crate::model::{ModelError, ModelInput, ModerationModel, SplitFeatures, TextTokenizer};

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
    mut each: impl FnMut(BatchScores<'_>) -> Result<(), E>,
) -> Result<(), E>
where
    B: Backend,
    E: From<ModelError> + From<DataError>,
{
    let images = model.image.is_some() && cached.is_none_or(|c| c.image.is_none());
    let opts = LoaderOptions::from_section(data, images);
    for batch in Loader::new(ds.clone(), sampler, 0, 0, opts)? {
        let batch = batch?;
        let (input, targets) = ModelInput::<B>::from_batch(tokenizer, &batch, cached, device)?;
        let logits = model.forward(&input);
        let loss = with_loss.then(|| {
            let loss: f64 = model.loss(logits.clone(), &targets).into_scalar().elem();
            loss
        });
        let probs = model.probabilities(logits).into_data().convert::<f32>();
        let probs = probs
            .as_slice::<f32>()
            .map_err(|_| ModelError::batch("the model's probabilities are not f32"))?;
        each(BatchScores {
            batch: &batch,
            probs,
            loss,
        })?;
    }
    Ok(())
}
