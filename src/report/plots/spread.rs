//! A sweep plot: one metric against one swept parameter, with the spread across seeds. Each
//! series (one per combination of the other swept parameters) draws its mean as a line, a
//! min-to-max whisker at every value, and every seed's value as a faint dot.
//!
//! Invariants: the plot is a function of the records alone (equal sweeps give equal SVG);
//! values that parse as numbers are placed on a numeric axis, anything else in the order the
//! sweep gave; runs that did not measure the metric are left out, and a plot with no measured
//! value says so instead of failing.

use super::layout;
use super::{DrawResult, Figure};
use crate::report::font;
use crate::report::sweep::{Spread, SweepRecord, SweepSpec};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Series drawn at most; beyond it the other parameters are pooled into one series.
pub const SERIES_MAX: usize = 8;

const PALETTE: [RGBColor; SERIES_MAX] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One series: per x position, the values of every run there.
struct Series {
    label: String,
    values: Vec<(f64, Vec<f64>)>,
}

pub struct SpreadPlot {
    title: String,
    subtitle: String,
    param: String,
    metric: String,
    /// Tick labels of a categorical axis (`None`: the values are numbers).
    categories: Option<Vec<String>>,
    series: Vec<Series>,
}

impl SpreadPlot {
    /// `metric` against swept key `param` over `records` of the sweep `spec`.
    pub fn new(spec: &SweepSpec, records: &[SweepRecord], metric: &str, param: &str) -> Self {
        let values = spec
            .params
            .iter()
            .find(|(key, _)| key == param)
            .map(|(_, values)| values.clone())
            .unwrap_or_default();
        let numeric: Option<Vec<f64>> = values.iter().map(|v| v.parse::<f64>().ok()).collect();
        let position = |value: &str| -> Option<f64> {
            let index = values.iter().position(|v| v == value)?;
            Some(match &numeric {
                Some(numbers) => numbers[index],
                None => index as f64,
            })
        };
        let others = |record: &SweepRecord| -> String {
            record
                .params
                .iter()
                .filter(|(key, _)| key != param)
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut labels: Vec<String> = Vec::new();
        for record in records {
            let label = others(record);
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        let pooled = labels.len() > SERIES_MAX;
        if pooled {
            labels = vec!["all other parameters pooled".to_owned()];
        }
        let mut series: Vec<Series> = labels
            .iter()
            .map(|label| Series {
                label: if label.is_empty() {
                    "mean, min-max over seeds".to_owned()
                } else {
                    label.clone()
                },
                values: Vec::new(),
            })
            .collect();
        for record in records {
            let Some(value) = record.number(metric) else {
                continue;
            };
            let Some(x) = record
                .params
                .iter()
                .find(|(key, _)| key == param)
                .and_then(|(_, v)| position(v))
            else {
                continue;
            };
            let index = if pooled {
                0
            } else {
                labels
                    .iter()
                    .position(|l| *l == others(record))
                    .unwrap_or(0)
            };
            let points = &mut series[index].values;
            match points.iter_mut().find(|(at, _)| *at == x) {
                Some((_, at_x)) => at_x.push(value),
                None => points.push((x, vec![value])),
            }
        }
        for one in &mut series {
            one.values.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let runs = records.len();
        SpreadPlot {
            title: format!("{metric} against {param}"),
            subtitle: format!(
                "{} · {runs} runs · seeds {} · line: mean; whisker: min to max; dots: each seed",
                spec.experiment,
                seed_range(&spec.seeds)
            ),
            param: param.to_owned(),
            metric: metric.to_owned(),
            categories: numeric.is_none().then_some(values),
            series,
        }
    }

    fn ranges(&self) -> Option<((f64, f64), (f64, f64))> {
        let all = self.series.iter().flat_map(|s| s.values.iter());
        let (mut x_low, mut x_high, mut y_low, mut y_high) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for (x, values) in all {
            x_low = x_low.min(*x);
            x_high = x_high.max(*x);
            for &y in values {
                y_low = y_low.min(y);
                y_high = y_high.max(y);
            }
        }
        if !x_low.is_finite() {
            return None;
        }
        let x_pad = ((x_high - x_low) * 0.05).max(0.5);
        let y_low = y_low.min(0.0);
        let y_pad = ((y_high - y_low) * 0.08).max(0.5);
        Some(((x_low - x_pad, x_high + x_pad), (y_low, y_high + y_pad)))
    }
}

fn seed_range(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(first), Some(last)) if seeds.len() > 1 => format!("{first}..={last}"),
        (Some(first), _) => first.to_string(),
        _ => "none".to_owned(),
    }
}

impl Figure for SpreadPlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        layout::draw_header(root, &self.title, &self.subtitle)?;
        let entries = self
            .series
            .iter()
            .zip(PALETTE)
            .map(|(series, color)| layout::LegendEntry::Line {
                label: series.label.clone(),
                color,
            })
            .collect();
        let legend = layout::Legend::layout(root, entries)?;
        let ((x_low, x_high), (y_low, y_high)) = self.ranges().unwrap_or(((0.0, 1.0), (0.0, 1.0)));
        let mut chart = layout::build_chart(
            root,
            layout::chart_top_px(0),
            legend.height_px(),
            x_low..x_high,
            y_low..y_high,
        )?;
        let categories = self.categories.clone();
        let x_format = move |value: &f64| match &categories {
            Some(names) => {
                let index = value.round();
                if (value - index).abs() < 1e-9 && index >= 0.0 {
                    names.get(index as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
            None => layout::tick_label(*value),
        };
        chart
            .configure_mesh()
            .x_desc(self.param.as_str())
            .y_desc(self.metric.as_str())
            .axis_desc_style((font::FAMILY, layout::AXIS_FONT_PX))
            .label_style((font::FAMILY, layout::TICK_FONT_PX))
            .x_label_formatter(&x_format)
            .y_label_formatter(&|value| layout::tick_label(*value))
            .x_labels(
                self.categories
                    .as_ref()
                    .map_or(10, |names| (names.len() * 4).clamp(2, 40)),
            )
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(TRANSPARENT)
            .draw()?;
        if self.ranges().is_none() {
            return layout::draw_note(
                root,
                chart.plotting_area().get_pixel_range(),
                "no run measured this metric",
            );
        }
        for (series, color) in self.series.iter().zip(PALETTE) {
            let spreads: Vec<(f64, Spread)> = series
                .values
                .iter()
                .filter_map(|(x, values)| Some((*x, Spread::of(values.iter().copied())?)))
                .collect();
            for (x, values) in &series.values {
                chart.draw_series(
                    values
                        .iter()
                        .map(|&y| Circle::new((*x, y), 4, color.mix(0.5).filled())),
                )?;
            }
            for (x, spread) in &spreads {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(*x, spread.min), (*x, spread.max)],
                    color.stroke_width(2),
                )))?;
            }
            chart.draw_series(LineSeries::new(
                spreads.iter().map(|(x, spread)| (*x, spread.mean)),
                color.stroke_width(2),
            ))?;
            chart.draw_series(
                spreads
                    .iter()
                    .map(|(x, spread)| Circle::new((*x, spread.mean), 5, color.filled())),
            )?;
        }
        legend.draw(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sweep::Status;
    use std::collections::BTreeMap;

    fn spec() -> SweepSpec {
        SweepSpec {
            experiment: "e.toml".into(),
            params: vec![
                ("rate".into(), vec!["1".into(), "4".into()]),
                ("shape".into(), vec!["ring".into(), "halves".into()]),
            ],
            seeds: vec![1, 2],
        }
    }

    fn records(spec: &SweepSpec) -> Vec<SweepRecord> {
        let points = spec.points();
        spec.runs()
            .into_iter()
            .map(|(index, point, seed)| SweepRecord {
                experiment: "e".into(),
                point,
                params: points[point].clone(),
                seed,
                status: Status::Pass,
                failed: Vec::new(),
                metrics: BTreeMap::from([("m".to_owned(), serde_json::json!(index * 10))]),
                detail: None,
                replay: String::new(),
            })
            .collect()
    }

    #[test]
    fn spread_plots_are_deterministic_with_a_series_per_other_point() {
        let spec = spec();
        let records = records(&spec);
        let plot = SpreadPlot::new(&spec, &records, "m", "rate");
        assert_eq!(plot.series.len(), 2);
        assert_eq!(plot.series[0].label, "shape=ring");
        assert_eq!(
            plot.series[0].values,
            vec![(1.0, vec![0.0, 10.0]), (4.0, vec![40.0, 50.0])]
        );
        let svg = super::super::render_svg(&plot).unwrap();
        assert_eq!(svg, super::super::render_svg(&plot).unwrap());
        assert!(svg.contains("m against rate"));
        // A categorical parameter is placed in the order the sweep gave.
        let by_shape = SpreadPlot::new(&spec, &records, "m", "shape");
        assert_eq!(
            by_shape.categories,
            Some(vec!["ring".into(), "halves".into()])
        );
        let empty = SpreadPlot::new(&spec, &records, "absent", "rate");
        let svg = super::super::render_svg(&empty).unwrap();
        assert!(svg.contains("no run measured this metric"));
    }
}
