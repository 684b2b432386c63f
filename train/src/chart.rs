//! `training.png`: the per-evaluation curves and the confusion matrix.
//! Plotters draws it in pure Rust; text needs a TrueType font, read at run
//! time from `BERTSTREAM_FONT` or the usual DejaVu/Liberation paths.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::metrics::Metrics;
use crate::summary::{EpochRecord, FitSummary};

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a font as `sans-serif` once per process.
fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let from_env = std::env::var("BERTSTREAM_FONT").ok();
        let path = from_env.iter().map(String::as_str).chain(FONT_CANDIDATES).find(|p| Path::new(p).is_file());
        let path = path.ok_or("no TrueType font found (set BERTSTREAM_FONT to a .ttf file)")?;
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| format!("{path}: not a usable font"))
    })
    .clone()
}

pub fn draw(path: &Path, summary: &FitSummary) -> Result<(), String> {
    ensure_font()?;
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(720);
    curves(&left, summary).map_err(|e| e.to_string())?;
    let (title, metrics) = match &summary.test {
        Some(test) => ("confusion, test", test),
        None => ("confusion, dev", &summary.dev),
    };
    confusion(&right, title, metrics).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;
/// A curve: its legend, colour and the value it plots from each record.
type Series = (&'static str, RGBColor, fn(&EpochRecord) -> f64);

fn curves(area: &Area<'_>, s: &FitSummary) -> DrawResult {
    let max_epoch = s.history.iter().map(|r| r.epoch).fold(0.0, f64::max).max(1.0);
    let max_loss =
        s.history.iter().flat_map(|r| [r.train_loss, r.dev_loss]).filter(|v| v.is_finite()).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("training (dev evaluated each epoch)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..max_epoch, 0.0..max_loss * 1.05)?;
    chart.configure_mesh().x_desc("epoch").y_desc("loss / score").label_style(("sans-serif", 13)).draw()?;
    let series: [Series; 4] = [
        ("train loss", RED, |r| r.train_loss),
        ("dev loss", MAGENTA, |r| r.dev_loss),
        ("dev accuracy", BLUE, |r| r.dev_accuracy),
        ("dev macro-F1", GREEN, |r| r.dev_macro_f1),
    ];
    for (name, color, value) in series {
        let points: Vec<(f64, f64)> =
            s.history.iter().map(|r| (r.epoch, value(r))).filter(|p| p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

fn confusion(area: &Area<'_>, title: &str, m: &Metrics) -> DrawResult {
    let k = m.labels.len().max(1) as i32;
    let (w, h) = area.dim_in_pixel();
    let top = 70i32;
    let left = 70i32;
    let cell = ((w as i32 - left - 20).min(h as i32 - top - 20) / k).max(8);
    area.draw(&Text::new(
        format!("{title}: acc {:.3}, macro-F1 {:.3}", m.accuracy, m.macro_f1),
        (10, 10),
        ("sans-serif", 18).into_font(),
    ))?;
    area.draw(&Text::new("predicted →, true ↓", (left, top - 40), ("sans-serif", 14).into_font()))?;
    let max = m.confusion.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    for (i, row) in m.confusion.iter().enumerate() {
        let y = top + i as i32 * cell;
        area.draw(&Text::new(m.labels[i].clone(), (10, y + cell / 2 - 8), ("sans-serif", 15).into_font()))?;
        for (j, &n) in row.iter().enumerate() {
            let x = left + j as i32 * cell;
            let shade = n as f64 / max;
            let fill = RGBColor(255 - (200.0 * shade) as u8, 255 - (120.0 * shade) as u8, 255);
            area.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], fill.filled()))?;
            area.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], BLACK))?;
            area.draw(&Text::new(
                n.to_string(),
                (x + cell / 2 - 12, y + cell / 2 - 8),
                ("sans-serif", 15).into_font(),
            ))?;
        }
    }
    for (j, label) in m.labels.iter().enumerate() {
        area.draw(&Text::new(
            label.clone(),
            (left + j as i32 * cell + cell / 2 - 8, top - 20),
            ("sans-serif", 15).into_font(),
        ))?;
    }
    Ok(())
}
