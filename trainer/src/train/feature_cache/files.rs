//! A table's file: `<output_dir>/feature-cache/<split>-<tower>.safetensors`,
//! written atomically with its key in the metadata, and its copy on a bucket
//! when `run.output_dir` is one.

use std::path::Path;

use crate::train::error::TrainError;
use vigil_config::RunConfig;
use vigil_model::Table;
use vigil_store::atomic::write_atomic;

/// Reads a table written by [`write_table`] for a dataset whose rows have the
/// modality where `present`: `Ok(None)` when absent, `Err(why)` when present but
/// unusable (another key, bad bytes, another row count).
pub fn read_table(path: &Path, key: &str, present: &[bool]) -> Result<Option<Table>, String> {
    let rows = present.len();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| e.to_string())?;
    let stored = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("key").cloned())
        .unwrap_or_default();
    if stored != key {
        return Err("it was computed for other weights, preprocessing or data".to_string());
    }
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
    let t = st.tensor("features").map_err(|e| e.to_string())?;
    let shape = t.shape();
    if t.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != rows {
        return Err(format!(
            "its features are {:?} {:?}, expected F32 [{rows}, _]",
            t.dtype(),
            shape
        ));
    }
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Some(Table {
        dim: shape[1],
        values,
        present: present.to_vec(),
    }))
}

/// Writes `table` to `path` atomically ([`write_atomic`]: temporary file, fsync,
/// rename).
pub fn write_table(
    dir: &Path,
    path: &Path,
    key: &str,
    table: &Table,
) -> Result<Vec<u8>, TrainError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes: Vec<u8> = table.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![table.rows(), table.dim],
        &bytes,
    )
    .map_err(|_| TrainError::Protocol {
        what: "feature table shape does not match its values",
    })?;
    let meta = std::collections::HashMap::from([("key".to_string(), key.to_string())]);
    let out = safetensors::serialize([("features", view)], Some(meta)).map_err(|_| {
        TrainError::Protocol {
            what: "feature table could not be serialised",
        }
    })?;
    write_atomic(path, &out).map_err(io(path))?;
    Ok(out)
}

/// `<run.output_dir>/feature-cache/` when the run directory is a bucket (a
/// warning and no bucket copy when it cannot be opened: the cache is optional).
pub(super) fn remote_cache(cfg: &RunConfig) -> Option<vigil_store::storage::Bucket> {
    let url = cfg.output_url()?;
    match url
        .join("feature-cache")
        .and_then(|u| vigil_store::storage::Bucket::open(&u))
    {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!("feature cache kept local only: {e}");
            None
        }
    }
}

/// Downloads the bucket's `name` to `path` (atomically; each rank of a node may
/// do it at once): `Ok(false)` when the bucket has none.
pub(super) fn fetch_table(
    bucket: &vigil_store::storage::Bucket,
    name: &str,
    path: &Path,
) -> Result<bool, String> {
    let Some(bytes) = bucket.get(name).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_atomic(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_and_a_wrong_key_or_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train-image.safetensors");
        let present = [true, true];
        assert_eq!(read_table(&path, "k", &present).unwrap(), None);
        let t = Table {
            dim: 3,
            values: vec![1.0, -2.0, 3.5, 0.0, 0.0, 0.25],
            present: present.to_vec(),
        };
        write_table(dir.path(), &path, "k", &t).unwrap();
        assert_eq!(read_table(&path, "k", &present).unwrap(), Some(t.clone()));
        assert!(
            read_table(&path, "other", &present)
                .unwrap_err()
                .contains("other weights")
        );
        assert!(read_table(&path, "k", &[true; 3]).is_err());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&path, bytes).unwrap();
        assert!(read_table(&path, "k", &present).is_err());
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
