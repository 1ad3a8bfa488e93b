//! The `vigil` command line (clap derive): one module per subcommand.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod bench;
mod bench_cache;
mod bench_encoders;
mod bench_image;
mod bench_recall;
mod bench_serve;
mod crossval;
mod datasets;
mod datasets_apply;
mod datasets_issues;
mod embed;
pub mod errors;
mod eval;
mod export;
mod guard;
mod help_markdown;
mod index;
mod index_source;
pub(crate) mod launch;
mod predict;
mod queue;
mod recall;
mod render;
mod report;
mod serve;
mod validate;
mod worker;

pub use bench::BenchUsageError;
pub use render::RenderUsageError;
pub use vigil_launch::resolve::{LaunchUsageError, ResolveError};

/// Vigil: data-parallel fine-tuning of multimodal moderation classifiers.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a run config (and overrides); print every problem, or the resolved config.
    Validate(validate::ValidateArgs),
    /// Run workers on this node under supervision (restarts, preemption, multi-node).
    #[command(
        after_help = "Exit codes: 0 every worker succeeded; 1 the group failed with no \
        restarts left (or the launcher could not run); 2 usage or config error (of the launch, \
        or a worker exited 2: not restarted); 65 a worker's training loss became NaN or \
        infinite (not restarted); 75 preempted (stopped by SIGTERM/SIGINT after the workers \
        checkpointed: requeue)."
    )]
    Launch(vigil_launch::resolve::LaunchArgs),
    /// Train K models on seeded, grouped folds and write every training row's out-of-fold scores.
    Crossval(crossval::CrossvalArgs),
    /// Print a cluster job for a config: a Slurm batch script or a Kubernetes CronJob.
    #[command(subcommand)]
    Render(render::RenderCommand),
    /// Train one worker of a run (what `vigil launch` starts; runs alone with WORLD_SIZE=1).
    Worker(worker::WorkerArgs),
    /// Internal: the orphan guard started by `vigil launch`.
    #[command(name = "__guard", hide = true)]
    Guard,
    /// Internal: print the book's CLI reference page (docs/src/reference/cli.md).
    #[command(name = "help-markdown", hide = true)]
    HelpMarkdown(help_markdown::HelpMarkdownArgs),
    /// Generate (`synth`), inspect (`audit`) or time (`bench`) datasets.
    Datasets(datasets::DatasetsArgs),
    /// Build one deduplicated, budgeted annotation queue (Label Studio, Argilla, JSONL).
    Queue(queue::QueueArgs),
    /// Build and change a versioned nearest-neighbour index of a corpus' embeddings.
    Index(index::IndexArgs),
    /// Find the corpus items nearest to known violations (seed rows or a label).
    Recall(recall::RecallArgs),
    /// Write text / image / fused embeddings of JSONL rows (pretrained encoders or a trained model).
    Embed(embed::EmbedArgs),
    /// Score JSONL rows with an exported model version; rank them for review or annotation.
    Predict(predict::PredictArgs),
    /// Evaluate an exported model version on a labelled file: report, top false positives/negatives.
    Eval(eval::EvalArgs),
    /// Write a self-contained HTML evaluation report of a run directory.
    Report(report::ReportArgs),
    /// Publish a checkpoint or version into a model repository, with model.onnx and Triton files.
    Export(export::ExportArgs),
    /// Benchmarks that print measured figures (`vigil bench train`).
    Bench(bench::BenchArgs),
    /// Serve a model repository over HTTP (KServe v2 / Open Inference Protocol), picking up new versions.
    Serve(serve::ServeArgs),
}

/// `vigil --version`: the version and the optional features this binary has, e.g.
/// `vigil 0.1.0 (features: cuda, nccl)`.
pub fn version() -> String {
    let have = vigil_config::BuildFeatures::compiled();
    format!("{} (features: {})", env!("CARGO_PKG_VERSION"), have.list())
}

/// Parses the command line (exits on `--help`, `--version` and usage errors), with
/// [`version`] as the version.
pub fn parse() -> Cli {
    // clap takes a `&'static str` here (its `string` feature is off): one string, once
    // per process.
    let version: &'static str = Box::leak(version().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Launch(args) => launch::run(args),
        Command::Crossval(args) => crossval::run(args),
        Command::Render(cmd) => render::run(cmd),
        Command::Worker(args) => worker::run(args),
        Command::Guard => guard::run(),
        Command::HelpMarkdown(args) => help_markdown::run(args),
        Command::Datasets(args) => datasets::run(args),
        Command::Queue(args) => queue::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Index(args) => index::run(args),
        Command::Recall(args) => recall::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Report(args) => report::run(args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
    }
}
