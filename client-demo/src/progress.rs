//! Progress of a long sync or import: counters and a start instant, from which the rate and the
//! time left follow. The same [`Snapshot`] feeds the terminal line ([`Terminal`]) and the
//! `progress` of `/api/status`, so both say the same thing.
//!
//! Nothing shows for an operation's first [`SHOW_AFTER`]: a quick one stays quiet.

use std::cell::Cell;
use std::io::{IsTerminal, Read};
use std::rc::Rc;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// How long an operation runs before its progress is shown.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);

/// The shortest time between two redraws of the terminal line: an import reports every row, and
/// formatting a line per row would cost more than the row.
const REDRAW_EVERY: f64 = 0.1;

/// Counters of one running operation.
#[derive(Debug, Clone)]
pub struct Progress {
    what: &'static str,
    started: Instant,
    documents: u64,
    bytes: u64,
    total_bytes: Option<u64>,
}

/// What a running operation has done so far, as `/api/status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// "sync" or "import".
    pub what: &'static str,
    /// Documents moved (a sync: feed entries received from others plus documents uploaded; an
    /// import: rows read).
    pub documents: u64,
    /// Bytes moved (a sync: frames received and sent; an import: bytes of the file read).
    pub bytes: u64,
    /// Seconds since the operation started.
    pub elapsed_secs: f64,
    /// Average documents per second since the start.
    pub documents_per_sec: f64,
    /// Average bytes per second since the start.
    pub bytes_per_sec: f64,
    /// Bytes the operation will have moved when done, if known ahead (an import: the file's
    /// size; a sync: never, since the relay tells its feed head only once caught up).
    pub total_bytes: Option<u64>,
    /// Seconds left at the average byte rate, when `total_bytes` is known.
    pub eta_secs: Option<f64>,
}

impl Progress {
    /// An operation that started at `started`; `total_bytes` when its size is known ahead.
    pub fn new(what: &'static str, started: Instant, total_bytes: Option<u64>) -> Self {
        Self {
            what,
            started,
            documents: 0,
            bytes: 0,
            total_bytes,
        }
    }

    /// Counts documents and bytes moved.
    pub fn add(&mut self, documents: u64, bytes: u64) {
        self.documents += documents;
        self.bytes += bytes;
    }

    /// Sets the counters to absolute values (for a source that keeps its own totals).
    pub fn set(&mut self, documents: u64, bytes: u64) {
        self.documents = documents;
        self.bytes = bytes;
    }

    /// The state at `now`, or `None` while the operation is younger than [`SHOW_AFTER`].
    pub fn snapshot(&self, now: Instant) -> Option<Snapshot> {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < SHOW_AFTER {
            return None;
        }
        // Past SHOW_AFTER the divisor is at least one second: the rates are finite.
        let secs = elapsed.as_secs_f64();
        let bytes_per_sec = self.bytes as f64 / secs;
        let eta_secs = self.total_bytes.and_then(|total| {
            let left = total.saturating_sub(self.bytes);
            if left == 0 {
                Some(0.0)
            } else if self.bytes == 0 {
                // No rate yet: any estimate would be invented.
                None
            } else {
                Some(left as f64 / bytes_per_sec)
            }
        });
        Some(Snapshot {
            what: self.what,
            documents: self.documents,
            bytes: self.bytes,
            elapsed_secs: secs,
            documents_per_sec: self.documents as f64 / secs,
            bytes_per_sec,
            total_bytes: self.total_bytes,
            eta_secs,
        })
    }
}

impl Snapshot {
    /// One short line for people: counts, time left (when known), rate, bytes. It shares the
    /// terminal's width with the bar and is cut at its end, so what matters most comes first.
    pub fn line(&self) -> String {
        let unit = if self.what == "import" {
            "rows"
        } else {
            "docs"
        };
        let mut line = format!("{} {} {unit}", self.what, self.documents);
        if let Some(eta) = self.eta_secs {
            line.push_str(&format!(", {} left", short_duration(eta)));
        }
        line.push_str(&format!(
            ", {:.0} {unit}/s, {}",
            self.documents_per_sec,
            HumanBytes(self.bytes)
        ));
        if let Some(total) = self.total_bytes {
            line.push_str(&format!("/{}", HumanBytes(total)));
        }
        line
    }
}

