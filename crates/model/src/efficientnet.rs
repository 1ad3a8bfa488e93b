//! torchvision's EfficientNet-B0 feature extractor in burn, loadable from a
//! PyTorch `.pth` state_dict.
//!
//! The layout mirrors `torchvision.models.efficientnet_b0().features`: a stem
//! conv, seven stages of MBConv blocks (depthwise conv + squeeze-and-excitation),
//! a 1×1 head conv to 1280 channels, then global average pooling. The checkpoint's
//! `classifier.*` may be absent or of any width: it is dropped; the tower outputs
//! the pooled 1280-vector.
//!
//! BatchNorm keeps its running statistics frozen, in training too (only the
//! affine weights can train). Fine-tuning with per-rank batches of 8–32 images
//! would otherwise replace ImageNet statistics with noisy batch ones, and ranks
//! would drift apart without a synchronised BatchNorm. Stochastic depth is not
//! applied (it is a pre-training regulariser; eval-mode torchvision skips it too).

use std::path::Path;

use burn::module::{Module, Param, RunningState};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::backend::Backend;

use super::error::ModelError;
use super::kernels::{channel_affine, channel_scale, depthwise_conv2d, generic_ops};
use super::weights::{KeyMap, WeightsFormat, load_strict, norm_param};
use vigil_config::TrainLayers;

/// BatchNorm with frozen running statistics: `y = (x - mean) / sqrt(var + eps) * γ + β`.
#[derive(Module, Debug)]
pub struct FrozenBatchNorm<B: Backend> {
    /// Scale γ.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift β.
    pub beta: Param<Tensor<B, 1>>,
    /// Running mean (never trained).
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running variance (never trained).
    pub running_var: RunningState<Tensor<B, 1>>,
    #[module(skip)]
    eps: f64,
}

impl<B: Backend> FrozenBatchNorm<B> {
    /// Identity statistics, γ = 1, β = 0.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            eps: 1e-5,
        }
    }

    /// The epsilon under the square root.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The per-channel `(scale, shift)` this normalisation is: `y = x·scale + shift`
    /// (small `[c]` tensors; γ and β's gradients flow through them).
    pub fn scale_shift(&self, device: &B::Device) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let var = self.running_var.value().to_device(device);
        let mean = self.running_mean.value().to_device(device);
        let scale = self.gamma.val() / (var + self.eps).sqrt();
        let shift = self.beta.val() - mean * scale.clone();
        (scale, shift)
    }

    /// Normalises `[b, c, h, w]`, then applies SiLU when `act`: one fused pass
    /// (see [`channel_affine`]).
    pub fn forward_act(&self, x: Tensor<B, 4>, act: bool) -> Tensor<B, 4> {
        let (scale, shift) = self.scale_shift(&x.device());
        if generic_ops() {
            let c = scale.dims()[0];
            let y = x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]);
            return if act { silu(y) } else { y };
        }
        channel_affine(x, scale, shift, act)
    }

    /// Normalises `[b, c, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_act(x, false)
    }
}

/// Conv (no bias) → BatchNorm → optional SiLU (torchvision's `Conv2dNormActivation`).
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    /// The convolution.
    pub conv: Conv2d<B>,
    /// The normalisation.
    pub bn: FrozenBatchNorm<B>,
    #[module(skip)]
    act: bool,
}

impl<B: Backend> ConvBn<B> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        act: bool,
        device: &B::Device,
    ) -> Self {
        let p = (k - 1) / 2;
        Self {
            conv: Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_groups(groups)
                .with_bias(false)
                .init(device),
            bn: FrozenBatchNorm::new(cout, device),
            act,
        }
    }

    /// Whether SiLU follows the normalisation.
    pub fn activated(&self) -> bool {
        self.act
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = &self.conv;
        let [cout, cin_per_group, k, _] = c.weight.dims();
        let y = if generic_ops() {
            c.forward(x)
        } else if k == 1 && c.groups == 1 && c.stride == [1, 1] {
            pointwise(x, c.weight.val())
        } else if cin_per_group == 1 && c.groups == cout && c.stride[0] == c.stride[1] {
            depthwise_conv2d(x, c.weight.val(), c.stride[0], (k - 1) / 2)
        } else {
            c.forward(x)
        };
        self.bn.forward_act(y, self.act)
    }
}

