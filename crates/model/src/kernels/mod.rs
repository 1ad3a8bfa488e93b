//! Faster CPU paths for the BERT block's element-wise work: exact GELU with a
//! vectorised `erf` and a custom backward, LayerNorm and the attention softmax
//! as single fused nodes, and dropout with a cheap mask.
//!
//! # Layout
//! - `math.rs`: branch-free `erf`, `exp`, GELU and its derivative on `f32` slices.
//! - `gelu.rs`: [`gelu`], a tensor GELU that uses them on the Flex backend.
//! - `dropout.rs`: [`dropout`], burn's `Dropout` arithmetic with a fast mask.
//! - `layer_norm.rs`: [`layer_norm`], LayerNorm as one node with a closed-form backward.
//! - `softmax.rs`: [`attention_probs`], scale + mask + softmax as one node.
//! - `depthwise.rs`: [`depthwise_conv2d`], a depthwise convolution whose backward
//!   is a direct kernel (EfficientNet).
//! - `affine_act.rs`: [`channel_affine`], a frozen BatchNorm's per-channel affine
//!   with an optional SiLU as one node (EfficientNet).
//! - `channel_scale.rs`: [`channel_scale`], squeeze-excitation's per-channel gate
//!   as one node (EfficientNet).
//!
//! # Why type dispatch
//! The model is generic over `B: Backend`, and burn 0.21 gives generic code no way
//! to add a fused operation with its own backward to an existing backend. A custom
//! autodiff op needs the concrete `Autodiff<Flex>` type, so [`gelu`],
//! [`layer_norm`] and [`attention_probs`] check at
//! run time (by `TypeId`, no `unsafe`) whether `B` is [`CpuAutodiff`] or
//! [`CpuBackend`] and otherwise falls back to burn's own op: every backend gives
//! the same results within float rounding, the default CPU one faster.
//!
//! [`CpuAutodiff`]: crate::backend::CpuAutodiff
//! [`CpuBackend`]: crate::backend::CpuBackend

mod affine_act;
mod channel_scale;
mod depthwise;
mod dropout;
mod gelu;
mod layer_norm;
pub mod math;
mod softmax;

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::backend::Backend;
use burn_flex::FlexTensor;

pub use affine_act::channel_affine;
pub use channel_scale::channel_scale;
pub use depthwise::depthwise_conv2d;
pub use dropout::dropout;
pub use gelu::{gelu, quick_gelu};
pub use layer_norm::layer_norm;
pub use softmax::attention_probs;

/// Set by [`use_generic_ops`]: the EfficientNet kernels step aside for burn's ops.
static GENERIC: AtomicBool = AtomicBool::new(false);

/// Makes the EfficientNet tower use burn's generic ops (the path before these
/// kernels) instead of [`depthwise_conv2d`], [`channel_affine`] and the 1×1
/// convolutions as GEMMs, for `vigil bench image --generic`: the before/after
/// figures then come from one binary in one session. Results agree within float
/// rounding either way.
pub fn use_generic_ops(generic: bool) {
    GENERIC.store(generic, Ordering::Relaxed);
}

/// Whether [`use_generic_ops`] is on.
pub fn generic_ops() -> bool {
    GENERIC.load(Ordering::Relaxed)
}

/// `value` as a `U` when `T` and `U` are the same type, else `value` back.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(same) => Ok(same.take().expect("slot is filled")),
        None => Err(slot.expect("slot is filled")),
    }
}

/// Whether `B`'s tensors live in host memory (Flex or ndarray, with or without
/// autodiff), where building a tensor from a `Vec` costs no transfer.
pub fn on_host<B: Backend>() -> bool {
    let device = TypeId::of::<B::Device>();
    #[cfg(feature = "bench-ndarray")]
    if device == TypeId::of::<burn::backend::ndarray::NdArrayDevice>() {
        return true;
    }
    device == TypeId::of::<burn_flex::FlexDevice>()
}

/// `t` with a contiguous layout covering its whole buffer (a copy only if not),
/// so kernels can read `storage()` as the tensor's elements in order.
fn dense(t: FlexTensor) -> FlexTensor {
    let exact = t.is_contiguous()
        && t.layout().start_offset() == 0
        && t.bytes().len() == t.layout().num_elements() * t.dtype().size();
    if exact { t } else { t.to_contiguous() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CpuAutodiff, CpuBackend};

    #[test]
    fn cast_only_between_equal_types() {
        assert_eq!(cast::<u32, u32>(7), Ok(7));
        assert_eq!(cast::<u32, i32>(7), Err(7));
    }

    #[test]
    fn host_backends_are_recognised() {
        assert!(on_host::<CpuBackend>());
        assert!(on_host::<CpuAutodiff>());
        #[cfg(feature = "bench-ndarray")]
        assert!(on_host::<crate::backend::NdArrayBackend>());
    }
}
