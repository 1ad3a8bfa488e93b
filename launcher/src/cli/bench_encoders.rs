//! `vigil bench encoders`: fine-tuning steps of an XLM-R-base-shaped and a
//! ViT-B/16-shaped tower and a CLIP-ViT-B/32-shaped image forward, random weights
//! at the real shapes, one thread; `benches/encoder_steps.py` prints the same rows
//! for PyTorch eager.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use vigil_trainer::bench::{
    EncoderBenchOptions, EncoderBenchRow, EncoderModel, EncoderShapes, xlmr_trainable,
};

use super::bench::BenchUsageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    /// XLM-R-base fine-tuning step (mean pooling, linear head, BCE, AdamW).
    Xlmr,
    /// ViT-B/16 fine-tuning step (CLS features, linear head, BCE, AdamW).
    Vit,
    /// CLIP-ViT-B/32 image forward (inference, projection to 512).
    ClipImage,
}

/// Arguments of `vigil bench encoders`.
#[derive(Debug, Args)]
pub struct EncodersArgs {
    /// Rows to run, comma-separated (default: all three).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Only>,
    /// Rows (images) per step for every model (default: 8 for XLM-R and ViT, 16
    /// for CLIP).
    #[arg(long)]
    batch: Option<usize>,
    /// Tokens per XLM-R row (25% of them padding on average).
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Timed steps per row (after one untimed); each figure is their median.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also time the XLM-R step with the embeddings frozen (what `train_layers:
    /// top:k` does), which takes the 192M-parameter word embeddings out of the
    /// backward, AdamW and the all-reduce.
    #[arg(long)]
    freeze_embeddings: bool,
    /// Compute threads: 1 (burn-flex and gemm are built without rayon, so Vigil's
    /// kernels run on the calling thread; the flag is here to state it, like the
    /// PyTorch script's).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Runs the benchmark.
pub fn run(a: EncodersArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    if a.threads != 1 {
        return Err(BenchUsageError(
            "--threads: only 1 (burn-flex and gemm are built without rayon)".to_string(),
        )
        .into());
    }
    let max_seq = 514 - 2;
    if a.batch == Some(0) || a.rounds == 0 || a.seq < 40 || a.seq > max_seq {
        return Err(BenchUsageError(format!(
            "--batch and --rounds must be at least 1, --seq between 40 and {max_seq}"
        ))
        .into());
    }
    let models: Vec<EncoderModel> = if a.only.is_empty() {
        EncoderModel::ALL.to_vec()
    } else {
        EncoderModel::ALL
            .into_iter()
            .filter(|m| {
                a.only.contains(&match m {
                    EncoderModel::Xlmr => Only::Xlmr,
                    EncoderModel::Vit => Only::Vit,
                    EncoderModel::ClipImage => Only::ClipImage,
                })
            })
            .collect()
    };
    let opts = EncoderBenchOptions {
        models,
        batch: a.batch,
        seq: a.seq,
        rounds: a.rounds,
        freeze_embeddings: a.freeze_embeddings,
        shapes: EncoderShapes::default(),
    };
    let (all, frozen) = xlmr_trainable(&opts.shapes.xlmr);
    println!(
        "vigil bench encoders: random weights at the real shapes, flex backend, 1 thread, \
         train-mode dropout (XLM-R 0.1, ViT 0), trainer's flat AdamW, medians of {} timed \
         steps after 1 untimed",
        a.rounds
    );
    println!(
        "xlmr-base all-reduce per step: {:.1} MB ({all} trainable), embeddings frozen {:.1} MB \
         ({frozen})",
        all as f64 * 4.0 / 1e6,
        frozen as f64 * 4.0 / 1e6
    );
    println!("{}", EncoderBenchRow::header());
    let rows = vigil_trainer::bench::encoder_bench_cpu(&opts, |row| println!("{}", row.render()))?;
    println!("where the time goes:");
    for row in &rows {
        println!("{}", row.render_split());
    }
    Ok(ExitCode::SUCCESS)
}
