//! `vigil bench …`: benchmarks that print measured figures (never assertions).
//!
//! A subcommand group so further benchmarks (`vigil bench allreduce`) sit beside
//! `train`. `vigil bench train` times forward + backward + AdamW of the MiniLM
//! text tower; `benches/minilm_step.py` is the same step in PyTorch for a
//! side-by-side ratio.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use vigil_trainer::bench::{BenchOptimizer, TrainBenchOptions, TrainBenchReport};

/// Arguments of `vigil bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Training step (forward + backward + AdamW) of the MiniLM text tower on CPU.
    Train(TrainArgs),
    /// All-reduce bandwidth across N local ranks (nccl-tests style: algbw, busbw).
    Allreduce(AllreduceArgs),
    /// Training step of a frozen image tower + head: computed every step vs cached features.
    FeatureCache(super::bench_cache::FeatureCacheArgs),
    /// EfficientNet-B0 on one thread: frozen forward ms/image and training step images/s.
    Image(super::bench_image::ImageArgs),
    /// XLM-R-base and ViT-B/16 fine-tuning steps and a CLIP-ViT-B/32 image forward, one thread.
    Encoders(super::bench_encoders::EncodersArgs),
    /// `vigil serve` throughput and p50/p99 at concurrency 1 and 16, batching on and off.
    Serve(super::bench_serve::ServeBenchArgs),
    /// HNSW index (`vigil index`'s graph) on .npy vectors: build time, memory, queries/s, recall@k.
    Recall(super::bench_recall::RecallBenchArgs),
    /// Internal: one rank of `vigil bench allreduce`.
    #[command(name = "__allreduce-rank", hide = true)]
    AllreduceRank,
}

/// Arguments of `vigil bench allreduce`.
#[derive(Debug, Args)]
struct AllreduceArgs {
    /// Local rank processes.
    #[arg(long, default_value_t = 2)]
    nproc: usize,
    /// `auto`, `tcp` or `shm` (`hier` with several simulated nodes).
    #[arg(long, default_value = "auto")]
    transport: String,
    /// Buffer sizes in bytes (`K`, `M`, `G` suffixes: powers of 2).
    #[arg(long, default_value = "1M,16M,64M")]
    sizes: String,
    /// Timed iterations per size.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Untimed iterations per size.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Copy the caller's buffer into shared memory each time (shm's copying path)
    /// instead of reducing buffers that live in the shared mapping.
    #[arg(long)]
    copy: bool,
    /// One JSON object per size instead of the table.
    #[arg(long)]
    json: bool,
}

