//! The cumulative distribution of delivery latencies, with p50, p95 and p99 marked.
//!
//! Invariants: percentiles are nearest-rank (an observed latency, never an interpolation), the
//! same definition the subtitle prints; the curve is a staircase through at most
//! [`CDF_POINTS_MAX`] ranks, so a run with millions of deliveries draws as fast as a small
//! one; the x axis turns logarithmic when the latencies span two orders of magnitude, so the
//! bulk of deliveries stays readable beside the tail a partition leaves.

use super::layout;
use super::{DrawResult, Figure};
use crate::observe::record::RunOutput;
use crate::report::font;
use crate::report::units;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::borrow::Cow;

/// Ranks drawn at most.
pub const CDF_POINTS_MAX: usize = 2000;

/// Span (largest over smallest positive latency) from which the x axis is logarithmic.
const LOG_SCALE_SPAN: u64 = 100;

const CURVE_COLOR: RGBColor = RGBColor(20, 20, 20);

/// The marked percentiles: per mille, name, colour.
const MARKS: [(u64, &str, RGBColor); 3] = [
    (500, "p50", RGBColor(31, 119, 180)),
    (950, "p95", RGBColor(255, 127, 14)),
    (990, "p99", RGBColor(214, 39, 40)),
];

pub use crate::observe::record::percentile_nearest_rank;

pub struct LatencyCdf<'a> {
    title: String,
    subtitle: String,
    latencies_ms: Cow<'a, [u64]>,
}

impl<'a> LatencyCdf<'a> {
    pub fn new(output: &'a RunOutput) -> Self {
        let given = output.delivery_latencies_ms.as_slice();
        // The record promises ascending order; a caller that broke it still gets a true plot.
        let latencies_ms: Cow<'a, [u64]> = if given.is_sorted() {
            Cow::Borrowed(given)
        } else {
            let mut sorted = given.to_vec();
            sorted.sort_unstable();
            Cow::Owned(sorted)
        };
        let summary = &output.summary;
        let subtitle = match latencies_ms.last() {
            Some(&max) => format!(
                "{}, seed {} · {} deliveries · max {} ms · percentiles by nearest rank",
                summary.experiment,
                summary.seed,
                units::grouped(latencies_ms.len() as u64),
                units::grouped(max),
            ),
            None => format!(
                "{}, seed {} · 0 deliveries",
                summary.experiment, summary.seed
            ),
        };
        LatencyCdf {
            title: "Delivery latency of honest events to honest servers (CDF)".into(),
            subtitle,
            latencies_ms,
        }
    }

    fn log_scale(&self) -> Option<(f64, f64)> {
        let (&first, &last) = (self.latencies_ms.first()?, self.latencies_ms.last()?);
        let floor = first.max(1);
        (last / floor >= LOG_SCALE_SPAN).then_some((floor as f64 * 0.8, last as f64 * 1.25))
    }

    /// (latency, fraction delivered within it) along the staircase.
    fn staircase(&self, floor_ms: f64) -> Vec<(f64, f64)> {
        let sorted = &self.latencies_ms;
        let count = sorted.len();
        let Some(&first) = sorted.first() else {
            return Vec::new();
        };
        let steps = count.min(CDF_POINTS_MAX);
        let mut path = Vec::with_capacity(2 * steps + 1);
        let mut fraction = 0.0;
        path.push(((first as f64).max(floor_ms), fraction));
        for step in 1..=steps {
            let rank = (step * count).div_ceil(steps);
            let latency = (sorted[rank - 1] as f64).max(floor_ms);
            path.push((latency, fraction));
            fraction = rank as f64 / count as f64;
            path.push((latency, fraction));
        }
        path
    }

    fn draw_on<DB, X>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x_range: X,
        x_description: &str,
        floor_ms: f64,
    ) -> DrawResult<DB>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let entries: Vec<layout::LegendEntry> = MARKS
            .iter()
            .filter_map(|&(per_mille, name, color)| {
                let value = percentile_nearest_rank(&self.latencies_ms, per_mille)?;
                Some(layout::LegendEntry::Line {
                    label: format!("{name} = {} ms", units::grouped(value)),
                    color,
                })
            })
            .collect();
        let legend = layout::Legend::layout(root, entries)?;
        let mut chart = layout::build_chart(
            root,
            layout::chart_top_px(0),
            legend.height_px(),
            x_range,
            0.0..1.0,
        )?;
        chart
            .configure_mesh()
            .x_desc(x_description)
            .y_desc("fraction of deliveries within latency")
            .axis_desc_style((font::FAMILY, layout::AXIS_FONT_PX))
            .label_style((font::FAMILY, layout::TICK_FONT_PX))
            .x_label_formatter(&|value| layout::tick_label(*value))
            .y_label_formatter(&|value| layout::tick_label(*value))
            .y_labels(11)
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(TRANSPARENT)
            .draw()?;
        if self.latencies_ms.is_empty() {
            return layout::draw_note(
                root,
                chart.plotting_area().get_pixel_range(),
                "no deliveries recorded",
            );
        }
        chart.draw_series(LineSeries::new(
            self.staircase(floor_ms),
            CURVE_COLOR.stroke_width(2),
        ))?;
        for (per_mille, name, color) in MARKS {
            let Some(value) = percentile_nearest_rank(&self.latencies_ms, per_mille) else {
                continue;
            };
            let point = ((value as f64).max(floor_ms), per_mille as f64 / 1000.0);
            chart.draw_series(DashedLineSeries::new(
                [(point.0, 0.0), point],
                6,
                4,
                color.stroke_width(2),
            ))?;
            chart.draw_series(std::iter::once(Circle::new(point, 5, color.filled())))?;
            // Below and right of its point: the curve there is higher, so the tag sits in
            // empty space, and the tags of p95 and p99 do not collide.
            let (x_px, y_px) = chart.backend_coord(&point);
            root.draw(&Text::new(
                name.to_string(),
                (x_px + 8, y_px + 4),
                layout::text_style(layout::LABEL_FONT_PX, color)
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            ))?;
        }
        legend.draw(root)
    }
}

