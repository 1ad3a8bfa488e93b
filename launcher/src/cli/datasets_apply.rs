//! `vigil datasets apply-labels`: reviewed labels folded back into a new dataset file
//! with provenance. The logic lives in `vigil_curate::apply`; this file is flags and
//! output.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_curate::apply::{ApplyOptions, apply_labels};

/// Arguments of `vigil datasets apply-labels`.
#[derive(Debug, Args)]
#[command(
    after_help = "Reviews: plain JSONL {\"id\", \"labels\": {name: 0|1|null|yes|no}, \
    \"rationale\"?, \"reviewer\"?, \"reviewed_at\"?}, a Label Studio JSON export of a `vigil \
    queue --format labelstudio` project, or Argilla 2.x records (the format is detected). \
    Only the labels a review names change; each reviewed row gains a meta.provenance entry \
    {\"by\", \"at\", \"source\", \"changes\": {label: {\"old\", \"new\"}}}; other lines are \
    copied byte for byte. Exit codes: 0 written; 2 an id not in --data (REVIEWS:LINE), an \
    unknown label, --out is --data or exists without --force, a bad line; 1 I/O failure. \
    Nothing is written on error."
)]
pub struct ApplyLabelsArgs {
    /// The dataset (Vigil JSONL); never modified.
    #[arg(long, value_name = "DATASET.jsonl")]
    data: PathBuf,
    /// The reviews file.
    #[arg(long, value_name = "REVIEWS")]
    reviews: PathBuf,
    /// The new dataset file (must differ from --data).
    #[arg(long, value_name = "NEW.jsonl")]
    out: PathBuf,
    /// Reviewer recorded when a review does not name one.
    #[arg(long, value_name = "NAME")]
    reviewer: Option<String>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// Label names (default: every label the dataset's rows use).
    #[arg(long, value_name = "a,b", value_delimiter = ',')]
    labels: Option<Vec<String>>,
}

/// Folds the reviews in and prints what changed.
pub fn run(args: ApplyLabelsArgs) -> anyhow::Result<ExitCode> {
    let opts = ApplyOptions {
        data: args.data,
        reviews: args.reviews,
        out: args.out,
        reviewer: args.reviewer,
        force: args.force,
        labels: args.labels,
    };
    let summary = apply_labels(&opts, std::time::SystemTime::now())?;
    print!("vigil datasets apply-labels: {}", summary.render(&opts));
    Ok(ExitCode::SUCCESS)
}
