//! The names of the store keys that more than one program reads or writes: the launcher
//! (which hosts the store), the workers it starts, and scripts run after `vigil launch --`.
//! Spelled once here so the writer and the reader cannot drift apart.
//!
//! Two namespaces share the store:
//! - `launch/...`: the launchers' own coordination (node slots, restart barriers, failure
//!   reports; see the launcher's `supervise/rendezvous.rs`), plus [`RESOLVED_CONFIG`], which
//!   workers read.
//! - `vigil/<run_id>/gen/<restart>/...` ([`generation_prefix`], the workers'
//!   `VIGIL_STORE_PREFIX`): one generation of the worker group — the process group's
//!   addresses and failure reports, and the store heartbeats ([`heartbeat`]). A restarted
//!   group gets a fresh prefix, so it never reads the keys of the one before.

/// Prefix of the launchers' coordination keys.
pub const LAUNCH_PREFIX: &str = "launch/";

/// Node 0's resolved run config (YAML: overrides applied, `${VAR}`s expanded, validated),
/// set once by node 0's launcher before the first generation starts. Workers started by
/// `vigil launch` read it instead of resolving the YAML in their own environment.
pub const RESOLVED_CONFIG: &str = "launch/config";

/// The key prefix of generation `restart` of run `run_id`.
pub fn generation_prefix(run_id: &str, restart: u64) -> String {
    format!("vigil/{run_id}/gen/{restart}/")
}

/// The store heartbeat counter of `rank`, relative to the generation prefix: every beat
/// adds 1; the launcher's watchdog reads it.
pub fn heartbeat(rank: usize) -> String {
    format!("worker/{rank}/heartbeat")
}

/// Wall-clock time of `rank`'s last store heartbeat (ms since the Unix epoch), relative to
/// the generation prefix.
pub fn heartbeat_ms(rank: usize) -> String {
    format!("worker/{rank}/heartbeat_ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_spellings() {
        assert_eq!(generation_prefix("r1", 2), "vigil/r1/gen/2/");
        assert_eq!(heartbeat(3), "worker/3/heartbeat");
        assert_eq!(heartbeat_ms(3), "worker/3/heartbeat_ms");
        assert!(RESOLVED_CONFIG.starts_with(LAUNCH_PREFIX));
    }
}
