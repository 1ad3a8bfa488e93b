//! The orphan guard: a tiny helper process (`vigil __guard`, hidden) that outlives the
//! launcher by design and SIGKILLs every worker process group the moment the launcher
//! disappears.
//!
//! `PR_SET_PDEATHSIG` only reaches a worker's first process; a shell-script worker's
//! children, or anything a worker forks, would survive a SIGKILLed launcher. The launcher
//! writes `+PGID` / `-PGID` lines to the guard's stdin as groups come and go; when the
//! pipe reaches end-of-file (the launcher exited or was killed — the kernel closes the
//! pipe either way), the guard kills the groups still listed and exits. It ignores
//! SIGINT/SIGTERM/SIGHUP and sits in its own process group so nothing aimed at the
//! launcher's terminal reaches it.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};

/// The launcher's end of the guard.
pub struct Guard {
    stdin: Option<ChildStdin>,
    /// The guard's pid (reaped by the supervision loop like any child).
    pub pid: i32,
}

impl Guard {
    /// Starts `exe __guard`.
    pub fn start(exe: &std::path::Path) -> std::io::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.arg("__guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // Never hold the launcher's output pipes open after the launcher is gone.
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn()?;
        Ok(Self {
            stdin: child.stdin.take(),
            pid: child.id() as i32,
        })
    }

    /// Registers a worker group.
    pub fn add(&mut self, pgid: i32) {
        self.send(&format!("+{pgid}\n"));
    }

    /// Forgets a group that is fully gone.
    pub fn remove(&mut self, pgid: i32) {
        self.send(&format!("-{pgid}\n"));
    }

    fn send(&mut self, line: &str) {
        if let Some(s) = &mut self.stdin
            && s.write_all(line.as_bytes())
                .and_then(|_| s.flush())
                .is_err()
        {
            tracing::warn!("orphan guard is gone; workers still have PDEATHSIG");
            self.stdin = None;
        }
    }
}

/// The guard's main loop (`vigil __guard`): read the group list until EOF, then kill.
pub fn guard_main() -> i32 {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: setting a signal to SIG_IGN.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let mut groups = BTreeSet::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        apply(&mut groups, &line);
    }
    for pgid in groups {
        super::process::signal_group(pgid, libc::SIGKILL);
    }
    0
}

/// Applies one `+PGID`/`-PGID` line.
fn apply(groups: &mut BTreeSet<i32>, line: &str) {
    let line = line.trim();
    if let Some(n) = line.strip_prefix('+').and_then(|n| n.parse::<i32>().ok()) {
        if n > 1 {
            groups.insert(n);
        }
    } else if let Some(n) = line.strip_prefix('-').and_then(|n| n.parse::<i32>().ok()) {
        groups.remove(&n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_add_and_remove_groups_and_garbage_is_ignored() {
        let mut g = BTreeSet::new();
        for l in ["+100", "+200", "-100", "junk", "+1", "+-5", "+300"] {
            apply(&mut g, l);
        }
        assert_eq!(g.into_iter().collect::<Vec<_>>(), vec![200, 300]);
    }
}
