//! Fusion of the towers' pooled vectors into one feature vector for the head.
//!
//! Each present tower's pooled vector is first standardised, then layer-normalised
//! and projected to `model.fusion.dim` (`d`). Standardisation is per feature with
//! fixed statistics (identity unless set: the trainer sets it for a frozen,
//! cached tower from its training-set features, and the statistics ship in the
//! weights file): pretrained pooled features have a few channels of large scale
//! that otherwise dominate the layer norm and the projection. A row
//! without its text or image gets that modality's learned placeholder vector in
//! place of the projection, so "absent" is something the model learns about, not
//! a silent zero. Then, by `model.fusion.kind`:
//! - `concat`: `[t; v]` (2d);
//! - `gated`: a gated multimodal unit, `z = σ(W[t; v])`, `z·tanh(t) + (1-z)·tanh(v)` (d);
//! - `interaction`: Hate-CLIPper's feature-interaction matrix `t ⊗ v`, flattened (d²).
//!
//! A model with one tower passes its (projected, placeholder-masked) vector on.

use burn::module::{Module, Param, RunningState};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use vigil_config::FusionKind;

/// Epsilon of the per-modality layer norms (burn's default, set explicitly so the
/// ONNX export can state it).
pub const FUSION_NORM_EPS: f64 = 1e-5;

/// A tower's pooled vectors and which rows really have that modality.
pub struct Modality<B: Backend> {
    /// `[b, tower_dim]`; rows that are absent may hold anything.
    pub features: Option<Tensor<B, 2>>,
    /// `[b]`, true where the row has this modality.
    pub present: Tensor<B, 1, Bool>,
}

/// Fixed per-feature standardisation `(x - mean) · inv_std` (not trained).
#[derive(Module, Debug)]
pub struct Standardize<B: Backend> {
    /// Per-feature mean.
    pub mean: RunningState<Tensor<B, 1>>,
    /// Per-feature 1 / standard deviation.
    pub inv_std: RunningState<Tensor<B, 1>>,
}

impl<B: Backend> Standardize<B> {
    /// The identity on `dim` features.
    pub fn identity(dim: usize, device: &B::Device) -> Self {
        Self {
            mean: RunningState::new(Tensor::zeros([dim], device)),
            inv_std: RunningState::new(Tensor::ones([dim], device)),
        }
    }

    /// Statistics of the rows of `values` (`[rows, dim]`, row-major) where
    /// `present`; a feature with (near) zero spread keeps scale 1.
    pub fn fit(values: &[f32], dim: usize, present: &[bool], device: &B::Device) -> Self {
        let (mut sum, mut sq, mut n) = (vec![0f64; dim], vec![0f64; dim], 0usize);
        for (row, p) in values.chunks_exact(dim.max(1)).zip(present) {
            if *p {
                n += 1;
                for (k, &v) in row.iter().enumerate() {
                    sum[k] += f64::from(v);
                    sq[k] += f64::from(v) * f64::from(v);
                }
            }
        }
        let n = n.max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let inv: Vec<f32> = sum
            .iter()
            .zip(&sq)
            .map(|(s, q)| {
                let var = (q / n - (s / n) * (s / n)).max(0.0);
                if var > 1e-12 {
                    (1.0 / var.sqrt()) as f32
                } else {
                    1.0
                }
            })
            .collect();
        Self {
            mean: RunningState::new(Tensor::from_floats(mean.as_slice(), device)),
            inv_std: RunningState::new(Tensor::from_floats(inv.as_slice(), device)),
        }
    }

    /// Standardises `[b, dim]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let device = x.device();
        let dim = x.dims()[1];
        let mean = self.mean.value().to_device(&device).reshape([1, dim]);
        let inv = self.inv_std.value().to_device(&device).reshape([1, dim]);
        (x - mean) * inv
    }
}

/// Standardisation, normalisation, projections, placeholders and the fusion operator.
#[derive(Module, Debug)]
pub struct Fusion<B: Backend> {
    /// Text feature standardisation (text tower present).
    pub text_std: Option<Standardize<B>>,
    /// Image feature standardisation (image tower present).
    pub image_std: Option<Standardize<B>>,
    /// Text layer norm before the projection.
    pub text_norm: Option<LayerNorm<B>>,
    /// Image layer norm before the projection.
    pub image_norm: Option<LayerNorm<B>>,
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
        let norm = |d: Option<usize>| {
            d.map(|d| {
                LayerNormConfig::new(d)
                    .with_epsilon(FUSION_NORM_EPS)
                    .init(device)
            })
        };
        let std = |d: Option<usize>| d.map(|d| Standardize::identity(d, device));
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
            text_std: std(text_dim),
            image_std: std(image_dim),
            text_norm: norm(text_dim),
            image_norm: norm(image_dim),
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

    /// The fusion operator.
    pub fn kind(&self) -> FusionKind {
        self.kind
    }

    /// The projection width `model.fusion.dim`.
    pub fn dim(&self) -> usize {
        self.dim
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

    /// Sets the text features' standardisation (a frozen tower's statistics).
    pub fn set_text_standardization(&mut self, s: Standardize<B>) {
        if self.text_std.is_some() {
            self.text_std = Some(s);
        }
    }

    /// Sets the image features' standardisation (a frozen tower's statistics).
    pub fn set_image_standardization(&mut self, s: Standardize<B>) {
        if self.image_std.is_some() {
            self.image_std = Some(s);
        }
    }

    fn project(
        std: &Option<Standardize<B>>,
        norm: &Option<LayerNorm<B>>,
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
        let features = match std {
            Some(s) => s.forward(features),
            None => features,
        };
        let features = match norm {
            Some(n) => n.forward(features),
            None => features,
        };
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
        let t = Self::project(
            &self.text_std,
            &self.text_norm,
            &self.text_proj,
            &self.text_missing,
            text,
            batch,
        );
        let v = Self::project(
            &self.image_std,
            &self.image_norm,
            &self.image_proj,
            &self.image_missing,
            image,
            batch,
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;

    type B = CpuBackend;

    #[test]
    fn standardize_fits_present_rows_and_keeps_constant_features_unscaled() {
        let d = Default::default();
        // Rows: [1, 5], [3, 5], absent [100, -100].
        let values = [1.0, 5.0, 3.0, 5.0, 100.0, -100.0];
        let s = Standardize::<B>::fit(&values, 2, &[true, true, false], &d);
        let x = Tensor::<B, 1>::from_floats([1.0, 5.0, 3.0, 5.0], &d).reshape([2, 2]);
        let y: Vec<f32> = s.forward(x).into_data().into_vec().unwrap();
        assert_eq!(y, vec![-1.0, 0.0, 1.0, 0.0]);
        let id = Standardize::<B>::identity(2, &d);
        let x = Tensor::<B, 1>::from_floats([7.0, -2.0], &d).reshape([1, 2]);
        let y: Vec<f32> = id.forward(x).into_data().into_vec().unwrap();
        assert_eq!(y, vec![7.0, -2.0]);
    }
}
