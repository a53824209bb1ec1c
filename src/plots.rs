//! PNG charts (plotters): line and scatter charts (a run's learning curves, `archc
//! analyze` and `archc compare`), the confusion matrix of an evaluation, bar and heat
//! grids. A leaf: the data come in as plain numbers. Labels need a TrueType font:
//! `ARCHC_FONT`, or DejaVu Sans where Debian and most Linux distributions install it.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
pub use plotters::style::{BLUE, RED};
use std::path::Path;
use std::sync::OnceLock;

/// Why a picture was not drawn: plotters' words, or ours. A picture is never worth a
/// stopped job, so this becomes a warning.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawError(pub String);

impl DrawError {
    fn new(error: impl std::fmt::Display) -> DrawError {
        DrawError(error.to_string())
    }
}

impl std::fmt::Display for DrawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

fn font() -> Result<(), DrawError> {
    static LOADED: OnceLock<Result<(), DrawError>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let candidates: Vec<String> =
                std::env::var("ARCHC_FONT").into_iter().chain(FONT_PATHS.iter().map(|s| s.to_string())).collect();
            for path in &candidates {
                if let Ok(bytes) = std::fs::read(path) {
                    // Fonts are registered for the life of the process.
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                        return Ok(());
                    }
                }
            }
            Err(DrawError(
                "no TrueType font for plot labels: set ARCHC_FONT=/path/to/font.ttf (e.g. Debian's fonts-dejavu-core)"
                    .into(),
            ))
        })
        .clone()
}

/// Draws into memory, writes the PNG under a temporary name and renames it into place.
/// The file is written here rather than by plotters, so that a failed write is worded
/// with the system's words (plotters' error is its debug text).
pub fn atomic_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), DrawError>,
) -> Result<(), DrawError> {
    font()?;
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(DrawError::new)?;
        draw(&root)?;
        root.present().map_err(DrawError::new)?;
    }
    let unwritable = |reason: String| DrawError(format!("cannot write `{}`: {reason}", path.display()));
    let image = image::RgbImage::from_raw(size.0, size.1, pixels)
        .ok_or_else(|| unwritable("the picture's buffer has the wrong size".into()))?;
    let temp = path.with_extension("tmp.png");
    let written = image.save_with_format(&temp, image::ImageFormat::Png).map_err(|e| match e {
        image::ImageError::IoError(io) => unwritable(io.to_string()),
        other => unwritable(other.to_string()),
    });
    let result = written.and_then(|()| std::fs::rename(&temp, path).map_err(|e| unwritable(e.to_string())));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Distinct colours for the lines of one chart, reused in turn past the tenth.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One named line: its (x, y) points and colour.
pub type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// Axis descriptions of a chart.
pub struct Axes<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// The (low, high) of some values with 5% margin; (0, 1) when there are none.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = if hi - lo < 1e-9 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let margin = (hi - lo) * 0.05;
    (lo - margin, hi + margin)
}

pub fn line_chart(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    axes: &Axes,
    series: &[Series],
) -> Result<(), DrawError> {
    chart(area, axes, series, true)
}

