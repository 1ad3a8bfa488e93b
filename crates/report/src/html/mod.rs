//! The page: one self-contained HTML file (inline CSS, inline SVG, `data:` JPEG
//! thumbnails; no script, no network), sections in a fixed order with fixed ids
//! so tools (and the CI check) can find them:
//!
//! `#run` (facts, data summary, config), `#curves` (over steps), `#labels` (PR
//! and ROC per label, operating points), `#calibration` (reliability diagrams,
//! ECE), `#errors` (confusion, top false positives and negatives), `#bootstrap`
//! (95% intervals), `#slices` (per-slice and bias AUCs), `#decision`
//! (champion/challenger).
//!
//! # Escaping by construction
//! The markup is written with [`maud::html!`] templates, which escape every
//! spliced value (`&`, `<`, `>`, `"`; attribute values are always double-quoted,
//! so `'` needs no escape). Strings from data (row text, ids, label names, meta
//! values, file names, the config) are therefore escaped without anyone having to
//! remember to: there is no escape function to forget. The only unescaped
//! insertions are [`maud::PreEscaped`] of strings this crate makes itself (the
//! stylesheet, plotters' SVG, which escapes its own text), each marked where it
//! happens. The page also carries a Content-Security-Policy that forbids scripts,
//! a second line of defence.
//!
//! # Layout
//! One file per section, each a function returning [`maud::Markup`]:
//! `run.rs`, `curves.rs`, `labels.rs` (PR/ROC and operating points),
//! `calibration.rs`, `errors.rs` (confusion and the top misses with thumbnails),
//! `bootstrap.rs`, `slices.rs`, `decision.rs`; `cells.rs` holds the shared
//! number cells and the stylesheet, `options.rs` what the caller chooses.

mod bootstrap;
mod calibration;
mod cells;
mod curves;
mod decision;
mod errors;
mod issues;
mod labels;
mod options;
mod recall;
mod run;
mod slices;
#[cfg(test)]
mod tests;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::error::ReportError;
use super::input::ReportInput;
use vigil_eval::EvalReport;
use vigil_eval::label_errors;

pub use issues::render_issues;
pub use options::{ReportOptions, parse_slice_by};
pub use recall::render_recall;

/// The page's policy: no scripts, no network; inline styles and `data:` images only.
const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

/// Renders the whole page.
pub fn render(input: &ReportInput, opts: &ReportOptions) -> Result<String, ReportError> {
    let scores = input.rows.scores();
    let report = EvalReport::compute(&scores);
    let ids: Vec<String> = input.rows.rows.iter().map(|r| r.id.clone()).collect();
    let errors = label_errors(&ids, &scores, &input.thresholds, input.task, opts.top);
    // Charts can fail (plotters), so every section is built before the page.
    let sections = [
        run::section(input, &report),
        curves::section(input)?,
        labels::section(input, &report, &errors)?,
        calibration::section(input, &report)?,
        errors::section(input, &errors),
        bootstrap::section(input, opts),
        slices::section(input, opts),
        decision::section(input, opts),
    ];
    Ok(page(
        &input.title,
        html! { @for s in &sections { (s) "\n" } },
    ))
}

/// A whole page around `body`: the policy, the stylesheet, and `title` as both the
/// `<title>` and the `<h1>`. The evaluation report and the issues page share it.
fn page(title: &str, body: Markup) -> String {
    let page = html! {
        (DOCTYPE) "\n"
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CSP);
                title { (title) }
                // Trusted: a constant of this crate.
                style { (PreEscaped(cells::STYLE)) }
            }
            body {
                "\n" h1 { (title) } "\n"
                (body)
            }
        }
        "\n"
    };
    page.into_string()
}
