//! Serving exports: what goes into a numbered model version, and the ONNX graph and
//! Triton files beside the weights.
//!
//! # Layout
//! - [`format`]: the version's file formats — [`VersionFiles`] builds them for
//!   publishing and reads them back for serving (the file names are
//!   [`vigil_store::repo::files`]).
//! - [`onnx`]: `model.onnx` (the whole model as an ONNX graph) and the Triton
//!   `config.pbtxt` / `labels.txt` of the repository.
//!
//! A version is published as an entry of a [`ModelRepo`](vigil_store::repo::ModelRepo)
//! (`vigil_store`): same staging, fsync, manifest-last and rename discipline as a
//! checkpoint, so "a serving process never sees a half-written model" is the same
//! guarantee as "resume never loads a half-written checkpoint". What goes into the
//! files is [`format`]'s: the model's own files (tensor names, architecture, labels)
//! come from the model code, the serving metadata, thresholds and metrics from
//! [`VersionFiles::build`]. Whether a version is published is `vigil_eval`'s
//! champion/challenger gate (`vigil_eval::gate`); when, its export schedule.
//!
//! The flow at export time (rank 0, the trainer's `train::publish`):
//! 1. `repo.newest_complete()` → the champion; load and evaluate it on the run's
//!    validation data → `Champion`.
//! 2. `decide(config.export.gate.as_ref(), &champion, Some(new_score))`.
//! 3. If `published`, `repo.publish(&VersionFiles::build(..)?.files, meta)`, set
//!    `published_version`, then `repo.prune(export.keep_versions)`.
//! 4. `decision.write(output_dir)`; log `decision.summary()` and write it as
//!    TensorBoard text.

pub mod format;
pub mod onnx;

pub use format::{
    CONFIG_FILE, EXPORT_FILES, ExportFileError, LABELS_FILE, METRICS_FILE, MODEL_FILE, ONNX_FILE,
    ServingFiles, ServingInfo, TEXT_CONFIG_FILE, THRESHOLDS_FILE, TOKENIZER_FILE, VersionFiles,
};