fn chart(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    axes: &Axes,
    series: &[Series],
    lines: bool,
) -> Result<(), DrawError> {
    let points = || series.iter().flat_map(|(_, p, _)| p.iter().copied());
    let (x_lo, x_hi) = span(points().map(|(x, _)| x));
    let (y_lo, y_hi) = span(points().map(|(_, y)| y));
    let mut chart = ChartBuilder::on(area)
        .caption(axes.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(DrawError::new)?;
    // Depths and epochs are whole numbers: label them so.
    let whole = points().all(|(x, _)| x.fract() == 0.0);
    // Ticks between whole numbers (1.5 epochs) get no label rather than a rounded one.
    let x_label = |x: &f64| match whole {
        true if (x - x.round()).abs() < 1e-9 => format!("{x:.0}"),
        true => String::new(),
        // Tick positions are sums of floats (0.6000000000000001): three decimals at most.
        false => {
            let text = format!("{x:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    chart
        .configure_mesh()
        .x_label_formatter(&x_label)
        .x_desc(axes.x)
        .y_desc(axes.y)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(DrawError::new)?;
    for (name, points, color) in series {
        let color = *color;
        let finite: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        if lines {
            chart.draw_series(LineSeries::new(finite.clone(), color.stroke_width(2))).map_err(DrawError::new)?;
        }
        chart
            .draw_series(finite.iter().map(|&p| Circle::new(p, if lines { 2 } else { 5 }, color.filled())))
            .map_err(DrawError::new)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(DrawError::new)
}

/// Two charts side by side in one PNG (a value and its error, say).
pub fn side_by_side(
    path: &Path,
    size: (u32, u32),
    left: (&Axes, &[Series]),
    right: (&Axes, &[Series]),
) -> Result<(), DrawError> {
    atomic_png(path, size, |root| {
        let (a, b) = root.split_horizontally(size.0 / 2);
        chart(&a, left.0, left.1, true)?;
        chart(&b, right.0, right.1, true)
    })
}

/// One chart alone in a PNG of the given size.
pub fn single(path: &Path, size: (u32, u32), axes: &Axes, series: &[Series], lines: bool) -> Result<(), DrawError> {
    atomic_png(path, size, |root| chart(root, axes, series, lines))
}

/// The confusion matrix as a heat map, rows true classes, columns predictions.
pub fn confusion(path: &Path, classes: &[String], matrix: &[Vec<u64>]) -> Result<(), DrawError> {
    let n = matrix.len().max(1);
    let cell = (560 / n as u32).clamp(8, 60);
    let side = cell * n as u32;
    let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
    // Room for the longest class name beside the rows and under the columns.
    let longest = (0..n).map(|i| name(i).chars().count()).max().unwrap_or(1) as u32;
    let label = (longest * 8 + 16).clamp(40, 220);
    let (left, top) = (label as i32, 50);
    // Counts are written in cells large enough to hold them.
    let count_size = (cell as f64 / 3.2).clamp(7.0, 14.0);
    atomic_png(path, (label + side + 60, side + label + 90), |root| {
        let root = root.margin(20, 20, 20, 20);
        let title = "confusion matrix: rows are the true class, columns the predicted one";
        root.draw(&Text::new(title, (0, 0), ("sans-serif", 16))).map_err(DrawError::new)?;
        for (t, row) in matrix.iter().enumerate() {
            let total = row.iter().sum::<u64>().max(1) as f64;
            let y = top + (t as u32 * cell) as i32;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let shade = (255.0 * (1.0 - share)) as u8;
                let x = left + (p as u32 * cell) as i32;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32, y + cell as i32)],
                    RGBColor(shade, shade, 255).filled(),
                ))
                .map_err(DrawError::new)?;
                if cell >= 18 {
                    let ink = if share > 0.55 { WHITE } else { BLACK };
                    let style = TextStyle::from(("sans-serif", count_size).into_font())
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    let centre = (x + cell as i32 / 2, y + cell as i32 / 2);
                    root.draw(&Text::new(count.to_string(), centre, style)).map_err(DrawError::new)?;
                }
            }
            let style = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(name(t), (left - 6, y + cell as i32 / 2), style)).map_err(DrawError::new)?;
        }
        // Column names read downwards under their column.
        for p in 0..n {
            let x = left + (p as u32 * cell) as i32 + cell as i32 / 2;
            let style = TextStyle::from(("sans-serif", 13).into_font().transform(FontTransform::Rotate90))
                .pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(name(p), (x, top + side as i32 + 6), style)).map_err(DrawError::new)?;
        }
        let captions =
            [("true class", (0, top - 18)), ("predicted class", (left, top + side as i32 + label as i32 + 6))];
        for (caption, at) in captions {
            root.draw(&Text::new(caption, at, ("sans-serif", 13))).map_err(DrawError::new)?;
        }
        Ok(())
    })
}

/// A small multiple: panels laid out `columns` to a row, each `cell` pixels, under a
/// title; `draw` fills panel `i`.
fn panel_grid(
    path: &Path,
    title: &str,
    count: usize,
    columns: usize,
    cell: (u32, u32),
    mut draw: impl FnMut(usize, &DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), DrawError>,
) -> Result<(), DrawError> {
    let columns = columns.clamp(1, count.max(1));
    let rows = count.div_ceil(columns).max(1);
    // Wide enough for the title even with one panel.
    let size = ((cell.0 * columns as u32).max(660), cell.1 * rows as u32 + 40);
    atomic_png(path, size, |root| {
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(title.to_string(), (12, 10), ("sans-serif", 18))).map_err(DrawError::new)?;
        for (i, area) in body.split_evenly((rows, columns)).iter().enumerate().take(count) {
            draw(i, area)?;
        }
        Ok(())
    })
}

