//! The data loop, free of burn: what content operations do between training runs.
//!
//! - [`folds`]: seeded, grouped, label-balanced K-fold assignment (duplicates and an
//!   optional `meta` group never straddle folds) and the out-of-fold scores file that
//!   `vigil crossval` writes from each fold's held-out evaluation.
//! - [`confident`]: confident learning on out-of-fold probabilities (cleanlab's
//!   per-class thresholds, confident joint, prune-by-noise-rate, ranking by
//!   self-confidence or normalised margin; multi-label one-vs-rest as cleanlab does).
//! - [`neighbours`]: near-duplicates, conflicting duplicates and outliers in embedding
//!   space (the vectors `vigil embed` writes).
//! - [`issues`]: `vigil datasets issues`, the two above joined into one JSONL with a
//!   reason per row.
//! - [`queue`]: `vigil queue`, one deduplicated, budgeted annotation queue from label
//!   issues, uncertain rows, recall hits and disagreements between two versions,
//!   exported for Label Studio, Argilla and as plain JSONL.
//! - [`apply`]: `vigil datasets apply-labels`, reviewed labels folded back into a new
//!   dataset file with provenance, never editing the original.
//!
//! Every decision here is a pure function over rows already read; the I/O (reading
//! JSONL through the shared `jsonl.rs`, atomic writes) sits at the edges of each module.

pub mod apply;
pub mod confident;
pub mod error;
pub mod folds;
pub mod issues;
mod jsonl;
pub mod neighbours;
pub mod queue;

pub use error::CurateError;
