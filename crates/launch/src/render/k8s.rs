//! `vigil render k8s-cronjob|k8s-trainjob|k8s-pytorchjob`: a ConfigMap holding the run
//! config and a `batch/v1` CronJob that runs `vigil launch` on a schedule, a Kubeflow
//! Trainer v2 `TrainJob` (with its `TrainingRuntime`), or a Training Operator v1
//! `PyTorchJob`. Every pod has:
//!
//! - a memory-backed `emptyDir` at `/dev/shm` (the container default is 64 MiB, and the
//!   shm transport maps its segments there: a multi-worker pod would get SIGBUS), 1 GiB
//!   per worker unless `--shm-size` says otherwise; it counts against the pod's memory
//!   limit, so the limit is `--memory` plus the shm size (the request is `--memory`);
//! - `nvidia.com/gpu` limits when GPUs are asked for (`--gpus-per-node`, one worker each)
//!   or the config says `launch.device: cuda`;
//! - an image given with `--image` (required: there is no default image).
//!
//! The CronJob:
//!
//! - `concurrencyPolicy: Forbid`: a run still going when the next is due skips the next
//!   (the output-directory lock refuses overlap anyway).
//! - One pod per run, `restartPolicy: Never`, `backoffLimit` retries; a `podFailurePolicy`
//!   ignores the launcher's preempted exit code and node disruptions, so preemption does
//!   not use up retries and the retried pod resumes from the checkpoint. Each
//!   `onPodConditions` entry carries `status: "True"`: Kubernetes 1.30-1.34 require it.
//! - `terminationGracePeriodSeconds` = `launch.grace_s` + 30: Kubernetes SIGTERMs the
//!   launcher, which gives the workers `grace_s` to checkpoint.
//! - A PersistentVolumeClaim mounted at `/vigil` holds the run directory
//!   (`/vigil/runs/<name>`) and the model repository (`/vigil/export`), so checkpoints
//!   survive pods and the serving side reads published versions there.
//! - The config is mounted from the ConfigMap, unexpanded: `${VAR}` values resolve in the
//!   pod.

use serde_json::json;
use vigil_config::{Device, RunConfig};

use crate::exit::PREEMPTED;

/// Options shared by the Kubernetes renderers.
#[derive(Debug, Clone)]
pub struct PodOptions {
    /// Container image with `vigil` on the PATH and the data the config references
    /// (required: there is no default image).
    pub image: String,
    /// The PersistentVolumeClaim for runs and exports.
    pub pvc: String,
    /// Memory for the workers (request; the limit adds the `/dev/shm` size).
    pub memory: String,
    /// Size of the memory-backed `/dev/shm`, e.g. `2Gi`; `None`: 1 GiB per worker.
    pub shm: Option<String>,
    /// GPUs per pod (`nvidia.com/gpu`); 0: a CPU job (or the config's `launch.device`).
    pub gpus: u32,
}

/// Options of `vigil render k8s-cronjob`.
#[derive(Debug, Clone)]
pub struct CronOptions {
    /// Cron schedule, e.g. `0 3 * * *`.
    pub schedule: String,
    /// The pod.
    pub pod: PodOptions,
}

/// Options of `vigil render k8s-trainjob` and `k8s-pytorchjob`.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Pods ("nodes"), one launcher each.
    pub nnodes: u32,
    /// Restarts of a pod (or, for the TrainJob, of the whole group) before the job fails.
    pub backoff_limit: u32,
    /// The pods.
    pub pod: PodOptions,
}

/// A Kubernetes object name from a run name (lowercase alphanumerics and `-`).
pub fn k8s_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s = s.trim_matches('-').to_string();
    s.truncate(40);
    if s.is_empty() { "run".into() } else { s }
}

/// Workers per pod: one per GPU when GPUs are asked for, else the config's count.
pub fn workers_per_pod(config: &RunConfig, pod: &PodOptions) -> u32 {
    if pod.gpus > 0 {
        pod.gpus
    } else {
        config.launch.nproc_per_node.max(1)
    }
}

/// Mebibytes in a Kubernetes quantity (`8Gi`, `512Mi`, `2G`, `1.5Gi`, bytes), if it
/// parses.
pub fn quantity_mib(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let bytes = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return None,
    };
    Some(n * bytes / (1024.0 * 1024.0))
}

/// The shm size and the memory limit (the workers' memory plus the memory-backed
/// `/dev/shm`, which counts against the pod's limit).
pub fn memory_sizes(config: &RunConfig, pod: &PodOptions) -> (String, String) {
    let shm = pod
        .shm
        .clone()
        .unwrap_or_else(|| format!("{}Gi", workers_per_pod(config, pod)));
    let limit = match (quantity_mib(&pod.memory), quantity_mib(&shm)) {
        (Some(m), Some(s)) => format!("{}Mi", (m + s).ceil() as u64),
        _ => pod.memory.clone(),
    };
    (shm, limit)
}

