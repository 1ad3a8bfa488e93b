//! The logic of `vigil embed`: JSONL rows in, one JSON object of vectors per row out.
//!
//! Sources: a Hugging Face text encoder directory (mean-pooled `text_embedding`),
//! a torchvision EfficientNet-B0 `.pth` (pooled `image_embedding`), both at once,
//! or a trained model's export directory (`text_embedding`, `image_embedding` and
//! the fused `embedding` that the head sees). Input rows are
//! `{"id": …, "text"?: "…", "image"?: "path"}`, image paths relative to the input
//! file. A row the source cannot embed (no text for a text encoder) is written
//! with its `id` only. Rows go through in batches of `batch_size`, so memory
//! stays flat for any file size.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::Deserialize;

use super::efficientnet::EfficientNetB0;
use super::error::ModelError;
use super::input::{ModelInput, TextData};
use super::moderation::ModerationModel;
use super::preprocess::load_image;
use super::text_tower::TextTower;
use super::tokenizer::TextTokenizer;
use crate::config::Pooling;

/// What to embed with.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedSource {
    /// Pretrained encoders; at least one is set.
    Encoders {
        /// Hugging Face model directory (text).
        text: Option<PathBuf>,
        /// torchvision EfficientNet-B0 `.pth` (images).
        image: Option<PathBuf>,
    },
    /// A trained model's export directory.
    Model(PathBuf),
}

/// Options of an embedding run.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// The encoders or model.
    pub source: EmbedSource,
    /// Input JSONL.
    pub input: PathBuf,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// Token limit for the pretrained text encoder.
    pub max_text_len: usize,
    /// Image side for the pretrained image encoder.
    pub image_size: u32,
}

#[derive(Deserialize)]
struct Row {
    id: serde_json::Value,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    image: Option<String>,
}

// One per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Embedder<B: Backend> {
    Encoders {
        text: Option<Box<(TextTower<B>, TextTokenizer)>>,
        image: Option<Box<EfficientNetB0<B>>>,
    },
    Model {
        model: Box<ModerationModel<B>>,
        tokenizer: Option<TextTokenizer>,
        image_size: usize,
    },
}

fn rows_of<B: Backend>(t: Tensor<B, 2>) -> Vec<Vec<f32>> {
    let [_, d] = t.dims();
    let v: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap_or_default();
    v.chunks(d.max(1)).map(<[f32]>::to_vec).collect()
}

/// Embeds every row of `opts.input` and writes one JSON line per row to `out`;
/// returns the number of rows.
pub fn run_embed<B: Backend>(
    opts: &EmbedOptions,
    out: &mut dyn Write,
    device: &B::Device,
) -> Result<usize, ModelError> {
    let embedder = match &opts.source {
        EmbedSource::Encoders { text, image } => {
            if text.is_none() && image.is_none() {
                return Err(ModelError::config(
                    "embed",
                    "give --text-encoder, --image-encoder or --model",
                ));
            }
            let text = match text {
                Some(dir) => Some(Box::new((
                    TextTower::<B>::pretrained(dir, Pooling::Mean, device)?,
                    TextTokenizer::from_file(&dir.join("tokenizer.json"), opts.max_text_len)?,
                ))),
                None => None,
            };
            let image = match image {
                Some(p) => Some(Box::new(EfficientNetB0::<B>::from_pth(p, device)?)),
                None => None,
            };
            Embedder::Encoders { text, image }
        }
        EmbedSource::Model(dir) => {
            let loaded = ModerationModel::from_export(dir, device)?;
            let image_size = read_image_size(dir).unwrap_or(opts.image_size as usize);
            Embedder::Model {
                model: Box::new(loaded.model),
                tokenizer: loaded.tokenizer,
                image_size,
            }
        }
    };
    let file = std::fs::File::open(&opts.input).map_err(|e| ModelError::io(&opts.input, e))?;
    let base = opts.input.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut batch: Vec<Row> = Vec::new();
    let mut count = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| ModelError::io(&opts.input, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line).map_err(|e| ModelError::BadConfig {
            path: opts.input.clone(),
            key: format!("line {}", i + 1),
            message: format!("not an embed row {{\"id\", \"text\"?, \"image\"?}}: {e}"),
        })?;
        batch.push(row);
        if batch.len() >= opts.batch_size.max(1) {
            count += flush(&embedder, &mut batch, &base, opts, out, device)?;
        }
    }
    count += flush(&embedder, &mut batch, &base, opts, out, device)?;
    Ok(count)
}

fn read_image_size(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("data")?
        .get("image_size")?
        .as_u64()
        .map(|s| s as usize)
}

