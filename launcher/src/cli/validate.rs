//! `vigil validate CONFIG [--set K=V]... [--print]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_config::RunConfig;

/// Arguments of `vigil validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The run config (YAML).
    config: PathBuf,
    /// Override a key, e.g. `--set optim.lr=2e-5` (value parsed as YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Print the resolved config (after overrides and ${VAR} expansion).
    #[arg(long)]
    print: bool,
}

/// Loads and validates; writes nothing anywhere.
pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let config = RunConfig::load_checking_schedule(&args.config, &args.overrides)?;
    if args.print {
        print!("{}", config.to_yaml());
    } else {
        println!("{}: ok", args.config.display());
    }
    // Valid, but this binary could not run it: `vigil launch` refuses it (exit 2).
    let have = vigil_config::BuildFeatures::compiled();
    for p in vigil_config::missing_features(&config, have) {
        eprintln!("note: {}: {} (vigil launch refuses it)", p.key, p.message);
    }
    Ok(ExitCode::SUCCESS)
}
