//! A table's file: `<output_dir>/feature-cache/<split>-<tower>.safetensors`,
//! written atomically, and its copy on a bucket when `run.output_dir` is one.
//!
//! The file holds `features` (F32 `[rows, dim]`) and `row_keys` (U8 `[rows, 32]`,
//! each row's key), with the table key (`key`) and the tower key (`tower_key`) in
//! the metadata: [`read_table`] needs the table key only; [`read_rows`] lets
//! another run take single rows by tower and row key.

use std::io::Read;
use std::path::Path;

use super::key::RowKey;
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
    let values = f32s(t.data());
    Ok(Some(Table {
        dim: shape[1],
        values,
        present: present.to_vec(),
    }))
}

/// A table's keys, as [`write_table`] stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableKeys {
    /// The table key ([`read_table`] compares it).
    pub table: String,
    /// The tower key.
    pub tower: String,
    /// Each row's key, in file order.
    pub rows: Vec<RowKey>,
}

/// A table's rows as [`read_rows`] returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRows {
    /// Feature width.
    pub dim: usize,
    /// Each row's key.
    pub keys: Vec<RowKey>,
    /// `[rows, dim]`, row-major.
    pub values: Vec<f32>,
}

/// The table at `path` when it was computed with `tower_key`: `Ok(None)` when
/// it was not (only its header is read then), or when it has no row keys (a file
/// older than them); `Err(why)` when it cannot be read or does not parse.
pub fn read_rows(path: &Path, tower_key: &str) -> Result<Option<StoredRows>, String> {
    if header_tower_key(path)?.as_deref() != Some(tower_key) {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
    let f = st.tensor("features").map_err(|e| e.to_string())?;
    let k = st.tensor("row_keys").map_err(|e| e.to_string())?;
    let (fs, ks) = (f.shape(), k.shape());
    if f.dtype() != safetensors::Dtype::F32
        || k.dtype() != safetensors::Dtype::U8
        || fs.len() != 2
        || ks != [fs[0], 32]
    {
        return Err(format!(
            "its features are {:?} {fs:?} and row keys {:?} {ks:?}",
            f.dtype(),
            k.dtype()
        ));
    }
    Ok(Some(StoredRows {
        dim: fs[1],
        keys: k
            .data()
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect(),
        values: f32s(f.data()),
    }))
}

/// The `tower_key` of a safetensors file's metadata, reading its header only.
fn header_tower_key(path: &Path) -> Result<Option<String>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| e.to_string())?;
    let len = u64::from_le_bytes(len);
    // safetensors' own limit on a header.
    if len > 100_000_000 {
        return Err(format!("its header is {len} bytes long"));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| e.to_string())?;
    Ok(header["__metadata__"]["tower_key"]
        .as_str()
        .map(str::to_string))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Writes `table` to `path` atomically ([`write_atomic`]: temporary file, fsync,
/// rename), with its keys.
pub fn write_table(
    dir: &Path,
    path: &Path,
    keys: &TableKeys,
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
    let row_bytes: Vec<u8> = keys.rows.concat();
    let rows = safetensors::tensor::TensorView::new(
        safetensors::Dtype::U8,
        vec![keys.rows.len(), 32],
        &row_bytes,
    )
    .map_err(|_| TrainError::Protocol {
        what: "feature table row keys do not match their count",
    })?;
    if keys.rows.len() != table.rows() {
        return Err(TrainError::Protocol {
            what: "feature table row keys do not match its rows",
        });
    }
    let meta = std::collections::HashMap::from([
        ("key".to_string(), keys.table.clone()),
        ("tower_key".to_string(), keys.tower.clone()),
    ]);
    let out = safetensors::serialize([("features", view), ("row_keys", rows)], Some(meta))
        .map_err(|_| TrainError::Protocol {
            what: "feature table could not be serialised",
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

    fn keys(table: &str, rows: u8) -> TableKeys {
        TableKeys {
            table: table.into(),
            tower: "tower".into(),
            rows: (0..rows).map(|r| [r; 32]).collect(),
        }
    }

    #[test]
    fn rows_are_read_by_tower_key_with_their_row_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("val-text.safetensors");
        let t = Table {
            dim: 2,
            values: vec![1.0, 2.0, 0.0, 0.0, -3.0, 4.5],
            present: vec![true, false, true],
        };
        let k = keys("k", 3);
        write_table(dir.path(), &path, &k, &t).unwrap();
        assert_eq!(read_table(&path, "k", &t.present).unwrap(), Some(t.clone()));
        let got = read_rows(&path, "tower").unwrap().unwrap();
        assert_eq!(
            got,
            StoredRows {
                dim: 2,
                keys: k.rows.clone(),
                values: t.values.clone()
            }
        );
        assert_eq!(read_rows(&path, "other tower").unwrap(), None);
        assert!(read_rows(&dir.path().join("none.safetensors"), "tower").is_err());
        std::fs::write(&path, b"\x05\0\0\0\0\0\0\0{oops").unwrap();
        assert!(read_rows(&path, "tower").is_err());
        // Row keys must match the rows.
        assert!(write_table(dir.path(), &path, &keys("k", 2), &t).is_err());
    }

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
        write_table(dir.path(), &path, &keys("k", 2), &t).unwrap();
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
