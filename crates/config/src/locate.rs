//! Maps a dotted key path (`optim.warmup_steps`) to its line and column in the YAML
//! text, so problems found after parsing (cross-field validation, environment
//! expansion) can still point at the line a user has to edit.
//!
//! Run configs are block-style YAML, so an indentation scan is enough; a key written
//! in flow style (`{a: 1}`) is simply not indexed and the message falls back to the
//! file name without a line.

use std::collections::HashMap;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// Positions of every block-mapping key in a YAML document.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    keys: HashMap<String, Pos>,
}

impl KeyIndex {
    /// Scans `text` for `key:` lines and records their dotted paths.
    pub fn build(text: &str) -> Self {
        let mut keys = HashMap::new();
        let mut stack: Vec<(usize, String)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = strip_comment(raw);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with("---") || trimmed.starts_with("...") {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if trimmed.starts_with('-') {
                // Sequence items are not addressed by dotted paths; they only close
                // deeper keys.
                while stack.last().is_some_and(|(d, _)| *d > indent) {
                    stack.pop();
                }
                continue;
            }
            let Some(key) = key_of(trimmed) else { continue };
            while stack.last().is_some_and(|(d, _)| *d >= indent) {
                stack.pop();
            }
            stack.push((indent, key.to_string()));
            let path = stack
                .iter()
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join(".");
            keys.entry(path).or_insert(Pos {
                line: i + 1,
                col: indent + 1,
            });
        }
        Self { keys }
    }

    /// The position of `path`, or of its nearest ancestor written in the file.
    pub fn find(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.keys.get(p) {
                return Some(*pos);
            }
            p = &p[..p.rfind('.')?];
        }
    }

    /// The position of exactly `path`.
    pub fn exact(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied()
    }
}

fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let (mut in_single, mut in_double) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !in_double => in_single = !in_single,
            b'"' if !in_single => in_double = !in_double,
            b'#' if !in_single && !in_double && (i == 0 || bytes[i - 1].is_ascii_whitespace()) => {
                return &line[..i];
            }
            _ => {}
        }
    }
    line
}

fn key_of(trimmed: &str) -> Option<&str> {
    let colon = trimmed.find(':')?;
    let key = &trimmed[..colon];
    let rest = &trimmed[colon + 1..];
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/');
    (plain && (rest.is_empty() || rest.starts_with([' ', '\t']))).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment: not a key
run:
  name: demo   # trailing: comment
  seed: 7
model:
  labels:
    - hate
    - spam
  text:
    encoder: bert
optim:
  lr: 2e-5
";

    #[test]
    fn indexes_nested_keys_with_positions() {
        let idx = KeyIndex::build(DOC);
        assert_eq!(idx.exact("run"), Some(Pos { line: 2, col: 1 }));
        assert_eq!(idx.exact("run.seed"), Some(Pos { line: 4, col: 3 }));
        assert_eq!(
            idx.exact("model.text.encoder"),
            Some(Pos { line: 10, col: 5 })
        );
        assert_eq!(idx.exact("optim.lr"), Some(Pos { line: 12, col: 3 }));
        assert_eq!(idx.exact("comment"), None);
    }

    #[test]
    fn falls_back_to_nearest_ancestor() {
        let idx = KeyIndex::build(DOC);
        assert_eq!(
            idx.find("optim.warmup_steps"),
            Some(Pos { line: 11, col: 1 })
        );
        assert_eq!(idx.find("train.batch_size"), None);
    }

    #[test]
    fn urls_and_quoted_hashes_are_not_keys_or_comments() {
        let idx = KeyIndex::build("a:\n  b: \"x # y\"\n  c: http://h:1\n");
        assert!(idx.exact("a.b").is_some());
        assert!(idx.exact("a.c").is_some());
        assert_eq!(idx.exact("a.c.http"), None);
    }
}
