//! The page of `vigil datasets issues --html`: the flagged rows of an issues JSONL,
//! one table per kind (label errors, conflicting duplicates, outliers,
//! near-duplicates), each row with its thumbnail, text excerpt, the issue's numbers,
//! its reason, labels and rationale. Same stylesheet, policy and escaping as the
//! evaluation report.
//!
//! It renders the JSONL rows as JSON values rather than the curate crate's types:
//! the report depends on nothing above it, and the JSONL is the contract a reviewer
//! (or another tool) reads anyway. A field missing from a row shows as "—".

use maud::{Markup, html};
use serde_json::Value;

use crate::thumbs;

/// Characters of a row's text or rationale shown; longer ones end in "…".
const TEXT_CHARS: usize = 300;
/// Rows shown per kind (the JSONL has them all).
pub const ROWS_PER_KIND: usize = 500;

/// The kinds, in page order, with their headings.
const KINDS: [(&str, &str); 4] = [
    ("label_error", "Likely label errors"),
    ("conflicting_duplicate", "Conflicting duplicates"),
    ("outlier", "Outliers"),
    ("near_duplicate", "Near-duplicates"),
];

/// Renders the issues page from the issues JSONL's rows (in rank order);
/// `notes` are lines shown under the title (the summary, the method).
pub fn render_issues(title: &str, notes: &[String], rows: &[Value]) -> String {
    let body = html! {
        @for n in notes { p class="note" { (n) } }
        @for (kind, heading) in KINDS { (section(kind, heading, rows)) "\n" }
    };
    super::page(title, body)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn excerpt(s: &str) -> Markup {
    html! {
        (s.chars().take(TEXT_CHARS).collect::<String>())
        @if s.chars().count() > TEXT_CHARS { "…" }
    }
}

fn section(kind: &str, heading: &str, rows: &[Value]) -> Markup {
    let hits: Vec<(&Value, &Value)> = rows
        .iter()
        .flat_map(|r| {
            r.get("issues")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(move |i| str_of(i, "kind") == Some(kind))
                .map(move |i| (r, i))
        })
        .collect();
    html! {
        section id=(kind) {
            h2 { (heading) " (" (hits.len()) ")" }
            @if hits.is_empty() {
                p class="note" { "None." }
            } @else {
                @if hits.len() > ROWS_PER_KIND {
                    p class="note" { "The first " (ROWS_PER_KIND) " by rank; the JSONL has all." }
                }
                table class="issues" data-kind=(kind) {
                    tr {
                        th { "rank" } th { "id" } th { "image" } th { "text" } th { "details" }
                        th { "reason" } th { "labels" } th { "rationale" }
                    }
                    @for (row, issue) in hits.iter().take(ROWS_PER_KIND) { (line(row, issue)) }
                }
            }
        }
    }
}

fn details(issue: &Value) -> Markup {
    let num = |k: &str| {
        issue
            .get(k)
            .and_then(Value::as_f64)
            .map(|x| format!("{x:.3}"))
    };
    let plain = |k: &str| {
        issue.get(k).filter(|v| !v.is_null()).map(|v| match v {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(l) = plain("label") {
        parts.push(format!("label {l}"));
    }
    if let (Some(g), Some(s)) = (plain("given"), plain("suggested")) {
        parts.push(format!("given {g} → suggested {s}"));
    }
    for (k, name) in [
        ("self_confidence", "self-confidence"),
        ("normalized_margin", "normalised margin"),
        ("similarity", "similarity"),
        ("score", "outlier score"),
    ] {
        if let Some(x) = num(k) {
            parts.push(format!("{name} {x}"));
        }
    }
    if let Some(w) = plain("with") {
        parts.push(format!("with {w}"));
    }
    html! { @for p in &parts { (p) br; } }
}

fn line(row: &Value, issue: &Value) -> Markup {
    let id = row.get("id").map_or_else(String::new, |v| match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    });
    let labels: Vec<String> = row
        .get("labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                if v.is_null() {
                    "?".to_string()
                } else {
                    v.to_string()
                }
            )
        })
        .collect();
    html! {
        tr {
            td class="num" { (row.get("rank").and_then(Value::as_u64).unwrap_or(0)) }
            td { (id) }
            td {
                @match str_of(row, "image") {
                    Some(path) => @match thumbs::thumbnail_uri(std::path::Path::new(path)) {
                        // The data URI is escaped like any value (base64 has nothing to escape).
                        Ok(uri) => { img class="thumb" alt={ "image of " (id) } src=(uri); },
                        Err(why) => span class="note" { "no thumbnail: " (why) },
                    },
                    None => span class="note" { "—" },
                }
            }
            td class="row-text" {
                @match str_of(row, "text") { Some(t) => (excerpt(t)), None => span class="note" { "—" } }
            }
            td { (details(issue)) }
            td class="row-text" { (str_of(issue, "reason").unwrap_or("—")) }
            td { (labels.join(", ")) }
            td class="row-text rationale" {
                @match str_of(row, "rationale") { Some(r) => (excerpt(r)), None => "—" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_section_and_data_is_escaped() {
        let rows: Vec<Value> = vec![
            serde_json::json!({"id": "a<b", "rank": 1, "text": "<script>x</script>",
                "labels": {"spam": 1, "hate": null}, "rationale": "because",
                "issues": [{"kind": "label_error", "label": "spam", "given": 1, "suggested": 0,
                    "self_confidence": 0.04, "reason": "Labelled 'spam' = 1 & more"}]}),
            serde_json::json!({"id": 7, "rank": 2, "labels": {},
                "issues": [{"kind": "outlier", "score": 0.01, "reason": "far"}]}),
        ];
        let page = render_issues("Issues", &["2 rows".into()], &rows);
        for (k, _) in KINDS {
            assert!(page.contains(&format!("id=\"{k}\"")), "{k}");
        }
        assert!(page.contains("a&lt;b") && !page.contains("<script>x"));
        assert!(
            page.contains("given 1 → suggested 0")
                && page.contains("spam=1")
                && page.contains("hate=?")
        );
        assert!(page.contains("Outliers (1)") && page.contains("because"));
    }
}
