//! The training loss, with unknown labels masked out.
//!
//! Data rows may leave a label `null` (not annotated): such an entry contributes
//! nothing — neither to the sum nor to the count it is averaged over.
//! - multi-label: binary cross-entropy with logits per (row, label), positives
//!   weighted by `pos_weight` (PyTorch's `BCEWithLogitsLoss(pos_weight=…)`), mean
//!   over the known entries;
//! - multi-class: softmax cross-entropy per row against the row's positive label;
//!   a row counts when that label is known, weighted by the class's `pos_weight`
//!   (PyTorch's weighted `CrossEntropyLoss` mean).
//!
//! Both are computed in a numerically stable form (an overflow-free softplus,
//! `log_softmax`).

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor};

use vigil_config::Task;

/// Labels and which of them are known, `[b, labels]` each.
#[derive(Debug, Clone)]
pub struct Targets<B: Backend> {
    /// 1.0 / 0.0 per (row, label).
    pub labels: Tensor<B, 2>,
    /// 1.0 where the label is known, 0.0 where it is `null`.
    pub known: Tensor<B, 2>,
}

impl<B: Backend> Targets<B> {
    /// From the data loader's row-major vectors.
    pub fn from_vecs(
        labels: &[f32],
        known: &[bool],
        batch: usize,
        num_labels: usize,
        device: &B::Device,
    ) -> Result<Self, super::ModelError> {
        if labels.len() != batch * num_labels || known.len() != batch * num_labels {
            return Err(super::ModelError::batch(format!(
                "labels ({}) and label_known ({}) must both hold batch × labels = {} values",
                labels.len(),
                known.len(),
                batch * num_labels
            )));
        }
        let known: Vec<f32> = known.iter().map(|&k| f32::from(u8::from(k))).collect();
        let t = |v: Vec<f32>| {
            Tensor::<B, 1>::from_floats(v.as_slice(), device).reshape([batch, num_labels])
        };
        Ok(Self {
            labels: t(labels.to_vec()),
            known: t(known),
        })
    }
}

/// `log(1 + eˣ)` without overflow: `max(x, 0) + log(1 + e^-|x|)`. burn's
/// `softplus` computes `log(1 + eˣ)` directly, which is infinite for x > 88 and
/// turns a confident logit into a NaN loss (∞ · 0).
fn stable_softplus<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let tail = (x.clone().abs().neg().exp() + 1.0).log();
    x.clamp_min(0.0) + tail
}

/// The masked loss of `logits` `[b, L]` (a scalar tensor of shape `[1]`).
pub fn masked_loss<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &Targets<B>,
    task: Task,
    pos_weight: &[f32],
) -> Tensor<B, 1> {
    let [_, l] = logits.dims();
    let device = logits.device();
    // Under mixed precision (`train.precision: bf16 | f16`) the logits are half: the
    // loss and its reductions run in f32 (the cast's backward turns the gradient back
    // into the half type). f32 runs take no cast at all.
    let half = logits.dtype() != DType::F32;
    let up = |t: Tensor<B, 2>| if half { t.cast(FloatDType::F32) } else { t };
    let logits = up(logits);
    let pw = if pos_weight.len() == l {
        Tensor::<B, 1>::from_floats(pos_weight, &device).reshape([1, l])
    } else {
        Tensor::<B, 2>::ones([1, l], &device)
    };
    let pw = up(pw);
    let y = up(targets.labels.clone());
    let known = up(targets.known.clone());
    match task {
        Task::MultiLabel => {
            // -[pw·y·log σ(x) + (1-y)·log(1-σ(x))] = pw·y·softplus(-x) + (1-y)·softplus(x)
            let pos = stable_softplus(logits.clone().neg()) * y.clone() * pw;
            let neg = stable_softplus(logits) * (y.neg() + 1.0);
            let per = (pos + neg) * known.clone();
            per.sum() / known.sum().clamp_min(1.0)
        }
        Task::MultiClass => {
            let onehot = y * known;
            let row_w = (onehot.clone() * pw).sum_dim(1); // [b, 1]: class weight, 0 if unknown
            let nll = (log_softmax(logits, 1) * onehot).sum_dim(1).neg(); // [b, 1]
            let total = (nll * row_w.clone()).sum();
            total / row_w.sum().clamp_min(1e-12)
        }
    }
}

