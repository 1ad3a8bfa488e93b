//! A minimal worker for the launch benchmark (`tests/tests/e2e/launch_bench.rs`): it reads the
//! environment contract, connects to the launcher's store, and waits at a barrier of
//! `WORLD_SIZE` ranks — the rendezvous every real worker does first — then prints the
//! wall-clock time it got past it.
//!
//! `rdzv_probe hang-after-heartbeats` instead makes rank 1 heartbeat through the store a
//! few times and then hang (rank 0 just waits), for the watchdog test.
//!
//! `rdzv_probe all-reduce` builds `vigil_collective::ProcessGroup::from_env()` from the
//! launcher's environment and sums `[rank + 1]` across the world: the launcher's contract
//! and the collective's reading of it checked against each other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_collective::store::StoreClient;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run under vigil launch)"))
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("all-reduce") {
        let mut pg = vigil_collective::ProcessGroup::from_env().expect("process group from env");
        let mut buf = [pg.rank() as f32 + 1.0];
        pg.all_reduce(&mut buf, vigil_collective::ReduceOp::Sum)
            .expect("all-reduce");
        println!(
            "all-reduce rank {} of {} via {}: sum {}",
            pg.rank(),
            pg.world_size(),
            pg.transport(),
            buf[0]
        );
        return;
    }
    let addr = format!("{}:{}", var("VIGIL_STORE_ADDR"), var("VIGIL_STORE_PORT"));
    let rank: usize = var("RANK").parse().expect("RANK");
    let world: usize = var("WORLD_SIZE").parse().expect("WORLD_SIZE");
    let timeout = Duration::from_secs(30);
    let mut store = StoreClient::connect(addr.as_str(), &var("VIGIL_STORE_TOKEN"), timeout)
        .expect("connect to the store")
        .with_prefix(&var("VIGIL_STORE_PREFIX"));
    if std::env::args().nth(1).as_deref() == Some("hang-after-heartbeats") {
        if rank == 1 {
            for _ in 0..3 {
                store.heartbeat(rank).expect("heartbeat");
                std::thread::sleep(Duration::from_millis(100));
            }
            println!("heartbeats stopped; hanging");
        }
        std::thread::sleep(Duration::from_secs(300));
        return;
    }
    store.set(&format!("probe/{rank}"), b"1").expect("set");
    let keys: Vec<String> = (0..world).map(|r| format!("probe/{r}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    store.wait(&refs, timeout).expect("barrier");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    println!("past-rendezvous-unix-ns {}", now.as_nanos());
}
