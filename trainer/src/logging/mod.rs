//! TensorBoard logging of a Vigil run: the event writer of the
//! [`vigil_tensorboard`] crate, re-exported, plus the glue that knows the run
//! config ([`open_logger`], [`flatten_hparams`]) and Vigil's tag names ([`tags`]).
//!
//! The writer, reader, protos and dashboard builders live in `vigil-tensorboard`
//! (no burn, no config; publishable on its own). What stays here is what depends on
//! Vigil: which rank logs and whether logging is on (`logging.tensorboard`), how
//! the YAML config becomes hyper-parameter names, and the tag names the book and
//! `scripts/check_tensorboard.py` document. The re-exports keep
//! `crate::logging::...` paths working for the rest of the trainer.
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
//! use vigil_config::RunConfig;
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
//! - `hparams.rs`: [`flatten_hparams`], the config as dotted hyper-parameter keys.
//! - [`tags`]: the tag names of a run (`vigil_eval::tags`, which the report reads too).
//! - here: [`open_logger`] and the re-exports.

mod hparams;
pub use vigil_eval::tags;

use std::path::Path;

pub use hparams::flatten_hparams;
pub use vigil_tensorboard::Error as LoggingError;
pub use vigil_tensorboard::{
    DecodeFailure, EXPERIMENT_TAG, EventWriter, FILE_VERSION, HPARAMS_PLUGIN, HParamValue,
    HParamsStart, Histogram, Logged, MemoryLogger, MetricLogger, NullLogger, PR_CURVE_ROWS,
    PR_CURVES_PLUGIN, PrCurve, PrCurveError, RunStatus, SESSION_END_INFO_TAG,
    SESSION_START_INFO_TAG, TEXT_PLUGIN, TensorBoardLogger, WriterOptions, code_block,
    compute_curve, decode_events, default_bucket_limits, event_file_name, event_files, hostname,
    proto, read_event_file, record, wall_time,
};

use vigil_config::LoggingSection;

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
