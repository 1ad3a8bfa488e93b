//! The benchmark parent: store, reference bandwidth, rank processes, output.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::options::{BenchOptions, OPTS_ENV};
use super::report::BenchRow;
use crate::error::{Error, Result};
use crate::group::{CollectiveEnv, WorkerEnv};
use crate::store::{BackgroundStore, StoreClient, keys};

/// Kills rank processes that are still running when dropped (error paths).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Single-core memcpy bandwidth in GB/s (1e9) for buffers of `bytes`: best of 5 copies.
pub fn memcpy_gbps(bytes: usize) -> f64 {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    if best > 0.0 {
        bytes as f64 / best / 1e9
    } else {
        0.0
    }
}

fn random_token() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut s: String = b.iter().map(|x| format!("{x:02x}")).collect();
    s.push_str(&format!("{nanos:x}"));
    s
}

/// Run the benchmark: host a store, start `opts.nproc` ranks with `spawn(rank, env)` (the
/// returned command is spawned with the worker environment added), print one row per
/// size to `out` (table or JSON lines), and return the rows.
///
/// Blocking; call it from `spawn_blocking` inside a tokio runtime (it runs its own store
/// runtime on a separate thread).
pub fn run_parent(
    opts: &BenchOptions,
    spawn: impl Fn(usize, &[(String, String)]) -> Command,
    out: &mut dyn Write,
) -> Result<Vec<BenchRow>> {
    opts.validate()?;
    let memcpy = memcpy_gbps(64 << 20);
    let token = random_token();
    let run_id = format!("bench-{}", std::process::id());
    let store = BackgroundStore::start(SocketAddr::from(([127, 0, 0, 1], 0)), &token)?;
    let port = store.addr().port();
    let io = |e| Error::io("write benchmark output", e);
    if !opts.json {
        writeln!(
            out,
            "# vigil all-reduce benchmark: nproc {} transport {}{} iters {} warmup {}",
            opts.nproc,
            opts.transport,
            if opts.copy { " (copy)" } else { "" },
            opts.iters,
            opts.warmup
        )
        .map_err(io)?;
        writeln!(out, "# single-core memcpy (64 MiB): {memcpy:.2} GB/s").map_err(io)?;
        writeln!(out, "{}", BenchRow::table_header()).map_err(io)?;
    }

    let mut children = Children(Vec::new());
    for rank in 0..opts.nproc {
        let worker = WorkerEnv {
            rank,
            local_rank: rank,
            world_size: opts.nproc,
            local_world_size: opts.nproc,
            node_rank: 0,
            nnodes: Some(1),
            store_addr: "127.0.0.1".into(),
            store_port: port,
            master_port: port,
            token: token.clone(),
            run_id: run_id.clone(),
            restart_count: 0,
            max_restarts: 0,
            heartbeat_file: None,
            output_dir: None,
            config_key: None,
            collective: CollectiveEnv {
                transport: Some(opts.transport_kind()?),
                timeout: Some(Duration::from_millis(opts.timeout_ms)),
                ..CollectiveEnv::default()
            },
        };
        let mut env = worker.to_vars();
        env.push((OPTS_ENV.to_string(), opts.to_env()));
        let mut cmd = spawn(rank, &env);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("spawn benchmark rank {rank}"), e))?;
        children.0.push(child);
    }

    let prefix = keys::generation_prefix(&run_id, 0);
    let mut client =
        StoreClient::connect(store.addr(), &token, Duration::from_secs(10))?.with_prefix(&prefix);
    let per_size = opts.timeout() * (opts.iters + opts.warmup + 4) as u32 + Duration::from_secs(60);
    let mut rows = Vec::new();
    for i in 0..opts.sizes.len() {
        let deadline = Instant::now() + per_size;
        let row = loop {
            if let Some(v) = client.get(&format!("bench/result/{i}"))? {
                let mut row: BenchRow =
                    serde_json::from_slice(&v).map_err(|e| Error::BadValue {
                        key: format!("bench/result/{i}"),
                        reason: e.to_string(),
                    })?;
                row.memcpy_gbps = memcpy;
                break row;
            }
            for (rank, c) in children.0.iter_mut().enumerate() {
                if let Ok(Some(status)) = c.try_wait()
                    && !status.success()
                {
                    return Err(Error::RankFailed {
                        rank,
                        status: status.to_string(),
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(Error::RankFailed {
                    rank: 0,
                    status: "no result in time".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let line = if opts.json {
            row.json_line()
        } else {
            row.table_line()
        };
        writeln!(out, "{line}").map_err(io)?;
        let _ = out.flush();
        rows.push(row);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (rank, c) in children.0.iter_mut().enumerate() {
        loop {
            match c.try_wait() {
                Ok(Some(s)) if s.success() => break,
                Ok(Some(s)) => {
                    return Err(Error::RankFailed {
                        rank,
                        status: s.to_string(),
                    });
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    return Err(Error::RankFailed {
                        rank,
                        status: "did not exit".into(),
                    });
                }
                Err(e) => return Err(Error::io(format!("wait for rank {rank}"), e)),
            }
        }
    }
    Ok(rows)
}
