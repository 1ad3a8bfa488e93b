//! `vigil bench feature-cache`: the training step of a frozen EfficientNet-B0
//! with a trainable head, with the tower computed every step and on cached
//! features; prints both and the speed-up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_trainer::bench::CacheBenchOptions;

/// Arguments of `vigil bench feature-cache`.
#[derive(Debug, Args)]
pub struct FeatureCacheArgs {
    /// EfficientNet-B0 `.pth`; default: the pretrained cache's when present, else
    /// the architecture with random weights (the values do not change the timing).
    #[arg(long, value_name = "PTH")]
    image_encoder: Option<PathBuf>,
    /// Rows per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Image side (the tower's input).
    #[arg(long, default_value_t = 224)]
    image_size: u32,
    /// Timed steps with the tower computed every step.
    #[arg(long, default_value_t = 3)]
    computed_steps: usize,
    /// Timed steps on cached features.
    #[arg(long, default_value_t = 30)]
    cached_steps: usize,
}

/// The pretrained cache's EfficientNet-B0 `.pth`, when fetched.
pub(super) fn default_efficientnet() -> Option<PathBuf> {
    let root = vigil_model::pretrained_cache()?;
    let pth = root.join("efficientnet-b0/best_efficientnet_b0.pth");
    pth.is_file().then_some(pth)
}

/// Runs the benchmark.
pub fn run(a: FeatureCacheArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    if a.batch == 0 || a.image_size < 32 {
        anyhow::bail!("--batch must be at least 1 and --image-size at least 32");
    }
    let opts = CacheBenchOptions {
        image_encoder: a.image_encoder.or_else(default_efficientnet),
        batch: a.batch,
        image_size: a.image_size,
        computed_steps: a.computed_steps,
        cached_steps: a.cached_steps,
    };
    println!(
        "vigil bench feature-cache: {} (flex backend; median of timed steps after one warmup)",
        opts.image_encoder
            .as_ref()
            .map_or("random weights".to_string(), |p| p.display().to_string())
    );
    let report = vigil_trainer::cpu::cache_bench(&opts)?;
    println!("{}", report.render(&opts));
    Ok(ExitCode::SUCCESS)
}
