//! The page of `vigil recall --html`: the hits of a recall, most similar first, each
//! with its thumbnail, text excerpt, similarity, the seed it is nearest to, the
//! model's score, the combined rank and its known labels. Same stylesheet, policy
//! and escaping as the evaluation report.
//!
//! Like the issues page it renders the hits JSONL's rows as JSON values (the report
//! depends on nothing above it); image paths arrive already resolved by the caller.

use maud::{Markup, html};
use serde_json::Value;

use crate::thumbs;

/// Characters of a hit's text shown; longer ones end in "…".
const TEXT_CHARS: usize = 300;
/// Hits shown (the JSONL has them all).
pub const MAX_HITS: usize = 1000;

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn num(v: &Value, key: &str, digits: usize) -> String {
    v.get(key)
        .and_then(Value::as_f64)
        .map_or_else(|| "—".to_string(), |x| format!("{x:.digits$}"))
}

/// Renders the recall page; `notes` are lines under the title, `score_label` names
/// the score column.
pub fn render_recall(
    title: &str,
    notes: &[String],
    score_label: Option<&str>,
    hits: &[Value],
) -> String {
    let body = html! {
        @for n in notes { p class="note" { (n) } }
        section id="hits" {
            h2 { "Hits (" (hits.len()) ")" }
            @if hits.len() > MAX_HITS {
                p class="note" { "The first " (MAX_HITS) " by similarity; the JSONL has all." }
            }
            table class="issues" data-kind="recall" {
                tr {
                    th { "rank" } th { "id" } th { "image" } th { "text" } th { "similarity" }
                    th { "nearest seed" } th { "score" @if let Some(l) = score_label { " (" (l) ")" } }
                    th { "combined rank" } th { "known labels" }
                }
                @for h in hits.iter().take(MAX_HITS) { (line(h)) }
            }
        }
    };
    super::page(title, body)
}

fn line(h: &Value) -> Markup {
    let id = str_of(h, "id").unwrap_or("");
    let labels: Vec<&str> = h
        .get("labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    html! {
        tr {
            td class="num" { (h.get("rank").and_then(Value::as_u64).unwrap_or(0)) }
            td { (id) }
            td {
                @match str_of(h, "image") {
                    Some(path) => @match thumbs::thumbnail_uri(std::path::Path::new(path)) {
                        Ok(uri) => { img class="thumb" alt={ "image of " (id) } src=(uri); },
                        Err(why) => span class="note" { "no thumbnail: " (why) },
                    },
                    None => span class="note" { "—" },
                }
            }
            td class="row-text" {
                @match str_of(h, "text") {
                    Some(t) => {
                        (t.chars().take(TEXT_CHARS).collect::<String>())
                        @if t.chars().count() > TEXT_CHARS { "…" }
                    },
                    None => span class="note" { "—" },
                }
            }
            td class="num" { (num(h, "similarity", 4)) }
            td { (str_of(h, "seed").unwrap_or("—")) }
            td class="num" { (num(h, "score", 3)) }
            td class="num" { (h.get("combined_rank").and_then(Value::as_u64).unwrap_or(0)) }
            td { (labels.join(", ")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_listed_in_order_and_escaped() {
        let hits = vec![
            serde_json::json!({"id": "a<b", "rank": 1, "similarity": 0.91234, "seed": "s1",
                "score": 0.7, "combined_rank": 2, "labels": ["spam"], "text": "<script>x</script>"}),
            serde_json::json!({"id": "c", "rank": 2, "similarity": 0.5, "seed": "s2",
                "combined_rank": 1}),
        ];
        let page = render_recall("Recall", &["2 seeds".into()], Some("spam"), &hits);
        assert!(page.contains("a&lt;b") && !page.contains("<script>x"));
        assert!(page.contains("0.9123") && page.contains("score (spam)"));
        assert!(page.find("a&lt;b").unwrap() < page.find(">c<").unwrap());
        assert!(page.contains("Hits (2)"));
    }
}
