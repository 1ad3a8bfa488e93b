//! `vigil queue`: one deduplicated, budgeted annotation queue from label issues,
//! uncertain predictions, recall hits and disagreements between two versions. The
//! logic lives in `vigil_curate::queue`; this file is flags and output.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_curate::queue::{QueueFormat, QueueOptions, build_queue};

/// Arguments of `vigil queue`.
#[derive(Debug, Args)]
#[command(
    after_help = "Budget policy: sources take turns (issues, uncertain, recall, \
    compare), each adding its best-ranked row not yet queued; a row already queued (same id, \
    or same normalised text and image path) gains the reasons instead and costs no turn. \
    Output: jsonl {\"id\", \"text\"?, \"image\"?, \"labels\", \"rationale\"?, \"meta\"?, \
    \"reasons\": [{\"source\", \"kind\", \"label\"?, \"detail\"}], \"duplicates\"?, \
    \"priority\"}; labelstudio: a task array + OUT.labelstudio.xml (labeling config); \
    argilla: Argilla 2.x records + OUT.argilla-settings.json. Exit codes: 0 written; 2 bad \
    flag, bad input line (FILE:LINE), an id not in --data; 1 I/O failure. Nothing is written \
    on error."
)]
pub struct QueueArgs {
    /// The dataset (Vigil JSONL) the queued rows come from.
    #[arg(long, value_name = "DATASET.jsonl")]
    data: PathBuf,
    /// Label issues (`vigil datasets issues` output), by rank.
    #[arg(long, value_name = "ISSUES.jsonl")]
    issues: Option<PathBuf>,
    /// `vigil predict` output: the rows nearest a threshold (margin, else |p - 0.5|).
    #[arg(long, value_name = "PRED.jsonl")]
    predictions: Option<PathBuf>,
    /// Similarity-search hits {"id", "similarity", "seed"?}, most similar first.
    #[arg(long, value_name = "HITS.jsonl")]
    recall: Option<PathBuf>,
    /// Two `vigil predict` outputs of two versions: rows whose decisions differ.
    #[arg(long, num_args = 2, value_names = ["A.jsonl", "B.jsonl"])]
    compare: Option<Vec<PathBuf>>,
    /// Most items in the queue.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    budget: u64,
    /// Output format.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "labelstudio", "argilla"])]
    format: String,
    /// The queue file (written atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Label names (default: every label the dataset's rows use).
    #[arg(long, value_name = "a,b", value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// Written before each image path as the dataset has it, so the tool finds the
    /// file: a URL (`https://files/memes/`), Label Studio's local files
    /// (`/data/local-files/?d=memes/`) or an absolute directory (Argilla's client).
    #[arg(long, value_name = "PREFIX")]
    image_prefix: Option<String>,
}

/// Builds and writes the queue.
pub fn run(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let format: QueueFormat = args
        .format
        .parse()
        .map_err(|message| vigil_curate::CurateError::Usage { message })?;
    let opts = QueueOptions {
        data: args.data,
        issues: args.issues,
        predictions: args.predictions,
        recall: args.recall,
        compare: args.compare.map(|mut v| {
            let b = v.pop().expect("clap takes two values");
            let a = v.pop().expect("clap takes two values");
            (a, b)
        }),
        budget: usize::try_from(args.budget).unwrap_or(usize::MAX),
        format,
        out: args.out,
        labels: args.labels,
        image_prefix: args.image_prefix,
    };
    let summary = build_queue(&opts)?;
    print!("vigil queue: {}", summary.render());
    Ok(ExitCode::SUCCESS)
}
