//! `vigil worker CONFIG [--set K=V]...`: one training process. `vigil launch`
//! starts these with the worker environment (RANK, WORLD_SIZE, ...); run alone it
//! trains as a single process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_trainer::config::RunConfig;
use vigil_trainer::train::{self, Outcome, PREEMPTED_EXIT};

/// Arguments of `vigil worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The run config (YAML).
    config: PathBuf,
    /// Override a key, e.g. `--set optim.lr=2e-5` (value parsed as YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Trains; exit 0 when done (or stopped early), 75 when preempted after a checkpoint.
pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let config = RunConfig::load(&args.config, &args.overrides)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    match train::run(&config)? {
        Outcome::Completed { .. } | Outcome::EarlyStopped { .. } => Ok(ExitCode::SUCCESS),
        Outcome::Preempted { steps } => {
            eprintln!("preempted: checkpoint written at step {steps}; exiting {PREEMPTED_EXIT}");
            Ok(ExitCode::from(PREEMPTED_EXIT))
        }
    }
}
