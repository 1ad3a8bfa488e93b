//! [`JointModel`]: CLIP or SigLIP with both towers and the image-text similarity.
//!
//! Both towers end in their projection (CLIP `visual_projection` /
//! `text_projection`; SigLIP's pooling head / text `head`), so
//! `image_embeds = v / ‖v‖` and `text_embeds = t / ‖t‖` are Hugging Face's
//! outputs of the same names, and with `s = logit_scale`:
//! - CLIP: `logits_per_image = exp(s)·⟨v̂, t̂⟩`; [`JointModel::probabilities`] is a
//!   softmax over the texts of each image (zero-shot classification: the texts
//!   compete).
//! - SigLIP: `logits_per_image = exp(s)·⟨v̂, t̂⟩ + logit_bias`; probabilities are a
//!   sigmoid per image-text pair (each pair is scored on its own, as SigLIP was
//!   trained).
//!
//! `logit_scale` (and `logit_bias`) are trainable parameters of shape `[1]`; the
//! file stores CLIP's as a 0-d tensor, which is read separately from the towers
//! (see `load_joint`).

use burn::module::{Module, Param};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::config::{JointConfig, JointKind};
use super::image::VisionTransformer;
use super::text::JointTextTransformer;

/// Smallest norm divided by when L2-normalising (a zero vector stays zero
/// instead of NaN; any real embedding is far above it).
const NORM_FLOOR: f64 = 1e-12;

/// A joint image-text model (CLIP or SigLIP).
#[derive(Module, Debug)]
pub struct JointModel<B: Backend> {
    /// The image tower, ending in its projection.
    pub vision: VisionTransformer<B>,
    /// The text tower, ending in its projection.
    pub text: JointTextTransformer<B>,
    /// `logit_scale` `[1]`; the similarity is multiplied by its exponential.
    pub logit_scale: Param<Tensor<B, 1>>,
    /// SigLIP's `logit_bias` `[1]`.
    pub logit_bias: Option<Param<Tensor<B, 1>>>,
    #[module(skip)]
    kind: JointKind,
}

impl JointConfig {
    /// Builds the model with random towers and the initial scale (and bias).
    pub fn init<B: Backend>(&self, device: &B::Device) -> JointModel<B> {
        JointModel {
            vision: self.vision.init(device),
            text: self.text.init(device),
            logit_scale: Param::from_tensor(Tensor::full([1], self.logit_scale_init, device)),
            logit_bias: self
                .logit_bias_init
                .map(|b| Param::from_tensor(Tensor::full([1], b, device))),
            kind: self.kind,
        }
    }
}

/// `x / ‖x‖₂` per row of `[n, d]`.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_FLOOR);
    x / norm
}

impl<B: Backend> JointModel<B> {
    /// Assembles a model from loaded towers and scalars (`logit_bias` for SigLIP).
    pub fn from_parts(
        vision: VisionTransformer<B>,
        text: JointTextTransformer<B>,
        logit_scale: Param<Tensor<B, 1>>,
        logit_bias: Option<Param<Tensor<B, 1>>>,
        kind: JointKind,
    ) -> Self {
        Self {
            vision,
            text,
            logit_scale,
            logit_bias,
            kind,
        }
    }

    /// CLIP or SigLIP.
    pub fn kind(&self) -> JointKind {
        self.kind
    }

    /// Unit-length image embeddings `[n_images, dim]` of normalised `images`.
    pub fn image_embeds(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        l2_normalize(self.vision.forward(images))
    }

    /// Unit-length text embeddings `[n_texts, dim]` of `ids` and float `mask`
    /// `[n_texts, s]` (SigLIP: ids padded to the maximum length, mask all ones).
    pub fn text_embeds(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        l2_normalize(self.text.forward(ids, mask))
    }

    /// `[n_images, n_texts]` logits of unit embeddings: `exp(logit_scale)·cos`,
    /// plus `logit_bias` for SigLIP.
    pub fn logits_per_image(
        &self,
        image_embeds: Tensor<B, 2>,
        text_embeds: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let cos = image_embeds.matmul(text_embeds.transpose());
        let logits = cos * self.logit_scale.val().exp().reshape([1, 1]);
        match &self.logit_bias {
            Some(b) => logits + b.val().reshape([1, 1]),
            None => logits,
        }
    }

    /// Probabilities from [`Self::logits_per_image`]: CLIP a softmax over the
    /// texts of each image (rows sum to 1), SigLIP an independent sigmoid per pair.
    pub fn probabilities(&self, logits_per_image: Tensor<B, 2>) -> Tensor<B, 2> {
        match self.kind {
            JointKind::Clip => softmax(logits_per_image, 1),
            JointKind::Siglip => sigmoid(logits_per_image),
        }
    }
}