/// A 1×1 convolution (no bias, stride 1) as one batched GEMM on the NCHW layout:
/// `y[b] = W · x[b]` with `W` `[cout, cin]` and `x[b]` `[cin, h·w]`, no copies
/// (burn-flex's matmul broadcasts `W` over the batch by stride 0), and a backward
/// that is two GEMMs as well (`dx[b] = Wᵀ·dy[b]`, `dW = Σ_b dy[b]·x[b]ᵀ`) instead
/// of a transposed convolution and a layout-swapping weight convolution.
fn pointwise<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, cin, h, w] = x.dims();
    let cout = weight.dims()[0];
    let y = weight
        .reshape([1, cout, cin])
        .matmul(x.reshape([b, cin, h * w]));
    y.reshape([b, cout, h, w])
}

/// A 1×1 convolution with bias on `[b, c]` vectors (the squeeze-excitation's
/// `fc1`/`fc2` on pooled features) as a plain linear layer.
fn linear_1x1<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    let [cout, cin, _, _] = conv.weight.dims();
    let y = x.matmul(conv.weight.val().reshape([cout, cin]).transpose());
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, cout]),
        None => y,
    }
}

/// Squeeze-and-excitation with 1×1 convolutions (`fc1`, `fc2`).
#[derive(Module, Debug)]
pub struct SqueezeExcite<B: Backend> {
    /// Squeeze.
    pub fc1: Conv2d<B>,
    /// Excite.
    pub fc2: Conv2d<B>,
}

impl<B: Backend> SqueezeExcite<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if generic_ops() {
            let s = x.clone().mean_dim(3).mean_dim(2);
            let s = sigmoid(self.fc2.forward(silu(self.fc1.forward(s))));
            return x * s;
        }
        let [b, c, h, w] = x.dims();
        let s = x.clone().reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
        let s = sigmoid(linear_1x1(&self.fc2, silu(linear_1x1(&self.fc1, s))));
        channel_scale(x, s)
    }
}

/// One MBConv block.
#[derive(Module, Debug)]
pub struct MbConv<B: Backend> {
    /// 1×1 expansion (absent when the expansion ratio is 1).
    pub expand: Option<ConvBn<B>>,
    /// Depthwise convolution.
    pub depthwise: ConvBn<B>,
    /// Squeeze-and-excitation.
    pub se: SqueezeExcite<B>,
    /// 1×1 projection (no activation).
    pub project: ConvBn<B>,
    #[module(skip)]
    residual: bool,
}

impl<B: Backend> MbConv<B> {
    fn new(
        expand_ratio: usize,
        k: usize,
        stride: usize,
        cin: usize,
        cout: usize,
        device: &B::Device,
    ) -> Self {
        let mid = cin * expand_ratio;
        let squeeze = (cin / 4).max(1);
        let se_conv = |a: usize, b: usize| Conv2dConfig::new([a, b], [1, 1]).init(device);
        Self {
            expand: (expand_ratio != 1).then(|| ConvBn::new(cin, mid, 1, 1, 1, true, device)),
            depthwise: ConvBn::new(mid, mid, k, stride, mid, true, device),
            se: SqueezeExcite {
                fc1: se_conv(mid, squeeze),
                fc2: se_conv(squeeze, mid),
            },
            project: ConvBn::new(mid, cout, 1, 1, 1, false, device),
            residual: stride == 1 && cin == cout,
        }
    }

    /// Whether the block adds its input back (stride 1, same width).
    pub fn residual(&self) -> bool {
        self.residual
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward(y);
        }
        let y = self
            .project
            .forward(self.se.forward(self.depthwise.forward(y)));
        if self.residual { y + x } else { y }
    }
}

