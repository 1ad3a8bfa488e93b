//! The logic of `vigil embed`: JSONL rows in, one JSON object of vectors per row out.
//!
//! Sources: a Hugging Face text encoder directory (mean-pooled `text_embedding`),
//! an image encoder (`image_embedding`: a torchvision EfficientNet-B0 `.pth`, or a
//! ViT / CLIP / SigLIP directory with its own preprocessing), both at once, or a
//! trained model's export directory (`text_embedding`, `image_embedding` and the
//! fused `embedding` that the head sees). A CLIP or SigLIP directory given as the
//! text and image encoder puts both vectors in its joint image-text space,
//! L2-normalised as `CLIPModel` / `SiglipModel` return them: a dot product is the
//! cosine their logits scale ([`vigil_model::vision::JointModel`]). Input rows are
//! `{"id": …, "text"?: "…", "image"?: "path"}`, image paths relative to the input
//! file. A row the source cannot embed (no text for a text encoder) is written
//! with its `id` only, as it appeared (a string or an integer).
//!
//! Rows are read by the data layer as training reads them ([`Dataset::load_file`]
//! with the [`EmbedRows`] format: the shared checks, every row checked before the
//! first is embedded, the first bad row an error `FILE:LINE: reason`), and turned
//! into tensors by [`ModelInput::from_batch`] with images decoded by the data
//! layer's pipeline, so a trained model embeds a row exactly as it saw it in
//! training. Rows go through in batches of `batch_size`: images are decoded per
//! batch, and memory beyond the rows' text stays flat for any file size.
//! With `threads > 1`, whole batches (their decoding included) run side by side
//! on that many threads ([`vigil_model::parallel::ordered_map`]) and are written in
//! input order; each batch's arithmetic is the same as on one thread.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::error::ServeError;
use vigil_config::{DataSection, OnBadRow, Pooling};
use vigil_data::format::{RawRow, RowFormat, id_field, object, path_field, text_field};
use vigil_data::{
    BadRow, Batch, DataError, Dataset, ImageSpec, LoadOptions, Loader, LoaderOptions, Position,
    ShardSampler, Split,
};
use vigil_export::{TOKENIZER_FILE, format::read_data_section};
use vigil_model::vision::{VisionKind, l2_normalize, load_vision_tower};
use vigil_model::{
    EfficientNetB0, ImageData, ImageTower, ModelInput, ModerationModel, TextData, TextTokenizer,
    TextTower, read_preprocessor,
};

/// What to embed with.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedSource {
    /// Pretrained encoders; at least one is set.
    Encoders {
        /// Hugging Face model directory (text).
        text: Option<PathBuf>,
        /// torchvision EfficientNet-B0 `.pth`, or a Hugging Face ViT / CLIP /
        /// SigLIP directory (images).
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
    /// Batches embedded at once, one per thread, each with its own copy of the
    /// encoders (`--threads`; the vectors do not depend on it).
    pub threads: usize,
    /// With a trained model: also write `"scores"`, the head's probability per label
    /// computed from the same fused vector (what `vigil index build` stores beside
    /// each vector). Ignored for pretrained encoders.
    pub scores: bool,
}

/// The one label the data layer needs; embed rows carry none.
const NO_LABEL: &str = "-";

/// The row format of `vigil embed`: `{"id", "text"?, "image"?}` with the data
/// layer's field rules (an id is a non-empty string or an integer; blank text is
/// no text); other fields are ignored, so training rows embed as they are. It
/// remembers which ids were integers, so they are written back as integers.
#[derive(Debug, Default)]
pub struct EmbedRows {
    integer_ids: Mutex<HashSet<String>>,
}

impl EmbedRows {
    /// The id as it appeared in the input: an integer or a string.
    pub fn id_value(&self, id: &str) -> serde_json::Value {
        let integer = self.integer_ids.lock().is_ok_and(|s| s.contains(id));
        match integer.then(|| serde_json::from_str::<serde_json::Number>(id).ok()) {
            Some(Some(n)) => serde_json::Value::Number(n),
            _ => serde_json::Value::String(id.to_string()),
        }
    }
}

