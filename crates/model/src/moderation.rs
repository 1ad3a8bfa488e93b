//! [`ModerationModel`]: towers + fusion + head, built from the run config.
//!
//! `from_config` loads pretrained weights where the config names them
//! (`model.text.path`, `model.image.path`), builds scratch towers otherwise,
//! applies `train_layers` freezing, and optionally warm-starts every weight from
//! `model.init_from`. Nothing is downloaded: paths must exist.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, ModuleStore, SafetensorsStore};
use serde::{Deserialize, Serialize};

use super::bert::BertConfig;
use super::efficientnet::{EFFICIENTNET_B0_DIM, EfficientNetB0};
use super::error::ModelError;
use super::fusion::{Fusion, Modality};
use super::head::Head;
use super::input::{ImageData, ModelInput, TextData};
use super::loss::{Targets, masked_loss};
use super::preprocessor::read_preprocessor;
use super::scratch_cnn::ScratchCnn;
use super::text_config::TextEncoderConfig;
use super::text_tower::TextTower;
use super::tokenizer::TextTokenizer;
use super::vision::{VisionTransformer, VitConfig, load_vision_tower};
use vigil_config::{DataSection, ImageEncoder, ImageTransform, ModelSection, Task, TextEncoder};

/// An export's image-tower architecture (a Vision Transformer's `VitConfig`).
pub const IMAGE_CONFIG_FILE: &str = "image_config.json";

/// The image tower: pretrained EfficientNet-B0, a Vision Transformer (ViT, CLIP's
/// or SigLIP's vision half) or the scratch CNN.
// One instance per model: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ImageTower<B: Backend> {
    /// torchvision EfficientNet-B0.
    EfficientNet(EfficientNetB0<B>),
    /// Small CNN from scratch.
    Cnn(ScratchCnn<B>),
    /// A Hugging Face ViT, CLIP or SigLIP vision tower.
    Vit(VisionTransformer<B>),
}

impl<B: Backend> ImageTower<B> {
    /// Pooled features `[b, output_dim]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        match self {
            Self::EfficientNet(m) => m.forward(images),
            Self::Cnn(m) => m.forward(images),
            Self::Vit(m) => m.forward(images),
        }
    }

    /// Width of the pooled features.
    pub fn output_dim(&self) -> usize {
        match self {
            Self::EfficientNet(_) => EFFICIENTNET_B0_DIM,
            Self::Cnn(m) => m.output_dim(),
            Self::Vit(m) => m.output_dim(),
        }
    }

    /// The architecture and shape (a feature-cache key records it).
    pub fn architecture(&self) -> serde_json::Value {
        match self {
            Self::EfficientNet(_) => "efficientnet_b0".into(),
            Self::Cnn(m) => serde_json::json!({"scratch_cnn": m.output_dim()}),
            Self::Vit(m) => serde_json::to_value(m.config()).unwrap_or_default(),
        }
    }
}

/// The image input a model's image tower expects: `data.image_transform` when the
/// config sets it, else the tower's own — a Hugging Face directory's
/// `preprocessor_config.json` (whose output side must be `data.image_size`), else
/// Vigil's square triangle resize with ImageNet statistics.
pub fn image_transform(
    model: &ModelSection,
    data: &DataSection,
) -> Result<ImageTransform, ModelError> {
    if let Some(t) = data.image_transform {
        return Ok(t);
    }
    let Some(i) = model
        .image
        .as_ref()
        .filter(|i| i.encoder == ImageEncoder::Pretrained)
    else {
        return Ok(ImageTransform::default());
    };
    let Some(dir) = i.path.as_deref().map(Path::new) else {
        return Ok(ImageTransform::default());
    };
    let path = dir.join("preprocessor_config.json");
    if !path.is_file() {
        return Ok(ImageTransform::default());
    }
    let processing = read_preprocessor(&path)?;
    if processing.image_size != data.image_size {
        return Err(ModelError::config(
            "data.image_size",
            format!(
                "is {} but {} gives the image tower {}×{} inputs; set data.image_size: {}",
                data.image_size,
                path.display(),
                processing.image_size,
                processing.image_size,
                processing.image_size
            ),
        ));
    }
    Ok(processing.transform)
}

