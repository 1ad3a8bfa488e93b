//! Parameter groups: which parameters train, at which learning rate, in which order.
//!
//! The training loop needs three things from the model:
//! - two learning rates (`optim.lr` for encoders, `optim.head_lr` for fusion and
//!   head): [`ParamInfo::group`];
//! - weight decay off for norms and biases ([`ParamInfo::decay`]);
//! - a fixed order of the trainable parameters, identical on every rank
//!   ([`trainable_params`]); the loop packs gradients into one flat buffer in that
//!   order itself (`train::flat`).
//!
//! Trainability is read from the tensors themselves (`require_grad`, set by
//! `train_layers` freezing), so the description can never disagree with what
//! autodiff does. Order is burn's module visit order: struct field order, the same
//! for every replica of one config.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Which optimizer group a parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamGroup {
    /// Text or image tower: `optim.lr`.
    Encoder,
    /// Fusion and head: `optim.head_lr`.
    Head,
    /// Not trained (frozen layers, BatchNorm statistics).
    Frozen,
}

/// One parameter tensor.
#[derive(Debug, Clone)]
pub struct ParamInfo {
    /// burn's id (what [`GradientsParams`](burn::optim::GradientsParams) is keyed by).
    pub id: ParamId,
    /// Dotted module path, e.g. `text.encoder.layers.5.ffn_in.weight`.
    pub path: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Optimizer group.
    pub group: ParamGroup,
    /// Whether AdamW weight decay applies (not to biases, norms, embeddings'
    /// LayerNorm, BatchNorm affine or placeholders).
    pub decay: bool,
}

impl ParamInfo {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

struct Collect {
    path: Vec<String>,
    out: Vec<ParamInfo>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let path = self.path.join(".");
        let group = if !tensor.is_require_grad() {
            ParamGroup::Frozen
        } else if path.starts_with("text.") || path.starts_with("image.") {
            ParamGroup::Encoder
        } else {
            ParamGroup::Head
        };
        let last = self.path.last().map(String::as_str).unwrap_or("");
        let decay = D >= 2 && !matches!(last, "gamma" | "beta" | "bias");
        self.out.push(ParamInfo {
            id: param.id,
            path,
            shape: tensor.dims().to_vec(),
            group,
            decay,
        });
    }
}

/// Every float parameter of `module`, in visit order, with its group. On a
/// backend without autodiff every parameter reports [`ParamGroup::Frozen`].
pub fn all_params<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamInfo> {
    let mut c = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut c);
    c.out
}

/// The trainable parameters of `module` in a fixed order (the all-reduce order).
pub fn trainable_params<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamInfo> {
    all_params(module)
        .into_iter()
        .filter(|p| p.group != ParamGroup::Frozen)
        .collect()
}
