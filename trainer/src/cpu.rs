//! Monomorphic entry points on the CPU backends: what the `vigil` binary calls, so
//! burn's generics are instantiated here, in the library, and a change to the
//! command line recompiles none of them. (`vigil worker` is `train::run`, already
//! monomorphic over the build's backend.)

use vigil_config::TritonInstance;
use vigil_model::ModelError;
use vigil_model::backend::{CpuAutodiff, CpuBackend};
use vigil_store::storage::Location;

use crate::bench::{
    CacheBenchOptions, CacheBenchReport, ImageBenchOptions, ImageBenchRow, TrainBenchOptions,
    TrainBenchReport,
};
use crate::train::{ExportSource, Republished, TrainError};

/// [`republish`](crate::train::republish) on the CPU (`vigil export`).
pub fn republish(
    source: &ExportSource,
    repository: &Location,
    instance: TritonInstance,
) -> Result<Republished, TrainError> {
    crate::train::republish::<CpuBackend>(source, repository, instance, &Default::default())
}

/// [`cache_bench`](crate::bench::cache_bench) on burn-flex (`vigil bench cache`).
pub fn cache_bench(opts: &CacheBenchOptions) -> Result<CacheBenchReport, ModelError> {
    crate::bench::cache_bench::<CpuAutodiff>(opts, &Default::default())
}

/// [`image_bench`](crate::bench::image_bench) on burn-flex (`vigil bench image`).
pub fn image_bench(opts: &ImageBenchOptions) -> Result<Vec<ImageBenchRow>, ModelError> {
    crate::bench::image_bench::<CpuAutodiff>(opts, &Default::default())
}

/// [`train_step_bench`](crate::bench::train_step_bench) on burn-flex (`vigil bench
/// train`).
pub fn train_step_bench(opts: &TrainBenchOptions) -> Result<TrainBenchReport, ModelError> {
    crate::bench::train_step_bench::<CpuAutodiff>(opts, &Default::default())
}

/// [`train_step_bench`](crate::bench::train_step_bench) on burn's ndarray backend
/// (`vigil bench train --backend ndarray|both`, feature `bench-ndarray`).
#[cfg(feature = "bench-ndarray")]
pub fn train_step_bench_ndarray(opts: &TrainBenchOptions) -> Result<TrainBenchReport, ModelError> {
    use vigil_model::backend::NdArrayAutodiff;
    crate::bench::train_step_bench::<NdArrayAutodiff>(opts, &Default::default())
}
