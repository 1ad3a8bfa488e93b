//! TensorBoard logging: an event-file writer that real TensorBoard reads, behind a
//! small [`MetricLogger`] trait.
//!
//! Vigil writes the event format itself instead of using `tensorboard-rs`
//! (unmaintained, protobuf 2 with RUSTSEC-2024-0437, `unimplemented!()` for hparams,
//! text and PR curves). The format is small: TFRecord framing ([`record`]) around
//! `Event` protos ([`proto`], hand-written `prost` structs, so no `protoc`).
//!
//! Only rank 0 writes ([`open_logger`] gives other ranks a [`NullLogger`]); each
//! process start opens a new file and marks the step it starts at with a
//! `SessionLog START`, which makes TensorBoard drop what a crashed attempt logged
//! past the checkpoint it resumed from.
//!
//! # Use (what the training loop does)
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use vigil_trainer::config::RunConfig;
//! use vigil_trainer::logging::{self, HParamsStart, RunStatus, code_block, tags};
//!
//! let config = RunConfig::load("configs/tiny.yaml".as_ref(), &[])?;
//! let (rank, start) = (0, 0); // start = checkpoint step + 1 on a resume
//! let dir = config.output_dir().join("tensorboard");
//! let mut log = logging::open_logger(&config.logging, rank, &dir, start)?;
//! if start == 0 {
//!     log.hparams_start(&HParamsStart {
//!         group_name: config.run.name.clone(),
//!         hparams: logging::flatten_hparams(&config)?,
//!         metrics: vec![tags::VAL_LOSS.into(), tags::val_macro("auroc")],
//!         start_time_secs: logging::wall_time(),
//!     })?;
//! }
//! log.text(tags::CONFIG_TEXT, start, &code_block("yaml", &config.to_yaml()))?;
//! // each logging.interval steps:
//! log.scalars(5, &[(tags::TRAIN_LOSS, 0.69), (tags::TRAIN_LR, 3e-3)])?;
//! // each evaluation, per label:
//! log.pr_curve(&tags::pr_curve("spam"), 20, &[true, false], &[0.8, 0.3], 51)?;
//! // at each checkpoint, with it:
//! log.sync()?;
//! // at the end:
//! log.hparams_end(40, RunStatus::Success)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `record.rs`: TFRecord framing and masked CRC32C, encode and checked decode.
//! - `proto/`: the protos (`Event`, `Summary`, `HistogramProto`, hparams plugin, ...).
//! - `histogram.rs`, `pr_curve.rs`, `hparams.rs`, `summary.rs`: pure builders of
//!   each dashboard's summary values.
//! - `writer.rs`: [`EventWriter`], one event file (naming, buffering, fsync).
//! - `reader.rs`: reading files back with CRC checks.
//! - `base.rs`: the [`MetricLogger`] trait; `tensorboard.rs`, `memory.rs`: its
//!   implementations.
//! - `tags.rs`: the tag names of a run.

mod base;
mod error;
mod histogram;
mod hparams;
mod memory;
mod pr_curve;
pub mod proto;
mod reader;
pub mod record;
mod summary;
pub mod tags;
mod tensorboard;
mod writer;

use std::path::Path;

pub use base::MetricLogger;
pub use error::{LoggingError, PrCurveError};
pub use histogram::{Histogram, default_bucket_limits};
pub use hparams::{
    EXPERIMENT_TAG, HPARAMS_PLUGIN, HParamValue, HParamsStart, RunStatus, SESSION_END_INFO_TAG,
    SESSION_START_INFO_TAG, flatten_hparams,
};
pub use memory::{Logged, MemoryLogger, NullLogger};
pub use pr_curve::{PR_CURVE_ROWS, PrCurve, compute_curve};
pub use reader::{DecodeFailure, decode_events, event_files, read_event_file};
pub use summary::{PR_CURVES_PLUGIN, TEXT_PLUGIN, code_block};
pub use tensorboard::TensorBoardLogger;
pub use writer::{EventWriter, FILE_VERSION, WriterOptions, event_file_name, hostname, wall_time};

use crate::config::LoggingSection;

/// The logger of one worker: TensorBoard events in `dir` on rank 0 when
/// `logging.tensorboard` is on, nothing otherwise. Writes the `SessionLog START`
/// marker at `start_step`: the first step this process logs (0 for a fresh run,
/// the checkpoint's step + 1 on a resume).
pub fn open_logger(
    config: &LoggingSection,
    rank: usize,
    dir: &Path,
    start_step: u64,
) -> Result<Box<dyn MetricLogger>, LoggingError> {
    if rank != 0 || !config.tensorboard {
        return Ok(Box::new(NullLogger));
    }
    let mut logger = TensorBoardLogger::open(dir, WriterOptions::default())?;
    logger.session_start(start_step)?;
    Ok(Box::new(logger))
}
