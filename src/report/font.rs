//! The one font every plot uses, shipped inside the binary.
//!
//! plotters draws text with `ab_glyph`, which knows no font until one is registered; without
//! this every chart fails. Shipping DejaVu Sans (license in `assets/fonts/`) keeps plots
//! identical on every machine, headless or not, with or without system fonts.
//!
//! Invariant: [`ensure_registered`] runs before any text is drawn; registration happens once
//! per process however many threads render at the same time.

use std::io;
use std::sync::OnceLock;

/// The family name plots ask for. SVG files name it too, so a viewer without DejaVu Sans
/// falls back to its own sans-serif font rather than to a serif one.
pub const FAMILY: &str = "sans-serif";

const DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the shipped font under [`FAMILY`] (once per process).
pub fn ensure_registered() -> io::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, DEJAVU_SANS)
            .is_ok()
    });
    if registered {
        Ok(())
    } else {
        Err(io::Error::other(
            "the plot font shipped in assets/fonts/DejaVuSans.ttf is not a valid font",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_font_registers() {
        ensure_registered().unwrap();
        ensure_registered().unwrap();
    }
}
