//! The `vigil` command line (clap derive): one module per subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod embed;
mod validate;

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
    /// Write text / image / fused embeddings of JSONL rows (pretrained encoders or a trained model).
    Embed(embed::EmbedArgs),
    /// Benchmarks that print measured figures (`vigil bench train`).
    Bench(bench::BenchArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
