//! Trainable parameters as one flat `f32` vector, in a fixed order on every rank.
//!
//! This is how the trainer meets `vigil-collective` (which knows nothing of burn):
//! gradients of the trainable parameters are copied into one flat buffer in the order
//! of [`ParamLayout`], all-reduced, and consumed by the flat AdamW
//! ([`super::adamw`]), which keeps fp32 master weights and its moments as flat
//! vectors too; the updated weights are then written back into the burn module.
//! Keeping the optimizer flat makes its state trivially checkpointable (three
//! vectors and a step) and bit-exact on resume, and lets parameter groups (encoder
//! vs head learning rate, no weight decay on norms and biases) be plain ranges.
//!
//! Frozen parameters (`require_grad == false`) are not part of the layout.

use std::collections::HashMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// One trainable parameter's place in the flat vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSlot {
    /// burn's parameter id.
    pub id: ParamId,
    /// Module path, e.g. `text.layers.0.attention.query.weight`.
    pub path: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Offset of the first element in the flat vector.
    pub offset: usize,
    /// Element count.
    pub numel: usize,
}

/// The fixed order of trainable parameters, identical on every rank because it
/// follows the module's structure, not hash-map order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamLayout {
    /// Slots in module order.
    pub slots: Vec<ParamSlot>,
    /// Total elements.
    pub len: usize,
}

impl ParamLayout {
    /// Collects the trainable float parameters of `module`.
    pub fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        let mut v = Collect {
            path: Vec::new(),
            layout: ParamLayout::default(),
        };
        module.visit(&mut v);
        v.layout
    }

    fn index(&self) -> HashMap<ParamId, usize> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id, i))
            .collect()
    }
}

struct Collect {
    path: Vec<String>,
    layout: ParamLayout,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.is_require_grad() {
            return;
        }
        let shape = param.shape().to_vec();
        let numel = shape.iter().product();
        self.layout.slots.push(ParamSlot {
            id: param.id,
            path: self.path.join("."),
            shape,
            offset: self.layout.len,
            numel,
        });
        self.layout.len += numel;
    }
}

/// Copies the trainable parameters' values into `out` (length `layout.len`).
pub fn read_params<B: Backend, M: Module<B>>(module: &M, layout: &ParamLayout, out: &mut [f32]) {
    let mut v = ReadParams {
        index: layout.index(),
        layout,
        out,
    };
    module.visit(&mut v);
}

struct ReadParams<'a> {
    index: HashMap<ParamId, usize>,
    layout: &'a ParamLayout,
    out: &'a mut [f32],
}

impl<B: Backend> ModuleVisitor<B> for ReadParams<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(&i) = self.index.get(&param.id) {
            let s = &self.layout.slots[i];
            copy_tensor(param.val(), &mut self.out[s.offset..s.offset + s.numel]);
        }
    }
}

/// Copies the gradients of the trainable parameters into `out`; a parameter that
/// took no part in the loss gets zeros (every rank must send the same layout).
pub fn read_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &B::Gradients,
    layout: &ParamLayout,
    out: &mut [f32],
) {
    let mut v = ReadGrads::<B> {
        index: layout.index(),
        layout,
        grads,
        out,
    };
    module.visit(&mut v);
}

struct ReadGrads<'a, B: AutodiffBackend> {
    index: HashMap<ParamId, usize>,
    layout: &'a ParamLayout,
    grads: &'a B::Gradients,
    out: &'a mut [f32],
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ReadGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(&i) = self.index.get(&param.id) {
            let s = &self.layout.slots[i];
            let dst = &mut self.out[s.offset..s.offset + s.numel];
            match param.val().grad(self.grads) {
                Some(g) => copy_tensor(g, dst),
                None => dst.fill(0.0),
            }
        }
    }
}

/// Writes `flat` back into the trainable parameters of `module`, keeping ids and
/// `require_grad`.
pub fn write_params<B: Backend, M: Module<B>>(module: M, layout: &ParamLayout, flat: &[f32]) -> M {
    let mut m = WriteParams {
        index: layout.index(),
        layout,
        flat,
    };
    module.map(&mut m)
}

struct WriteParams<'a> {
    index: HashMap<ParamId, usize>,
    layout: &'a ParamLayout,
    flat: &'a [f32],
}

impl<B: Backend> ModuleMapper<B> for WriteParams<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(&i) = self.index.get(&param.id) else {
            return param;
        };
        let s = &self.layout.slots[i];
        let (id, tensor, mapper) = param.consume();
        let device = tensor.device();
        let require_grad = tensor.is_require_grad();
        let data = TensorData::new(
            self.flat[s.offset..s.offset + s.numel].to_vec(),
            s.shape.clone(),
        );
        let mut fresh = Tensor::<B, D>::from_data(data.convert_dtype(tensor.dtype()), &device);
        if require_grad {
            fresh = fresh.require_grad();
        }
        Param::from_mapped_value(id, fresh, mapper)
    }
}

fn copy_tensor<B: Backend, const D: usize>(t: Tensor<B, D>, dst: &mut [f32]) {
    let data = t.into_data().convert::<f32>();
    let src = data.as_slice::<f32>().expect("converted to f32 above");
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};

    use super::*;

    // The training backend (ndarray is only compiled with `bench-ndarray`).
    type TB = vigil_model::backend::CpuAutodiff;

    #[derive(Module, Debug)]
    // burn's derive recognises the backend parameter by its name, `B`.
    struct Tiny<B: Backend> {
        proj: Linear<B>,
        norm: LayerNorm<B>,
        frozen: Linear<B>,
    }

    fn tiny() -> Tiny<TB> {
        let dev = Default::default();
        Tiny {
            proj: LinearConfig::new(3, 4).init(&dev),
            norm: LayerNormConfig::new(4).init(&dev),
            frozen: LinearConfig::new(4, 2).init(&dev).no_grad(),
        }
    }

    #[test]
    fn layout_lists_trainable_params_in_module_order() {
        let layout = ParamLayout::of::<TB, _>(&tiny());
        let paths: Vec<&str> = layout.slots.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            ["proj.weight", "proj.bias", "norm.gamma", "norm.beta"]
        );
        assert_eq!(layout.len, 12 + 4 + 4 + 4);
        assert_eq!(layout.slots[2].offset, 16);
    }

    #[test]
    fn params_round_trip_and_grads_match_burn() {
        let m = tiny();
        let layout = ParamLayout::of::<TB, _>(&m);
        let mut flat = vec![0.0; layout.len];
        read_params::<TB, _>(&m, &layout, &mut flat);
        let bumped: Vec<f32> = flat.iter().map(|v| v + 1.0).collect();
        let m = write_params::<TB, _>(m, &layout, &bumped);
        let mut again = vec![0.0; layout.len];
        read_params::<TB, _>(&m, &layout, &mut again);
        assert_eq!(again, bumped);
        assert_eq!(
            ParamLayout::of::<TB, _>(&m),
            layout,
            "ids and require_grad survive a write"
        );

        let x = Tensor::<TB, 2>::ones([2, 3], &Default::default());
        let y = m.frozen.forward(m.norm.forward(m.proj.forward(x)));
        let grads = y.sum().backward();
        let mut g = vec![f32::NAN; layout.len];
        read_grads::<TB, _>(&m, &grads, &layout, &mut g);
        let direct = m.proj.bias.as_ref().unwrap().val().grad(&grads).unwrap();
        assert_eq!(&g[12..16], direct.into_data().as_slice::<f32>().unwrap());
        assert!(g.iter().all(|v| v.is_finite()));
    }
}
