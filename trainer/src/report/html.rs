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
//! Every string that comes from data (row text, ids, meta values, file names,
//! the config) goes through [`escape`]; the page also carries a
//! Content-Security-Policy that forbids scripts, so a row whose text is
//! `<script>…</script>` is shown as text and could not run even if an escape
//! were missed.

use std::fmt::Write as _;

use super::bootstrap::{Bootstrap, Interval, select_rows};
use super::calibration;
use super::charts::{self, Marker, Series};
use super::error::ReportError;
use super::input::ReportInput;
use super::slices::{self, Slice};
use super::thumbs;
use crate::metrics::{self, Counts, EvalReport, Value, auroc, average_precision};
use crate::serve::{LabelErrors, label_errors};

/// How a report is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Slice by this `meta` field (without the `meta.` prefix), if any.
    pub slice_by: Option<String>,
    /// False positives and negatives shown per label.
    pub top: usize,
    /// Bootstrap settings; `resamples: 0` leaves the intervals out.
    pub bootstrap: Bootstrap,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            slice_by: None,
            top: 8,
            bootstrap: Bootstrap::default(),
        }
    }
}

/// The field of `--slice-by meta.FIELD` (`FIELD`, dots allowed for nested objects).
pub fn parse_slice_by(given: &str) -> Result<String, ReportError> {
    match given.strip_prefix("meta.") {
        Some(f) if !f.is_empty() && f.split('.').all(|p| !p.is_empty()) => Ok(f.to_string()),
        _ => Err(ReportError::SliceBy {
            given: given.to_string(),
        }),
    }
}

/// HTML-escapes `s` for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn v(x: Option<f64>) -> String {
    x.map_or_else(
        || "<span class=\"undef\">undefined</span>".into(),
        |x| format!("{x:.3}"),
    )
}

fn val(x: Value) -> String {
    v(x.0)
}

fn ci(i: Option<Interval>) -> String {
    i.map_or_else(
        || "<span class=\"undef\">undefined</span>".into(),
        |i| {
            format!(
                "{:.3} <span class=\"ci\">[{:.3}, {:.3}]</span>",
                i.estimate, i.lo, i.hi
            )
        },
    )
}

const STYLE: &str = "body{font-family:'DejaVu Sans',sans-serif;margin:24px;color:#222;max-width:1280px}\
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}\
h3{font-size:15px;margin:16px 0 6px}table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}\
td.num{text-align:right;font-variant-numeric:tabular-nums}.undef{color:#a33;font-style:italic}\
.ci{color:#666}figure{display:inline-block;margin:4px 8px 4px 0}figcaption{font-size:12px;color:#555}\
.charts{display:flex;flex-wrap:wrap}.note{color:#666;font-size:13px}pre{background:#f7f7f7;padding:8px;\
max-height:360px;overflow:auto;font-size:12px}.row-text{max-width:520px;white-space:pre-wrap;word-break:break-word}\
img.thumb{width:96px;height:auto;border:1px solid #ccc}h3.fp{color:#b45309}h3.fn{color:#1d4ed8}";

/// Renders the whole page.
pub fn render(input: &ReportInput, opts: &ReportOptions) -> Result<String, ReportError> {
    let scores = input.rows.scores();
    let report = EvalReport::compute(&scores);
    let ids: Vec<String> = input.rows.rows.iter().map(|r| r.id.clone()).collect();
    let errors = label_errors(&ids, &scores, &input.thresholds, input.task, opts.top);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&input.title),
        escape(&input.title)
    );
    run_section(&mut h, input, &report);
    curves_section(&mut h, input)?;
    labels_section(&mut h, input, &report, &errors)?;
    calibration_section(&mut h, input, &report)?;
    errors_section(&mut h, input, &errors);
    bootstrap_section(&mut h, input, opts);
    slices_section(&mut h, input, opts);
    decision_section(&mut h, input, opts);
    h.push_str("</body></html>\n");
    Ok(h)
}

