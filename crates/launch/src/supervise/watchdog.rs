//! The hang watchdog, pure: a worker whose heartbeat stops changing for
//! `launch.heartbeat_timeout_s` counts as failed (a deadlock, a process stuck in D state).
//!
//! A heartbeat is any observation that changes: the modification time of the worker's
//! `VIGIL_HEARTBEAT_FILE` (what `vigil worker` touches, at most once a second, during
//! training, evaluation and the feature-cache build; `touch` from a script does the same),
//! or the counter a program holding a store client bumps (`StoreClient::heartbeat` on a
//! client prefixed with `VIGIL_STORE_PREFIX`, key `worker/<rank>/heartbeat`). A rank is
//! watched from its first heartbeat on, so a command that never heartbeats (any program
//! run after `--`) is never declared hung; hangs before the first beat are bounded by the
//! rendezvous and collective timeouts instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One reading of a rank's heartbeat sources; equal readings mean "no beat since".
pub type Reading = (Option<u128>, Option<i64>);

/// Tracks the last change of each rank's heartbeat.
#[derive(Debug, Clone)]
pub struct Watchdog {
    timeout: Duration,
    seen: BTreeMap<u32, (Reading, Instant)>,
}

impl Watchdog {
    /// A watchdog with this timeout.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            seen: BTreeMap::new(),
        }
    }

    /// Forgets everything (a new generation).
    pub fn reset(&mut self) {
        self.seen.clear();
    }

    /// Records a reading of `rank` taken at `now`.
    pub fn observe(&mut self, rank: u32, reading: Reading, now: Instant) {
        if reading == (None, None) {
            return;
        }
        match self.seen.get(&rank) {
            Some((last, _)) if *last == reading => {}
            _ => {
                self.seen.insert(rank, (reading, now));
            }
        }
    }

    /// Ranks silent for at least the timeout, with how long.
    pub fn hung(&self, now: Instant) -> Vec<(u32, Duration)> {
        self.seen
            .iter()
            .filter_map(|(&rank, &(_, at))| {
                let silent = now.saturating_duration_since(at);
                (silent >= self.timeout).then_some((rank, silent))
            })
            .collect()
    }
}

/// Reads a heartbeat file's modification time in nanoseconds, if the file exists.
pub fn file_reading(path: &std::path::Path) -> Option<u128> {
    let meta = std::fs::metadata(path).ok()?;
    let t = meta.modified().ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_ranks_are_reported_only_once_armed() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = Watchdog::new(Duration::from_secs(5));
        w.observe(0, (None, None), t);
        w.observe(1, (Some(10), None), t);
        assert_eq!(w.hung(t + 10 * s), vec![(1, 10 * s)]);
        // A change re-arms the clock; an unchanged reading does not.
        w.observe(1, (Some(11), None), t + 10 * s);
        w.observe(1, (Some(11), None), t + 12 * s);
        assert_eq!(w.hung(t + 14 * s), vec![]);
        assert_eq!(w.hung(t + 15 * s), vec![(1, 5 * s)]);
        // The store counter counts as well.
        w.observe(1, (Some(11), Some(1)), t + 15 * s);
        assert_eq!(w.hung(t + 16 * s), vec![]);
        w.reset();
        assert_eq!(w.hung(t + 100 * s), vec![]);
    }
}
