//! `vigil datasets audit`: what is in a data file and what is wrong with it.
//!
//! The audit loads the file like training would with `on_bad_row: skip` (so every
//! bad row is counted by kind instead of stopping at the first), then goes
//! further than the load-time checks: it fully decodes every image (a file whose
//! header is fine but whose body is cut off is corrupt), hashes image contents,
//! and groups rows into *items* — same normalised text and same image bytes — to
//! find duplicates, duplicates whose labels conflict, and items shared with
//! another file (`--against`, e.g. train vs. val leakage).
//!
//! Errors (what `--strict` fails on): bad rows, corrupt images, conflicting
//! duplicates, leaked items. Consistent duplicates are reported as warnings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::dataset::{Dataset, LoadOptions, Reject, Split};
use super::error::{BadRowKind, DataError};
use super::format;
use super::imaging;
use super::stats::{DataStats, LabelCounts, Percentiles};
use vigil_config::{DataFormat, OnBadRow};

/// How to read the audited files.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Row format.
    pub format: DataFormat,
    /// Label the Hateful Memes `label` maps to (default `label`).
    pub hateful_memes_label: Option<String>,
    /// Label names; `None` takes every label name found in the file.
    pub labels: Option<Vec<String>>,
    /// Root of image paths; `None`: each file's directory.
    pub image_root: Option<PathBuf>,
    /// Longer texts are bad rows.
    pub max_text_chars: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            format: DataFormat::Vigil,
            hateful_memes_label: None,
            labels: None,
            image_root: None,
            max_text_chars: 10_000,
        }
    }
}

/// A group of rows that are the same item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateGroup {
    /// Ids of the rows, in file order.
    pub ids: Vec<String>,
    /// Their lines.
    pub lines: Vec<usize>,
    /// Labels on which the rows disagree (one says 1, another 0).
    pub conflicting_labels: Vec<String>,
}

/// Items of the audited file also present in the `--against` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leakage {
    /// The other file.
    pub against: PathBuf,
    /// Distinct items present in both files.
    pub shared_items: usize,
    /// Rows of the audited file that are such items.
    pub rows: usize,
    /// Ids used in both files.
    pub shared_ids: usize,
    /// Ids (in the audited file) of the first shared items.
    pub examples: Vec<String>,
}

/// The audit of one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    /// The audited file.
    pub file: PathBuf,
    /// Non-blank lines.
    pub rows: usize,
    /// Rows that pass every load-time check.
    pub valid_rows: usize,
    /// Label names audited.
    pub label_names: Vec<String>,
    /// Bad rows by kind (as training with `on_bad_row: skip` would drop them).
    pub bad_rows: BTreeMap<BadRowKind, usize>,
    /// The first bad rows, with line and reason.
    pub bad_row_examples: Vec<Reject>,
    /// Rows with text and image / text only / image only.
    pub text_and_image: usize,
    /// Rows with text only.
    pub text_only: usize,
    /// Rows with an image only.
    pub image_only: usize,
    /// Per-label positives, negatives and unknowns (valid rows).
    pub labels: Vec<LabelCounts>,
    /// Text length in characters (valid rows with text).
    pub text_chars: Percentiles,
    /// Rows whose image does not exist.
    pub missing_images: usize,
    /// Rows whose image does not decode (header or body).
    pub corrupt_images: usize,
    /// Rows whose image path escapes the root.
    pub escaping_paths: usize,
    /// Groups of rows that are the same item.
    pub duplicate_groups: usize,
    /// Rows beyond the first of each duplicate group.
    pub duplicate_rows: usize,
    /// Duplicate groups whose labels conflict.
    pub conflicting_groups: usize,
    /// The first duplicate groups (conflicting ones first).
    pub duplicate_examples: Vec<DuplicateGroup>,
    /// Items shared with `--against`.
    pub leakage: Option<Leakage>,
    /// Problems `--strict` fails on: bad rows (including images corrupt in their
    /// body), conflicting duplicate groups, leaked items.
    pub errors: usize,
    /// Consistent duplicate groups.
    pub warnings: usize,
}

const EXAMPLES: usize = 10;

type ItemKey = (Option<String>, Option<String>);

struct Scanned {
    dataset: Dataset,
    rows: usize,
    rejects: Vec<Reject>,
    keys: Vec<ItemKey>,
    body_corrupt: Vec<Reject>,
}