/// The launcher's arguments in a pod.
fn launch_args(
    config_file_name: &str,
    config: &RunConfig,
    overrides: &[String],
    cluster: &str,
    nproc: u32,
    cuda: bool,
) -> Vec<String> {
    let mut args = vec![
        "launch".to_string(),
        format!("/etc/vigil/{config_file_name}"),
        "--cluster".into(),
        cluster.into(),
        "--nproc-per-node".into(),
        nproc.to_string(),
        "--set".into(),
        format!("run.output_dir=/vigil/runs/{}", config.run.name),
    ];
    if config.export.dir.is_some() {
        args.push("--set".into());
        args.push("export.dir=/vigil/export".into());
    }
    if cuda && config.launch.device != Device::Cuda {
        args.push("--set".into());
        args.push("launch.device=cuda".into());
    }
    for o in overrides {
        args.push("--set".into());
        args.push(o.clone());
    }
    args
}

/// The pod template (`metadata` + `spec`) of every renderer: the container `container`
/// running `vigil` with `args`, the PVC at `/vigil`, the config at `/etc/vigil`, a
/// memory-backed `/dev/shm`.
fn pod_template(
    name: &str,
    container: &str,
    args: Vec<String>,
    config: &RunConfig,
    pod: &PodOptions,
    restart_policy: &str,
    labels: &serde_json::Value,
) -> serde_json::Value {
    let nproc = workers_per_pod(config, pod);
    let (shm, limit) = memory_sizes(config, pod);
    let requests = json!({"cpu": nproc.to_string(), "memory": pod.memory});
    let mut limits = json!({"cpu": nproc.to_string(), "memory": limit});
    let gpus = if pod.gpus > 0 {
        pod.gpus
    } else if config.launch.device == Device::Cuda {
        nproc
    } else {
        0
    };
    if gpus > 0 {
        limits["nvidia.com/gpu"] = json!(gpus.to_string());
    }
    let grace = config.launch.grace_s.ceil() as u64 + 30;
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": grace,
            "containers": [{
                "name": container,
                "image": pod.image,
                "command": ["vigil"],
                "args": args,
                "resources": {"requests": requests, "limits": limits},
                "volumeMounts": [
                    {"name": "vigil-data", "mountPath": "/vigil"},
                    {"name": "config", "mountPath": "/etc/vigil", "readOnly": true},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                ],
            }],
            "volumes": [
                {"name": "vigil-data", "persistentVolumeClaim": {"claimName": pod.pvc}},
                {"name": "config", "configMap": {"name": format!("{name}-config")}},
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
            ],
        },
    })
}

fn labels(config: &RunConfig) -> serde_json::Value {
    json!({"app.kubernetes.io/name": "vigil", "vigil/run": k8s_name(&config.run.name)})
}

fn config_map(name: &str, file: &str, text: &str, labels: &serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-config"), "labels": labels},
        "data": {file: text},
    })
}

fn documents(docs: &[serde_json::Value]) -> String {
    docs.iter()
        .map(|v| serde_yaml_ng::to_string(v).expect("JSON values serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The two YAML documents (ConfigMap, CronJob).
pub fn render(
    config_file_name: &str,
    config_text: &str,
    config: &RunConfig,
    overrides: &[String],
    opts: &CronOptions,
) -> String {
    let name = format!("vigil-{}", k8s_name(&config.run.name));
    let nproc = workers_per_pod(config, &opts.pod);
    let labels = labels(config);
    let args = launch_args(
        config_file_name,
        config,
        overrides,
        "none",
        nproc,
        opts.pod.gpus > 0,
    );
    let template = pod_template(&name, "vigil", args, config, &opts.pod, "Never", &labels);
    let cron = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "schedule": opts.schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {
                "backoffLimit": 3,
                // `status` is required by Kubernetes 1.30-1.34 (optional from 1.35).
                "podFailurePolicy": {"rules": [
                    {"action": "Ignore", "onExitCodes": {
                        "containerName": "vigil", "operator": "In", "values": [PREEMPTED]}},
                    {"action": "Ignore", "onPodConditions": [
                        {"type": "DisruptionTarget", "status": "True"}]},
                ]},
                "template": template,
            }},
        },
    });
    documents(&[
        config_map(&name, config_file_name, config_text, &labels),
        cron,
    ])
}

