//! Pictures of loss landscapes and sensitivities: line charts and heat maps,
//! each written as PNG and SVG with its numbers as CSV beside it.
//!
//! A picture is described as data — a [`LinePlot`] of [`Series`], or a
//! [`Surface`] sampled on a grid — and one call writes all three files
//! (`<stem>.png`, `<stem>.svg`, `<stem>.csv`; see [`PlotFiles`]). Each file
//! is replaced atomically with [`write_atomic`], so a reader never sees half
//! a picture. Pictures are [`PLOT_SIZE`] pixels.
//!
//! Text is laid out with DejaVu Sans, embedded in the binary (crate
//! `dejavu`), so rendering needs neither system fonts nor fontconfig and
//! gives the same pixels on every machine.
//!
//! The CSV files hold the plotted numbers formatted with Rust's `{}`, which
//! round-trips: parsing a field gives back the same `f64` bit for bit.
//!
//! # Example
//!
//! ```
//! use smoothout_models::analysis::{write_line_plot, LinePlot, Series};
//!
//! let dir = std::env::temp_dir().join(format!("smoothout-plot-doc-{}", std::process::id()));
//! let plot = LinePlot {
//!     title: "Loss along a random direction".into(),
//!     x_label: "step α".into(),
//!     y_label: "loss".into(),
//!     series: vec![Series {
//!         label: "SGD".into(),
//!         points: (-10..=10).map(|i| (i as f64 / 10.0, 1.0 + (i * i) as f64 / 50.0)).collect(),
//!     }],
//!     log_y: false,
//! };
//! let files = write_line_plot(&dir.join("direction"), &plot)?;
//! assert!(files.png.ends_with("direction.png"));
//! assert_eq!(std::fs::read_to_string(&files.csv)?.lines().count(), 1 + 21);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::chart::MeshStyle;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::train::{write_atomic, TrainError};

/// Width and height in pixels of every picture (PNG pixels, SVG user units).
pub const PLOT_SIZE: (u32, u32) = (800, 600);

/// One curve of a [`LinePlot`]: its legend text and its points `(x, y)`,
/// drawn joined in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text; an empty label leaves the curve out of the legend.
    pub label: String,
    /// The points `(x, y)`, all finite; at least one.
    pub points: Vec<(f64, f64)>,
}

/// A line chart of one or more [`Series`] on shared axes, written by
/// [`write_line_plot`].
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    /// The caption above the chart.
    pub title: String,
    /// The x axis description.
    pub x_label: String,
    /// The y axis description.
    pub y_label: String,
    /// The curves; at least one.
    pub series: Vec<Series>,
    /// Whether the y axis is logarithmic (every y must then be positive).
    pub log_y: bool,
}

/// A scalar field sampled on a rectangular grid, written by
/// [`write_surface_plot`] as a heat map with iso-lines.
///
/// ```text
/// z[j * xs.len() + i]  is the value at  (xs[i], ys[j])
/// ```
///
/// so `z` is stored row by row, one row per `y`.
#[derive(Clone, Debug, PartialEq)]
pub struct Surface {
    /// The caption above the map.
    pub title: String,
    /// The x axis description.
    pub x_label: String,
    /// The y axis description.
    pub y_label: String,
    /// Grid abscissae: at least two, finite, strictly increasing.
    pub xs: Vec<f64>,
    /// Grid ordinates: at least two, finite, strictly increasing.
    pub ys: Vec<f64>,
    /// The values, `xs.len() * ys.len()` of them, all finite.
    pub z: Vec<f64>,
}

/// The three files one picture was written to.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotFiles {
    /// The raster picture, `<stem>.png` (8-bit RGB).
    pub png: PathBuf,
    /// The vector picture, `<stem>.svg`.
    pub svg: PathBuf,
    /// The plotted numbers, `<stem>.csv`.
    pub csv: PathBuf,
}

