//! What the caller of [`super::render`] chooses: slicing, how many misses, bootstrap.

use crate::bootstrap::Bootstrap;
use crate::error::ReportError;

/// How a report is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Slice by this `meta` field (without the `meta.` prefix), if any.
    pub slice_by: Option<String>,
    /// False positives and negatives shown per label.
    pub top: usize,
    /// Bootstrap settings; `resamples: 0` leaves the intervals out.
    pub bootstrap: Bootstrap,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            slice_by: None,
            top: 8,
            bootstrap: Bootstrap::default(),
        }
    }
}

/// The field of `--slice-by meta.FIELD` (`FIELD`, dots allowed for nested objects).
pub fn parse_slice_by(given: &str) -> Result<String, ReportError> {
    match given.strip_prefix("meta.") {
        Some(f) if !f.is_empty() && f.split('.').all(|p| !p.is_empty()) => Ok(f.to_string()),
        _ => Err(ReportError::SliceBy {
            given: given.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_by_must_name_a_meta_field() {
        assert_eq!(parse_slice_by("meta.language").unwrap(), "language");
        assert_eq!(parse_slice_by("meta.src.site").unwrap(), "src.site");
        for bad in ["language", "meta.", "meta..x", ""] {
            assert!(parse_slice_by(bad).is_err(), "{bad}");
        }
    }
}
