//! The logic of `vigil predict`: score JSONL rows with an exported version and
//! write one JSON object per row, optionally ranked into a review or annotation
//! queue.
//!
//! Output line: `{"id", "version", "scores": {label: p}, "decisions": {label:
//! bool}}` plus `"margin"` when ranking by uncertainty. Everything is scored
//! before anything is written (ranking needs every score, and a bad row must not
//! leave a partial file), so memory grows with the row count: a few dozen bytes
//! per row and label beyond the dataset itself.

use std::io::Write;
use std::path::PathBuf;

use burn::tensor::backend::Backend;
use serde::ser::{Serialize, SerializeMap, Serializer};
use vigil_store::storage::Location;

use super::error::ServeError;
use super::served::ServedModel;
use vigil_eval::rank::{RankBy, decisions, margin, order};
use vigil_store::repo::ModelVersion;

/// Options of one prediction run.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Model repository (or one version directory).
    pub model: Location,
    /// The version to use; `None`: the newest complete one.
    pub version: Option<u64>,
    /// Input JSONL (dataset rows; labels optional and ignored).
    pub input: PathBuf,
    /// `--rank-by`: a label name or `uncertainty`.
    pub rank_by: Option<String>,
    /// `--top`: keep the first K rows after ranking.
    pub top: Option<usize>,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// Batches scored side by side (`--threads`; the scores do not depend on it).
    pub threads: usize,
}

/// What a prediction run did.
#[derive(Debug, Clone)]
pub struct PredictSummary {
    /// The version that scored.
    pub version: ModelVersion,
    /// Rows scored.
    pub scored: usize,
    /// Rows written (after `--top`).
    pub written: usize,
}

/// Scores `opts.input` and writes the JSON lines to `out`.
pub fn run_predict<B: Backend>(
    opts: &PredictOptions,
    out: &mut dyn Write,
    device: &B::Device,
) -> Result<PredictSummary, ServeError> {
    if opts.top == Some(0) {
        return Err(ServeError::BadOption {
            flag: "--top",
            message: "must be at least 1".into(),
        });
    }
    let served = ServedModel::<B>::load(&opts.model, opts.version, device)?;
    let labels = served.labels().to_vec();
    let by = opts
        .rank_by
        .as_deref()
        .map(|s| RankBy::parse(s, &labels))
        .transpose()?;
    let scored = served.score_file(&opts.input, opts.batch_size, opts.threads, device)?;
    let (task, thresholds) = (served.task(), &served.thresholds);
    let n = labels.len();
    let probs = &scored.scores.probs;
    let rows = order(probs, n, thresholds, task, by, opts.top);
    let version = served.version.version;
    for &r in &rows {
        let p = &probs[r * n..(r + 1) * n];
        let line = Line {
            id: &scored.ids[r],
            version,
            scores: ByLabel(&labels, p.to_vec()),
            decisions: ByLabel(&labels, decisions(p, thresholds, task)),
            margin: (by == Some(RankBy::Uncertainty)).then(|| margin(p, thresholds, task)),
        };
        let text = serde_json::to_string(&line).expect("a prediction serializes");
        writeln!(out, "{text}").map_err(|source| ServeError::Write {
            path: PathBuf::from("<output>"),
            source,
        })?;
    }
    Ok(PredictSummary {
        version: served.version,
        scored: scored.ids.len(),
        written: rows.len(),
    })
}

/// One output line, fields in this order.
#[derive(serde::Serialize)]
struct Line<'a> {
    id: &'a str,
    version: u64,
    scores: ByLabel<'a, f32>,
    decisions: ByLabel<'a, bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    margin: Option<f32>,
}

/// `{label: value}` in the model's label order (not alphabetical).
struct ByLabel<'a, V>(&'a [String], Vec<V>);

impl<V: Serialize> Serialize for ByLabel<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (label, value) in self.0.iter().zip(&self.1) {
            map.serialize_entry(label, value)?;
        }
        map.end()
    }
}
