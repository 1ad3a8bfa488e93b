//! A minimal worker for the launch benchmark (`tests/tests/launch_bench.rs`): it reads the
//! environment contract, connects to the launcher's store, and waits at a barrier of
//! `WORLD_SIZE` ranks — the rendezvous every real worker does first — then prints the
//! wall-clock time it got past it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_collective::store::StoreClient;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run under vigil launch)"))
}

fn main() {
    let addr = format!("{}:{}", var("MASTER_ADDR"), var("MASTER_PORT"));
    let rank: usize = var("RANK").parse().expect("RANK");
    let world: usize = var("WORLD_SIZE").parse().expect("WORLD_SIZE");
    let timeout = Duration::from_secs(30);
    let mut store = StoreClient::connect(addr.as_str(), &var("VIGIL_STORE_TOKEN"), timeout)
        .expect("connect to the store")
        .with_prefix(&var("VIGIL_STORE_PREFIX"));
    store.set(&format!("probe/{rank}"), b"1").expect("set");
    let keys: Vec<String> = (0..world).map(|r| format!("probe/{r}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    store.wait(&refs, timeout).expect("barrier");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    println!("past-rendezvous-unix-ns {}", now.as_nanos());
}
