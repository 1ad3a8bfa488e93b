//! `vigil render`: the Slurm script is valid bash whose `#SBATCH` lines, launch command
//! and requeue logic are right (run against fake `srun`/`scontrol`; `tests/slurm.rs` runs
//! it under a real Slurm); the Kubernetes outputs parse as a ConfigMap plus a `batch/v1`
//! CronJob, a Trainer v2 TrainJob with its TrainingRuntime, or a PyTorchJob, with every
//! field the issues ask for (`scripts/ci/check_k8s.py` validates them against the
//! schemas); bad images and schedules are usage errors.

use crate::util;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use util::{run_with_timeout, texts, vigil};

const LIMIT: Duration = Duration::from_secs(60);

fn render(args: &[&str]) -> String {
    let out = run_with_timeout(vigil().arg("render").args(args), LIMIT);
    let (so, se) = texts(&out);
    assert!(out.status.success(), "{se}");
    so
}

#[test]
fn slurm_script_is_valid_bash_with_the_expected_directives() {
    let script = render(&[
        "slurm",
        "configs/tiny.yaml",
        "--nodes",
        "2",
        "--gpus-per-node",
        "4",
        "--time",
        "02:00:00",
        "--set",
        "optim.lr=1e-3",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("job.sbatch");
    std::fs::write(&path, &script).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(script.starts_with("#!/bin/bash\n"));
    let directives: BTreeMap<String, String> = script
        .lines()
        .filter_map(|l| l.strip_prefix("#SBATCH --"))
        .map(|d| match d.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (d.to_string(), String::new()),
        })
        .collect();
    assert_eq!(directives["job-name"], "tiny");
    assert_eq!(directives["nodes"], "2");
    assert_eq!(directives["ntasks-per-node"], "1");
    assert_eq!(directives["gpus-per-node"], "4");
    assert_eq!(directives["time"], "02:00:00");
    // tiny.yaml: grace_s 5 → SIGTERM 65 s before the limit.
    assert_eq!(directives["signal"], "TERM@65");
    assert!(directives.contains_key("requeue"));
    assert!(
        script.contains("vigil \\\n    launch \\\n    configs/tiny.yaml"),
        "{script}"
    );
    assert!(script.contains("--cluster \\\n    slurm"), "{script}");
    assert!(script.contains("--set \\\n    optim.lr=1e-3"), "{script}");
    assert!(script.contains("export VIGIL_STORE_TOKEN="), "{script}");

    // Run it with fake srun/scontrol: a preempted launch (75) requeues, others do not.
    for (code, requeued) in [(75, true), (0, false), (1, false)] {
        let bin = tmp.path().join(format!("bin-{code}"));
        std::fs::create_dir_all(&bin).unwrap();
        let log = tmp.path().join(format!("calls-{code}"));
        let fake = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        fake(
            "srun",
            &format!(
                "echo \"srun $* token=${{#VIGIL_STORE_TOKEN}}\" >> {}; exit {code}",
                log.display()
            ),
        );
        fake(
            "scontrol",
            &format!(
                "if [ \"$1\" = show ]; then echo gpu07; echo gpu08; else echo \"scontrol $*\" >> {}; fi",
                log.display()
            ),
        );
        let path_var = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = std::process::Command::new("bash")
            .arg(&path)
            .current_dir(tmp.path())
            .env("PATH", path_var)
            .env("SLURM_JOB_ID", "4242")
            .env("SLURM_NNODES", "2")
            .env("SLURM_JOB_NODELIST", "gpu[07-08]")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(calls.contains("--rdzv-endpoint gpu07:24242"), "{calls}");
        assert!(calls.contains("--nnodes 2"), "{calls}");
        assert!(
            calls.contains("token=32"),
            "a 32-hex-digit token is exported: {calls}"
        );
        assert_eq!(calls.contains("scontrol requeue 4242"), requeued, "{calls}");
    }
}

#[test]
fn a_one_node_slurm_job_runs_the_launcher_without_srun_and_documents_every_line() {
    let script = render(&[
        "slurm",
        "configs/tiny.yaml",
        "--nodes",
        "1",
        "--mem-per-cpu",
        "3G",
        "--exclusive",
        "--gpus-per-node",
        "2",
        "--module",
        "cuda/12.4",
        "--vigil",
        "/opt/vigil/bin/vigil",
        "--account",
        "ml",
    ]);
    let lines: Vec<&str> = script.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("#SBATCH") {
            assert!(
                lines[i - 1].starts_with("# "),
                "{l} has no comment line above it"
            );
        }
    }
    for d in [
        "#SBATCH --mem-per-cpu=3G",
        "#SBATCH --exclusive",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --account=ml",
        "#SBATCH --signal=B:TERM@65",
        "#SBATCH --output=%x-%j.out",
        "module load cuda/12.4",
        "/opt/vigil/bin/vigil \\\n    launch",
        "--set \\\n    launch.device=cuda",
        "trap '",
        "kill -TERM \"$launcher\"",
        "scontrol requeue \"$SLURM_JOB_ID\"",
    ] {
        assert!(script.contains(d), "{d} missing:\n{script}");
    }
    assert!(!script.contains("#SBATCH --mem="), "{script}");
    assert!(
        !script.lines().any(|l| l.starts_with("srun")),
        "a one-node job needs no srun:\n{script}"
    );
}

