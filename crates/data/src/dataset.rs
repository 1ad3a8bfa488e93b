//! A validated dataset: every row of a JSONL file checked up front.
//!
//! Loading reads the whole file once, parses each line with the configured
//! [`RowFormat`], and applies the checks all formats share: an id used twice,
//! neither text nor image, text over `data.max_text_chars`, an image path that is
//! absolute or leaves the root, an image that is missing or whose header does not
//! decode. Under `on_bad_row: fail` any bad row stops the load with `FILE:LINE:
//! reason` (plus how many more there are); under `skip` bad rows are dropped,
//! counted by kind, and written to `data/rejects.jsonl` in the run directory.
//! Either way nothing is dropped silently, and it all happens before training.
//!
//! Blank lines are not rows (a trailing newline is not an error).

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{BadRow, BadRowKind, DataError};
use super::format::{self, RowFormat};
use super::imaging;
use super::paths::ImageRoot;
use vigil_config::{DataSection, OnBadRow};

/// Which file of `data` a dataset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// `data.train`.
    Train,
    /// `data.val`.
    Val,
}

impl Split {
    /// `train` or `val`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
        }
    }
}

/// One kept row.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The row's id.
    pub id: String,
    /// 1-based line in the data file.
    pub line: usize,
    /// The text, if any.
    pub text: Option<String>,
    /// The image path as written in the file, if any.
    pub image_rel: Option<String>,
    /// The image file to open (root joined with `image_rel`), if any.
    pub image: Option<PathBuf>,
    /// One entry per label: known positive/negative, or `None` (unknown).
    pub labels: Vec<Option<bool>>,
    /// The row's `meta` object, if it had one (reports slice on it; training
    /// ignores it).
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
    /// Why the row has its labels, if the row says (reports and the annotation
    /// queue show it; training ignores it).
    pub rationale: Option<String>,
}

/// A dropped row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    /// 1-based line in the data file.
    pub line: usize,
    /// The kind of problem.
    pub kind: BadRowKind,
    /// The sentence describing it.
    pub reason: String,
    /// The row's id when it could be read.
    pub id: Option<String>,
}

/// What loading did: rows read, kept, and every rejected row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// The data file.
    pub file: PathBuf,
    /// Which split.
    pub split: Split,
    /// Non-blank lines read.
    pub rows_read: usize,
    /// Rows kept.
    pub kept: usize,
    /// Rows dropped, in file order.
    pub rejects: Vec<Reject>,
    /// Where the rejects were written, if a run directory was given.
    pub rejects_file: Option<PathBuf>,
}

impl LoadReport {
    /// Rows dropped.
    pub fn skipped(&self) -> usize {
        self.rejects.len()
    }

    /// Dropped rows counted by kind (only kinds that occurred).
    pub fn skipped_by_kind(&self) -> BTreeMap<BadRowKind, usize> {
        let mut counts = BTreeMap::new();
        for r in &self.rejects {
            *counts.entry(r.kind).or_insert(0) += 1;
        }
        counts
    }

    /// One line for the log: `FILE (train): 598 rows kept, 2 skipped (...)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} ({}): {} rows kept, {} skipped",
            self.file.display(),
            self.split.as_str(),
            self.kept,
            self.skipped()
        );
        if self.skipped() > 0 {
            let parts: Vec<String> = self
                .skipped_by_kind()
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            s.push_str(&format!(" ({})", parts.join(", ")));
        }
        if let Some(p) = &self.rejects_file {
            s.push_str(&format!("; rejects in {}", p.display()));
        }
        s
    }
}

/// How to read a file (built from [`DataSection`] by [`Dataset::load`]).
pub struct LoadOptions {
    /// The row format.
    pub format: Box<dyn RowFormat>,
    /// Root of relative image paths; `None`: the data file's directory.
    pub image_root: Option<PathBuf>,
    /// Longer texts are bad rows.
    pub max_text_chars: usize,
    /// Stop or skip on bad rows.
    pub on_bad_row: OnBadRow,
    /// Check that each image exists and its header decodes.
    pub check_images: bool,
}

