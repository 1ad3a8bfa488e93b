//! The poller: a thread that lists the repository every `--poll-secs`, loads
//! a newer complete version in the background and swaps it in (with its recall
//! index, through `pairs.rs`), and [`Stop`], which ends it.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vigil_infer::ServeError;
use vigil_store::checkpoint::{MANIFEST_FILE, StoreError};
use vigil_store::repo::ModelRepo;
use vigil_store::repo::{LocateError, newest_listed};
use vigil_store::storage::Location;

use super::pairs::{Pairs, RecallSource};
use super::{Current, Loaded, Serving, error_chain};
use crate::metrics::Metrics;
use crate::pickup::{Pickup, decide as pickup};
use crate::verified::{Skipped, Stamp, Verdict, VerifyCache};

/// A stop signal for the poller thread.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Asks the poller to stop.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Sleeps `d` or until stopped; true when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .wake
            .wait_timeout_while(g, d, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }
}

/// The newest version the repository offers now, and the newer ones skipped as
/// damaged. A directory is listed and each version verified once
/// ([`VerifyCache`]: the manifest and every file's sha256, again only when the
/// manifest changes), the rule of `vigil predict` without re-hashing the same
/// files every poll. A single version directory has nothing newer to offer. A
/// bucket URL is only listed ([`newest_listed`]: the newest with a manifest, not
/// failed before), so a poll downloads nothing; the files are read and verified
/// once, when [`Loaded::load`] loads that version.
fn poll_newest(
    repo: &Location,
    failed: &[u64],
    cache: &mut VerifyCache,
) -> Result<(Option<u64>, Skipped), ServeError> {
    let repo = match repo {
        Location::Remote(url) => return Ok((newest_listed(url, failed)?, Vec::new())),
        Location::Local(dir) => dir.as_path(),
    };
    if repo.join(MANIFEST_FILE).is_file() {
        return Ok((None, Vec::new()));
    }
    let repo_err = |source| {
        ServeError::from(LocateError::Repo {
            dir: repo.to_path_buf(),
            source: Box::new(source),
        })
    };
    let store = ModelRepo::open(repo).map_err(repo_err)?;
    let versions = store.versions().map_err(repo_err)?;
    let stamp = |v: u64| {
        let meta = std::fs::metadata(repo.join(v.to_string()).join(MANIFEST_FILE)).ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    };
    // A manifest naming an invalid file (`../x`) is as permanent as a hash
    // mismatch: remembered, not re-hashed every poll. Other errors (I/O) may pass.
    let verify = |v: u64| match store.version(v) {
        Ok(_) => Verdict::Complete,
        Err(e @ (StoreError::Corrupt { .. } | StoreError::InvalidName { .. })) => {
            Verdict::Damaged(e.to_string())
        }
        Err(e) => Verdict::Unreadable(e.to_string()),
    };
    Ok(cache.newest(&versions, stamp, verify))
}

/// Logs each version of `skipped` not in `reported` yet, once, and remembers it:
/// the start-up load and every poll report through this, so a version passed
/// over is named once for the life of the server.
pub fn report_skipped(skipped: &[(u64, String)], reported: &mut Vec<u64>) {
    for (v, why) in skipped {
        if !reported.contains(v) {
            reported.push(*v);
            eprintln!("vigil serve: ignoring damaged version {v}: {why}");
        }
    }
}

/// What the poller thread is given.
#[derive(Debug)]
pub struct Poller {
    /// The model repository.
    pub repo: Location,
    /// How often it is polled.
    pub every: Duration,
    /// Model replicas per loaded version.
    pub replicas: usize,
    /// `--version`: the model never moves (the poller then runs for the recall
    /// index alone).
    pub pinned: Option<u64>,
    /// The recall index repository, when recall is served.
    pub recall: Option<RecallSource>,
    /// The pair served.
    pub current: Arc<Current>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Ends the thread.
    pub stop: Arc<Stop>,
}

/// Polls the model repository every `every`, loads a newer complete version in
/// the background and swaps it in — with its recall index, when recall is served
/// ([`crate::pairing`]); logs every swap, failed load and damaged version once
/// (`reported`: the versions the start-up load already named; `failed_indexes`:
/// index versions that already failed to load).
pub fn start_poller(
    p: Poller,
    mut reported: Vec<u64>,
    failed_indexes: Vec<u64>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vigil-serve-poll".into())
        .spawn(move || {
            let mut failed: Vec<u64> = Vec::new();
            let mut last_error = String::new();
            let mut cache = VerifyCache::default();
            let mut pairs = p.recall.as_ref().map(|_| Pairs::new(failed_indexes));
            while !p.stop.sleep(p.every) {
                let newest = match p.pinned {
                    Some(_) => None,
                    None => match poll_newest(&p.repo, &failed, &mut cache) {
                        Ok((newest, skipped)) => {
                            last_error.clear();
                            report_skipped(&skipped, &mut reported);
                            newest
                        }
                        Err(e) => {
                            let msg = error_chain(&e);
                            if msg != last_error {
                                eprintln!(
                                    "vigil serve: warning: {msg}; keeping the loaded version"
                                );
                                last_error = msg;
                            }
                            None
                        }
                    },
                };
                let loaded = p.current.get().version;
                let decision = pickup(loaded, p.pinned, newest, &failed);
                if let (Some(pairs), Some(source)) = (pairs.as_mut(), p.recall.as_ref()) {
                    pairs.step(&p, source, decision, &mut failed);
                    continue;
                }
                let Pickup::Load(v) = decision else {
                    continue;
                };
                eprintln!("vigil serve: loading version {v}");
                match Loaded::load(&p.repo, Some(v), p.replicas) {
                    Ok(new) => {
                        p.current.set(Serving {
                            model: Arc::new(new),
                            index: None,
                        });
                        p.metrics.set_version(v, true);
                        eprintln!("vigil serve: swapped: serving version {v} (was {loaded})");
                    }
                    Err(e) => {
                        failed.push(v);
                        p.metrics.load_failed();
                        eprintln!(
                            "vigil serve: error: version {v} failed to load, still serving {loaded}: {}",
                            error_chain(&e)
                        );
                    }
                }
            }
        })
}
