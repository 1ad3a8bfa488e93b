//! Parameter groups: which parameters train, at which learning rate, in which order.
//!
//! The training loop needs three things from the model:
//! - two learning rates (`optim.lr` for encoders, `optim.head_lr` for fusion and
//!   head) — burn's optimizers take one rate per `step`, so the loop splits the
//!   gradients with [`split_grads`] and steps once per group;
//! - weight decay off for norms and biases ([`ParamInfo::decay`]);
//! - a fixed order of the trainable parameters, identical on every rank, to pack
//!   gradients into flat f32 buckets for the all-reduce and unpack them after
//!   ([`trainable_params`], [`flatten_grads`], [`unflatten_grads`]).
//!
//! Trainability is read from the tensors themselves (`require_grad`, set by
//! `train_layers` freezing), so the description can never disagree with what
//! autodiff does. Order is burn's module visit order: struct field order, the same
//! for every replica of one config.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

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
    /// burn's id (what [`GradientsParams`] is keyed by).
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

/// Gradients of one backward pass split into (encoder, head) groups; frozen
/// parameters have none.
pub fn split_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    grads: &mut B::Gradients,
    module: &M,
) -> (GradientsParams, GradientsParams) {
    let params = trainable_params::<B, M>(module);
    let ids = |g: ParamGroup| -> Vec<ParamId> {
        params
            .iter()
            .filter(|p| p.group == g)
            .map(|p| p.id)
            .collect()
    };
    let encoder = GradientsParams::from_params(grads, module, &ids(ParamGroup::Encoder));
    let head = GradientsParams::from_params(grads, module, &ids(ParamGroup::Head));
    (encoder, head)
}

fn get_flat<B: Backend>(grads: &GradientsParams, p: &ParamInfo) -> Option<Vec<f32>> {
    let data = match p.shape.len() {
        1 => grads.get::<B, 1>(p.id).map(|t| t.into_data()),
        2 => grads.get::<B, 2>(p.id).map(|t| t.into_data()),
        3 => grads.get::<B, 3>(p.id).map(|t| t.into_data()),
        4 => grads.get::<B, 4>(p.id).map(|t| t.into_data()),
        _ => None,
    }?;
    data.convert::<f32>().into_vec::<f32>().ok()
}

/// Packs the gradients of `params` (in order) into one f32 buffer; a parameter
/// without a gradient contributes zeros, so every rank's layout is identical.
/// `B` is the inner (non-autodiff) backend the gradients live on.
pub fn flatten_grads<B: Backend>(grads: &GradientsParams, params: &[ParamInfo]) -> Vec<f32> {
    let mut out = Vec::with_capacity(params.iter().map(ParamInfo::numel).sum());
    for p in params {
        match get_flat::<B>(grads, p) {
            Some(v) => out.extend_from_slice(&v),
            None => out.extend(std::iter::repeat_n(0.0, p.numel())),
        }
    }
    out
}

/// The inverse of [`flatten_grads`]: gradients of `params` from `buffer`.
pub fn unflatten_grads<B: Backend>(
    buffer: &[f32],
    params: &[ParamInfo],
    device: &B::Device,
) -> GradientsParams {
    let mut grads = GradientsParams::new();
    let mut offset = 0;
    for p in params {
        let n = p.numel();
        let slice = &buffer[offset..offset + n];
        offset += n;
        let flat = Tensor::<B, 1>::from_floats(slice, device);
        match p.shape.len() {
            1 => grads.register::<B, 1>(p.id, flat),
            2 => grads.register::<B, 2>(p.id, flat.reshape([p.shape[0], p.shape[1]])),
            3 => grads.register::<B, 3>(p.id, flat.reshape([p.shape[0], p.shape[1], p.shape[2]])),
            4 => grads.register::<B, 4>(
                p.id,
                flat.reshape([p.shape[0], p.shape[1], p.shape[2], p.shape[3]]),
            ),
            _ => {}
        }
    }
    grads
}
