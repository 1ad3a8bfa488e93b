//! Where an index's vectors come from, and embedding rows with it: a published
//! model version (its fused `embedding` and its scores), pretrained encoders, or
//! precomputed vectors. `vigil index build` resolves the source from its flags and
//! records it in the index manifest; `vigil index add` and `vigil recall` rebuild it
//! from the manifest and refuse a model whose weights differ.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;
use sha2::{Digest, Sha256};
use vigil_infer::{EmbedOptions, EmbedSource};
use vigil_recall::manifest::{EmbeddingSource, FileRef, ModelRef, SourceKind};
use vigil_recall::vectors::{EmbeddingsFile, read_jsonl, read_npy};
use vigil_recall::{ItemMeta, RecallError, Vectors};
use vigil_store::checkpoint::MANIFEST_FILE;
use vigil_store::repo::locate;
use vigil_store::storage::Location;

/// Where an index lives: an index repository (a directory or a bucket URL) of
/// versions, or a Milvus collection (`milvus://HOST:PORT/COLLECTION`). Parsed once,
/// at the command line.
#[derive(Debug, Clone)]
pub enum Target {
    /// Versions through the store.
    Store(Location),
    /// A Milvus collection.
    Milvus(vigil_recall::MilvusUrl),
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if vigil_recall::MilvusUrl::is_milvus(s) {
            vigil_recall::MilvusUrl::parse(s)
                .map(Target::Milvus)
                .map_err(|e| e.to_string())
        } else {
            s.parse::<Location>()
                .map(Target::Store)
                .map_err(|e| e.to_string())
        }
    }
}

/// Flags that choose the embedding model.
#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// A model repository or version directory (local or a bucket URL): vectors are its
    /// fused `embedding` (the head's input), and each item keeps the model's scores.
    #[arg(long, value_name = "DIR|URL", conflicts_with_all = ["text_encoder", "image_encoder", "embeddings"])]
    model: Option<Location>,
    /// The model version (default: the newest complete one).
    #[arg(long, value_name = "V", requires = "model")]
    version: Option<u64>,
    /// A Hugging Face text encoder directory (mean-pooled `text_embedding`).
    #[arg(long, value_name = "DIR")]
    text_encoder: Option<PathBuf>,
    /// An image encoder (EfficientNet-B0 `.pth`, or a ViT / CLIP / SigLIP directory).
    #[arg(long, value_name = "PTH|DIR")]
    image_encoder: Option<PathBuf>,
    /// Precomputed vectors: `vigil embed` output (JSONL) or a float32 `.npy` (ids `0..n`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["text_encoder", "image_encoder"])]
    embeddings: Option<PathBuf>,
    /// Which vector: `embedding` (default with --model), `text_embedding` (default
    /// with a text encoder), or `image_embedding`.
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// Token limit of the pretrained text encoder.
    #[arg(long, default_value_t = 128)]
    max_text_len: usize,
    /// Image side for the EfficientNet image encoder.
    #[arg(long, default_value_t = 224)]
    image_size: u32,
}

