//! `vigil bench encoders`: base-sized transformer towers on one CPU thread, the
//! comparison point with PyTorch eager (`benches/encoder_steps.py` builds the same
//! models, batches, heads and steps with transformers).
//!
//! Three kinds of rows, random weights at the real shapes (the values do not
//! change the timing):
//! - **XLM-R-base fine-tuning step** (`xlmr`): `XLMRobertaModel`'s shape (250 002 ×
//!   768 word embeddings, 12 blocks of 768 / 3072, 12 heads), all parameters
//!   trainable, dropout 0.1 (train mode, both sides), mean pooling, a linear head
//!   to 5 labels, BCE, forward + backward + the trainer's flat AdamW (gradients
//!   copied out, the update, weights written back: what `vigil worker` runs on the
//!   CPU). The batch is `batch` rows of `seq` tokens with `vigil bench train`'s
//!   padding (25 % on average). With `freeze_embeddings` a second row freezes the
//!   embeddings (what `train_layers: top:k` does below the top blocks), which
//!   removes the 192 M-element word-embedding matrix from the backward, the
//!   optimizer and the all-reduce;
//! - **ViT-B/16 fine-tuning step** (`vit`): `ViTModel`'s shape (224 px, 16 px
//!   patches, 197 tokens, exact GELU, dropout 0 as in `ViTConfig`), the final
//!   LayerNorm's CLS state, a linear head to 5 labels, BCE, the same AdamW;
//! - **CLIP-ViT-B/32 image forward** (`clip-image`): `CLIPVisionModelWithProjection`'s
//!   shape (224 px, 32 px patches, 50 tokens, quick GELU, pre-LayerNorm, projection
//!   to 512) on the plain (no-autodiff) backend: what `vigil embed` computes.
//!
//! Every figure is the median of `rounds` timed steps after one untimed step; each
//! phase's median is taken on its own, so the phases need not add up to the step.
//! The XLM-R rows also time the AdamW update of the embeddings alone (the flat
//! vector's embedding range, updated separately with the same arithmetic), the
//! embedding matrix's share of the optimizer.

use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};

use super::train_step::bench_padding;
use crate::train::{
    AdamWConfig as FlatAdamWConfig, FlatAdamW, ParamGroup, ParamLayout, read_grads, read_params,
    write_params,
};
use vigil_config::{Pooling, Task};
use vigil_model::vision::{Activation, VisionKind, VisionTransformer, VitConfig};
use vigil_model::{BertConfig, ModelError, Targets, TextEncoderConfig, TextTower, masked_loss};

/// Labels of the benchmark heads.
const LABELS: usize = 5;

/// One model of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderModel {
    /// XLM-R-base fine-tuning step.
    Xlmr,
    /// ViT-B/16 fine-tuning step.
    Vit,
    /// CLIP-ViT-B/32 image forward.
    ClipImage,
}

impl EncoderModel {
    /// Every model, in the order the rows are printed.
    pub const ALL: [Self; 3] = [Self::Xlmr, Self::Vit, Self::ClipImage];

    /// Rows per step when `--batch` is not given: sized so one run of all three
    /// stays within a few minutes on one core (see the book's performance page).
    pub fn default_batch(self) -> usize {
        match self {
            Self::Xlmr => 8,
            Self::Vit => 8,
            Self::ClipImage => 16,
        }
    }
}

/// The architectures measured; [`Default`] is the real base shapes, tests use tiny ones.
#[derive(Debug, Clone)]
pub struct EncoderShapes {
    /// The XLM-R text encoder.
    pub xlmr: BertConfig,
    /// The ViT image tower.
    pub vit: VitConfig,
    /// The CLIP image tower (with its projection).
    pub clip: VitConfig,
}

impl Default for EncoderShapes {
    fn default() -> Self {
        Self {
            xlmr: xlmr_base_config(),
            vit: vit_b16_config(),
            clip: clip_b32_config(),
        }
    }
}

