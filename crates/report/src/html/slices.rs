//! `#slices`: per-slice AUROC and the bias AUCs (BPSN, BNSP) per label, when the
//! report is sliced by a `meta` field.

use maud::{Markup, html};

use super::cells::v;
use super::options::ReportOptions;
use crate::input::ReportInput;
use crate::slices::{self, Slice};

/// The `#slices` section.
pub(super) fn section(input: &ReportInput, opts: &ReportOptions) -> Markup {
    let Some(field) = &opts.slice_by else {
        return html! {
            section id="slices" {
                h2 { "Slices" }
                p class="note" {
                    "No slicing asked for: pass " code { "--slice-by meta.FIELD" }
                    " (e.g. " code { "meta.language" } ") to see per-slice AUROC and the bias AUCs."
                }
            }
        };
    };
    let all = slices::slices(&input.rows, field);
    html! {
        section id="slices" {
            h2 { "Slices" }
            p class="note" {
                "Sliced by " code { "meta." (field) } ". Subgroup AUC: AUROC inside the slice. \
                 BPSN: the slice's negatives against the other rows' positives (low: false \
                 positives on the slice). BNSP: the slice's positives against the other rows' \
                 negatives (low: misses on the slice). Borkan et al. 2019. Rows without the \
                 field are " code { (slices::MISSING) } "."
            }
            @if all.len() == 1 && all[0].value == slices::MISSING {
                p class="note" { "No row has " code { "meta." (field) } "." }
            }
            @for (l, name) in input.rows.labels.iter().enumerate() {
                h3 { (name) }
                table class="slices" data-label=(name) {
                    tr {
                        th { "meta." (field) } th { "rows" } th { "positives" }
                        th { "negatives" } th { "subgroup AUC" } th { "BPSN AUC" } th { "BNSP AUC" }
                    }
                    @for s in &all { (slice_row(s, l)) }
                }
            }
        }
    }
}

/// One slice's row for label `l`.
fn slice_row(s: &Slice, l: usize) -> Markup {
    let m = s.labels[l];
    html! {
        tr {
            td { (s.value) }
            td class="num" { (s.rows) }
            td class="num" { (m.positives) }
            td class="num" { (m.negatives) }
            td class="num" { (v(m.subgroup_auc)) }
            td class="num" { (v(m.bpsn_auc)) }
            td class="num" { (v(m.bnsp_auc)) }
        }
    }
}
