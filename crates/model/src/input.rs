//! [`ModelInput`]: one batch as tensors, built from the data loader's plain vectors.
//!
//! [`ModelInput::from_batch`] is the one road from a data-layer [`Batch`] to the
//! model: training, evaluation, the feature-cache build, `vigil predict` / `vigil
//! eval` and `vigil embed` all call it, so a row is tokenized, its image placed
//! and its cached features looked up the same way everywhere.
//!
//! The loader hands over `texts: Vec<Option<String>>`, `images: Vec<f32>`
//! (`[b, 3, s, s]`, resized and ImageNet-normalised, zeros where absent) and
//! `image_present: Vec<bool>`. Text is tokenized here (the tokenizer belongs to
//! the model: it must match the embedding table). A row without text is encoded
//! as the empty string and flagged absent, so the fusion layer swaps in its
//! placeholder; a batch where no row has a modality skips that tower entirely.
//!
//! A tower's input may instead be its own output computed earlier — a frozen
//! tower's cached features ([`TextData::Features`], [`ImageData::Features`]):
//! the model then skips the tower and fuses the given vectors.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::error::ModelError;
use super::features::SplitFeatures;
use super::loss::Targets;
use super::tokenizer::TextTokenizer;
use vigil_data::Batch;

/// What the text tower receives.
#[derive(Debug, Clone)]
pub enum TextData<B: Backend> {
    /// Tokens to encode.
    Tokens {
        /// `[b, s]` token ids.
        ids: Tensor<B, 2, Int>,
        /// `[b, s]` 1.0 for tokens, 0.0 for padding.
        mask: Tensor<B, 2>,
    },
    /// The tower's pooled output `[b, text_dim]`, computed earlier (a frozen
    /// tower's cached features): the tower is skipped.
    Features(Tensor<B, 2>),
}

/// What the image tower receives.
#[derive(Debug, Clone)]
pub enum ImageData<B: Backend> {
    /// `[b, 3, s, s]` normalised pixels.
    Pixels(Tensor<B, 4>),
    /// The tower's pooled output `[b, image_dim]`, computed earlier: the tower is
    /// skipped.
    Features(Tensor<B, 2>),
}

/// Tokens (or cached features) and presence of a batch's texts.
#[derive(Debug, Clone)]
pub struct TextInput<B: Backend> {
    /// Tokens or features.
    pub data: TextData<B>,
    /// `[b]` true where the row has text.
    pub present: Tensor<B, 1, Bool>,
    /// Whether any row has text.
    pub any: bool,
}

/// Pixels (or cached features) and presence of a batch's images.
#[derive(Debug, Clone)]
pub struct ImageInput<B: Backend> {
    /// Pixels or features.
    pub data: ImageData<B>,
    /// `[b]` true where the row has an image.
    pub present: Tensor<B, 1, Bool>,
    /// Whether any row has an image.
    pub any: bool,
}

/// A batch for [`super::ModerationModel::forward`].
#[derive(Debug, Clone)]
pub struct ModelInput<B: Backend> {
    /// Rows.
    pub batch: usize,
    /// Texts; `None` when the model has no text tower.
    pub text: Option<TextInput<B>>,
    /// Images; `None` when the model has no image tower or no image was given.
    pub image: Option<ImageInput<B>>,
}

impl<B: Backend> ModelInput<B> {
    /// The model's input and targets for a loader `batch`. `tokenizer` is the
    /// model's (None: no text tower); towers with a table in `cached` get their
    /// features from it (by dataset row, [`Batch::rows`]) instead of running.
    /// Images are used when the batch carries them (the loader was asked for
    /// them: the model has an image tower that is not cached).
    pub fn from_batch(
        tokenizer: Option<&TextTokenizer>,
        batch: &Batch,
        cached: Option<&SplitFeatures>,
        device: &B::Device,
    ) -> Result<(Self, Targets<B>), ModelError> {
        let text = cached.and_then(|c| c.text.as_ref());
        let image = cached.and_then(|c| c.image.as_ref());
        let mut input = Self::from_vecs(
            if text.is_some() { None } else { tokenizer },
            &batch.texts,
            if image.is_some() { &[] } else { &batch.images },
            &batch.image_present,
            batch.image_size,
            device,
        )?;
        if let Some(t) = text {
            let present: Vec<bool> = batch.texts.iter().map(Option::is_some).collect();
            input = input.with_text_features(t.gather(&batch.rows), t.dim, &present, device)?;
        }
        if let Some(t) = image {
            input = input.with_image_features(
                t.gather(&batch.rows),
                t.dim,
                &batch.image_present,
                device,
            )?;
        }
        let targets = Targets::from_vecs(
            &batch.labels,
            &batch.label_known,
            batch.len(),
            batch.num_labels,
            device,
        )?;
        Ok((input, targets))
    }

