//! `vigil render slurm CONFIG ...` and `vigil render k8s-cronjob CONFIG ...`: print a
//! cluster job for a run config (see `render/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use vigil_trainer::config::{ConfigError, RunConfig};

use crate::render::{k8s, slurm};

/// What to render.
#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// An sbatch script: one launcher per node, SIGTERM before the time limit, requeue.
    Slurm(SlurmArgs),
    /// A Kubernetes ConfigMap + batch/v1 CronJob for scheduled retraining.
    #[command(name = "k8s-cronjob")]
    K8sCronjob(CronArgs),
}

/// The config and its overrides.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The run config (YAML).
    config: PathBuf,
    /// Override a key (passed on to `vigil launch` in the job).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Arguments of `vigil render slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Nodes to allocate [default: launch.nnodes].
    #[arg(long)]
    nodes: Option<u32>,
    /// GPUs per node (0: CPU job).
    #[arg(long, default_value_t = 0)]
    gpus_per_node: u32,
    /// Time limit.
    #[arg(long, default_value = "04:00:00", value_name = "HH:MM:SS")]
    time: String,
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
}

/// Arguments of `vigil render k8s-cronjob`.
#[derive(Debug, Args)]
pub struct CronArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Cron schedule, e.g. "0 3 * * *".
    #[arg(long)]
    schedule: String,
    /// Container image.
    #[arg(long, default_value = "vigil:latest", value_name = "IMG")]
    image: String,
    /// PersistentVolumeClaim holding runs and exports.
    #[arg(long, default_value = "vigil-data")]
    pvc: String,
    /// Memory request and limit.
    #[arg(long, default_value = "8Gi")]
    memory: String,
}

/// A render request that cannot be honoured (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RenderUsageError {
    /// Not a five-field cron expression or a macro such as `@daily`.
    #[error(
        "--schedule '{value}': expected five cron fields (\"0 3 * * *\") or @hourly/@daily/@weekly/@monthly"
    )]
    Schedule {
        /// The value given.
        value: String,
    },
}

/// Checks the shape of a cron schedule (Kubernetes validates the values).
pub fn check_schedule(s: &str) -> Result<(), RenderUsageError> {
    let macros = [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    let fields: Vec<&str> = s.split_whitespace().collect();
    let ok = macros.contains(&s.trim())
        || (fields.len() == 5
            && fields.iter().all(|f| {
                f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*/,-?".contains(c))
            }));
    if ok {
        Ok(())
    } else {
        Err(RenderUsageError::Schedule { value: s.into() })
    }
}

/// Prints the rendered job.
pub fn run(cmd: RenderCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RenderCommand::Slurm(a) => {
            let config = RunConfig::load(&a.config.config, &a.config.overrides)?;
            let opts = slurm::SlurmOptions {
                nodes: a.nodes.unwrap_or(config.launch.nnodes),
                gpus_per_node: a.gpus_per_node,
                time: a.time,
                partition: a.partition,
            };
            print!(
                "{}",
                slurm::render(&a.config.config, &config, &a.config.overrides, &opts)
            );
        }
        RenderCommand::K8sCronjob(a) => {
            check_schedule(&a.schedule)?;
            let config = RunConfig::load(&a.config.config, &a.config.overrides)?;
            let text =
                std::fs::read_to_string(&a.config.config).map_err(|source| ConfigError::Read {
                    path: a.config.config.clone(),
                    source,
                })?;
            let file_name = a
                .config
                .config
                .file_name()
                .map_or("config.yaml".into(), |n| n.to_string_lossy().into_owned());
            let opts = k8s::CronOptions {
                schedule: a.schedule,
                image: a.image,
                pvc: a.pvc,
                memory: a.memory,
            };
            print!(
                "{}",
                k8s::render(&file_name, &text, &config, &a.config.overrides, &opts)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
