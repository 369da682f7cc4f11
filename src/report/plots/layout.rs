//! Geometry and furniture shared by every plot: the header (title, subtitle), the band of
//! fault labels, the legend row at the bottom, notes for missing data, tick labels.
//!
//! Invariant: the legend and the fault labels live outside the plotting area, so they never
//! cover data; everything is placed in whole pixels computed from the input alone.

use crate::report::{font, units};
use plotters::coord::Shift;
use plotters::coord::ranged1d::AsRangedCoord;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{AreaError, Chart, DrawResult};

pub const MARGIN_PX: u32 = 16;
pub const RIGHT_MARGIN_PX: u32 = 32;
pub const Y_LABEL_AREA_PX: u32 = 84;
pub const X_LABEL_AREA_PX: u32 = 58;
const TITLE_FONT_PX: f64 = 24.0;
const SUBTITLE_FONT_PX: f64 = 16.0;
pub const LABEL_FONT_PX: f64 = 15.0;
pub const TICK_FONT_PX: f64 = 15.0;
pub const AXIS_FONT_PX: f64 = 17.0;
const NOTE_FONT_PX: f64 = 20.0;
/// Height of the title and subtitle lines together.
const HEADER_PX: u32 = MARGIN_PX + 58;
/// Height of one row of fault labels.
pub const LABEL_ROW_PX: u32 = 21;

pub const INK: RGBColor = RGBColor(30, 30, 30);
pub const MUTED: RGBColor = RGBColor(90, 90, 90);
pub const ALERT: RGBColor = RGBColor(214, 39, 40);

/// Top margin of the chart when `label_rows` rows of fault labels sit above it.
pub fn chart_top_px(label_rows: usize) -> u32 {
    HEADER_PX + label_rows as u32 * LABEL_ROW_PX + 6
}

/// Top of the first row of fault labels.
pub fn label_band_top_px() -> i32 {
    HEADER_PX as i32
}

/// Left and right pixel of the plotting area of a chart built with this module's margins on
/// a root of `width_px`.
pub fn plot_x_range_px(width_px: u32) -> (i32, i32) {
    (
        (MARGIN_PX + Y_LABEL_AREA_PX) as i32,
        (width_px - RIGHT_MARGIN_PX) as i32,
    )
}

/// A chart with this module's margins: `top_px` above it for the header and fault labels,
/// `bottom_px` below it for the legend.
pub fn build_chart<'a, DB, X, Y>(
    root: &'a DrawingArea<DB, Shift>,
    top_px: u32,
    bottom_px: u32,
    x_range: X,
    y_range: Y,
) -> Result<Chart<'a, DB, X::CoordDescType, Y::CoordDescType>, AreaError<DB>>
where
    DB: DrawingBackend,
    X: AsRangedCoord,
    Y: AsRangedCoord,
{
    ChartBuilder::on(root)
        .margin_top(top_px)
        .margin_left(MARGIN_PX)
        .margin_right(RIGHT_MARGIN_PX)
        .margin_bottom(bottom_px)
        .x_label_area_size(X_LABEL_AREA_PX)
        .y_label_area_size(Y_LABEL_AREA_PX)
        .build_cartesian_2d(x_range, y_range)
}

pub fn text_style(size_px: f64, color: RGBColor) -> TextStyle<'static> {
    (font::FAMILY, size_px)
        .into_font()
        .color(&color)
        .pos(Pos::new(HPos::Left, VPos::Top))
}

/// Title and subtitle at the top left.
pub fn draw_header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> DrawResult<DB> {
    let left = MARGIN_PX as i32;
    root.draw(&Text::new(
        title.to_string(),
        (left, MARGIN_PX as i32),
        text_style(TITLE_FONT_PX, INK),
    ))?;
    root.draw(&Text::new(
        subtitle.to_string(),
        (left, MARGIN_PX as i32 + 32),
        text_style(SUBTITLE_FONT_PX, MUTED),
    ))
}

/// One entry of the legend.
pub enum LegendEntry {
    Line { label: String, color: RGBColor },
    Band { label: String, color: RGBColor },
}

impl LegendEntry {
    fn label(&self) -> &str {
        match self {
            LegendEntry::Line { label, .. } | LegendEntry::Band { label, .. } => label,
        }
    }
}

