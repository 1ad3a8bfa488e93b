//! What preparing one table did ([`BuildReport`]), for the log and the closing
//! figures.

use std::path::PathBuf;
use std::time::Duration;

/// What preparing one table did, for the log and the closing figures.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// `train` or `val`.
    pub split: &'static str,
    /// `text` or `image`.
    pub tower: &'static str,
    /// Rows of the dataset.
    pub rows: usize,
    /// Rows that have the modality (the ones run through the tower).
    pub encoded: usize,
    /// Computed now (false: loaded from disk, or gathered).
    pub computed: bool,
    /// Gathered from other runs' tables (`train.feature_cache_search`): how many
    /// tables the rows came from.
    pub gathered_from: Option<usize>,
    /// Wall time of the build or load, hashing included.
    pub elapsed: Duration,
    /// The file.
    pub path: PathBuf,
    /// With `run.output_dir` on a bucket: the table's object there, which a
    /// load came from (when the local copy was missing) or a build was uploaded to.
    pub remote: Option<String>,
}

impl BuildReport {
    /// One line for the console.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let remote = self
            .remote
            .as_ref()
            .map(|r| {
                let how = if self.computed || self.gathered_from.is_some() {
                    "uploaded to"
                } else {
                    "downloaded from"
                };
                format!(" ({how} {r})")
            })
            .unwrap_or_default();
        if self.computed {
            format!(
                "feature cache: {} tower on {} computed for {} rows in {:.1} s ({:.1} rows/s) -> {}{remote}",
                self.tower,
                self.split,
                self.encoded,
                secs,
                self.encoded as f64 / secs.max(1e-9),
                self.path.display()
            )
        } else if let Some(tables) = self.gathered_from {
            format!(
                "feature cache: {} tower on {} gathered for {} rows from {tables} table{} in {:.1} s -> {}{remote}",
                self.tower,
                self.split,
                self.encoded,
                if tables == 1 { "" } else { "s" },
                secs,
                self.path.display()
            )
        } else {
            format!(
                "feature cache: {} tower on {} loaded ({} rows) in {:.2} s from {}{remote}",
                self.tower,
                self.split,
                self.rows,
                secs,
                self.path.display()
            )
        }
    }
}
