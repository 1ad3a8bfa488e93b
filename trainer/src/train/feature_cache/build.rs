//! Computing a table across the group: the rows that have the modality are cut
//! into chunks of [`CHUNK`], chunk `c` runs on rank `c mod world` (on
//! [`build_threads`] threads, whole chunks side by side), and the ranks
//! all-gather the features so every rank holds the whole table.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{CHUNK, Tower};
use crate::train::comm::Comm;
use crate::train::error::TrainError;
use crate::train::progress::Ticker;
use crate::train::signals::Heartbeat;
use vigil_config::RunConfig;
use vigil_data::{Batch, DataError, Dataset, Position};
use vigil_model::{ImageData, ModelInput, ModerationModel, Table, TextData, TextTokenizer};

/// Whether each row of `ds` has the tower's modality.
pub(super) fn presence(ds: &Dataset, tower: Tower) -> Vec<bool> {
    ds.examples()
        .iter()
        .map(|e| match tower {
            Tower::Text => e.text.is_some(),
            Tower::Image => e.image.is_some(),
        })
        .collect()
}

/// Threads one rank builds its chunks on: its share of `cores` among the node's
/// `local_world` ranks, at least one.
pub fn build_threads(cores: usize, local_world: usize) -> usize {
    (cores / local_world.max(1)).max(1)
}

/// Chunks of the rows that have the modality, in file order.
pub fn chunks(present: &[bool]) -> Vec<Vec<usize>> {
    let rows: Vec<usize> = (0..present.len()).filter(|&r| present[r]).collect();
    rows.chunks(CHUNK).map(<[usize]>::to_vec).collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn compute<B: Backend>(
    model: &ModerationModel<B>,
    tower: Tower,
    tokenizer: Option<&TextTokenizer>,
    ds: &Dataset,
    present: Vec<bool>,
    cfg: &RunConfig,
    comm: &mut Comm,
    device: &B::Device,
    heartbeat: &mut Heartbeat,
) -> Result<Table, TrainError> {
    let (rank, world) = (comm.rank(), comm.world_size());
    let all = chunks(&present);
    let mut mine = Vec::new();
    let mut dim = 0usize;
    let mine_rows = all.iter().skip(rank).step_by(world).map(Vec::len).sum();
    let (split, name) = (ds.split().as_str(), tower.name());
    let mut ticker = Ticker::feature_cache(cfg.logging.format, rank, split, name, mine_rows);
    let mut done = 0;
    let threads = if vigil_model::kernels::on_host::<B>() {
        let local_world = std::env::var("LOCAL_WORLD_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        build_threads(vigil_model::parallel::default_threads(), local_world)
    } else {
        1
    };
    vigil_model::parallel::ordered_map(
        vec![model.clone(); threads],
        all.iter().skip(rank).step_by(world).map(Ok),
        |model, chunk: &Vec<usize>| {
            let (feats, d) = encode_chunk(model, tower, tokenizer, ds, chunk, cfg, device)?;
            Ok::<_, TrainError>((chunk.len(), feats, d))
        },
        |(len, feats, d)| {
            dim = d;
            mine.extend(feats);
            heartbeat.beat();
            done += len;
            ticker.update(done);
            Ok(())
        },
    )?;
    // A rank without a chunk learns the width from the others.
    let dim = comm.max_u64(dim as u64)? as usize;
    let gathered = comm.all_gather_f32(&mine)?;
    let mut values = vec![0.0f32; ds.len() * dim];
    for (r, got) in gathered.iter().enumerate() {
        let mut at = 0usize;
        for chunk in all.iter().skip(r).step_by(world) {
            let len = chunk.len() * dim;
            let part = got.get(at..at + len).ok_or(TrainError::Protocol {
                what: "a rank's cached features have a bad length",
            })?;
            for (k, &row) in chunk.iter().enumerate() {
                values[row * dim..(row + 1) * dim].copy_from_slice(&part[k * dim..(k + 1) * dim]);
            }
            at += len;
        }
        if at != got.len() {
            return Err(TrainError::Protocol {
                what: "a rank's cached features have a bad length",
            });
        }
    }
    Ok(Table {
        dim,
        values,
        present,
    })
}

/// Runs the tower on the rows `chunk`: `(values, dim)`.
fn encode_chunk<B: Backend>(
    model: &ModerationModel<B>,
    tower: Tower,
    tokenizer: Option<&TextTokenizer>,
    ds: &Dataset,
    chunk: &[usize],
    cfg: &RunConfig,
    device: &B::Device,
) -> Result<(Vec<f32>, usize), TrainError> {
    let image = (tower == Tower::Image).then(|| vigil_data::ImageSpec::of(&cfg.data));
    let batch = Batch::build(ds, chunk, Position::default(), image).map_err(|(line, reason)| {
        DataError::ImageDecode {
            file: ds.file().to_path_buf(),
            line,
            reason,
        }
    })?;
    // The batch goes through the same ModelInput conversion training uses.
    let (input, _) = ModelInput::<B>::from_batch(
        tokenizer.filter(|_| tower == Tower::Text),
        &batch,
        None,
        device,
    )?;
    let text = input.text.map(|t| t.data);
    let image = input.image.map(|i| i.data);
    let feats: Tensor<B, 2> = match (&model.text, text, &model.image, image) {
        (Some(tower), Some(TextData::Tokens { ids, mask }), _, _) => tower.forward(ids, mask),
        (_, _, Some(tower), Some(ImageData::Pixels(pixels))) => tower.forward(pixels),
        _ => {
            return Err(TrainError::Protocol {
                what: "a cached tower the model or its inputs do not have",
            });
        }
    };
    let dim = feats.dims()[1];
    let values = feats
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|_| TrainError::Protocol {
            what: "tower features are not f32",
        })?;
    Ok((values, dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_threads_share_the_cores_among_local_ranks() {
        assert_eq!(build_threads(2, 1), 2);
        assert_eq!(build_threads(2, 2), 1);
        assert_eq!(build_threads(16, 4), 4);
        assert_eq!(build_threads(2, 3), 1);
        assert_eq!(build_threads(8, 0), 8);
    }

    #[test]
    fn chunks_skip_absent_rows_and_keep_file_order() {
        let mut present = vec![true; 70];
        present[3] = false;
        let c = chunks(&present);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].len(), CHUNK);
        assert!(!c[0].contains(&3));
        assert_eq!(c[0][3], 4);
        assert_eq!(c[2], vec![65, 66, 67, 68, 69]);
        assert!(chunks(&[false, false]).is_empty());
    }
}