fn run_section(h: &mut String, input: &ReportInput, report: &EvalReport) {
    h.push_str("<section id=\"run\"><h2>The run</h2><table>");
    for (k, val) in &input.facts {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(val));
    }
    h.push_str("</table><h3>Data</h3>");
    let _ = write!(
        h,
        "<p>{} validation rows scored.</p><table><tr><th>label</th><th>positives</th><th>negatives</th><th>unknown</th></tr>",
        report.rows
    );
    for m in &report.labels {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&m.label),
            m.positives,
            m.negatives,
            m.unknown
        );
    }
    h.push_str("</table>");
    match &input.skipped {
        Some(s) if s.is_empty() => h.push_str("<p>Skipped rows: none.</p>"),
        Some(s) => {
            h.push_str("<table class=\"skipped\"><tr><th>split</th><th>reason</th><th>skipped rows</th></tr>");
            for ((split, kind), n) in s {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td></tr>",
                    escape(split),
                    escape(kind)
                );
            }
            h.push_str("</table>");
        }
        None => h.push_str(
            "<p class=\"note\">Skipped rows: not recorded for this evaluation (a bad row stops <code>vigil eval</code>).</p>",
        ),
    }
    if let Some((name, text)) = &input.config {
        let _ = write!(
            h,
            "<details><summary>Config ({})</summary><pre>{}</pre></details>",
            escape(name),
            escape(text)
        );
    }
    h.push_str("</section>\n");
}

fn curves_section(h: &mut String, input: &ReportInput) -> Result<(), ReportError> {
    h.push_str("<section id=\"curves\"><h2>Curves over steps</h2>");
    if let Some(why) = &input.no_history {
        let _ = write!(h, "<p class=\"note\">No curves: {}.</p>", escape(why));
        h.push_str("</section>\n");
        return Ok(());
    }
    let pick = |f: fn(&super::input::EvalPoint) -> Option<f64>| -> Vec<(f64, f64)> {
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
    h.push_str("<div class=\"charts\">");
    if !loss.is_empty() {
        let _ = write!(
            h,
            "<figure class=\"chart steps-loss\">{}<figcaption>train loss (TensorBoard events) and validation loss (eval reports)</figcaption></figure>",
            charts::over_steps("Loss", "loss", &loss)?
        );
    }
    let mut quality = Vec::new();
    for (name, f) in [
        (
            "macro AUROC",
            (|p: &super::input::EvalPoint| p.macro_auroc) as fn(&_) -> _,
        ),
        ("macro AUPRC", |p| p.macro_auprc),
    ] {
        let pts = pick(f);
        if !pts.is_empty() {
            quality.push(Series { name, points: pts });
        }
    }
    if !quality.is_empty() {
        let _ = write!(
            h,
            "<figure class=\"chart steps-quality\">{}<figcaption>macro AUROC and AUPRC at each evaluation</figcaption></figure>",
            charts::over_steps("Validation AUROC / AUPRC", "value", &quality)?
        );
    }
    h.push_str("</div>");
    if input.train_loss.is_empty() {
        h.push_str("<p class=\"note\">No train loss: the run has no TensorBoard events with <code>train/loss</code>.</p>");
    }
    h.push_str("</section>\n");
    Ok(())
}

fn counts_of(e: &LabelErrors) -> Counts {
    Counts {
        tp: e.counts.tp,
        fp: e.counts.fp,
        tn: e.counts.tn,
        fn_: e.counts.fn_,
    }
}

fn rule(e: &LabelErrors) -> String {
    e.threshold
        .map_or_else(|| "argmax".to_string(), |t| format!("score ≥ {t:.3}"))
}

fn labels_section(
    h: &mut String,
    input: &ReportInput,
    report: &EvalReport,
    errors: &[LabelErrors],
) -> Result<(), ReportError> {
    h.push_str("<section id=\"labels\"><h2>Per label</h2>");
    if let Some(step) = input.step {
        let _ = write!(
            h,
            "<p class=\"note\">At the evaluation of step {step}; the shipped threshold is the one an export of this evaluation writes to <code>thresholds.json</code>.</p>"
        );
    }
    h.push_str("<table><tr><th>label</th><th>decision</th><th>precision</th><th>recall</th><th>F1</th>\
        <th>precision at recall 0.8</th><th>precision at recall 0.9</th><th>AUROC</th><th>AUPRC</th></tr>");
    for (m, e) in report.labels.iter().zip(errors) {
        let c = counts_of(e);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&m.label),
            escape(&rule(e)),
            v(c.precision()),
            v(c.recall()),
            v(c.f1()),
            val(m.precision_at_recall_80),
            val(m.precision_at_recall_90),
            val(m.auroc),
            val(m.auprc)
        );
    }
    h.push_str("</table>");
    for (l, e) in errors.iter().enumerate() {
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
        let mut pr: Vec<(f64, f64)> = Vec::new();
        let mut roc: Vec<(f64, f64)> = vec![(0.0, 0.0)];
        if pairs.iter().any(|p| p.1) {
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
        let _ = write!(
            h,
            "<div class=\"label\" data-label=\"{0}\"><h3>{0}</h3><div class=\"charts\">\
             <figure class=\"chart pr-curve\" data-label=\"{0}\">{1}<figcaption>PR curve of {0}; the dot is the shipped decision</figcaption></figure>\
             <figure class=\"chart roc-curve\" data-label=\"{0}\">{2}<figcaption>ROC curve of {0}</figcaption></figure></div>",
            escape(label),
            charts::pr_curve(label, &pr, pr_marker)?,
            charts::roc_curve(label, &roc, roc_marker)?
        );
        if !pairs.iter().any(|p| p.1) {
            h.push_str("<p class=\"note\">No known positives: the curves and ranking metrics are undefined.</p>");
        }
        h.push_str("</div>");
    }
    h.push_str("</section>\n");
    Ok(())
}

