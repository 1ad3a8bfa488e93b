//! `vigil report`: the self-contained HTML evaluation report of a run directory.
//! The logic lives in `vigil_report`; this file is flags and output.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_report::{Bootstrap, ReportInput, ReportOptions, parse_slice_by, render, write_report};

/// Arguments of `vigil report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Reads RUN_DIR/config.resolved.yaml, eval/step-<S>.json, the chosen \
    evaluation's eval/step-<S>.scores.jsonl (per-row scores the run wrote), tensorboard/ \
    (train loss), data/rejects.jsonl and export-decision.json, and writes one HTML file: \
    inline SVG charts and JPEG thumbnails, no script, no network. Exit codes: 0 written; \
    2 not a run directory, no evaluation with scores, damaged file, bad flag; 1 write failure."
)]
pub struct ReportArgs {
    /// The run directory (`run.output_dir`).
    #[arg(value_name = "RUN_DIR")]
    run_dir: PathBuf,
    /// Output file (default: RUN_DIR/report-step-<S>.html).
    #[arg(long, value_name = "FILE.html")]
    out: Option<PathBuf>,
    /// Per-slice AUROC and bias AUCs by a field of each row's `meta` object.
    #[arg(long, value_name = "meta.FIELD")]
    slice_by: Option<String>,
    /// The evaluation step to report on (default: the last one with per-row scores).
    #[arg(long, value_name = "S")]
    step: Option<u64>,
    /// False positives and false negatives shown per label.
    #[arg(long, value_name = "N", default_value_t = 8)]
    top: usize,
    /// Bootstrap resamples for the 95% intervals (0: leave them out).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    bootstrap: usize,
}

/// Reads the run, renders, writes.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let opts = ReportOptions {
        slice_by: args.slice_by.as_deref().map(parse_slice_by).transpose()?,
        top: args.top,
        bootstrap: Bootstrap {
            resamples: args.bootstrap,
            ..Bootstrap::default()
        },
    };
    let input = ReportInput::from_run_dir(&args.run_dir, args.step)?;
    let html = render(&input, &opts)?;
    let out = args.out.unwrap_or_else(|| {
        args.run_dir.join(format!(
            "report-step-{}.html",
            input.step.unwrap_or_default()
        ))
    });
    write_report(&out, &html)?;
    println!("report: {} ({} bytes)", out.display(), html.len());
    Ok(ExitCode::SUCCESS)
}
