//! `#labels`: per label the operating point at the shipped threshold, ranking
//! metrics, and a PR and a ROC curve with the shipped decision marked.

use maud::{Markup, PreEscaped, html};

use super::cells::{counts_of, rule, v, val};
use crate::charts::{self, Marker};
use crate::error::ReportError;
use crate::input::ReportInput;
use vigil_eval::LabelErrors;
use vigil_eval::{self as metrics, EvalReport};

/// The `#labels` section.
pub(super) fn section(
    input: &ReportInput,
    report: &EvalReport,
    errors: &[LabelErrors],
) -> Result<Markup, ReportError> {
    let curves = errors
        .iter()
        .enumerate()
        .map(|(l, e)| label_curves(input, l, e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(html! {
        section id="labels" {
            h2 { "Per label" }
            @if let Some(step) = input.step {
                p class="note" {
                    "At the evaluation of step " (step) "; the shipped threshold is the one an \
                     export of this evaluation writes to " code { "thresholds.json" } "."
                }
            }
            table {
                tr {
                    th { "label" } th { "decision" } th { "precision" } th { "recall" } th { "F1" }
                    th { "precision at recall 0.8" } th { "precision at recall 0.9" }
                    th { "AUROC" } th { "AUPRC" }
                }
                @for (m, e) in report.labels.iter().zip(errors) {
                    @let c = counts_of(e);
                    tr {
                        td { (m.label) }
                        td { (rule(e)) }
                        td class="num" { (v(c.precision())) }
                        td class="num" { (v(c.recall())) }
                        td class="num" { (v(c.f1())) }
                        td class="num" { (val(m.precision_at_recall_80)) }
                        td class="num" { (val(m.precision_at_recall_90)) }
                        td class="num" { (val(m.auroc)) }
                        td class="num" { (val(m.auprc)) }
                    }
                }
            }
            @for c in &curves { (c) }
        }
    })
}

/// One label's block: its PR and ROC curves.
fn label_curves(input: &ReportInput, l: usize, e: &LabelErrors) -> Result<Markup, ReportError> {
    let pairs = input.rows.pairs_of(l, 0..input.rows.rows.len());
    let sweep = metrics::sweep(&pairs);
    let c = counts_of(e);
    let shipped = e.threshold.map_or(f64::NAN, f64::from);
    let pr_marker = c.recall().map(|r| Marker {
        at: (r, c.precision().unwrap_or(0.0)),
        threshold: shipped,
    });
    let negatives = (c.fp + c.tn) as f64;
    let roc_marker = c.recall().filter(|_| negatives > 0.0).map(|r| Marker {
        at: (c.fp as f64 / negatives, r),
        threshold: shipped,
    });
    let known_positives = pairs.iter().any(|p| p.1);
    let mut pr: Vec<(f64, f64)> = Vec::new();
    let mut roc: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    if known_positives {
        pr.push((0.0, 1.0));
        for p in &sweep {
            pr.push((
                p.counts.recall().unwrap_or(0.0),
                p.counts.precision().unwrap_or(0.0),
            ));
            if negatives > 0.0 {
                let n = (p.counts.fp + p.counts.tn) as f64;
                roc.push((p.counts.fp as f64 / n, p.counts.recall().unwrap_or(0.0)));
            }
        }
    }
    let label = &e.label;
    let pr_svg = charts::pr_curve(label, &pr, pr_marker)?;
    let roc_svg = charts::roc_curve(label, &roc, roc_marker)?;
    // The SVGs are trusted: plotters' output, which escapes its own text.
    Ok(html! {
        div class="label" data-label=(label) {
            h3 { (label) }
            div class="charts" {
                figure class="chart pr-curve" data-label=(label) {
                    (PreEscaped(pr_svg))
                    figcaption { "PR curve of " (label) "; the dot is the shipped decision" }
                }
                figure class="chart roc-curve" data-label=(label) {
                    (PreEscaped(roc_svg))
                    figcaption { "ROC curve of " (label) }
                }
            }
            @if !known_positives {
                p class="note" {
                    "No known positives: the curves and ranking metrics are undefined."
                }
            }
        }
    })
}