/// Per-row vectors for `vigil embed` and retrieval.
#[derive(Debug, Clone)]
pub struct Embeddings<B: Backend> {
    /// Pooled text-tower output `[b, text_dim]` (text tower present).
    pub text: Option<Tensor<B, 2>>,
    /// Pooled image-tower output `[b, image_dim]` (image tower present and any image given).
    pub image: Option<Tensor<B, 2>>,
    /// Fused vector `[b, fusion_dim]`, the head's input.
    pub fused: Tensor<B, 2>,
}

/// The multimodal moderation classifier.
#[derive(Module, Debug)]
pub struct ModerationModel<B: Backend> {
    /// Text tower.
    pub text: Option<TextTower<B>>,
    /// Image tower.
    pub image: Option<ImageTower<B>>,
    /// Fusion.
    pub fusion: Fusion<B>,
    /// Classifier head.
    pub head: Head<B>,
    #[module(skip)]
    task: Task,
    #[module(skip)]
    labels: Vec<String>,
    #[module(skip)]
    pos_weight: Vec<f32>,
}

/// `config.json` of an export: the sections that define the model.
#[derive(Debug, Serialize, Deserialize)]
struct ExportConfig {
    model: ModelSection,
    data: DataSection,
}

/// A built model and the tokenizer its text tower expects.
#[derive(Debug)]
pub struct LoadedModel<B: Backend> {
    /// The model.
    pub model: ModerationModel<B>,
    /// The tokenizer (None without a text tower).
    pub tokenizer: Option<TextTokenizer>,
}

impl<B: Backend> ModerationModel<B> {
    /// Builds the model the config describes, loading pretrained towers and
    /// `init_from` weights, with `train_layers` freezing applied.
    pub fn from_config(
        model: &ModelSection,
        data: &DataSection,
        device: &B::Device,
    ) -> Result<LoadedModel<B>, ModelError> {
        Self::build(model, data, None, device)
    }

