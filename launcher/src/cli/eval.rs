//! `vigil eval`: the training evaluation report for any exported model version on
//! any labelled file, plus the top false positives and negatives per label at the
//! shipped thresholds. The logic lives in `vigil_infer`; this file is
//! flags and output.

use std::path::PathBuf;
use std::process::ExitCode;
use vigil_store::storage::Location;

use clap::Args;
use vigil_infer::{EvalOptions, ServeError, write_output};
use vigil_report::{Bootstrap, ReportInput, ReportOptions, parse_slice_by, render, write_report};

/// Arguments of `vigil eval`.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints the report table and, per label, confusion counts at the \
    shipped thresholds with the top false positives (highest scores) and false negatives \
    (lowest scores). --output writes the JSON report: {model, version, data, task, \
    thresholds, report (every metric of eval/step-<S>.json), errors: [{label, threshold, \
    decision, counts: {tp, fp, tn, fn}, false_positives: [{id, score}], false_negatives}]}. \
    --html writes the self-contained HTML report of this evaluation (what `vigil report` \
    makes of a run: per-label curves, calibration, the top errors with text and thumbnails, \
    bootstrap intervals, --slice-by meta.FIELD slices). \
    Exit codes: 0 done; 2 no usable version, bad row (FILE:LINE), bad flag; 1 I/O failure."
)]
pub struct EvalArgs {
    /// Model repository `<export.dir>/<model_name>` (integer version directories), or
    /// one version directory (holding MANIFEST.json).
    #[arg(long, value_name = "DIR|URL")]
    model: Location,
    /// Version to use (default: the newest complete one).
    #[arg(long, value_name = "V")]
    version: Option<u64>,
    /// Labelled JSONL in the model's data format; image paths relative to this file.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Write the JSON report here (atomically).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// False positives and false negatives listed per label.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Batches scored at once, one per thread (default: every available core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// Write the HTML report of this evaluation here (atomically).
    #[arg(long, value_name = "FILE.html")]
    html: Option<PathBuf>,
    /// With --html: per-slice AUROC and bias AUCs by a field of each row's `meta`.
    #[arg(long, value_name = "meta.FIELD", requires = "html")]
    slice_by: Option<String>,
    /// With --html: bootstrap resamples for the 95% intervals (0: leave them out).
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "html")]
    bootstrap: usize,
}

/// Evaluates, prints the table, writes the report when asked.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    let opts = EvalOptions {
        model: args.model,
        version: args.version,
        data: args.data,
        top: args.top,
        batch_size: args.batch_size as usize,
        threads: args
            .threads
            .map_or_else(vigil_model::parallel::default_threads, |t| t as usize),
    };
    // A bad --slice-by is a usage error before any scoring.
    let slice_by = args.slice_by.as_deref().map(parse_slice_by).transpose()?;
    let (evaluation, rows, config) = vigil_infer::cpu::eval_with_rows(&opts)?;
    let html = match &args.html {
        Some(_) => {
            let input = ReportInput::from_evaluation(&evaluation, rows, config);
            let report_opts = ReportOptions {
                slice_by,
                top: args.top,
                bootstrap: Bootstrap {
                    resamples: args.bootstrap,
                    ..Bootstrap::default()
                },
            };
            Some(render(&input, &report_opts)?)
        }
        None => None,
    };
    if let Some(path) = &args.output {
        write_output(path, |out| {
            serde_json::to_writer_pretty(&mut *out, &evaluation)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
                .map_err(|source| ServeError::Write {
                    path: path.clone(),
                    source,
                })
        })?;
    }
    if let (Some(path), Some(html)) = (&args.html, &html) {
        write_report(path, html)?;
    }
    print!("{}", evaluation.table());
    if let Some(path) = &args.output {
        println!("report: {}", path.display());
    }
    if let (Some(path), Some(html)) = (&args.html, &html) {
        println!("html report: {} ({} bytes)", path.display(), html.len());
    }
    Ok(ExitCode::SUCCESS)
}