/// `FacebookAI/xlm-roberta-base`'s architecture (`XLMRobertaConfig`).
pub fn xlmr_base_config() -> BertConfig {
    BertConfig {
        vocab_size: 250_002,
        hidden_size: 768,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        intermediate_size: 3072,
        max_position_embeddings: 514,
        type_vocab_size: 1,
        layer_norm_eps: 1e-5,
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
        hidden_act: "gelu".into(),
        position_embedding_type: "absolute".into(),
        position_offset: 2,
    }
}

/// `google/vit-base-patch16-224`'s architecture (`ViTConfig` defaults).
pub fn vit_b16_config() -> VitConfig {
    VitConfig {
        kind: VisionKind::Vit,
        hidden_size: 768,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        intermediate_size: 3072,
        image_size: 224,
        patch_size: 16,
        num_channels: 3,
        layer_norm_eps: 1e-12,
        hidden_act: Activation::Gelu,
        qkv_bias: true,
        hidden_dropout: 0.0,
        attention_dropout: 0.0,
        use_head: false,
        projection_dim: None,
    }
}

/// `openai/clip-vit-base-patch32`'s image tower with its projection
/// (`CLIPVisionModelWithProjection`).
pub fn clip_b32_config() -> VitConfig {
    VitConfig {
        kind: VisionKind::Clip,
        hidden_size: 768,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        intermediate_size: 3072,
        image_size: 224,
        patch_size: 32,
        num_channels: 3,
        layer_norm_eps: 1e-5,
        hidden_act: Activation::QuickGelu,
        qkv_bias: true,
        hidden_dropout: 0.0,
        attention_dropout: 0.0,
        use_head: false,
        projection_dim: Some(512),
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct EncoderBenchOptions {
    /// Models, in order.
    pub models: Vec<EncoderModel>,
    /// Rows per step for every model; None: each model's [`EncoderModel::default_batch`].
    pub batch: Option<usize>,
    /// Tokens per XLM-R row (25 % of them padding on average).
    pub seq: usize,
    /// Timed steps per row (after one untimed).
    pub rounds: usize,
    /// Also time the XLM-R step with the embeddings frozen.
    pub freeze_embeddings: bool,
    /// The architectures.
    pub shapes: EncoderShapes,
}

/// One measured row; medians in milliseconds per step.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderBenchRow {
    /// What the row measures (`xlmr-base step`, ...); the PyTorch script prints the same.
    pub label: String,
    /// Rows (images) per step.
    pub batch: usize,
    /// Tokens per row (XLM-R: with padding; ViT / CLIP: patches + CLS).
    pub tokens: usize,
    /// Trainable parameters (0 for a forward row): the all-reduce sends them, `× 4`
    /// bytes, every step.
    pub trainable: usize,
    /// Forward (loss included).
    pub forward_ms: f64,
    /// Backward; None for a forward row.
    pub backward_ms: Option<f64>,
    /// The optimizer after the backward (copy-out, update, write-back); None for a
    /// forward row.
    pub adamw_ms: Option<f64>,
    /// The AdamW update of the embedding parameters alone (XLM-R, trainable
    /// embeddings only).
    pub emb_adamw_ms: Option<f64>,
    /// The whole step.
    pub step_ms: f64,
    /// Vigil only: the optimizer's parts (gradients copied out, update, weights
    /// written back).
    pub optim_split: Option<OptimSplit>,
}

/// The trainer's flat optimizer step in three parts, medians in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimSplit {
    /// Gradients copied into the flat vector (what the all-reduce sends).
    pub grads_out_ms: f64,
    /// The AdamW arithmetic on the flat vectors.
    pub update_ms: f64,
    /// Updated weights written back into the module.
    pub write_back_ms: f64,
}

impl EncoderBenchRow {
    /// Bytes the gradient all-reduce moves per step (`f32` gradients of every
    /// trainable parameter).
    pub fn allreduce_bytes(&self) -> usize {
        self.trainable * 4
    }

    /// The header line of the table; `benches/encoder_steps.py` prints the same.
    pub fn header() -> String {
        format!(
            "{:<30} {:>5} {:>6} {:>11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "row",
            "batch",
            "tokens",
            "trainable",
            "a-r MB",
            "fwd ms",
            "bwd ms",
            "adamw ms",
            "emb ms",
            "step ms"
        )
    }