    /// Builds a batch. `tokenizer` is the model's (None: no text tower, texts are
    /// ignored). `images` may be empty (no image tower, or no image in the batch);
    /// otherwise it holds `batch × 3 × image_size²` values.
    pub fn from_vecs(
        tokenizer: Option<&TextTokenizer>,
        texts: &[Option<String>],
        images: &[f32],
        image_present: &[bool],
        image_size: usize,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let batch = texts.len().max(image_present.len());
        let text = match tokenizer {
            None => None,
            Some(tok) => {
                if texts.len() != batch {
                    return Err(ModelError::batch(format!(
                        "{} texts for a batch of {batch}",
                        texts.len()
                    )));
                }
                Some(Self::text(tok, texts, device)?)
            }
        };
        let image = if images.is_empty() {
            None
        } else {
            let want = batch * 3 * image_size * image_size;
            if images.len() != want || image_present.len() != batch {
                return Err(ModelError::batch(format!(
                    "images hold {} values and image_present {} rows; a batch of {batch} \
                     {image_size}×{image_size} RGB images needs {want} values",
                    images.len(),
                    image_present.len()
                )));
            }
            let pixels = Tensor::<B, 1>::from_floats(images, device)
                .reshape([batch, 3, image_size, image_size]);
            Some(ImageInput {
                data: ImageData::Pixels(pixels),
                present: bools(image_present, device),
                any: image_present.iter().any(|&p| p),
            })
        };
        Ok(Self { batch, text, image })
    }

    /// Replaces the text input by the text tower's features `[batch × dim]`
    /// (row-major) for rows where `present`; the tower will not run.
    pub fn with_text_features(
        mut self,
        features: Vec<f32>,
        dim: usize,
        present: &[bool],
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let (features, present, any) = self.features(features, dim, present, device)?;
        self.text = Some(TextInput {
            data: TextData::Features(features),
            present,
            any,
        });
        Ok(self)
    }

    /// Replaces the image input by the image tower's features `[batch × dim]`
    /// (row-major) for rows where `present`; the tower will not run.
    pub fn with_image_features(
        mut self,
        features: Vec<f32>,
        dim: usize,
        present: &[bool],
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let (features, present, any) = self.features(features, dim, present, device)?;
        self.image = Some(ImageInput {
            data: ImageData::Features(features),
            present,
            any,
        });
        Ok(self)
    }

    /// Checked features tensor, presence tensor and whether any row is present.
    fn features(
        &self,
        features: Vec<f32>,
        dim: usize,
        present: &[bool],
        device: &B::Device,
    ) -> Result<CachedFeatures<B>, ModelError> {
        if features.len() != self.batch * dim || present.len() != self.batch {
            return Err(ModelError::batch(format!(
                "{} feature values and {} presence flags for a batch of {} rows of width {dim}",
                features.len(),
                present.len(),
                self.batch
            )));
        }
        Ok((
            Tensor::from_data(TensorData::new(features, [self.batch, dim]), device),
            bools(present, device),
            present.iter().any(|&p| p),
        ))
    }

    fn text(
        tok: &TextTokenizer,
        texts: &[Option<String>],
        device: &B::Device,
    ) -> Result<TextInput<B>, ModelError> {
        let strs: Vec<&str> = texts.iter().map(|t| t.as_deref().unwrap_or("")).collect();
        let enc = tok.encode_batch(&strs)?;
        let present: Vec<bool> = texts.iter().map(Option::is_some).collect();
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(enc.ids, [enc.batch, enc.seq_len]),
            device,
        );
        let mask =
            Tensor::<B, 2>::from_data(TensorData::new(enc.mask, [enc.batch, enc.seq_len]), device);
        Ok(TextInput {
            data: TextData::Tokens { ids, mask },
            present: bools(&present, device),
            any: present.iter().any(|&p| p),
        })
    }
}

/// A checked features tensor, the presence tensor, and whether any row is present.
type CachedFeatures<B> = (Tensor<B, 2>, Tensor<B, 1, Bool>, bool);

fn bools<B: Backend>(v: &[bool], device: &B::Device) -> Tensor<B, 1, Bool> {
    Tensor::<B, 1, Bool>::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}
