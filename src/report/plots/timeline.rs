//! Plots over simulated time: divergence, and forward extremities (max and mean), each with
//! the fault windows shaded behind the data.
//!
//! Invariants: a sample's value holds until the next sample, so series are drawn as steps
//! (a spike lasting one sample interval stays visible); long timelines are thinned to at most
//! [`POINTS_MAX`] buckets per series, keeping each bucket's maximum for peak series, so
//! thinning never hides a divergence spike.

use super::faults::{self, LabelRequest, PlacedLabel};
use super::layout::{self, LegendEntry};
use super::{AreaError, Chart, DrawResult, Figure};
use crate::observe::record::{FaultWindow, RunOutput, Sample};
use crate::report::{font, units};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Buckets drawn per series at most; more would not show on 1200 pixels and would only swell
/// the SVG.
pub const POINTS_MAX: usize = 2000;

const DIVERGENCE_COLOR: RGBColor = RGBColor(20, 20, 20);
const EXTREMITIES_MAX_COLOR: RGBColor = RGBColor(214, 39, 40);
const EXTREMITIES_MEAN_COLOR: RGBColor = RGBColor(20, 20, 20);

/// How a bucket of samples becomes one point.
#[derive(Clone, Copy)]
enum Combine {
    Max,
    Mean,
}

struct Series {
    label: &'static str,
    color: RGBColor,
    /// (simulated seconds, value) at the start of each bucket.
    points: Vec<(f64, f64)>,
}

/// A step chart over simulated time with fault windows shaded.
pub struct TimePlot<'a> {
    title: String,
    subtitle: String,
    y_description: &'static str,
    series: Vec<Series>,
    faults: &'a [FaultWindow],
    x_max_s: f64,
}

/// Divergence over simulated time.
pub fn divergence(output: &RunOutput) -> TimePlot<'_> {
    let series = vec![Series {
        label: "divergence (distinct current states)",
        color: DIVERGENCE_COLOR,
        points: bucketed(&output.timeline, Combine::Max, |sample| {
            f64::from(sample.divergence)
        }),
    }];
    TimePlot::new(
        output,
        "Divergence over simulated time",
        "distinct current states (1 = converged)",
        series,
    )
}

/// Forward extremities, maximum and mean over servers, over simulated time.
pub fn extremities(output: &RunOutput) -> TimePlot<'_> {
    let series = vec![
        Series {
            label: "max over servers",
            color: EXTREMITIES_MAX_COLOR,
            points: bucketed(&output.timeline, Combine::Max, |sample| {
                f64::from(sample.forward_extremities_max)
            }),
        },
        Series {
            label: "mean over servers",
            color: EXTREMITIES_MEAN_COLOR,
            points: bucketed(&output.timeline, Combine::Mean, |sample| {
                sample.forward_extremities_mean
            }),
        },
    ];
    TimePlot::new(
        output,
        "Forward extremities over simulated time",
        "forward extremities per server (count)",
        series,
    )
}

impl<'a> TimePlot<'a> {
    fn new(
        output: &'a RunOutput,
        what: &str,
        y_description: &'static str,
        series: Vec<Series>,
    ) -> Self {
        let summary = &output.summary;
        let last_sample_ms = output.timeline.last().map_or(0, |sample| sample.t_ms);
        let x_max_ms = summary.duration_ms.max(last_sample_ms);
        let x_max_s = if x_max_ms == 0 {
            1.0
        } else {
            x_max_ms as f64 / 1000.0
        };
        let mut subtitle = format!(
            "{}, seed {} · {} servers · {} fabric · room version {} ({}) · {} simulated",
            summary.experiment,
            summary.seed,
            summary.servers,
            summary.fabric,
            summary.room_version,
            summary.algorithm,
            units::seconds(summary.duration_ms),
        );
        let bucket = bucket_size(output.timeline.len());
        if bucket > 1 {
            subtitle.push_str(&format!(" · one point per {bucket} samples"));
        }
        TimePlot {
            title: what.to_string(),
            subtitle,
            y_description,
            series,
            faults: &summary.faults,
            x_max_s,
        }
    }

    fn y_top(&self) -> f64 {
        let peak = self
            .series
            .iter()
            .flat_map(|series| series.points.iter().map(|&(_, value)| value))
            .filter(|value| value.is_finite())
            .fold(1.0_f64, f64::max);
        peak.ceil() + 1.0
    }