/// (expand ratio, kernel, stride, in, out, blocks) of B0's seven stages.
const B0_STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// Width of the pooled features.
pub const EFFICIENTNET_B0_DIM: usize = 1280;

/// EfficientNet-B0 features with global average pooling.
#[derive(Module, Debug)]
pub struct EfficientNetB0<B: Backend> {
    /// `features.0`.
    pub stem: ConvBn<B>,
    /// `features.1` … `features.7`.
    pub stages: Vec<Vec<MbConv<B>>>,
    /// `features.8`.
    pub head: ConvBn<B>,
}

/// The torchvision key of one of our EfficientNet parameter paths.
pub fn efficientnet_file_key(burn_path: &str) -> String {
    let parts: Vec<&str> = burn_path.split('.').collect();
    let bn = norm_param;
    let conv_bn = |prefix: String, rest: &[&str]| match rest {
        ["conv", p] => format!("{prefix}.0.{p}"),
        ["bn", p] => format!("{prefix}.1.{}", bn(p)),
        _ => format!("{prefix}.{}", rest.join(".")),
    };
    match parts.as_slice() {
        ["stem", rest @ ..] => conv_bn("features.0".into(), rest),
        ["head", rest @ ..] => conv_bn("features.8".into(), rest),
        ["stages", s, j, module, rest @ ..] => {
            let stage: usize = s.parse().unwrap_or(0);
            let offset = usize::from(stage != 0); // stage 0 has no expansion conv
            let base = format!("features.{}.{j}.block", stage + 1);
            match *module {
                "expand" => conv_bn(format!("{base}.0"), rest),
                "depthwise" => conv_bn(format!("{base}.{offset}"), rest),
                "se" => format!("{base}.{}.{}", offset + 1, rest.join(".")),
                "project" => conv_bn(format!("{base}.{}", offset + 2), rest),
                _ => burn_path.to_string(),
            }
        }
        _ => burn_path.to_string(),
    }
}

/// Keys of a torchvision EfficientNet file the feature extractor does not use.
pub fn efficientnet_ignorable(key: &str) -> bool {
    key.starts_with("classifier.") || key.ends_with(".num_batches_tracked")
}

impl<B: Backend> EfficientNetB0<B> {
    /// Random weights (identity BatchNorm statistics).
    pub fn new(device: &B::Device) -> Self {
        let stages = B0_STAGES
            .iter()
            .map(|&(e, k, s, cin, cout, n)| {
                (0..n)
                    .map(|i| {
                        let (cin, s) = if i == 0 { (cin, s) } else { (cout, 1) };
                        MbConv::new(e, k, s, cin, cout, device)
                    })
                    .collect()
            })
            .collect();
        Self {
            stem: ConvBn::new(3, 32, 3, 2, 1, true, device),
            stages,
            head: ConvBn::new(320, EFFICIENTNET_B0_DIM, 1, 1, 1, true, device),
        }
    }

    /// Loads a torchvision state_dict saved with `torch.save` (`.pth`).
    pub fn from_pth(path: &Path, device: &B::Device) -> Result<Self, ModelError> {
        load_strict(
            Self::new(device),
            path,
            WeightsFormat::Pytorch,
            &KeyMap {
                to_file: &efficientnet_file_key,
                ignorable: &efficientnet_ignorable,
                optional_prefix: None,
            },
        )
    }

    /// Freezes all but the top `k` of its nine units (stem, seven stages, head conv).
    pub fn freeze(mut self, train: TrainLayers) -> Self {
        let keep_from = match train {
            TrainLayers::All => return self,
            TrainLayers::None => return self.no_grad(),
            TrainLayers::Top(k) => (B0_STAGES.len() + 2).saturating_sub(k as usize),
        };
        if keep_from > 0 {
            self.stem = self.stem.no_grad();
        }
        self.stages = std::mem::take(&mut self.stages)
            .into_iter()
            .enumerate()
            .map(|(i, st)| {
                if i + 1 < keep_from {
                    st.into_iter().map(Module::no_grad).collect()
                } else {
                    st
                }
            })
            .collect();
        if keep_from > B0_STAGES.len() + 1 {
            self.head = self.head.no_grad();
        }
        self
    }

