//! Slice metrics: per value of a `meta` field (language, source, ...), each
//! label's AUROC inside the slice and the three bias AUCs of Borkan et al. 2019
//! ("Nuanced Metrics for Measuring Unintended Bias with Real Data for Text
//! Classification"):
//!
//! - **subgroup AUC**: AUROC over the slice's rows only — can the model rank
//!   within the slice?
//! - **BPSN** (background positive, subgroup negative): AUROC over the slice's
//!   negatives and the other rows' positives — low when the slice's harmless
//!   items score higher than harmful items elsewhere (false positives on it).
//! - **BNSP** (background negative, subgroup positive): AUROC over the slice's
//!   positives and the other rows' negatives — low when the slice's harmful items
//!   score lower than harmless items elsewhere (misses on it).
//!
//! A metric whose rows lack positives or negatives is `None` ("undefined" in the
//! report), never NaN. Rows without the field form the slice `(missing)`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use vigil_eval::auroc;
use vigil_eval::scored::ScoredRows;

/// The slice of rows whose meta lacks the field.
pub const MISSING: &str = "(missing)";

/// One label's metrics on one slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceLabel {
    /// Known positives in the slice.
    pub positives: u64,
    /// Known negatives in the slice.
    pub negatives: u64,
    /// Subgroup AUC (AUROC inside the slice).
    pub subgroup_auc: Option<f64>,
    /// Background positive, subgroup negative AUC.
    pub bpsn_auc: Option<f64>,
    /// Background negative, subgroup positive AUC.
    pub bnsp_auc: Option<f64>,
}

/// One slice: a value of the field and its rows' metrics per label.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// The field's value as text.
    pub value: String,
    /// Rows in the slice.
    pub rows: usize,
    /// Per label, in label order.
    pub labels: Vec<SliceLabel>,
}

/// The text of `meta`'s value at a dotted `path` (`language`, `source.site`):
/// strings as they are, other JSON as JSON text; `None` when absent or null.
pub fn field_value(meta: Option<&Map<String, Value>>, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut v = meta?.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The slices of `rows` by `meta.<field>`, sorted by value (`(missing)` last).
pub fn slices(rows: &ScoredRows, field: &str) -> Vec<Slice> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut missing = Vec::new();
    for (i, r) in rows.rows.iter().enumerate() {
        match field_value(r.meta.as_ref(), field) {
            Some(v) => groups.entry(v).or_default().push(i),
            None => missing.push(i),
        }
    }
    let mut out: Vec<(String, Vec<usize>)> = groups.into_iter().collect();
    if !missing.is_empty() {
        out.push((MISSING.to_string(), missing));
    }
    out.into_iter()
        .map(|(value, members)| Slice {
            labels: (0..rows.labels.len())
                .map(|l| slice_label(rows, l, &members))
                .collect(),
            rows: members.len(),
            value,
        })
        .collect()
}

