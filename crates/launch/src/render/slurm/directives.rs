//! The `#SBATCH` block of the batch script: the allocation, the scheduling limits, and the
//! time-limit signal, requeueing and log that preemption relies on. Every directive has a
//! comment line above it saying what it is for.

use vigil_config::RunConfig;

use super::{Memory, SlurmOptions};
use crate::render::shell_quote;

/// Writes one `#SBATCH --LINE` with the comment line `# DOC` above it.
fn directive(s: &mut String, doc: &str, line: String) {
    s.push_str(&format!("# {doc}\n#SBATCH --{line}\n"));
}

/// The `#SBATCH` lines for a job whose launchers start `nproc` workers each.
pub(super) fn directives(config: &RunConfig, opts: &SlurmOptions, nproc: u32) -> String {
    let mut s = String::new();
    directive(
        &mut s,
        "The job's name: run.name (names the log file too).",
        format!("job-name={}", shell_quote(&config.run.name)),
    );
    allocation(&mut s, opts, nproc);
    limits(&mut s, opts);
    preemption_and_log(&mut s, config, opts);
    s
}

/// Nodes, the launcher task and its CPUs, GPUs, memory, exclusivity.
fn allocation(s: &mut String, opts: &SlurmOptions, nproc: u32) {
    let cpus = opts.cpus_per_task.unwrap_or(nproc * 2);
    directive(
        s,
        "Nodes; each runs one `vigil launch`, which starts the workers of its node.",
        format!("nodes={}", opts.nodes),
    );
    directive(
        s,
        "One launcher task per node (the launcher forks the workers itself).",
        "ntasks-per-node=1".into(),
    );
    directive(
        s,
        &format!(
            "CPUs of the launcher task: shared by its {nproc} worker(s) and their loader threads."
        ),
        format!("cpus-per-task={cpus}"),
    );
    if opts.gpus_per_node > 0 {
        directive(
            s,
            "GPUs per node: one worker per GPU (launch.device=cuda).",
            format!("gpus-per-node={}", opts.gpus_per_node),
        );
    }
    match &opts.memory {
        Some(Memory::PerCpu(m)) => directive(
            s,
            "Memory per allocated CPU.",
            format!("mem-per-cpu={}", shell_quote(m)),
        ),
        Some(Memory::PerNode(m)) => directive(
            s,
            "Memory per node, for all its workers (and their /dev/shm segments).",
            format!("mem={}", shell_quote(m)),
        ),
        None => directive(
            s,
            "Memory per node: 4 GiB per worker (--mem or --mem-per-cpu to change).",
            format!("mem={}G", 4 * nproc),
        ),
    }
    if opts.exclusive {
        directive(
            s,
            "Whole nodes: no other job shares them.",
            "exclusive".into(),
        );
    }
}

/// The time limit, the partition and the account.
fn limits(s: &mut String, opts: &SlurmOptions) {
    directive(s, "Time limit.", format!("time={}", opts.time));
    if let Some(p) = &opts.partition {
        directive(s, "Partition.", format!("partition={}", shell_quote(p)));
    }
    if let Some(a) = &opts.account {
        directive(s, "Account charged.", format!("account={}", shell_quote(a)));
    }
}

/// The SIGTERM before the time limit (to the batch shell on one node, to the launchers on
/// several), requeueing, and the log that requeued runs append to.
fn preemption_and_log(s: &mut String, config: &RunConfig, opts: &SlurmOptions) {
    let signal_s = (config.launch.grace_s.ceil() as u64) + 60;
    if opts.nodes <= 1 {
        directive(
            s,
            &format!(
                "SIGTERM this shell {signal_s} s before the time limit (launch.grace_s + 60); \
                 it forwards the signal to the launcher, the workers checkpoint and the job \
                 requeues itself."
            ),
            format!("signal=B:TERM@{signal_s}"),
        );
    } else {
        directive(
            s,
            &format!(
                "SIGTERM the launchers {signal_s} s before the time limit (launch.grace_s + 60): \
                 the workers checkpoint and the job requeues itself."
            ),
            format!("signal=TERM@{signal_s}"),
        );
    }
    directive(
        s,
        "The job may be requeued (by this script on exit 75, or by Slurm's preemption).",
        "requeue".into(),
    );
    directive(
        s,
        "The log, in the submit directory: Slurm opens it before this script runs.",
        "output=%x-%j.out".into(),
    );
    directive(
        s,
        "Requeued runs keep the job id: append to its log instead of truncating it.",
        "open-mode=append".into(),
    );
}