impl RowFormat for EmbedRows {
    fn name(&self) -> &'static str {
        "embed"
    }

    fn parse(&self, line: &str, labels: &[String]) -> Result<RawRow, BadRow> {
        let map = object(line)?;
        let id = id_field(&map)?;
        if map.get("id").is_some_and(serde_json::Value::is_number)
            && let Ok(mut ints) = self.integer_ids.lock()
        {
            ints.insert(id.clone());
        }
        Ok(RawRow {
            id,
            text: text_field(&map, "text")?,
            image: path_field(&map, "image")?,
            labels: vec![None; labels.len()],
            meta: None,
            rationale: None,
        })
    }
}

// One per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Embedder<B: Backend> {
    Encoders {
        text: Option<Box<(TextTower<B>, TextTokenizer)>>,
        image: Option<Box<ImageTower<B>>>,
        image_spec: ImageSpec,
    },
    Model {
        model: Box<ModerationModel<B>>,
        tokenizer: Option<TextTokenizer>,
        data: Box<DataSection>,
    },
}

impl<B: Backend> Embedder<B> {
    fn new(opts: &EmbedOptions, device: &B::Device) -> Result<Self, ServeError> {
        Ok(match &opts.source {
            EmbedSource::Encoders { text, image } => {
                if text.is_none() && image.is_none() {
                    return Err(ServeError::BadOption {
                        flag: "--text-encoder",
                        message: "give --text-encoder, --image-encoder or --model".into(),
                    });
                }
                let text = match text {
                    Some(dir) => {
                        let tower = TextTower::<B>::pretrained(dir, Pooling::Mean, device)?;
                        let tokenizer = dir.join(TOKENIZER_FILE);
                        // SigLIP reads rows padded to its full length, as trained.
                        let tokenizer = if tower.pads_to_max_length() {
                            TextTokenizer::from_file(&tokenizer, tower.backbone().max_positions())?
                                .with_max_length_padding()
                        } else {
                            TextTokenizer::from_file(&tokenizer, opts.max_text_len)?
                        };
                        Some(Box::new((tower, tokenizer)))
                    }
                    None => None,
                };
                let mut image_spec = ImageSpec {
                    size: opts.image_size,
                    transform: Default::default(),
                };
                let image = match image {
                    Some(p) if p.is_dir() => {
                        let tower = load_vision_tower::<B>(p, device)?;
                        image_spec.size = tower.image_size() as u32;
                        let processor = p.join("preprocessor_config.json");
                        if processor.is_file() {
                            image_spec.transform = read_preprocessor(&processor)?.transform;
                        }
                        Some(Box::new(ImageTower::Vit(tower)))
                    }
                    Some(p) => Some(Box::new(ImageTower::EfficientNet(
                        EfficientNetB0::<B>::from_pth(p, device)?,
                    ))),
                    None => None,
                };
                Self::Encoders {
                    text,
                    image,
                    image_spec,
                }
            }
            EmbedSource::Model(dir) => {
                let loaded = ModerationModel::from_export(dir, device)?;
                Self::Model {
                    model: Box::new(loaded.model),
                    tokenizer: loaded.tokenizer,
                    data: Box::new(read_data_section(dir)?),
                }
            }
        })
    }

    fn wants_images(&self) -> bool {
        match self {
            Self::Encoders { image, .. } => image.is_some(),
            Self::Model { model, .. } => model.image.is_some(),
        }
    }
}

