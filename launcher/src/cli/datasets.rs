//! `vigil datasets synth|audit|bench|issues|apply-labels`: generate, inspect, time,
//! clean and relabel datasets. The logic lives in `vigil_data` and `vigil_curate`;
//! this file (and `datasets_issues.rs`, `datasets_apply.rs`) only maps flags onto it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use vigil_config::DataFormat;
use vigil_data::{self as data, AuditOptions, BenchOptions, SynthOptions};

use vigil_launch::exit;

/// Arguments of `vigil datasets`.
#[derive(Debug, Args)]
pub struct DatasetsArgs {
    #[command(subcommand)]
    command: DatasetsCommand,
}

#[derive(Debug, Subcommand)]
enum DatasetsCommand {
    /// Generate a synthetic moderation dataset (the bundled sample is `--rows 800 --seed 2026`).
    Synth(SynthArgs),
    /// Report rows, labels, bad rows, duplicates, conflicts, leakage and text lengths.
    Audit(AuditArgs),
    /// Measure loader throughput (rows/s with images decoded and resized).
    Bench(BenchArgs),
    /// Find likely label errors (confident learning on out-of-fold scores), near- and
    /// conflicting duplicates and outliers (embeddings); JSONL with a reason per row.
    Issues(super::datasets_issues::IssuesArgs),
    /// Fold reviewed labels back into a new dataset file with provenance (never in place).
    ApplyLabels(super::datasets_apply::ApplyLabelsArgs),
}

#[derive(Debug, Args)]
struct SynthArgs {
    /// Output directory (created; existing files of the same names are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Total rows, train and val together.
    #[arg(long, default_value_t = data::synth::SAMPLE_ROWS)]
    rows: usize,
    /// Seed.
    #[arg(long, default_value_t = data::synth::SAMPLE_SEED)]
    seed: u64,
    /// Share of rows in val.jsonl.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Side of the generated square PNGs.
    #[arg(long, default_value_t = 64)]
    image_px: u32,
}

#[derive(Debug, Args)]
struct AuditArgs {
    /// The JSONL file to audit.
    data: PathBuf,
    /// Another file (e.g. the training set) to check for shared items.
    #[arg(long)]
    against: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with code 3 when the audit finds errors.
    #[arg(long)]
    strict: bool,
    /// Row format.
    #[arg(long, value_parser = ["vigil", "hateful_memes"], default_value = "vigil")]
    format: String,
    /// Label names, comma-separated (default: every label found in the file).
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// Root of image paths (default: the data file's directory).
    #[arg(long)]
    image_root: Option<PathBuf>,
    /// Texts longer than this many characters count as bad rows.
    #[arg(long, default_value_t = 10_000)]
    max_text_chars: usize,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// A Vigil JSONL file (e.g. from `vigil datasets synth`).
    data: PathBuf,
    /// Image side to resize to.
    #[arg(long, default_value_t = 224)]
    image_size: u32,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Epochs to time.
    #[arg(long, default_value_t = 3)]
    epochs: u64,
    /// Label names, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "hate,harassment,violence,self_harm,spam"
    )]
    labels: Vec<String>,
}

/// Runs a `vigil datasets` subcommand.
pub fn run(args: DatasetsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DatasetsCommand::Issues(a) => super::datasets_issues::run(a),
        DatasetsCommand::ApplyLabels(a) => super::datasets_apply::run(a),
        DatasetsCommand::Synth(a) => {
            let opts = SynthOptions {
                rows: a.rows,
                seed: a.seed,
                val_fraction: a.val_fraction,
                image_px: a.image_px,
            };
            let r = data::synth(&a.out, &opts)?;
            println!(
                "{}: {} train rows, {} val rows, {} images, {:.1} MB",
                r.out.display(),
                r.train_rows,
                r.val_rows,
                r.images,
                r.bytes as f64 / 1e6
            );
            Ok(ExitCode::SUCCESS)
        }
        DatasetsCommand::Audit(a) => {
            let opts = AuditOptions {
                format: if a.format == "hateful_memes" {
                    DataFormat::HatefulMemes
                } else {
                    DataFormat::Vigil
                },
                hateful_memes_label: None,
                labels: a.labels,
                image_root: a.image_root,
                max_text_chars: a.max_text_chars,
            };
            let report = data::audit(&a.data, a.against.as_deref(), &opts)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            if a.strict && report.errors > 0 {
                Ok(ExitCode::from(exit::AUDIT_FINDINGS))
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        DatasetsCommand::Bench(a) => {
            let opts = BenchOptions {
                image_size: a.image_size,
                threads: a.threads,
                prefetch: 4,
                batch_size: a.batch_size,
                epochs: a.epochs.max(1),
                labels: a.labels,
            };
            let r = data::bench(&a.data, &opts)?;
            println!(
                "{}: {} rows, load+check {:.2} s; image {}x{}, {} threads, batch {}",
                a.data.display(),
                r.rows,
                r.load_seconds,
                r.image_size,
                r.image_size,
                r.threads,
                opts.batch_size
            );
            for (e, rps) in r.rows_per_second.iter().enumerate() {
                println!("  epoch {e}: {rps:.0} rows/s");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
