//! The report's plots, as SVG strings: publish-to-delivery latency by
//! percentile per server, cost against client count, and cost against
//! publish rate (`report --current DIR --plots OUT`).
//!
//! The load generator keeps its latencies in an HdrHistogram but records
//! only p50, p90, p99, p99.9 and the maximum of it, so the latency plot is
//! a percentile curve through those five points (a CDF with its quantile
//! axis stretched so that the tail is as wide as the median): the y axis is
//! `-log10(1 - q)`, one step per nine, with the maximum drawn one step above
//! p99.9. More recorded quantiles would only make the curve denser.
//!
//! Drawn with `plotters` (SVG backend), as the report's other plots are.

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use ssehub_bench::record::Record;

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// `plotters` failed to lay out or draw the chart.
    #[error("drawing the chart: {0}")]
    Draw(#[from] DrawingAreaErrorKind<std::io::Error>),
    /// Nothing to plot.
    #[error("no data for {0}")]
    NoData(String),
}

/// Where the maximum is drawn on the quantile axis: one step above p99.9.
pub const MAX_POSITION: f64 = 4.0;

/// The quantile axis' ticks: position and label.
const QUANTILE_TICKS: [(f64, &str); 5] = [
    // -log10(1 - 0.5) = log10(2).
    (std::f64::consts::LOG10_2, "p50"),
    (1.0, "p90"),
    (2.0, "p99"),
    (3.0, "p99.9"),
    (MAX_POSITION, "max"),
];

/// Position of quantile `q` on the stretched axis: `-log10(1 - q)`.
#[must_use]
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// A record's publish-to-delivery percentiles as (latency ms, position on
/// the quantile axis), lowest first; those not recorded (0) left out.
#[must_use]
pub fn percentile_points(r: &Record) -> Vec<(f64, f64)> {
    [
        (r.lat_p50_ms, nines(0.5)),
        (r.lat_p90_ms, nines(0.9)),
        (r.lat_p99_ms, nines(0.99)),
        (r.lat_p999_ms, nines(0.999)),
        (r.lat_max_ms, MAX_POSITION),
    ]
    .into_iter()
    .filter(|(ms, _)| *ms > 0.0 && ms.is_finite())
    .collect()
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its legend.
    pub label: String,
    /// Its points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// One chart of a figure.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Its caption.
    pub title: String,
    /// The x axis' name.
    pub x_desc: String,
    /// The y axis' name.
    pub y_desc: String,
    /// A logarithmic x axis (client counts, rates).
    pub x_log: bool,
    /// A logarithmic y axis (values spanning orders of magnitude).
    pub y_log: bool,
    /// Its lines.
    pub lines: Vec<Line>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(200, 40, 40),
    RGBColor(40, 90, 200),
    RGBColor(230, 140, 20),
    RGBColor(60, 160, 60),
    RGBColor(130, 60, 170),
    RGBColor(20, 160, 170),
    RGBColor(120, 120, 120),
    RGBColor(190, 90, 140),
];

const PANEL_WIDTH: u32 = 520;
const PANEL_HEIGHT: u32 = 420;

/// Latency by percentile: one panel per entry, one line per server, x the
/// latency in ms, y the stretched quantile axis (see the module docs).
///
/// # Errors
/// [`PlotError::NoData`] without a point, [`PlotError::Draw`] if drawing fails.
pub fn latency_svg(panels: &[Panel]) -> Result<String, PlotError> {
    figure(panels, |area, panel| {
        let xmax = max_of(panel, |p| p.0) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..xmax, 0f64..MAX_POSITION + 0.2)?;
        // The quantile axis' ticks are the recorded quantiles, drawn here:
        // the mesh would put them at round numbers.
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .light_line_style(TRANSPARENT)
            .x_desc(panel.x_desc.as_str())
            .y_desc(panel.y_desc.as_str())
            .x_label_formatter(&|x| number(*x))
            .draw()?;
        let (base_x, base_y) = area.get_base_pixel();
        for (position, label) in QUANTILE_TICKS {
            chart.draw_series(LineSeries::new(
                [(0.0, position), (xmax, position)],
                RGBColor(225, 225, 225),
            ))?;
            let (x, y) = chart.backend_coord(&(0.0, position));
            area.draw(&Text::new(
                label,
                (x - base_x - 6, y - base_y),
                TextStyle::from(("sans-serif", 13).into_font())
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        draw_lines(&mut chart, &panel.lines, SeriesLabelPosition::LowerRight)
    })
}

/// Values against a count or rate: one panel per entry, one line per
/// server, axes logarithmic or not as each panel says.
///
/// # Errors
/// [`PlotError::NoData`] without a point, [`PlotError::Draw`] if drawing fails.
pub fn xy_svg(panels: &[Panel]) -> Result<String, PlotError> {
    figure(panels, |area, panel| {
        let (xmin, xmax) = (min_of(panel, |p| p.0), max_of(panel, |p| p.0));
        let (ymin, ymax) = (min_of(panel, |p| p.1), max_of(panel, |p| p.1));
        // A little room around the points; a linear y axis starts at 0.
        let (x0, x1) = (xmin / 1.6, xmax * 1.6);
        let (y0, y1) = if panel.y_log {
            (ymin / 1.6, ymax * 1.6)
        } else {
            // Room above the lines for the legend.
            (0.0, ymax * 1.4)
        };
        let caption = (panel.title.as_str(), ("sans-serif", 16));
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(caption.0, caption.1)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60);
        match (panel.x_log, panel.y_log) {
            (true, true) => xy_chart(
                &mut builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?,
                area,
                panel,
                y0,
            ),
            (true, false) => xy_chart(
                &mut builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?,
                area,
                panel,
                y0,
            ),
            (false, true) => xy_chart(
                &mut builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?,
                area,
                panel,
                y0,
            ),
            (false, false) => xy_chart(
                &mut builder.build_cartesian_2d(x0..x1, y0..y1)?,
                area,
                panel,
                y0,
            ),
        }
    })
}

/// An [`xy_svg`] panel on its axes (linear or logarithmic: a type each):
/// the mesh, a tick at each measured x, the lines. `y_any` is any y of
/// the chart, to find the x ticks' pixels.
fn xy_chart<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    area: &Area<'a>,
    panel: &Panel,
    y_any: f64,
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    mesh(chart, panel)?;
    x_ticks(chart, area, &x_values(panel), y_any)?;
    draw_lines(chart, &panel.lines, SeriesLabelPosition::UpperLeft)
}

