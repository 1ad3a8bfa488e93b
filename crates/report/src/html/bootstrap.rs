//! `#bootstrap`: 95% percentile intervals of AUROC and AUPRC per label.

use maud::{Markup, html};

use super::cells::ci;
use super::options::ReportOptions;
use crate::input::ReportInput;
use vigil_eval::{auroc, average_precision};

/// The `#bootstrap` section.
pub(super) fn section(input: &ReportInput, opts: &ReportOptions) -> Markup {
    let b = &opts.bootstrap;
    html! {
        section id="bootstrap" {
            h2 { "Bootstrap 95% confidence intervals" }
            @if b.resamples == 0 {
                p class="note" { "Left out (--bootstrap 0)." }
            } @else {
                p class="note" {
                    (b.resamples) " resamples of the validation rows with replacement (seed "
                    (b.seed) "); percentile intervals. Resamples without positives are dropped."
                }
                table {
                    tr { th { "label" } th { "AUROC [95% CI]" } th { "AUPRC [95% CI]" } }
                    @for (l, name) in input.rows.labels.iter().enumerate() {
                        @let pairs = input.rows.pairs_of(l, 0..input.rows.rows.len());
                        tr {
                            td { (name) }
                            td class="num" { (ci(b.interval(&pairs, auroc))) }
                            td class="num" { (ci(b.interval(&pairs, average_precision))) }
                        }
                    }
                }
            }
        }
    }
}
