//! `vigil embed`: vectors for JSONL rows from pretrained encoders or a trained model.
//!
//! Representation export for retrieval, clustering and near-duplicate search, and
//! the way parity with reference implementations is checked by hand. The logic
//! lives in `vigil_infer` (`run_embed`); this file is flags and I/O.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_infer::{EmbedOptions, EmbedSource, write_output};

/// Arguments of `vigil embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Hugging Face text encoder directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    text_encoder: Option<PathBuf>,
    /// Image encoder: a torchvision EfficientNet-B0 state_dict (.pth), or a Hugging
    /// Face ViT, CLIP or SigLIP directory (its own image size and preprocessing). A
    /// CLIP or SigLIP directory as both encoders gives joint-space vectors.
    #[arg(long, value_name = "PTH|DIR", conflicts_with = "model")]
    image_encoder: Option<PathBuf>,
    /// A trained model's export directory (adds the fused `embedding`).
    #[arg(long, value_name = "EXPORT_DIR")]
    model: Option<PathBuf>,
    /// Input JSONL: {"id", "text"?, "image"?}, image paths relative to this file.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Output JSONL (default: standard output).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Token limit of the pretrained text encoder.
    #[arg(long, default_value_t = 128)]
    max_text_len: usize,
    /// Image side for the EfficientNet image encoder (a directory sets its own).
    #[arg(long, default_value_t = 224)]
    image_size: u32,
    /// Batches embedded at once, one per thread (default: every available core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
}

/// Embeds every row; writes the output file only when every row succeeded.
pub fn run(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    let source = match args.model {
        Some(dir) => EmbedSource::Model(dir),
        None if args.text_encoder.is_none() && args.image_encoder.is_none() => {
            anyhow::bail!(
                "give --text-encoder DIR, --image-encoder PTH|DIR, or --model EXPORT_DIR"
            );
        }
        None => EmbedSource::Encoders {
            text: args.text_encoder,
            image: args.image_encoder,
        },
    };
    let opts = EmbedOptions {
        source,
        input: args.input,
        batch_size: args.batch_size as usize,
        max_text_len: args.max_text_len,
        image_size: args.image_size,
        threads: args
            .threads
            .map_or_else(vigil_model::parallel::default_threads, |t| t as usize),
        scores: false,
    };
    match &args.output {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            vigil_infer::cpu::embed(&opts, &mut out)?;
            out.flush()?;
        }
        Some(path) => {
            // Written beside the target and renamed: a failed run leaves no half file.
            let rows = write_output(path, |out| vigil_infer::cpu::embed(&opts, out))?;
            eprintln!("vigil embed: {rows} rows -> {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
