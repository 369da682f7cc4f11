//! A progress bar over simulated time, with the current divergence, for a person watching a
//! run on a terminal.
//!
//! Invariants: it draws only when stderr is a terminal, so CI logs and piped output stay
//! clean; it only displays what it is told and never feeds anything back into the run, so a
//! run with and without a terminal is the same run; its position never exceeds the total.

use super::units;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU32, Ordering};

/// Redraws per second at most: smooth enough to watch, cheap enough not to slow the run.
const REDRAWS_PER_SECOND: u8 = 10;

const TEMPLATE: &str = "{spinner} [{bar:40.cyan/blue}] {simulated} / {total} simulated · {msg} · {elapsed} wall · ETA {eta}";

/// Divergence not yet reported.
const NO_DIVERGENCE: u32 = u32::MAX;

pub struct Progress {
    bar: ProgressBar,
    total_ms: u64,
    /// The divergence in the message, so the message is rebuilt only when it changes.
    divergence_shown: AtomicU32,
}

impl Progress {
    /// A bar for a run of `total_ms` simulated milliseconds, drawn on stderr when stderr is a
    /// terminal and hidden otherwise.
    pub fn new(total_ms: u64) -> Self {
        if std::io::stderr().is_terminal() {
            Self::with_target(
                total_ms,
                ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_SECOND),
            )
        } else {
            Self::hidden(total_ms)
        }
    }

    /// A bar that tracks progress but never draws.
    pub fn hidden(total_ms: u64) -> Self {
        Self::with_target(total_ms, ProgressDrawTarget::hidden())
    }

    fn with_target(total_ms: u64, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total_ms), target);
        bar.set_style(style());
        bar.set_message("divergence -");
        Progress {
            bar,
            total_ms,
            divergence_shown: AtomicU32::new(NO_DIVERGENCE),
        }
    }

    /// Reports simulated time `t_ms` and the divergence sampled then.
    pub fn set(&self, t_ms: u64, divergence: u32) {
        if self.divergence_shown.swap(divergence, Ordering::Relaxed) != divergence {
            self.bar.set_message(format!("divergence {divergence}"));
        }
        self.bar.set_position(t_ms.min(self.total_ms));
    }

    /// Removes the bar: the summary table that follows says everything it said.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Simulated milliseconds reported so far, at most the total.
    pub fn position_ms(&self) -> u64 {
        self.bar.position()
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(TEMPLATE)
        .expect("the progress template is valid")
        .with_key(
            "simulated",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = out.write_str(&units::seconds(state.pos()));
            },
        )
        .with_key(
            "total",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = out.write_str(&units::seconds(state.len().unwrap_or(0)));
            },
        )
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::TermLike;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// A terminal that records what is written to it.
    #[derive(Clone, Debug, Default)]
    struct Recorder(Arc<Mutex<String>>);

    impl TermLike for Recorder {
        fn width(&self) -> u16 {
            160
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, line: &str) -> io::Result<()> {
            let mut text = self.0.lock().unwrap();
            text.push_str(line);
            text.push('\n');
            Ok(())
        }
        fn write_str(&self, text: &str) -> io::Result<()> {
            self.0.lock().unwrap().push_str(text);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn draws_simulated_time_and_divergence() {
        let terminal = Recorder::default();
        let progress = Progress::with_target(
            120_000,
            ProgressDrawTarget::term_like(Box::new(terminal.clone())),
        );
        progress.set(30_500, 2);
        let drawn = terminal.0.lock().unwrap().clone();
        assert!(drawn.contains("30.5 s / 120 s simulated"), "{drawn}");
        assert!(drawn.contains("divergence 2"), "{drawn}");
    }

    #[test]
    fn position_is_clamped_to_the_total() {
        let progress = Progress::hidden(1_000);
        progress.set(400, 1);
        assert_eq!(progress.position_ms(), 400);
        progress.set(5_000, 1);
        assert_eq!(progress.position_ms(), 1_000);
        progress.finish();
    }

    #[test]
    fn hidden_exactly_when_stderr_is_not_a_terminal() {
        let progress = Progress::new(1_000);
        assert_eq!(progress.is_hidden(), !std::io::stderr().is_terminal());
        assert!(Progress::hidden(1_000).is_hidden());
    }
}
