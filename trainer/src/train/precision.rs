//! Mixed precision: `train.precision: bf16 | f16`.
//!
//! The recipe: the module's weights and activations in the half type (burn 0.21
//! tensors carry their dtype; the device's default float dtype, set once before any
//! tensor exists, makes every weight loaded and every input built half), the loss and
//! its reduction in f32 (the logits and targets are cast up before the loss), fp32
//! master weights and AdamW moments (the flat host optimizer, as in f32), gradients
//! read back as f32 into the flat buffer. f16's narrow range needs dynamic loss
//! scaling ([`LossScaler`]): the loss is multiplied by a scale before backward, the
//! reduced gradient divided by it, and a step whose gradient overflowed is skipped
//! and the scale halved — every rank sees the same reduced buffer, so every rank
//! skips the same steps. bf16 has f32's range and needs no scaling.
//!
//! Weights loaded from files (pretrained towers, `model.init_from`) come in as f32
//! whatever the device's default: [`cast_float_params`] brings the whole module to
//! the half type once, after it is built.
//!
//! The CPU runs the same code path: burn-flex 0.21 has bf16/f16 tensors (matmul,
//! conv, reductions that accumulate in f32, casts with a backward in burn-autodiff),
//! and Vigil's fused CPU kernels (`model/kernels/`) check the dtype and hand half
//! tensors to burn's own ops. It is there to test the recipe without a GPU (and for
//! memory): a CPU without bf16 arithmetic gains no speed from it — burn-flex
//! converts to f32 around each op.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{FloatDType, Tensor};

use vigil_config::Precision;

/// The dtype of weights and activations for `p`.
pub fn float_dtype(p: Precision) -> FloatDType {
    match p {
        Precision::F32 => FloatDType::F32,
        Precision::Bf16 => FloatDType::BF16,
        Precision::F16 => FloatDType::F16,
    }
}

/// Makes `p` the default float dtype of `device`: every tensor created on it from now
/// on (weights loaded, inputs built) is of that type. Must run before the first
/// tensor exists on the device; f32 leaves the device as it is.
pub fn set_device_precision<B: Backend>(device: &B::Device, p: Precision) -> Result<(), String> {
    if p == Precision::F32 {
        return Ok(());
    }
    let int = <B::IntElem as burn::tensor::Element>::dtype();
    burn::tensor::set_default_dtypes::<B>(device, float_dtype(p), int).map_err(|e| e.to_string())
}

/// `module` with every float parameter — trainable or frozen — in `dtype`, ids and
/// `require_grad` kept. The device's default dtype makes weights *created* on it half,
/// but weights *loaded* (pretrained towers, `model.init_from`) keep the file's f32:
/// without this, a pretrained MiniLM would train in f32 under `precision: bf16`, and
/// meet half-precision activations (masks, position ids' embeddings) in one op — a
/// dtype-mismatch panic in burn-flex. Called once, right after the model is built.
pub fn cast_float_params<B: AutodiffBackend, M: Module<B>>(module: M, dtype: FloatDType) -> M {
    module.map(&mut CastParams { dtype })
}

struct CastParams {
    dtype: FloatDType,
}

impl<B: AutodiffBackend> ModuleMapper<B> for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if param.dtype() == self.dtype.into() {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        // A fresh leaf (the cast itself is not part of any graph).
        let mut fresh = Tensor::<B, D>::from_inner(tensor.inner().cast(self.dtype));
        if require_grad {
            fresh = fresh.require_grad();
        }
        Param::from_mapped_value(id, fresh, mapper)
    }
}

/// What the scaler decided about a step's reduced gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleVerdict {
    /// Finite: divide the gradient by `unscale` and take the step.
    Step {
        /// The factor the gradient was multiplied by.
        unscale: f32,
    },
    /// Overflowed (inf or NaN somewhere): skip the update; the scale was halved.
    Skip {
        /// The scale the next step uses.
        next_scale: f32,
    },
}

/// Dynamic loss scaling for f16 (PyTorch `GradScaler`'s defaults: start at 2¹⁶,
/// halve on overflow, double after 2000 finite steps in a row).
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    scale: f32,
    good_steps: u32,
    growth_interval: u32,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self::new(65536.0, 2000)
    }
}