impl Figure for LatencyCdf<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        layout::draw_header(root, &self.title, &self.subtitle)?;
        match self.log_scale() {
            Some((low, high)) => self.draw_on(
                root,
                (low..high).log_scale(),
                "delivery latency (ms, log scale)",
                low,
            ),
            None => {
                let high = self
                    .latencies_ms
                    .last()
                    .map_or(1000.0, |&max| (max as f64 * 1.05).max(1.0));
                self.draw_on(root, 0.0..high, "delivery latency (ms)", 0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_nearest_rank(&values, 500), Some(50));
        assert_eq!(percentile_nearest_rank(&values, 950), Some(95));
        assert_eq!(percentile_nearest_rank(&values, 990), Some(99));
        assert_eq!(percentile_nearest_rank(&values, 1000), Some(100));
        assert_eq!(percentile_nearest_rank(&values, 0), Some(1));
        assert_eq!(percentile_nearest_rank(&[7], 990), Some(7));
        assert_eq!(percentile_nearest_rank(&[], 500), None);
        // Three values: p50 is the second (ceil(1.5) = 2), p99 the third.
        assert_eq!(percentile_nearest_rank(&[1, 2, 3], 500), Some(2));
        assert_eq!(percentile_nearest_rank(&[1, 2, 3], 990), Some(3));
    }

    fn cdf(latencies: Vec<u64>) -> LatencyCdf<'static> {
        LatencyCdf {
            title: String::new(),
            subtitle: String::new(),
            latencies_ms: Cow::Owned(latencies),
        }
    }

    #[test]
    fn staircase_climbs_from_zero_to_one() {
        let path = cdf(vec![10, 20, 20, 40]).staircase(0.0);
        assert_eq!(path.first(), Some(&(10.0, 0.0)));
        assert_eq!(path.last(), Some(&(40.0, 1.0)));
        assert!(
            path.windows(2)
                .all(|pair| pair[0].0 <= pair[1].0 && pair[0].1 <= pair[1].1)
        );
        assert!(path.contains(&(20.0, 0.75)));
    }

    #[test]
    fn staircase_is_bounded() {
        let path = cdf((0..1_000_000).collect()).staircase(0.0);
        assert_eq!(path.len(), 2 * CDF_POINTS_MAX + 1);
        assert_eq!(path.last(), Some(&(999_999.0, 1.0)));
    }

    #[test]
    fn wide_spread_uses_a_log_axis() {
        assert!(cdf(vec![5, 50, 400]).log_scale().is_none());
        assert!(cdf(vec![0, 5, 50, 100]).log_scale().is_some());
        assert!(cdf(vec![5, 50, 30_000]).log_scale().is_some());
        assert!(cdf(Vec::new()).log_scale().is_none());
    }
}