    /// The row as one table line; `benches/encoder_steps.py` prints the same.
    pub fn render(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
        let (trainable, mb) = if self.trainable == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (
                self.trainable.to_string(),
                format!("{:.1}", self.allreduce_bytes() as f64 / 1e6),
            )
        };
        format!(
            "{:<30} {:>5} {:>6} {:>11} {:>9} {:>8.0} {:>8} {:>8} {:>8} {:>8.0}",
            self.label,
            self.batch,
            self.tokens,
            trainable,
            mb,
            self.forward_ms,
            opt(self.backward_ms),
            opt(self.adamw_ms),
            opt(self.emb_adamw_ms),
            self.step_ms
        )
    }

    /// Where the step's time goes, one line (Vigil's optimizer split included).
    pub fn render_split(&self) -> String {
        if self.backward_ms.is_none() {
            return format!("  {}: inference forward only", self.label);
        }
        let pct = |v: f64| 100.0 * v / self.step_ms.max(1e-9);
        let mut s = format!("  {}: forward {:.0}%", self.label, pct(self.forward_ms));
        if let (Some(b), Some(a)) = (self.backward_ms, self.adamw_ms) {
            s += &format!(", backward {:.0}%, adamw {:.0}%", pct(b), pct(a));
        }
        if let Some(o) = self.optim_split {
            s += &format!(
                "; adamw = grads out {:.0} + update {:.0} + weights back {:.0} ms",
                o.grads_out_ms, o.update_ms, o.write_back_ms
            );
        }
        if let (Some(e), Some(a)) = (self.emb_adamw_ms, self.adamw_ms) {
            s += &format!(
                "; embeddings' update {e:.0} ms = {:.0}% of adamw",
                100.0 * e / a.max(1e-9)
            );
        }
        s
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A fixed pseudo-random pixel pattern in `[-1, 1]` (`vigil bench image`'s).
fn pixels<B: Backend>(batch: usize, side: usize, device: &B::Device) -> Tensor<B, 4> {
    let values: Vec<f32> = (0..batch * 3 * side * side)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, 3, side, side]), device)
}

fn targets<B: Backend>(b: usize, device: &B::Device) -> Result<Targets<B>, ModelError> {
    let labels: Vec<f32> = (0..b * LABELS)
        .map(|i| ((i * 37) % 3 == 0) as u8 as f32)
        .collect();
    Targets::from_vecs(&labels, &vec![true; b * LABELS], b, LABELS, device)
}

/// XLM-R ids `[b, s]` and mask: `<s>` (0) first, `</s>` (2) last, padding (1)
/// after, `vigil bench train`'s padding per row.
fn xlmr_batch<B: Backend>(
    b: usize,
    s: usize,
    vocab: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
    let vocab = vocab as i64;
    let (mut ids, mut mask) = (Vec::with_capacity(b * s), Vec::with_capacity(b * s));
    for r in 0..b {
        let real = s - bench_padding(r, s);
        for j in 0..s {
            let id = if j == 0 {
                0
            } else if j + 1 == real {
                2
            } else if j < real {
                1000 + ((r * 7919 + j * 104729) as i64 % (vocab - 1000).max(1))
            } else {
                1
            };
            ids.push(id.min(vocab - 1));
            mask.push(if j < real { 1.0f32 } else { 0.0 });
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [b, s]), device),
        Tensor::from_data(TensorData::new(mask, [b, s]), device),
    )
}

#[derive(Module, Debug)]
struct TextStep<B: Backend> {
    tower: TextTower<B>,
    head: Linear<B>,
}

#[derive(Module, Debug)]
struct ImageStep<B: Backend> {
    tower: VisionTransformer<B>,
    head: Linear<B>,
}

fn freeze_embeddings<B: Backend>(mut tower: TextTower<B>) -> TextTower<B> {
    if let Some(m) = &mut tower.encoder {
        m.embeddings = m.embeddings.clone().no_grad();
    }
    tower
}

/// Medians of the timed steps of one training row.
struct StepTimes {
    forward_ms: f64,
    backward_ms: f64,
    adamw_ms: f64,
    emb_update_ms: Option<f64>,
    step_ms: f64,
    split: OptimSplit,
}

