//! Stand-alone all-reduce benchmark: re-executes itself as the rank processes.
//!
//! ```text
//! cargo run --release -p vigil-collective --example allreduce_bench -- \
//!     --nproc 2 --transport shm --sizes 1M,16M,64M --iters 20 [--json] [--copy]
//! ```

use std::process::{Command, ExitCode};

use vigil_collective::bench::{self, BenchOptions};

fn parse(args: &[String]) -> Result<BenchOptions, String> {
    let mut o = BenchOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--nproc" => o.nproc = val("--nproc")?.parse().map_err(|_| "bad --nproc")?,
            "--transport" => o.transport = val("--transport")?,
            "--sizes" => {
                o.sizes = bench::parse_sizes(&val("--sizes")?).map_err(|e| e.to_string())?
            }
            "--iters" => o.iters = val("--iters")?.parse().map_err(|_| "bad --iters")?,
            "--warmup" => o.warmup = val("--warmup")?.parse().map_err(|_| "bad --warmup")?,
            "--json" => o.json = true,
            "--copy" => o.copy = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    if std::env::var_os(bench::OPTS_ENV).is_some() {
        return match bench::run_rank_from_env() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rank failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let spawn = |_rank: usize, _env: &[(String, String)]| Command::new(&exe);
    match bench::run_parent(&opts, spawn, &mut std::io::stdout()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
