//! `vigil worker CONFIG [--set K=V]...`: one training process. `vigil launch`
//! starts these with the worker environment (RANK, WORLD_SIZE, ...); run alone it
//! trains as a single process.
//!
//! Which config it runs: under a launcher that resolved a CONFIG (`VIGIL_CONFIG_KEY` is
//! set), node 0's resolved config from the rendezvous store — overrides applied and
//! `${VAR}`s expanded once, in node 0's launcher's environment — so every rank of every
//! node runs the same config whatever its own environment holds (a
//! [`RunDescription`]: validated once, taken as it is); CONFIG is then only a record
//! of what the launcher was given, and the launcher passes no `--set`. Otherwise (run
//! alone, or under another torchrun-style launcher) it resolves CONFIG and `--set`
//! itself, as `vigil validate` does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use vigil_collective::WorkerEnv;
use vigil_config::{RunConfig, RunDescription};
use vigil_trainer::train::{self, Outcome, PREEMPTED_EXIT};

use vigil_launch::supervise::lock::OutputHold;

/// Arguments of `vigil worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The run config (YAML).
    config: PathBuf,
    /// Override a key, e.g. `--set optim.lr=2e-5` (value parsed as YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Print the config this worker would run (under `vigil launch`: node 0's resolved
    /// config) as YAML and exit without training.
    #[arg(long)]
    print_config: bool,
}

/// Trains; exit 0 when done (or stopped early), 75 when preempted after a checkpoint.
pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let env = WorkerEnv::detect(|k| std::env::var(k).ok())?;
    let (config, from_launcher) = load(&args, env.as_ref())?;
    if args.print_config {
        print!("{}", config.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    // Under `vigil launch` the launcher holds the output directory; a worker run
    // alone (or rank 0 under another launcher) takes the same lock itself, so it
    // can never mix its checkpoints with a live launch's.
    let _lock = if !from_launcher && env.as_ref().is_none_or(|e| e.rank == 0) {
        Some(OutputHold::acquire(
            &config.output_dir(),
            config.output_url().as_ref(),
        )?)
    } else {
        None
    };
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

/// Node 0's resolved config when the launcher published one (and `true`), else
/// CONFIG and `--set` resolved here (and `false`).
fn load(args: &WorkerArgs, env: Option<&WorkerEnv>) -> anyhow::Result<(RunConfig, bool)> {
    let published = match env {
        Some(env) => env
            .fetch_config()
            .context("fetch node 0's resolved config from the rendezvous store")?,
        None => None,
    };
    match published {
        Some(yaml) => Ok((RunDescription::read(&yaml)?, true)),
        None => Ok((RunConfig::load(&args.config, &args.overrides)?, false)),
    }
}