    fn visible_faults(&self) -> impl Iterator<Item = (usize, &FaultWindow, f64, f64)> {
        let x_max_s = self.x_max_s;
        self.faults
            .iter()
            .enumerate()
            .filter(move |(_, fault)| (fault.from_ms as f64 / 1000.0) <= x_max_s)
            .map(move |(position, fault)| {
                let from_s = fault.from_ms as f64 / 1000.0;
                let until_s = (fault.until_ms.max(fault.from_ms) as f64 / 1000.0).min(x_max_s);
                (position, fault, from_s, until_s)
            })
    }
}

impl Figure for TimePlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        layout::draw_header(root, &self.title, &self.subtitle)?;
        let colors = faults::kind_colors(self.faults);
        let labels = self.place_fault_labels(root)?;
        let legend = layout::Legend::layout(root, self.legend(&colors))?;
        let y_top = self.y_top();
        let mut chart = layout::build_chart(
            root,
            layout::chart_top_px(faults::rows_used(&labels)),
            legend.height_px(),
            0.0..self.x_max_s,
            0.0..y_top,
        )?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc(self.y_description)
            .axis_desc_style((font::FAMILY, layout::AXIS_FONT_PX))
            .label_style((font::FAMILY, layout::TICK_FONT_PX))
            .x_label_formatter(&|value| layout::tick_label(*value))
            .y_label_formatter(&|value| layout::tick_label(*value))
            .y_labels(layout::whole_number_ticks(y_top))
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(TRANSPARENT)
            .draw()?;
        self.draw_fault_windows(&mut chart, &colors, y_top)?;
        for series in &self.series {
            let style = series.color.stroke_width(2);
            if let [single] = series.points.as_slice() {
                chart.draw_series(std::iter::once(Circle::new(*single, 4, style.filled())))?;
            } else {
                chart.draw_series(LineSeries::new(steps(&series.points), style))?;
            }
        }
        if self.series.iter().all(|series| series.points.is_empty()) {
            let plot_px = chart.plotting_area().get_pixel_range();
            layout::draw_note(root, plot_px, "no samples recorded")?;
        }
        self.draw_fault_labels(root, &labels, &colors)?;
        legend.draw(root)
    }
}

impl TimePlot<'_> {
    /// Lays out the fault labels above the plot; done before the chart is built because their
    /// rows decide the chart's top margin.
    fn place_fault_labels<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<Vec<PlacedLabel>, AreaError<DB>> {
        let label_style = layout::text_style(layout::LABEL_FONT_PX, layout::INK);
        let (left_px, right_px) = layout::plot_x_range_px(root.dim_in_pixel().0);
        let mut requests = Vec::new();
        for (position, fault, from_s, _) in self.visible_faults() {
            let start_px =
                left_px + ((from_s / self.x_max_s) * f64::from(right_px - left_px)) as i32;
            let mut texts = Vec::new();
            for text in faults::label_texts(fault) {
                let (width_px, _) = root.estimate_text_size(&text, &label_style)?;
                texts.push((text, width_px as i32));
            }
            requests.push(LabelRequest {
                window: position,
                start_px,
                texts,
            });
        }
        Ok(faults::place_labels(requests, left_px, right_px))
    }

    fn draw_fault_windows<DB: DrawingBackend>(
        &self,
        chart: &mut Chart<'_, DB, RangedCoordf64, RangedCoordf64>,
        colors: &[(String, RGBColor)],
        y_top: f64,
    ) -> DrawResult<DB> {
        for (_, fault, from_s, until_s) in self.visible_faults() {
            let color = faults::window_color(fault, colors);
            if until_s > from_s {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(from_s, 0.0), (until_s, y_top)],
                    color.mix(0.18).filled(),
                )))?;
            }
            // The start edge marks instantaneous faults (zero width) as well.
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(from_s, 0.0), (from_s, y_top)],
                color.stroke_width(if until_s > from_s { 1 } else { 2 }),
            )))?;
        }
        Ok(())
    }

    fn draw_fault_labels<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        labels: &[PlacedLabel],
        colors: &[(String, RGBColor)],
    ) -> DrawResult<DB> {
        let band_top_px = layout::label_band_top_px();
        for label in labels {
            let fault = &self.faults[label.window];
            let color = if fault.took_effect {
                faults::window_color(fault, colors)
            } else {
                layout::ALERT
            };
            let y_px = band_top_px + label.row as i32 * layout::LABEL_ROW_PX as i32;
            root.draw(&Text::new(
                label.text.clone(),
                (label.x_px, y_px),
                layout::text_style(layout::LABEL_FONT_PX, color),
            ))?;
        }
        Ok(())
    }

    fn legend(&self, colors: &[(String, RGBColor)]) -> Vec<LegendEntry> {
        let mut entries: Vec<LegendEntry> = self
            .series
            .iter()
            .map(|series| LegendEntry::Line {
                label: series.label.to_string(),
                color: series.color,
            })
            .collect();
        for (kind, color) in colors {
            if self
                .faults
                .iter()
                .any(|fault| fault.took_effect && fault.kind == *kind)
            {
                entries.push(LegendEntry::Band {
                    label: kind.clone(),
                    color: *color,
                });
            }
        }
        if self.faults.iter().any(|fault| !fault.took_effect) {
            entries.push(LegendEntry::Band {
                label: "fault with no effect".into(),
                color: faults::NO_EFFECT_COLOR,
            });
        }
        entries
    }
}