fn slice_label(rows: &ScoredRows, l: usize, members: &[usize]) -> SliceLabel {
    let mut inside = vec![false; rows.rows.len()];
    for &i in members {
        inside[i] = true;
    }
    let sub = rows.pairs_of(l, members.iter().copied());
    let background = rows.pairs_of(l, (0..rows.rows.len()).filter(|&i| !inside[i]));
    let pick = |a: &[(f32, bool)], a_pos: bool, b: &[(f32, bool)], b_pos: bool| {
        let v: Vec<(f32, bool)> = a
            .iter()
            .filter(|p| p.1 == a_pos)
            .chain(b.iter().filter(|p| p.1 == b_pos))
            .copied()
            .collect();
        auroc(&v)
    };
    let positives = sub.iter().filter(|p| p.1).count() as u64;
    SliceLabel {
        positives,
        negatives: sub.len() as u64 - positives,
        subgroup_auc: auroc(&sub),
        // Subgroup negatives with background positives.
        bpsn_auc: pick(&sub, false, &background, true),
        // Subgroup positives with background negatives.
        bnsp_auc: pick(&sub, true, &background, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_eval::scored::ScoredRow;

    fn row(lang: Option<&str>, score: f32, y: Option<bool>) -> ScoredRow {
        ScoredRow {
            id: format!("{lang:?}{score}"),
            line: 0,
            text: None,
            image: None,
            meta: lang.map(|l| {
                let mut m = Map::new();
                m.insert("language".into(), Value::from(l));
                m
            }),
            rationale: None,
            scores: vec![score],
            labels: vec![y],
        }
    }

    fn rows() -> ScoredRows {
        ScoredRows {
            labels: vec!["hate".into()],
            rows: vec![
                // en: pos 0.9, 0.4; neg 0.6, 0.2
                row(Some("en"), 0.9, Some(true)),
                row(Some("en"), 0.4, Some(true)),
                row(Some("en"), 0.6, Some(false)),
                row(Some("en"), 0.2, Some(false)),
                // fr: pos 0.7; neg 0.8, 0.1
                row(Some("fr"), 0.7, Some(true)),
                row(Some("fr"), 0.8, Some(false)),
                row(Some("fr"), 0.1, Some(false)),
                // de: negatives only (and an unknown)
                row(Some("de"), 0.5, Some(false)),
                row(Some("de"), 0.3, Some(false)),
                row(Some("de"), 0.99, None),
                // no language
                row(None, 0.65, Some(true)),
            ],
        }
    }

    #[test]
    fn subgroup_bpsn_and_bnsp_aucs_by_hand() {
        let s = slices(&rows(), "language");
        let values: Vec<&str> = s.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(values, ["de", "en", "fr", MISSING]);
        let en = &s[1];
        assert_eq!(en.rows, 4);
        let m = en.labels[0];
        assert_eq!((m.positives, m.negatives), (2, 2));
        // Subgroup: pos {0.9, 0.4} vs neg {0.6, 0.2}: 0.9 beats both, 0.4 beats 0.2 → 3/4.
        assert_eq!(m.subgroup_auc, Some(0.75));
        // BPSN: en negatives {0.6, 0.2} vs background positives {0.7, 0.65}:
        // every positive beats both negatives → 4/4.
        assert_eq!(m.bpsn_auc, Some(1.0));
        // BNSP: en positives {0.9, 0.4} vs background negatives {0.8, 0.1, 0.5, 0.3}:
        // 0.9 beats 4, 0.4 beats 0.1 and 0.3 → 6/8.
        assert_eq!(m.bnsp_auc, Some(0.75));
        let fr = s[2].labels[0];
        // Subgroup fr: pos 0.7 vs neg {0.8, 0.1} → 1/2.
        assert_eq!(fr.subgroup_auc, Some(0.5));
        // BPSN fr: fr negatives {0.8, 0.1} vs background positives {0.9, 0.4, 0.65}:
        // 0.9 beats both, 0.4 beats 0.1, 0.65 beats 0.1 → 4/6.
        assert!((fr.bpsn_auc.unwrap() - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn a_slice_without_positives_is_undefined_not_a_crash() {
        let s = slices(&rows(), "language");
        let de = s[0].labels[0];
        assert_eq!(s[0].rows, 3);
        assert_eq!((de.positives, de.negatives), (0, 2));
        assert_eq!(de.subgroup_auc, None);
        assert_eq!(de.bnsp_auc, None, "no subgroup positives");
        // BPSN is still defined: de negatives {0.5, 0.3} vs background positives
        // {0.9, 0.4, 0.7, 0.65}: 0.9, 0.7, 0.65 beat both (6), 0.4 beats 0.3 (1) → 7/8.
        assert_eq!(de.bpsn_auc, Some(7.0 / 8.0));
        let missing = s[3].labels[0];
        assert_eq!(missing.subgroup_auc, None, "one row, positives only");
    }

    #[test]
    fn field_values_of_nested_numbers_and_absent_fields() {
        let meta: Map<String, Value> =
            serde_json::from_str(r#"{"a": {"b": 3}, "s": "x", "n": null}"#).unwrap();
        assert_eq!(field_value(Some(&meta), "a.b").as_deref(), Some("3"));
        assert_eq!(field_value(Some(&meta), "s").as_deref(), Some("x"));
        assert_eq!(field_value(Some(&meta), "n"), None);
        assert_eq!(field_value(Some(&meta), "a.c"), None);
        assert_eq!(field_value(None, "s"), None);
        let s = slices(&rows(), "nothing");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, MISSING);
    }
}