#[test]
fn k8s_cronjob_parses_with_the_expected_fields() {
    let text = render(&[
        "k8s-cronjob",
        "configs/tiny.yaml",
        "--schedule",
        "0 3 * * *",
        "--image",
        "registry.example/vigil:1.2",
    ]);
    let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "{text}");
    let (cm, cron) = (&docs[0], &docs[1]);
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    let original = std::fs::read_to_string(util::repo_root().join("configs/tiny.yaml")).unwrap();
    assert_eq!(cm["data"]["tiny.yaml"].as_str(), Some(original.as_str()));

    assert_eq!(cron["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(cron["kind"].as_str(), Some("CronJob"));
    assert_eq!(cron["metadata"]["name"].as_str(), Some("vigil-tiny"));
    let spec = &cron["spec"];
    assert_eq!(spec["schedule"].as_str(), Some("0 3 * * *"));
    assert_eq!(spec["concurrencyPolicy"].as_str(), Some("Forbid"));
    let job = &spec["jobTemplate"]["spec"];
    assert!(job["backoffLimit"].as_u64().is_some());
    let rules = job["podFailurePolicy"]["rules"].as_sequence().unwrap();
    assert_eq!(rules[0]["action"].as_str(), Some("Ignore"));
    assert_eq!(rules[0]["onExitCodes"]["values"][0].as_u64(), Some(75));
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    assert_eq!(pod["terminationGracePeriodSeconds"].as_u64(), Some(35));
    let c = &pod["containers"][0];
    assert_eq!(c["image"].as_str(), Some("registry.example/vigil:1.2"));
    assert_eq!(c["command"][0].as_str(), Some("vigil"));
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["launch", "/etc/vigil/tiny.yaml"]);
    assert!(
        args.contains(&"run.output_dir=/vigil/runs/tiny"),
        "{args:?}"
    );
    assert!(args.contains(&"export.dir=/vigil/export"), "{args:?}");
    assert_eq!(c["resources"]["requests"]["cpu"].as_str(), Some("2"));
    assert!(c["resources"]["limits"]["memory"].as_str().is_some());
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"].as_str() == Some("/vigil"))
    );
    let vols = pod["volumes"].as_sequence().unwrap();
    assert!(
        vols.iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"].as_str() == Some("vigil-data"))
    );
    assert!(
        vols.iter()
            .any(|v| v["configMap"]["name"].as_str() == Some("vigil-tiny-config"))
    );
}

#[test]
fn a_bad_schedule_is_a_usage_error() {
    let out = run_with_timeout(
        vigil().args([
            "render",
            "k8s-cronjob",
            "configs/tiny.yaml",
            "--schedule",
            "daily",
        ]),
        LIMIT,
    );
    let (_, se) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(se.contains("--schedule"), "{se}");
}

fn yaml_docs(text: &str) -> Vec<serde_yaml_ng::Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// The pod's `/dev/shm` is a memory-backed emptyDir, and the memory limit covers it.
fn assert_shm(pod: &serde_yaml_ng::Value, shm: &str, limit: &str) {
    let vols = pod["volumes"].as_sequence().unwrap();
    let dshm = vols
        .iter()
        .find(|v| v["name"].as_str() == Some("dshm"))
        .expect("a dshm volume");
    assert_eq!(dshm["emptyDir"]["medium"].as_str(), Some("Memory"));
    assert_eq!(dshm["emptyDir"]["sizeLimit"].as_str(), Some(shm));
    let c = &pod["containers"][0];
    assert!(
        c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m["name"].as_str() == Some("dshm")
                && m["mountPath"].as_str() == Some("/dev/shm"))
    );
    assert_eq!(c["resources"]["limits"]["memory"].as_str(), Some(limit));
}

