//! TensorBoard event files written (and read back) from Rust, without TensorFlow,
//! Python or `protoc`: scalars, histograms, images, markdown text, PR curves and the
//! HParams dashboard, behind a small [`MetricLogger`] trait.
//!
//! # Why this crate exists
//!
//! The Rust crates for TensorBoard cover scalars and histograms at most:
//! `tensorboard-rs` is unmaintained, builds on protobuf 2 (RUSTSEC-2024-0437) and
//! answers hparams, text and PR curves with `unimplemented!()`. A reviewer of a
//! training run needs exactly those: the run's hyper-parameters beside its final
//! metrics, per-class PR curves, the resolved config as text. The format is small,
//! so it is written here directly: TFRecord framing ([`record`]) around `Event`
//! protos ([`proto`], hand-written `prost` structs, so no `protoc` at build time).
//! Every file is checked by real TensorBoard in Vigil's CI.
//!
//! Nothing here knows about a model, a framework or a config format: hyper-parameters
//! come in as a `BTreeMap<String, HParamValue>`, tags are plain strings. (Vigil's tag
//! names are `vigil-eval`'s `tags`; the trainer's `logging` module flattens the run
//! config into hyper-parameters.)
//!
//! # Resumed runs
//!
//! Each process start opens a new file; [`MetricLogger::session_start`] marks the
//! step it starts at with a `SessionLog START`, which makes TensorBoard drop what a
//! crashed attempt logged past the checkpoint the run resumed from, so each step is
//! drawn once. [`MemoryLogger`] applies the same rule, so tests can assert what a
//! reviewer would see.
//!
//! # Use
//!
//! ```no_run
//! # fn main() -> Result<(), vigil_tensorboard::Error> {
//! use vigil_tensorboard::{
//!     HParamsStart, MetricLogger, RunStatus, TensorBoardLogger, WriterOptions, code_block,
//!     wall_time,
//! };
//!
//! let start = 0; // the first step this process logs: checkpoint step + 1 on a resume
//! let mut log = TensorBoardLogger::open("runs/a/tensorboard".as_ref(), WriterOptions::default())?;
//! log.session_start(start)?;
//! if start == 0 {
//!     log.hparams_start(&HParamsStart {
//!         group_name: "run-a".into(),
//!         hparams: [("optim.lr".to_owned(), 3e-3.into()), ("amp".to_owned(), true.into())].into(),
//!         metrics: vec!["val/loss".into(), "val/macro_auroc".into()],
//!         start_time_secs: wall_time(),
//!     })?;
//! }
//! log.text("config/resolved", start, &code_block("yaml", "optim:\n  lr: 0.003\n"))?;
//! // every few steps:
//! log.scalars(5, &[("train/loss", 0.69), ("train/lr", 3e-3)])?;
//! log.histogram("weights/head", 5, &[0.1, -0.2, 0.05])?;
//! // each evaluation, per class:
//! log.pr_curve("pr_curve/spam", 20, &[true, false], &[0.8, 0.3], 51)?;
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
//! - `base.rs`: the [`MetricLogger`] trait; `logger.rs` ([`TensorBoardLogger`]) and
//!   `memory.rs` ([`MemoryLogger`], [`NullLogger`]): its implementations.
//! - `error.rs`: [`Error`], this crate's error.

mod base;
mod error;
mod histogram;
mod hparams;
mod logger;
mod memory;
mod pr_curve;
pub mod proto;
mod reader;
pub mod record;
mod summary;
mod writer;

pub use base::MetricLogger;
pub use error::{Error, PrCurveError};
pub use histogram::{Histogram, default_bucket_limits};
pub use hparams::{
    EXPERIMENT_TAG, HPARAMS_PLUGIN, HParamValue, HParamsStart, RunStatus, SESSION_END_INFO_TAG,
    SESSION_START_INFO_TAG,
};
pub use logger::TensorBoardLogger;
pub use memory::{Logged, MemoryLogger, NullLogger};
pub use pr_curve::{PR_CURVE_ROWS, PrCurve, compute_curve};
pub use reader::{DecodeFailure, decode_events, event_files, read_event_file};
pub use summary::{PR_CURVES_PLUGIN, TEXT_PLUGIN, code_block};
pub use writer::{EventWriter, FILE_VERSION, WriterOptions, event_file_name, hostname, wall_time};

// The README's example is compiled as a doctest, so it cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