fn flush<B: Backend>(
    embedder: &Embedder<B>,
    batch: &mut Vec<Row>,
    base: &Path,
    opts: &EmbedOptions,
    out: &mut dyn Write,
    device: &B::Device,
) -> Result<usize, ModelError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let rows = std::mem::take(batch);
    let n = rows.len();
    let texts: Vec<Option<String>> = rows.iter().map(|r| r.text.clone()).collect();
    let wants_images = match embedder {
        Embedder::Encoders { image, .. } => image.is_some(),
        Embedder::Model { model, .. } => model.image.is_some(),
    };
    let size = match embedder {
        Embedder::Model { image_size, .. } => *image_size,
        Embedder::Encoders { .. } => opts.image_size as usize,
    };
    let mut present = vec![false; n];
    let mut pixels = Vec::new();
    if wants_images && rows.iter().any(|r| r.image.is_some()) {
        pixels.reserve(n * 3 * size * size);
        for (i, r) in rows.iter().enumerate() {
            match &r.image {
                Some(p) => {
                    pixels.extend(load_image(&base.join(p), size as u32)?);
                    present[i] = true;
                }
                None => pixels.extend(std::iter::repeat_n(0.0, 3 * size * size)),
            }
        }
    }
    let mut text_out: Vec<Option<Vec<f32>>> = vec![None; n];
    let mut image_out: Vec<Option<Vec<f32>>> = vec![None; n];
    let mut fused_out: Vec<Option<Vec<f32>>> = vec![None; n];
    match embedder {
        Embedder::Encoders { text, image } => {
            if let Some(pair) = text {
                let (tower, tok) = pair.as_ref();
                let idx: Vec<usize> = (0..n).filter(|&i| texts[i].is_some()).collect();
                if !idx.is_empty() {
                    let sub: Vec<Option<String>> = idx.iter().map(|&i| texts[i].clone()).collect();
                    let input = ModelInput::<B>::from_vecs(Some(tok), &sub, &[], &[], 0, device)?;
                    let t = input.text.expect("a tokenizer was given");
                    let feats = match t.data {
                        TextData::Tokens { ids, mask } => tower.forward(ids, mask),
                        TextData::Features(f) => f,
                    };
                    for (k, v) in rows_of(feats).into_iter().enumerate() {
                        text_out[idx[k]] = Some(v);
                    }
                }
            }
            if let Some(net) = image {
                let idx: Vec<usize> = (0..n).filter(|&i| present[i]).collect();
                if !idx.is_empty() {
                    let plane = 3 * size * size;
                    let mut sub = Vec::with_capacity(idx.len() * plane);
                    for &i in &idx {
                        sub.extend_from_slice(&pixels[i * plane..(i + 1) * plane]);
                    }
                    let t = Tensor::<B, 1>::from_floats(sub.as_slice(), device).reshape([
                        idx.len(),
                        3,
                        size,
                        size,
                    ]);
                    for (k, v) in rows_of(net.forward(t)).into_iter().enumerate() {
                        image_out[idx[k]] = Some(v);
                    }
                }
            }
        }
        Embedder::Model {
            model, tokenizer, ..
        } => {
            let input = ModelInput::<B>::from_vecs(
                tokenizer.as_ref(),
                &texts,
                &pixels,
                &present,
                size,
                device,
            )?;
            let e = model.embed(&input);
            let mask = |v: Option<Vec<Vec<f32>>>, keep: &dyn Fn(usize) -> bool| {
                v.map(|rows| {
                    rows.into_iter()
                        .enumerate()
                        .map(|(i, r)| keep(i).then_some(r))
                        .collect::<Vec<_>>()
                })
            };
            if let Some(v) = mask(e.text.map(rows_of), &|i| texts[i].is_some()) {
                text_out = v;
            }
            if let Some(v) = mask(e.image.map(rows_of), &|i| present[i]) {
                image_out = v;
            }
            fused_out = rows_of(e.fused).into_iter().map(Some).collect();
        }
    }
    for (i, row) in rows.into_iter().enumerate() {
        let mut obj = serde_json::Map::new();
        obj.insert("id".into(), row.id);
        for (key, v) in [
            ("text_embedding", text_out[i].take()),
            ("image_embedding", image_out[i].take()),
            ("embedding", fused_out[i].take()),
        ] {
            if let Some(v) = v {
                obj.insert(key.into(), serde_json::json!(v));
            }
        }
        let line = serde_json::Value::Object(obj).to_string();
        writeln!(out, "{line}").map_err(|e| ModelError::io("<output>", e))?;
    }
    Ok(n)
}
