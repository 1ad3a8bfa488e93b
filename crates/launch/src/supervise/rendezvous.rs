//! Coordination between the launchers of one job ("nodes") through the rendezvous store
//! that node 0 hosts.
//!
//! Keys (under `launch/`, beside the workers' `vigil/<run_id>/gen/<restart>/` keys; the
//! names shared with workers are in `vigil_collective::store::keys`):
//! - `launch/node/<k>`: node k's worker count, claimed with compare-and-set so two
//!   launchers with one `--node-rank` are refused; every node waits for all of them and
//!   derives the world size and its rank offset (node counts may differ per node).
//! - `launch/run_id`, `launch/max_restarts`: node 0's values, adopted by every node, so a
//!   run has one id and one restart budget.
//! - `launch/config` (`keys::RESOLVED_CONFIG`): node 0's resolved run config, when the
//!   launch has a CONFIG. Node 0 writes it before claiming its slot, so once every slot is
//!   claimed each node knows whether it exists and tells its workers (`VIGIL_CONFIG_KEY`);
//!   `vigil worker` then runs that config instead of resolving the YAML and its `${VAR}`s
//!   again in its own environment, so every rank of every node runs the same config.
//! - `launch/gen/<g>/ready/<k>`: the barrier before generation g ≥ 1 starts anywhere.
//! - `launch/gen/<g>/failed`: the first failure of generation g (compare-and-set, so
//!   exactly one is reported); every node polls it and stops its workers.
//! - `launch/gen/<g>/done/<k>`: node k's workers all exited 0; success is global only when
//!   every node has written it (a node that finished early still joins a restart).
//! - `launch/preempted`: a node was told to stop; the others stop too, without restart.
//! - `launch/exit/<k>`: node k is leaving; node 0 keeps the store up until all have left
//!   (bounded), so nobody loses the store mid-decision.
//!
//! The launcher speaks to the store with a blocking client from its supervision loop:
//! every call is bounded by a socket timeout.

use std::time::{Duration, Instant};

use vigil_collective::store::StoreClient;
use vigil_collective::store::keys::{self, LAUNCH_PREFIX as LAUNCH};

use super::env::WorldSpec;
use super::error::LaunchError;
use super::policy::{Cause, Event, Failure};
use super::signals;

/// Node 0's run id.
const RUN_ID: &str = "launch/run_id";
/// Node 0's restart budget.
const MAX_RESTARTS: &str = "launch/max_restarts";

/// Longest a poll of the store may block the supervision loop.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);
/// Long waits are cut into slices of this size to notice signals.
const SLICE: Duration = Duration::from_millis(500);

/// One node's view of the job, agreed through the store.
pub struct Coordinator {
    client: StoreClient,
    endpoint: String,
    node_rank: u32,
    nnodes: u32,
    timeout: Duration,
}

/// What the initial rendezvous agreed on.
pub struct Agreed {
    /// This node's place.
    pub world: WorldSpec,
    /// Node 0's run id.
    pub run_id: String,
    /// Node 0's restart budget.
    pub max_restarts: u32,
    /// Where node 0's resolved config sits in the store, if it published one.
    pub config_key: Option<String>,
}

impl Coordinator {
    /// Connects to the store at `endpoint`, retrying until `timeout`.
    pub fn connect(
        endpoint: &str,
        token: &str,
        node_rank: u32,
        nnodes: u32,
        timeout: Duration,
    ) -> Result<Self, LaunchError> {
        let deadline = Instant::now() + timeout;
        let client = loop {
            if signals::pending() {
                return Err(LaunchError::Interrupted {
                    during: format!("reaching the rendezvous store at {endpoint}"),
                });
            }
            // Name resolution can fail while a cluster's DNS catches up: retry it too. Short
            // attempts keep a signal from waiting out the whole rendezvous timeout.
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = left.clamp(Duration::from_millis(100), SLICE);
            match StoreClient::connect(endpoint, token, attempt) {
                Ok(c) => break c,
                Err(source @ vigil_collective::Error::StoreRefused { .. }) => {
                    return Err(LaunchError::Store {
                        endpoint: endpoint.to_string(),
                        what: "the store refused this node (is VIGIL_STORE_TOKEN the same on every node?)".into(),
                        source,
                    });
                }
                Err(e) if Instant::now() + Duration::from_millis(50) < deadline => {
                    tracing::debug!(%endpoint, error = %e, "store not reachable yet");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(LaunchError::Unreachable {
                        node_rank,
                        endpoint: endpoint.to_string(),
                        timeout,
                        source,
                    });
                }
            }
        };
        // Polls must not block the loop for the whole rendezvous timeout.
        let client = StoreClient::connect(client.server_addr(), token, POLL_TIMEOUT.min(timeout))
            .map_err(|source| LaunchError::Unreachable {
            node_rank,
            endpoint: endpoint.to_string(),
            timeout,
            source,
        })?;
        Ok(Self {
            client,
            endpoint: endpoint.to_string(),
            node_rank,
            nnodes,
            timeout,
        })
    }

