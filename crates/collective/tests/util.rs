//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use vigil_collective::store::BackgroundStore;

/// Token used by test stores.
pub const TOKEN: &str = "test-token-0123456789";

/// A store on 127.0.0.1 with a random port.
pub fn store() -> BackgroundStore {
    BackgroundStore::start(SocketAddr::from(([127, 0, 0, 1], 0)), TOKEN).expect("start store")
}

/// Short timeout used by tests that expect a failure.
pub const SHORT: Duration = Duration::from_millis(1500);
/// Generous timeout for tests that expect success.
pub const LONG: Duration = Duration::from_secs(20);

use std::sync::atomic::{AtomicUsize, Ordering};

use vigil_collective::{GroupConfig, ProcessGroup, TransportKind};

/// A run id no other test uses (shm files and store keys are namespaced by it).
pub fn unique_run_id(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Configs for `n` thread-ranks of one group on `store`.
pub fn configs(
    store: &BackgroundStore,
    n: usize,
    transport: TransportKind,
    tag: &str,
) -> Vec<GroupConfig> {
    let run = unique_run_id(tag);
    (0..n)
        .map(|r| {
            let mut c = GroupConfig::local(r, n, store.addr().port(), TOKEN, &run);
            c.transport = transport;
            c.timeout = LONG;
            c.connect_timeout = LONG;
            // Small staging and chunks so that modest buffers span several pieces.
            c.shm_staging_bytes = 64 << 10;
            c.chunk_bytes = 16 << 10;
            c
        })
        .collect()
}

/// Run `f` on one thread per rank with a joined group; returns the results by rank.
pub fn run_ranks<R: Send + 'static>(
    cfgs: Vec<GroupConfig>,
    f: impl Fn(ProcessGroup) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let f = std::sync::Arc::new(f);
    let handles: Vec<_> = cfgs
        .into_iter()
        .map(|cfg| {
            let f = f.clone();
            std::thread::spawn(move || {
                let pg = ProcessGroup::new(cfg).expect("join group");
                f(pg)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("rank thread panicked"))
        .collect()
}

/// Deterministic per-rank test data: small integers, so float sums are exact.
pub fn data(rank: usize, len: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let mut rng = StdRng::seed_from_u64(seed * 1000 + rank as u64);
    (0..len)
        .map(|_| rng.random_range(-1000i32..1000) as f32)
        .collect()
}

/// Configs for `nodes × per_node` thread-ranks pretending to be on separate nodes (each
/// "node" gets its own shared-memory segment and leader), numbered node by node.
pub fn multi_node_configs(
    store: &BackgroundStore,
    nodes: usize,
    per_node: usize,
    tag: &str,
) -> Vec<GroupConfig> {
    let n = nodes * per_node;
    let mut cfgs = configs(store, n, TransportKind::Auto, tag);
    for (r, c) in cfgs.iter_mut().enumerate() {
        c.node_rank = r / per_node;
        c.local_rank = r % per_node;
        c.local_world_size = per_node;
    }
    cfgs
}