fn calibration_section(
    h: &mut String,
    input: &ReportInput,
    report: &EvalReport,
) -> Result<(), ReportError> {
    h.push_str("<section id=\"calibration\"><h2>Calibration</h2>\
        <p class=\"note\">Fraction of positives per 10 equal-width bins of the predicted probability; \
        the diagonal is perfect calibration, darker bars hold more rows, dots are (mean score, fraction positive). \
        ECE is the row-weighted mean gap.</p><table><tr><th>label</th><th>ECE</th></tr>");
    for m in &report.labels {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&m.label),
            val(m.ece)
        );
    }
    h.push_str("</table><div class=\"charts\">");
    for (l, name) in input.rows.labels.iter().enumerate() {
        let pairs = input.rows.pairs_of(l, 0..input.rows.rows.len());
        let bins = calibration::reliability(&pairs, 10);
        let _ = write!(
            h,
            "<figure class=\"chart reliability\" data-label=\"{0}\">{1}<figcaption>reliability diagram of {0}</figcaption></figure>",
            escape(name),
            charts::reliability(name, &bins, calibration::ece(&bins))?
        );
    }
    h.push_str("</div></section>\n");
    Ok(())
}

fn row_cells(h: &mut String, input: &ReportInput, id: &str, score: f32, l: usize) {
    let Some(row) = input.rows.rows.iter().find(|r| r.id == id) else {
        return;
    };
    let thumb = match &row.image {
        Some(path) => match thumbs::thumbnail_uri(path) {
            Ok(uri) => format!(
                "<img class=\"thumb\" alt=\"image of {0}\" src=\"{1}\">",
                escape(id),
                uri
            ),
            Err(why) => format!("<span class=\"note\">no thumbnail: {}</span>", escape(&why)),
        },
        None => "<span class=\"note\">no image</span>".to_string(),
    };
    let text = row.text.as_deref().map_or_else(
        || "<span class=\"note\">no text</span>".to_string(),
        |t| {
            let short: String = t.chars().take(400).collect();
            let more = if t.chars().count() > 400 { "…" } else { "" };
            format!("{}{more}", escape(&short))
        },
    );
    let others: Vec<String> = input
        .rows
        .labels
        .iter()
        .zip(&row.labels)
        .enumerate()
        .filter(|(i, _)| *i != l)
        .filter(|(_, (_, y))| **y == Some(true))
        .map(|(_, (name, _))| escape(name))
        .collect();
    let _ = write!(
        h,
        "<tr class=\"miss\"><td>{}</td><td class=\"num\">{score:.3}</td><td>{thumb}</td><td class=\"row-text\">{text}</td><td>{}</td></tr>",
        escape(id),
        if others.is_empty() {
            "—".to_string()
        } else {
            others.join(", ")
        }
    );
}

