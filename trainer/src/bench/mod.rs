//! Benchmarks behind `vigil bench`: measured figures, never assertions.
//!
//! # Layout
//! - `train_step.rs`: `vigil bench train` — forward + backward + AdamW of the
//!   MiniLM text tower, the comparison point with PyTorch eager.
//! - `image_tower.rs`: `vigil bench image` — EfficientNet-B0's frozen forward and
//!   training step, the comparison point with `benches/efficientnet_step.py`.
//! - `encoders.rs`: `vigil bench encoders` — fine-tuning steps of XLM-R-base- and
//!   ViT-B/16-shaped towers and a CLIP-ViT-B/32 image forward, the comparison point
//!   with `benches/encoder_steps.py`.
//! - `feature_cache.rs`: `vigil bench feature-cache` — a frozen image tower's
//!   training step computed every step vs on cached features.
//!
//! Why a top-level module: a benchmark of the training step uses both the model
//! and the training loop's flat AdamW, so it sits above both instead of making
//! `model` import `train`.

pub mod encoders;
pub mod feature_cache;
pub mod image_tower;
pub mod train_step;

pub use encoders::{
    EncoderBenchOptions, EncoderBenchRow, EncoderModel, EncoderShapes, OptimSplit, encoder_bench,
    encoder_bench_cpu, xlmr_trainable,
};
pub use feature_cache::{CacheBenchOptions, CacheBenchReport, cache_bench};
pub use image_tower::{ImageBenchOptions, ImageBenchRow, image_bench};
pub use train_step::{
    BenchOptimizer, TrainBenchOptions, TrainBenchReport, bench_padding, minilm_config,
    train_step_bench,
};
