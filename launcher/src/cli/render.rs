//! `vigil render slurm|k8s-cronjob|k8s-trainjob|k8s-pytorchjob CONFIG ...`: print a
//! cluster job for a run config (see `render/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use vigil_config::{ConfigError, RunConfig};

use vigil_launch::render::{k8s, slurm};

/// What to render.
#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// An sbatch script: one launcher per node, SIGTERM before the time limit, requeue.
    Slurm(SlurmArgs),
    /// A Kubernetes ConfigMap + batch/v1 CronJob for scheduled retraining.
    #[command(name = "k8s-cronjob")]
    K8sCronjob(CronArgs),
    /// A Kubeflow Trainer v2 TrainJob (torch runtime) with its TrainingRuntime.
    #[command(name = "k8s-trainjob")]
    K8sTrainjob(JobArgs),
    /// A Kubeflow Training Operator v1 PyTorchJob.
    #[command(name = "k8s-pytorchjob")]
    K8sPytorchjob(JobArgs),
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
    /// Slurm account to charge.
    #[arg(long)]
    account: Option<String>,
    /// CPUs of each node's launcher task [default: 2 per worker].
    #[arg(long, value_name = "N")]
    cpus_per_task: Option<u32>,
    /// Memory per node, e.g. 64G [default: 4G per worker].
    #[arg(long, value_name = "SIZE", conflicts_with = "mem_per_cpu")]
    mem: Option<String>,
    /// Memory per allocated CPU, e.g. 4G (instead of --mem).
    #[arg(long, value_name = "SIZE")]
    mem_per_cpu: Option<String>,
    /// Allocate whole nodes (`#SBATCH --exclusive`).
    #[arg(long)]
    exclusive: bool,
    /// `module load NAME` before the launch (repeatable).
    #[arg(long = "module", value_name = "NAME")]
    modules: Vec<String>,
    /// The vigil binary the job runs [default: this binary's path; `vigil` takes it
    /// from the job's PATH].
    #[arg(long, value_name = "PATH")]
    vigil: Option<PathBuf>,
}

/// The pod settings of every Kubernetes renderer.
#[derive(Debug, Args)]
pub struct PodArgs {
    /// Container image with `vigil` on the PATH (required; see the Dockerfile).
    #[arg(long, value_name = "IMG")]
    image: String,
    /// PersistentVolumeClaim holding runs and exports.
    #[arg(long, default_value = "vigil-data")]
    pvc: String,
    /// Memory request for the workers (the limit adds the /dev/shm size).
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// Size of the memory-backed /dev/shm [default: 1Gi per worker].
    #[arg(long, value_name = "SIZE")]
    shm_size: Option<String>,
    /// GPUs per pod (nvidia.com/gpu), one worker each (0: CPU).
    #[arg(long, default_value_t = 0)]
    gpus_per_node: u32,
}

/// Arguments of `vigil render k8s-cronjob`.
#[derive(Debug, Args)]
pub struct CronArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Cron schedule, e.g. "0 3 * * *".
    #[arg(long)]
    schedule: String,
    #[command(flatten)]
    pod: PodArgs,
}

/// Arguments of `vigil render k8s-trainjob` and `k8s-pytorchjob`.
#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Pods, one launcher each [default: launch.nnodes].
    #[arg(long, value_name = "N")]
    nnodes: Option<u32>,
    /// Restarts before the job fails.
    #[arg(long, default_value_t = 3)]
    backoff_limit: u32,
    #[command(flatten)]
    pod: PodArgs,
}

/// A render request that cannot be honoured (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RenderUsageError {
    /// An image reference Kubernetes would refuse.
    #[error("--image '{value}': {reason}")]
    Image {
        /// The value given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A Kubernetes quantity that does not parse.
    #[error("--{flag} '{value}': expected a Kubernetes quantity such as 8Gi or 512Mi")]
    Quantity {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
    },
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

/// Checks an image reference: non-empty, no whitespace or control characters, no
/// uppercase repository name (Kubernetes only checks non-empty; the pull would fail).
pub fn check_image(s: &str) -> Result<(), RenderUsageError> {
    let bad = |reason| {
        Err(RenderUsageError::Image {
            value: s.into(),
            reason,
        })
    };
    if s.trim().is_empty() {
        return bad("empty");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace");
    }
    let name = s.split(['@']).next().unwrap_or(s);
    let repo = match name.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => name,
    };
    let path = repo.split_once('/').map_or(repo, |(host, rest)| {
        if host.contains('.') || host.contains(':') || host == "localhost" {
            rest
        } else {
            repo
        }
    });
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return bad("repository names must be lowercase");
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        || path.is_empty()
    {
        return bad("expected [HOST/]NAME[:TAG][@DIGEST]");
    }
    Ok(())
}