fn errors_section(h: &mut String, input: &ReportInput, errors: &[LabelErrors]) {
    h.push_str("<section id=\"errors\"><h2>Errors at the shipped thresholds</h2>\
        <p class=\"note\">False positives: highest scores first (the most confident wrong flags). \
        False negatives: lowest scores first (the most confidently missed). Rows whose label is unknown are in neither.</p>\
        <table class=\"confusion\"><tr><th>label</th><th>decision</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th></tr>");
    for e in errors {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&e.label),
            escape(&rule(e)),
            e.counts.tp,
            e.counts.fp,
            e.counts.tn,
            e.counts.fn_
        );
    }
    h.push_str("</table>");
    for (l, e) in errors.iter().enumerate() {
        for (class, what, list) in [
            ("fp", "false positives", &e.false_positives),
            ("fn", "false negatives", &e.false_negatives),
        ] {
            let _ = write!(
                h,
                "<h3 class=\"{class}\">{}: top {} {what}</h3>",
                escape(&e.label),
                list.len()
            );
            if list.is_empty() {
                h.push_str("<p class=\"note\">None.</p>");
                continue;
            }
            let _ = write!(
                h,
                "<table class=\"misses\" data-kind=\"{class}\" data-label=\"{}\"><tr><th>id</th><th>score</th><th>image</th><th>text</th><th>other positive labels</th></tr>",
                escape(&e.label)
            );
            for m in list {
                row_cells(h, input, &m.id, m.score, l);
            }
            h.push_str("</table>");
        }
    }
    h.push_str("</section>\n");
}

fn bootstrap_section(h: &mut String, input: &ReportInput, opts: &ReportOptions) {
    h.push_str("<section id=\"bootstrap\"><h2>Bootstrap 95% confidence intervals</h2>");
    if opts.bootstrap.resamples == 0 {
        h.push_str("<p class=\"note\">Left out (--bootstrap 0).</p></section>\n");
        return;
    }
    let _ = write!(
        h,
        "<p class=\"note\">{} resamples of the validation rows with replacement (seed {}); \
         percentile intervals. Resamples without positives are dropped.</p>\
         <table><tr><th>label</th><th>AUROC [95% CI]</th><th>AUPRC [95% CI]</th></tr>",
        opts.bootstrap.resamples, opts.bootstrap.seed
    );
    for (l, name) in input.rows.labels.iter().enumerate() {
        let pairs = input.rows.pairs_of(l, 0..input.rows.rows.len());
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(name),
            ci(opts.bootstrap.interval(&pairs, auroc)),
            ci(opts.bootstrap.interval(&pairs, average_precision))
        );
    }
    h.push_str("</table></section>\n");
}