    fn store_err(
        &self,
        what: impl Into<String>,
    ) -> impl FnOnce(vigil_collective::Error) -> LaunchError {
        let endpoint = self.endpoint.clone();
        let what = what.into();
        move |source| LaunchError::Store {
            endpoint,
            what,
            source,
        }
    }

    /// Waits for `keys` in rendezvous-timeout-sized blocks, mapping a timeout to a clear error.
    fn wait_all(&mut self, keys: &[String], what: &str) -> Result<(), LaunchError> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut waiter = self
            .client
            .reconnect()
            .map_err(self.store_err("reconnect for waiting"))?;
        let deadline = Instant::now() + self.timeout;
        let result = loop {
            if signals::pending() {
                return Err(LaunchError::Interrupted {
                    during: what.to_string(),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match waiter.wait(&refs, left.min(SLICE)) {
                Err(vigil_collective::Error::StoreTimeout { .. }) if !left.is_zero() => continue,
                other => break other,
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(vigil_collective::Error::StoreTimeout { .. }) => {
                let missing: Vec<String> = keys
                    .iter()
                    .filter(|k| !matches!(self.client.get(k), Ok(Some(_))))
                    .cloned()
                    .collect();
                Err(LaunchError::RendezvousTimeout {
                    endpoint: self.endpoint.clone(),
                    what: format!("{what}; still missing: {}", missing.join(", ")),
                    timeout: self.timeout,
                })
            }
            Err(e) => Err(self.store_err(what)(e)),
        }
    }

    /// The initial rendezvous: claim this node's slot, publish (node 0) or adopt the run
    /// id, restart budget and resolved config, wait for every node, compute this node's
    /// ranks. `resolved_config` is only published by node 0.
    pub fn rendezvous(
        &mut self,
        nproc: u32,
        run_id: &str,
        max_restarts: u32,
        local_override: Option<(u32, u32)>,
        resolved_config: Option<&str>,
    ) -> Result<Agreed, LaunchError> {
        let k = self.node_rank;
        if k == 0 {
            // Before the slot: whoever sees every slot claimed also sees the config.
            if let Some(yaml) = resolved_config {
                self.client
                    .set(keys::RESOLVED_CONFIG, yaml)
                    .map_err(self.store_err("publish the resolved config"))?;
            }
            self.client
                .set(RUN_ID, run_id)
                .map_err(self.store_err("publish the run id"))?;
            self.client
                .set(MAX_RESTARTS, max_restarts.to_string())
                .map_err(self.store_err("publish max_restarts"))?;
        }
        let mine = format!("{LAUNCH}node/{k}");
        let cas = self
            .client
            .compare_set(&mine, None, nproc.to_string())
            .map_err(self.store_err("join the rendezvous"))?;
        if !cas.swapped {
            return Err(LaunchError::DuplicateNode {
                node_rank: k,
                endpoint: self.endpoint.clone(),
            });
        }
        let mut keys: Vec<String> = (0..self.nnodes)
            .map(|i| format!("{LAUNCH}node/{i}"))
            .collect();
        keys.push(RUN_ID.into());
        keys.push(MAX_RESTARTS.into());
        self.wait_all(&keys, &format!("waiting for {} nodes", self.nnodes))?;
        let mut counts = Vec::new();
        for i in 0..self.nnodes {
            counts.push(self.get_u32(&format!("{LAUNCH}node/{i}"))?);
        }
        let run_id = self.get_string(RUN_ID)?;
        let max_restarts = self.get_u32(MAX_RESTARTS)?;
        let config_key = self
            .client
            .get(keys::RESOLVED_CONFIG)
            .map_err(self.store_err("look for the resolved config"))?
            .map(|_| keys::RESOLVED_CONFIG.to_string());
        let offset: u32 = counts[..k as usize].iter().sum();
        Ok(Agreed {
            world: WorldSpec {
                rank_offset: offset,
                local_world_size: nproc,
                world_size: counts.iter().sum(),
                node_rank: k,
                nnodes: self.nnodes,
                local_override,
            },
            run_id,
            max_restarts,
            config_key,
        })
    }

    fn get_string(&mut self, key: &str) -> Result<String, LaunchError> {
        let v = self
            .client
            .get(key)
            .map_err(self.store_err(format!("read {key}")))?
            .unwrap_or_default();
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    fn get_u32(&mut self, key: &str) -> Result<u32, LaunchError> {
        let s = self.get_string(key)?;
        s.parse().map_err(|_| LaunchError::Store {
            endpoint: self.endpoint.clone(),
            what: format!("{key} holds '{s}', not a number"),
            source: vigil_collective::Error::BadValue {
                key: key.into(),
                reason: "not a number".into(),
            },
        })
    }

    /// The barrier before generation `restart` starts on any node.
    pub fn barrier(&mut self, restart: u32) -> Result<(), LaunchError> {
        if self.nnodes == 1 {
            return Ok(());
        }
        self.client
            .set(
                &format!("{LAUNCH}gen/{restart}/ready/{}", self.node_rank),
                "1",
            )
            .map_err(self.store_err("enter the restart barrier"))?;
        let keys: Vec<String> = (0..self.nnodes)
            .map(|i| format!("{LAUNCH}gen/{restart}/ready/{i}"))
            .collect();
        self.wait_all(&keys, &format!("restart {restart}: waiting for every node"))
    }

    /// Reports the first failure of generation `restart` (first writer wins).
    pub fn publish_failure(&mut self, restart: u32, f: &Failure) {
        let text = format!(
            "{}\n{}\n{}",
            f.rank.map_or(String::new(), |r| r.to_string()),
            self.node_rank,
            f.cause
        );
        let key = format!("{LAUNCH}gen/{restart}/failed");
        if let Err(e) = self.client.compare_set(&key, None, text) {
            tracing::warn!(error = %e, "could not publish the failure to other nodes");
        }
    }

    /// Reports preemption.
    pub fn publish_preempted(&mut self) {
        if let Err(e) = self
            .client
            .set("launch/preempted", self.node_rank.to_string())
        {
            tracing::warn!(error = %e, "could not publish preemption to other nodes");
        }
    }

    /// Reports that this node's workers all succeeded in generation `restart`.
    pub fn publish_done(&mut self, restart: u32) {
        let key = format!("{LAUNCH}gen/{restart}/done/{}", self.node_rank);
        if let Err(e) = self.client.set(&key, "1") {
            tracing::warn!(error = %e, "could not publish success to other nodes");
        }
    }

    /// What other nodes reported for generation `restart`, as policy events.
    pub fn poll(&mut self, restart: u32, waiting_for_peers: bool) -> Vec<Event> {
        let mut events = Vec::new();
        if self.nnodes == 1 {
            if waiting_for_peers {
                events.push(Event::AllNodesDone);
            }
            return events;
        }
        match self.client.get(&format!("{LAUNCH}gen/{restart}/failed")) {
            Ok(Some(v)) => {
                let text = String::from_utf8_lossy(&v).into_owned();
                let mut parts = text.splitn(3, '\n');
                let rank = parts.next().and_then(|r| r.parse().ok());
                let node: u32 = parts
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(u32::MAX);
                let cause = parts.next().unwrap_or("failed").to_string();
                if node != self.node_rank {
                    events.push(Event::PeerFailed(Failure {
                        rank,
                        cause: Cause::Peer(format!("{cause} (on node {node})")),
                    }));
                }
            }
            Ok(None) => {}
            Err(e) => events.push(self.lost(e)),
        }
        match self.client.get("launch/preempted") {
            Ok(Some(v)) if String::from_utf8_lossy(&v) != self.node_rank.to_string() => {
                events.push(Event::PeerPreempted);
            }
            Ok(_) => {}
            Err(e) => events.push(self.lost(e)),
        }
        if waiting_for_peers {
            let keys: Vec<String> = (0..self.nnodes)
                .map(|i| format!("{LAUNCH}gen/{restart}/done/{i}"))
                .collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            match self.client.check(&refs) {
                Ok(true) => events.push(Event::AllNodesDone),
                Ok(false) => {}
                Err(e) => events.push(self.lost(e)),
            }
        }
        events
    }

    fn lost(&self, e: vigil_collective::Error) -> Event {
        Event::PeerFailed(Failure {
            rank: None,
            cause: Cause::Peer(format!(
                "lost the rendezvous store at {} ({e}); node 0's launcher is gone",
                self.endpoint
            )),
        })
    }

    /// The store heartbeat counter of `rank` under the generation `prefix`, if it beat yet.
    pub fn heartbeat(&mut self, prefix: &str, rank: u32) -> Option<i64> {
        let key = format!("{prefix}{}", keys::heartbeat(rank as usize));
        let v = self.client.get(&key).ok()??;
        String::from_utf8_lossy(&v).parse().ok()
    }

    /// Leaving: record it; node 0 waits (bounded) until every node has left so nobody
    /// loses the store while still deciding.
    pub fn leave(&mut self, limit: Duration) {
        let _ = self
            .client
            .set(&format!("{LAUNCH}exit/{}", self.node_rank), "1");
        if self.node_rank != 0 || self.nnodes == 1 {
            return;
        }
        let keys: Vec<String> = (0..self.nnodes)
            .map(|i| format!("{LAUNCH}exit/{i}"))
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        if let Ok(mut w) = self.client.reconnect() {
            let _ = w.wait(&refs, limit);
        }
    }
}