/// Writes a line chart to `<stem>.png`, `<stem>.svg` and `<stem>.csv`.
///
/// The extensions are appended to `stem` (a stem `run/loss.v2` gives
/// `run/loss.v2.png`); missing parent directories are created. The x axis
/// spans the data exactly; the y axis adds a small margin (multiplicative
/// when [`LinePlot::log_y`] is set). Series are coloured from a fixed
/// ten-colour palette, in order; series of at most 50 points also get a
/// marker at each point, so a single point stays visible.
///
/// The CSV has the header `series,x,y` and one row per point, series after
/// series, in the order given (a scatter chart's too):
///
/// ```text
/// series,x,y
/// SGD,-1,1.02
/// ```
///
/// A label holding a comma, a quote or a line break is quoted (RFC 4180).
///
/// # Errors
///
/// * [`TrainError::Config`] (setting `line plot`, naming the plot, the
///   series and the point) when there are no series, a series has no
///   points, a coordinate is NaN or infinite, the values span more than an
///   `f64` holds, or `log_y` is set and some `y ≤ 0` (or `max y / min y`
///   overflows);
/// * [`TrainError::Config`] (setting `plot path`) when `stem` names no file;
/// * [`TrainError::Io`] naming the file, when rendering or writing it fails.
///   Files written before the failure are kept.
///
/// # Example
///
/// ```
/// use smoothout_models::analysis::{write_line_plot, LinePlot, Series};
///
/// let dir = std::env::temp_dir().join(format!("smoothout-line-doc-{}", std::process::id()));
/// let curve = |label: &str, scale: f64| Series {
///     label: label.into(),
///     points: (0..50).map(|i| (i as f64, scale * (-(i as f64) / 10.0).exp())).collect(),
/// };
/// let plot = LinePlot {
///     title: "Training loss".into(),
///     x_label: "epoch".into(),
///     y_label: "loss".into(),
///     series: vec![curve("baseline", 2.0), curve("SmoothOut", 1.5)],
///     log_y: true,
/// };
/// let files = write_line_plot(&dir.join("loss"), &plot)?;
/// assert!(std::fs::read_to_string(&files.svg)?.contains("SmoothOut"));
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_line_plot(stem: &Path, plot: &LinePlot) -> Result<PlotFiles, TrainError> {
    write_chart(stem, plot, true)
}

/// Writes a scatter chart to `<stem>.png`, `<stem>.svg` and `<stem>.csv`:
/// [`write_line_plot`] with every point marked and none joined (one series
/// per group of points, e.g. per method), a 5% margin on the x axis too,
/// and room above the points for the legend; the same files, checks and
/// errors.
///
/// ```
/// use smoothout_models::analysis::{write_scatter_plot, LinePlot, Series};
///
/// let dir = std::env::temp_dir().join(format!("smoothout-scatter-doc-{}", std::process::id()));
/// let plot = LinePlot {
///     title: "Accuracy against sharpness".into(),
///     x_label: "λ_max".into(),
///     y_label: "test accuracy %".into(),
///     series: vec![Series { label: "SAM".into(), points: vec![(1.0, 98.5), (1.2, 98.4)] }],
///     log_y: false,
/// };
/// let files = write_scatter_plot(&dir.join("scatter"), &plot)?;
/// assert_eq!(std::fs::read_to_string(&files.csv)?.lines().count(), 3);
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`write_line_plot`].
pub fn write_scatter_plot(stem: &Path, plot: &LinePlot) -> Result<PlotFiles, TrainError> {
    write_chart(stem, plot, false)
}

/// [`write_line_plot`] (points `joined`) or [`write_scatter_plot`].
fn write_chart(stem: &Path, plot: &LinePlot, joined: bool) -> Result<PlotFiles, TrainError> {
    let files = plot_files(stem)?;
    let (x, mut y) = line_frame(plot, if joined { 0.0 } else { 0.05 })?;
    if !joined && !plot.log_y {
        // Room above the points for the legend (about 6% of the height per
        // entry), which would otherwise hide points in its corner.
        y.1 += (y.1 - y.0) * 0.06 * plot.series.len() as f64;
    }
    ensure_font()?;

    let (svg, png) = if plot.log_y {
        let log_y = || LogCoord::from((y.0..y.1).log_scale());
        render_line_chart(&files, plot, x, log_y, joined)?
    } else {
        let lin_y = || RangedCoordf64::from(y.0..y.1);
        render_line_chart(&files, plot, x, lin_y, joined)?
    };

    let mut csv = String::from("series,x,y\n");
    for s in &plot.series {
        let label = csv_field(&s.label);
        for &(x, y) in &s.points {
            csv.push_str(&format!("{label},{x},{y}\n"));
        }
    }

    write_atomic(&files.png, &png)?;
    write_atomic(&files.svg, svg.as_bytes())?;
    write_atomic(&files.csv, csv.as_bytes())?;
    Ok(files)
}

