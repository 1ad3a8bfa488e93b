//! `#run`: facts about the run or export, the data summary per label, skipped
//! rows and the resolved config.

use maud::{Markup, html};

use crate::input::ReportInput;
use vigil_eval::EvalReport;

/// The `#run` section.
pub(super) fn section(input: &ReportInput, report: &EvalReport) -> Markup {
    html! {
        section id="run" {
            h2 { "The run" }
            table {
                @for (k, val) in &input.facts {
                    tr { th { (k) } td { (val) } }
                }
            }
            h3 { "Data" }
            p { (report.rows) " validation rows scored." }
            table {
                tr { th { "label" } th { "positives" } th { "negatives" } th { "unknown" } }
                @for m in &report.labels {
                    tr {
                        td { (m.label) }
                        td class="num" { (m.positives) }
                        td class="num" { (m.negatives) }
                        td class="num" { (m.unknown) }
                    }
                }
            }
            @match &input.skipped {
                Some(s) if s.is_empty() => p { "Skipped rows: none." },
                Some(s) => table class="skipped" {
                    tr { th { "split" } th { "reason" } th { "skipped rows" } }
                    @for ((split, kind), n) in s {
                        tr { td { (split) } td { (kind) } td class="num" { (n) } }
                    }
                },
                None => p class="note" {
                    "Skipped rows: not recorded for this evaluation (a bad row stops "
                    code { "vigil eval" } ")."
                },
            }
            @if let Some((name, text)) = &input.config {
                details {
                    summary { "Config (" (name) ")" }
                    pre { (text) }
                }
            }
        }
    }
}
