//! What the user sees on stderr: a progress bar while running (only on a
//! terminal), bad lines and delivery failures as they happen, and a one-line
//! summary at the end (always).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::tally::Tally;

/// Delivery failures printed one by one; the rest only count.
const FAILURES_SHOWN: u64 = 10;
const REFRESH: Duration = Duration::from_millis(200);

/// What the bar measures: with --limit the message count is known, for files
/// their size; from stdin neither is, and it shows counts without an ETA.
/// The position is messages queued in the first case, input bytes otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Messages,
    Bytes,
    Open,
}

pub struct Progress {
    bar: ProgressBar,
    mode: Mode,
    started: Instant,
    last_refresh: Instant,
    read_bytes: u64,
    queued: u64,
}

impl Progress {
    pub fn new(total_bytes: Option<u64>, limit: Option<u64>) -> Self {
        let (mode, len, template) = match (limit, total_bytes) {
            (Some(n), _) => (
                Mode::Messages,
                Some(n),
                "{spinner} {elapsed_precise} [{bar:24}] {human_pos}/{human_len} msgs · {msg} · ETA {eta}",
            ),
            (None, Some(n)) => (
                Mode::Bytes,
                Some(n),
                "{spinner} {elapsed_precise} [{bar:24}] {bytes}/{total_bytes} · {msg} · ETA {eta}",
            ),
            (None, None) => (Mode::Open, None, "{spinner} {elapsed_precise} {bytes} read · {msg}"),
        };
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
            bar.enable_steady_tick(REFRESH);
            bar
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("starting");
        let now = Instant::now();
        Progress { bar, mode, started: now, last_refresh: now, read_bytes: 0, queued: 0 }
    }

    /// Records input consumed, and whether it produced a message.
    pub fn advance(&mut self, bytes: u64, queued: bool) {
        self.read_bytes += bytes;
        self.queued += u64::from(queued);
        match self.mode {
            Mode::Messages => self.bar.set_position(self.queued),
            Mode::Bytes | Mode::Open => self.bar.set_position(self.read_bytes),
        }
    }

    /// Prints a line above the bar (the bar's own `println` prints nothing when hidden).
    pub fn note(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Reports a failed delivery; `failed` is the count including this one.
    pub fn delivery_failed(&self, failed: u64, id: &str, error: &dyn std::fmt::Display) {
        if failed <= FAILURES_SHOWN {
            self.note(&format!("delivery failed for id `{id}`: {error}"));
        }
        if failed == FAILURES_SHOWN {
            self.note("(further delivery failures are only counted)");
        }
    }

    /// Updates the bar's counters, at most every few hundred milliseconds.
    pub fn refresh(&mut self, tally: &Tally) {
        if self.last_refresh.elapsed() < REFRESH {
            return;
        }
        self.last_refresh = Instant::now();
        let rate = tally.sent as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let mut msg = format!("{} sent · {rate:.0}/s", tally.sent);
        if tally.failed > 0 {
            msg.push_str(&format!(" · {} failed", tally.failed));
        }
        if tally.skipped > 0 {
            msg.push_str(&format!(" · {} skipped", tally.skipped));
        }
        self.bar.set_message(msg);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The last line of every run.
pub fn summary(tally: &Tally, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { tally.sent as f64 / secs } else { 0.0 };
    format!(
        "sent {}, failed {}, skipped {} in {secs:.2}s ({rate:.0} msg/s, {})",
        tally.sent,
        tally.failed,
        tally.skipped,
        HumanBytes(tally.payload_bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_every_count() {
        let tally = Tally { sent: 600, failed: 2, skipped: 3, payload_bytes: 2048, stopped: None };
        assert_eq!(
            summary(&tally, Duration::from_secs(3)),
            "sent 600, failed 2, skipped 3 in 3.00s (200 msg/s, 2.00 KiB)"
        );
    }

    #[test]
    fn a_hidden_bar_still_counts() {
        let mut progress = Progress::new(Some(100), None);
        progress.advance(60, true);
        progress.advance(40, false);
        assert_eq!((progress.read_bytes, progress.queued, progress.bar.position()), (100, 1, 100));
        progress.finish();
    }
}
