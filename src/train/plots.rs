//! PNG charts: learning curves of a run and the confusion matrix of an evaluation
//! (plotters). Labels need a TrueType font: `ARCHC_FONT`, or DejaVu Sans where Debian
//! and most Linux distributions install it.

use super::EpochMetrics;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

fn font() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
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
            Err("no TrueType font for plot labels: set ARCHC_FONT=/path/to/font.ttf (e.g. Debian's fonts-dejavu-core)"
                .into())
        })
        .clone()
}

/// Draws into a temporary PNG and renames it into place.
fn atomic_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), String> {
    font()?;
    let temp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&temp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    }
    std::fs::rename(&temp, path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// One named line: its (epoch, value) points and colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

fn line_chart(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    series: &[Series],
) -> Result<(), String> {
    let epochs = series.iter().flat_map(|(_, p, _)| p.iter().map(|(x, _)| *x)).fold(1f64, f64::max);
    let (lo, hi) = series
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(_, y)| *y))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if lo.is_finite() { (lo.min(hi - 1e-6), hi) } else { (0.0, 1.0) };
    let margin = (hi - lo) * 0.05;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1f64..epochs.max(2.0), (lo - margin)..(hi + margin))
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("epoch").label_style(("sans-serif", 14)).draw().map_err(|e| e.to_string())?;
    for (name, points, color) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// `curves.png`: loss (train, validation) and accuracy (train, validation top-1) per epoch.
pub fn curves(path: &Path, history: &[EpochMetrics]) -> Result<(), String> {
    let pick = |f: fn(&EpochMetrics) -> f64| history.iter().map(|m| (m.epoch as f64, f(m))).collect::<Vec<_>>();
    atomic_png(path, (1200, 480), |root| {
        let (left, right) = root.split_horizontally(600);
        line_chart(
            &left,
            "loss",
            &[("train", pick(|m| m.train_loss), BLUE), ("validation", pick(|m| m.val_loss), RED)],
        )?;
        line_chart(
            &right,
            "accuracy",
            &[("train", pick(|m| m.train_acc), BLUE), ("validation top-1", pick(|m| m.val_top1), RED)],
        )
    })
}

/// The confusion matrix as a heat map, rows true classes, columns predictions.
pub fn confusion(path: &Path, classes: &[String], matrix: &[Vec<u64>]) -> Result<(), String> {
    let n = matrix.len().max(1);
    let cell = (560 / n as u32).clamp(8, 60);
    let side = cell * n as u32;
    atomic_png(path, (side + 220, side + 120), |root| {
        let root = root.margin(20, 20, 20, 20);
        root.draw(&Text::new("confusion matrix (rows: true, columns: predicted)", (0, -10), ("sans-serif", 16)))
            .map_err(|e| e.to_string())?;
        for (t, row) in matrix.iter().enumerate() {
            let total = row.iter().sum::<u64>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let shade = (255.0 * (1.0 - share)) as u8;
                let (x, y) = ((p as u32 * cell) as i32, (t as u32 * cell + 20) as i32);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32, y + cell as i32)],
                    RGBColor(shade, shade, 255).filled(),
                ))
                .map_err(|e| e.to_string())?;
            }
            let name = classes.get(t).cloned().unwrap_or_else(|| t.to_string());
            root.draw(&Text::new(
                name,
                (side as i32 + 8, (t as u32 * cell + 20 + cell / 3) as i32),
                ("sans-serif", 14),
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}
