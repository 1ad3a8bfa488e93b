//! The model a worker trains: seeded, warm-started from `model.init_from` (read and
//! verified through the store; the model takes verified bytes), cast to the
//! training precision, then rank 0's weights broadcast to every rank.

use burn::tensor::backend::AutodiffBackend;

use super::super::comm::Comm;
use super::super::error::TrainError;
use super::super::flat::{ParamLayout, read_params, write_params};
use vigil_config::RunConfig;
use vigil_model::{LoadedModel, ModelError, ModerationModel, TextTokenizer};
use vigil_store::storage::Location;

/// The seeded model of `cfg.model` with its tokenizer, warm-started from
/// `model.init_from` when set and cast to the training precision.
pub(super) fn build_model<B: AutodiffBackend>(
    cfg: &RunConfig,
    device: &B::Device,
) -> Result<(ModerationModel<B>, Option<TextTokenizer>), TrainError> {
    B::seed(device, cfg.run.seed);
    let LoadedModel { model, tokenizer } =
        ModerationModel::<B>::from_config(&cfg.model, &cfg.data, device)?;
    let model = match &cfg.model.init_from {
        Some(from) => warm_start(model, from)?,
        None => model,
    };
    // Mixed precision: loaded weights to the half type too (see `precision.rs`).
    let model = match cfg.train.precision {
        vigil_config::Precision::F32 => model,
        p => super::super::cast_float_params::<B, _>(model, super::super::float_dtype(p)),
    };
    Ok((model, tokenizer))
}

/// Rank 0's weights on every rank: the model with them, its flat layout and the
/// master copy of its trainable parameters.
pub(super) fn broadcast_weights<B: AutodiffBackend>(
    model: ModerationModel<B>,
    comm: &mut Comm,
) -> Result<(ModerationModel<B>, ParamLayout, Vec<f32>), TrainError> {
    let layout = ParamLayout::of::<B, _>(&model);
    let mut master = vec![0.0f32; layout.len];
    read_params::<B, _>(&model, &layout, &mut master);
    // Seeded initialisation is already identical; broadcasting rank 0's weights
    // makes it so by construction (as DDP does).
    comm.broadcast(&mut master, 0)?;
    let model = write_params::<B, _>(model, &layout, &master);
    Ok((model, layout, master))
}

/// `model.init_from`: the weights of a checkpoint (`step-<S>`) or export version
/// directory (local or on a bucket), read through the store and verified against
/// its `MANIFEST.json` before the model sees a byte.
fn warm_start<B: burn::tensor::backend::Backend>(
    model: ModerationModel<B>,
    from: &str,
) -> Result<ModerationModel<B>, ModelError> {
    let refuse = |message: String| ModelError::InitFrom {
        source_dir: from.to_string(),
        message,
    };
    let location = Location::parse(from).map_err(|e| refuse(e.to_string()))?;
    if let Location::Local(dir) = &location
        && !dir.is_dir()
    {
        return Err(refuse(
            "not a directory: name a checkpoint (checkpoints/step-<S>) or an export \
             version (<export.dir>/<model>/<N>)"
                .into(),
        ));
    }
    let (_, files) =
        vigil_store::checkpoint::load_dir(&location).map_err(|e| refuse(e.to_string()))?;
    model.warm_start_verified(files, &location)
}