impl LoadOptions {
    /// The options `data` describes.
    pub fn from_section(data: &DataSection) -> Result<Self, DataError> {
        Ok(Self {
            format: format::for_config(data.format, data.hateful_memes_label.as_deref())?,
            image_root: data.image_root.as_ref().map(PathBuf::from),
            max_text_chars: data.max_text_chars,
            on_bad_row: data.on_bad_row,
            check_images: true,
        })
    }
}

/// The validated rows of one data file.
#[derive(Debug, Clone)]
pub struct Dataset {
    file: PathBuf,
    split: Split,
    labels: Vec<String>,
    image_root: PathBuf,
    examples: Vec<Example>,
}

impl Dataset {
    /// Loads `data.train` or `data.val` against `labels` (`model.labels`). With a
    /// `run_dir` (pass it on rank 0 only), the rejects go to
    /// `<run_dir>/data/rejects.jsonl`, replacing that split's earlier entries.
    pub fn load(
        data: &DataSection,
        labels: &[String],
        split: Split,
        run_dir: Option<&Path>,
    ) -> Result<(Self, LoadReport), DataError> {
        let file = match split {
            Split::Train => PathBuf::from(&data.train),
            Split::Val => PathBuf::from(data.val.as_ref().ok_or_else(|| DataError::Settings {
                message: "data.val is not set, so there is no validation split".into(),
            })?),
        };
        let opts = LoadOptions::from_section(data)?;
        let (dataset, mut report) = Self::load_file(&file, labels, split, &opts)?;
        if let Some(dir) = run_dir {
            report.rejects_file = Some(write_rejects(dir, &report)?);
        }
        if report.skipped() > 0 {
            tracing::warn!("{}", report.summary());
        } else {
            tracing::info!("{}", report.summary());
        }
        Ok((dataset, report))
    }

    /// Loads one file with explicit options (no rejects file, no logging).
    pub fn load_file(
        file: &Path,
        labels: &[String],
        split: Split,
        opts: &LoadOptions,
    ) -> Result<(Self, LoadReport), DataError> {
        let (dataset, report) = Self::read_rows(file, labels, split, opts)?;
        if opts.on_bad_row == OnBadRow::Fail
            && let Some(first) = report.rejects.first()
        {
            return Err(DataError::BadRow {
                file: file.to_path_buf(),
                line: first.line,
                reason: BadRow::new(first.kind, first.reason.clone()),
                more: report.rejects.len() - 1,
            });
        }
        if dataset.is_empty() {
            return Err(DataError::Empty {
                file: file.to_path_buf(),
                skipped: report.skipped(),
            });
        }
        Ok((dataset, report))
    }

