//! Pieces several sections share: number cells (a value, "undefined", or an
//! interval), the decision rule of a label, and the stylesheet.

use maud::{Markup, html};

use crate::bootstrap::Interval;
use vigil_eval::LabelErrors;
use vigil_eval::{Counts, Value};

/// The page's stylesheet (inserted unescaped: a constant of this crate).
pub(super) const STYLE: &str = "body{font-family:'DejaVu Sans',sans-serif;margin:24px;color:#222;max-width:1280px}\
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}\
h3{font-size:15px;margin:16px 0 6px}table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}\
td.num{text-align:right;font-variant-numeric:tabular-nums}.undef{color:#a33;font-style:italic}\
.ci{color:#666}figure{display:inline-block;margin:4px 8px 4px 0}figcaption{font-size:12px;color:#555}\
.charts{display:flex;flex-wrap:wrap}.note{color:#666;font-size:13px}pre{background:#f7f7f7;padding:8px;\
max-height:360px;overflow:auto;font-size:12px}.row-text{max-width:520px;white-space:pre-wrap;word-break:break-word}\
img.thumb{width:96px;height:auto;border:1px solid #ccc}h3.fp{color:#b45309}h3.fn{color:#1d4ed8}";

/// A metric to three decimals, or a marked "undefined" (never `NaN`).
pub(super) fn v(x: Option<f64>) -> Markup {
    match x {
        Some(x) => html! { (format!("{x:.3}")) },
        None => undefined(),
    }
}

/// [`v`] of a report [`Value`].
pub(super) fn val(x: Value) -> Markup {
    v(x.0)
}

/// An estimate with its interval, or "undefined".
pub(super) fn ci(i: Option<Interval>) -> Markup {
    match i {
        Some(i) => html! {
            (format!("{:.3}", i.estimate)) " "
            span class="ci" { (format!("[{:.3}, {:.3}]", i.lo, i.hi)) }
        },
        None => undefined(),
    }
}

fn undefined() -> Markup {
    html! { span class="undef" { "undefined" } }
}

/// The confusion counts of a label's errors, as metrics counts.
pub(super) fn counts_of(e: &LabelErrors) -> Counts {
    Counts {
        tp: e.counts.tp,
        fp: e.counts.fp,
        tn: e.counts.tn,
        fn_: e.counts.fn_,
    }
}

/// The shipped decision of a label: a threshold, or argmax for multi-class.
pub(super) fn rule(e: &LabelErrors) -> String {
    e.threshold
        .map_or_else(|| "argmax".to_string(), |t| format!("score ≥ {t:.3}"))
}
