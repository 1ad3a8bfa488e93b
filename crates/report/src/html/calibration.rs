//! `#calibration`: ECE per label and a reliability diagram per label.

use maud::{Markup, PreEscaped, html};

use super::cells::val;
use crate::calibration;
use crate::charts;
use crate::error::ReportError;
use crate::input::ReportInput;
use vigil_eval::EvalReport;

/// Bins of the reliability diagrams (equal width over the predicted probability).
const BINS: usize = 10;

/// The `#calibration` section.
pub(super) fn section(input: &ReportInput, report: &EvalReport) -> Result<Markup, ReportError> {
    let diagrams = input
        .rows
        .labels
        .iter()
        .enumerate()
        .map(|(l, name)| {
            let pairs = input.rows.pairs_of(l, 0..input.rows.rows.len());
            let bins = calibration::reliability(&pairs, BINS);
            Ok((
                name,
                charts::reliability(name, &bins, calibration::ece(&bins))?,
            ))
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    Ok(html! {
        section id="calibration" {
            h2 { "Calibration" }
            p class="note" {
                "Fraction of positives per 10 equal-width bins of the predicted probability; \
                 the diagonal is perfect calibration, darker bars hold more rows, dots are \
                 (mean score, fraction positive). ECE is the row-weighted mean gap."
            }
            table {
                tr { th { "label" } th { "ECE" } }
                @for m in &report.labels {
                    tr { td { (m.label) } td class="num" { (val(m.ece)) } }
                }
            }
            div class="charts" {
                @for (name, svg) in &diagrams {
                    figure class="chart reliability" data-label=(name) {
                        // Trusted: plotters' SVG, which escapes its own text.
                        (PreEscaped(svg))
                        figcaption { "reliability diagram of " (name) }
                    }
                }
            }
        }
    })
}