/// Audits `file`, comparing items with `against` when given.
pub fn audit(
    file: &Path,
    against: Option<&Path>,
    opts: &AuditOptions,
) -> Result<AuditReport, DataError> {
    let labels = match (&opts.labels, opts.format) {
        (Some(l), _) => l.clone(),
        (None, DataFormat::HatefulMemes) => {
            vec![
                opts.hateful_memes_label
                    .clone()
                    .unwrap_or_else(|| "label".into()),
            ]
        }
        (None, DataFormat::Vigil) => discover_labels(file)?,
    };
    let scanned = scan(file, &labels, opts)?;
    let stats = DataStats::of(&scanned.dataset);

    let mut all_rejects = scanned.rejects.clone();
    all_rejects.extend(scanned.body_corrupt.iter().cloned());
    all_rejects.sort_by_key(|r| r.line);
    let mut bad_rows = BTreeMap::new();
    for r in &all_rejects {
        *bad_rows.entry(r.kind).or_insert(0) += 1;
    }
    let count = |k| bad_rows.get(&k).copied().unwrap_or(0);

    let mut groups: HashMap<&ItemKey, Vec<usize>> = HashMap::new();
    for (i, key) in scanned.keys.iter().enumerate() {
        groups.entry(key).or_default().push(i);
    }
    let mut dups: Vec<DuplicateGroup> = groups
        .values()
        .filter(|g| g.len() > 1)
        .map(|g| {
            let ex = scanned.dataset.examples();
            let conflicting_labels = labels
                .iter()
                .enumerate()
                .filter(|(li, _)| {
                    let vals: HashSet<bool> = g.iter().filter_map(|&i| ex[i].labels[*li]).collect();
                    vals.len() > 1
                })
                .map(|(_, l)| l.clone())
                .collect();
            DuplicateGroup {
                ids: g.iter().map(|&i| ex[i].id.clone()).collect(),
                lines: g.iter().map(|&i| ex[i].line).collect(),
                conflicting_labels,
            }
        })
        .collect();
    dups.sort_by(|a, b| {
        (a.conflicting_labels.is_empty(), a.lines[0])
            .cmp(&(b.conflicting_labels.is_empty(), b.lines[0]))
    });
    let duplicate_rows = dups.iter().map(|g| g.ids.len() - 1).sum();
    let conflicting_groups = dups
        .iter()
        .filter(|g| !g.conflicting_labels.is_empty())
        .count();

    let leakage = match against {
        Some(other) => {
            let theirs = scan(other, &labels, opts)?;
            let their_keys: HashSet<&ItemKey> = theirs.keys.iter().collect();
            let their_ids: HashSet<&str> = theirs
                .dataset
                .examples()
                .iter()
                .map(|e| e.id.as_str())
                .collect();
            let mut shared: HashSet<&ItemKey> = HashSet::new();
            let mut rows = 0;
            let mut examples = Vec::new();
            for (i, key) in scanned.keys.iter().enumerate() {
                if their_keys.contains(key) {
                    rows += 1;
                    shared.insert(key);
                    if examples.len() < EXAMPLES {
                        examples.push(scanned.dataset.example(i).id.clone());
                    }
                }
            }
            let shared_ids = scanned
                .dataset
                .examples()
                .iter()
                .filter(|e| their_ids.contains(e.id.as_str()))
                .count();
            Some(Leakage {
                against: other.to_path_buf(),
                shared_items: shared.len(),
                rows,
                shared_ids,
                examples,
            })
        }
        None => None,
    };

    let errors =
        all_rejects.len() + conflicting_groups + leakage.as_ref().map_or(0, |l| l.shared_items);
    let warnings = dups.len() - conflicting_groups;
    Ok(AuditReport {
        file: file.to_path_buf(),
        rows: scanned.rows,
        valid_rows: scanned.dataset.len() - scanned.body_corrupt.len(),
        label_names: labels,
        bad_row_examples: all_rejects.iter().take(EXAMPLES).cloned().collect(),
        missing_images: count(BadRowKind::ImageNotFound),
        corrupt_images: count(BadRowKind::CorruptImage),
        escaping_paths: count(BadRowKind::ImagePathEscape),
        bad_rows,
        text_and_image: stats.text_and_image,
        text_only: stats.text_only,
        image_only: stats.image_only,
        labels: stats.labels,
        text_chars: stats.text_chars,
        duplicate_groups: dups.len(),
        duplicate_rows,
        conflicting_groups,
        duplicate_examples: dups.into_iter().take(EXAMPLES).collect(),
        leakage,
        errors,
        warnings,
    })
}

