//! The report's charts as inline SVG, drawn with `plotters`' SVG backend.
//!
//! No font is rasterised: the SVG's `<text>` elements name a font family
//! (`sans-serif`) and the browser draws them, so the charts need a font on the
//! viewing machine, not in the build. Each function returns one `<svg>` element.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::calibration::Bin;
use super::error::ReportError;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

const W: u32 = 380;
const H: u32 = 300;
const FONT: &str = "sans-serif";

/// One line of a chart over steps.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// Legend entry.
    pub name: &'a str,
    /// `(step, value)` points.
    pub points: Vec<(f64, f64)>,
}

/// A marked operating point (the shipped threshold) on a curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marker {
    /// Position in the chart's coordinates.
    pub at: (f64, f64),
    /// The threshold it stands for.
    pub threshold: f64,
}

fn svg(
    chart: &str,
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult,
) -> Result<String, ReportError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w, h)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        drawn.map_err(|e| ReportError::Chart {
            chart: chart.to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(buf)
}

fn palette(i: usize) -> RGBColor {
    [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
    ][i % 5]
}

/// Lines over training steps (train loss, val loss, macro AUROC/AUPRC).
pub fn over_steps(title: &str, y_desc: &str, series: &[Series<'_>]) -> Result<String, ReportError> {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let (mut x0, mut x1) = bounds(all.iter().map(|p| p.0));
    let (mut y0, mut y1) = bounds(all.iter().map(|p| p.1));
    if x1 - x0 < 1e-9 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let pad = ((y1 - y0) * 0.08).max(1e-3);
    y0 -= pad;
    y1 += pad;
    svg(title, W * 2 - 20, H, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 12))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = palette(i);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// A precision/recall curve with the shipped threshold marked.
pub fn pr_curve(
    label: &str,
    points: &[(f64, f64)],
    marker: Option<Marker>,
) -> Result<String, ReportError> {
    unit_curve(
        &format!("PR curve: {label}"),
        "recall",
        "precision",
        points,
        marker,
        false,
    )
}

/// A ROC curve (with the chance diagonal) and the shipped threshold marked.
pub fn roc_curve(
    label: &str,
    points: &[(f64, f64)],
    marker: Option<Marker>,
) -> Result<String, ReportError> {
    unit_curve(
        &format!("ROC curve: {label}"),
        "false positive rate",
        "true positive rate",
        points,
        marker,
        true,
    )
}

fn unit_curve(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    marker: Option<Marker>,
    diagonal: bool,
) -> Result<String, ReportError> {
    svg(title, W, H, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 15))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FONT, 11))
            .draw()?;
        if diagonal {
            chart.draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                RGBColor(170, 170, 170).stroke_width(1),
            ))?;
        }
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            palette(0).stroke_width(2),
        ))?;
        if let Some(m) = marker {
            chart
                .draw_series(std::iter::once(Circle::new(m.at, 6, palette(3).filled())))?
                .label(format!("shipped threshold {:.3}", m.threshold))
                .legend(|(x, y)| Circle::new((x, y), 5, palette(3).filled()));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .label_font((FONT, 11))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    })
}

/// A reliability diagram: fraction positive per probability bin against the
/// diagonal of perfect calibration, bars shaded by how many rows they hold.
pub fn reliability(label: &str, bins: &[Bin], ece: Option<f64>) -> Result<String, ReportError> {
    let title = match ece {
        Some(e) => format!("Reliability: {label} (ECE {e:.3})"),
        None => format!("Reliability: {label} (ECE undefined)"),
    };
    let most = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
    svg(&title, W, H, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&title, (FONT, 15))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)?;
        chart
            .configure_mesh()
            .x_desc("predicted probability")
            .y_desc("fraction positive")
            .label_style((FONT, 11))
            .draw()?;
        chart.draw_series(bins.iter().filter_map(|b| {
            let acc = b.accuracy?;
            let shade = 0.25 + 0.6 * (b.count as f64 / most);
            Some(Rectangle::new(
                [(b.lo + 0.005, 0.0), (b.hi - 0.005, acc)],
                palette(0).mix(shade).filled(),
            ))
        }))?;
        chart.draw_series(LineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            RGBColor(120, 120, 120).stroke_width(1),
        ))?;
        chart.draw_series(bins.iter().filter_map(|b| {
            Some(Circle::new(
                (b.confidence?, b.accuracy?),
                4,
                palette(3).filled(),
            ))
        }))?;
        Ok(())
    })
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_single_svg_elements_with_their_titles() {
        let pr = pr_curve(
            "spam",
            &[(0.0, 1.0), (0.5, 0.8), (1.0, 0.4)],
            Some(Marker {
                at: (0.5, 0.8),
                threshold: 0.42,
            }),
        )
        .unwrap();
        assert!(
            pr.trim_start().starts_with("<svg") && pr.trim_end().ends_with("</svg>"),
            "{pr}"
        );
        assert!(pr.contains("PR curve: spam") && pr.contains("shipped threshold 0.420"));
        let bins = super::super::calibration::reliability(&[(0.2, false), (0.8, true)], 10);
        let rel = reliability("spam", &bins, Some(0.2)).unwrap();
        assert!(rel.contains("ECE 0.200"));
        let steps = over_steps(
            "loss",
            "loss",
            &[Series {
                name: "train",
                points: vec![(5.0, 0.7)],
            }],
        )
        .unwrap();
        assert!(steps.contains("<svg"));
        let roc = roc_curve("a&b", &[], None).unwrap();
        assert!(roc.contains("a&amp;b"), "plotters escapes text");
    }
}