/// One row's vectors.
#[derive(Default)]
struct Vectors {
    text: Option<Vec<f32>>,
    image: Option<Vec<f32>>,
    fused: Option<Vec<f32>>,
    scores: Option<Vec<f32>>,
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
) -> Result<usize, ServeError> {
    // The source first: a broken encoder is reported before any row is read.
    let embedder = Embedder::<B>::new(opts, device)?;
    let rows = Arc::new(EmbedRows::default());
    let load = LoadOptions {
        format: Box::new(rows.clone()),
        image_root: None,
        // The tokenizer truncates; embedding a long text is not an error.
        max_text_chars: usize::MAX,
        on_bad_row: OnBadRow::Fail,
        check_images: embedder.wants_images(),
    };
    let ds = match Dataset::load_file(&opts.input, &[NO_LABEL.into()], Split::Val, &load) {
        Ok((ds, _)) => Arc::new(ds),
        Err(DataError::Empty { .. }) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let batch_size = opts.batch_size.max(1);
    let threads = if vigil_model::kernels::on_host::<B>() {
        opts.threads.max(1)
    } else {
        1
    };
    let labels: Option<Vec<String>> = match &embedder {
        Embedder::Model { model, .. } if opts.scores => Some(model.labels().to_vec()),
        _ => None,
    };
    let with_scores = labels.is_some();
    let write = |out: &mut dyn Write, batch_rows: &[usize], vectors: Vec<Vectors>| {
        for (&row, v) in batch_rows.iter().zip(vectors) {
            let mut obj = serde_json::Map::new();
            obj.insert("id".into(), rows.id_value(&ds.example(row).id));
            for (key, v) in [
                ("text_embedding", v.text),
                ("image_embedding", v.image),
                ("embedding", v.fused),
            ] {
                if let Some(v) = v {
                    obj.insert(key.into(), serde_json::json!(v));
                }
            }
            if let (Some(scores), Some(labels)) = (v.scores, &labels) {
                let map: serde_json::Map<String, serde_json::Value> = labels
                    .iter()
                    .cloned()
                    .zip(scores.into_iter().map(|p| serde_json::json!(p)))
                    .collect();
                obj.insert("scores".into(), map.into());
            }
            let line = serde_json::Value::Object(obj).to_string();
            writeln!(out, "{line}").map_err(|source| ServeError::Write {
                path: PathBuf::from("<output>"),
                source,
            })?;
        }
        Ok::<_, ServeError>(())
    };
    match &embedder {
        Embedder::Model {
            model,
            tokenizer,
            data,
        } => {
            let sampler = ShardSampler::for_eval(ds.len(), 0, 1, batch_size)?;
            let loader_opts = LoaderOptions::from_section(data, model.image.is_some());
            let loader = Loader::new(ds.clone(), &sampler, 0, 0, loader_opts)?;
            let tokenizer = tokenizer.as_ref();
            vigil_model::parallel::ordered_map(
                vec![model.as_ref().clone(); threads],
                loader.map(|b| b.map_err(ServeError::from)),
                |model, batch: Batch| {
                    let vectors = embed_with_model(model, tokenizer, &batch, with_scores, device)?;
                    Ok((batch.rows, vectors))
                },
                |(rows, vectors)| write(&mut *out, &rows, vectors),
            )?;
        }
        Embedder::Encoders {
            text,
            image,
            image_spec,
        } => {
            let all: Vec<usize> = (0..ds.len()).collect();
            let encoders = (text.clone(), image.clone());
            vigil_model::parallel::ordered_map(
                vec![encoders; threads],
                all.chunks(batch_size).map(Ok),
                |(text, image), chunk: &[usize]| {
                    let vectors = embed_with_encoders(
                        text.as_deref(),
                        image.as_deref(),
                        *image_spec,
                        &ds,
                        chunk,
                        device,
                    )?;
                    Ok((chunk, vectors))
                },
                |(chunk, vectors)| write(&mut *out, chunk, vectors),
            )?;
        }
    }
    Ok(ds.len())
}

/// A trained model: its towers' vectors where the row has the modality, and the
/// fused vector for every row.
fn embed_with_model<B: Backend>(
    model: &ModerationModel<B>,
    tokenizer: Option<&TextTokenizer>,
    batch: &Batch,
    scores: bool,
    device: &B::Device,
) -> Result<Vec<Vectors>, ServeError> {
    let (input, _) = ModelInput::<B>::from_batch(tokenizer, batch, None, device)?;
    let e = model.embed(&input);
    let probabilities =
        scores.then(|| rows_of(model.probabilities(model.head.forward(e.fused.clone()))));
    let mut out: Vec<Vectors> = (0..batch.len()).map(|_| Vectors::default()).collect();
    if let Some(t) = e.text {
        for (i, v) in rows_of(t).into_iter().enumerate() {
            out[i].text = batch.texts[i].is_some().then_some(v);
        }
    }
    if let Some(t) = e.image {
        for (i, v) in rows_of(t).into_iter().enumerate() {
            out[i].image = batch.image_present[i].then_some(v);
        }
    }
    for (i, v) in rows_of(e.fused).into_iter().enumerate() {
        out[i].fused = Some(v);
    }
    for (i, p) in probabilities.into_iter().flatten().enumerate() {
        out[i].scores = Some(p);
    }
    Ok(out)
}

/// Pretrained encoders: each runs on the rows of `chunk` that have its modality.
fn embed_with_encoders<B: Backend>(
    text: Option<&(TextTower<B>, TextTokenizer)>,
    image: Option<&ImageTower<B>>,
    image_spec: ImageSpec,
    ds: &Dataset,
    chunk: &[usize],
    device: &B::Device,
) -> Result<Vec<Vectors>, ServeError> {
    let mut out: Vec<Vectors> = chunk.iter().map(|_| Vectors::default()).collect();
    let sub_batch = |keep: &dyn Fn(usize) -> bool, size: Option<ImageSpec>| {
        let slots: Vec<usize> = (0..chunk.len()).filter(|&k| keep(chunk[k])).collect();
        let rows: Vec<usize> = slots.iter().map(|&k| chunk[k]).collect();
        let batch =
            Batch::build(ds, &rows, Position::default(), size).map_err(|(line, reason)| {
                DataError::ImageDecode {
                    file: ds.file().to_path_buf(),
                    line,
                    reason,
                }
            })?;
        Ok::<_, ServeError>((slots, batch))
    };
    if let Some((tower, tok)) = text {
        let (slots, batch) = sub_batch(&|r| ds.example(r).text.is_some(), None)?;
        if !slots.is_empty() {
            let (input, _) = ModelInput::<B>::from_batch(Some(tok), &batch, None, device)?;
            if let Some(TextData::Tokens { ids, mask }) = input.text.map(|t| t.data) {
                let vectors = tower.forward(ids, mask);
                let vectors = if tower.config().is_joint() {
                    l2_normalize(vectors)
                } else {
                    vectors
                };
                for (k, v) in rows_of(vectors).into_iter().enumerate() {
                    out[slots[k]].text = Some(v);
                }
            }
        }
    }
    if let Some(net) = image {
        let (slots, batch) = sub_batch(&|r| ds.example(r).image.is_some(), Some(image_spec))?;
        if !slots.is_empty() {
            let (input, _) = ModelInput::<B>::from_batch(None, &batch, None, device)?;
            if let Some(ImageData::Pixels(pixels)) = input.image.map(|i| i.data) {
                let vectors = net.forward(pixels);
                // CLIP's and SigLIP's vision towers embed into the joint space.
                let vectors = match net {
                    ImageTower::Vit(m) if m.config().kind != VisionKind::Vit => {
                        l2_normalize(vectors)
                    }
                    _ => vectors,
                };
                for (k, v) in rows_of(vectors).into_iter().enumerate() {
                    out[slots[k]].image = Some(v);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec![NO_LABEL.to_string()]
    }

    #[test]
    fn embed_rows_take_id_text_image_and_ignore_the_rest() {
        let f = EmbedRows::default();
        let r = f
            .parse(
                r#"{"id": 7, "text": "hi", "image": "a.png", "labels": {"x": 1}, "extra": 2}"#,
                &labels(),
            )
            .unwrap();
        assert_eq!(r.id, "7");
        assert_eq!(r.text.as_deref(), Some("hi"));
        assert_eq!(r.image.as_deref(), Some("a.png"));
        assert_eq!(r.labels, vec![None]);
        assert!(f.parse(r#"{"text": "no id"}"#, &labels()).is_err());
        assert!(f.parse("[1]", &labels()).is_err());
    }

    #[test]
    fn ids_are_written_back_as_they_appeared() {
        let f = EmbedRows::default();
        f.parse(r#"{"id": 2, "text": "a"}"#, &labels()).unwrap();
        f.parse(r#"{"id": "b", "text": "a"}"#, &labels()).unwrap();
        f.parse(r#"{"id": "30", "text": "a"}"#, &labels()).unwrap();
        assert_eq!(f.id_value("2"), serde_json::json!(2));
        assert_eq!(f.id_value("b"), serde_json::json!("b"));
        assert_eq!(f.id_value("30"), serde_json::json!("30"));
    }
}