/// Width of an entry's swatch and the space after it.
const SWATCH_PX: i32 = 32;
/// Space between two entries.
const ENTRY_GAP_PX: i32 = 26;
const LEGEND_ROW_PX: u32 = 26;

/// The legend along the bottom edge, starting at the plot's left edge and wrapping onto more
/// rows when one is not wide enough, so no entry is ever cut off.
pub struct Legend {
    entries: Vec<LegendEntry>,
    /// (left pixel, row) of each entry.
    positions: Vec<(i32, u32)>,
    rows: u32,
}

impl Legend {
    pub fn layout<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        entries: Vec<LegendEntry>,
    ) -> Result<Self, AreaError<DB>> {
        let (left_px, right_px) = plot_x_range_px(root.dim_in_pixel().0);
        let style = Self::style();
        let mut positions = Vec::with_capacity(entries.len());
        let (mut x_px, mut row) = (left_px, 0);
        for entry in &entries {
            let (label_width_px, _) = root.estimate_text_size(entry.label(), &style)?;
            let width_px = SWATCH_PX + label_width_px as i32;
            if x_px > left_px && x_px + width_px > right_px {
                (x_px, row) = (left_px, row + 1);
            }
            positions.push((x_px, row));
            x_px += width_px + ENTRY_GAP_PX;
        }
        Ok(Legend {
            entries,
            positions,
            rows: row + 1,
        })
    }

    /// Pixels the legend takes at the bottom of the picture: the chart's bottom margin.
    pub fn height_px(&self) -> u32 {
        self.rows * LEGEND_ROW_PX + 10
    }

    fn style() -> TextStyle<'static> {
        text_style(LABEL_FONT_PX, INK).pos(Pos::new(HPos::Left, VPos::Center))
    }

    pub fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let top_px = root.dim_in_pixel().1 as i32 - self.height_px() as i32;
        let style = Self::style();
        for (entry, &(x_px, row)) in self.entries.iter().zip(&self.positions) {
            let middle_px = top_px + (row * LEGEND_ROW_PX + LEGEND_ROW_PX / 2) as i32 + 2;
            match entry {
                LegendEntry::Line { color, .. } => {
                    root.draw(&PathElement::new(
                        vec![(x_px, middle_px), (x_px + 26, middle_px)],
                        color.stroke_width(3),
                    ))?;
                }
                LegendEntry::Band { color, .. } => {
                    let corners = [(x_px + 4, middle_px - 8), (x_px + 22, middle_px + 8)];
                    root.draw(&Rectangle::new(corners, color.mix(0.3).filled()))?;
                    root.draw(&Rectangle::new(corners, color.stroke_width(1)))?;
                }
            }
            root.draw(&Text::new(
                entry.label().to_string(),
                (x_px + SWATCH_PX, middle_px),
                style.clone(),
            ))?;
        }
        Ok(())
    }
}

/// A note in the middle of the plotting area, for data that is missing.
pub fn draw_note<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot_px: (std::ops::Range<i32>, std::ops::Range<i32>),
    note: &str,
) -> DrawResult<DB> {
    let (x_px, y_px) = plot_px;
    let center = ((x_px.start + x_px.end) / 2, (y_px.start + y_px.end) / 2);
    let style = text_style(NOTE_FONT_PX, MUTED).pos(Pos::new(HPos::Center, VPos::Center));
    // A white card keeps the note legible over shaded fault windows and grid lines.
    let (width_px, height_px) = root.estimate_text_size(note, &style)?;
    let (half_width, half_height) = (width_px as i32 / 2 + 14, height_px as i32 / 2 + 10);
    let corners = [
        (center.0 - half_width, center.1 - half_height),
        (center.0 + half_width, center.1 + half_height),
    ];
    root.draw(&Rectangle::new(corners, WHITE.filled()))?;
    root.draw(&Rectangle::new(corners, MUTED.stroke_width(1)))?;
    root.draw(&Text::new(note.to_string(), center, style))
}

/// A tick label: at most three decimals, no trailing zeros.
pub fn tick_label(value: f64) -> String {
    units::decimal(value)
}

/// Tick count for an axis from zero to `top` that should show whole numbers: one per unit
/// when that is few enough.
pub fn whole_number_ticks(top: f64) -> usize {
    (top as usize + 1).clamp(2, 11)
}
