//! `--plot out.svg`: achieved weight GB/s of the decode GEMV kernels (`gemv_i8`, 1 token)
//! against the bandwidth roofline lines measured in the same run. Two panels: cold (weights
//! from DRAM; DRAM lines and the 85% target) and hot (one matrix; L2 and L3 lines). One
//! column per kernel, one dot per shape, coloured by thread count; log scale. SVG backend
//! only (no system libraries).

use std::path::Path;

use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::receipt::KernelFigure;
use super::roofline::{Bandwidth, Roofline};

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

fn thread_color(threads: usize) -> RGBColor {
    match threads {
        1 => RGBColor(31, 119, 180),
        2 => RGBColor(214, 39, 40),
        _ => RGBColor(44, 160, 44),
    }
}

/// Draws the plot to `path` (SVG).
pub fn plot_svg(
    path: &Path,
    figs: &[KernelFigure],
    roof: &Roofline,
    title: &str,
) -> Result<(), String> {
    let root = SVGBackend::new(path, (1600, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(44);
    top.draw(&Text::new(
        title.to_string(),
        (20, 12),
        ("sans-serif", 20).into_font(),
    ))
    .map_err(err)?;
    let panels = body.split_evenly((1, 2));
    let mut dram: Vec<(String, Bandwidth)> = roof
        .dram_read_gbps
        .iter()
        .map(|b| (format!("DRAM read, {} thr", b.threads), *b))
        .collect();
    if let Some(one) = roof.dram_read_gbps.iter().find(|b| b.threads == 1) {
        dram.push((
            "target: 85% of DRAM, 1 thr".to_string(),
            Bandwidth {
                threads: 0,
                gbps: one.gbps * 0.85,
            },
        ));
    }
    let mut cache: Vec<(String, Bandwidth)> = Vec::new();
    for b in &roof.l2_read_gbps {
        cache.push((format!("L2 read, {} thr", b.threads), *b));
    }
    for b in &roof.l3_read_gbps {
        cache.push((format!("L3 read, {} thr", b.threads), *b));
    }
    panel(
        &panels[0],
        figs,
        "cold",
        "decode GEMV (gemv_i8, n=1), cold: weights streamed from DRAM",
        &dram,
    )?;
    panel(
        &panels[1],
        figs,
        "hot",
        "decode GEMV (gemv_i8, n=1), hot: one matrix, from L2/L3",
        &cache,
    )?;
    root.present().map_err(err)?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    figs: &[KernelFigure],
    regime: &str,
    caption: &str,
    lines: &[(String, Bandwidth)],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let figs: Vec<&KernelFigure> = figs
        .iter()
        .filter(|f| f.regime == regime && f.op == "gemv_i8" && f.weight_gbps > 0.0)
        .collect();
    let mut kernels: Vec<&str> = Vec::new();
    for f in &figs {
        if !kernels.contains(&f.kernel.as_str()) {
            kernels.push(&f.kernel);
        }
    }
    let n = kernels.len().max(1) as i32;
    let mut lo = f64::INFINITY;
    let mut hi = 0f64;
    for v in figs
        .iter()
        .map(|f| f.weight_gbps)
        .chain(lines.iter().map(|(_, b)| b.gbps))
    {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() || hi <= 0.0 {
        (lo, hi) = (0.1, 100.0);
    }
    // Room below the dots for the legend.
    let (lo, hi) = (lo / 12.0, hi * 1.5);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(110)
        .y_label_area_size(60)
        .build_cartesian_2d((0..(n - 1).max(0)).into_segmented(), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(n as usize + 1)
        // Kernel names are drawn below the axis by hand (the SVG backend centres rotated
        // mesh labels on their tick, half of them over the plot).
        .x_label_formatter(&|_| String::new())
        .y_desc("weight GB/s (log)")
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;

    let label_style = TextStyle::from(
        ("sans-serif", 13)
            .into_font()
            .transform(FontTransform::Rotate90),
    )
    .pos(Pos::new(HPos::Left, VPos::Center));
    chart
        .draw_series(kernels.iter().enumerate().map(|(i, k)| {
            EmptyElement::at((SegmentValue::CenterOf(i as i32), lo))
                + Text::new(k.replace(".gemv_i8.", " "), (0, 8), label_style.clone())
        }))
        .map_err(err)?;
    for (i, (label, b)) in lines.iter().enumerate() {
        let color = if b.threads == 0 {
            RGBColor(120, 120, 120)
        } else {
            thread_color(b.threads)
        };
        let style = if i >= lines.len() / 2 && regime == "hot" {
            color.mix(0.5).stroke_width(2)
        } else {
            color.stroke_width(2)
        };
        let y = b.gbps;
        chart
            .draw_series(LineSeries::new(
                vec![(SegmentValue::Exact(0), y), (SegmentValue::Last, y)],
                style,
            ))
            .map_err(err)?
            .label(format!("{label}: {y:.1} GB/s"))
            .legend(move |(x, yy)| PathElement::new(vec![(x, yy), (x + 20, yy)], style));
    }
    let mut threads: Vec<usize> = figs.iter().map(|f| f.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    for t in threads {
        let color = thread_color(t);
        chart
            .draw_series(figs.iter().filter(|f| f.threads == t).map(|f| {
                let i = kernels.iter().position(|k| *k == f.kernel).unwrap_or(0) as i32;
                Circle::new(
                    (SegmentValue::CenterOf(i), f.weight_gbps),
                    3,
                    color.filled(),
                )
            }))
            .map_err(err)?
            .label(format!("gemv_i8, {t} thread(s), one dot per shape"))
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    Ok(())
}