/// Times `rounds` training steps (after one untimed) of `model`: the forward to
/// the loss, the backward, and the trainer's flat AdamW. The first `emb_len`
/// elements of the flat vector (the embeddings, first in module order) are
/// updated separately so their share is timed; `probe` reads one updated weight
/// so the write-back is complete.
fn time_steps<B, M>(
    mut model: M,
    loss_of: impl Fn(&M) -> Tensor<B, 1>,
    probe: impl Fn(&M),
    emb_len: usize,
    lr: f64,
    rounds: usize,
) -> StepTimes
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let layout = ParamLayout::of(&model);
    let (mut params, mut grads_flat) = (vec![0.0; layout.len], vec![0.0; layout.len]);
    read_params(&model, &layout, &mut params);
    let emb_len = emb_len.min(layout.len);
    let config = FlatAdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let adamw = |len: usize| {
        FlatAdamW::new(
            config,
            vec![ParamGroup {
                start: 0,
                end: len,
                lr,
                decay: true,
            }],
            len,
        )
    };
    let (mut emb_opt, mut rest_opt) = (adamw(emb_len), adamw(layout.len - emb_len));
    let mut t: [Vec<f64>; 8] = Default::default();
    for i in 0..=rounds.max(1) {
        let t0 = Instant::now();
        let loss = loss_of(&model);
        // Flush so the forward time is the forward's.
        let _ = loss.clone().inner().into_data();
        let t1 = Instant::now();
        let grads = loss.backward();
        let t2 = Instant::now();
        read_grads(&model, &grads, &layout, &mut grads_flat);
        drop(grads);
        let t3 = Instant::now();
        let (p_emb, p_rest) = params.split_at_mut(emb_len);
        let (g_emb, g_rest) = grads_flat.split_at(emb_len);
        if emb_len > 0 {
            emb_opt.update(p_emb, g_emb, 1.0);
        }
        let t4 = Instant::now();
        rest_opt.update(p_rest, g_rest, 1.0);
        let t5 = Instant::now();
        model = write_params(model, &layout, &params);
        probe(&model);
        let t6 = Instant::now();
        if i > 0 {
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            for (v, x) in t.iter_mut().zip([
                ms(t0, t1),
                ms(t1, t2),
                ms(t2, t6),
                ms(t3, t4),
                ms(t0, t6),
                ms(t2, t3),
                ms(t3, t5),
                ms(t5, t6),
            ]) {
                v.push(x);
            }
        }
    }
    let _ = model.valid();
    let [fwd, bwd, adamw, emb, step, out, update, back] = t.map(median);
    StepTimes {
        forward_ms: fwd,
        backward_ms: bwd,
        adamw_ms: adamw,
        emb_update_ms: (emb_len > 0).then_some(emb),
        step_ms: step,
        split: OptimSplit {
            grads_out_ms: out,
            update_ms: update,
            write_back_ms: back,
        },
    }
}

fn train_row(
    label: &str,
    batch: usize,
    tokens: usize,
    trainable: usize,
    t: StepTimes,
) -> EncoderBenchRow {
    EncoderBenchRow {
        label: label.to_string(),
        batch,
        tokens,
        trainable,
        forward_ms: t.forward_ms,
        backward_ms: Some(t.backward_ms),
        adamw_ms: Some(t.adamw_ms),
        emb_adamw_ms: t.emb_update_ms,
        step_ms: t.step_ms,
        optim_split: Some(t.split),
    }
}

/// Elements of the leading run of trainable parameters whose path names the
/// embeddings (they come first in module order).
fn embedding_prefix(layout: &ParamLayout) -> usize {
    layout
        .slots
        .iter()
        .take_while(|s| s.path.contains("embeddings"))
        .map(|s| s.numel)
        .sum()
}

