//! Taking a table's rows from other runs' tables (`train.feature_cache_search`):
//! every table in those directories with the same tower key is a source of
//! features by row key. The features of a row depend on the tower key and the row
//! only, so a row found there is the row this run would compute; a table is
//! gathered only when every row that has the modality is found, else computed
//! whole (one code path for the features, no merging of partial builds).

use std::collections::HashMap;
use std::path::PathBuf;

use super::files::read_rows;
use super::key::RowKey;
use vigil_model::Table;

/// What searching other runs' tables found for one table.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Search {
    /// Every row: the table, and how many files contributed.
    Found { table: Table, tables: usize },
    /// Some rows are in no table with the tower key (`tables` had that key).
    Missing { rows: usize, tables: usize },
}

/// The `*.safetensors` files of `dirs`, each directory's in name order (a missing
/// or unreadable directory has none).
pub(super) fn candidates(dirs: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// Fills the rows of a table with keys `rows` whose modality is `present` from
/// the tables among `files` computed with `tower_key`, first file first.
pub(super) fn gather(
    files: &[PathBuf],
    tower_key: &str,
    rows: &[RowKey],
    present: &[bool],
) -> Search {
    // Row key -> the rows of this table that have it (ids may repeat).
    let mut wanted: HashMap<RowKey, Vec<usize>> = HashMap::new();
    for (r, key) in rows.iter().enumerate().filter(|(r, _)| present[*r]) {
        wanted.entry(*key).or_default().push(r);
    }
    let needed = wanted.values().map(Vec::len).sum::<usize>();
    let mut dim = None;
    let mut values = Vec::new();
    let (mut matching, mut used) = (0, 0);
    for path in files {
        if wanted.is_empty() {
            break;
        }
        let stored = match read_rows(path, tower_key) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(why) => {
                tracing::debug!(file = %path.display(), "feature cache search skips a file: {why}");
                continue;
            }
        };
        matching += 1;
        let d = *dim.get_or_insert(stored.dim);
        if stored.dim != d || stored.values.len() != stored.keys.len() * d {
            continue;
        }
        if values.is_empty() {
            values = vec![0.0f32; rows.len() * d];
        }
        let mut took = false;
        for (s, key) in stored.keys.iter().enumerate() {
            if let Some(targets) = wanted.remove(key) {
                for r in targets {
                    values[r * d..(r + 1) * d].copy_from_slice(&stored.values[s * d..(s + 1) * d]);
                }
                took = true;
            }
        }
        used += usize::from(took);
    }
    let missing = wanted.values().map(Vec::len).sum::<usize>();
    match dim {
        Some(dim) if missing == 0 && needed > 0 => Search::Found {
            table: Table {
                dim,
                values,
                present: present.to_vec(),
            },
            tables: used,
        },
        _ => Search::Missing {
            rows: missing,
            tables: matching,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::files::{TableKeys, write_table};
    use super::*;
    use std::path::Path;

    fn write(dir: &Path, name: &str, tower: &str, rows: &[(u8, f32)]) -> PathBuf {
        let path = dir.join(name);
        let keys = TableKeys {
            table: format!("{name}-table"),
            tower: tower.into(),
            rows: rows.iter().map(|(k, _)| [*k; 32]).collect(),
        };
        let table = Table {
            dim: 2,
            values: rows.iter().flat_map(|(_, v)| [*v, -*v]).collect(),
            present: vec![true; rows.len()],
        };
        write_table(dir, &path, &keys, &table).unwrap();
        path
    }

    #[test]
    fn rows_come_from_every_table_with_the_tower_key_and_absent_rows_are_zero() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        write(&a, "train-image.safetensors", "t", &[(1, 1.0), (2, 2.0)]);
        write(&a, "val-image.safetensors", "other", &[(3, 9.0)]);
        write(&b, "val-image.safetensors", "t", &[(3, 3.0), (1, 7.0)]);
        let dirs = [
            a.display().to_string(),
            b.display().to_string(),
            dir.path().join("none").display().to_string(),
        ];
        let files = candidates(&dirs);
        assert_eq!(files.len(), 3);
        let key = |k: u8| [k; 32];
        // Rows 3, 1, (4 without the modality), 1 again.
        let rows = [key(3), key(1), key(4), key(1)];
        let present = [true, true, false, true];
        let Search::Found { table, tables } = gather(&files, "t", &rows, &present) else {
            panic!("not found");
        };
        assert_eq!(tables, 2);
        assert_eq!(table.dim, 2);
        assert_eq!(table.present, present);
        // The first file holding a row wins (a's 1.0, not b's 7.0).
        assert_eq!(table.values, [3.0, -3.0, 1.0, -1.0, 0.0, 0.0, 1.0, -1.0]);
        // A row in no table of that tower key: computed.
        assert_eq!(
            gather(&files, "t", &[key(1), key(5)], &[true, true]),
            Search::Missing { rows: 1, tables: 2 }
        );
        assert_eq!(
            gather(&files, "nope", &[key(1)], &[true]),
            Search::Missing { rows: 1, tables: 0 }
        );
        // Nothing to gather: computed (it costs nothing).
        assert!(matches!(
            gather(&files, "t", &[key(4)], &[false]),
            Search::Missing { .. }
        ));
    }
}