fn pod_options(p: PodArgs) -> Result<k8s::PodOptions, RenderUsageError> {
    check_image(&p.image)?;
    if k8s::quantity_mib(&p.memory).is_none() {
        return Err(RenderUsageError::Quantity {
            flag: "memory",
            value: p.memory,
        });
    }
    if let Some(s) = &p.shm_size
        && k8s::quantity_mib(s).is_none()
    {
        return Err(RenderUsageError::Quantity {
            flag: "shm-size",
            value: s.clone(),
        });
    }
    Ok(k8s::PodOptions {
        image: p.image,
        pvc: p.pvc,
        memory: p.memory,
        shm: p.shm_size,
        gpus: p.gpus_per_node,
    })
}

/// The config's text and file name, for the ConfigMap.
fn config_text(c: &ConfigArgs) -> Result<(String, String), ConfigError> {
    let text = std::fs::read_to_string(&c.config).map_err(|source| ConfigError::Read {
        path: c.config.clone(),
        source,
    })?;
    let file_name = c
        .config
        .file_name()
        .map_or("config.yaml".into(), |n| n.to_string_lossy().into_owned());
    Ok((file_name, text))
}

/// The signature of `k8s::render_trainjob` and `k8s::render_pytorchjob`.
type JobRenderer = fn(&str, &str, &RunConfig, &[String], &k8s::JobOptions) -> String;

/// A TrainJob or PyTorchJob for `a`, checked before anything is printed.
fn render_job(a: JobArgs, render: JobRenderer) -> anyhow::Result<String> {
    let pod = pod_options(a.pod)?;
    let config = RunConfig::load(&a.config.config, &a.config.overrides)?;
    let (file_name, text) = config_text(&a.config)?;
    let opts = k8s::JobOptions {
        nnodes: a.nnodes.unwrap_or(config.launch.nnodes).max(1),
        backoff_limit: a.backoff_limit,
        pod,
    };
    Ok(render(
        &file_name,
        &text,
        &config,
        &a.config.overrides,
        &opts,
    ))
}

/// Prints the rendered job.
pub fn run(cmd: RenderCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RenderCommand::Slurm(a) => {
            let config = RunConfig::load(&a.config.config, &a.config.overrides)?;
            let vigil = match a.vigil {
                Some(p) => p,
                None => std::env::current_exe()?,
            };
            let memory = match (a.mem, a.mem_per_cpu) {
                (Some(m), _) => Some(slurm::Memory::PerNode(m)),
                (None, Some(m)) => Some(slurm::Memory::PerCpu(m)),
                (None, None) => None,
            };
            let opts = slurm::SlurmOptions {
                nodes: a.nodes.unwrap_or(config.launch.nnodes),
                gpus_per_node: a.gpus_per_node,
                cpus_per_task: a.cpus_per_task,
                memory,
                exclusive: a.exclusive,
                time: a.time,
                partition: a.partition,
                account: a.account,
                modules: a.modules,
                vigil,
            };
            print!(
                "{}",
                slurm::render(&a.config.config, &config, &a.config.overrides, &opts)
            );
        }
        RenderCommand::K8sCronjob(a) => {
            check_schedule(&a.schedule)?;
            let pod = pod_options(a.pod)?;
            let config = RunConfig::load(&a.config.config, &a.config.overrides)?;
            let (file_name, text) = config_text(&a.config)?;
            let opts = k8s::CronOptions {
                schedule: a.schedule,
                pod,
            };
            print!(
                "{}",
                k8s::render(&file_name, &text, &config, &a.config.overrides, &opts)
            );
        }
        RenderCommand::K8sTrainjob(a) => print!("{}", render_job(a, k8s::render_trainjob)?),
        RenderCommand::K8sPytorchjob(a) => print!("{}", render_job(a, k8s::render_pytorchjob)?),
    }
    Ok(ExitCode::SUCCESS)
}
