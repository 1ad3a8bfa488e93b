//! Serving exports: numbered model versions published atomically, and the
//! champion/challenger gate deciding whether a retrained model is published.
//!
//! # Layout
//! - [`format`]: the version's file names and formats — [`VersionFiles`] builds
//!   them for publishing and reads them back for serving.
//! - [`repo`]: [`ModelRepo`] — `<export.dir>/<model_name>/<version>/`, publish,
//!   newest complete version, pruning.
//! - [`gate`]: [`decide`] — the gate as a pure function, and [`Decision`], the
//!   `export-decision.json` a scheduler reads.
//! - [`onnx`]: `model.onnx` (the whole model as an ONNX graph) and the Triton
//!   `config.pbtxt` / `labels.txt` of the repository.
//! - [`schedule`]: [`ExportSchedule`] — `export.when` (`best`, `end`, `every`).
//!
//! A version is an entry of the checkpoint [`Store`](crate::checkpoint::Store):
//! same staging, fsync, manifest-last and rename discipline, so "a serving process
//! never sees a half-written model" is the same guarantee as "resume never loads a
//! half-written checkpoint". What goes into the files is [`format`]'s: the model's
//! own files (tensor names, architecture, labels) come from the model code, the
//! serving metadata, thresholds and metrics from [`VersionFiles::build`].
//!
//! The intended flow at export time (rank 0):
//! 1. `repo.newest_complete()` → the champion; load and evaluate it on the run's
//!    validation data → [`Champion`].
//! 2. `decide(config.export.gate.as_ref(), &champion, Some(new_score))`.
//! 3. If `published`, `repo.publish(&VersionFiles::build(..)?.files, meta)`, set `published_version`, then
//!    `repo.prune(export.keep_versions)`.
//! 4. `decision.write(output_dir)`; log `decision.summary()` and write it as
//!    TensorBoard text.

pub mod format;
pub mod gate;
pub mod onnx;
pub mod repo;
pub mod schedule;

pub use format::{
    CONFIG_FILE, EXPORT_FILES, ExportFileError, LABELS_FILE, METRICS_FILE, MODEL_FILE, ONNX_FILE,
    ServingFiles, ServingInfo, TEXT_CONFIG_FILE, THRESHOLDS_FILE, TOKENIZER_FILE, VersionFiles,
};
pub use gate::{Champion, DECISION_FILE, Decision, Outcome, decide};
pub use repo::{ModelRepo, Newest, STALE_STAGING, Version, parse_version};
pub use schedule::ExportSchedule;
