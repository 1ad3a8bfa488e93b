//! `vigil datasets issues`: flags onto [`vigil_curate::issues`], a summary on stderr,
//! and optionally the HTML page ([`vigil_report::render_issues`]).
//!
//! `--multi-class` defaults to the `multi_class` of the `crossval.json` beside the
//! scores file (what `vigil crossval` trained), so the usual call needs no flag; with
//! no such file the labels are taken as multi-label.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use vigil_curate::CurateError;
use vigil_curate::confident::{FilterBy, Options, RankBy};
use vigil_curate::issues::{self, EmbeddingSource, IssuesOptions};
use vigil_curate::neighbours::{DATALAB_THRESHOLD, OutlierRule};

/// Arguments of `vigil datasets issues`.
#[derive(Debug, Args)]
pub struct IssuesArgs {
    /// Out-of-fold scores (`oof.jsonl` from `vigil crossval`).
    #[arg(long)]
    scores: PathBuf,
    /// Vectors from `vigil embed` (enables near-duplicates, conflicting duplicates
    /// and outliers).
    #[arg(long)]
    embeddings: Option<PathBuf>,
    /// Which vector of the embeddings file: default `embedding`, else the only one.
    #[arg(long, requires = "embeddings")]
    embedding_key: Option<String>,
    /// The labels are one softmax (one class per row). Default: `multi_class` in the
    /// `crossval.json` beside the scores, else multi-label.
    #[arg(long)]
    multi_class: bool,
    /// Treat the labels as independent (overrides crossval.json).
    #[arg(long, conflicts_with = "multi_class")]
    multi_label: bool,
    /// cleanlab's `filter_by`.
    #[arg(long, default_value = "prune_by_noise_rate", value_parser = [
        "prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
    ])]
    filter_by: String,
    /// cleanlab's `return_indices_ranked_by`.
    #[arg(long, default_value = "self_confidence", value_parser = ["self_confidence", "normalized_margin"])]
    rank_by: String,
    /// A class (or, multi-label, a label's side) with at most this many rows is not pruned.
    #[arg(long, default_value_t = 1)]
    min_examples_per_class: usize,
    /// Keep this fraction of the estimated noise (cleanlab's `frac_noise`, pruning filters).
    #[arg(long, default_value_t = 1.0)]
    frac_noise: f64,
    /// Cosine similarity from which two rows are near-duplicates.
    #[arg(long, default_value_t = 0.95)]
    duplicate_threshold: f32,
    /// Flag this fraction of rows with the lowest outlier scores instead of Datalab's
    /// rule (mean neighbour distance above Q3 + 1.7·IQR).
    #[arg(long)]
    outlier_fraction: Option<f64>,
    /// Nearest neighbours per row for the outlier score.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Threads for the neighbour search (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// The issues JSONL to write (whole or not at all).
    #[arg(long)]
    out: PathBuf,
    /// Also write an HTML page of the issues.
    #[arg(long)]
    html: Option<PathBuf>,
}

/// `multi_class` of the `crossval.json` beside `scores`, if there is one.
fn crossval_multi_class(scores: &Path) -> anyhow::Result<Option<bool>> {
    let path = scores
        .parent()
        .unwrap_or(Path::new("."))
        .join("crossval.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| CurateError::Usage {
        message: format!("{}: {e}", path.display()),
    })?;
    Ok(v.get("multi_class").and_then(serde_json::Value::as_bool))
}

fn usage(message: String) -> anyhow::Error {
    CurateError::Usage { message }.into()
}

/// Runs the command.
pub fn run(a: IssuesArgs) -> anyhow::Result<ExitCode> {
    if !(a.duplicate_threshold > 0.0 && a.duplicate_threshold <= 1.0) {
        return Err(usage(format!(
            "--duplicate-threshold {} must be in (0, 1]",
            a.duplicate_threshold
        )));
    }
    if !(a.frac_noise > 0.0 && a.frac_noise <= 1.0) {
        return Err(usage(format!(
            "--frac-noise {} must be in (0, 1]",
            a.frac_noise
        )));
    }
    if a.outlier_fraction
        .is_some_and(|f| !(0.0..=1.0).contains(&f))
    {
        return Err(usage("--outlier-fraction must be in [0, 1]".into()));
    }
    if a.k == 0 {
        return Err(usage("--k must be at least 1".into()));
    }
    let multi_class = if a.multi_class {
        true
    } else if a.multi_label {
        false
    } else {
        crossval_multi_class(&a.scores)?.unwrap_or(false)
    };
    let mut opts = IssuesOptions {
        multi_class,
        confident: Options {
            filter_by: FilterBy::parse(&a.filter_by).unwrap_or_default(),
            rank_by: RankBy::parse(&a.rank_by).unwrap_or_default(),
            frac_noise: a.frac_noise,
            min_examples_per_class: a.min_examples_per_class,
            num_to_remove_per_class: None,
        },
        embeddings: a.embeddings.clone().map(|path| EmbeddingSource {
            path,
            key: a.embedding_key.clone(),
        }),
        duplicate_threshold: a.duplicate_threshold,
        outliers: match a.outlier_fraction {
            Some(f) => OutlierRule::Fraction(f),
            None => OutlierRule::Iqr {
                threshold: DATALAB_THRESHOLD,
            },
        },
        k: a.k,
        ..IssuesOptions::default()
    };
    if let Some(t) = a.threads {
        opts.threads = t.max(1);
    }
    // Everything is computed before anything is written: a bad row leaves no file.
    let found = issues::find_issues(&a.scores, &opts)?;
    let page = a.html.as_ref().map(|_| {
        let rows: Vec<serde_json::Value> = found
            .rows
            .iter()
            .map(|r| serde_json::to_value(r).expect("an issue row serializes"))
            .collect();
        let notes: Vec<String> = found
            .summary
            .to_string()
            .lines()
            .map(str::to_string)
            .collect();
        let title = format!("Dataset issues: {}", a.scores.display());
        vigil_report::render_issues(&title, &notes, &rows)
    });
    vigil_store::atomic::write_atomic(&a.out, found.to_jsonl().as_bytes()).map_err(|source| {
        CurateError::Io {
            path: a.out.clone(),
            source,
        }
    })?;
    if let (Some(path), Some(page)) = (&a.html, page) {
        vigil_report::write_report(path, &page)?;
    }
    eprintln!("{}", found.summary);
    eprintln!("wrote {}", a.out.display());
    if let Some(p) = &a.html {
        eprintln!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
