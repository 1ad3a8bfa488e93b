//! `vigil predict`: score JSONL rows with an exported model version, optionally
//! ranked into a review queue (`--rank-by LABEL`) or an annotation queue
//! (`--rank-by uncertainty`). The logic lives in `vigil_infer`; this
//! file is flags and output.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_store::storage::Location;

use clap::Args;
use vigil_infer::{PredictOptions, write_output};

/// Arguments of `vigil predict`.
#[derive(Debug, Args)]
#[command(
    after_help = "Output: one JSON object per row: {\"id\", \"version\", \"scores\": \
    {label: probability}, \"decisions\": {label: bool}} (+ \"margin\" with --rank-by \
    uncertainty). Decisions use the version's thresholds.json (p >= threshold); \
    multi-class (softmax) models flag the argmax label. --rank-by LABEL: that label's \
    probability, highest first. --rank-by uncertainty: distance to the nearest threshold \
    (multi-class: top-1 minus top-2 probability), smallest first. Exit codes: 0 done; \
    2 no usable version, unknown --rank-by label, bad input row (FILE:LINE), bad flag; \
    1 I/O failure. The output file appears whole or not at all."
)]
pub struct PredictArgs {
    /// Model repository `<export.dir>/<model_name>` (integer version directories), or
    /// one version directory (holding MANIFEST.json).
    #[arg(long, value_name = "DIR|URL")]
    model: Location,
    /// Version to use (default: the newest complete one; staging directories never count).
    #[arg(long, value_name = "V")]
    version: Option<u64>,
    /// Input JSONL in the model's data format ({"id", "text"?, "image"?, "labels"?});
    /// image paths relative to this file.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Output JSONL (default: standard output).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Order rows by a label's probability (descending) or by `uncertainty` (ascending margin).
    #[arg(long, value_name = "LABEL|uncertainty")]
    rank_by: Option<String>,
    /// Keep the first K rows after ranking.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    top: Option<u64>,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Batches scored at once, one per thread (default: every available core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
}

/// Scores every row; writes the output only when every row succeeded.
pub fn run(args: PredictArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    let opts = PredictOptions {
        model: args.model,
        version: args.version,
        input: args.input,
        rank_by: args.rank_by,
        top: args.top.map(|k| k as usize),
        batch_size: args.batch_size as usize,
        threads: args
            .threads
            .map_or_else(vigil_model::parallel::default_threads, |t| t as usize),
    };
    let summary = match &args.output {
        None => {
            // Scored in full before the first line, so a failure prints nothing.
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let summary = vigil_infer::cpu::predict(&opts, &mut out)?;
            out.flush()?;
            summary
        }
        Some(path) => write_output(path, |out| vigil_infer::cpu::predict(&opts, out))?,
    };
    for (v, why) in &summary.version.skipped {
        eprintln!("vigil predict: warning: skipped damaged version {v}: {why}");
    }
    eprintln!(
        "vigil predict: version {} ({}): {} rows scored, {} written{}",
        summary.version.version,
        summary.version.dir.display(),
        summary.scored,
        summary.written,
        args.output
            .as_ref()
            .map(|p| format!(" -> {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