impl LossScaler {
    /// A scaler starting at `scale` that doubles after `growth_interval` good steps.
    pub fn new(scale: f32, growth_interval: u32) -> Self {
        Self {
            scale,
            good_steps: 0,
            growth_interval: growth_interval.max(1),
        }
    }

    /// The factor this step's loss is multiplied by.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Decides on the step whose reduced (still scaled) gradient is `grads`.
    pub fn after_reduce(&mut self, grads: &[f32]) -> ScaleVerdict {
        let used = self.scale;
        if grads.iter().all(|g| g.is_finite()) {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.good_steps = 0;
                self.scale = (self.scale * 2.0).min(f32::MAX / 2.0);
            }
            ScaleVerdict::Step { unscale: used }
        } else {
            self.good_steps = 0;
            self.scale = (self.scale / 2.0).max(1.0);
            ScaleVerdict::Skip {
                next_scale: self.scale,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_follow_the_config() {
        assert_eq!(float_dtype(Precision::F32), FloatDType::F32);
        assert_eq!(float_dtype(Precision::Bf16), FloatDType::BF16);
        assert_eq!(float_dtype(Precision::F16), FloatDType::F16);
    }

    #[test]
    fn f32_leaves_the_device_alone() {
        // Would fail with AlreadyInitialized (tests create tensors) if it touched it.
        let d = Default::default();
        let _t = burn::tensor::Tensor::<vigil_model::backend::CpuBackend, 1>::zeros([1], &d);
        assert!(
            set_device_precision::<vigil_model::backend::CpuBackend>(&d, Precision::F32).is_ok()
        );
    }

    #[test]
    fn loaded_weights_are_cast_with_ids_and_require_grad_kept() {
        use burn::nn::{Linear, LinearConfig};
        type AB = vigil_model::backend::CpuAutodiff;
        let d = Default::default();
        let trainable: Linear<AB> = LinearConfig::new(3, 2).init(&d);
        let frozen: Linear<AB> = LinearConfig::new(2, 2).init(&d).no_grad();
        let ids = (trainable.weight.id, frozen.weight.id);
        let want = trainable.weight.val().into_data().convert::<f32>();
        let (t, f) = (
            cast_float_params::<AB, _>(trainable, FloatDType::BF16),
            cast_float_params::<AB, _>(frozen, FloatDType::BF16),
        );
        assert_eq!(t.weight.val().dtype(), burn::tensor::DType::BF16);
        assert_eq!(
            f.bias.as_ref().unwrap().val().dtype(),
            burn::tensor::DType::BF16
        );
        assert_eq!((t.weight.id, f.weight.id), ids);
        assert!(t.weight.is_require_grad() && !f.weight.is_require_grad());
        let got = t.weight.val().into_data().convert::<f32>();
        got.assert_approx_eq::<f32>(&want, burn::tensor::Tolerance::relative(1e-2));
    }

    #[test]
    fn overflow_skips_and_halves() {
        let mut s = LossScaler::new(1024.0, 3);
        assert_eq!(
            s.after_reduce(&[1.0, f32::INFINITY]),
            ScaleVerdict::Skip { next_scale: 512.0 }
        );
        assert_eq!(
            s.after_reduce(&[f32::NAN]),
            ScaleVerdict::Skip { next_scale: 256.0 }
        );
        assert_eq!(
            s.after_reduce(&[1.0]),
            ScaleVerdict::Step { unscale: 256.0 }
        );
    }

    #[test]
    fn growth_after_the_interval_of_good_steps() {
        let mut s = LossScaler::new(8.0, 2);
        assert_eq!(s.after_reduce(&[0.5]), ScaleVerdict::Step { unscale: 8.0 });
        assert_eq!(s.after_reduce(&[0.5]), ScaleVerdict::Step { unscale: 8.0 });
        assert_eq!(s.scale(), 16.0);
        // An overflow resets the count.
        s.after_reduce(&[f32::INFINITY]);
        assert_eq!(s.scale(), 8.0);
        s.after_reduce(&[0.0]);
        assert_eq!(s.scale(), 8.0);
    }

    #[test]
    fn the_scale_never_drops_below_one() {
        let mut s = LossScaler::new(2.0, 10);
        for _ in 0..5 {
            s.after_reduce(&[f32::NAN]);
        }
        assert_eq!(s.scale(), 1.0);
    }
}
