//! The JSONL inputs every reader shares: non-blank lines parsed as objects, each
//! with its 1-based line number so every later message can name `file:line`.
//!
//! Reviews are not read here: a reviews file may also be one JSON array (see
//! `apply/reviews.rs`).

use std::path::Path;

use serde_json::{Map, Value};

use crate::CurateError;

/// Objects with their 1-based line numbers, in file order.
pub(crate) type Lines = Vec<(usize, Map<String, Value>)>;

/// Reads `path` and parses it with [`parse_lines`].
pub(crate) fn read_lines(path: &Path) -> Result<Lines, CurateError> {
    let text = std::fs::read_to_string(path).map_err(|source| CurateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_lines(path, &text)
}

/// Non-blank lines of a JSONL text as objects; `path` names the file in messages.
pub(crate) fn parse_lines(path: &Path, text: &str) -> Result<Lines, CurateError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => out.push((i + 1, m)),
            Ok(_) => return Err(bad(path, i + 1, "expected a JSON object".into())),
            Err(e) => return Err(bad(path, i + 1, format!("malformed JSON: {e}"))),
        }
    }
    Ok(out)
}

/// A bad line of `path` (the user's mistake: exit 2).
pub(crate) fn bad(path: &Path, line: usize, message: String) -> CurateError {
    CurateError::BadLine {
        path: path.to_path_buf(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_are_skipped_and_numbers_are_the_files() {
        let l = parse_lines(Path::new("f.jsonl"), "{\"a\":1}\n\n  \n{\"b\":2}\r\n").unwrap();
        let got: Vec<(usize, Vec<&String>)> =
            l.iter().map(|(n, m)| (*n, m.keys().collect())).collect();
        assert_eq!(
            got,
            vec![(1, vec![&"a".to_string()]), (4, vec![&"b".to_string()])]
        );
        let e = parse_lines(Path::new("f.jsonl"), "{}\n[1]\n").unwrap_err();
        assert!(
            e.to_string().contains("f.jsonl:2: expected a JSON object"),
            "{e}"
        );
        let e = parse_lines(Path::new("f.jsonl"), "{\"a\":\n").unwrap_err();
        assert!(e.to_string().contains("f.jsonl:1: malformed JSON"), "{e}");
    }
}
