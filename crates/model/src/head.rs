//! The classifier head: an MLP from the fused vector to one logit per label.
//!
//! `dropout → linear → ReLU` per hidden width, then `dropout → linear` to the
//! labels. Logits are returned raw: the loss and the caller pick sigmoid
//! (multi-label) or softmax (multi-class).

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

/// The MLP head.
#[derive(Module, Debug)]
pub struct Head<B: Backend> {
    /// Linear layers, input first; the last one outputs the logits.
    pub layers: Vec<Linear<B>>,
    dropout: Dropout,
}

impl<B: Backend> Head<B> {
    /// `input` → `hidden…` → `labels`.
    pub fn new(
        input: usize,
        hidden: &[usize],
        labels: usize,
        dropout: f64,
        device: &B::Device,
    ) -> Self {
        let mut widths = vec![input];
        widths.extend_from_slice(hidden);
        widths.push(labels);
        let layers = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Self {
            layers,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// Logits `[b, labels]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = self.layers.len();
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(self.dropout.forward(x));
            if i + 1 < n {
                x = relu(x);
            }
        }
        x
    }
}
