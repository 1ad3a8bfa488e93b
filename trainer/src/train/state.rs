//! What a checkpoint holds beyond the model weights, and how it is encoded.
//!
//! The flat optimizer state (fp32 master weights, AdamW moments) is stored as raw
//! little-endian `f32` files — exact, and readable with `numpy.fromfile` — and the
//! rest (step, data position, early-stopping state, best metric) as `state.json`.
//! Dropout randomness is re-seeded from `(run.seed, step, rank)` at every step, so
//! the RNG "state" is the step itself and a resumed run draws the same masks.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::early_stop::EarlyStopper;
use super::plan::Owed;
use vigil_data::Position;

/// Checkpoint file of the master weights.
pub const MASTER_FILE: &str = "master.f32";
/// Checkpoint file of AdamW's first moments.
pub const ADAM_M_FILE: &str = "adam_m.f32";
/// Checkpoint file of AdamW's second moments.
pub const ADAM_V_FILE: &str = "adam_v.f32";
/// Checkpoint file of the loop state.
pub const STATE_FILE: &str = "state.json";
/// Checkpoint file of the full model weights (burn parameter names).
pub const MODEL_FILE: &str = "model.safetensors";

/// The training loop's position and bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The next micro-batch to train on.
    pub position: Position,
    /// AdamW's update count.
    pub optimizer_step: u64,
    /// Early stopping, if configured.
    pub early_stopper: Option<EarlyStopper>,
    /// Best monitored value so far (for `export.when: best`).
    pub best_metric: Option<f64>,
    /// World size that wrote the checkpoint (resume with another size reshuffles
    /// shards; the position is still an epoch and a batch index).
    pub world_size: usize,
    /// Samples per optimizer step across all ranks when it was written.
    pub global_batch: usize,
    /// This run's identity, drawn when it started fresh: the exports it publishes
    /// carry it (`meta.run_uid`), so a resumed run can tell its own published
    /// version from another run's with the same name and step.
    #[serde(default)]
    pub run_uid: String,
    /// What the step after this checkpoint still owes (the end-of-run export;
    /// that training has ended). Absent in checkpoints of older versions.
    #[serde(default)]
    pub owed: Owed,
    /// The evaluation the owed export publishes with (its `val/*` scalars and
    /// tuned thresholds), so the export after a restart is the one the finished
    /// run would have published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owed_export: Option<ExportInputs>,
}

/// What an export publishes besides the weights: the latest evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportInputs {
    /// `val/*` scalars of the latest evaluation.
    pub metrics: BTreeMap<String, f64>,
    /// Per-label thresholds tuned at the latest evaluation.
    pub thresholds: Vec<(String, f32)>,
}

/// A fresh run identity: 16 hex digits, random.
pub fn new_run_uid() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Encodes floats as little-endian bytes.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes little-endian bytes; `None` if the length is not a multiple of 4 or
/// differs from `expect`.
pub fn f32_from_bytes(b: &[u8], expect: usize) -> Option<Vec<f32>> {
    if b.len() != expect * 4 {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The per-step seed of the backend RNG (dropout): distinct per rank so replicas
/// drop different units, like separate CUDA generators per DDP process.
pub fn step_seed(seed: u64, step: u64, rank: usize) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((rank as u64) << 48);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_round_trip_bit_exactly() {
        let v = vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3.3e-12];
        let back = f32_from_bytes(&f32_bytes(&v), 4).unwrap();
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert!(f32_from_bytes(&[0, 1, 2], 1).is_none());
        assert!(f32_from_bytes(&f32_bytes(&v), 3).is_none());
    }

    #[test]
    fn step_seeds_differ_by_step_and_rank() {
        assert_ne!(step_seed(7, 1, 0), step_seed(7, 2, 0));
        assert_ne!(step_seed(7, 1, 0), step_seed(7, 1, 1));
        assert_eq!(step_seed(7, 1, 0), step_seed(7, 1, 0));
    }
}
