//! `vigil queue`: one deduplicated, budgeted annotation queue from label issues,
//! uncertain predictions, recall hits and disagreements between two model versions,
//! written for Label Studio, Argilla or as plain JSONL.
//!
//! Every id a source names must be a row of `--data`: a source that names another
//! row was made from another file, and a queue built from mismatched files would
//! send reviewers rows whose reasons are about something else. The item carries the
//! row as the dataset has it now (text, image, labels, rationale, meta) and every
//! reason any source gives for it.
//!
//! # Layout
//! - `sources.rs`: each source file read into a ranked candidate list.
//! - `merge.rs`: the budget policy (round robin by each source's rank) and the
//!   deduplication by id and by content, without I/O.
//! - `export.rs`: the three output formats, without I/O.

mod export;
mod merge;
mod sources;

use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use export::{QueueItem, argilla, jsonl, label_studio};
pub use merge::{Merged, merge};
pub use sources::{Candidate, Ranked, Reason, Source, compare, issues, recall, uncertain};

use crate::CurateError;
use crate::apply::rows::DataFile;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueFormat {
    /// One JSON object per item.
    #[default]
    Jsonl,
    /// Label Studio tasks + `<out>.labelstudio.xml`.
    LabelStudio,
    /// Argilla records + `<out>.argilla-settings.json`.
    Argilla,
}

impl FromStr for QueueFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" => Ok(Self::Jsonl),
            "labelstudio" => Ok(Self::LabelStudio),
            "argilla" => Ok(Self::Argilla),
            other => Err(format!(
                "unknown format '{other}' (jsonl, labelstudio, argilla)"
            )),
        }
    }
}

/// What `vigil queue` was asked.
#[derive(Debug, Clone, Default)]
pub struct QueueOptions {
    /// The dataset the queued rows come from.
    pub data: PathBuf,
    /// `vigil datasets issues` output.
    pub issues: Option<PathBuf>,
    /// `vigil predict` output, for uncertain rows.
    pub predictions: Option<PathBuf>,
    /// Similarity-search hits.
    pub recall: Option<PathBuf>,
    /// Two `vigil predict` outputs of two versions.
    pub compare: Option<(PathBuf, PathBuf)>,
    /// Most items in the queue.
    pub budget: usize,
    /// Output format.
    pub format: QueueFormat,
    /// The queue file.
    pub out: PathBuf,
    /// Label names (default: every label the dataset's rows use).
    pub labels: Option<Vec<String>>,
    /// Written before each item's image path (as the dataset has it), so the
    /// annotation tool finds the file: a URL, Label Studio's
    /// `/data/local-files/?d=DIR/`, or an absolute directory for Argilla's client.
    pub image_prefix: Option<String>,
}

/// What the command did.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSummary {
    /// Items written.
    pub items: usize,
    /// Per source given: `(source, candidates, items it brought in first)`.
    pub sources: Vec<(Source, usize, usize)>,
    /// Content duplicates folded into other items.
    pub duplicates: usize,
    /// The files written (the queue first).
    pub written: Vec<PathBuf>,
}

impl QueueSummary {
    /// The lines the command prints.
    pub fn render(&self) -> String {
        let per: Vec<String> = self
            .sources
            .iter()
            .map(|(s, n, first)| format!("{}: {first} of {n}", s.as_str()))
            .collect();
        let files: Vec<String> = self
            .written
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "{} items ({}; {} content duplicates folded in) -> {}\n",
            self.items,
            per.join(", "),
            self.duplicates,
            files.join(", ")
        )
    }
}

/// The file written beside `out` for `format`, if any.
pub fn companion(out: &Path, format: QueueFormat) -> Option<PathBuf> {
    let suffix = match format {
        QueueFormat::Jsonl => return None,
        QueueFormat::LabelStudio => ".labelstudio.xml",
        QueueFormat::Argilla => ".argilla-settings.json",
    };
    let mut name = out.file_name()?.to_os_string();
    name.push(suffix);
    Some(out.with_file_name(name))
}