    /// Reads and checks every row, keeping the good ones and reporting the bad
    /// ones whatever `on_bad_row` says (the audit's view); may return no examples.
    pub fn read_rows(
        file: &Path,
        labels: &[String],
        split: Split,
        opts: &LoadOptions,
    ) -> Result<(Self, LoadReport), DataError> {
        if labels.is_empty() {
            return Err(DataError::Settings {
                message: "model.labels is empty: a dataset needs at least one label".into(),
            });
        }
        let read_err = |source| DataError::Read {
            path: file.to_path_buf(),
            source,
        };
        let handle = std::fs::File::open(file).map_err(read_err)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, handle);
        let root = opts
            .image_root
            .clone()
            .unwrap_or_else(|| file.parent().map(Path::to_path_buf).unwrap_or_default());
        let root = if root.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            root
        };
        let image_root = ImageRoot::new(&root);

        let mut examples = Vec::new();
        let mut rejects = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut rows_read = 0;
        let mut buf = Vec::new();
        let mut line_no = 0;
        let max_row = max_row_bytes(opts.max_text_chars);
        loop {
            buf.clear();
            let line = read_row(&mut reader, &mut buf, max_row).map_err(read_err)?;
            if line == Row::End {
                break;
            }
            line_no += 1;
            if let Row::TooLong(bytes) = line {
                rows_read += 1;
                rejects.push(Reject {
                    line: line_no,
                    kind: BadRowKind::TextTooLong,
                    reason: format!(
                        "the row is {bytes} bytes, longer than any row with data.max_text_chars = \
                         {} can be ({max_row} bytes); not parsed",
                        opts.max_text_chars
                    ),
                    id: None,
                });
                continue;
            }
            let Ok(line) = std::str::from_utf8(&buf) else {
                rows_read += 1;
                rejects.push(Reject {
                    line: line_no,
                    kind: BadRowKind::MalformedJson,
                    reason: "line is not valid UTF-8".into(),
                    id: None,
                });
                continue;
            };
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            rows_read += 1;
            let mut id = None;
            let checked = opts
                .format
                .parse(line, labels)
                .and_then(|raw| {
                    id = Some(raw.id.clone());
                    if let Some(first) = seen.get(&raw.id) {
                        return Err(BadRow::new(
                            BadRowKind::DuplicateId,
                            format!("duplicate id '{}' (first on line {first})", raw.id),
                        ));
                    }
                    seen.insert(raw.id.clone(), line_no);
                    Ok(raw)
                })
                .and_then(|raw| check_row(raw, line_no, &image_root, opts));
            match checked {
                Ok(example) => examples.push(example),
                Err(reason) => rejects.push(Reject {
                    line: line_no,
                    kind: reason.kind,
                    reason: reason.message,
                    id,
                }),
            }
        }

        let report = LoadReport {
            file: file.to_path_buf(),
            split,
            rows_read,
            kept: examples.len(),
            rejects,
            rejects_file: None,
        };
        let dataset = Self {
            file: file.to_path_buf(),
            split,
            labels: labels.to_vec(),
            image_root: root,
            examples,
        };
        Ok((dataset, report))
    }

    /// A dataset from examples already in memory (tests, synthetic benchmarks).
    pub fn from_examples(
        file: PathBuf,
        split: Split,
        labels: Vec<String>,
        examples: Vec<Example>,
    ) -> Self {
        let image_root = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Self {
            file,
            split,
            labels,
            image_root,
            examples,
        }
    }

    /// The data file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Which split.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The label names, in logit order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The root image paths are relative to.
    pub fn image_root(&self) -> &Path {
        &self.image_root
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples (never true for a loaded dataset).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// All examples, in file order.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Example `i` (an index from a [`super::Batch::rows`]).
    pub fn example(&self, i: usize) -> &Example {
        &self.examples[i]
    }

    /// Characters per text (0 for image-only rows), in file order.
    pub fn text_lengths(&self) -> Vec<usize> {
        self.examples
            .iter()
            .map(|e| e.text.as_ref().map_or(0, |t| t.chars().count()))
            .collect()
    }
}

/// The longest row a file may hold for texts of at most `max_text_chars`: 12 bytes
/// per character (a JSON `\uXXXX` surrogate pair) plus 1 MiB for the id, image path
/// and metadata. A longer row cannot be valid, so it is skipped unread.
fn max_row_bytes(max_text_chars: usize) -> usize {
    max_text_chars.saturating_mul(12).saturating_add(1 << 20)
}

/// What [`read_row`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// A line (in the buffer, with its newline if it had one).
    Line,
    /// A line longer than the limit, of this many bytes, consumed but not kept.
    TooLong(usize),
    /// The end of the file.
    End,
}

/// Reads one line into `buf`, keeping at most `limit` bytes of it: a longer line
/// is consumed in the reader's own buffer and dropped, so memory stays bounded
/// by the limit whatever one row holds (a 100 MB row used to cost ~3× its size).
fn read_row(reader: &mut impl BufRead, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<Row> {
    let mut total = 0usize;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(match total {
                0 => Row::End,
                n if n > limit => Row::TooLong(n),
                _ => Row::Line,
            });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        total += take;
        if total <= limit {
            buf.extend_from_slice(&chunk[..take]);
        } else {
            buf.clear();
        }
        reader.consume(take);
        if done {
            return Ok(if total > limit {
                Row::TooLong(total)
            } else {
                Row::Line
            });
        }
    }
}

