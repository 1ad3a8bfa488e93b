//! Gradient buckets on the device: the trainable parameters' gradients flattened into
//! a few `f32` tensors where they were computed, so a CUDA step reduces, clips and
//! applies them without a host round trip (the host path, [`super::flat`], copies
//! each gradient into one host buffer instead; the CPU backends keep that one).
//!
//! A bucket is a run of whole parameters of the [`ParamLayout`], in layout order, so
//! bucket `b` is the range `offset..offset + len` of the flat vector the host path
//! uses: the optimizer's parameter groups, checkpoints and replica checksums mean
//! the same thing on both paths. Parameters are never split (a parameter larger than
//! the cap gets a bucket of its own). Few, large buckets: the step does not overlap
//! communication with the backward (burn 0.21 has no per-parameter gradient hook),
//! so more buckets would only mean more NCCL calls.

use std::collections::HashMap;
use std::ops::Range;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, FloatDType, Tensor};

use super::flat::ParamLayout;

/// Elements per bucket: 32 Mi `f32` (128 MiB). MiniLM (22 M trainable) or MiniLM +
/// EfficientNet-B0 (27 M) is one bucket; a larger model gets a few.
pub const BUCKET_CAP: usize = 32 << 20;

/// One bucket: the layout's slots `slots`, elements `offset..offset + len` of the flat
/// vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Indices into [`ParamLayout::slots`].
    pub slots: Range<usize>,
    /// First element in the flat vector.
    pub offset: usize,
    /// Elements.
    pub len: usize,
}

impl Bucket {
    /// The bucket's range of the flat vector.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// The layout cut into buckets of at most `cap` elements (a larger parameter alone);
/// every slot in exactly one bucket, in order. An empty layout has no bucket.
pub fn buckets(layout: &ParamLayout, cap: usize) -> Vec<Bucket> {
    let cap = cap.max(1);
    let mut out: Vec<Bucket> = Vec::new();
    for (i, s) in layout.slots.iter().enumerate() {
        match out.last_mut() {
            Some(b) if b.len + s.numel <= cap => {
                b.slots.end = i + 1;
                b.len += s.numel;
            }
            _ => out.push(Bucket {
                slots: i..i + 1,
                offset: s.offset,
                len: s.numel,
            }),
        }
    }
    out
}

/// The gradients of `module`'s trainable parameters as one `f32` tensor per bucket, on
/// the device they were computed on; a parameter that took no part in the loss gets
/// zeros (every rank reduces the same layout). Half-precision gradients are cast up.
pub fn flatten_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &B::Gradients,
    layout: &ParamLayout,
    buckets: &[Bucket],
    device: &burn::tensor::Device<B::InnerBackend>,
) -> Vec<Tensor<B::InnerBackend, 1>> {
    let mut v = CollectGrads::<B> {
        index: index(layout),
        grads,
        found: (0..layout.slots.len()).map(|_| None).collect(),
    };
    module.visit(&mut v);
    let mut found = v.found;
    buckets
        .iter()
        .map(|b| {
            let parts: Vec<Tensor<B::InnerBackend, 1>> = b
                .slots
                .clone()
                .map(|i| {
                    found[i].take().unwrap_or_else(|| {
                        Tensor::zeros([layout.slots[i].numel], (device, DType::F32))
                    })
                })
                .collect();
            if parts.len() == 1 {
                parts.into_iter().next().expect("one part")
            } else {
                Tensor::cat(parts, 0)
            }
        })
        .collect()
}

fn index(layout: &ParamLayout) -> HashMap<ParamId, usize> {
    layout
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect()
}

struct CollectGrads<'a, B: AutodiffBackend> {
    index: HashMap<ParamId, usize>,
    grads: &'a B::Gradients,
    found: Vec<Option<Tensor<B::InnerBackend, 1>>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for CollectGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(&i) = self.index.get(&param.id)
            && let Some(g) = param.val().grad(self.grads)
        {
            let n = g.shape().num_elements();
            let g = g.reshape([n]);
            self.found[i] = Some(if g.dtype() == DType::F32 {
                g
            } else {
                g.cast(FloatDType::F32)
            });
        }
    }
}

/// Writes the buckets' master weights `masters` into `module`'s trainable parameters,
/// on the device (each parameter a slice of its bucket, reshaped and cast to the
/// parameter's dtype), keeping ids and `require_grad`.
pub fn write_params_from_buckets<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: M,
    layout: &ParamLayout,
    buckets: &[Bucket],
    masters: &[Tensor<B::InnerBackend, 1>],
) -> M {
    let mut place = HashMap::new();
    for (b, bucket) in buckets.iter().enumerate() {
        for i in bucket.slots.clone() {
            let s = &layout.slots[i];
            place.insert(s.id, (b, s.offset - bucket.offset, s.numel, i));
        }
    }
    let mut m = WriteFromBuckets::<B> {
        place,
        layout,
        masters,
    };
    module.map(&mut m)
}

