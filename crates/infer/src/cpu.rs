//! Monomorphic entry points on the CPU backend: what the `vigil` binary calls, so
//! burn's generics are instantiated here, in a library that builds in parallel with
//! the rest, and a change to the command line recompiles none of them.

use std::io::Write;
use std::path::Path;

use vigil_eval::{ModelEvaluation, ScoredRows};
use vigil_model::backend::CpuBackend;
use vigil_store::storage::Location;

use crate::{
    EmbedOptions, EvalOptions, PredictOptions, PredictSummary, Scored, ServeError, ServedModel,
};

/// [`run_predict`](crate::run_predict) on the CPU.
pub fn predict(opts: &PredictOptions, out: &mut dyn Write) -> Result<PredictSummary, ServeError> {
    crate::run_predict::<CpuBackend>(opts, out, &Default::default())
}

/// [`run_eval_with_rows`](crate::run_eval_with_rows) on the CPU.
pub fn eval_with_rows(
    opts: &EvalOptions,
) -> Result<(ModelEvaluation, ScoredRows, Option<String>), ServeError> {
    crate::run_eval_with_rows::<CpuBackend>(opts, &Default::default())
}

/// [`run_embed`](crate::run_embed) on the CPU.
pub fn embed(opts: &EmbedOptions, out: &mut dyn Write) -> Result<usize, ServeError> {
    crate::run_embed::<CpuBackend>(opts, out, &Default::default())
}

/// The newest complete version of `model` loaded on the CPU and `input` scored with
/// `vigil predict`'s loop (`vigil bench serve`'s baseline without HTTP).
pub fn score_file(
    model: &Location,
    input: &Path,
    batch_size: usize,
    threads: usize,
) -> Result<Scored, ServeError> {
    let device = Default::default();
    let served = ServedModel::<CpuBackend>::load(model, None, &device)?;
    served.score_file(input, batch_size, threads, &device)
}
