//! One BYTES tensor's elements: from its JSON `data` (a string per element: the
//! text, or base64 of the image file) or from the binary tail in Triton's
//! serialisation (per element a u32 little-endian length, then its bytes).

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{BadInput, IMAGE};
use crate::limits::Limits;

/// The elements of one BYTES input, from its JSON `data` or from the binary tail.
pub(super) fn tensor_elements(
    name: &str,
    input: &Map<String, Value>,
    tail: &mut &[u8],
    limits: &Limits,
) -> Result<Vec<Vec<u8>>, BadInput> {
    let bad = |msg: String| BadInput::new(Some(name), None, msg);
    match input.get("datatype").and_then(Value::as_str) {
        Some("BYTES") => {}
        Some(other) => return Err(bad(format!("datatype must be BYTES, not {other}"))),
        None => return Err(bad("has no 'datatype' (BYTES)".into())),
    }
    let shape: Vec<u64> = input
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().map(Value::as_u64).collect())
        .ok_or_else(|| bad("'shape' must be an array of non-negative integers".into()))?;
    let n = match shape.as_slice() {
        [n] | [n, 1] => *n as usize,
        _ => return Err(bad(format!("shape must be [n] (or [n, 1]), not {shape:?}"))),
    };
    if n > limits.max_rows {
        return Err(bad(format!(
            "{n} rows is more than --max-rows {}",
            limits.max_rows
        )));
    }
    let binary_size = input
        .get("parameters")
        .and_then(|p| p.get("binary_data_size"))
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| bad("binary_data_size must be a non-negative integer".into()))
        })
        .transpose()?;
    let elements = match (binary_size, input.get("data")) {
        (Some(_), Some(_)) => {
            return Err(bad("has both 'data' and parameters.binary_data_size".into()));
        }
        (None, None) => return Err(bad("has neither 'data' nor binary_data_size".into())),
        (Some(size), None) => {
            let size = size as usize;
            if size > tail.len() {
                return Err(bad(format!(
                    "binary_data_size {size} is more than the {} bytes left in the body",
                    tail.len()
                )));
            }
            let (mine, rest) = tail.split_at(size);
            *tail = rest;
            split_bytes(name, mine, n)?
        }
        (None, Some(data)) => {
            let mut flat = Vec::with_capacity(n);
            flatten(data, &mut flat);
            if flat.len() != n {
                return Err(bad(format!(
                    "shape says {n} elements but 'data' holds {}",
                    flat.len()
                )));
            }
            flat.into_iter()
                .enumerate()
                .map(|(row, v)| json_element(name, row, v))
                .collect::<Result<_, _>>()?
        }
    };
    Ok(elements)
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// One JSON BYTES element: the text, or base64 of the image file.
pub(crate) fn json_element(name: &str, row: usize, v: &Value) -> Result<Vec<u8>, BadInput> {
    let s = v
        .as_str()
        .ok_or_else(|| BadInput::new(Some(name), Some(row), "a BYTES element must be a string"))?;
    if name == IMAGE {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| BadInput::new(Some(name), Some(row), format!("bad base64: {e}")))
    } else {
        Ok(s.as_bytes().to_vec())
    }
}

/// Splits Triton's serialised BYTES tensor: per element a u32 LE length, then bytes.
pub fn split_bytes(name: &str, mut raw: &[u8], n: usize) -> Result<Vec<Vec<u8>>, BadInput> {
    let mut out = Vec::with_capacity(n);
    for row in 0..n {
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(BadInput::new(
                Some(name),
                Some(row),
                format!("binary data ends before element {row} of {n}"),
            ));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(BadInput::new(
                Some(name),
                Some(row),
                format!("element length {len} runs past the binary data"),
            ));
        }
        let (elem, rest) = rest.split_at(len);
        out.push(elem.to_vec());
        raw = rest;
    }
    if !raw.is_empty() {
        return Err(BadInput::new(
            Some(name),
            None,
            format!("{} bytes of binary data after the {n} elements", raw.len()),
        ));
    }
    Ok(out)
}

/// Serialises BYTES elements in Triton's binary form (what a client sends).
pub fn join_bytes<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_binary_elements_are_refused() {
        assert!(split_bytes("text", &[1, 0, 0], 1).is_err());
        let err = split_bytes("text", &[9, 0, 0, 0, b'a'], 1).unwrap_err();
        assert_eq!(err.row, Some(0));
        assert_eq!(
            split_bytes("text", &join_bytes([&b"ab"[..]]), 1).unwrap(),
            vec![b"ab".to_vec()]
        );
    }
}