fn allreduce(a: AllreduceArgs) -> anyhow::Result<ExitCode> {
    use vigil_collective::bench::{self, BenchOptions};
    let opts = BenchOptions {
        nproc: a.nproc,
        transport: a.transport,
        sizes: bench::parse_sizes(&a.sizes).map_err(|e| BenchUsageError(e.to_string()))?,
        iters: a.iters,
        warmup: a.warmup,
        json: a.json,
        copy: a.copy,
        ..BenchOptions::default()
    };
    let exe = std::env::current_exe()?;
    let spawn = |_rank: usize, _env: &[(String, String)]| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "__allreduce-rank"]);
        cmd
    };
    let rows = bench::run_parent(&opts, spawn, &mut std::io::stdout())?;
    let wrong: u64 = rows.iter().map(|r| r.wrong).sum();
    Ok(if wrong == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A bad `vigil bench` argument (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchUsageError(pub(super) String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CpuKind {
    /// burn's Flex backend (the default).
    Flex,
    /// burn's ndarray backend (a build with `--features bench-ndarray`).
    Ndarray,
    /// Both, one after the other.
    Both,
}

/// Arguments of `vigil bench train`.
#[derive(Debug, Args)]
struct TrainArgs {
    /// Hugging Face text encoder directory; default: the pretrained cache's
    /// all-minilm-l6-v2 when present, else MiniLM's shape with random weights.
    #[arg(long, value_name = "DIR")]
    text_encoder: Option<PathBuf>,
    /// Rows per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Tokens per row (25% of them padding on average).
    #[arg(long, default_value_t = 64)]
    seq: usize,
    /// Untimed steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// CPU backend(s) to measure.
    #[arg(long, value_enum, default_value_t = CpuKind::Flex)]
    backend: CpuKind,
    /// AdamW implementation: the trainer's flat one (what `vigil worker` runs) or
    /// burn-optim's.
    #[arg(long, value_enum, default_value_t = OptimKind::Flat)]
    optim: OptimKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptimKind {
    /// The trainer's flat AdamW (gradients copied out, weights written back).
    Flat,
    /// burn-optim's AdamW.
    Burn,
}

/// Runs a benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Train(a) => train(a),
        BenchCommand::Allreduce(a) => allreduce(a),
        BenchCommand::FeatureCache(a) => super::bench_cache::run(a),
        BenchCommand::Image(a) => super::bench_image::run(a),
        BenchCommand::Encoders(a) => super::bench_encoders::run(a),
        BenchCommand::Serve(a) => super::bench_serve::run(a),
        BenchCommand::Recall(a) => super::bench_recall::run(a),
        BenchCommand::AllreduceRank => {
            vigil_collective::bench::run_rank_from_env()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn default_minilm() -> Option<PathBuf> {
    let root = vigil_model::pretrained_cache()?;
    let dir = root.join("all-minilm-l6-v2");
    dir.join("model.safetensors").is_file().then_some(dir)
}

fn train(a: TrainArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    if a.seq < 40 || a.batch == 0 || a.steps == 0 {
        anyhow::bail!("--seq must be at least 40, --batch and --steps at least 1");
    }
    #[cfg(not(feature = "bench-ndarray"))]
    if a.backend != CpuKind::Flex {
        return Err(BenchUsageError(
            "--backend ndarray|both: this vigil was built without burn's ndarray backend; \
             rebuild with `cargo build --release -p vigil-launcher --features bench-ndarray`"
                .to_string(),
        )
        .into());
    }
    let text_encoder = a.text_encoder.or_else(default_minilm);
    let opts = TrainBenchOptions {
        text_encoder: text_encoder.clone(),
        batch: a.batch,
        seq: a.seq,
        warmup: a.warmup,
        steps: a.steps,
        optimizer: match a.optim {
            OptimKind::Flat => BenchOptimizer::Flat,
            OptimKind::Burn => BenchOptimizer::Burn,
        },
    };
    println!(
        "vigil bench train: MiniLM-L6 text tower ({}), batch {} x seq {} (25% padding), \
         mean pooling, 5-label BCE head, {} AdamW, 1 thread, {} timed steps after {} warmup",
        text_encoder
            .as_ref()
            .map_or("random weights".to_string(), |d| d.display().to_string()),
        a.batch,
        a.seq,
        match a.optim {
            OptimKind::Flat => "flat (trainer's)",
            OptimKind::Burn => "burn-optim",
        },
        a.steps,
        a.warmup
    );
    println!(
        "{:<8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11} {:>10}",
        "backend", "params", "fwd ms", "bwd ms", "adamw ms", "step ms", "median ms", "samples/s"
    );
    let print = |name: &str, r: &TrainBenchReport| {
        println!(
            "{:<8} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11.1} {:>10.2}",
            name,
            r.params,
            r.forward_ms,
            r.backward_ms,
            r.optim_ms,
            r.step_ms,
            r.median_step_ms,
            r.samples_per_s
        );
    };
    if matches!(a.backend, CpuKind::Flex | CpuKind::Both) {
        let r = vigil_trainer::cpu::train_step_bench(&opts)?;
        print("flex", &r);
    }
    #[cfg(feature = "bench-ndarray")]
    if matches!(a.backend, CpuKind::Ndarray | CpuKind::Both) {
        let r = vigil_trainer::cpu::train_step_bench_ndarray(&opts)?;
        print("ndarray", &r);
    }
    Ok(ExitCode::SUCCESS)
}