/// A Kubeflow Trainer v2 `TrainJob` with its own namespaced `TrainingRuntime` (the torch
/// ML policy): ConfigMap, TrainingRuntime, TrainJob.
///
/// The restart settings live in the runtime: pods restart in place
/// (`restartPolicy: OnFailure`, up to `backoffLimit` times per Job), so a launcher that
/// stops with 75 because another pod was preempted starts again and resumes; a deleted
/// (preempted, evicted) pod fails its Job, and the JobSet `failurePolicy.maxRestarts`
/// recreates the whole group, which resumes from the checkpoint on the PVC.
pub fn render_trainjob(
    config_file_name: &str,
    config_text: &str,
    config: &RunConfig,
    overrides: &[String],
    opts: &JobOptions,
) -> String {
    let name = format!("vigil-{}", k8s_name(&config.run.name));
    let nproc = workers_per_pod(config, &opts.pod);
    let labels = labels(config);
    let args = launch_args(
        config_file_name,
        config,
        overrides,
        "kubeflow",
        nproc,
        opts.pod.gpus > 0,
    );
    let mut template = pod_template(
        &name,
        "node",
        args.clone(),
        config,
        &opts.pod,
        "OnFailure",
        &labels,
    );
    template["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] =
        json!("trainer");
    let container = template["spec"]["containers"][0].clone();
    let runtime = json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainingRuntime",
        "metadata": {"name": format!("{name}-runtime"), "labels": labels},
        "spec": {
            "mlPolicy": {"numNodes": opts.nnodes, "torch": {}},
            "template": {"spec": {
                "failurePolicy": {"maxRestarts": opts.backoff_limit},
                "replicatedJobs": [{
                    "name": "node",
                    "replicas": 1,
                    "template": {
                        "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                        "spec": {
                            "backoffLimit": opts.backoff_limit,
                            "template": template,
                        },
                    },
                }],
            }},
        },
    });
    let trainjob = json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "runtimeRef": {
                "name": format!("{name}-runtime"),
                "apiGroup": "trainer.kubeflow.org",
                "kind": "TrainingRuntime",
            },
            "trainer": {
                "image": opts.pod.image,
                "command": container["command"],
                "args": args,
                "numNodes": opts.nnodes,
                "numProcPerNode": nproc,
                "resourcesPerNode": container["resources"],
            },
        },
    });
    documents(&[
        config_map(&name, config_file_name, config_text, &labels),
        runtime,
        trainjob,
    ])
}

/// A Training Operator v1 `PyTorchJob`: ConfigMap, PyTorchJob (a Master and
/// `nnodes - 1` Workers).
///
/// `restartPolicy: OnFailure`, not `ExitCode`: the operator's `ExitCode` policy takes
/// exit codes 1-127 as permanent, so the preempted code 75 would end the job. With
/// `OnFailure` a pod that exits 75 restarts in place and resumes from the checkpoint;
/// `runPolicy.backoffLimit` bounds the restarts.
pub fn render_pytorchjob(
    config_file_name: &str,
    config_text: &str,
    config: &RunConfig,
    overrides: &[String],
    opts: &JobOptions,
) -> String {
    let name = format!("vigil-{}", k8s_name(&config.run.name));
    let nproc = workers_per_pod(config, &opts.pod);
    let labels = labels(config);
    let args = launch_args(
        config_file_name,
        config,
        overrides,
        "kubeflow",
        nproc,
        opts.pod.gpus > 0,
    );
    let template = pod_template(
        &name,
        "pytorch",
        args,
        config,
        &opts.pod,
        "OnFailure",
        &labels,
    );
    let mut replicas = json!({
        "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template},
    });
    if opts.nnodes > 1 {
        replicas["Worker"] = json!({"replicas": opts.nnodes - 1, "restartPolicy": "OnFailure", "template": template});
    }
    let job = json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nprocPerNode": nproc.to_string(),
            "runPolicy": {"backoffLimit": opts.backoff_limit, "cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": replicas,
        },
    });
    documents(&[
        config_map(&name, config_file_name, config_text, &labels),
        job,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(k8s_name("Tiny_Run.v2"), "tiny-run-v2");
        assert_eq!(k8s_name("__"), "run");
    }

    #[test]
    fn quantities_and_the_memory_limit_include_shm() {
        assert_eq!(quantity_mib("8Gi"), Some(8192.0));
        assert_eq!(quantity_mib("512Mi"), Some(512.0));
        assert_eq!(quantity_mib("1.5Gi"), Some(1536.0));
        assert_eq!(quantity_mib("lots"), None);
        let config = RunConfig::default();
        let pod = PodOptions {
            image: "i".into(),
            pvc: "p".into(),
            memory: "8Gi".into(),
            shm: None,
            gpus: 4,
        };
        assert_eq!(
            memory_sizes(&config, &pod),
            ("4Gi".into(), "12288Mi".into())
        );
    }
}