type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;
type Error = DrawingAreaErrorKind<std::io::Error>;

/// The panels side by side in one SVG, each drawn by `draw`.
fn figure(
    panels: &[Panel],
    draw: impl Fn(&Area<'_>, &Panel) -> Result<(), Error>,
) -> Result<String, PlotError> {
    if let Some(empty) = panels
        .iter()
        .find(|p| p.lines.iter().all(|l| l.points.is_empty()))
    {
        return Err(PlotError::NoData(empty.title.clone()));
    }
    if panels.is_empty() {
        return Err(PlotError::NoData("a figure without panels".into()));
    }
    let mut svg = String::new();
    {
        let width = PANEL_WIDTH * u32::try_from(panels.len()).unwrap_or(1);
        let root = SVGBackend::with_string(&mut svg, (width, PANEL_HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, panels.len()));
        for (area, panel) in areas.iter().zip(panels) {
            draw(area, panel)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The grid and axis names; the x axis' ticks are left to [`x_ticks`].
fn mesh<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    panel: &Panel,
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .light_line_style(TRANSPARENT)
        .x_desc(panel.x_desc.as_str())
        .y_desc(panel.y_desc.as_str())
        .y_label_formatter(&|y| number(*y))
        .draw()
}

/// The distinct x values of a panel's points, in order.
fn x_values(panel: &Panel) -> Vec<f64> {
    let mut xs: Vec<f64> = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

/// A grid line and a label at each measured x (client counts and rates
/// are few and uneven: round numbers between them would say nothing).
fn x_ticks<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    area: &Area<'a>,
    xs: &[f64],
    y_any: f64,
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let (base_x, base_y) = area.get_base_pixel();
    let (_, rows) = chart.plotting_area().get_pixel_range();
    for x in xs {
        let (px, _) = chart.backend_coord(&(*x, y_any));
        let px = px - base_x;
        area.draw(&PathElement::new(
            vec![(px, rows.start - base_y), (px, rows.end - base_y)],
            RGBColor(225, 225, 225),
        ))?;
        area.draw(&Text::new(
            number(*x),
            (px, rows.end - base_y + 6),
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    Ok(())
}

/// A tick label: whole numbers without decimals, small ones with two
/// significant digits.
fn number(v: f64) -> String {
    if v.abs() >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Every line, a dot on each point, and the legend.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (line, color) in lines.iter().zip(COLORS.iter().cycle().copied()) {
        if line.points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(line.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(
            line.points
                .iter()
                .map(|p| Circle::new(*p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

fn max_of(panel: &Panel, f: impl Fn(&(f64, f64)) -> f64) -> f64 {
    panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(&f))
        .fold(f64::MIN_POSITIVE, f64::max)
}

fn min_of(panel: &Panel, f: impl Fn(&(f64, f64)) -> f64) -> f64 {
    panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(&f))
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The points of every `<polyline>` of an SVG, parsed as XML (which
    /// also checks that the document is well-formed).
    fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .map(|n| {
                n.attribute("points")
                    .expect("points")
                    .split_whitespace()
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').expect("x,y");
                        (x.parse().expect("x"), y.parse().expect("y"))
                    })
                    .collect()
            })
            .collect()
    }

    /// The y of each text whose content is `label`.
    fn text_y(svg: &str, label: &str) -> Vec<f64> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
        doc.descendants()
            .filter(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some(label))
            .filter_map(|n| n.attribute("y")?.parse().ok())
            .collect()
    }

    fn record(p: [f64; 5]) -> Record {
        Record {
            lat_p50_ms: p[0],
            lat_p90_ms: p[1],
            lat_p99_ms: p[2],
            lat_p999_ms: p[3],
            lat_max_ms: p[4],
            ..Record::default()
        }
    }

    #[test]
    fn nines_is_one_step_per_nine() {
        assert!((nines(0.9) - 1.0).abs() < 1e-12);
        assert!((nines(0.99) - 2.0).abs() < 1e-12);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert!((nines(0.5) - QUANTILE_TICKS[0].0).abs() < 1e-12);
    }

    #[test]
    fn percentile_points_leave_out_what_was_not_recorded() {
        let pts = percentile_points(&record([1.0, 0.0, 3.0, 4.0, 5.0]));
        assert_eq!(pts.len(), 4);
        assert_eq!(pts[0], (1.0, nines(0.5)));
        assert_eq!(pts[3], (5.0, MAX_POSITION));
    }

    #[test]
    fn a_percentile_curve_lands_on_its_ticks() {
        // Latencies 10, 20, ..., 50 ms: evenly spaced along x; along y at
        // the p50, p90, p99, p99.9 and max ticks.
        let panel = Panel {
            title: "known".into(),
            x_desc: "ms".into(),
            y_desc: "percentile".into(),
            x_log: false,
            y_log: false,
            lines: vec![Line {
                label: "server".into(),
                points: percentile_points(&record([10.0, 20.0, 30.0, 40.0, 50.0])),
            }],
        };
        let svg = latency_svg(&[panel]).expect("drawn");
        let lines = polylines(&svg);
        // The curve, then the legend's sample line.
        let curve = lines.iter().find(|l| l.len() == 5).expect("the curve");
        let dx: Vec<f64> = curve.windows(2).map(|w| w[1].0 - w[0].0).collect();
        for d in &dx {
            assert!(*d > 0.0 && (d - dx[0]).abs() <= 1.0, "x steps {dx:?}");
        }
        // Up the page as the quantile rises; each tick label beside its point.
        for (point, (_, label)) in curve.iter().zip(QUANTILE_TICKS) {
            let ys = text_y(&svg, label);
            assert!(
                ys.iter().any(|y| (y - point.1).abs() <= 6.0),
                "{label} at y {ys:?}, point at {point:?}"
            );
        }
        let dy: Vec<f64> = curve.windows(2).map(|w| w[0].1 - w[1].1).collect();
        // p50 -> p90 is 0.699 of a step, the others one step each.
        let step = dy[1];
        assert!(step > 0.0);
        assert!(
            (dy[0] / step - (1.0 - QUANTILE_TICKS[0].0)).abs() < 0.03,
            "{dy:?}"
        );
        assert!(
            (dy[2] - step).abs() <= 1.0 && (dy[3] - step).abs() <= 1.0,
            "{dy:?}"
        );
    }

    #[test]
    fn one_polyline_per_line_and_panel() {
        let line = |label: &str, k: f64| Line {
            label: label.into(),
            points: vec![(1000.0, k), (10_000.0, 2.0 * k), (20_000.0, 3.0 * k)],
        };
        let panel = |title: &str, y_log| Panel {
            title: title.into(),
            x_desc: "clients".into(),
            y_desc: "us".into(),
            x_log: true,
            y_log,
            lines: vec![line("a", 1.0), line("b", 5.0)],
        };
        let svg = xy_svg(&[panel("left", false), panel("right", true)]).expect("drawn");
        let curves: Vec<_> = polylines(&svg)
            .into_iter()
            .filter(|l| l.len() == 3)
            .collect();
        assert_eq!(curves.len(), 4);
        // On a log x axis 1000 -> 10000 is log2(10)/1 = 3.32x the step
        // 10000 -> 20000.
        let c = &curves[0];
        let ratio = (c[1].0 - c[0].0) / (c[2].0 - c[1].0);
        assert!((ratio - 10f64.log2()).abs() < 0.05, "{ratio}");
        // Both panels' legends name both lines.
        assert_eq!(text_y(&svg, "a").len(), 2);
        assert_eq!(text_y(&svg, "b").len(), 2);
    }

    #[test]
    fn an_empty_panel_is_an_error() {
        let panel = Panel {
            title: "nothing".into(),
            x_desc: String::new(),
            y_desc: String::new(),
            x_log: false,
            y_log: false,
            lines: vec![Line {
                label: "x".into(),
                points: vec![],
            }],
        };
        assert!(matches!(latency_svg(&[panel]), Err(PlotError::NoData(t)) if t == "nothing"));
        assert!(matches!(xy_svg(&[]), Err(PlotError::NoData(_))));
    }
}
