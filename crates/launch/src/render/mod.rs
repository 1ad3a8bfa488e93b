//! Cluster job files for scheduled and preemptible runs, printed by `vigil render`.
//!
//! Both are generated from the run config so they agree with it: the job name is
//! `run.name`, worker counts come from `launch`, the grace period from `launch.grace_s`,
//! and both act on the launcher's "preempted" exit code ([`crate::exit::PREEMPTED`]).
//! Generation is a pure function returning text (tests parse it back); YAML is built as a
//! value tree and serialized, so quoting is always right.
//!
//! # Layout
//! - `slurm/`: an sbatch script (one launcher per node via srun).
//! - `k8s.rs`: a ConfigMap with the config and a `batch/v1` CronJob.

pub mod k8s;
pub mod slurm;

/// Quotes a word for a POSIX shell (single quotes; `'` becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("configs/tiny.yaml"), "configs/tiny.yaml");
        assert_eq!(shell_quote("optim.lr=2e-5"), "optim.lr=2e-5");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
