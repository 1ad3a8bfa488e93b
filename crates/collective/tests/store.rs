//! The rendezvous store over real sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vigil_collective::Error;
use vigil_collective::store::{Request, StoreClient};

use crate::util::{LONG, SHORT, TOKEN, store};

#[test]
fn set_get_add_cas_delete() {
    let s = store();
    let mut c = StoreClient::connect(s.addr(), TOKEN, LONG).unwrap();
    c.set("a", b"1").unwrap();
    assert_eq!(c.get("a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.get("missing").unwrap(), None);
    assert_eq!(c.add("n", 5).unwrap(), 5);
    assert_eq!(c.add("n", -2).unwrap(), 3);
    assert!(c.compare_set("g", None, b"x").unwrap().swapped);
    assert!(!c.compare_set("g", None, b"y").unwrap().swapped);
    assert!(c.delete("g").unwrap());
    assert!(!c.check(&["a", "g"]).unwrap());
    assert!(matches!(c.add("a", 1), Ok(2)));
    c.set("s", b"text").unwrap();
    assert!(matches!(c.add("s", 1), Err(Error::BadValue { .. })));
}

#[test]
fn wait_wakes_on_set_and_times_out_when_absent() {
    let s = store();
    let mut waiter = StoreClient::connect(s.addr(), TOKEN, LONG).unwrap();
    let addr = s.addr();
    let setter = std::thread::spawn(move || {
        let mut c = StoreClient::connect(addr, TOKEN, LONG).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        c.set("k1", b"").unwrap();
        c.set("k2", b"v").unwrap();
    });
    assert_eq!(waiter.wait_get("k2", LONG).unwrap(), b"v".to_vec());
    waiter.wait(&["k1", "k2"], LONG).unwrap();
    setter.join().unwrap();
    let t = Instant::now();
    let err = waiter
        .wait(&["never"], Duration::from_millis(200))
        .unwrap_err();
    assert!(matches!(err, Error::StoreTimeout { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn prefixes_separate_generations() {
    let s = store();
    let mut g0 = StoreClient::connect(s.addr(), TOKEN, LONG)
        .unwrap()
        .with_prefix("gen/0/");
    let mut g1 = g0.reconnect().unwrap().with_prefix("gen/1/");
    g0.set("addr", b"old").unwrap();
    assert_eq!(g1.get("addr").unwrap(), None);
}

#[test]
fn heartbeats_count() {
    let s = store();
    let mut c = StoreClient::connect(s.addr(), TOKEN, LONG).unwrap();
    assert_eq!(c.last_heartbeat(3).unwrap(), None);
    c.heartbeat(3).unwrap();
    assert_eq!(c.heartbeat(3).unwrap(), 2);
    let (n, ms) = c.last_heartbeat(3).unwrap().unwrap();
    assert_eq!(n, 2);
    assert!(ms > 0);
}

#[test]
fn wrong_or_missing_token_is_refused() {
    let s = store();
    let err = StoreClient::connect(s.addr(), "wrong", SHORT).unwrap_err();
    assert!(matches!(err, Error::StoreRefused { .. }), "{err}");
    let err = StoreClient::connect(s.addr(), "", SHORT).unwrap_err();
    assert!(matches!(err, Error::StoreRefused { .. }), "{err}");

    // A request without authenticating first is refused and the connection closed.
    let mut raw = TcpStream::connect(s.addr()).unwrap();
    raw.set_read_timeout(Some(SHORT)).unwrap();
    raw.write_all(&Request::Get { key: "a".into() }.encode())
        .unwrap();
    let mut out = Vec::new();
    let _ = raw.read_to_end(&mut out);
    assert!(String::from_utf8_lossy(&out).contains("unauthorized"));
}

#[test]
fn random_bytes_do_not_disturb_other_clients() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let s = store();
    let mut good = StoreClient::connect(s.addr(), TOKEN, LONG).unwrap();
    good.set("ok", b"1").unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    for i in 0..50 {
        let mut raw = TcpStream::connect(s.addr()).unwrap();
        raw.set_read_timeout(Some(SHORT)).unwrap();
        if i % 2 == 1 {
            // Authenticated garbage: must be rejected too.
            raw.write_all(
                &Request::Auth {
                    token: TOKEN.into(),
                }
                .encode(),
            )
            .unwrap();
        }
        let n = rng.random_range(1..2048);
        let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        let _ = raw.write_all(&junk);
        drop(raw);
    }
    assert_eq!(good.get("ok").unwrap(), Some(b"1".to_vec()));
    let mut fresh = StoreClient::connect(s.addr(), TOKEN, LONG).unwrap();
    assert_eq!(fresh.add("n", 1).unwrap(), 1);
}

#[test]
fn a_worker_fetches_the_launchers_resolved_config() {
    use vigil_collective::store::keys;
    use vigil_collective::{CollectiveEnv, WorkerEnv};
    let s = store();
    let env = WorkerEnv {
        rank: 1,
        local_rank: 1,
        world_size: 2,
        local_world_size: 2,
        node_rank: 0,
        nnodes: Some(1),
        store_addr: "127.0.0.1".into(),
        store_port: s.addr().port(),
        master_port: s.addr().port() + 1,
        token: TOKEN.into(),
        run_id: "r".into(),
        restart_count: 0,
        max_restarts: 0,
        heartbeat_file: None,
        output_dir: None,
        config_key: Some(keys::RESOLVED_CONFIG.into()),
        collective: CollectiveEnv {
            connect_timeout: Some(LONG),
            ..CollectiveEnv::default()
        },
    };
    // The worker may ask before the launcher has published: it waits.
    let publisher = std::thread::spawn({
        let addr = s.addr();
        move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut c = StoreClient::connect(addr, TOKEN, LONG).unwrap();
            c.set(keys::RESOLVED_CONFIG, "run:\n  name: from-node-0\n")
                .unwrap();
        }
    });
    let yaml = env.fetch_config().unwrap();
    publisher.join().unwrap();
    assert_eq!(yaml.as_deref(), Some("run:\n  name: from-node-0\n"));
    let alone = WorkerEnv {
        config_key: None,
        ..env
    };
    assert_eq!(alone.fetch_config().unwrap(), None);
}
