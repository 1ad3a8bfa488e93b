//! `vigil bench image`: the EfficientNet-B0 image tower on one CPU thread, the
//! comparison point with PyTorch eager (`benches/efficientnet_step.py` builds the
//! same model, batch and step).
//!
//! Two kinds of rows:
//! - **frozen forward** at each `--sizes` side: the tower's forward on the plain
//!   (no-autodiff) backend, what the feature cache and `vigil embed` compute, in
//!   ms per image;
//! - **training step** at `--train-size`: the whole tower trainable (BatchNorm
//!   statistics frozen, as the trainer keeps them) plus a linear head to 5 labels,
//!   BCE, forward + backward + the trainer's flat AdamW (what `vigil worker` runs),
//!   in images per second.
//!
//! Pixels are a fixed pseudo-random pattern in `[-1, 1]`; the values do not change
//! the timing. Every figure is the median of its rounds after one untimed round.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use crate::train::{
    AdamWConfig as FlatAdamWConfig, FlatAdamW, ParamGroup, ParamLayout, read_grads, read_params,
    write_params,
};
use vigil_config::Task;
use vigil_model::{EFFICIENTNET_B0_DIM, EfficientNetB0, ModelError, Targets, masked_loss};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ImageBenchOptions {
    /// EfficientNet-B0 `.pth`; None: the architecture with random weights.
    pub image_encoder: Option<PathBuf>,
    /// Images per forward / step.
    pub batch: usize,
    /// Sides of the frozen-forward rows.
    pub sizes: Vec<usize>,
    /// Side of the training-step row; None: no training row.
    pub train_size: Option<usize>,
    /// Timed forward rounds per size.
    pub rounds: usize,
    /// Timed training steps.
    pub steps: usize,
}

/// One measured row.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageBenchRow {
    /// Frozen forward at `size` px.
    Forward {
        /// Image side.
        size: usize,
        /// Median ms per image.
        ms_per_image: f64,
    },
    /// Training step at `size` px.
    Train {
        /// Image side.
        size: usize,
        /// Median forward ms per step.
        forward_ms: f64,
        /// Median backward ms per step.
        backward_ms: f64,
        /// Median AdamW ms per step.
        optim_ms: f64,
        /// Median whole-step ms.
        step_ms: f64,
        /// `batch / step`.
        images_per_s: f64,
    },
}

impl ImageBenchRow {
    /// The row as one console line; `benches/efficientnet_step.py` prints the same.
    pub fn render(&self) -> String {
        match self {
            Self::Forward { size, ms_per_image } => {
                format!("frozen forward {size} px: {ms_per_image:>8.2} ms/image")
            }
            Self::Train {
                size,
                forward_ms,
                backward_ms,
                optim_ms,
                step_ms,
                images_per_s,
            } => format!(
                "training step {size} px: {images_per_s:>8.2} images/s \
                 (step {step_ms:.0} ms: forward {forward_ms:.0}, backward {backward_ms:.0}, \
                 adamw {optim_ms:.0})"
            ),
        }
    }
}

/// The tower plus the 5-label head the training row trains.
#[derive(Module, Debug)]
struct StepModel<B: Backend> {
    tower: EfficientNetB0<B>,
    head: Linear<B>,
}

fn pixels<B: Backend>(batch: usize, side: usize, device: &B::Device) -> Tensor<B, 4> {
    let values: Vec<f32> = (0..batch * 3 * side * side)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, 3, side, side]), device)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark: the forward rows on `B::InnerBackend`, the training row on `B`.
