//! Vectors in: `vigil embed`'s JSONL (`{"id", "<field>": [..]}`) or a NumPy `.npy`
//! matrix (`float32`, C order, rows are ids `0..n`), L2-normalised on the way in so
//! an inner product is the cosine similarity.

use std::io::BufRead;
use std::path::Path;

use crate::error::RecallError;

/// Ids and their unit vectors, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vectors {
    /// One id per row.
    pub ids: Vec<String>,
    /// Width of each row.
    pub dims: usize,
    /// `ids.len() × dims` values.
    pub data: Vec<f32>,
}

impl Vectors {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }

    /// Appends one row (normalised); the first row sets the width.
    pub fn push(&mut self, id: String, v: &[f32]) -> Result<(), String> {
        if self.ids.is_empty() && self.dims == 0 {
            self.dims = v.len();
        }
        if v.len() != self.dims {
            return Err(format!(
                "{} dimensions where earlier rows have {}",
                v.len(),
                self.dims
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err("a value that is not a finite number".into());
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n == 0.0 {
            return Err("an all-zero vector (no direction to compare)".into());
        }
        self.ids.push(id);
        self.data.extend(v.iter().map(|x| x / n));
        Ok(())
    }
}

/// An id as `vigil embed` writes it back: a string, or an integer as its digits.
pub fn id_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// An embeddings file as read.
#[derive(Debug, Clone, Default)]
pub struct EmbeddingsFile {
    /// The rows that have the field.
    pub vectors: Vectors,
    /// Each of those rows' `"scores"` object (`vigil embed` with a model and scores),
    /// empty when the row has none.
    pub scores: Vec<std::collections::BTreeMap<String, f32>>,
    /// Rows without the field (a row the encoder could not embed).
    pub skipped: Vec<String>,
}

/// Reads the `field` vector of every line of an embeddings JSONL. A line without
/// the field (a row the encoder could not embed, written with its id only) is
/// skipped and its id listed; any other bad line is an error naming it.
pub fn read_jsonl(path: &Path, field: &str) -> Result<EmbeddingsFile, RecallError> {
    let file = std::fs::File::open(path).map_err(|e| RecallError::io(path, e))?;
    let mut out = Vectors::default();
    let mut scores = Vec::new();
    let mut skipped = Vec::new();
    let bad = |line: usize, reason: String| RecallError::BadLine {
        path: path.to_path_buf(),
        line,
        reason,
    };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| RecallError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(i + 1, format!("not JSON: {e}")))?;
        let id = value
            .get("id")
            .and_then(id_text)
            .ok_or_else(|| bad(i + 1, "no \"id\" (a non-empty string or an integer)".into()))?;
        let Some(v) = value.get(field) else {
            skipped.push(id);
            continue;
        };
        let v: Vec<f32> = serde_json::from_value(v.clone())
            .map_err(|_| bad(i + 1, format!("\"{field}\" is not an array of numbers")))?;
        out.push(id, &v)
            .map_err(|r| bad(i + 1, format!("\"{field}\": {r}")))?;
        let s = match value.get("scores") {
            None => Default::default(),
            Some(s) => serde_json::from_value(s.clone())
                .map_err(|_| bad(i + 1, "\"scores\" is not an object of numbers".into()))?,
        };
        scores.push(s);
    }
    Ok(EmbeddingsFile {
        vectors: out,
        scores,
        skipped,
    })
}

/// Reads a 2-D `float32` `.npy` matrix (C order); row `i` gets id `i`.
pub fn read_npy(path: &Path) -> Result<Vectors, RecallError> {
    let bytes = std::fs::read(path).map_err(|e| RecallError::io(path, e))?;
    let bad = |reason: &str| RecallError::BadLine {
        path: path.to_path_buf(),
        line: 1,
        reason: format!("not a 2-D little-endian float32 C-order .npy: {reason}"),
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NumPy magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unknown format version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if !header.contains("'descr': '<f4'") {
        return Err(bad("dtype is not '<f4'"));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran order"));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("shape is not integers")))
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(bad("not 2-D"));
    };
    let body = &bytes[start + header_len..];
    if body.len() != rows * cols * 4 {
        return Err(bad("data size does not match the shape"));
    }
    let mut out = Vectors {
        dims: cols,
        ..Vectors::default()
    };
    out.ids.reserve(rows);
    out.data.reserve(rows * cols);
    let mut row = vec![0f32; cols];
    for (i, chunk) in body.chunks_exact(cols * 4).enumerate() {
        for (x, b) in row.iter_mut().zip(chunk.chunks_exact(4)) {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        out.push(i.to_string(), &row)
            .map_err(|r| RecallError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!("row {i}: {r}"),
            })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_rows_are_normalised_and_rows_without_the_field_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"a\",\"embedding\":[3,4]}\n{\"id\":7}\n{\"id\":7,\"embedding\":[0,2]}\n",
        )
        .unwrap();
        let f = read_jsonl(&p, "embedding").unwrap();
        let v = f.vectors;
        assert_eq!(f.skipped, vec!["7"]);
        assert_eq!(v.ids, vec!["a", "7"]);
        assert_eq!(v.data, vec![0.6, 0.8, 0.0, 1.0]);
        std::fs::write(
            &p,
            "{\"id\":\"a\",\"embedding\":[3,4]}\n{\"id\":\"b\",\"embedding\":[1]}\n",
        )
        .unwrap();
        let e = read_jsonl(&p, "embedding").unwrap_err();
        assert!(e.is_usage());
        assert!(e.to_string().contains("e.jsonl:2:"), "{e}");
    }

    #[test]
    fn npy_matrices_read_row_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.npy");
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        for x in [3f32, 4.0, 1.0, 0.0] {
            bytes.extend(x.to_le_bytes());
        }
        std::fs::write(&p, &bytes).unwrap();
        let v = read_npy(&p).unwrap();
        assert_eq!(v.ids, vec!["0", "1"]);
        assert_eq!(v.data, vec![0.6, 0.8, 1.0, 0.0]);
    }
}