/// The checks every format shares, turning a parsed row into an example.
fn check_row(
    raw: format::RawRow,
    line: usize,
    root: &ImageRoot,
    opts: &LoadOptions,
) -> Result<Example, BadRow> {
    if raw.text.is_none() && raw.image.is_none() {
        return Err(BadRow::new(BadRowKind::NoContent, "neither text nor image"));
    }
    if let Some(text) = &raw.text {
        let chars = text.chars().count();
        if chars > opts.max_text_chars {
            return Err(BadRow::new(
                BadRowKind::TextTooLong,
                format!(
                    "text has {chars} characters, more than data.max_text_chars = {}",
                    opts.max_text_chars
                ),
            ));
        }
    }
    let image = match &raw.image {
        Some(rel) => {
            let path = root.resolve(rel)?;
            if opts.check_images {
                imaging::check_header(&path, rel)?;
            }
            Some(path)
        }
        None => None,
    };
    Ok(Example {
        id: raw.id,
        line,
        text: raw.text,
        image_rel: raw.image,
        image,
        labels: raw.labels,
        meta: raw.meta,
        rationale: raw.rationale,
    })
}

#[derive(Serialize)]
struct RejectLine<'a> {
    split: &'a str,
    file: String,
    line: usize,
    kind: BadRowKind,
    reason: &'a str,
    id: Option<&'a str>,
}

/// Writes `report`'s rejects to `<run_dir>/data/rejects.jsonl`, keeping the
/// entries of other splits (train and val share the file); written atomically
/// ([`vigil_store::atomic::write_atomic`]).
pub fn write_rejects(run_dir: &Path, report: &LoadReport) -> Result<PathBuf, DataError> {
    let dir = run_dir.join("data");
    let path = dir.join("rejects.jsonl");
    let write_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DataError::Write { path: p, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let split = report.split.as_str();
    let mut out = String::new();
    if let Ok(old) = std::fs::read_to_string(&path) {
        for line in old.lines() {
            let same_split = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("split").and_then(|s| s.as_str()).map(|s| s == split))
                .unwrap_or(false);
            if !same_split && !line.trim().is_empty() {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for r in &report.rejects {
        let row = RejectLine {
            split,
            file: report.file.display().to_string(),
            line: r.line,
            kind: r.kind,
            reason: &r.reason,
            id: r.id.as_deref(),
        };
        out.push_str(&serde_json::to_string(&row).expect("a reject serializes"));
        out.push('\n');
    }
    vigil_store::atomic::write_atomic(&path, out.as_bytes()).map_err(write_err(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (#32): a 100 MB row peaked at 320 MB before it was rejected.
    #[test]
    fn a_row_longer_than_the_limit_is_consumed_without_being_kept() {
        let long = "x".repeat(5000);
        let text = format!("short\n{long}\n\nlast-without-newline");
        let mut reader = std::io::BufReader::with_capacity(64, text.as_bytes());
        let mut buf = Vec::new();
        let mut rows = Vec::new();
        loop {
            buf.clear();
            let row = read_row(&mut reader, &mut buf, 100).unwrap();
            if row == Row::End {
                break;
            }
            assert!(buf.len() <= 101, "kept {} bytes", buf.len());
            rows.push((row, String::from_utf8(buf.clone()).unwrap()));
        }
        assert_eq!(
            rows,
            [
                (Row::Line, "short\n".to_string()),
                (Row::TooLong(5001), String::new()),
                (Row::Line, "\n".to_string()),
                (Row::Line, "last-without-newline".to_string()),
            ]
        );
        assert_eq!(max_row_bytes(10_000), 120_000 + (1 << 20));
    }
}