/// One bar chart of weights in [0, 1] per panel (SE and CBAM channel gates).
pub fn bar_grid(path: &Path, title: &str, panels: &[(String, Vec<f32>)]) -> Result<(), DrawError> {
    panel_grid(path, title, panels.len(), 4, (360, 220), |i, area| {
        let (name, values) = &panels[i];
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{name} (by channel)"), ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(34)
            .build_cartesian_2d(0f64..values.len().max(1) as f64, 0f64..1f64)
            .map_err(DrawError::new)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|c| if c.fract() == 0.0 { format!("{c:.0}") } else { String::new() })
            .label_style(("sans-serif", 11))
            .y_labels(3)
            .draw()
            .map_err(DrawError::new)?;
        let color = PALETTE[0];
        chart
            .draw_series(values.iter().enumerate().map(|(c, &v)| {
                Rectangle::new([(c as f64, 0.0), (c as f64 + 0.85, v.clamp(0.0, 1.0) as f64)], color.filled())
            }))
            .map_err(DrawError::new)?;
        Ok(())
    })
}

/// Blue (0) through cyan, yellow, to red (1).
fn heat(t: f32) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let ramp = |a: f32, b: f32| (((t - a) / (b - a)).clamp(0.0, 1.0) * 255.0) as u8;
    RGBColor(ramp(0.35, 0.7), if t < 0.7 { ramp(0.0, 0.35) } else { 255 - ramp(0.7, 1.0) }, 255 - ramp(0.35, 0.7))
}

/// An image as RGB rows of the model's input size, for overlays.
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<[u8; 3]>,
}

/// A map over the image, blended half and half with it, per panel. `maps` are
/// `(name, width, height, values)`; with `stretch` each map is scaled to its own
/// minimum and maximum (attention weights are small), else read as [0, 1].
pub fn heat_grid(
    path: &Path,
    title: &str,
    picture: &Picture,
    maps: &[(String, usize, usize, Vec<f32>)],
    stretch: bool,
) -> Result<(), DrawError> {
    if picture.width == 0 || picture.height == 0 || picture.rgb.len() != picture.width * picture.height {
        return Err(DrawError(format!("cannot draw `{}`: the picture is empty", path.display())));
    }
    if let Some((name, ..)) = maps.iter().find(|(_, w, h, v)| *w == 0 || *h == 0 || v.len() != w * h) {
        return Err(DrawError(format!("cannot draw `{}`: the map of {name} does not match its size", path.display())));
    }
    let side = 200u32;
    panel_grid(path, title, maps.len(), 4, (side + 20, side + 44), |i, area| {
        let (name, mw, mh, values) = &maps[i];
        area.draw(&Text::new(name.clone(), (10, 6), ("sans-serif", 14))).map_err(DrawError::new)?;
        let (lo, hi) = if stretch {
            values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
        } else {
            (0.0, 1.0)
        };
        let range = if hi > lo { hi - lo } else { 1.0 };
        for y in 0..side {
            for x in 0..side {
                // Nearest neighbour in the picture and in the map.
                let px = (x as usize * picture.width / side as usize).min(picture.width - 1);
                let py = (y as usize * picture.height / side as usize).min(picture.height - 1);
                let mx = (x as usize * mw / side as usize).min(mw - 1);
                let my = (y as usize * mh / side as usize).min(mh - 1);
                let base = picture.rgb[py * picture.width + px];
                let hot = heat((values[my * mw + mx] - lo) / range);
                let mix = |a: u8, b: u8| ((a as u16 + b as u16) / 2) as u8;
                let color = RGBColor(mix(base[0], hot.0), mix(base[1], hot.1), mix(base[2], hot.2));
                area.draw_pixel((10 + x as i32, 28 + y as i32), &color).map_err(DrawError::new)?;
            }
        }
        Ok(())
    })
}