struct WriteFromBuckets<'a, B: AutodiffBackend> {
    /// Parameter id → (bucket, offset in it, elements, slot).
    place: HashMap<ParamId, (usize, usize, usize, usize)>,
    layout: &'a ParamLayout,
    masters: &'a [Tensor<B::InnerBackend, 1>],
}

impl<B: AutodiffBackend> ModuleMapper<B> for WriteFromBuckets<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(&(b, at, n, slot)) = self.place.get(&param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let dtype = tensor.dtype();
        let require_grad = tensor.is_require_grad();
        let shape: [usize; D] = self.layout.slots[slot]
            .shape
            .clone()
            .try_into()
            .expect("the slot has the parameter's rank");
        let mut value = self.masters[b].clone().slice(at..at + n).reshape(shape);
        if dtype != DType::F32 {
            value = value.cast(dtype);
        }
        let mut fresh = Tensor::<B, D>::from_inner(value);
        if require_grad {
            fresh = fresh.require_grad();
        }
        Param::from_mapped_value(id, fresh, mapper)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};

    use super::*;
    use crate::train::flat::{read_grads, read_params};

    type TB = vigil_model::backend::CpuAutodiff;

    fn layout_of(sizes: &[usize]) -> ParamLayout {
        let mut l = ParamLayout::default();
        for &n in sizes {
            l.slots.push(crate::train::flat::ParamSlot {
                id: ParamId::new(),
                path: format!("p{}", l.slots.len()),
                shape: vec![n],
                offset: l.len,
                numel: n,
            });
            l.len += n;
        }
        l
    }

    #[test]
    fn buckets_cover_the_layout_in_order_without_splitting_a_parameter() {
        let l = layout_of(&[3, 4, 10, 2, 2, 1]);
        let b = buckets(&l, 8);
        let got: Vec<_> = b
            .iter()
            .map(|b| (b.slots.clone(), b.offset, b.len))
            .collect();
        assert_eq!(
            got,
            [(0..2, 0, 7), (2..3, 7, 10), (3..6, 17, 5)],
            "a parameter over the cap is a bucket of its own"
        );
        assert_eq!(b.iter().map(|b| b.len).sum::<usize>(), l.len);
        for w in b.windows(2) {
            assert_eq!(w[0].range().end, w[1].offset);
        }
        assert_eq!(buckets(&l, usize::MAX).len(), 1);
        assert_eq!(buckets(&l, 1).len(), 6);
        assert!(buckets(&ParamLayout::default(), 8).is_empty());
    }

    #[derive(Module, Debug)]
    struct Tiny<B: burn::tensor::backend::Backend> {
        proj: Linear<B>,
        norm: LayerNorm<B>,
        unused: Linear<B>,
    }

    fn tiny() -> Tiny<TB> {
        let dev = Default::default();
        Tiny {
            proj: LinearConfig::new(3, 4).init(&dev),
            norm: LayerNormConfig::new(4).init(&dev),
            unused: LinearConfig::new(2, 2).init(&dev),
        }
    }

    #[test]
    fn flattened_buckets_are_the_host_buffer_and_written_weights_round_trip() {
        let m = tiny();
        let layout = ParamLayout::of::<TB, _>(&m);
        let x = Tensor::<TB, 2>::ones([2, 3], &Default::default());
        let grads = m
            .norm
            .forward(m.proj.forward(x))
            .powi_scalar(2)
            .sum()
            .backward();
        let mut host = vec![f32::NAN; layout.len];
        read_grads::<TB, _>(&m, &grads, &layout, &mut host);
        for cap in [1, 10, usize::MAX] {
            let b = buckets(&layout, cap);
            let dev = flatten_grads::<TB, _>(&m, &grads, &layout, &b, &Default::default());
            let mut flat = Vec::new();
            for t in dev {
                flat.extend(t.into_data().convert::<f32>().to_vec::<f32>().unwrap());
            }
            assert_eq!(flat, host, "cap {cap}");
        }
        // The unused layer took no part: zeros, as on the host path.
        assert!(host[host.len() - 6..].iter().all(|g| *g == 0.0));

        let b = buckets(&layout, 10);
        let mut want = vec![0.0; layout.len];
        read_params::<TB, _>(&m, &layout, &mut want);
        want.iter_mut().for_each(|w| *w += 0.5);
        let masters: Vec<_> = b
            .iter()
            .map(|b| {
                let data = burn::tensor::TensorData::new(want[b.range()].to_vec(), [b.len]);
                Tensor::from_data(data, (&Default::default(), DType::F32))
            })
            .collect();
        let m = write_params_from_buckets::<TB, _>(m, &layout, &b, &masters);
        let mut got = vec![0.0; layout.len];
        read_params::<TB, _>(&m, &layout, &mut got);
        assert_eq!(got, want);
        assert_eq!(
            ParamLayout::of::<TB, _>(&m),
            layout,
            "ids and require_grad kept"
        );
    }
}
