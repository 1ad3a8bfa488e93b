//! `#errors`: confusion at the shipped thresholds and, per label, the top false
//! positives and negatives with their id, score, thumbnail, text, other labels and
//! the row's rationale (why it has its labels: often the first thing a reviewer of a
//! miss wants to read).

use maud::{Markup, html};

use super::cells::rule;
use crate::input::ReportInput;
use crate::thumbs;
use vigil_eval::LabelErrors;

/// Characters of a row's text shown; longer texts end in "…".
const TEXT_CHARS: usize = 400;

/// The `#errors` section.
pub(super) fn section(input: &ReportInput, errors: &[LabelErrors]) -> Markup {
    html! {
        section id="errors" {
            h2 { "Errors at the shipped thresholds" }
            p class="note" {
                "False positives: highest scores first (the most confident wrong flags). \
                 False negatives: lowest scores first (the most confidently missed). \
                 Rows whose label is unknown are in neither."
            }
            table class="confusion" {
                tr {
                    th { "label" } th { "decision" }
                    th { "TP" } th { "FP" } th { "TN" } th { "FN" }
                }
                @for e in errors {
                    tr {
                        td { (e.label) }
                        td { (rule(e)) }
                        td class="num" { (e.counts.tp) }
                        td class="num" { (e.counts.fp) }
                        td class="num" { (e.counts.tn) }
                        td class="num" { (e.counts.fn_) }
                    }
                }
            }
            @for (l, e) in errors.iter().enumerate() {
                @for (class, what, list) in [
                    ("fp", "false positives", &e.false_positives),
                    ("fn", "false negatives", &e.false_negatives),
                ] {
                    h3 class=(class) { (e.label) ": top " (list.len()) " " (what) }
                    @if list.is_empty() {
                        p class="note" { "None." }
                    } @else {
                        table class="misses" data-kind=(class) data-label=(e.label) {
                            tr {
                                th { "id" } th { "score" } th { "image" } th { "text" }
                                th { "other positive labels" } th { "rationale" }
                            }
                            @for m in list {
                                (miss_row(input, &m.id, m.score, l))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One missed row of label `l`; nothing if the id is not among the rows.
fn miss_row(input: &ReportInput, id: &str, score: f32, l: usize) -> Markup {
    let Some(row) = input.rows.rows.iter().find(|r| r.id == id) else {
        return html! {};
    };
    let others: Vec<&str> = input
        .rows
        .labels
        .iter()
        .zip(&row.labels)
        .enumerate()
        .filter(|(i, _)| *i != l)
        .filter(|(_, (_, y))| **y == Some(true))
        .map(|(_, (name, _))| name.as_str())
        .collect();
    html! {
        tr class="miss" {
            td { (id) }
            td class="num" { (format!("{score:.3}")) }
            td {
                @match &row.image {
                    Some(path) => @match thumbs::thumbnail_uri(path) {
                        // The data URI is escaped like any value (base64 has nothing to escape).
                        Ok(uri) => { img class="thumb" alt={ "image of " (id) } src=(uri); },
                        Err(why) => span class="note" { "no thumbnail: " (why) },
                    },
                    None => span class="note" { "no image" },
                }
            }
            td class="row-text" {
                @match &row.text {
                    Some(t) => {
                        (t.chars().take(TEXT_CHARS).collect::<String>())
                        @if t.chars().count() > TEXT_CHARS { "…" }
                    },
                    None => span class="note" { "no text" },
                }
            }
            td {
                @if others.is_empty() { "—" } @else { (others.join(", ")) }
            }
            td class="row-text rationale" {
                @match &row.rationale {
                    Some(r) => {
                        (r.chars().take(TEXT_CHARS).collect::<String>())
                        @if r.chars().count() > TEXT_CHARS { "…" }
                    },
                    None => "—",
                }
            }
        }
    }
}
