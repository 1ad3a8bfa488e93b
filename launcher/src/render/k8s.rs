//! `vigil render k8s-cronjob`: a ConfigMap holding the run config and a `batch/v1`
//! CronJob that runs `vigil launch` on a schedule.
//!
//! - `concurrencyPolicy: Forbid`: a run still going when the next is due skips the next
//!   (the output-directory lock refuses overlap anyway).
//! - One pod per run, `restartPolicy: Never`, `backoffLimit` retries; a `podFailurePolicy`
//!   ignores the launcher's preempted exit code and node disruptions, so preemption does
//!   not use up retries and the retried pod resumes from the checkpoint.
//! - `terminationGracePeriodSeconds` = `launch.grace_s` + 30: Kubernetes SIGTERMs the
//!   launcher, which gives the workers `grace_s` to checkpoint.
//! - A PersistentVolumeClaim mounted at `/vigil` holds the run directory
//!   (`/vigil/runs/<name>`) and the model repository (`/vigil/export`), so checkpoints
//!   survive pods and the serving side reads published versions there.
//! - The config is mounted from the ConfigMap, unexpanded: `${VAR}` values resolve in the
//!   pod.

use serde_json::json;
use vigil_trainer::config::{Device, RunConfig};

use crate::exit::PREEMPTED;

/// Options of `vigil render k8s-cronjob`.
#[derive(Debug, Clone)]
pub struct CronOptions {
    /// Cron schedule, e.g. `0 3 * * *`.
    pub schedule: String,
    /// Container image with `vigil` on the PATH and the data the config references.
    pub image: String,
    /// The PersistentVolumeClaim for runs and exports.
    pub pvc: String,
    /// Memory request and limit.
    pub memory: String,
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

/// The two YAML documents (ConfigMap, CronJob).
pub fn render(
    config_file_name: &str,
    config_text: &str,
    config: &RunConfig,
    overrides: &[String],
    opts: &CronOptions,
) -> String {
    let name = format!("vigil-{}", k8s_name(&config.run.name));
    let nproc = config.launch.nproc_per_node;
    let mut args = vec![
        "launch".to_string(),
        format!("/etc/vigil/{config_file_name}"),
        "--cluster".into(),
        "none".into(),
        "--set".into(),
        format!("run.output_dir=/vigil/runs/{}", config.run.name),
    ];
    if config.export.dir.is_some() {
        args.push("--set".into());
        args.push("export.dir=/vigil/export".into());
    }
    for o in overrides {
        args.push("--set".into());
        args.push(o.clone());
    }
    let mut limits = json!({"cpu": nproc.to_string(), "memory": opts.memory});
    let requests = limits.clone();
    if config.launch.device == Device::Cuda {
        limits["nvidia.com/gpu"] = json!(nproc);
    }
    let grace = config.launch.grace_s.ceil() as u64 + 30;
    let labels =
        json!({"app.kubernetes.io/name": "vigil", "vigil/run": k8s_name(&config.run.name)});
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-config"), "labels": labels},
        "data": {config_file_name: config_text},
    });
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
                "podFailurePolicy": {"rules": [
                    {"action": "Ignore", "onExitCodes": {
                        "containerName": "vigil", "operator": "In", "values": [PREEMPTED]}},
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": grace,
                        "containers": [{
                            "name": "vigil",
                            "image": opts.image,
                            "command": ["vigil"],
                            "args": args,
                            "resources": {"requests": requests, "limits": limits},
                            "volumeMounts": [
                                {"name": "vigil-data", "mountPath": "/vigil"},
                                {"name": "config", "mountPath": "/etc/vigil", "readOnly": true},
                            ],
                        }],
                        "volumes": [
                            {"name": "vigil-data",
                             "persistentVolumeClaim": {"claimName": opts.pvc}},
                            {"name": "config",
                             "configMap": {"name": format!("{name}-config")}},
                        ],
                    },
                },
            }},
        },
    });
    let doc = |v: &serde_json::Value| serde_yaml_ng::to_string(v).expect("JSON values serialize");
    format!("{}---\n{}", doc(&config_map), doc(&cron))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(k8s_name("Tiny_Run.v2"), "tiny-run-v2");
        assert_eq!(k8s_name("__"), "run");
    }
}