/// Builds the queue and writes it (atomically; nothing is written on any error).
pub fn build_queue(opts: &QueueOptions) -> Result<QueueSummary, CurateError> {
    let usage = |message: String| CurateError::Usage { message };
    if opts.budget == 0 {
        return Err(usage("--budget must be at least 1".into()));
    }
    let mut inputs: Vec<&Path> = vec![&opts.data];
    inputs.extend(opts.issues.as_deref());
    inputs.extend(opts.predictions.as_deref());
    inputs.extend(opts.recall.as_deref());
    if let Some((a, b)) = &opts.compare {
        inputs.extend([a.as_path(), b.as_path()]);
    }
    if inputs.len() == 1 {
        return Err(usage(
            "no source: give at least one of --issues, --predictions, --recall, --compare".into(),
        ));
    }
    let companion_path = companion(&opts.out, opts.format);
    for input in &inputs {
        for out in std::iter::once(&opts.out).chain(companion_path.as_ref()) {
            if crate::apply::same_file(out, input) {
                return Err(usage(format!(
                    "the queue's output {} is the input {}",
                    out.display(),
                    input.display()
                )));
            }
        }
    }

    let data = DataFile::read(&opts.data, opts.labels.as_deref())?;
    if data.labels.is_empty() {
        return Err(usage(format!(
            "{} has no labels: name them with --labels",
            opts.data.display()
        )));
    }
    let mut ranked = Vec::new();
    if let Some(p) = &opts.issues {
        ranked.push(issues(p)?);
    }
    if let Some(p) = &opts.predictions {
        ranked.push(uncertain(p)?);
    }
    if let Some(p) = &opts.recall {
        ranked.push(recall(p)?);
    }
    if let Some((a, b)) = &opts.compare {
        ranked.push(compare(a, b)?);
    }
    let mut items = queue_items(&data, &ranked, opts.budget)?;
    if let Some(prefix) = &opts.image_prefix {
        for item in &mut items {
            if let Some(image) = &mut item.image {
                image.insert_str(0, prefix);
            }
        }
    }

    let (main, side) = match opts.format {
        QueueFormat::Jsonl => (jsonl(&items, &data.labels), None),
        QueueFormat::LabelStudio => {
            let (t, x) = label_studio(&items, &data.labels)?;
            (t, Some(x))
        }
        QueueFormat::Argilla => {
            let (r, s) = argilla(&items, &data.labels)?;
            (r, Some(s))
        }
    };
    let write = |path: &Path, text: &str| {
        vigil_store::atomic::write_atomic(path, text.as_bytes()).map_err(|source| CurateError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut written = Vec::new();
    // The companion first: a queue file never appears without its settings.
    if let (Some(path), Some(text)) = (&companion_path, &side) {
        write(path, text)?;
    }
    write(&opts.out, &main)?;
    written.push(opts.out.clone());
    written.extend(companion_path.filter(|_| side.is_some()));

    let sources = ranked
        .iter()
        .map(|r| {
            let first = items
                .iter()
                .filter(|i| i.reasons.first().map(|x| x.source) == Some(r.source))
                .count();
            (r.source, r.candidates.len(), first)
        })
        .collect();
    Ok(QueueSummary {
        items: items.len(),
        sources,
        duplicates: items.iter().map(|i| i.duplicates.len()).sum(),
        written,
    })
}

/// Checks every candidate's id against `data`, merges and joins the rows in.
pub fn queue_items(
    data: &DataFile,
    ranked: &[Ranked],
    budget: usize,
) -> Result<Vec<QueueItem>, CurateError> {
    for r in ranked {
        for c in &r.candidates {
            if data.row(&c.id).is_none() {
                return Err(CurateError::Usage {
                    message: format!(
                        "{}:{}: id '{}' ({}) is not in --data {}; the files do not match",
                        r.file.display(),
                        c.line,
                        c.id,
                        r.source.as_str(),
                        data.path.display()
                    ),
                });
            }
        }
    }
    let content = |id: &str| {
        let (_, row) = data.row(id)?;
        if row.text.is_none() && row.image.is_none() {
            return None;
        }
        Some(format!(
            "{}\u{0}{}",
            row.text
                .as_deref()
                .map(vigil_data::normalise_text)
                .unwrap_or_default(),
            row.image.as_deref().unwrap_or_default()
        ))
    };
    let merged = merge(ranked, budget, content);
    Ok(merged
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let (_, row) = data.row(&m.id).expect("checked above");
            QueueItem {
                priority: i + 1,
                id: m.id,
                text: row.text.clone(),
                image: row.image.clone(),
                labels: row.labels.clone(),
                rationale: row.rationale.clone(),
                meta: row.meta.clone(),
                reasons: m.reasons,
                duplicates: m.duplicates,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_companion_file_sits_beside_the_queue() {
        let out = Path::new("q/queue.json");
        assert_eq!(companion(out, QueueFormat::Jsonl), None);
        assert_eq!(
            companion(out, QueueFormat::LabelStudio).unwrap(),
            Path::new("q/queue.json.labelstudio.xml")
        );
        assert_eq!(
            companion(out, QueueFormat::Argilla).unwrap(),
            Path::new("q/queue.json.argilla-settings.json")
        );
        assert_eq!("labelstudio".parse(), Ok(QueueFormat::LabelStudio));
        assert!("csv".parse::<QueueFormat>().is_err());
    }
}
