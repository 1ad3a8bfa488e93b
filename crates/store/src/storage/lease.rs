//! [`Lease`]: the output lock of a run directory on a bucket — one object,
//! `<run.output_dir>/.vigil.lock`, taken with a conditional create and kept alive by
//! conditional overwrites.
//!
//! A `flock` cannot reach a bucket, and a launcher that dies cannot release
//! anything, so the lock is a lease: it names its holder and an expiry, the holder
//! renews it every third of its lifetime ([`LEASE_TTL`], `VIGIL_STORAGE_LEASE_TTL_S`),
//! and a launcher that finds an expired lease takes it over. Every write is
//! conditional — create with `If-None-Match: *`, renew and take over with
//! `If-Match: <the ETag read>` — so of two launchers racing for one prefix exactly
//! one wins, and a holder that was presumed dead (stalled past its expiry) learns
//! it lost the lease at its next renewal instead of overwriting the new holder's.
//! What it cannot do is stop a stalled holder's writes between the expiry and
//! that renewal: keep the TTL well above any pause a launcher can have.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::client::Bucket;
use super::error::StorageError;
use super::url::RemoteUrl;

/// The lease object below the run directory.
pub const LEASE_KEY: &str = ".vigil.lock";
/// Default lifetime of a lease between renewals.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// What the lease object holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// `pid P on host H` of the launcher holding it.
    pub holder: String,
    /// Unix time (s) after which it may be taken over.
    pub expires_unix_s: i64,
}

/// What to do about the lease object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// It is expired (or unreadable): take it over.
    TakeOver,
    /// Someone holds it.
    Held {
        /// Its holder.
        holder: String,
        /// Seconds until it expires.
        expires_in_s: i64,
    },
}

