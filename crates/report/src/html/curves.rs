//! `#curves`: train and validation loss, macro AUROC and AUPRC over steps.

use maud::{Markup, PreEscaped, html};

use crate::charts::{self, Series};
use crate::error::ReportError;
use crate::input::{EvalPoint, ReportInput};

/// The `#curves` section.
pub(super) fn section(input: &ReportInput) -> Result<Markup, ReportError> {
    if let Some(why) = &input.no_history {
        return Ok(html! {
            section id="curves" {
                h2 { "Curves over steps" }
                p class="note" { "No curves: " (why) "." }
            }
        });
    }
    let pick = |f: fn(&EvalPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        input
            .history
            .iter()
            .filter_map(|p| Some((p.step as f64, f(p)?)))
            .collect()
    };
    let train: Vec<(f64, f64)> = input
        .train_loss
        .iter()
        .map(|&(s, l)| (s as f64, l))
        .collect();
    let mut loss = Vec::new();
    if !train.is_empty() {
        loss.push(Series {
            name: "train loss",
            points: train,
        });
    }
    let val_loss = pick(|p| p.loss);
    if !val_loss.is_empty() {
        loss.push(Series {
            name: "val loss",
            points: val_loss,
        });
    }
    let loss_svg = if loss.is_empty() {
        None
    } else {
        Some(charts::over_steps("Loss", "loss", &loss)?)
    };
    let mut quality = Vec::new();
    for (name, f) in [
        (
            "macro AUROC",
            (|p: &EvalPoint| p.macro_auroc) as fn(&_) -> _,
        ),
        ("macro AUPRC", |p| p.macro_auprc),
    ] {
        let pts = pick(f);
        if !pts.is_empty() {
            quality.push(Series { name, points: pts });
        }
    }
    let quality_svg = if quality.is_empty() {
        None
    } else {
        Some(charts::over_steps(
            "Validation AUROC / AUPRC",
            "value",
            &quality,
        )?)
    };
    // The SVGs are trusted: plotters' output, which escapes its own text.
    Ok(html! {
        section id="curves" {
            h2 { "Curves over steps" }
            div class="charts" {
                @if let Some(svg) = &loss_svg {
                    figure class="chart steps-loss" {
                        (PreEscaped(svg))
                        figcaption {
                            "train loss (TensorBoard events) and validation loss (eval reports)"
                        }
                    }
                }
                @if let Some(svg) = &quality_svg {
                    figure class="chart steps-quality" {
                        (PreEscaped(svg))
                        figcaption { "macro AUROC and AUPRC at each evaluation" }
                    }
                }
            }
            @if input.train_loss.is_empty() {
                p class="note" {
                    "No train loss: the run has no TensorBoard events with "
                    code { "train/loss" } "."
                }
            }
        }
    })
}