/// Writes a surface as a heat map with iso-lines and a colour bar to
/// `<stem>.png`, `<stem>.svg` and `<stem>.csv`.
///
/// Each grid point colours the cell around it (cell edges lie half-way
/// between neighbouring grid points, so the map spans exactly
/// `xs[0]..xs[last]` by `ys[0]..ys[last]`), on the viridis scale from the
/// smallest `z` (dark blue) to the largest (yellow). Twelve iso-lines, found
/// by marching squares with linear interpolation along cell edges, sit at
/// evenly spaced fractions of that scale and are marked on the colour bar.
///
/// The scale is logarithmic when every `z` is positive and the values span
/// at least two decades (`max z / min z ≥ 100`, and finite), so that the
/// levels are log-spaced; otherwise it is linear:
///
/// ```text
/// t(z) = (z − min z) / (max z − min z)               linear
/// t(z) = (ln z − ln min z) / (ln max z − ln min z)   logarithmic
/// level k = 1..=12 at t = k / 13
/// ```
///
/// A constant surface is drawn in the middle colour with no iso-lines.
///
/// The CSV has the header `x,y,z` and one row per grid point, in the order
/// of `z` (x fastest). The SVG holds one rectangle per grid point, so it
/// grows with the grid (about 100 bytes a point).
///
/// # Errors
///
/// * [`TrainError::Config`] (setting `surface plot`, naming the plot) when
///   `xs` or `ys` has fewer than two values, is not strictly increasing or
///   holds NaN or infinities, when `z.len() ≠ xs.len() · ys.len()`, when a
///   `z` is NaN or infinite (naming its indices), or when the values span
///   more than an `f64` holds;
/// * [`TrainError::Config`] (setting `plot path`) when `stem` names no file;
/// * [`TrainError::Io`] naming the file, when rendering or writing it fails.
///
/// # Example
///
/// ```
/// use smoothout_models::analysis::{write_surface_plot, Surface};
///
/// let dir = std::env::temp_dir().join(format!("smoothout-surface-doc-{}", std::process::id()));
/// let grid: Vec<f64> = (0..21).map(|i| -1.0 + i as f64 / 10.0).collect();
/// let z = grid
///     .iter()
///     .flat_map(|&y| grid.iter().map(move |&x| x * x + 3.0 * y * y))
///     .collect();
/// let surface = Surface {
///     title: "Loss around the minimum".into(),
///     x_label: "direction 1".into(),
///     y_label: "direction 2".into(),
///     xs: grid.clone(),
///     ys: grid,
///     z,
/// };
/// let files = write_surface_plot(&dir.join("landscape"), &surface)?;
/// assert_eq!(std::fs::read_to_string(&files.csv)?.lines().count(), 1 + 21 * 21);
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_surface_plot(stem: &Path, surface: &Surface) -> Result<PlotFiles, TrainError> {
    let files = plot_files(stem)?;
    let scale = surface_scale(surface)?;
    ensure_font()?;

    let t: Vec<f64> = surface.z.iter().map(|&z| scale.t(z)).collect();
    let svg = render_svg(&files.svg, |root| draw_surface(root, surface, &scale, &t))?;
    let png = render_png(&files.png, |root| draw_surface(root, surface, &scale, &t))?;

    let mut csv = String::from("x,y,z\n");
    let nx = surface.xs.len();
    for (k, z) in surface.z.iter().enumerate() {
        let (x, y) = (surface.xs[k % nx], surface.ys[k / nx]);
        csv.push_str(&format!("{x},{y},{z}\n"));
    }

    write_atomic(&files.png, &png)?;
    write_atomic(&files.svg, svg.as_bytes())?;
    write_atomic(&files.csv, csv.as_bytes())?;
    Ok(files)
}

// ---------------------------------------------------------------------------
// Files, fonts and backends

/// The family name plotters looks fonts up by; the embedded font is
/// registered under it.
const FONT: &str = "sans-serif";

/// Registers the embedded DejaVu Sans with plotters, once per process.
fn ensure_font() -> Result<(), TrainError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(TrainError::config(
            "plot font",
            "the embedded DejaVu Sans font could not be parsed",
        ))
    }
}

/// `<stem>.png`, `<stem>.svg` and `<stem>.csv`, appending rather than
/// replacing any extension `stem` already has.
fn plot_files(stem: &Path) -> Result<PlotFiles, TrainError> {
    if stem.file_name().is_none() {
        return Err(TrainError::config(
            "plot path",
            format!(
                "`{}` names no file to write the picture to; give a stem such as `out/loss`",
                stem.display()
            ),
        ));
    }
    let with = |ext: &str| {
        let mut name = OsString::from(stem.as_os_str());
        name.push(".");
        name.push(ext);
        PathBuf::from(name)
    };
    Ok(PlotFiles {
        png: with("png"),
        svg: with("svg"),
        csv: with("csv"),
    })
}

