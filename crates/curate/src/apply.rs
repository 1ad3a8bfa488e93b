//! `vigil datasets apply-labels`: reviewed labels folded back into a NEW dataset file,
//! with provenance, never editing the original.
//!
//! The new file has every line of the original in the original order. A line no
//! review names is copied byte for byte; a reviewed row is re-serialised (its keys
//! then come out sorted) with only the labels the review names replaced, `rationale`
//! set when the review gives one, and an entry appended to `meta.provenance`:
//! `{"by", "at", "source", "changes": {label: {"old", "new"}}, "confirmed"?, ...}`.
//!
//! Why a new file and never in place: a dataset version is what a run trained on,
//! and the reviewed file is a new version; the diff between the two is the review.
//! Why all or nothing: a review of an id that is not in the dataset means the
//! reviews belong to another file (or the ids were mangled on the way through a
//! tool), so the command refuses the whole batch and writes nothing, rather than
//! folding back the part that happens to match.
//!
//! # Layout
//! - `rows.rs`: the dataset file, every line kept beside its parsed row (the queue
//!   reads the dataset through it too).
//! - `reviews.rs`: the reviews file in its three dialects (plain JSONL, Label Studio,
//!   Argilla) read into one [`Review`] shape.
//! - `fold.rs`: the checks and the new text, without I/O.

mod fold;
mod reviews;
pub mod rows;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use fold::{FoldContext, FoldSummary, Folded, LabelChanges, fold};
pub use reviews::{Review, ReviewFormat, parse_reviews, records, review_value};
pub use rows::{DataFile, DataLine};

use crate::CurateError;

/// What `vigil datasets apply-labels` was asked.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The dataset (Vigil JSONL).
    pub data: PathBuf,
    /// The reviews (plain JSONL, a Label Studio export or Argilla records).
    pub reviews: PathBuf,
    /// The new dataset file.
    pub out: PathBuf,
    /// The reviewer when a review does not name one.
    pub reviewer: Option<String>,
    /// Replace an existing `out` (never `data` itself).
    pub force: bool,
    /// Label names (default: every label the dataset's rows use).
    pub labels: Option<Vec<String>>,
}

/// What the command did.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplySummary {
    /// The reviews' dialect.
    pub format: ReviewFormat,
    /// The counts.
    pub fold: FoldSummary,
    /// Rows in the dataset.
    pub rows: usize,
}

impl ApplySummary {
    /// The lines the command prints.
    pub fn render(&self, opts: &ApplyOptions) -> String {
        let f = &self.fold;
        let mut out = format!(
            "{} reviews ({}) of {} rows: {} rows changed, {} confirmed as they were, {} rationales set -> {}\n",
            f.reviewed,
            self.format.as_str(),
            self.rows,
            f.changed,
            f.reviewed - f.changed,
            f.rationales,
            opts.out.display()
        );
        let show = |v: &Option<bool>| match v {
            None => "null",
            Some(true) => "1",
            Some(false) => "0",
        };
        for (label, c) in &f.per_label {
            let parts: Vec<String> = c
                .transitions
                .iter()
                .map(|((o, n), k)| format!("{}->{}: {k}", show(o), show(n)))
                .collect();
            out.push_str(&format!(
                "  {label}: {} changed ({})\n",
                c.total(),
                parts.join(", ")
            ));
        }
        for (id, label) in &f.conflicts {
            out.push_str(&format!(
                "  conflict: the reviewers of '{id}' disagree on '{label}'; left as it was\n"
            ));
        }
        out
    }
}

/// Runs apply-labels: checks the paths, reads both files, folds, writes `out`
/// atomically. Nothing is written on any error. `now` stamps reviews without a time.
pub fn apply_labels(opts: &ApplyOptions, now: SystemTime) -> Result<ApplySummary, CurateError> {
    let usage = |message: String| CurateError::Usage { message };
    if same_file(&opts.out, &opts.data) {
        return Err(usage(format!(
            "--out {} is the --data file: apply-labels never edits a dataset in place; \
             name a new file",
            opts.out.display()
        )));
    }
    if same_file(&opts.out, &opts.reviews) {
        return Err(usage(format!(
            "--out {} is the --reviews file",
            opts.out.display()
        )));
    }
    if opts.out.exists() && !opts.force {
        return Err(usage(format!(
            "--out {} exists; pass --force to replace it",
            opts.out.display()
        )));
    }
    let data = DataFile::read(&opts.data, opts.labels.as_deref())?;
    let text = std::fs::read_to_string(&opts.reviews).map_err(|source| CurateError::Io {
        path: opts.reviews.clone(),
        source,
    })?;
    let (format, reviews) = parse_reviews(&opts.reviews, &text)?;
    let now = rfc3339(now);
    let ctx = FoldContext {
        reviews: &opts.reviews,
        default_by: opts.reviewer.as_deref(),
        now: &now,
    };
    let folded = fold(&data, &reviews, &ctx)?;
    vigil_store::atomic::write_atomic(&opts.out, folded.text.as_bytes()).map_err(|source| {
        CurateError::Io {
            path: opts.out.clone(),
            source,
        }
    })?;
    Ok(ApplySummary {
        format,
        fold: folded.summary,
        rows: data.rows().count(),
    })
}

/// Whether `a` and `b` name one file (the same path, or both existing and resolving
/// to the same place).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// `t` as RFC 3339 UTC to the second (`2025-06-01T12:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_of_known_instants() {
        let at = |s| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_748_779_199), "2025-06-01T11:59:59Z");
    }
}