fn xlmr_row<B: AutodiffBackend>(
    opts: &EncoderBenchOptions,
    frozen: bool,
    device: &B::Device,
) -> Result<EncoderBenchRow, ModelError> {
    let b = opts.batch.unwrap_or(EncoderModel::Xlmr.default_batch());
    let s = opts.seq;
    let config = opts.shapes.xlmr.clone();
    let vocab = config.vocab_size;
    let mut tower =
        TextTower::<B>::from_config(TextEncoderConfig::XlmRoberta(config), Pooling::Mean, device);
    if frozen {
        tower = freeze_embeddings(tower);
    }
    let hidden = tower.output_dim();
    let model = TextStep {
        tower,
        head: LinearConfig::new(hidden, LABELS).init(device),
    };
    let layout = ParamLayout::of(&model);
    let emb_len = embedding_prefix(&layout);
    let (ids, mask) = xlmr_batch::<B>(b, s, vocab, device);
    let targets = targets::<B>(b, device)?;
    let t = time_steps(
        model,
        |m: &TextStep<B>| {
            let logits = m.head.forward(m.tower.forward(ids.clone(), mask.clone()));
            masked_loss(logits, &targets, Task::MultiLabel, &[])
        },
        |m: &TextStep<B>| {
            let _ = m.head.weight.val().inner().into_data();
        },
        emb_len,
        2e-5,
        opts.rounds,
    );
    let label = if frozen {
        "xlmr-base step, frozen emb"
    } else {
        "xlmr-base step"
    };
    Ok(train_row(label, b, s, layout.len, t))
}

fn vit_row<B: AutodiffBackend>(
    opts: &EncoderBenchOptions,
    device: &B::Device,
) -> Result<EncoderBenchRow, ModelError> {
    let b = opts.batch.unwrap_or(EncoderModel::Vit.default_batch());
    let config = &opts.shapes.vit;
    let tower = config.init::<B>(device);
    let model = ImageStep {
        head: LinearConfig::new(tower.output_dim(), LABELS).init(device),
        tower,
    };
    let layout = ParamLayout::of(&model);
    let x = pixels::<B>(b, config.image_size, device);
    let targets = targets::<B>(b, device)?;
    let t = time_steps(
        model,
        |m: &ImageStep<B>| {
            let logits = m.head.forward(m.tower.forward(x.clone()));
            masked_loss(logits, &targets, Task::MultiLabel, &[])
        },
        |m: &ImageStep<B>| {
            let _ = m.head.weight.val().inner().into_data();
        },
        0,
        1e-4,
        opts.rounds,
    );
    Ok(train_row(
        "vit-b16 step",
        b,
        config.seq_len(),
        layout.len,
        t,
    ))
}