/// The error for a picture that plotters or the encoder failed to produce.
fn render_failed(path: &Path, what: impl std::fmt::Display) -> TrainError {
    TrainError::io(
        path,
        io::Error::other(format!("rendering the picture failed: {what}")),
    )
}

/// Result of drawing on some backend.
type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The SVG and the PNG of [`draw_line_chart`] with the y axis that `y`
/// builds: plotters' coordinates are consumed by the chart and LogCoord is
/// not Clone, so each backend builds its own.
fn render_line_chart<Y>(
    files: &PlotFiles,
    plot: &LinePlot,
    x: Span,
    y: impl Fn() -> Y,
    joined: bool,
) -> Result<(String, Vec<u8>), TrainError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    Ok((
        render_svg(&files.svg, |root| {
            draw_line_chart(root, plot, x, y(), joined)
        })?,
        render_png(&files.png, |root| {
            draw_line_chart(root, plot, x, y(), joined)
        })?,
    ))
}

/// Draws with `draw` into an SVG document held in memory.
fn render_svg(
    path: &Path,
    draw: impl for<'b> Fn(&DrawingArea<SVGBackend<'b>, Shift>) -> Drawn<SVGBackend<'b>>,
) -> Result<String, TrainError> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, PLOT_SIZE).into_drawing_area();
        draw(&root).map_err(|e| render_failed(path, e))?;
        root.present().map_err(|e| render_failed(path, e))?;
    }
    Ok(text)
}

/// Draws with `draw` into an RGB buffer and encodes it as PNG bytes.
fn render_png(
    path: &Path,
    draw: impl for<'b> Fn(&DrawingArea<BitMapBackend<'b>, Shift>) -> Drawn<BitMapBackend<'b>>,
) -> Result<Vec<u8>, TrainError> {
    let (w, h) = PLOT_SIZE;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, PLOT_SIZE).into_drawing_area();
        draw(&root).map_err(|e| render_failed(path, e))?;
        root.present().map_err(|e| render_failed(path, e))?;
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // fdeflate's PNG-tuned mode: fast even in debug builds, and flat plot
    // backgrounds compress well anyway.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| render_failed(path, e))?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| render_failed(path, e))?;
    writer.finish().map_err(|e| render_failed(path, e))?;
    Ok(bytes)
}

/// The axis titles, fonts and tick labels that the line plots and the heat
/// maps share.
fn axes<'m, 'a, 'b, X, Y, DB>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
    x_label: &str,
    y_label: &str,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
    DB: DrawingBackend,
{
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
}

/// [`tick_label`] as the formatter plotters takes.
fn tick(v: &f64) -> String {
    tick_label(*v)
}

/// An axis tick label: four significant digits, as short as `{}` prints
/// them, switching to exponent form outside `[10⁻³, 10⁵)` (so a tick at
/// `9.9999999e-5` reads `1e-4`).
fn tick_label(v: f64) -> String {
    let rounded: f64 = format!("{v:.3e}").parse().unwrap_or(v);
    let magnitude = rounded.abs();
    if rounded == 0.0 {
        "0".to_owned()
    } else if (1e-3..1e5).contains(&magnitude) {
        format!("{rounded}")
    } else {
        format!("{rounded:e}")
    }
}

/// One CSV field: quoted (RFC 4180) only when it has to be.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

// ---------------------------------------------------------------------------
// Line charts

/// Tableau's ten categorical colours: distinguishable, and fine in grey.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Series with at most this many points get a marker at each point.
const MARKED_POINTS: usize = 50;

/// An axis range `(low, high)`.
type Span = (f64, f64);

