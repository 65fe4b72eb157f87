//! The PNGs awd draws: a run's curves (training and validation loss against steps, from its
//! metrics CSV), a confusion matrix, and a learning-rate sweep.

use std::path::Path;
use std::sync::Once;

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{AwdError, Result};

/// (step, train loss, validation loss) of one metrics row.
type Point = (f64, Option<f64>, Option<f64>);

/// The rows of a metrics CSV.
fn read_rows(csv: &Path) -> Result<Vec<Point>> {
    let text = std::fs::read_to_string(csv).map_err(|e| AwdError::io(csv, e))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let num = |i: usize| cells.get(i).and_then(|c| c.parse::<f64>().ok());
            Some((num(0)?, num(2), num(3)))
        })
        .collect())
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font ships inside the binary, so plots need nothing from the system.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draws into `png` (`size` pixels) through a temporary file renamed into place, so that no
/// reader sees half a plot; `draw` paints on a white area.
fn draw_png(
    png: &Path,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<BitMapBackend, Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<()> {
    register_font();
    let tmp = png.with_extension("tmp.png");
    let paint = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    };
    paint().map_err(|e| AwdError::Config(format!("plotting {}: {e}", png.display())))?;
    std::fs::rename(&tmp, png).map_err(|e| AwdError::io(png, e))
}

/// The series' names in a box at the upper right.
fn draw_legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// Draws `csv`'s curves into `png`.
pub fn plot(csv: &Path, png: &Path) -> Result<()> {
    let rows = read_rows(csv)?;
    let train: Vec<(f64, f64)> = rows.iter().filter_map(|r| Some((r.0, r.1?))).collect();
    let valid: Vec<(f64, f64)> = rows.iter().filter_map(|r| Some((r.0, r.2?))).collect();
    let all: Vec<f64> = train
        .iter()
        .chain(&valid)
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    let max_step = rows.iter().map(|r| r.0).fold(1.0, f64::max);
    let lo = all.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(1e-3);
    draw_png(png, (900, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("awd: loss (nats per token)", ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_step, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .label_style(("sans-serif", 14))
            .draw()?;
        chart
            .draw_series(LineSeries::new(train.iter().cloned(), BLUE.stroke_width(2)))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(valid.iter().cloned(), RED.stroke_width(2)))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart.draw_series(valid.iter().map(|&p| Circle::new(p, 4, RED.filled())))?;
        draw_legend(&mut chart)
    })
}

/// Draws a confusion matrix (`counts[true][predicted]`) into `png`: a cell per pair, shaded by
/// the share of its true class, with its count.
pub fn confusion(counts: &[Vec<usize>], classes: &[String], png: &Path) -> Result<()> {
    let n = classes.len();
    let cell = 80i32;
    let margin = 160i32;
    let size = (margin + cell * n as i32 + 20) as u32;
    draw_png(png, (size, size), |root| {
        let font = ("sans-serif", 14).into_font();
        root.draw(&Text::new("true \\ predicted", (8, 8), font.clone()))?;
        for (t, row) in counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            let y = margin + cell * t as i32;
            root.draw(&Text::new(
                classes[t].clone(),
                (8, y + cell / 2 - 7),
                font.clone(),
            ))?;
            for (p, &c) in row.iter().enumerate() {
                let x = margin + cell * p as i32;
                let shade = 1.0 - 0.7 * (c as f64 / total);
                let color = RGBColor((255.0 * shade) as u8, (255.0 * shade) as u8, 255);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    color.filled(),
                ))?;
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], BLACK))?;
                root.draw(&Text::new(
                    c.to_string(),
                    (x + 8, y + cell / 2 - 7),
                    font.clone(),
                ))?;
            }
        }
        for (p, name) in classes.iter().enumerate() {
            let x = margin + cell * p as i32;
            root.draw(&Text::new(name.clone(), (x + 4, margin - 24), font.clone()))?;
        }
        Ok(())
    })
}

/// Draws a learning-rate sweep (loss against rate, log scale, without its last 5 points as
/// fastai's `plot_lr_find`) into `png`, each suggestion's point marked with its label.
pub fn lr_find(
    lrs: &[f64],
    losses: &[f64],
    marks: &[(String, (f64, f64))],
    png: &Path,
) -> Result<()> {
    let keep = lrs.len().saturating_sub(5).max(lrs.len().min(2));
    let points: Vec<(f64, f64)> = lrs[..keep]
        .iter()
        .zip(losses)
        .filter(|(l, v)| **l > 0.0 && v.is_finite())
        .map(|(&l, &v)| (l, v))
        .collect();
    if points.len() < 2 {
        return Err(AwdError::Config(format!(
            "the sweep recorded {} point(s): too few to plot",
            points.len()
        )));
    }
    let (x0, x1) = (points[0].0, points[points.len() - 1].0);
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let colors = [RED, GREEN, MAGENTA, CYAN];
    draw_png(png, (900, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "awd lr-find: smoothed loss by learning rate",
                ("sans-serif", 24),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0..x1).log_scale(), (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("learning rate")
            .y_desc("loss")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .label_style(("sans-serif", 14))
            .draw()?;
        chart.draw_series(LineSeries::new(
            points.iter().cloned(),
            BLUE.stroke_width(2),
        ))?;
        for ((name, (lr, loss)), color) in marks.iter().zip(colors) {
            let at = (lr.clamp(x0, x1), *loss);
            chart
                .draw_series([Circle::new(at, 6, color.filled())])?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        draw_legend(&mut chart)
    })
}