/// Whether a lease `existing` (`None`: unparseable) may be taken over at `now`.
pub fn decide(existing: Option<&LeaseRecord>, now_unix_s: i64) -> LeaseDecision {
    match existing {
        Some(r) if r.expires_unix_s > now_unix_s => LeaseDecision::Held {
            holder: r.holder.clone(),
            expires_in_s: r.expires_unix_s - now_unix_s,
        },
        _ => LeaseDecision::TakeOver,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The lease lifetime: `VIGIL_STORAGE_LEASE_TTL_S` or [`LEASE_TTL`].
pub fn ttl_from_env() -> Duration {
    std::env::var("VIGIL_STORAGE_LEASE_TTL_S")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s >= 3)
        .map_or(LEASE_TTL, Duration::from_secs)
}

type Stop = Arc<(Mutex<bool>, Condvar)>;

/// A held lease, renewed on a background thread; dropping it releases it.
#[derive(Debug)]
pub struct Lease {
    bucket: Bucket,
    stop: Stop,
    renewer: Option<std::thread::JoinHandle<()>>,
    etag: Arc<Mutex<Option<String>>>,
    /// The previous holder when an expired lease was taken over.
    pub took_over: Option<String>,
}

impl Lease {
    /// Takes the lease of the run directory `output` for `holder`, or fails with
    /// [`StorageError::LeaseHeld`] naming the current holder.
    pub fn acquire(output: &RemoteUrl, holder: &str, ttl: Duration) -> Result<Self, StorageError> {
        let bucket = Bucket::open(output)?;
        let record = move |holder: &str| {
            serde_json::to_vec(&LeaseRecord {
                holder: holder.to_string(),
                expires_unix_s: now() + ttl.as_secs() as i64,
            })
            .expect("a lease record serializes")
        };
        let held = |holder: String, expires_in_s: i64| StorageError::LeaseHeld {
            url: bucket.url_of(LEASE_KEY),
            holder,
            expires_in_s,
        };
        let mut took_over = None;
        let etag = if bucket.create(LEASE_KEY, record(holder))? {
            bucket.head(LEASE_KEY)?.and_then(|m| m.e_tag)
        } else {
            let Some((bytes, meta)) = bucket.get_with_meta(LEASE_KEY)? else {
                // Released between the create and the read: the caller may retry.
                return Err(held("a launcher that just released it".into(), 0));
            };
            let existing: Option<LeaseRecord> = serde_json::from_slice(&bytes).ok();
            match decide(existing.as_ref(), now()) {
                LeaseDecision::Held {
                    holder,
                    expires_in_s,
                } => return Err(held(holder, expires_in_s)),
                LeaseDecision::TakeOver => {
                    let Some(old) = meta.e_tag.clone() else {
                        return Err(held("a holder whose lease has no ETag".into(), 0));
                    };
                    match bucket.put_if_match(LEASE_KEY, record(holder), &old)? {
                        Some(new) => {
                            took_over = Some(
                                existing.map_or_else(|| "an unreadable lease".into(), |r| r.holder),
                            );
                            Some(new)
                        }
                        None => {
                            return Err(held("another launcher (it took over first)".into(), 0));
                        }
                    }
                }
            }
        };
        let etag = Arc::new(Mutex::new(etag));
        let stop: Stop = Arc::new((Mutex::new(false), Condvar::new()));
        let renewer = {
            let (bucket, stop, etag) = (bucket.clone(), stop.clone(), etag.clone());
            let holder = holder.to_string();
            std::thread::Builder::new()
                .name("vigil-lease".into())
                .spawn(move || renew(&bucket, &stop, &etag, &holder, ttl, &record))
                .ok()
        };
        Ok(Self {
            bucket,
            stop,
            renewer,
            etag,
            took_over,
        })
    }
}

fn renew(
    bucket: &Bucket,
    stop: &Stop,
    etag: &Mutex<Option<String>>,
    holder: &str,
    ttl: Duration,
    record: &dyn Fn(&str) -> Vec<u8>,
) {
    let (lock, cvar) = &**stop;
    let mut stopped = lock.lock().expect("lease stop flag");
    loop {
        let (guard, _) = cvar
            .wait_timeout(stopped, ttl / 3)
            .expect("lease stop flag");
        stopped = guard;
        if *stopped {
            return;
        }
        let Some(current) = etag.lock().expect("lease etag").clone() else {
            return;
        };
        match bucket.put_if_match(LEASE_KEY, record(holder), &current) {
            Ok(Some(new)) => *etag.lock().expect("lease etag") = Some(new),
            Ok(None) => {
                eprintln!(
                    "vigil: lost the lease {}: another launcher took it over",
                    bucket.url_of(LEASE_KEY)
                );
                *etag.lock().expect("lease etag") = None;
                return;
            }
            // A failed renewal is retried at the next tick; the lease lives a TTL.
            Err(e) => eprintln!("vigil: warning: cannot renew the lease: {e}"),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *self.stop.0.lock().expect("lease stop flag") = true;
        self.stop.1.notify_all();
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        // Delete only a lease that is still ours (best effort: a failure leaves a
        // lease that expires by itself).
        let ours = self.etag.lock().expect("lease etag").clone();
        if let (Some(ours), Ok(Some(meta))) = (ours, self.bucket.head(LEASE_KEY))
            && meta.e_tag.as_deref() == Some(ours.as_str())
        {
            let _ = self.bucket.delete(LEASE_KEY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lease_is_held_and_an_expired_or_unreadable_one_taken_over() {
        let r = LeaseRecord {
            holder: "pid 1 on host a".into(),
            expires_unix_s: 100,
        };
        assert_eq!(
            decide(Some(&r), 40),
            LeaseDecision::Held {
                holder: "pid 1 on host a".into(),
                expires_in_s: 60
            }
        );
        assert_eq!(decide(Some(&r), 100), LeaseDecision::TakeOver);
        assert_eq!(decide(Some(&r), 1000), LeaseDecision::TakeOver);
        assert_eq!(decide(None, 0), LeaseDecision::TakeOver);
    }
}
