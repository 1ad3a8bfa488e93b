//! Liveness beats through the store, for workers that hold a store client (any program run
//! after `vigil launch --` can use them; `vigil worker` touches its `VIGIL_HEARTBEAT_FILE`
//! instead, which needs no connection).
//!
//! Keys, relative to the client's prefix (the generation's `VIGIL_STORE_PREFIX`), spelled in
//! [`super::keys`]: `worker/<rank>/heartbeat`, a counter bumped by every beat (what the
//! launcher's watchdog reads), and `worker/<rank>/heartbeat_ms`, the wall-clock time of the
//! last beat (ms since the Unix epoch).

use std::time::{SystemTime, UNIX_EPOCH};

use super::client::StoreClient;
use super::keys;
use crate::error::{Error, Result};

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
        self.set(&keys::heartbeat_ms(rank), now_ms().to_string())?;
        self.add(&keys::heartbeat(rank), 1)
    }

    /// The beat count and last beat time (ms since the epoch) of `rank`, if it ever beat.
    pub fn last_heartbeat(&mut self, rank: usize) -> Result<Option<(i64, u128)>> {
        let count_key = keys::heartbeat(rank);
        let ms_key = keys::heartbeat_ms(rank);
        let (Some(count), Some(ms)) = (self.get(&count_key)?, self.get(&ms_key)?) else {
            return Ok(None);
        };
        let count = parse_i64(&count_key, &count)?;
        let ms = parse_i64(&ms_key, &ms)?;
        Ok(Some((count, ms.max(0) as u128)))
    }
}