/// Flags of every command that embeds rows.
#[derive(Debug, Args, Clone, Copy)]
pub struct EmbedFlags {
    /// Rows per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Threads (default: every available core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

impl EmbedFlags {
    /// The thread count.
    pub fn threads(&self) -> usize {
        self.threads
            .map_or_else(vigil_model::parallel::default_threads, |t| t as usize)
    }
}

/// A resolved source: what to run and what to record.
#[derive(Debug, Clone)]
pub struct Source {
    /// The manifest's record.
    pub record: EmbeddingSource,
    /// What `vigil_infer` embeds with (`None` for precomputed vectors).
    pub embed: Option<EmbedSource>,
    /// Precomputed vectors file.
    pub file: Option<PathBuf>,
}

fn sha256_file(path: &Path) -> Result<String, RecallError> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn io(path: &Path, source: std::io::Error) -> RecallError {
    RecallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An encoder's identity: the sha256 of its weights file.
fn encoder_ref(path: &Path) -> Result<FileRef, RecallError> {
    let weights = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    if !weights.is_file() {
        return Err(RecallError::Usage(format!(
            "{}: no encoder weights there",
            weights.display()
        )));
    }
    Ok(FileRef {
        path: path.display().to_string(),
        sha256: sha256_file(&weights)?,
    })
}

/// A model version located and identified.
fn model_source(model: &Location, version: Option<u64>) -> anyhow::Result<(ModelRef, PathBuf)> {
    let found = locate(model, version)?;
    let name = found
        .dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let manifest_sha256 = match model {
        Location::Local(_) => sha256_file(&found.dir.join(MANIFEST_FILE))?,
        // The repository's own bytes, as `vigil serve` hashes them: the local cache's
        // copy of a bucket version is re-published on download.
        Location::Remote(url) => remote_manifest_sha(url, found.version)?,
    };
    let model_ref = ModelRef {
        name,
        version: found.version,
        location: model.to_string(),
        manifest_sha256,
    };
    Ok((model_ref, found.dir))
}

/// sha256 of `MANIFEST.json` of `version` on a bucket, where `url` is the model's
/// repository or that version itself.
fn remote_manifest_sha(
    url: &vigil_store::storage::RemoteUrl,
    version: u64,
) -> anyhow::Result<String> {
    let read = |store: std::sync::Arc<dyn vigil_store::checkpoint::Store>, entry: &str| {
        store.open(entry, MANIFEST_FILE).map(|r| {
            r.map(|mut r| {
                let mut bytes = Vec::new();
                r.read_to_end(&mut bytes).map(|_| bytes)
            })
        })
    };
    let repo = vigil_store::storage::open_store(&Location::Remote(url.clone()))?;
    let bytes = match read(repo, &version.to_string())? {
        Some(b) => b?,
        None => {
            let (parent, name) = url.split_last();
            let store = vigil_store::storage::open_store(&Location::Remote(parent))?;
            read(store, &name)?.ok_or_else(|| {
                RecallError::Usage(format!("{url}: no MANIFEST.json for version {version}"))
            })??
        }
    };
    Ok(hex::encode(Sha256::digest(&bytes)))
}

impl SourceArgs {
    /// Resolves the flags (at least one source is required).
    pub fn resolve(&self) -> anyhow::Result<Source> {
        if let Some(model) = &self.model {
            let (model_ref, dir) = model_source(model, self.version)?;
            return Ok(Source {
                record: EmbeddingSource {
                    kind: SourceKind::Model,
                    field: self.field.clone().unwrap_or_else(|| "embedding".into()),
                    model: Some(model_ref),
                    text_encoder: None,
                    image_encoder: None,
                    max_text_len: None,
                    image_size: None,
                },
                embed: Some(EmbedSource::Model(dir)),
                file: None,
            });
        }
        if let Some(file) = &self.embeddings {
            return Ok(Source {
                record: EmbeddingSource {
                    kind: SourceKind::Vectors,
                    field: self.field.clone().unwrap_or_else(|| "embedding".into()),
                    model: None,
                    text_encoder: None,
                    image_encoder: None,
                    max_text_len: None,
                    image_size: None,
                },
                embed: None,
                file: Some(file.clone()),
            });
        }
        if self.text_encoder.is_none() && self.image_encoder.is_none() {
            return Err(RecallError::Usage(
                "give --model DIR|URL, --text-encoder DIR, --image-encoder PTH|DIR or --embeddings FILE"
                    .into(),
            )
            .into());
        }
        let default_field = if self.text_encoder.is_some() {
            "text_embedding"
        } else {
            "image_embedding"
        };
        Ok(Source {
            record: EmbeddingSource {
                kind: SourceKind::Encoders,
                field: self.field.clone().unwrap_or_else(|| default_field.into()),
                model: None,
                text_encoder: self.text_encoder.as_deref().map(encoder_ref).transpose()?,
                image_encoder: self.image_encoder.as_deref().map(encoder_ref).transpose()?,
                max_text_len: self.text_encoder.as_ref().map(|_| self.max_text_len),
                image_size: self.image_encoder.as_ref().map(|_| self.image_size),
            },
            embed: Some(EmbedSource::Encoders {
                text: self.text_encoder.clone(),
                image: self.image_encoder.clone(),
            }),
            file: None,
        })
    }
}

/// The source an index records, ready to embed new rows (add, recall); a model
/// version or encoder whose weights changed since is refused.
pub fn from_record(record: &EmbeddingSource) -> anyhow::Result<Source> {
    let resolved = match record.kind {
        SourceKind::Vectors => {
            return Ok(Source {
                record: record.clone(),
                embed: None,
                file: None,
            });
        }
        SourceKind::Model => {
            let m = record
                .model
                .as_ref()
                .ok_or_else(|| RecallError::Usage("the index manifest names no model".into()))?;
            let location = Location::parse(&m.location)?;
            let (model_ref, dir) = model_source(&location, Some(m.version))?;
            let mut r = record.clone();
            r.model = Some(model_ref);
            Source {
                record: r,
                embed: Some(EmbedSource::Model(dir)),
                file: None,
            }
        }
        SourceKind::Encoders => {
            let text = record.text_encoder.as_ref().map(|f| PathBuf::from(&f.path));
            let image = record
                .image_encoder
                .as_ref()
                .map(|f| PathBuf::from(&f.path));
            let mut r = record.clone();
            r.text_encoder = text.as_deref().map(encoder_ref).transpose()?;
            r.image_encoder = image.as_deref().map(encoder_ref).transpose()?;
            Source {
                record: r,
                embed: Some(EmbedSource::Encoders { text, image }),
                file: None,
            }
        }
    };
    if let Some(why) = record.mismatch(&resolved.record) {
        return Err(RecallError::Usage(format!(
            "the index's embedding model changed since it was built: {why}; rebuild the index"
        ))
        .into());
    }
    Ok(resolved)
}

/// Removes the file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Vectors (and scores) of the rows of `data` (or of the precomputed file).
pub fn embed(
    source: &Source,
    data: Option<&Path>,
    flags: EmbedFlags,
) -> anyhow::Result<EmbeddingsFile> {
    let field = source.record.field.as_str();
    if let Some(file) = &source.file {
        if file.extension().is_some_and(|e| e == "npy") {
            let vectors: Vectors = read_npy(file)?;
            let n = vectors.len();
            return Ok(EmbeddingsFile {
                vectors,
                scores: vec![Default::default(); n],
                skipped: Vec::new(),
            });
        }
        return Ok(read_jsonl(file, field)?);
    }
    let (Some(embed), Some(data)) = (&source.embed, data) else {
        return Err(RecallError::Usage(
            "this index holds precomputed vectors: give them with --embeddings FILE".into(),
        )
        .into());
    };
    let tmp = TempFile(std::env::temp_dir().join(format!(
        "vigil-index-{}-{}.jsonl",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )));
    let opts = EmbedOptions {
        source: embed.clone(),
        input: data.to_path_buf(),
        batch_size: flags.batch_size as usize,
        max_text_len: source.record.max_text_len.unwrap_or(128),
        image_size: source.record.image_size.unwrap_or(224),
        threads: flags.threads(),
        scores: source.record.kind == SourceKind::Model,
    };
    vigil_infer::write_output(&tmp.0, |out| vigil_infer::cpu::embed(&opts, out))?;
    Ok(read_jsonl(&tmp.0, field)?)
}

/// Items for embedded rows: each vector's row metadata (from `rows`, by id) and its
/// scores in `labels` order.
pub fn items_for(
    file: &EmbeddingsFile,
    rows: &[ItemMeta],
    labels: &[String],
) -> Result<Vec<ItemMeta>, RecallError> {
    let by_id: std::collections::HashMap<&str, &ItemMeta> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    file.vectors
        .ids
        .iter()
        .zip(&file.scores)
        .map(|(id, scores)| {
            let mut meta = by_id
                .get(id.as_str())
                .map(|m| (*m).clone())
                .unwrap_or_else(|| ItemMeta {
                    id: id.clone(),
                    ..ItemMeta::default()
                });
            meta.scores = if scores.is_empty() {
                Vec::new()
            } else {
                labels
                    .iter()
                    .map(|l| scores.get(l).copied().unwrap_or(0.0))
                    .collect()
            };
            Ok(meta)
        })
        .collect()
}

/// The labels the scores carry (sorted, as the scores objects list them).
pub fn score_labels(file: &EmbeddingsFile) -> Vec<String> {
    file.scores
        .iter()
        .find(|s| !s.is_empty())
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default()
}
