//! Fault windows on a time axis: a shaded band per window and a label above the plot naming
//! its index and kind.
//!
//! Invariants: a kind always gets the same colour within a run (colours are assigned over the
//! sorted set of kinds); a fault that never took effect is grey and says so in its label, so
//! a false green is visible in the picture too; labels never overlap one another (a label
//! that finds no free row is shortened to its index, and left out only if even that cannot
//! fit, in which case the band is still shaded).

use crate::observe::record::FaultWindow;
use plotters::style::RGBColor;
use std::collections::BTreeSet;

/// Colours of fault kinds, clear of the black and red that series lines use; as many as the
/// fault vocabulary has kinds, so no two kinds share a colour.
const KIND_COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(57, 59, 121),
    RGBColor(99, 121, 57),
    RGBColor(140, 109, 49),
    RGBColor(132, 60, 57),
];

/// The colour of a fault that never took effect.
pub const NO_EFFECT_COLOR: RGBColor = RGBColor(110, 110, 110);

/// Rows of labels above the plot; more would push the plot itself off the picture.
pub const LABEL_ROWS_MAX: usize = 3;

/// Pixels kept free between two labels on the same row.
const LABEL_GAP_PX: i32 = 10;

/// The colour of each kind that appears among `faults`, in sorted kind order.
pub fn kind_colors(faults: &[FaultWindow]) -> Vec<(String, RGBColor)> {
    let kinds: BTreeSet<&str> = faults.iter().map(|fault| fault.kind.as_str()).collect();
    kinds
        .into_iter()
        .enumerate()
        .map(|(index, kind)| (kind.to_string(), KIND_COLORS[index % KIND_COLORS.len()]))
        .collect()
}

/// The colour a window is drawn in.
pub fn window_color(fault: &FaultWindow, colors: &[(String, RGBColor)]) -> RGBColor {
    if !fault.took_effect {
        return NO_EFFECT_COLOR;
    }
    colors
        .iter()
        .find(|(kind, _)| *kind == fault.kind)
        .map(|(_, color)| *color)
        .unwrap_or(NO_EFFECT_COLOR)
}

/// The label of a window in full, and its short form for crowded stretches.
pub fn label_texts(fault: &FaultWindow) -> [String; 2] {
    let long = if fault.took_effect {
        format!("#{} {}", fault.index, fault.kind)
    } else {
        format!("#{} {}: NO EFFECT", fault.index, fault.kind)
    };
    [long, format!("#{}", fault.index)]
}

/// A label placed above the plot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedLabel {
    /// Position of the window in the slice given to [`place_labels`].
    pub window: usize,
    pub text: String,
    pub x_px: i32,
    pub row: usize,
}

/// A label to place: where its window starts on screen and its candidate texts, longest first.
pub struct LabelRequest {
    pub window: usize,
    pub start_px: i32,
    pub texts: Vec<(String, i32)>,
}

/// Places labels left to right, each at its window's start (pulled left if it would run off
/// `right_px`), in the first row where it overlaps no earlier label. All labels take their
/// long form if that places every one of them; otherwise all take their short form (colour
/// and legend still tell the kind), and a label that still finds no row is left out.
pub fn place_labels(
    mut requests: Vec<LabelRequest>,
    left_px: i32,
    right_px: i32,
) -> Vec<PlacedLabel> {
    requests.sort_by_key(|request| (request.start_px, request.window));
    let forms = requests
        .iter()
        .map(|request| request.texts.len())
        .max()
        .unwrap_or(0);
    let mut placed = Vec::new();
    for form in 0..forms {
        placed = place_form(&requests, form, left_px, right_px);
        if placed.len() == requests.len() {
            break;
        }
    }
    placed
}