/// Checks `plot` and returns its axis ranges `(x, y)`, x padded by
/// `x_pad` of its span on each side.
fn line_frame(plot: &LinePlot, x_pad: f64) -> Result<(Span, Span), TrainError> {
    let bad =
        |reason: String| TrainError::config("line plot", format!("`{}`: {reason}", plot.title));
    if plot.series.is_empty() {
        return Err(bad("there are no series to draw".into()));
    }
    let (mut xs, mut ys) = (Extent::default(), Extent::default());
    for (k, s) in plot.series.iter().enumerate() {
        if s.points.is_empty() {
            return Err(bad(format!("series {k} (`{}`) has no points", s.label)));
        }
        for (i, &(x, y)) in s.points.iter().enumerate() {
            if !x.is_finite() || !y.is_finite() {
                return Err(bad(format!(
                    "series {k} (`{}`), point {i} is ({x}, {y}), which is not finite",
                    s.label
                )));
            }
            if plot.log_y && y <= 0.0 {
                return Err(bad(format!(
                    "series {k} (`{}`), point {i} has y = {y}, which a logarithmic y axis \
                     (log_y) cannot show; drop the point or use a linear axis",
                    s.label
                )));
            }
            xs.add(x);
            ys.add(y);
        }
    }
    let too_wide = |axis: &str| bad(format!("the {axis} values span more than an f64 holds"));
    let x = xs.padded(x_pad).ok_or_else(|| too_wide("x"))?;
    let y = if plot.log_y {
        ys.padded_log(0.05).ok_or_else(|| {
            bad(
                "the y values range over too many decades for a logarithmic axis \
                 (max / min overflows an f64)"
                    .into(),
            )
        })?
    } else {
        ys.padded(0.05).ok_or_else(|| too_wide("y"))?
    };
    Ok((x, y))
}

/// Draws a line chart with x range `x` and y coordinate `y` (linear or
/// logarithmic).
fn draw_line_chart<DB, Y>(
    root: &DrawingArea<DB, Shift>,
    plot: &LinePlot,
    x: Span,
    y: Y,
    joined: bool,
) -> Drawn<DB>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(&plot.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x.0..x.1, y)?;
    axes(&mut chart.configure_mesh(), &plot.x_label, &plot.y_label)
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()?;

    for (k, s) in plot.series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        if joined {
            let line = chart.draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))?;
            if !s.label.is_empty() {
                line.label(&s.label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            }
        }
        if !joined || s.points.len() <= MARKED_POINTS {
            let radius = if joined { 3 } else { 5 };
            let dots = chart.draw_series(
                s.points
                    .iter()
                    .map(|&p| Circle::new(p, radius, colour.filled())),
            )?;
            if !joined && !s.label.is_empty() {
                dots.label(&s.label)
                    .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
            }
        }
    }
    if plot.series.iter().any(|s| !s.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
    }
    Ok(())
}

/// The smallest and largest of some finite values.
#[derive(Clone, Copy, Debug)]
struct Extent {
    lo: f64,
    hi: f64,
}

impl Default for Extent {
    fn default() -> Self {
        Extent {
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
        }
    }
}

impl Extent {
    fn add(&mut self, v: f64) {
        self.lo = self.lo.min(v);
        self.hi = self.hi.max(v);
    }

    /// A linear axis range with `margin` of the span added on each side;
    /// a single value gets ±10 % (±1 around zero). `None` when the span
    /// overflows.
    fn padded(self, margin: f64) -> Option<Span> {
        let (lo, hi) = (self.lo, self.hi);
        let span = hi - lo;
        if !span.is_finite() {
            return None;
        }
        // Degenerate (or denormal-thin) ranges get a visible width; plotters
        // needs a non-empty range to place ticks.
        let pad = if span > hi.abs().max(lo.abs()) * 1e-12 && span > 1e-300 {
            span * margin
        } else if lo.abs() < 1e-300 {
            1.0
        } else {
            lo.abs().max(hi.abs()) * 0.1
        };
        // Near ±f64::MAX the padding may overflow: then pad only the side
        // that has room. Plotters loops for ever on infinite ranges.
        [
            (lo - pad, hi + pad),
            (lo - pad, hi),
            (lo, hi + pad),
            (lo, hi),
        ]
        .into_iter()
        .find(|&(a, b)| a < b && (b - a).is_finite())
    }

    /// A logarithmic axis range (all values positive) widened by the factor
    /// `(hi / lo)^margin` on each side; a single value gets a factor 2.
    /// `None` when `hi / lo` overflows: plotters cannot place the ticks of
    /// such an axis (it loops for ever).
    fn padded_log(self, margin: f64) -> Option<Span> {
        let usable = |a: f64, b: f64| a > 0.0 && b > a && (b / a).is_finite();
        let (lo, hi) = (self.lo, self.hi);
        let ratio = hi / lo;
        if !ratio.is_finite() {
            return None;
        }
        let (a, b) = if ratio <= 1.0 + 1e-12 {
            (lo / 2.0, hi * 2.0)
        } else {
            let widen = ratio.powf(margin);
            (lo / widen, hi * widen)
        };
        // At the ends of the f64 range the padding may underflow or
        // overflow: then widen only where there is room.
        [(a, b), (lo, hi), (lo, hi * 4.0), (lo / 4.0, hi)]
            .into_iter()
            .find(|&(a, b)| usable(a, b))
    }
}

