//! Progress of long work on stderr: a bar on a terminal, and when stderr is a file or a pipe
//! (a CI log, `2> log`) a plain line once the work has taken a second, then every 5 s.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the first plain progress line is printed.
const FIRST_LINE: Duration = Duration::from_secs(1);
/// Seconds between two plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// The progress of `total` units of work.
pub struct Progress {
    label: String,
    total: u64,
    bar: Option<ProgressBar>,
    /// Whether plain lines are printed (off a terminal).
    lines: bool,
    /// Units done, and when the last plain line was printed (`None` before the first).
    plain: Mutex<(u64, Option<Instant>)>,
    started: Instant,
}

impl Progress {
    /// Progress of `label` over `total` units (named `unit` on the bar).
    pub fn new(label: &str, total: u64, unit: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let template = format!("{label} {{bar:40}} {{pos}}/{{len}} {unit}  eta {{eta}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            label: label.to_owned(),
            total,
            lines: bar.is_none(),
            bar,
            plain: Mutex::new((0, None)),
            started: Instant::now(),
        }
    }

    /// Progress that shows nothing, for work that is part of a larger step with its own report.
    pub fn silent() -> Progress {
        Progress {
            label: String::new(),
            total: 0,
            bar: None,
            lines: false,
            plain: Mutex::new((0, None)),
            started: Instant::now(),
        }
    }

    /// `units` more are done.
    pub fn advance(&self, units: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(units);
            return;
        }
        if !self.lines {
            return;
        }
        let mut plain = self.plain.lock().unwrap_or_else(|p| p.into_inner());
        plain.0 += units;
        let due = match plain.1 {
            None => self.started.elapsed() >= FIRST_LINE,
            Some(last) => last.elapsed() >= LINE_EVERY,
        };
        if due {
            plain.1 = Some(Instant::now());
            eprintln!(
                "{}: {} of {} ({:.0} %), {:.0} s",
                self.label,
                plain.0,
                self.total,
                100.0 * plain.0 as f64 / self.total.max(1) as f64,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    /// The work is over (clears the bar).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