fn slices_section(h: &mut String, input: &ReportInput, opts: &ReportOptions) {
    h.push_str("<section id=\"slices\"><h2>Slices</h2>");
    let Some(field) = &opts.slice_by else {
        h.push_str("<p class=\"note\">No slicing asked for: pass <code>--slice-by meta.FIELD</code> \
            (e.g. <code>meta.language</code>) to see per-slice AUROC and the bias AUCs.</p></section>\n");
        return;
    };
    let all = slices::slices(&input.rows, field);
    let _ = write!(
        h,
        "<p class=\"note\">Sliced by <code>meta.{}</code>. Subgroup AUC: AUROC inside the slice. \
         BPSN: the slice's negatives against the other rows' positives (low: false positives on the slice). \
         BNSP: the slice's positives against the other rows' negatives (low: misses on the slice). \
         Borkan et al. 2019. Rows without the field are <code>{}</code>.</p>",
        escape(field),
        slices::MISSING
    );
    if all.len() == 1 && all[0].value == slices::MISSING {
        let _ = write!(
            h,
            "<p class=\"note\">No row has <code>meta.{}</code>.</p>",
            escape(field)
        );
    }
    for (l, name) in input.rows.labels.iter().enumerate() {
        let _ = write!(
            h,
            "<h3>{0}</h3><table class=\"slices\" data-label=\"{0}\"><tr><th>meta.{1}</th><th>rows</th><th>positives</th>\
             <th>negatives</th><th>subgroup AUC</th><th>BPSN AUC</th><th>BNSP AUC</th></tr>",
            escape(name),
            escape(field)
        );
        for s in &all {
            slice_row(h, s, l);
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");
}

fn slice_row(h: &mut String, s: &Slice, l: usize) {
    let m = s.labels[l];
    let _ = write!(
        h,
        "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
        escape(&s.value),
        s.rows,
        m.positives,
        m.negatives,
        v(m.subgroup_auc),
        v(m.bpsn_auc),
        v(m.bnsp_auc)
    );
}

fn decision_section(h: &mut String, input: &ReportInput, opts: &ReportOptions) {
    h.push_str("<section id=\"decision\"><h2>Champion / challenger</h2>");
    let Some(d) = &input.decision else {
        h.push_str("<p class=\"note\">No gate decision (<code>export-decision.json</code>) for this report.</p></section>\n");
        return;
    };
    let opt = |x: Option<f64>| v(x);
    let champion = d.champion_version.map_or_else(
        || "champion (none published)".to_string(),
        |n| format!("champion (version {n})"),
    );
    let challenger = d.published_version.map_or_else(
        || "challenger (this run)".to_string(),
        |n| format!("challenger (published as version {n})"),
    );
    let _ = write!(
        h,
        "<table class=\"decision\"><tr><th></th><th>{}</th><th>{}</th></tr>\
         <tr><th>{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></table>\
         <table><tr><th>outcome</th><td>{}</td></tr><tr><th>published</th><td>{}</td></tr>\
         <tr><th>improvement</th><td>{}</td></tr><tr><th>min_delta</th><td>{}</td></tr>\
         <tr><th>mode</th><td>{}</td></tr><tr><th>reason</th><td>{}</td></tr></table>",
        escape(&champion),
        escape(&challenger),
        escape(d.metric.as_deref().unwrap_or("(no gate metric)")),
        opt(d.champion_score),
        opt(d.challenger_score),
        escape(
            &serde_json::to_value(d.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
        d.published,
        opt(d.improvement),
        opt(d.min_delta),
        escape(
            &d.mode
                .map(|m| m.as_str().to_string())
                .unwrap_or_else(|| "—".into())
        ),
        escape(&d.reason)
    );
    if let (Some(champ), Some(metric)) = (&input.champion, &d.metric)
        && opts.bootstrap.resamples > 0
    {
        let (a, b) = (champ.scores(), input.rows.scores());
        let of = |s: &crate::metrics::Scores| EvalReport::compute(s).metric(metric);
        let diff = opts.bootstrap.paired_rows(input.rows.rows.len(), |idx| {
            Some((of(&select_rows(&a, idx))?, of(&select_rows(&b, idx))?))
        });
        let _ = write!(
            h,
            "<p class=\"gate-ci\">{} challenger − champion on these rows: {} \
             (paired bootstrap over whole rows, {} resamples).</p>",
            escape(metric),
            ci(diff),
            opts.bootstrap.resamples
        );
    }
    match &input.champion {
        Some(champ) if opts.bootstrap.resamples > 0 => {
            let _ = write!(
                h,
                "<h3>Per label, on the same validation rows</h3><p class=\"note\">Difference = challenger − champion, \
                 paired bootstrap ({} resamples of the same rows for both).</p>\
                 <table class=\"decision-labels\"><tr><th>label</th><th>champion AUROC</th><th>challenger AUROC</th>\
                 <th>AUROC difference [95% CI]</th><th>champion AUPRC</th><th>challenger AUPRC</th><th>AUPRC difference [95% CI]</th></tr>",
                opts.bootstrap.resamples
            );
            for (l, name) in input.rows.labels.iter().enumerate() {
                let a = champ.pairs_of(l, 0..champ.rows.len());
                let b = input.rows.pairs_of(l, 0..input.rows.rows.len());
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                     <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    escape(name),
                    v(auroc(&a)),
                    v(auroc(&b)),
                    ci(opts.bootstrap.paired_difference(&a, &b, auroc)),
                    v(average_precision(&a)),
                    v(average_precision(&b)),
                    ci(opts.bootstrap.paired_difference(&a, &b, average_precision))
                );
            }
            h.push_str("</table>");
        }
        _ => h.push_str("<p class=\"note\">No champion scores on these rows (the gate had no champion to score), so no paired intervals.</p>"),
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Task;
    use crate::report::scored::{ScoredRow, ScoredRows};
    use serde_json::Map;

    fn input() -> ReportInput {
        let mut meta = Map::new();
        meta.insert("lang".into(), serde_json::Value::from("<b>x</b>"));
        let row = |id: &str, text: &str, s: f32, y: bool| ScoredRow {
            id: id.into(),
            line: 1,
            text: Some(text.into()),
            image: None,
            meta: Some(meta.clone()),
            scores: vec![s, 0.5],
            labels: vec![Some(y), None],
        };
        ReportInput {
            title: "t <i>".into(),
            facts: vec![("run".into(), "r&d".into())],
            config: Some(("c.yaml".into(), "a: <script>".into())),
            skipped: Some(Default::default()),
            history: Vec::new(),
            train_loss: Vec::new(),
            no_history: Some("none".into()),
            step: Some(3),
            task: Task::MultiLabel,
            thresholds: vec![0.5, 0.5],
            rows: ScoredRows {
                labels: vec!["a".into(), "b".into()],
                rows: vec![
                    row("<id1>", "<script>alert(1)</script>", 0.9, false),
                    row("id2", "fine", 0.2, true),
                    row("id3", "ok", 0.7, true),
                ],
            },
            decision: None,
            champion: None,
        }
    }

    #[test]
    fn every_dataset_string_is_escaped_and_every_section_is_there() {
        let opts = ReportOptions {
            slice_by: Some("lang".into()),
            bootstrap: Bootstrap {
                resamples: 20,
                seed: 1,
            },
            ..ReportOptions::default()
        };
        let html = render(&input(), &opts).unwrap();
        for s in [
            "run",
            "curves",
            "labels",
            "calibration",
            "errors",
            "bootstrap",
            "slices",
            "decision",
        ] {
            assert_eq!(
                html.matches(&format!("<section id=\"{s}\">")).count(),
                1,
                "{s}"
            );
        }
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;id1&gt;") && !html.contains("<id1>"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>x</b>"));
        assert!(html.contains("r&amp;d") && html.contains("t &lt;i&gt;"));
        // Label b has no known rows: its metrics are undefined, not NaN.
        assert!(html.contains("undefined") && !html.contains("NaN"));
        assert_eq!(html.matches("class=\"chart pr-curve\"").count(), 2);
        assert_eq!(html.matches("class=\"chart reliability\"").count(), 2);
    }

    #[test]
    fn slice_by_must_name_a_meta_field() {
        assert_eq!(parse_slice_by("meta.language").unwrap(), "language");
        assert_eq!(parse_slice_by("meta.src.site").unwrap(), "src.site");
        for bad in ["language", "meta.", "meta..x", ""] {
            assert!(parse_slice_by(bad).is_err(), "{bad}");
        }
    }
}
