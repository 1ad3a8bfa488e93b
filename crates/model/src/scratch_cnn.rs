//! A small CNN trained from scratch: the image tower of tiny configs and fast tests.
//!
//! Three stride-2 3×3 convolutions (`c`, `2c`, `2c` channels) with ReLU, then
//! global average pooling: cheap at 32×32 and still able to tell colours and
//! shapes apart, which is what the bundled sample's images encode.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use vigil_config::TrainLayers;

/// The scratch image tower.
#[derive(Module, Debug)]
pub struct ScratchCnn<B: Backend> {
    /// Convolutions, bottom first.
    pub blocks: Vec<Conv2d<B>>,
}

impl<B: Backend> ScratchCnn<B> {
    /// A tower of width `channels`.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        let c = channels.max(1);
        let widths = [(3, c), (c, 2 * c), (2 * c, 2 * c)];
        let blocks = widths
            .iter()
            .map(|&(a, b)| {
                Conv2dConfig::new([a, b], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device)
            })
            .collect();
        Self { blocks }
    }

    /// Width of the pooled output.
    pub fn output_dim(&self) -> usize {
        self.blocks.last().map_or(0, |b| b.weight.dims()[0])
    }

    /// Freezes all but the top `k` convolutions.
    pub fn freeze(mut self, train: TrainLayers) -> Self {
        let keep_from = match train {
            TrainLayers::All => return self,
            TrainLayers::None => return self.no_grad(),
            TrainLayers::Top(k) => self.blocks.len().saturating_sub(k as usize),
        };
        self.blocks = std::mem::take(&mut self.blocks)
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i < keep_from { b.no_grad() } else { b })
            .collect();
        self
    }

    /// Pooled features `[b, 2c]` of images `[b, 3, s, s]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = images;
        for conv in &self.blocks {
            x = relu(conv.forward(x));
        }
        let [b, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([b, c])
    }
}