/// Samples per bucket so that at most [`POINTS_MAX`] buckets remain.
fn bucket_size(samples: usize) -> usize {
    samples.div_ceil(POINTS_MAX).max(1)
}

/// One point per bucket of consecutive samples, at the bucket's first sample time.
fn bucketed(
    timeline: &[Sample],
    combine: Combine,
    value: impl Fn(&Sample) -> f64,
) -> Vec<(f64, f64)> {
    timeline
        .chunks(bucket_size(timeline.len()))
        .map(|bucket| {
            let values = bucket.iter().map(&value);
            let combined = match combine {
                Combine::Max => values.fold(f64::NEG_INFINITY, f64::max),
                Combine::Mean => values.sum::<f64>() / bucket.len() as f64,
            };
            (bucket[0].t_ms as f64 / 1000.0, combined)
        })
        .collect()
}

/// A staircase through `points`: each value holds until the next point's time.
fn steps(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut path = Vec::with_capacity(points.len() * 2);
    for pair in points.windows(2) {
        let ((t0, v0), (t1, _)) = (pair[0], pair[1]);
        path.push((t0, v0));
        path.push((t1, v0));
    }
    if let Some(&last) = points.last() {
        path.push(last);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, divergence: u32, mean: f64) -> Sample {
        Sample {
            t_ms,
            divergence,
            forward_extremities_mean: mean,
            ..Sample::default()
        }
    }

    #[test]
    fn steps_hold_each_value_until_the_next_time() {
        let path = steps(&[(0.0, 1.0), (1.0, 3.0), (2.0, 1.0)]);
        assert_eq!(
            path,
            vec![(0.0, 1.0), (1.0, 1.0), (1.0, 3.0), (2.0, 3.0), (2.0, 1.0)]
        );
        assert!(steps(&[]).is_empty());
    }

    #[test]
    fn thinning_keeps_a_one_sample_spike() {
        let mut timeline: Vec<Sample> = (0..POINTS_MAX as u64 * 3)
            .map(|index| sample(index * 10, 1, 1.0))
            .collect();
        timeline[4001].divergence = 7;
        let points = bucketed(&timeline, Combine::Max, |sample| {
            f64::from(sample.divergence)
        });
        assert_eq!(points.len(), POINTS_MAX);
        assert_eq!(points[1333], (39.99, 7.0));
        assert_eq!(points.iter().filter(|point| point.1 == 7.0).count(), 1);
    }

    #[test]
    fn mean_buckets_average() {
        let timeline: Vec<Sample> = (0..POINTS_MAX as u64 * 2)
            .map(|index| sample(index, 1, (index % 2) as f64))
            .collect();
        let points = bucketed(&timeline, Combine::Mean, |sample| {
            sample.forward_extremities_mean
        });
        assert!(points.iter().all(|point| point.1 == 0.5));
    }

    #[test]
    fn short_timelines_are_not_thinned() {
        assert_eq!(bucket_size(0), 1);
        assert_eq!(bucket_size(POINTS_MAX), 1);
        assert_eq!(bucket_size(POINTS_MAX + 1), 2);
    }
}
