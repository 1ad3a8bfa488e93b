//! `#decision`: the champion/challenger gate's decision and, when the champion
//! was scored on the same rows, paired bootstrap differences.

use maud::{Markup, html};

use super::cells::{ci, v};
use super::options::ReportOptions;
use crate::bootstrap::select_rows;
use crate::input::ReportInput;
use vigil_eval::Decision;
use vigil_eval::scored::ScoredRows;
use vigil_eval::{EvalReport, Scores, auroc, average_precision};

/// The `#decision` section.
pub(super) fn section(input: &ReportInput, opts: &ReportOptions) -> Markup {
    let Some(d) = &input.decision else {
        return html! {
            section id="decision" {
                h2 { "Champion / challenger" }
                p class="note" {
                    "No gate decision (" code { "export-decision.json" } ") for this report."
                }
            }
        };
    };
    let champion = d.champion_version.map_or_else(
        || "champion (none published)".to_string(),
        |n| format!("champion (version {n})"),
    );
    let challenger = d.published_version.map_or_else(
        || "challenger (this run)".to_string(),
        |n| format!("challenger (published as version {n})"),
    );
    let outcome = serde_json::to_value(d.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let resamples = opts.bootstrap.resamples;
    html! {
        section id="decision" {
            h2 { "Champion / challenger" }
            table class="decision" {
                tr { th {} th { (champion) } th { (challenger) } }
                tr {
                    th { (d.metric.as_deref().unwrap_or("(no gate metric)")) }
                    td class="num" { (v(d.champion_score)) }
                    td class="num" { (v(d.challenger_score)) }
                }
            }
            table {
                tr { th { "outcome" } td { (outcome) } }
                tr { th { "published" } td { (d.published) } }
                tr { th { "improvement" } td { (v(d.improvement)) } }
                tr { th { "min_delta" } td { (v(d.min_delta)) } }
                tr { th { "mode" } td { (d.mode.map_or("—", |m| m.as_str())) } }
                tr { th { "reason" } td { (d.reason) } }
            }
            @match &input.champion {
                Some(champ) if resamples > 0 => {
                    (gate_interval(input, opts, d, champ))
                    (per_label(input, opts, champ))
                },
                _ => p class="note" {
                    "No champion scores on these rows (the gate had no champion to score), \
                     so no paired intervals."
                },
            }
        }
    }
}

/// The gate metric's challenger − champion difference with its paired interval.
fn gate_interval(
    input: &ReportInput,
    opts: &ReportOptions,
    d: &Decision,
    champ: &ScoredRows,
) -> Markup {
    let Some(metric) = &d.metric else {
        return html! {};
    };
    let (a, b) = (champ.scores(), input.rows.scores());
    let of = |s: &Scores| EvalReport::compute(s).metric(metric);
    let diff = opts.bootstrap.paired_rows(input.rows.rows.len(), |idx| {
        Some((of(&select_rows(&a, idx))?, of(&select_rows(&b, idx))?))
    });
    html! {
        p class="gate-ci" {
            (metric) " challenger − champion on these rows: " (ci(diff))
            " (paired bootstrap over whole rows, " (opts.bootstrap.resamples) " resamples)."
        }
    }
}

/// Per label, champion and challenger AUROC / AUPRC and their paired differences.
fn per_label(input: &ReportInput, opts: &ReportOptions, champ: &ScoredRows) -> Markup {
    let b = &opts.bootstrap;
    html! {
        h3 { "Per label, on the same validation rows" }
        p class="note" {
            "Difference = challenger − champion, paired bootstrap (" (b.resamples)
            " resamples of the same rows for both)."
        }
        table class="decision-labels" {
            tr {
                th { "label" } th { "champion AUROC" } th { "challenger AUROC" }
                th { "AUROC difference [95% CI]" } th { "champion AUPRC" }
                th { "challenger AUPRC" } th { "AUPRC difference [95% CI]" }
            }
            @for (l, name) in input.rows.labels.iter().enumerate() {
                @let a = champ.pairs_of(l, 0..champ.rows.len());
                @let c = input.rows.pairs_of(l, 0..input.rows.rows.len());
                tr {
                    td { (name) }
                    td class="num" { (v(auroc(&a))) }
                    td class="num" { (v(auroc(&c))) }
                    td class="num" { (ci(b.paired_difference(&a, &c, auroc))) }
                    td class="num" { (v(average_precision(&a))) }
                    td class="num" { (v(average_precision(&c))) }
                    td class="num" { (ci(b.paired_difference(&a, &c, average_precision))) }
                }
            }
        }
    }
}