/// What [`masked_loss`] averages over, from the batch's host-side labels: the
/// number of known (row, label) entries (multi-label), or the sum of the class
/// weights of the known rows (multi-class). `masked_loss · loss_weight` is the
/// batch's loss *sum*, which data-parallel training adds up over micro-batches
/// and ranks and divides by the summed weights, so a step's gradient is the mean
/// over every known label of the global batch however it is split.
pub fn loss_weight(task: Task, pos_weight: &[f32], labels: &[f32], known: &[bool]) -> f64 {
    match task {
        Task::MultiLabel => known.iter().filter(|k| **k).count() as f64,
        Task::MultiClass => {
            let l = pos_weight.len().max(1);
            labels
                .iter()
                .zip(known)
                .enumerate()
                .filter(|(_, (y, k))| **k && **y > 0.5)
                .map(|(i, _)| f64::from(pos_weight.get(i % l).copied().unwrap_or(1.0)))
                .sum()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;

    type B = CpuBackend;

    fn scalar(t: Tensor<B, 1>) -> f32 {
        t.into_scalar()
    }

    #[test]
    fn bce_matches_hand_computation_and_ignores_unknown() {
        let d = Default::default();
        let logits = Tensor::<B, 1>::from_floats([0.5, -1.0, 2.0, 0.0], &d).reshape([2, 2]);
        let t =
            Targets::<B>::from_vecs(&[1.0, 0.0, 0.0, 1.0], &[true, true, false, true], 2, 2, &d)
                .unwrap();
        let got = scalar(masked_loss(logits, &t, Task::MultiLabel, &[2.0, 1.0]));
        let sp = |x: f32| (1.0 + x.exp()).ln();
        // entries: (0.5, y=1, pw=2), (-1, y=0), (unknown), (0, y=1, pw=1)
        let want = (2.0 * sp(-0.5) + sp(-1.0) + sp(0.0)) / 3.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn confident_logits_give_finite_exact_losses() {
        let d = Default::default();
        // Right and wrong at |x| = 1000: log(1 + e^1000) overflows f32 in the naive form.
        let logits =
            Tensor::<B, 1>::from_floats([1000.0, -1000.0, 1000.0, -1000.0], &d).reshape([2, 2]);
        let right = Targets::<B>::from_vecs(&[1.0, 0.0, 1.0, 0.0], &[true; 4], 2, 2, &d).unwrap();
        let wrong = Targets::<B>::from_vecs(&[0.0, 1.0, 0.0, 1.0], &[true; 4], 2, 2, &d).unwrap();
        assert_eq!(
            scalar(masked_loss(logits.clone(), &right, Task::MultiLabel, &[])),
            0.0
        );
        let got = scalar(masked_loss(logits, &wrong, Task::MultiLabel, &[]));
        assert!((got - 1000.0).abs() < 1e-3, "{got}");
    }

    #[test]
    fn all_unknown_gives_zero_not_nan() {
        let d = Default::default();
        let logits = Tensor::<B, 2>::ones([2, 3], &d);
        let t = Targets::<B>::from_vecs(&[0.0; 6], &[false; 6], 2, 3, &d).unwrap();
        assert_eq!(
            scalar(masked_loss(logits.clone(), &t, Task::MultiLabel, &[])),
            0.0
        );
        assert_eq!(scalar(masked_loss(logits, &t, Task::MultiClass, &[])), 0.0);
    }

    #[test]
    fn softmax_ce_weights_rows_by_class() {
        let d = Default::default();
        let logits = Tensor::<B, 1>::from_floats([1.0, 0.0, 0.0, 2.0], &d).reshape([2, 2]);
        let t = Targets::<B>::from_vecs(&[1.0, 0.0, 0.0, 1.0], &[true; 4], 2, 2, &d).unwrap();
        let got = scalar(masked_loss(logits, &t, Task::MultiClass, &[1.0, 3.0]));
        let lse = |a: f32, b: f32| (a.exp() + b.exp()).ln();
        let (l0, l1) = (lse(1.0, 0.0) - 1.0, lse(0.0, 2.0) - 2.0);
        let want = (l0 + 3.0 * l1) / 4.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let d = Default::default();
        assert!(Targets::<B>::from_vecs(&[1.0], &[true, true], 1, 2, &d).is_err());
    }

    #[test]
    fn loss_weight_turns_the_mean_into_the_sum() {
        let d = Default::default();
        let labels = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let known = [true, true, false, true, true, false];
        let logits =
            Tensor::<B, 1>::from_floats([0.5, -1.0, 2.0, 0.0, 0.3, 0.1], &d).reshape([3, 2]);
        let t = Targets::<B>::from_vecs(&labels, &known, 3, 2, &d).unwrap();
        let pw = [2.0, 3.0];
        // Multi-label: the mean over 4 known entries.
        let w = loss_weight(Task::MultiLabel, &pw, &labels, &known);
        assert_eq!(w, 4.0);
        // Multi-class: rows whose positive label is known, by class weight
        // (row 0: class 0 → 2; row 1: class 1 → 3; row 2: unknown).
        let w = loss_weight(Task::MultiClass, &pw, &labels, &known);
        assert_eq!(w, 5.0);
        let mean = scalar(masked_loss(logits.clone(), &t, Task::MultiClass, &pw));
        let lsm = |a: f32, b: f32| -> (f32, f32) {
            let m = a.max(b);
            let z = m + ((a - m).exp() + (b - m).exp()).ln();
            (a - z, b - z)
        };
        let sum = -2.0 * lsm(0.5, -1.0).0 - 3.0 * lsm(2.0, 0.0).1;
        assert!(
            (mean * w as f32 - sum).abs() < 1e-5,
            "{} vs {sum}",
            mean * w as f32
        );
    }
}