/// Whole seconds, rounded up so the last second still says "1s": "42s", "3m05s", "1h02m".
fn short_duration(secs: f64) -> String {
    let s = secs.max(0.0).ceil() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A progress line on stderr, drawn only when stderr is a terminal: scripts and tests that
/// capture stderr see nothing.
pub struct Terminal {
    on_terminal: bool,
    bar: Option<ProgressBar>,
    drawn_at: f64,
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Terminal {
    /// A line that draws if stderr is a terminal.
    pub fn new() -> Self {
        Self {
            on_terminal: std::io::stderr().is_terminal(),
            bar: None,
            drawn_at: f64::NEG_INFINITY,
        }
    }

    /// Whether anything will ever be drawn.
    pub fn is_shown(&self) -> bool {
        self.on_terminal
    }

    /// Draws the state (a `None` snapshot, for an operation younger than [`SHOW_AFTER`],
    /// draws nothing).
    pub fn show(&mut self, snapshot: Option<&Snapshot>) {
        let Some(s) = snapshot else { return };
        if !self.on_terminal || s.elapsed_secs - self.drawn_at < REDRAW_EVERY {
            return;
        }
        self.drawn_at = s.elapsed_secs;
        let bar = self.bar.get_or_insert_with(|| new_bar(s.total_bytes));
        if let Some(total) = s.total_bytes {
            bar.set_position(s.bytes.min(total));
        }
        bar.set_message(s.line());
    }

    /// Removes the line, so what the command prints next starts on a clean line.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A bar when the total is known, else a spinner; it ticks on its own so it shows life while
/// no data arrives.
fn new_bar(total: Option<u64>) -> ProgressBar {
    let template = match total {
        Some(_) => "{spinner} [{bar:16}] {wide_msg}",
        None => "{spinner} {wide_msg}",
    };
    // The templates are constants; should one ever be refused, a plain style still draws.
    let style = ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A reader that counts the bytes read through it, for a progress that tracks a file.
pub struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R> Counted<R> {
    /// Wraps `inner`; `count` grows by every byte read.
    pub fn new(inner: R, count: Rc<Cell<u64>>) -> Self {
        Self { inner, count }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_shows_during_the_first_second() {
        let t0 = Instant::now();
        let mut p = Progress::new("sync", t0, None);
        p.add(10, 1000);
        assert_eq!(p.snapshot(t0), None);
        assert_eq!(p.snapshot(t0 + Duration::from_millis(999)), None);
        assert!(p.snapshot(t0 + SHOW_AFTER).is_some());
    }

    #[test]
    fn rates_are_averages_since_the_start() {
        let t0 = Instant::now();
        let mut p = Progress::new("sync", t0, None);
        p.add(30, 3000);
        p.add(10, 1000);
        let s = p
            .snapshot(t0 + Duration::from_secs(4))
            .expect("past a second");
        assert_eq!(s.documents, 40);
        assert_eq!(s.bytes, 4000);
        assert_eq!(s.elapsed_secs, 4.0);
        assert_eq!(s.documents_per_sec, 10.0);
        assert_eq!(s.bytes_per_sec, 1000.0);
        assert_eq!(s.total_bytes, None);
        assert_eq!(s.eta_secs, None, "no total, no time left");
    }

    #[test]
    fn time_left_follows_the_byte_rate() {
        let t0 = Instant::now();
        let mut p = Progress::new("import", t0, Some(10_000));
        p.set(50, 2_500);
        let s = p
            .snapshot(t0 + Duration::from_secs(2))
            .expect("past a second");
        // 1 250 B/s with 7 500 B to go.
        assert_eq!(s.eta_secs, Some(6.0));
        p.set(200, 10_000);
        let done = p
            .snapshot(t0 + Duration::from_secs(8))
            .expect("past a second");
        assert_eq!(done.eta_secs, Some(0.0));
        p.set(200, 12_000);
        let over = p
            .snapshot(t0 + Duration::from_secs(8))
            .expect("past a second");
        assert_eq!(
            over.eta_secs,
            Some(0.0),
            "a file that grew is not negative time"
        );
    }

    #[test]
    fn no_time_left_is_invented_before_anything_moved() {
        let t0 = Instant::now();
        let p = Progress::new("import", t0, Some(10_000));
        let s = p
            .snapshot(t0 + Duration::from_secs(3))
            .expect("past a second");
        assert_eq!(s.bytes_per_sec, 0.0);
        assert_eq!(s.eta_secs, None);
    }

    #[test]
    fn the_line_says_counts_rate_and_time_left() {
        let t0 = Instant::now();
        let mut p = Progress::new("import", t0, Some(4096));
        p.set(100, 1024);
        let s = p
            .snapshot(t0 + Duration::from_secs(2))
            .expect("past a second");
        assert_eq!(
            s.line(),
            "import 100 rows, 6s left, 50 rows/s, 1.00 KiB/4.00 KiB"
        );
        let mut sync = Progress::new("sync", t0, None);
        sync.add(3, 2048);
        let s = sync.snapshot(t0 + SHOW_AFTER).expect("past a second");
        assert_eq!(s.line(), "sync 3 docs, 3 docs/s, 2.00 KiB");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(0.0), "0s");
        assert_eq!(short_duration(0.2), "1s");
        assert_eq!(short_duration(59.5), "1m00s");
        assert_eq!(short_duration(185.0), "3m05s");
        assert_eq!(short_duration(3720.0), "1h02m");
    }

    #[test]
    fn the_snapshot_serialises_as_the_api_reports_it() {
        let t0 = Instant::now();
        let mut p = Progress::new("sync", t0, None);
        p.add(2, 200);
        let s = p
            .snapshot(t0 + Duration::from_secs(2))
            .expect("past a second");
        let v = serde_json::to_value(&s).expect("serialises");
        assert_eq!(
            v,
            serde_json::json!({
                "what": "sync",
                "documents": 2,
                "bytes": 200,
                "elapsed_secs": 2.0,
                "documents_per_sec": 1.0,
                "bytes_per_sec": 100.0,
                "total_bytes": null,
                "eta_secs": null,
            })
        );
    }

    #[test]
    fn a_counted_reader_counts_what_it_reads() {
        let count = Rc::new(Cell::new(0));
        let mut r = Counted::new(&b"hello world"[..], count.clone());
        let mut out = String::new();
        r.read_to_string(&mut out).expect("reads");
        assert_eq!(out, "hello world");
        assert_eq!(count.get(), 11);
    }

    #[test]
    fn off_a_terminal_nothing_is_drawn() {
        let t0 = Instant::now();
        let p = Progress::new("sync", t0, None);
        let mut t = Terminal {
            on_terminal: false,
            bar: None,
            drawn_at: f64::NEG_INFINITY,
        };
        t.show(p.snapshot(t0 + Duration::from_secs(5)).as_ref());
        assert!(t.bar.is_none());
    }
}