fn clip_row<B: Backend>(
    opts: &EncoderBenchOptions,
    device: &B::Device,
) -> Result<EncoderBenchRow, ModelError> {
    let b = opts
        .batch
        .unwrap_or(EncoderModel::ClipImage.default_batch());
    let config = &opts.shapes.clip;
    let tower = config.init::<B>(device);
    let x = pixels::<B>(b, config.image_size, device);
    let mut times = Vec::new();
    for i in 0..=opts.rounds.max(1) {
        let t = Instant::now();
        let _ = tower.forward(x.clone()).into_data();
        if i > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let ms = median(times);
    Ok(EncoderBenchRow {
        label: "clip-b32 image forward".to_string(),
        batch: b,
        tokens: config.seq_len(),
        trainable: 0,
        forward_ms: ms,
        backward_ms: None,
        adamw_ms: None,
        emb_adamw_ms: None,
        step_ms: ms,
        optim_split: None,
    })
}

/// Runs the benchmark, calling `each` with every row as it is measured (a run
/// takes minutes): training rows on `B`, the CLIP forward on `B::InnerBackend`.
pub fn encoder_bench<B: AutodiffBackend>(
    opts: &EncoderBenchOptions,
    device: &B::Device,
    mut each: impl FnMut(&EncoderBenchRow),
) -> Result<Vec<EncoderBenchRow>, ModelError> {
    B::seed(device, 0);
    let mut rows = Vec::new();
    let mut push = |row: EncoderBenchRow| {
        each(&row);
        rows.push(row);
    };
    for model in &opts.models {
        match model {
            EncoderModel::Xlmr => {
                push(xlmr_row::<B>(opts, false, device)?);
                if opts.freeze_embeddings {
                    push(xlmr_row::<B>(opts, true, device)?);
                }
            }
            EncoderModel::Vit => push(vit_row::<B>(opts, device)?),
            EncoderModel::ClipImage => push(clip_row::<B::InnerBackend>(opts, device)?),
        }
    }
    Ok(rows)
}

/// [`encoder_bench`] on burn-flex, the monomorphic entry point `vigil bench
/// encoders` calls (beside the others in `crate::cpu`).
pub fn encoder_bench_cpu(
    opts: &EncoderBenchOptions,
    each: impl FnMut(&EncoderBenchRow),
) -> Result<Vec<EncoderBenchRow>, ModelError> {
    encoder_bench::<vigil_model::backend::CpuAutodiff>(opts, &Default::default(), each)
}

/// Trainable parameters of the XLM-R step model (tower + head) with the
/// embeddings trainable and frozen, counted from the shape without building it:
/// the all-reduce moves `4 ×` these bytes per step.
pub fn xlmr_trainable(config: &BertConfig) -> (usize, usize) {
    let (h, i) = (config.hidden_size, config.intermediate_size);
    // Q, K, V, output (weights and biases), FFN in and out, two LayerNorms.
    let block = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h;
    let emb =
        (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * h + 2 * h;
    let rest = config.num_hidden_layers * block + h * LABELS + LABELS;
    (emb + rest, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::backend::CpuAutodiff;

    fn tiny() -> EncoderShapes {
        let mut xlmr = xlmr_base_config();
        xlmr.vocab_size = 1200;
        xlmr.hidden_size = 32;
        xlmr.num_hidden_layers = 2;
        xlmr.num_attention_heads = 4;
        xlmr.intermediate_size = 64;
        xlmr.max_position_embeddings = 42;
        let shrink = |mut c: VitConfig| {
            c.hidden_size = 32;
            c.num_hidden_layers = 2;
            c.num_attention_heads = 4;
            c.intermediate_size = 64;
            c.image_size = 64;
            c.projection_dim = c.projection_dim.map(|_| 16);
            c
        };
        EncoderShapes {
            xlmr,
            vit: shrink(vit_b16_config()),
            clip: shrink(clip_b32_config()),
        }
    }

    #[test]
    fn tiny_run_gives_every_row() {
        let shapes = tiny();
        let opts = EncoderBenchOptions {
            models: EncoderModel::ALL.to_vec(),
            batch: Some(2),
            seq: 40,
            rounds: 1,
            freeze_embeddings: true,
            shapes: shapes.clone(),
        };
        let mut seen = 0;
        let rows = encoder_bench::<CpuAutodiff>(&opts, &Default::default(), |_| seen += 1)
            .expect("bench runs");
        assert_eq!(seen, 4);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "xlmr-base step",
                "xlmr-base step, frozen emb",
                "vit-b16 step",
                "clip-b32 image forward"
            ]
        );
        let (all, frozen) = xlmr_trainable(&shapes.xlmr);
        assert_eq!(rows[0].trainable, all, "trainable count of the full step");
        assert_eq!(rows[1].trainable, frozen, "embeddings frozen");
        assert!(rows[0].emb_adamw_ms.is_some() && rows[1].emb_adamw_ms.is_none());
        assert_eq!(rows[2].tokens, 17);
        assert_eq!(rows[3].tokens, 5);
        assert_eq!(rows[3].trainable, 0);
        assert!(rows.iter().all(|r| r.step_ms > 0.0));
        assert!(rows[3].render().contains(" - "));
        assert!(rows[0].render_split().contains("embeddings' update"));
    }

    #[test]
    fn base_shapes_count_as_transformers_does() {
        // XLMRobertaModel(add_pooling_layer=False): 277 453 056 parameters, plus
        // the 768 x 5 head; ViTModel(add_pooling_layer=False): 85 798 656.
        let (all, frozen) = xlmr_trainable(&xlmr_base_config());
        assert_eq!(all, 277_453_056 + 768 * 5 + 5);
        assert_eq!(all - frozen, (250_002 + 514 + 1) * 768 + 2 * 768);
    }
}