/// Label names used in a Vigil file, in order of first appearance.
fn discover_labels(file: &Path) -> Result<Vec<String>, DataError> {
    let text = std::fs::read(file).map_err(|source| DataError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let mut names = format::Vigil::label_names(&String::from_utf8_lossy(&text));
    if names.is_empty() {
        names.push("label".into());
    }
    Ok(names)
}

fn scan(file: &Path, labels: &[String], opts: &AuditOptions) -> Result<Scanned, DataError> {
    let load = LoadOptions {
        format: format::for_config(
            opts.format,
            Some(opts.hateful_memes_label.as_deref().unwrap_or(&labels[0])),
        )?,
        image_root: opts.image_root.clone(),
        max_text_chars: opts.max_text_chars,
        on_bad_row: OnBadRow::Skip,
        check_images: true,
    };
    let (dataset, report) = Dataset::read_rows(file, labels, Split::Train, &load)?;
    let hashes = hash_images(&dataset);
    let mut keys = Vec::with_capacity(dataset.len());
    let mut body_corrupt = Vec::new();
    for (ex, h) in dataset.examples().iter().zip(hashes) {
        let image = match h {
            Some(Ok(hash)) => Some(hash),
            Some(Err(reason)) => {
                body_corrupt.push(Reject {
                    line: ex.line,
                    kind: reason.kind,
                    reason: reason.message,
                    id: Some(ex.id.clone()),
                });
                None
            }
            None => None,
        };
        keys.push((ex.text.as_deref().map(normalise_text), image));
    }
    Ok(Scanned {
        dataset,
        rows: report.rows_read,
        rejects: report.rejects,
        keys,
        body_corrupt,
    })
}

/// Lower-case, whitespace collapsed: "Hello  World" and "hello world" are one text.
pub fn normalise_text(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// SHA-256 of each example's image bytes after a full decode (an image is hashed
/// once however many rows use it), on all cores.
fn hash_images(dataset: &Dataset) -> Vec<Option<Result<String, super::BadRow>>> {
    let mut unique: Vec<(&Path, &str)> = Vec::new();
    let mut index: HashMap<&Path, usize> = HashMap::new();
    for ex in dataset.examples() {
        if let (Some(p), Some(rel)) = (&ex.image, &ex.image_rel) {
            index.entry(p.as_path()).or_insert_with(|| {
                unique.push((p.as_path(), rel.as_str()));
                unique.len() - 1
            });
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = unique.len().div_ceil(threads).max(1);
    let results: Vec<Result<String, super::BadRow>> = std::thread::scope(|s| {
        let handles: Vec<_> = unique
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(path, rel)| {
                            let bytes = std::fs::read(path).map_err(|e| {
                                super::BadRow::new(
                                    BadRowKind::ImageNotFound,
                                    format!("image '{rel}': {e}"),
                                )
                            })?;
                            imaging::decode_rgb(path, rel)?;
                            Ok(hex::encode(Sha256::digest(&bytes)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("an audit thread panicked"))
            .collect()
    });
    dataset
        .examples()
        .iter()
        .map(|ex| {
            ex.image
                .as_ref()
                .map(|p| results[index[p.as_path()]].clone())
        })
        .collect()
}

impl AuditReport {
    /// The report as text for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut line = |t: String| {
            s.push_str(&t);
            s.push('\n');
        };
        line(format!("{}", self.file.display()));
        line(format!(
            "  rows: {} ({} valid): {} text+image, {} text only, {} image only",
            self.rows, self.valid_rows, self.text_and_image, self.text_only, self.image_only
        ));
        line("  labels (positive / negative / unknown):".into());
        for l in &self.labels {
            line(format!(
                "    {:<16} {:>7} / {:>7} / {:>7}",
                l.label, l.positive, l.negative, l.unknown
            ));
        }
        let t = self.text_chars;
        line(format!(
            "  text length (chars): min {} p50 {} p90 {} p99 {} max {}",
            t.min, t.p50, t.p90, t.p99, t.max
        ));
        line(format!(
            "  images: {} missing, {} corrupt, {} escaping the root",
            self.missing_images, self.corrupt_images, self.escaping_paths
        ));
        let bad: usize = self.bad_rows.values().sum();
        line(format!("  bad rows: {bad}"));
        for (k, n) in &self.bad_rows {
            line(format!("    {k}: {n}"));
        }
        for r in &self.bad_row_examples {
            line(format!(
                "    {}:{}: {}",
                self.file.display(),
                r.line,
                r.reason
            ));
        }
        line(format!(
            "  duplicates: {} groups ({} extra rows), {} with conflicting labels",
            self.duplicate_groups, self.duplicate_rows, self.conflicting_groups
        ));
        for g in &self.duplicate_examples {
            let lines: Vec<String> = g.lines.iter().map(usize::to_string).collect();
            let what = if g.conflicting_labels.is_empty() {
                String::new()
            } else {
                format!(" conflict on {}", g.conflicting_labels.join(", "))
            };
            line(format!("    lines {}{what}", lines.join(", ")));
        }
        if let Some(l) = &self.leakage {
            line(format!(
                "  shared with {}: {} items ({} rows), {} ids",
                l.against.display(),
                l.shared_items,
                l.rows,
                l.shared_ids
            ));
            if !l.examples.is_empty() {
                line(format!("    e.g. ids {}", l.examples.join(", ")));
            }
        }
        line(format!(
            "  errors: {}, warnings: {}",
            self.errors, self.warnings
        ));
        s
    }
}
