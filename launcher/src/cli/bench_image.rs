//! `vigil bench image`: EfficientNet-B0's frozen forward (ms/image at each
//! `--sizes` side) and its whole-tower training step (images/s), one thread;
//! `benches/efficientnet_step.py` prints the same rows for PyTorch eager.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_trainer::bench::ImageBenchOptions;

use super::bench::BenchUsageError;

/// Arguments of `vigil bench image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// EfficientNet-B0 `.pth`; default: the pretrained cache's when present, else
    /// the architecture with random weights (the values do not change the timing).
    #[arg(long, value_name = "PTH")]
    image_encoder: Option<PathBuf>,
    /// Images per forward and per training step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Image sides of the frozen-forward rows, comma-separated.
    #[arg(long, default_value = "160,224", value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Image side of the training-step row (0: no training row).
    #[arg(long, default_value_t = 224)]
    train_size: usize,
    /// Timed forward rounds per size (after one untimed).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Timed training steps (after one untimed).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// burn's generic ops instead of Vigil's EfficientNet kernels (the path before
    /// them), for before/after figures from one binary.
    #[arg(long)]
    generic: bool,
}

/// Runs the benchmark.
pub fn run(a: ImageArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    vigil_model::kernels::use_generic_ops(a.generic);
    if a.batch == 0
        || a.sizes
            .iter()
            .chain([&a.train_size])
            .any(|&s| s != 0 && s < 32)
    {
        return Err(BenchUsageError(
            "--batch must be at least 1 and every image side at least 32".to_string(),
        )
        .into());
    }
    let opts = ImageBenchOptions {
        image_encoder: a
            .image_encoder
            .or_else(super::bench_cache::default_efficientnet),
        batch: a.batch,
        sizes: a.sizes.into_iter().filter(|&s| s != 0).collect(),
        train_size: (a.train_size != 0).then_some(a.train_size),
        rounds: a.rounds,
        steps: a.steps,
    };
    println!(
        "vigil bench image: EfficientNet-B0 ({}), batch {}, flex backend{}, 1 thread, \
         medians after one untimed round",
        opts.image_encoder
            .as_ref()
            .map_or("random weights".to_string(), |p| p.display().to_string()),
        opts.batch,
        if a.generic {
            " (burn's generic ops)"
        } else {
            ""
        },
    );
    for row in vigil_trainer::cpu::image_bench(&opts)? {
        println!("{}", row.render());
    }
    Ok(ExitCode::SUCCESS)
}