#[test]
fn k8s_jobs_have_shm_gpus_and_restart_settings_that_resume() {
    let img = "registry.example/vigil:1.2";
    let cron = yaml_docs(&render(&[
        "k8s-cronjob",
        "configs/tiny.yaml",
        "--schedule",
        "@daily",
        "--image",
        img,
    ]));
    let job = &cron[1]["spec"]["jobTemplate"]["spec"];
    // tiny: 2 workers → 2Gi shm; the 8Gi default + 2Gi.
    assert_shm(&job["template"]["spec"], "2Gi", "10240Mi");
    let rules = job["podFailurePolicy"]["rules"].as_sequence().unwrap();
    assert_eq!(
        rules[1]["onPodConditions"][0]["status"].as_str(),
        Some("True"),
        "Kubernetes 1.30-1.34 require the status"
    );

    let pj = yaml_docs(&render(&[
        "k8s-pytorchjob",
        "configs/tiny.yaml",
        "--image",
        img,
        "--nnodes",
        "3",
        "--gpus-per-node",
        "4",
    ]));
    assert_eq!(pj.len(), 2);
    let spec = &pj[1]["spec"];
    assert_eq!(pj[1]["kind"].as_str(), Some("PyTorchJob"));
    assert_eq!(spec["nprocPerNode"].as_str(), Some("4"));
    assert_eq!(spec["runPolicy"]["backoffLimit"].as_u64(), Some(3));
    let master = &spec["pytorchReplicaSpecs"]["Master"];
    let worker = &spec["pytorchReplicaSpecs"]["Worker"];
    assert_eq!(master["replicas"].as_u64(), Some(1));
    assert_eq!(worker["replicas"].as_u64(), Some(2));
    // ExitCode would take 75 as permanent.
    assert_eq!(master["restartPolicy"].as_str(), Some("OnFailure"));
    let pod = &master["template"]["spec"];
    assert_shm(pod, "4Gi", "12288Mi");
    let c = &pod["containers"][0];
    assert_eq!(c["name"].as_str(), Some("pytorch"));
    assert_eq!(
        c["resources"]["limits"]["nvidia.com/gpu"].as_str(),
        Some("4")
    );
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--cluster", "kubeflow"]),
        "{args:?}"
    );
    assert!(args.contains(&"launch.device=cuda"), "{args:?}");

    let tj = yaml_docs(&render(&[
        "k8s-trainjob",
        "configs/tiny.yaml",
        "--image",
        img,
        "--nnodes",
        "2",
    ]));
    assert_eq!(tj.len(), 3);
    let (runtime, trainjob) = (&tj[1], &tj[2]);
    assert_eq!(runtime["kind"].as_str(), Some("TrainingRuntime"));
    assert_eq!(trainjob["kind"].as_str(), Some("TrainJob"));
    assert_eq!(
        trainjob["spec"]["runtimeRef"]["name"],
        runtime["metadata"]["name"]
    );
    assert_eq!(trainjob["spec"]["trainer"]["numNodes"].as_u64(), Some(2));
    assert_eq!(
        trainjob["spec"]["trainer"]["numProcPerNode"].as_u64(),
        Some(2)
    );
    assert_eq!(trainjob["spec"]["trainer"]["image"].as_str(), Some(img));
    let rjob = &runtime["spec"]["template"]["spec"]["replicatedJobs"][0];
    assert!(runtime["spec"]["mlPolicy"]["torch"].is_mapping());
    let pod = &rjob["template"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("OnFailure"));
    assert_eq!(pod["containers"][0]["name"].as_str(), Some("node"));
    assert!(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"].is_null());
    assert_shm(pod, "2Gi", "10240Mi");
}

#[test]
fn k8s_needs_a_valid_image_and_schedule() {
    for args in [
        // No --image: there is no default image.
        vec!["k8s-trainjob", "configs/tiny.yaml"],
        vec![
            "k8s-pytorchjob",
            "configs/tiny.yaml",
            "--image",
            "Vigil:Latest",
        ],
        vec![
            "k8s-trainjob",
            "configs/tiny.yaml",
            "--image",
            "vigil latest",
        ],
        vec![
            "k8s-cronjob",
            "configs/tiny.yaml",
            "--schedule",
            "@daily",
            "--image",
            "",
        ],
        vec![
            "k8s-cronjob",
            "configs/tiny.yaml",
            "--schedule",
            "nightly",
            "--image",
            "v:1",
        ],
        vec![
            "k8s-trainjob",
            "configs/tiny.yaml",
            "--image",
            "v:1",
            "--memory",
            "lots",
        ],
    ] {
        let out = run_with_timeout(vigil().arg("render").args(&args), LIMIT);
        let (so, se) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {se}");
        assert!(so.is_empty(), "nothing half-written: {so}");
        assert!(
            se.contains("--image") || se.contains("--schedule") || se.contains("--memory"),
            "{args:?}: {se}"
        );
    }
}
