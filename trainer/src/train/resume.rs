//! Saving and restoring the training state through [`vigil_store::checkpoint`].
//!
//! Rank 0 chooses the checkpoint (`LATEST`, verified, or the newest complete one,
//! with a warning naming what was wrong) and broadcasts its step; every rank then
//! loads and verifies that same step, so all ranks continue from one state.

use burn::tensor::backend::AutodiffBackend;

use super::FlatAdamW;
use super::comm::Comm;
use super::error::TrainError;
use super::flat::{ParamLayout, write_params};
use super::state::{
    ADAM_M_FILE, ADAM_V_FILE, LoopState, MASTER_FILE, MODEL_FILE, STATE_FILE, f32_bytes,
    f32_from_bytes,
};
use vigil_config::{Resume, RunConfig};
use vigil_model::ModerationModel;
use vigil_store::checkpoint::{
    AsyncCheckpointer, CheckpointDir, CheckpointMeta, Loaded, config_hash, load_checkpoint_dir,
};
use vigil_store::storage::Location;

/// No checkpoint (sent as the chosen step).
const NONE: u64 = u64::MAX;

/// The checkpoint this run resumes from, if any (`train.resume`).
pub struct ResumeSource;

impl ResumeSource {
    /// Reads the checkpoint every rank will resume from.
    pub fn from_config(
        cfg: &RunConfig,
        dir: &CheckpointDir,
        comm: &mut Comm,
    ) -> Result<Option<Loaded>, TrainError> {
        match &cfg.train.resume {
            Resume::Never => Ok(None),
            Resume::Path(p) => Ok(Some(load_checkpoint_dir(
                &Location::parse(p).map_err(vigil_store::checkpoint::StoreError::from)?,
            )?)),
            Resume::Auto => {
                let mut chosen = NONE;
                if comm.rank() == 0
                    && let Some(found) = dir.latest_valid()?
                {
                    for w in &found.warnings {
                        tracing::warn!("resume: {w}");
                        eprintln!("warning: resume: {w}");
                    }
                    chosen = found.step;
                }
                let chosen = comm.all_gather_u64(chosen)?[0];
                if chosen == NONE {
                    return Ok(None);
                }
                Ok(Some(dir.load(chosen)?))
            }
        }
    }
}

/// Restores weights, optimizer and loop state from `loaded`.
pub fn restore<B: AutodiffBackend>(
    loaded: Loaded,
    model: ModerationModel<B>,
    layout: &ParamLayout,
    master: &mut [f32],
    opt: &mut FlatAdamW,
    state: &mut LoopState,
) -> Result<ModerationModel<B>, TrainError> {
    let step = loaded.step;
    let file = |name: &str| {
        loaded
            .files
            .get(name)
            .ok_or_else(|| TrainError::Checkpoint {
                step,
                message: format!("has no {name}"),
            })
    };
    let floats = |name: &str| -> Result<Vec<f32>, TrainError> {
        f32_from_bytes(file(name)?, layout.len).ok_or_else(|| TrainError::Checkpoint {
            step,
            message: format!(
                "{name} does not hold {} parameters: it was written by a different model",
                layout.len
            ),
        })
    };
    master.copy_from_slice(&floats(MASTER_FILE)?);
    opt.m = floats(ADAM_M_FILE)?;
    opt.v = floats(ADAM_V_FILE)?;
    let saved: LoopState =
        serde_json::from_slice(file(STATE_FILE)?).map_err(|e| TrainError::Checkpoint {
            step,
            message: format!("{STATE_FILE} is unreadable: {e}"),
        })?;
    opt.step = saved.optimizer_step;
    let early = state.early_stopper.is_some();
    let fresh_uid = std::mem::take(&mut state.run_uid);
    *state = saved;
    if state.run_uid.is_empty() {
        // A checkpoint of an older version: this process names the run from here.
        state.run_uid = fresh_uid;
    }
    if !early {
        state.early_stopper = None;
    }
    eprintln!(
        "resuming from checkpoint step {step} (epoch {}, batch {})",
        state.position.epoch, state.position.batch
    );
    Ok(write_params::<B, _>(model, layout, master))
}

/// Rank 0 (the holder of `writer`) hands a checkpoint of the current state to the
/// background writer; the stall is the serialization plus waiting for a previous
/// save.
#[allow(clippy::too_many_arguments)]
pub fn save_checkpoint<B: AutodiffBackend>(
    writer: Option<&mut AsyncCheckpointer>,
    cfg: &RunConfig,
    model: &ModerationModel<B>,
    master: &[f32],
    opt: &FlatAdamW,
    state: &LoopState,
    metrics: &std::collections::BTreeMap<String, f64>,
) -> Result<(), TrainError> {
    let Some(writer) = writer else { return Ok(()) };
    let started = std::time::Instant::now();
    let weights = model_bytes(model)?;
    let files = vec![
        (MODEL_FILE.to_string(), weights),
        (MASTER_FILE.to_string(), f32_bytes(master)),
        (ADAM_M_FILE.to_string(), f32_bytes(&opt.m)),
        (ADAM_V_FILE.to_string(), f32_bytes(&opt.v)),
        (
            STATE_FILE.to_string(),
            serde_json::to_vec_pretty(state).expect("state serializes"),
        ),
    ];
    let meta = CheckpointMeta {
        step: state.step,
        config_sha256: config_hash(&cfg.to_yaml()),
        metrics: metrics.clone(),
        extra: serde_json::json!({
            "epoch": state.position.epoch,
            "batch": state.position.batch,
            "world_size": state.world_size,
        }),
    };
    if let Some(previous) = writer.submit(state.step, files, meta)? {
        tracing::info!(
            step = previous.save.step,
            bytes = previous.save.bytes,
            write_ms = previous.save.elapsed.as_millis() as u64,
            "checkpoint written"
        );
    }
    tracing::info!(
        step = state.step,
        stall_ms = started.elapsed().as_millis() as u64,
        "checkpoint submitted"
    );
    Ok(())
}

/// The model's weights as safetensors bytes (burn's parameter names), with the
/// header's keys sorted; serialised in memory.
pub fn model_bytes<B: burn::tensor::backend::Backend>(
    model: &ModerationModel<B>,
) -> Result<Vec<u8>, TrainError> {
    canonical_safetensors(model.weights_bytes()?)
}

/// Rewrites a safetensors header with its keys sorted. burn writes the header's
/// maps in hash order, which differs between processes, so identical weights
/// would hash differently; serving and the resume tests compare files by sha256.
/// Tensor offsets are relative to the data section, so the data is kept as is.
pub fn canonical_safetensors(bytes: Vec<u8>) -> Result<Vec<u8>, TrainError> {
    use std::collections::BTreeMap;
    let bad = || TrainError::Protocol {
        what: "burn wrote a malformed safetensors file",
    };
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let end = 8usize
        .checked_add(usize::try_from(n).map_err(|_| bad())?)
        .ok_or_else(bad)?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..end).ok_or_else(bad)?).map_err(|_| bad())?;
    let sorted: BTreeMap<String, serde_json::Value> = header
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::Object(m) => {
                let m: BTreeMap<String, serde_json::Value> = m.into_iter().collect();
                (k, serde_json::to_value(m).expect("a map serializes"))
            }
            other => (k, other),
        })
        .collect();
    let mut text = serde_json::to_vec(&sorted).expect("a header serializes");
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[end..]);
    Ok(out)
}
