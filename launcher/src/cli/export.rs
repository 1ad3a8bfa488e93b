//! `vigil export`: publish an existing checkpoint or export version as the next
//! version of a model repository, with `model.onnx` and the Triton files (for
//! runs made before the ONNX export). The logic is
//! `vigil_trainer::train::republish`; this file is flags and output.

use std::process::ExitCode;

use clap::Args;
use vigil_config::TritonInstance;
use vigil_store::repo::locate;
use vigil_store::storage::Location;
use vigil_trainer::train::ExportSource;

/// Arguments of `vigil export`.
#[derive(Debug, Args)]
#[command(
    group = clap::ArgGroup::new("source").required(true).args(["checkpoint", "model"]),
    after_help = "A checkpoint brings its run's config.resolved.yaml (two directories up) and \
    the thresholds of the run's last evaluation at or before its step (eval/step-<S>.json); a \
    version brings its own config.json, thresholds.json and metrics.json. The new version is \
    published atomically (staging directory, MANIFEST.json last, rename) with model.onnx, and \
    the repository gets config.pbtxt and labels.txt. Exit codes: 0 published; 2 unusable \
    source or bad flag; 1 I/O failure."
)]
pub struct ExportArgs {
    /// A training checkpoint directory (`<run>/checkpoints/step-<S>`), or its bucket
    /// URL (`s3://…/checkpoints/step-<S>`: the run's config and evaluations are read
    /// from the same run prefix).
    #[arg(long, value_name = "DIR|URL")]
    checkpoint: Option<Location>,
    /// A model repository or version directory (as `vigil predict --model`).
    #[arg(long, value_name = "DIR|URL")]
    model: Option<Location>,
    /// With `--model`: the version to export (default: the newest complete one).
    #[arg(long, value_name = "V", requires = "model")]
    version: Option<u64>,
    /// The model repository to publish into, `<export.dir>/<model_name>` (created if needed).
    #[arg(long, value_name = "DIR|URL")]
    repository: Location,
    /// Triton `instance_group` kind written to config.pbtxt.
    #[arg(long, value_name = "cpu|gpu", default_value = "cpu", value_parser = parse_instance)]
    triton_instance: TritonInstance,
}

fn parse_instance(s: &str) -> Result<TritonInstance, String> {
    match s {
        "cpu" => Ok(TritonInstance::Cpu),
        "gpu" => Ok(TritonInstance::Gpu),
        other => Err(format!("'{other}' is not cpu or gpu")),
    }
}

/// Publishes the source; prints where it went.
pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let source = match (args.checkpoint, args.model) {
        (Some(dir), _) => ExportSource::Checkpoint(dir),
        (None, Some(model)) => ExportSource::Version(locate(&model, args.version)?.dir),
        (None, None) => unreachable!("clap requires --checkpoint or --model"),
    };
    let done = vigil_trainer::cpu::republish(&source, &args.repository, args.triton_instance)?;
    eprintln!(
        "vigil export: published version {} (step {}) at {}",
        done.version, done.step, done.location
    );
    Ok(ExitCode::SUCCESS)
}
