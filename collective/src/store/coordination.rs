//! Conventions the launcher and workers share on top of the raw store: liveness beats and
//! the restart generation.
//!
//! Keys (relative to the client's prefix):
//! - `worker/<rank>/heartbeat`: counter bumped by every beat; `worker/<rank>/heartbeat_ms`:
//!   wall-clock time of the last beat (ms since the Unix epoch).
//! - `restart/generation`: the group's restart generation, advanced by compare-and-set so
//!   that when several node agents notice the same failure only one restart happens.

use std::time::{SystemTime, UNIX_EPOCH};

use super::client::StoreClient;
use crate::error::{Error, Result};

const GENERATION: &str = "restart/generation";

fn parse_i64(key: &str, v: &[u8]) -> Result<i64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::BadValue {
            key: key.to_string(),
            reason: "not a decimal integer".into(),
        })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl StoreClient {
    /// Record a liveness beat for `rank`; returns the beat count.
    pub fn heartbeat(&mut self, rank: usize) -> Result<i64> {
        self.set(&format!("worker/{rank}/heartbeat_ms"), now_ms().to_string())?;
        self.add(&format!("worker/{rank}/heartbeat"), 1)
    }

    /// The beat count and last beat time (ms since the epoch) of `rank`, if it ever beat.
    pub fn last_heartbeat(&mut self, rank: usize) -> Result<Option<(i64, u128)>> {
        let count_key = format!("worker/{rank}/heartbeat");
        let ms_key = format!("worker/{rank}/heartbeat_ms");
        let (Some(count), Some(ms)) = (self.get(&count_key)?, self.get(&ms_key)?) else {
            return Ok(None);
        };
        let count = parse_i64(&count_key, &count)?;
        let ms = parse_i64(&ms_key, &ms)?;
        Ok(Some((count, ms.max(0) as u128)))
    }

    /// Ranks among `0..world_size` whose last beat is older than `stale_ms` (or that never
    /// beat), as of `now_ms`.
    pub fn stale_workers(
        &mut self,
        world_size: usize,
        now_ms: u128,
        stale_ms: u128,
    ) -> Result<Vec<usize>> {
        let mut stale = Vec::new();
        for rank in 0..world_size {
            match self.last_heartbeat(rank)? {
                Some((_, at)) if now_ms.saturating_sub(at) <= stale_ms => {}
                _ => stale.push(rank),
            }
        }
        Ok(stale)
    }

    /// The current restart generation (0 if never advanced).
    pub fn generation(&mut self) -> Result<i64> {
        match self.get(GENERATION)? {
            Some(v) => parse_i64(GENERATION, &v),
            None => Ok(0),
        }
    }

    /// Advance the generation from `seen` to `seen + 1`, unless somebody already moved it
    /// on. Returns `(advanced_by_us, current_generation)`.
    pub fn advance_generation(&mut self, seen: i64) -> Result<(bool, i64)> {
        let expected = if seen == 0 {
            None
        } else {
            Some(seen.to_string().into_bytes())
        };
        let out = self.compare_set(GENERATION, expected.as_deref(), (seen + 1).to_string())?;
        if out.swapped {
            return Ok((true, seen + 1));
        }
        // Absent while we expected "0" as a value, or "0" stored while we expected absent.
        let current = match &out.current {
            Some(v) => parse_i64(GENERATION, v)?,
            None => 0,
        };
        if current == seen {
            let retry =
                self.compare_set(GENERATION, out.current.as_deref(), (seen + 1).to_string())?;
            if retry.swapped {
                return Ok((true, seen + 1));
            }
        }
        Ok((false, self.generation()?))
    }
}
