//! A Vigil dataset file as the queue and apply-labels read it: every line kept byte
//! for byte beside its parsed row, so a new file can repeat the untouched lines
//! exactly and re-serialise only the rows a review changed.
//!
//! Rows are parsed with the Vigil format's own parser ([`vigil_data::format::Vigil`]),
//! so a row this module accepts is a row training accepts as far as its fields go
//! (the shared checks, such as an image file existing, are the loader's).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vigil_data::format::{RawRow, RowFormat, Vigil};

use crate::CurateError;

/// One line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct DataLine {
    /// 1-based line number.
    pub number: usize,
    /// The line as read, without its `\n` (a `\r` of a CRLF file stays).
    pub text: String,
    /// The parsed row; `None` for a blank line.
    pub row: Option<RawRow>,
}

/// A dataset file, every line in order.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// The file.
    pub path: PathBuf,
    /// Label names, in the order rows are parsed against.
    pub labels: Vec<String>,
    /// Every line, blank ones included.
    pub lines: Vec<DataLine>,
    /// Whether the file's last line ends in a newline.
    pub trailing_newline: bool,
    by_id: HashMap<String, usize>,
}

impl DataFile {
    /// Reads and parses `path`; `labels` names the labels (default: every label name
    /// the rows use, in order of first use).
    pub fn read(path: &Path, labels: Option<&[String]>) -> Result<Self, CurateError> {
        let bytes = std::fs::read(path).map_err(|source| CurateError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| CurateError::Usage {
            message: format!("{}: not UTF-8 text: {e}", path.display()),
        })?;
        Self::parse(path, &text, labels)
    }

    /// Parses the file's text (`path` names it in messages).
    pub fn parse(path: &Path, text: &str, labels: Option<&[String]>) -> Result<Self, CurateError> {
        let labels = match labels {
            Some(l) => l.to_vec(),
            None => Vigil::label_names(text),
        };
        let bad = |line: usize, message: String| CurateError::BadLine {
            path: path.to_path_buf(),
            line,
            message,
        };
        let trailing_newline = text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        let mut lines = Vec::new();
        let mut by_id = HashMap::new();
        if !text.is_empty() {
            for (i, line) in body.split('\n').enumerate() {
                let number = i + 1;
                let row = if line.trim().is_empty() {
                    None
                } else {
                    let row = Vigil
                        .parse(line, &labels)
                        .map_err(|e| bad(number, format!("{}: {}", e.kind, e.message)))?;
                    if let Some(&first) = by_id.get(&row.id) {
                        let first: &DataLine = &lines[first];
                        return Err(bad(
                            number,
                            format!(
                                "duplicate id '{}' (first on line {}): a review could not say which row it means",
                                row.id, first.number
                            ),
                        ));
                    }
                    by_id.insert(row.id.clone(), lines.len());
                    Some(row)
                };
                lines.push(DataLine {
                    number,
                    text: line.to_string(),
                    row,
                });
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            labels,
            lines,
            trailing_newline,
            by_id,
        })
    }

    /// The row with `id` and the index of its line in [`DataFile::lines`].
    pub fn row(&self, id: &str) -> Option<(usize, &RawRow)> {
        let i = *self.by_id.get(id)?;
        self.lines[i].row.as_ref().map(|r| (i, r))
    }

    /// Rows in file order.
    pub fn rows(&self) -> impl Iterator<Item = &RawRow> {
        self.lines.iter().filter_map(|l| l.row.as_ref())
    }
}

/// A label value as the data format writes it: `0`, `1` or `null`.
pub fn label_json(v: Option<bool>) -> serde_json::Value {
    match v {
        None => serde_json::Value::Null,
        Some(b) => serde_json::Value::from(u8::from(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DataFile, CurateError> {
        DataFile::parse(Path::new("d.jsonl"), text, None)
    }

    #[test]
    fn keeps_every_line_and_discovers_labels_in_order() {
        let f = parse(
            "{\"id\":\"a\",\"text\":\"x\",\"labels\":{\"spam\":1}}\n\n{\"id\":2,\"text\":\"y\",\"labels\":{\"hate\":0,\"spam\":null}}\r\n",
        )
        .unwrap();
        assert_eq!(f.labels, vec!["spam", "hate"]);
        assert_eq!(f.lines.len(), 3);
        assert!(f.lines[1].row.is_none());
        assert!(f.lines[2].text.ends_with('\r'));
        assert!(f.trailing_newline);
        let (i, row) = f.row("2").unwrap();
        assert_eq!(i, 2);
        assert_eq!(row.labels, vec![None, Some(false)]);
        assert!(f.row("b").is_none());
    }

    #[test]
    fn a_bad_row_or_a_duplicate_id_names_the_line() {
        let e = parse("{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"a\",\"text\":\"y\"}").unwrap_err();
        assert!(
            e.to_string()
                .contains("d.jsonl:2: duplicate id 'a' (first on line 1)"),
            "{e}"
        );
        let e = parse("{\"id\":\"a\",\"text\":\"x\",\"rationale\":1}\n").unwrap_err();
        assert!(e.to_string().contains("d.jsonl:1: malformed_row"), "{e}");
        let e = DataFile::parse(
            Path::new("d.jsonl"),
            "{\"id\":\"a\",\"text\":\"x\",\"labels\":{\"nsfw\":1}}\n",
            Some(&["hate".to_string()]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown label 'nsfw'"), "{e}");
    }
}