// ---------------------------------------------------------------------------
// Surfaces

/// Number of iso-lines on a surface.
const LEVELS: usize = 12;

/// Width in pixels of the colour bar beside a heat map (with its labels).
const BAR_WIDTH: u32 = 140;

/// Viridis (matplotlib's default colour map, CC0), sampled at eight evenly
/// spaced points; colours in between are interpolated linearly.
const VIRIDIS: [(u8, u8, u8); 8] = [
    (68, 1, 84),
    (70, 50, 127),
    (54, 92, 141),
    (39, 127, 143),
    (31, 162, 136),
    (74, 194, 110),
    (160, 219, 57),
    (254, 232, 37),
];

/// The colour at `t ∈ [0, 1]` on the viridis scale.
fn viridis(t: f64) -> RGBColor {
    let pos = t.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let k = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - k as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (VIRIDIS[k], VIRIDIS[k + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// How `z` maps to the colour scale `t ∈ [0, 1]`.
#[derive(Clone, Copy, Debug)]
enum ZScale {
    /// `t = (z − lo) / (hi − lo)`.
    Linear { lo: f64, hi: f64 },
    /// `t = (ln z − ln lo) / (ln hi − ln lo)`, all `z > 0`.
    Log { lo: f64, hi: f64 },
}

impl ZScale {
    /// The position of `z` on the scale; 0.5 when the surface is constant.
    fn t(self, z: f64) -> f64 {
        match self {
            ZScale::Linear { lo, hi } if hi > lo => (z - lo) / (hi - lo),
            ZScale::Log { lo, hi } => (z.ln() - lo.ln()) / (hi.ln() - lo.ln()),
            ZScale::Linear { .. } => 0.5,
        }
    }

    /// The value at position `t` (inverse of [`ZScale::t`]).
    fn z(self, t: f64) -> f64 {
        match self {
            ZScale::Linear { lo, hi } => lo + (hi - lo) * t,
            ZScale::Log { lo, hi } => (lo.ln() + (hi.ln() - lo.ln()) * t).exp(),
        }
    }
}

/// Checks `s` and picks its colour scale.
fn surface_scale(s: &Surface) -> Result<ZScale, TrainError> {
    let bad =
        |reason: String| TrainError::config("surface plot", format!("`{}`: {reason}", s.title));
    for (name, grid) in [("xs", &s.xs), ("ys", &s.ys)] {
        if grid.len() < 2 {
            return Err(bad(format!(
                "{name} has {} value(s); a surface needs at least 2 in each direction",
                grid.len()
            )));
        }
        for (i, &v) in grid.iter().enumerate() {
            if !v.is_finite() {
                return Err(bad(format!("{name}[{i}] = {v} is not finite")));
            }
            if i > 0 && v <= grid[i - 1] {
                return Err(bad(format!(
                    "{name} must increase strictly, but {name}[{i}] = {v} follows {name}[{}] = {}",
                    i - 1,
                    grid[i - 1]
                )));
            }
        }
        if !(grid[grid.len() - 1] - grid[0]).is_finite() {
            return Err(bad(format!("{name} spans more than an f64 holds")));
        }
    }
    let (nx, ny) = (s.xs.len(), s.ys.len());
    if nx.checked_mul(ny) != Some(s.z.len()) {
        return Err(bad(format!(
            "z has {} values, but xs × ys is {nx} × {ny}",
            s.z.len()
        )));
    }
    let mut extent = Extent::default();
    for (k, &z) in s.z.iter().enumerate() {
        if !z.is_finite() {
            return Err(bad(format!(
                "z[{k}] = {z} (at xs[{}], ys[{}]) is not finite",
                k % nx,
                k / nx
            )));
        }
        extent.add(z);
    }
    let (lo, hi) = (extent.lo, extent.hi);
    if !(hi - lo).is_finite() {
        return Err(bad("the z values span more than an f64 holds".into()));
    }
    // Log scale only where plotters can lay out its ticks (finite ratio).
    let ratio = hi / lo;
    Ok(if lo > 0.0 && ratio >= 100.0 && ratio.is_finite() {
        ZScale::Log { lo, hi }
    } else {
        ZScale::Linear { lo, hi }
    })
}

/// Cell boundaries around grid points: half-way between neighbours, and the
/// outer points themselves at the ends.
fn cell_edges(grid: &[f64]) -> Vec<f64> {
    let mut edges = Vec::with_capacity(grid.len() + 1);
    edges.push(grid[0]);
    edges.extend(grid.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0));
    edges.push(grid[grid.len() - 1]);
    edges
}

/// The segments of the iso-line `t = level` by marching squares over the
/// grid, interpolating linearly along cell edges. Saddle cells are resolved
/// by the mean of their corners.
fn iso_segments(xs: &[f64], ys: &[f64], t: &[f64], level: f64) -> Vec<[(f64, f64); 2]> {
    let nx = xs.len();
    let mut segments = Vec::new();
    for j in 0..ys.len() - 1 {
        for i in 0..nx - 1 {
            // Corners counter-clockwise from the lower left.
            let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
            let v = corners.map(|(a, b)| t[b * nx + a]);
            let p = corners.map(|(a, b)| (xs[a], ys[b]));
            let above = v.map(|v| v >= level);
            // Crossing on edge e (from corner e to corner e + 1), if any.
            let cross = |e: usize| {
                let f = (e + 1) % 4;
                (above[e] != above[f]).then(|| {
                    let s = (level - v[e]) / (v[f] - v[e]);
                    (
                        p[e].0 + (p[f].0 - p[e].0) * s,
                        p[e].1 + (p[f].1 - p[e].1) * s,
                    )
                })
            };
            let hits: Vec<(usize, (f64, f64))> =
                (0..4).filter_map(|e| cross(e).map(|q| (e, q))).collect();
            match hits.as_slice() {
                [(_, a), (_, b)] => segments.push([*a, *b]),
                [(_, e0), (_, e1), (_, e2), (_, e3)] => {
                    let centre = v.iter().sum::<f64>() / 4.0 >= level;
                    if centre == above[0] {
                        // Corners 0 and 2 join through the middle: cut off 1 and 3.
                        segments.push([*e0, *e1]);
                        segments.push([*e2, *e3]);
                    } else {
                        segments.push([*e3, *e0]);
                        segments.push([*e1, *e2]);
                    }
                }
                _ => {}
            }
        }
    }
    segments
}

/// Draws the heat map, its iso-lines and the colour bar.
fn draw_surface<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Surface,
    scale: &ZScale,
    t: &[f64],
) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let body = root.margin(8, 0, 0, 0).titled(&s.title, (FONT, 24))?;
    let (width, _) = body.dim_in_pixel();
    let (map_area, bar_area) = body.split_horizontally(width.saturating_sub(BAR_WIDTH));

    let (nx, ny) = (s.xs.len(), s.ys.len());
    let mut chart = ChartBuilder::on(&map_area)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(s.xs[0]..s.xs[nx - 1], s.ys[0]..s.ys[ny - 1])?;
    axes(
        chart.configure_mesh().disable_mesh(),
        &s.x_label,
        &s.y_label,
    )
    .draw()?;

    let (xe, ye) = (cell_edges(&s.xs), cell_edges(&s.ys));
    chart.draw_series((0..ny).flat_map(|j| {
        let (xe, ye) = (&xe, &ye);
        (0..nx).map(move |i| {
            Rectangle::new(
                [(xe[i], ye[j]), (xe[i + 1], ye[j + 1])],
                viridis(t[j * nx + i]).filled(),
            )
        })
    }))?;
    let line_style = BLACK.mix(0.6).stroke_width(1);
    let levels: Vec<f64> = (1..=LEVELS)
        .map(|k| k as f64 / (LEVELS + 1) as f64)
        .collect();
    for &level in &levels {
        chart.draw_series(
            iso_segments(&s.xs, &s.ys, t, level)
                .into_iter()
                .map(|[a, b]| PathElement::new(vec![a, b], line_style)),
        )?;
    }

    match *scale {
        ZScale::Linear { lo, hi } if hi > lo => {
            draw_colour_bar(&bar_area, RangedCoordf64::from(lo..hi), scale, &levels)
        }
        ZScale::Linear { lo, .. } => {
            // A constant surface: one colour, one labelled value.
            let (a, b) = Extent { lo, hi: lo }.padded(0.0).unwrap_or((lo, lo));
            draw_colour_bar(&bar_area, RangedCoordf64::from(a..b), scale, &[])
        }
        ZScale::Log { lo, hi } => draw_colour_bar(
            &bar_area,
            LogCoord::from((lo..hi).log_scale()),
            scale,
            &levels,
        ),
    }
}