    /// Pooled features `[b, 1280]` of normalised images `[b, 3, h, w]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = self.stem.forward(images);
        for stage in &self.stages {
            for block in stage {
                x = block.forward(x);
            }
        }
        let x = self.head.forward(x);
        let [b, c, h, w] = x.dims();
        x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, TensorData, Tolerance};

    use super::*;
    use crate::backend::CpuAutodiff;
    use crate::kernels::use_generic_ops;

    /// The whole tower with Vigil's kernels against burn's generic ops: pooled
    /// features and the gradients of weights at the bottom (stem), in the middle
    /// (a strided 5×5 depthwise conv, a BatchNorm γ, squeeze-excitation) and at
    /// the top (head conv). Random weights with non-trivial BatchNorm statistics.
    #[test]
    fn kernels_match_burns_ops_forward_and_backward() {
        let device = Default::default();
        <CpuAutodiff as Backend>::seed(&device, 7);
        let mut net = EfficientNetB0::<CpuAutodiff>::new(&device);
        let stats = |bn: &mut FrozenBatchNorm<CpuAutodiff>| {
            let c = bn.gamma.dims()[0];
            bn.running_mean =
                RunningState::new(Tensor::random([c], Distribution::Normal(0.0, 0.1), &device));
            bn.running_var = RunningState::new(Tensor::random(
                [c],
                Distribution::Uniform(0.5, 1.5),
                &device,
            ));
        };
        stats(&mut net.stem.bn);
        for stage in &mut net.stages {
            for block in stage {
                stats(&mut block.depthwise.bn);
                stats(&mut block.project.bn);
                if let Some(e) = &mut block.expand {
                    stats(&mut e.bn);
                }
            }
        }
        let side = 48;
        let pixels: Vec<f32> = (0..2 * 3 * side * side)
            .map(|i| ((i * 7919) % 255) as f32 / 127.0 - 1.0)
            .collect();
        let run = |generic: bool| {
            use_generic_ops(generic);
            let x = Tensor::<CpuAutodiff, 4>::from_data(
                TensorData::new(pixels.clone(), [2, 3, side, side]),
                &device,
            );
            let y = net.forward(x);
            let w = Tensor::<CpuAutodiff, 2>::from_data(
                TensorData::new(
                    (0..2 * EFFICIENTNET_B0_DIM)
                        .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
                        .collect::<Vec<_>>(),
                    [2, EFFICIENTNET_B0_DIM],
                ),
                &device,
            );
            let grads = (y.clone() * w).sum().backward();
            use_generic_ops(false);
            let block = &net.stages[2][0];
            let grad = |t: Tensor<CpuAutodiff, 4>| t.grad(&grads).expect("grad").into_data();
            [
                y.into_data(),
                grad(net.stem.conv.weight.val()),
                grad(block.depthwise.conv.weight.val()),
                block
                    .depthwise
                    .bn
                    .gamma
                    .val()
                    .grad(&grads)
                    .expect("grad")
                    .into_data(),
                grad(block.se.fc1.weight.val()),
                grad(net.head.conv.weight.val()),
            ]
        };
        let (generic, fast) = (run(true), run(false));
        for (name, (f, g)) in [
            "features",
            "stem",
            "depthwise",
            "bn gamma",
            "se fc1",
            "head",
        ]
        .iter()
        .zip(fast.iter().zip(&generic))
        {
            assert_eq!(f.shape, g.shape, "{name}");
            let scale = g
                .to_vec::<f32>()
                .expect("f32")
                .iter()
                .fold(0.0f32, |m, v| m.max(v.abs()));
            f.assert_approx_eq::<f32>(g, Tolerance::absolute(1e-4 * scale.max(1.0)));
        }
    }
}