pub fn image_bench<B: AutodiffBackend>(
    opts: &ImageBenchOptions,
    device: &B::Device,
) -> Result<Vec<ImageBenchRow>, ModelError> {
    B::seed(device, 0);
    let tower = match &opts.image_encoder {
        Some(p) => EfficientNetB0::<B>::from_pth(p, device)?,
        None => EfficientNetB0::<B>::new(device),
    };
    let b = opts.batch.max(1);
    let mut rows = Vec::new();
    let frozen = tower.valid();
    for &side in &opts.sizes {
        let x = pixels::<B::InnerBackend>(b, side, device);
        let mut times = Vec::new();
        for i in 0..=opts.rounds.max(1) {
            let t = Instant::now();
            let _ = frozen.forward(x.clone()).into_data();
            if i > 0 {
                times.push(t.elapsed().as_secs_f64() * 1e3 / b as f64);
            }
        }
        rows.push(ImageBenchRow::Forward {
            size: side,
            ms_per_image: median(times),
        });
    }
    drop(frozen);
    if let Some(side) = opts.train_size {
        rows.push(train_row(tower, b, side, opts.steps.max(1), device)?);
    }
    Ok(rows)
}

fn train_row<B: AutodiffBackend>(
    tower: EfficientNetB0<B>,
    b: usize,
    side: usize,
    steps: usize,
    device: &B::Device,
) -> Result<ImageBenchRow, ModelError> {
    let mut model = StepModel {
        tower,
        head: LinearConfig::new(EFFICIENTNET_B0_DIM, 5).init(device),
    };
    let x = pixels::<B>(b, side, device);
    let labels: Vec<f32> = (0..b * 5)
        .map(|i| ((i * 37) % 3 == 0) as u8 as f32)
        .collect();
    let targets = Targets::<B>::from_vecs(&labels, &vec![true; b * 5], b, 5, device)?;
    let layout = ParamLayout::of(&model);
    let (mut params, mut grads_flat) = (vec![0.0; layout.len], vec![0.0; layout.len]);
    read_params(&model, &layout, &mut params);
    let mut adamw = FlatAdamW::new(
        FlatAdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        vec![ParamGroup {
            start: 0,
            end: layout.len,
            lr: 1e-4,
            decay: true,
        }],
        layout.len,
    );
    let (mut fwd, mut bwd, mut opt, mut step) = (vec![], vec![], vec![], vec![]);
    for i in 0..=steps {
        let t0 = Instant::now();
        let logits = model.head.forward(model.tower.forward(x.clone()));
        let loss = masked_loss(logits, &targets, Task::MultiLabel, &[]);
        let _ = loss.clone().inner().into_data();
        let t1 = Instant::now();
        let grads = loss.backward();
        let t2 = Instant::now();
        read_grads(&model, &grads, &layout, &mut grads_flat);
        drop(grads);
        adamw.update(&mut params, &grads_flat, 1.0);
        model = write_params(model, &layout, &params);
        let _ = model.head.weight.val().inner().into_data();
        let t3 = Instant::now();
        if i > 0 {
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
            opt.push((t3 - t2).as_secs_f64() * 1e3);
            step.push((t3 - t0).as_secs_f64() * 1e3);
        }
    }
    let step_ms = median(step);
    Ok(ImageBenchRow::Train {
        size: side,
        forward_ms: median(fwd),
        backward_ms: median(bwd),
        optim_ms: median(opt),
        step_ms,
        images_per_s: b as f64 * 1e3 / step_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::backend::CpuAutodiff;

    #[test]
    fn tiny_run_gives_every_row() {
        let opts = ImageBenchOptions {
            image_encoder: None,
            batch: 1,
            sizes: vec![32],
            train_size: Some(32),
            rounds: 1,
            steps: 1,
        };
        let rows = image_bench::<CpuAutodiff>(&opts, &Default::default()).expect("bench runs");
        assert_eq!(rows.len(), 2);
        assert!(
            matches!(rows[0], ImageBenchRow::Forward { size: 32, ms_per_image } if ms_per_image > 0.0)
        );
        match &rows[1] {
            ImageBenchRow::Train { images_per_s, .. } => assert!(*images_per_s > 0.0),
            other => panic!("not a training row: {other:?}"),
        }
        assert!(rows[0].render().starts_with("frozen forward 32 px:"));
    }
}
