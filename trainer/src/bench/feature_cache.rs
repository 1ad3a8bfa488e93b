//! `vigil bench feature-cache`: what the frozen-tower feature cache buys, measured
//! on the case it is for — a frozen EfficientNet-B0 image tower with a trainable
//! fusion and head.
//!
//! The same training step (forward, backward, AdamW on the head) is timed twice:
//! with the tower computed from pixels every step, as without the cache, and on
//! the tower's features computed beforehand, as with it. The one-time cost of the
//! cache (the tower's forward per image) is reported too, so the speed-up and the
//! break-even point are both on the table.

use std::path::PathBuf;
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use vigil_config::{DataSection, ImageEncoder, ImageTower, ModelSection, TrainLayers};
use vigil_model::{ModelError, ModelInput, ModerationModel, Targets};

/// What to measure.
#[derive(Debug, Clone)]
pub struct CacheBenchOptions {
    /// EfficientNet-B0 `.pth`; None: the architecture with random weights.
    pub image_encoder: Option<PathBuf>,
    /// Rows per step.
    pub batch: usize,
    /// Image side.
    pub image_size: u32,
    /// Timed steps with the tower computed (each is slow).
    pub computed_steps: usize,
    /// Timed steps on cached features.
    pub cached_steps: usize,
}

/// Measured figures.
#[derive(Debug, Clone)]
pub struct CacheBenchReport {
    /// Trainable parameters (fusion and head).
    pub trainable: usize,
    /// Median step time with the tower computed every step.
    pub computed_step_ms: f64,
    /// Median step time on cached features.
    pub cached_step_ms: f64,
    /// Building the cache: the tower's forward, per image.
    pub build_ms_per_row: f64,
    /// `computed_step_ms / cached_step_ms`.
    pub speedup: f64,
}

impl CacheBenchReport {
    /// The figures as lines for the console.
    pub fn render(&self, opts: &CacheBenchOptions) -> String {
        let batch = opts.batch as f64;
        // Epochs after which caching (build once, then cheap steps) has paid for itself.
        let saved_per_row = (self.computed_step_ms - self.cached_step_ms) / batch;
        format!(
            "frozen EfficientNet-B0 + trainable head, batch {}, {}×{} images, {} trainable parameters\n\
             tower computed every step: {:>9.1} ms/step {:>8.1} samples/s\n\
             cached features:           {:>9.2} ms/step {:>8.1} samples/s\n\
             speed-up per step:         {:>9.1}×\n\
             cache build (once):        {:>9.1} ms/image; pays for itself after {:.2} epochs",
            opts.batch,
            opts.image_size,
            opts.image_size,
            self.trainable,
            self.computed_step_ms,
            batch * 1e3 / self.computed_step_ms,
            self.cached_step_ms,
            batch * 1e3 / self.cached_step_ms,
            self.speedup,
            self.build_ms_per_row,
            self.build_ms_per_row / saved_per_row.max(1e-9),
        )
    }
}

/// Runs the benchmark on the autodiff backend `B`.
pub fn cache_bench<B: AutodiffBackend>(
    opts: &CacheBenchOptions,
    device: &B::Device,
) -> Result<CacheBenchReport, ModelError> {
    B::seed(device, 0);
    let labels: Vec<String> = (0..5).map(|i| format!("label{i}")).collect();
    let model_cfg = ModelSection {
        labels: labels.clone(),
        image: Some(ImageTower {
            encoder: ImageEncoder::EfficientnetB0,
            path: opts
                .image_encoder
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            train_layers: TrainLayers::None,
            ..ImageTower::default()
        }),
        ..ModelSection::default()
    };
    let data_cfg = DataSection {
        image_size: opts.image_size,
        ..DataSection::default()
    };
    let model = ModerationModel::<B>::from_config(&model_cfg, &data_cfg, device)?.model;
    let trainable = vigil_model::trainable_params(&model)
        .iter()
        .map(|p| p.numel())
        .sum();
    let (b, side) = (opts.batch, opts.image_size as usize);
    let pixels: Vec<f32> = (0..b * 3 * side * side)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let present = vec![true; b];
    let targets_v: Vec<f32> = (0..b * 5)
        .map(|i| ((i * 37) % 3 == 0) as u8 as f32)
        .collect();
    let targets = Targets::<B>::from_vecs(&targets_v, &vec![true; b * 5], b, 5, device)?;
    let raw = ModelInput::<B>::from_vecs(None, &[], &pixels, &present, side, device)?;

    // The cache's one-time cost: the tower's forward, as the worker builds it.
    let t = Instant::now();
    let feats = model
        .embed(&raw)
        .image
        .ok_or_else(|| ModelError::batch("no image tower"))?;
    let dim = feats.dims()[1];
    let feats: Vec<f32> = feats
        .into_data()
        .convert::<f32>()
        .into_vec()
        .map_err(|_| ModelError::batch("features are not f32"))?;
    let build_ms_per_row = t.elapsed().as_secs_f64() * 1e3 / b as f64;
    let cached = ModelInput::<B>::from_vecs(None, &[], &[], &present, side, device)?
        .with_image_features(feats, dim, &present, device)?;

    let mut optim = AdamWConfig::new().init::<B, ModerationModel<B>>();
    let (model, computed_step_ms) = median_step_ms(
        model,
        &raw,
        &targets,
        &mut optim,
        opts.computed_steps.max(1),
    );
    let (_, cached_step_ms) = median_step_ms(
        model,
        &cached,
        &targets,
        &mut optim,
        opts.cached_steps.max(1),
    );
    Ok(CacheBenchReport {
        trainable,
        computed_step_ms,
        cached_step_ms,
        build_ms_per_row,
        speedup: computed_step_ms / cached_step_ms,
    })
}

/// Median time of `steps` training steps (forward, backward, AdamW) on `input`,
/// after one untimed step; returns the trained model too.
fn median_step_ms<B: AutodiffBackend, O: Optimizer<ModerationModel<B>, B>>(
    mut model: ModerationModel<B>,
    input: &ModelInput<B>,
    targets: &Targets<B>,
    optim: &mut O,
    steps: usize,
) -> (ModerationModel<B>, f64) {
    let mut times = Vec::with_capacity(steps);
    for i in 0..=steps {
        let t0 = Instant::now();
        let loss = model.loss(model.forward(input), targets);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        let _ = model.head.layers[0].weight.val().into_data();
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    (model, median)
}
