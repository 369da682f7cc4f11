//! The plots of a results directory, each written as SVG and PNG: divergence and forward
//! extremities over simulated time with fault windows shaded, and the delivery-latency CDF.
//!
//! Invariants: text is drawn only with the font shipped in the binary (see `font`), so
//! rendering needs no system fonts and no display; a plot is a function of the run output
//! alone, so equal runs give byte-identical SVG and PNG files; missing data (no samples, no
//! deliveries) gives a plot with empty axes and a note saying so, never a panic or an error.

mod cdf;
mod faults;
mod layout;
mod spread;
mod timeline;

pub use cdf::percentile_nearest_rank;
pub use spread::SpreadPlot;

use crate::observe::record::RunOutput;
use crate::report::files::{with_path, write_file};
use crate::report::font;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::io;
use std::path::Path;

pub const DIVERGENCE_STEM: &str = "divergence";
pub const EXTREMITIES_STEM: &str = "extremities";
pub const LATENCY_CDF_STEM: &str = "latency-cdf";

/// Width and height of every plot in pixels.
pub const SIZE_PX: (u32, u32) = (1200, 640);

/// The error of drawing on a `DB` backend.
type AreaError<DB> = DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>;
type DrawResult<DB> = Result<(), AreaError<DB>>;
/// A chart over `X` and `Y` coordinates on a `DB` backend.
type Chart<'a, DB, X, Y> = ChartContext<'a, DB, Cartesian2d<X, Y>>;

/// A picture that can be drawn on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Writes the three plots of `output`, each as `<stem>.svg` and `<stem>.png`, into `dir`.
pub fn write_plots(dir: &Path, output: &RunOutput) -> io::Result<()> {
    write_figure(dir, DIVERGENCE_STEM, &timeline::divergence(output))?;
    write_figure(dir, EXTREMITIES_STEM, &timeline::extremities(output))?;
    write_figure(dir, LATENCY_CDF_STEM, &cdf::LatencyCdf::new(output))
}

/// Writes a sweep plot as `<stem>.svg` into `dir`.
pub fn write_spread_svg(dir: &Path, stem: &str, plot: &SpreadPlot) -> io::Result<()> {
    let name = format!("{stem}.svg");
    let svg = render_svg(plot).map_err(|error| with_path(&dir.join(&name), error))?;
    write_file(dir, &name, svg.as_bytes())
}

fn write_figure(dir: &Path, stem: &str, figure: &impl Figure) -> io::Result<()> {
    let svg_name = format!("{stem}.svg");
    let svg = render_svg(figure).map_err(|error| with_path(&dir.join(&svg_name), error))?;
    write_file(dir, &svg_name, svg.as_bytes())?;
    let png_path = dir.join(format!("{stem}.png"));
    render_png(figure, &png_path).map_err(|error| with_path(&png_path, error))
}

fn render_svg(figure: &impl Figure) -> io::Result<String> {
    font::ensure_registered()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE_PX).into_drawing_area();
        figure.draw(&root).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn render_png(figure: &impl Figure, path: &Path) -> io::Result<()> {
    font::ensure_registered()?;
    let root = BitMapBackend::new(path, SIZE_PX).into_drawing_area();
    figure.draw(&root).map_err(plot_error)?;
    root.present().map_err(plot_error)
}

fn plot_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("drawing the plot failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::record::{FaultWindow, Perf, RunSummary, Sample};
    use std::collections::BTreeMap;

    fn output(samples: usize, latencies: Vec<u64>) -> RunOutput {
        RunOutput {
            summary: RunSummary {
                experiment: "plot-test".into(),
                seed: 1,
                code_version: "test".into(),
                room_version: "12".into(),
                algorithm: "v2.1".into(),
                fabric: "fast".into(),
                servers: 3,
                duration_ms: 10_000,
                metrics: BTreeMap::new(),
                faults: vec![FaultWindow {
                    index: 0,
                    kind: "partition".into(),
                    description: "a | b".into(),
                    from_ms: 2_000,
                    until_ms: 5_000,
                    effect_count: 3,
                    took_effect: true,
                }],
                expectations: Vec::new(),
                passed: true,
                witness: None,
                trace_digest: String::new(),
                replay: String::new(),
            },
            timeline: (0..samples)
                .map(|index| Sample {
                    t_ms: index as u64 * 100,
                    divergence: 1 + u32::from((20..50).contains(&index)),
                    forward_extremities_max: 1,
                    forward_extremities_mean: 1.0,
                    ..Sample::default()
                })
                .collect(),
            delivery_latencies_ms: latencies,
            perf: Perf::default(),
            trace: None,
        }
    }

    #[test]
    fn svg_is_deterministic_and_names_the_fault() {
        let output = output(100, vec![5, 10, 20]);
        let first = render_svg(&timeline::divergence(&output)).unwrap();
        let second = render_svg(&timeline::divergence(&output)).unwrap();
        assert_eq!(first, second);
        assert!(first.contains("#0 partition"), "fault label missing");
        assert!(first.contains("simulated time (s)"));
    }

    #[test]
    fn empty_data_renders_with_a_note() {
        let output = output(0, Vec::new());
        let divergence = render_svg(&timeline::divergence(&output)).unwrap();
        assert!(divergence.contains("no samples recorded"));
        let cdf = render_svg(&cdf::LatencyCdf::new(&output)).unwrap();
        assert!(cdf.contains("no deliveries recorded"));
    }
}