    /// Loads a directory written by [`Self::write_model_files`] (an export version):
    /// the architecture from its `config.json` / `text_config.json`, every weight
    /// from its `model.safetensors`; no pretrained file is read.
    pub fn from_export(dir: &Path, device: &B::Device) -> Result<LoadedModel<B>, ModelError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let files: ExportConfig =
            serde_json::from_str(&text).map_err(|source| ModelError::Json { path, source })?;
        let mut loaded = Self::build(&files.model, &files.data, Some(dir), device)?;
        loaded.model = loaded.model.load_weights(&dir.join("model.safetensors"))?;
        Ok(loaded)
    }

    /// Writes `config.json`, `text_config.json` (with a text tower), `image_config.json`
    /// (with a Vision Transformer image tower), `tokenizer.json`,
    /// `labels.json` and `model.safetensors` into `dir` — what [`Self::from_export`]
    /// reads back. Not atomic: the caller publishes the directory.
    pub fn write_model_files(
        &self,
        dir: &Path,
        model: &ModelSection,
        data: &DataSection,
        tokenizer: Option<&TextTokenizer>,
    ) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| ModelError::io(&p, e))
        };
        let config = ExportConfig {
            model: model.clone(),
            data: data.clone(),
        };
        write(
            "config.json",
            serde_json::to_string_pretty(&config).unwrap_or_default(),
        )?;
        write(
            "labels.json",
            serde_json::to_string_pretty(&self.labels).unwrap_or_default(),
        )?;
        if let Some(t) = &self.text {
            let cfg = serde_json::to_string_pretty(t.config()).unwrap_or_default();
            write("text_config.json", cfg)?;
        }
        if let Some(ImageTower::Vit(m)) = &self.image {
            let cfg = serde_json::to_string_pretty(m.config()).unwrap_or_default();
            write(IMAGE_CONFIG_FILE, cfg)?;
        }
        if let Some(tok) = tokenizer {
            let dst = dir.join("tokenizer.json");
            std::fs::copy(tok.path(), &dst).map_err(|e| ModelError::io(&dst, e))?;
        }
        self.save_weights(&dir.join("model.safetensors"))
    }

    fn build(
        model: &ModelSection,
        data: &DataSection,
        export: Option<&Path>,
        device: &B::Device,
    ) -> Result<LoadedModel<B>, ModelError> {
        let mut tokenizer = None;
        let text = match &model.text {
            None => None,
            Some(t) => {
                let dir = t.path.as_deref().map(PathBuf::from);
                let tok_path = match (export, &t.tokenizer, &dir) {
                    (Some(e), _, _) => e.join("tokenizer.json"),
                    (None, Some(p), _) => PathBuf::from(p),
                    (None, None, Some(d)) => d.join("tokenizer.json"),
                    (None, None, None) => {
                        return Err(ModelError::config(
                            "model.text.tokenizer",
                            "is required when model.text.path is not set",
                        ));
                    }
                };
                let tok = TextTokenizer::from_file(&tok_path, data.max_text_len)?;
                let tower = match (t.encoder, export) {
                    (_, Some(e)) => {
                        let cfg = TextEncoderConfig::from_export_file(&e.join("text_config.json"))?;
                        TextTower::from_config(cfg, t.pooling, device)
                    }
                    (TextEncoder::Bert, None) => {
                        let dir = dir.ok_or_else(|| {
                            ModelError::config(
                                "model.text.path",
                                "is required for encoder: bert (a Hugging Face model directory)",
                            )
                        })?;
                        TextTower::pretrained(&dir, t.pooling, device)?
                    }
                    (TextEncoder::Scratch, None) => {
                        if t.heads == 0 || t.hidden % t.heads != 0 {
                            return Err(ModelError::config(
                                "model.text.heads",
                                format!("must divide model.text.hidden ({})", t.hidden),
                            ));
                        }
                        let mut cfg = BertConfig::scratch(
                            tok.vocab_size(),
                            t.hidden,
                            t.layers,
                            t.heads,
                            data.max_text_len,
                        );
                        cfg.hidden_dropout_prob = t.dropout;
                        cfg.attention_probs_dropout_prob = t.dropout;
                        TextTower::scratch(&cfg, t.pooling, device)
                    }
                };
                if tower.backbone().max_positions() < data.max_text_len {
                    return Err(ModelError::config(
                        "data.max_text_len",
                        format!(
                            "{} exceeds the text encoder's {} positions",
                            data.max_text_len,
                            tower.backbone().max_positions()
                        ),
                    ));
                }
                let tok = if tower.pads_to_max_length() {
                    if data.max_text_len != tower.backbone().max_positions() {
                        return Err(ModelError::config(
                            "data.max_text_len",
                            format!(
                                "is {} but SigLIP's text tower reads rows padded to exactly {} \
                                 tokens (as it was trained); set data.max_text_len: {}",
                                data.max_text_len,
                                tower.backbone().max_positions(),
                                tower.backbone().max_positions()
                            ),
                        ));
                    }
                    tok.with_max_length_padding()
                } else {
                    tok
                };
                tokenizer = Some(tok);
                Some(tower.freeze(t.train_layers))
            }
        };
        let image = match &model.image {
            None => None,
            Some(i) => Some(match i.encoder {
                ImageEncoder::EfficientnetB0 if export.is_some() => {
                    ImageTower::EfficientNet(EfficientNetB0::new(device).freeze(i.train_layers))
                }
                ImageEncoder::EfficientnetB0 => {
                    let path = i.path.as_deref().ok_or_else(|| {
                        ModelError::config(
                            "model.image.path",
                            "is required for encoder: efficientnet_b0 (a torchvision .pth)",
                        )
                    })?;
                    ImageTower::EfficientNet(
                        EfficientNetB0::from_pth(Path::new(path), device)?.freeze(i.train_layers),
                    )
                }
                ImageEncoder::ScratchCnn => {
                    ImageTower::Cnn(ScratchCnn::new(i.channels, device).freeze(i.train_layers))
                }
                ImageEncoder::Pretrained => {
                    let tower = match export {
                        Some(e) => {
                            let path = e.join(IMAGE_CONFIG_FILE);
                            let text = std::fs::read_to_string(&path)
                                .map_err(|err| ModelError::io(&path, err))?;
                            let config: VitConfig = serde_json::from_str(&text)
                                .map_err(|source| ModelError::Json { path, source })?;
                            config.init(device)
                        }
                        None => {
                            let dir = i.path.as_deref().ok_or_else(|| {
                                ModelError::config(
                                    "model.image.path",
                                    "is required for encoder: pretrained (a Hugging Face \
                                     ViT, CLIP or SigLIP directory)",
                                )
                            })?;
                            load_vision_tower(Path::new(dir), device)?
                        }
                    };
                    if tower.image_size() != data.image_size as usize {
                        return Err(ModelError::config(
                            "data.image_size",
                            format!(
                                "is {} but the image tower takes {}×{} images (its config.json); \
                                 set data.image_size: {}",
                                data.image_size,
                                tower.image_size(),
                                tower.image_size(),
                                tower.image_size()
                            ),
                        ));
                    }
                    ImageTower::Vit(tower.freeze(i.train_layers))
                }
            }),
        };
        if text.is_none() && image.is_none() {
            return Err(ModelError::config(
                "model",
                "needs a text tower (model.text), an image tower (model.image), or both",
            ));
        }
        let fusion = Fusion::new(
            model.fusion.kind,
            model.fusion.dim,
            text.as_ref().map(TextTower::output_dim),
            image.as_ref().map(ImageTower::output_dim),
            device,
        );
        let head = Head::new(
            fusion.output_dim(),
            &model.head.hidden,
            model.labels.len(),
            model.head.dropout,
            device,
        );
        let pos_weight = model
            .labels
            .iter()
            .map(|l| model.head.pos_weight.get(l).copied().unwrap_or(1.0) as f32)
            .collect();
        let built = Self {
            text,
            image,
            fusion,
            head,
            task: model.task,
            labels: model.labels.clone(),
            pos_weight,
        };
        Ok(LoadedModel {
            model: built,
            tokenizer,
        })
    }

    /// Label names, in logit order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The task (multi-label or multi-class).
    pub fn task(&self) -> Task {
        self.task
    }

    /// Towers and fusion: the vectors before the head.
    pub fn embed(&self, input: &ModelInput<B>) -> Embeddings<B> {
        let device = self.fusion_device();
        let text_feats = match (&self.text, &input.text) {
            (Some(tower), Some(t)) if t.any => Some(match &t.data {
                TextData::Tokens { ids, mask } => tower.forward(ids.clone(), mask.clone()),
                TextData::Features(f) => f.clone(),
            }),
            _ => None,
        };
        let image_feats = match (&self.image, &input.image) {
            (Some(tower), Some(i)) if i.any => Some(match &i.data {
                ImageData::Pixels(pixels) => tower.forward(pixels.clone()),
                ImageData::Features(f) => f.clone(),
            }),
            _ => None,
        };
        let text = input.text.as_ref().map(|t| Modality {
            features: text_feats.clone(),
            present: t.present.clone(),
        });
        let image = input.image.as_ref().map(|i| Modality {
            features: image_feats.clone(),
            present: i.present.clone(),
        });
        let fused = self.fusion.forward(text, image, input.batch, &device);
        Embeddings {
            text: text_feats,
            image: image_feats,
            fused,
        }
    }

    /// Logits `[b, labels]`.
    pub fn forward(&self, input: &ModelInput<B>) -> Tensor<B, 2> {
        self.head.forward(self.embed(input).fused)
    }

    /// The masked loss (BCE with `pos_weight` or softmax CE) of `logits`.
    pub fn loss(&self, logits: Tensor<B, 2>, targets: &Targets<B>) -> Tensor<B, 1> {
        masked_loss(logits, targets, self.task, &self.pos_weight)
    }

    /// What [`Self::loss`] averages over for these host-side labels (see
    /// [`super::loss_weight`]): `loss · loss_weight` is the batch's loss sum.
    pub fn loss_weight(&self, labels: &[f32], known: &[bool]) -> f64 {
        super::loss_weight(self.task, &self.pos_weight, labels, known)
    }

    /// Probabilities from logits: sigmoid (multi-label) or softmax (multi-class).
    pub fn probabilities(&self, logits: Tensor<B, 2>) -> Tensor<B, 2> {
        match self.task {
            Task::MultiLabel => burn::tensor::activation::sigmoid(logits),
            Task::MultiClass => burn::tensor::activation::softmax(logits, 1),
        }
    }

    fn fusion_device(&self) -> B::Device {
        self.head.layers[0].weight.device()
    }

    /// Writes every weight to a safetensors file (burn's parameter names).
    pub fn save_weights(&self, path: &Path) -> Result<(), ModelError> {
        let mut store = SafetensorsStore::from_file(path).overwrite(true);
        self.save_into(&mut store)
            .map_err(|e| ModelError::WeightsFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            })
    }

    /// Every weight as the bytes of a safetensors file, serialised in memory (what
    /// [`Self::save_weights`] writes, without the file round trip).
    pub fn weights_bytes(&self) -> Result<Vec<u8>, ModelError> {
        let wrap = |e: Box<dyn std::error::Error + Send + Sync>| ModelError::WeightsFile {
            path: PathBuf::from("<memory>"),
            source: e,
        };
        let mut store = SafetensorsStore::from_bytes(None);
        self.save_into(&mut store).map_err(|e| wrap(Box::new(e)))?;
        store.get_bytes().map_err(|e| wrap(Box::new(e)))
    }

    /// `model.init_from`: the weights of a checkpoint (`step-<S>`) or export version,
    /// from the files of that entry already read and verified against its
    /// `MANIFEST.json` by the caller (`vigil_store::checkpoint::load_dir`: a torn or
    /// tampered copy is refused, never half-loaded; this crate takes verified bytes
    /// and never reads a store). The architecture must match exactly; optimizer
    /// state is not taken.
    pub fn warm_start_verified(
        self,
        mut files: std::collections::BTreeMap<String, Vec<u8>>,
        source_dir: &dyn std::fmt::Display,
    ) -> Result<Self, ModelError> {
        let refuse = |message: String| ModelError::InitFrom {
            source_dir: source_dir.to_string(),
            message,
        };
        let bytes = files
            .remove("model.safetensors")
            .ok_or_else(|| refuse("its MANIFEST.json lists no model.safetensors".into()))?;
        self.load_weights_from(
            SafetensorsStore::from_bytes(Some(bytes)),
            Path::new(&format!("{source_dir}/model.safetensors")),
        )
    }

    /// Loads every weight from a file written by [`Self::save_weights`]; the
    /// architecture must match exactly.
    pub fn load_weights(self, path: &Path) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
            ));
        }
        self.load_weights_from(SafetensorsStore::from_file(path), path)
    }

    fn load_weights_from(
        mut self,
        mut store: SafetensorsStore,
        path: &Path,
    ) -> Result<Self, ModelError> {
        let result = store
            .apply_to::<B, _>(&mut self)
            .map_err(|e| ModelError::WeightsFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            })?;
        if !result.missing.is_empty() {
            return Err(ModelError::MissingTensors {
                path: path.to_path_buf(),
                tensors: result.missing.into_iter().map(|(p, _)| p).collect(),
            });
        }
        if !result.unused.is_empty() {
            return Err(ModelError::UnusedTensors {
                path: path.to_path_buf(),
                tensors: result.unused,
            });
        }
        if let Some(e) = result.errors.first() {
            return Err(ModelError::TensorData {
                path: path.to_path_buf(),
                tensor: String::new(),
                message: e.to_string(),
            });
        }
        Ok(self)
    }
}