/// Draws the colour bar on coordinate `y` with a tick across it at each
/// iso-line level.
fn draw_colour_bar<DB, Y>(
    area: &DrawingArea<DB, Shift>,
    y: Y,
    scale: &ZScale,
    levels: &[f64],
) -> Drawn<DB>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    /// Number of bands the gradient is drawn with.
    const BANDS: usize = 128;
    let (lo, hi) = {
        let r = y.range();
        (r.start, r.end)
    };
    let mut bar = ChartBuilder::on(area)
        .margin_top(12)
        .margin_bottom(12 + 48)
        .margin_left(8)
        .set_label_area_size(LabelAreaPosition::Right, 90)
        .build_cartesian_2d(0f64..1f64, y)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(8)
        .label_style((FONT, 14))
        .y_label_formatter(&tick)
        .draw()?;
    if levels.is_empty() {
        // Constant surface: the whole bar in the middle colour.
        bar.draw_series(std::iter::once(Rectangle::new(
            [(0.0, lo), (1.0, hi)],
            viridis(0.5).filled(),
        )))?;
        return Ok(());
    }
    bar.draw_series((0..BANDS).map(|b| {
        let (t0, t1) = (b as f64 / BANDS as f64, (b + 1) as f64 / BANDS as f64);
        Rectangle::new(
            [(0.0, scale.z(t0)), (1.0, scale.z(t1))],
            viridis((t0 + t1) / 2.0).filled(),
        )
    }))?;
    bar.draw_series(levels.iter().map(|&t| {
        let z = scale.z(t);
        PathElement::new(vec![(0.0, z), (1.0, z)], BLACK.mix(0.6).stroke_width(1))
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_are_the_table_ends() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(254, 232, 37));
        assert_eq!(viridis(2.0), RGBColor(254, 232, 37));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(9.9999999e-5), "1e-4");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(-0.0), "0");
        assert_eq!(tick_label(123456.0), "1.235e5");
    }

    #[test]
    fn cell_edges_are_midpoints() {
        assert_eq!(cell_edges(&[0.0, 1.0, 3.0]), [0.0, 0.5, 2.0, 3.0]);
    }

    #[test]
    fn iso_line_through_a_ramp_is_straight() {
        // t = x on a 3 × 2 grid: the level 0.25 crosses x = 0.25 once per row of cells.
        let xs = [0.0, 0.5, 1.0];
        let ys = [0.0, 1.0];
        let t = [0.0, 0.5, 1.0, 0.0, 0.5, 1.0];
        let segs = iso_segments(&xs, &ys, &t, 0.25);
        assert_eq!(segs.len(), 1);
        for (x, _) in segs[0] {
            assert!((x - 0.25).abs() < 1e-12);
        }
    }

    #[test]
    fn saddle_gives_two_segments() {
        // High at (0, 0) and (1, 1), low at (1, 0) and (0, 1).
        let segs = iso_segments(&[0.0, 1.0], &[0.0, 1.0], &[1.0, 0.0, 0.0, 1.0], 0.5);
        assert_eq!(segs.len(), 2);
        // The centre (mean 0.5) counts as high, so the high corners join and
        // the segments cut off the low corners (1, 0) and (0, 1).
        let near = |p: (f64, f64), q: (f64, f64)| (p.0 - q.0).abs() + (p.1 - q.1).abs() < 1e-12;
        assert!(segs
            .iter()
            .any(|s| near(s[0], (0.5, 0.0)) && near(s[1], (1.0, 0.5))));
        assert!(segs
            .iter()
            .any(|s| near(s[0], (0.5, 1.0)) && near(s[1], (0.0, 0.5))));
    }

    #[test]
    fn scale_round_trips() {
        for scale in [
            ZScale::Linear { lo: -2.0, hi: 6.0 },
            ZScale::Log { lo: 1e-3, hi: 10.0 },
        ] {
            for z in [scale.z(0.0), scale.z(0.3), scale.z(1.0)] {
                assert!((scale.z(scale.t(z)) - z).abs() <= 1e-12 * z.abs().max(1.0));
            }
        }
    }
}
