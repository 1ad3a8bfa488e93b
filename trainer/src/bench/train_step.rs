//! The training-step benchmark behind `vigil bench train`: forward + backward +
//! AdamW of the MiniLM text tower, the comparison point with PyTorch eager
//! (`benches/minilm_step.py` builds the same model and batch).
//!
//! The model is the text tower (all parameters trainable, mean pooling, dropout
//! 0.1) plus a linear head to 5 labels with BCE; the batch is `batch` rows of
//! `seq` tokens where row `r` ends in `[0, 8, 16, 24, 32, 24, 16, 8][r % 8]`
//! padding tokens scaled to `seq` (25 % padding on average). Weights come from a
//! Hugging Face directory when given (the values do not change the timing), else
//! MiniLM's architecture with random weights.
//!
//! The optimizer is the trainer's own by default ([`BenchOptimizer::Flat`]: copy
//! the gradients into one flat vector, the flat AdamW of `train::adamw`, write the
//! parameters back — what `vigil worker` runs each step), or burn's `AdamW`
//! ([`BenchOptimizer::Burn`]). Both are PyTorch's AdamW (decoupled weight decay
//! 0.01 on every parameter, like the PyTorch script's single group).

use std::path::PathBuf;
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::train::{
    AdamWConfig as FlatAdamWConfig, FlatAdamW, ParamGroup, ParamLayout, read_grads, read_params,
    write_params,
};
use vigil_config::{Pooling, Task};
use vigil_model::{BertConfig, ModelError, Targets, TextTower, masked_loss};

/// Which AdamW takes the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchOptimizer {
    /// The trainer's flat AdamW (gradients copied out, parameters written back).
    Flat,
    /// burn-optim's `AdamW` on the module.
    Burn,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct TrainBenchOptions {
    /// Hugging Face directory of the text encoder; None: MiniLM-L6 shape, random weights.
    pub text_encoder: Option<PathBuf>,
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// The optimizer.
    pub optimizer: BenchOptimizer,
}

/// Measured figures, milliseconds per step.
#[derive(Debug, Clone)]
pub struct TrainBenchReport {
    /// Trainable parameters.
    pub params: usize,
    /// Mean forward time.
    pub forward_ms: f64,
    /// Mean backward time.
    pub backward_ms: f64,
    /// Mean optimizer time.
    pub optim_ms: f64,
    /// Mean whole-step time.
    pub step_ms: f64,
    /// Median whole-step time.
    pub median_step_ms: f64,
    /// `batch / mean step time`.
    pub samples_per_s: f64,
}

#[derive(Module, Debug)]
struct StepModel<B: burn::tensor::backend::Backend> {
    tower: TextTower<B>,
    head: Linear<B>,
}

/// The MiniLM-L6-H384 architecture.
pub fn minilm_config() -> BertConfig {
    let mut c = BertConfig::scratch(30522, 384, 6, 12, 512);
    c.intermediate_size = 1536;
    c
}

/// Padding tokens of row `r` for a sequence of `seq` (25 % on average).
pub fn bench_padding(r: usize, seq: usize) -> usize {
    [0, 8, 16, 24, 32, 24, 16, 8][r % 8] * seq / 64
}

/// Runs the benchmark on the autodiff backend `B`.
pub fn train_step_bench<B: AutodiffBackend>(
    opts: &TrainBenchOptions,
    device: &B::Device,
) -> Result<TrainBenchReport, ModelError> {
    B::seed(device, 0);
    let tower = match &opts.text_encoder {
        Some(dir) => TextTower::<B>::pretrained(dir, Pooling::Mean, device)?,
        None => TextTower::scratch(&minilm_config(), Pooling::Mean, device),
    };
    let hidden = tower.output_dim();
    let vocab = tower.backbone().vocab_size() as i64;
    let mut model = StepModel {
        tower,
        head: LinearConfig::new(hidden, 5).init(device),
    };
    let params = model.num_params();
    let (b, s) = (opts.batch, opts.seq);
    let mut ids = Vec::with_capacity(b * s);
    let mut mask = Vec::with_capacity(b * s);
    for r in 0..b {
        let real = s - bench_padding(r, s);
        for j in 0..s {
            let id = if j == 0 {
                101
            } else if j + 1 == real {
                102
            } else if j < real {
                1000 + ((r * 7919 + j * 104729) as i64 % (vocab - 1000))
            } else {
                0
            };
            ids.push(id);
            mask.push(if j < real { 1.0f32 } else { 0.0 });
        }
    }
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, s]), device);
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [b, s]), device);
    let labels: Vec<f32> = (0..b * 5)
        .map(|i| ((i * 37) % 3 == 0) as u8 as f32)
        .collect();
    let targets = Targets::<B>::from_vecs(&labels, &vec![true; b * 5], b, 5, device)?;
    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.01)
        .with_epsilon(1e-8)
        .init::<B, StepModel<B>>();
    let layout = ParamLayout::of(&model);
    let (mut flat_params, mut flat_grads) = (vec![0.0; layout.len], vec![0.0; layout.len]);
    read_params(&model, &layout, &mut flat_params);
    let mut flat = FlatAdamW::new(
        FlatAdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        vec![ParamGroup {
            start: 0,
            end: layout.len,
            lr: 2e-5,
            decay: true,
        }],
        layout.len,
    );

    let (mut fwd, mut bwd, mut opt, mut steps) = (0.0, 0.0, 0.0, Vec::new());
    for i in 0..opts.warmup + opts.steps {
        let t0 = Instant::now();
        let pooled = model.tower.forward(ids.clone(), mask.clone());
        let logits = model.head.forward(pooled);
        let loss = masked_loss(logits, &targets, Task::MultiLabel, &[]);
        // Flush the lazy graph so the forward time is the forward's.
        let _ = loss.clone().inner().into_data();
        let t1 = Instant::now();
        let grads = loss.backward();
        let t2 = match opts.optimizer {
            BenchOptimizer::Flat => {
                let t2 = Instant::now();
                read_grads(&model, &grads, &layout, &mut flat_grads);
                drop(grads);
                flat.update(&mut flat_params, &flat_grads, 1.0);
                model = write_params(model, &layout, &flat_params);
                t2
            }
            BenchOptimizer::Burn => {
                let grads = GradientsParams::from_grads(grads, &model);
                let t2 = Instant::now();
                model = optim.step(2e-5, model, grads);
                t2
            }
        };
        // Materialise one updated weight so the optimizer's work is done.
        let _ = model.head.weight.val().inner().into_data();
        let t3 = Instant::now();
        if i >= opts.warmup {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            opt += (t3 - t2).as_secs_f64();
            steps.push((t3 - t0).as_secs_f64());
        }
    }
    let _ = model.valid();
    let n = opts.steps.max(1) as f64;
    let step = steps.iter().sum::<f64>() / n;
    steps.sort_by(f64::total_cmp);
    let median = steps.get(steps.len() / 2).copied().unwrap_or(0.0);
    Ok(TrainBenchReport {
        params,
        forward_ms: fwd / n * 1e3,
        backward_ms: bwd / n * 1e3,
        optim_ms: opt / n * 1e3,
        step_ms: step * 1e3,
        median_step_ms: median * 1e3,
        samples_per_s: b as f64 / step,
    })
}
