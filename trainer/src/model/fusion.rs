//! Fusion of the towers' pooled vectors into one feature vector for the head.
//!
//! Each present tower is first projected to `model.fusion.dim` (`d`). A row
//! without its text or image gets that modality's learned placeholder vector in
//! place of the projection, so "absent" is something the model learns about, not
//! a silent zero. Then, by `model.fusion.kind`:
//! - `concat`: `[t; v]` (2d);
//! - `gated`: a gated multimodal unit, `z = σ(W[t; v])`, `z·tanh(t) + (1-z)·tanh(v)` (d);
//! - `interaction`: Hate-CLIPper's feature-interaction matrix `t ⊗ v`, flattened (d²).
//!
//! A model with one tower passes its (projected, placeholder-masked) vector on.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use crate::config::FusionKind;

/// A tower's pooled vectors and which rows really have that modality.
pub struct Modality<B: Backend> {
    /// `[b, tower_dim]`; rows that are absent may hold anything.
    pub features: Option<Tensor<B, 2>>,
    /// `[b]`, true where the row has this modality.
    pub present: Tensor<B, 1, Bool>,
}

/// Projections, placeholders and the fusion operator.
#[derive(Module, Debug)]
pub struct Fusion<B: Backend> {
    /// Text projection (text tower present).
    pub text_proj: Option<Linear<B>>,
    /// Image projection (image tower present).
    pub image_proj: Option<Linear<B>>,
    /// Learned stand-in for a missing text.
    pub text_missing: Option<Param<Tensor<B, 1>>>,
    /// Learned stand-in for a missing image.
    pub image_missing: Option<Param<Tensor<B, 1>>>,
    /// Gate of `gated` fusion.
    pub gate: Option<Linear<B>>,
    #[module(skip)]
    kind: FusionKind,
    #[module(skip)]
    dim: usize,
}

impl<B: Backend> Fusion<B> {
    /// Fusion of towers of widths `text_dim` / `image_dim` (None: no such tower).
    pub fn new(
        kind: FusionKind,
        dim: usize,
        text_dim: Option<usize>,
        image_dim: Option<usize>,
        device: &B::Device,
    ) -> Self {
        let proj = |d: Option<usize>| d.map(|d| LinearConfig::new(d, dim).init(device));
        let placeholder = |d: Option<usize>| {
            d.map(|_| {
                Param::from_tensor(Tensor::random(
                    [dim],
                    burn::tensor::Distribution::Normal(0.0, 0.02),
                    device,
                ))
            })
        };
        let both = text_dim.is_some() && image_dim.is_some();
        Self {
            text_proj: proj(text_dim),
            image_proj: proj(image_dim),
            text_missing: placeholder(text_dim),
            image_missing: placeholder(image_dim),
            gate: (both && kind == FusionKind::Gated)
                .then(|| LinearConfig::new(2 * dim, dim).init(device)),
            kind,
            dim,
        }
    }

    /// Width of the fused vector.
    pub fn output_dim(&self) -> usize {
        let both = self.text_proj.is_some() && self.image_proj.is_some();
        match (both, self.kind) {
            (false, _) => self.dim,
            (true, FusionKind::Concat) => 2 * self.dim,
            (true, FusionKind::Gated) => self.dim,
            (true, FusionKind::Interaction) => self.dim * self.dim,
        }
    }

    fn project(
        proj: &Option<Linear<B>>,
        missing: &Option<Param<Tensor<B, 1>>>,
        m: Option<Modality<B>>,
        batch: usize,
    ) -> Option<Tensor<B, 2>> {
        let (proj, missing) = (proj.as_ref()?, missing.as_ref()?);
        let dim = missing.dims()[0];
        let fill = missing.val().reshape([1, dim]).expand([batch, dim]);
        let Some(m) = m else {
            return Some(fill);
        };
        let Some(features) = m.features else {
            return Some(fill);
        };
        let present = m.present.reshape([batch, 1]).expand([batch, dim]);
        let projected = proj.forward(features);
        Some(fill.mask_where(present, projected))
    }

    /// Fused vectors `[b, output_dim]`. A modality passed as `None` counts as absent
    /// on every row.
    pub fn forward(
        &self,
        text: Option<Modality<B>>,
        image: Option<Modality<B>>,
        batch: usize,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        let t = Self::project(&self.text_proj, &self.text_missing, text, batch);
        let v = Self::project(&self.image_proj, &self.image_missing, image, batch);
        match (t, v) {
            (Some(t), Some(v)) => match self.kind {
                FusionKind::Concat => Tensor::cat(vec![t, v], 1),
                FusionKind::Gated => {
                    let gate = self.gate.as_ref().expect("gated fusion has a gate");
                    let z = sigmoid(gate.forward(Tensor::cat(vec![t.clone(), v.clone()], 1)));
                    z.clone() * t.tanh() + (z.neg() + 1.0) * v.tanh()
                }
                FusionKind::Interaction => {
                    let d = self.dim;
                    let outer = t.reshape([batch, d, 1]) * v.reshape([batch, 1, d]);
                    outer.reshape([batch, d * d])
                }
            },
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => Tensor::zeros([batch, self.dim], device),
        }
    }
}