fn place_form(
    requests: &[LabelRequest],
    form: usize,
    left_px: i32,
    right_px: i32,
) -> Vec<PlacedLabel> {
    let mut row_end_px = [i32::MIN; LABEL_ROWS_MAX];
    let mut placed = Vec::with_capacity(requests.len());
    for request in requests {
        let Some((text, width_px)) = request.texts.get(form).or(request.texts.last()) else {
            continue;
        };
        let x_px = request.start_px.min(right_px - width_px).max(left_px);
        let free_row = row_end_px
            .iter()
            .position(|end_px| end_px.saturating_add(LABEL_GAP_PX) <= x_px);
        if let Some(row) = free_row {
            row_end_px[row] = x_px + width_px;
            placed.push(PlacedLabel {
                window: request.window,
                text: text.clone(),
                x_px,
                row,
            });
        }
    }
    placed
}

/// Rows the placed labels use.
pub fn rows_used(labels: &[PlacedLabel]) -> usize {
    labels.iter().map(|label| label.row + 1).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(index: usize, kind: &str, took_effect: bool) -> FaultWindow {
        FaultWindow {
            index,
            kind: kind.into(),
            description: String::new(),
            from_ms: 0,
            until_ms: 1,
            effect_count: u64::from(took_effect),
            took_effect,
        }
    }

    fn request(window: usize, start_px: i32, width_px: i32) -> LabelRequest {
        LabelRequest {
            window,
            start_px,
            texts: vec![
                (format!("long{window}"), width_px),
                (format!("#{window}"), 10),
            ],
        }
    }

    #[test]
    fn kinds_get_colors_by_sorted_name() {
        let faults = [fault(0, "partition", true), fault(1, "loss", true)];
        let colors = kind_colors(&faults);
        assert_eq!(colors[0].0, "loss");
        assert_eq!(colors[1].0, "partition");
        assert_eq!(window_color(&faults[1], &colors), KIND_COLORS[0]);
    }

    #[test]
    fn fault_without_effect_is_grey_and_says_so() {
        let quiet = fault(3, "loss", false);
        assert_eq!(
            window_color(&quiet, &kind_colors(std::slice::from_ref(&quiet))),
            NO_EFFECT_COLOR
        );
        assert_eq!(label_texts(&quiet)[0], "#3 loss: NO EFFECT");
    }

    #[test]
    fn crowded_labels_take_new_rows_then_all_shorten() {
        let crowded = || {
            vec![
                request(0, 100, 80),
                request(1, 110, 80),
                request(2, 120, 80),
                request(3, 215, 80),
            ]
        };
        // Long forms: three rows hold the first three, and the fourth fits after the first.
        let placed = place_labels(crowded(), 0, 1000);
        let rows: Vec<(usize, usize, &str)> = placed
            .iter()
            .map(|label| (label.window, label.row, label.text.as_str()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (0, 0, "long0"),
                (1, 1, "long1"),
                (2, 2, "long2"),
                (3, 0, "long3")
            ]
        );
        // A fourth window at 130 fits no row in long form, so every label turns short.
        let mut more = crowded();
        more[3].start_px = 130;
        let placed = place_labels(more, 0, 1000);
        assert!(placed.iter().all(|label| label.text.starts_with('#')));
        assert_eq!(placed.len(), 4);
        assert_eq!(rows_used(&placed), 2);
    }

    #[test]
    fn label_that_fits_nowhere_is_left_out() {
        let requests = (0..5).map(|window| request(window, 100, 80)).collect();
        let placed = place_labels(requests, 0, 1000);
        assert_eq!(placed.len(), LABEL_ROWS_MAX);
        assert_eq!(rows_used(&placed), LABEL_ROWS_MAX);
    }

    #[test]
    fn label_near_the_right_edge_is_pulled_left() {
        let placed = place_labels(vec![request(0, 990, 80)], 0, 1000);
        assert_eq!(placed[0].x_px, 920);
        assert_eq!(placed[0].row, 0);
    }

    #[test]
    fn separate_labels_share_the_first_row() {
        let placed = place_labels(vec![request(1, 300, 80), request(0, 100, 80)], 0, 1000);
        assert!(placed.iter().all(|label| label.row == 0));
        assert_eq!(placed[0].window, 0);
    }
}
