//! How punctual the rooms' mixer ticks are: a process-wide histogram of how
//! late each room wakes for its tick against the ideal 20 ms grid, the worst
//! lateness seen, and the ticks skipped because a room fell more than
//! `MAX_CATCH_UP_TICKS` behind; and a histogram of how long each tick's work
//! takes (what a room costs, and whether one room's tick could make the
//! next room on the same thread late). Cheap enough for every tick (a few
//! relaxed atomic additions); `/metrics` shows both in Prometheus form.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram's buckets, in microseconds.
pub const BUCKETS_US: [u64; 11] =
    [100, 250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 20_000, 50_000, 100_000];

/// Tick lateness counters; see [`TICKS`].
#[derive(Debug)]
pub struct TickLateness {
    /// Per bucket (the last one: over the largest bound), not cumulative.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
    skipped: AtomicU64,
}

/// The process's tick lateness, fed by every room.
pub static TICKS: TickLateness = TickLateness::new();

/// How long the rooms' ticks took (the same histogram; `skipped` unused).
pub static TICK_WORK: TickLateness = TickLateness::new();

/// Ticks whose members' reads and sends were shared out over several threads
/// (rooms whose tick took half of its 20 ms on one: `room::SplitPolicy`).
pub static SPLIT_TICKS: AtomicU64 = AtomicU64::new(0);

/// [`SPLIT_TICKS`] in Prometheus text form.
pub fn render_split_ticks(out: &mut String) {
    let name = "tutti_mixer_split_ticks_total";
    let _ = writeln!(
        out,
        "# HELP {name} Ticks of big rooms whose members' reads and sends were shared out over several threads.\n# TYPE {name} counter\n{name} {}",
        SPLIT_TICKS.load(Ordering::Relaxed)
    );
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub buckets: [u64; BUCKETS_US.len() + 1],
    pub count: u64,
    pub sum_us: u64,
    pub max_us: u64,
    pub skipped: u64,
}

impl TickLateness {
    #[must_use]
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS_US.len() + 1],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// One wake-up for a tick, `late` after its deadline.
    pub fn record(&self, late: Duration) {
        let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.iter().position(|bound| us <= *bound).unwrap_or(BUCKETS_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Ticks a room skipped.
    pub fn add_skipped(&self, ticks: u64) {
        if ticks > 0 {
            self.skipped.fetch_add(ticks, Ordering::Relaxed);
        }
    }

    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let mut buckets = [0; BUCKETS_US.len() + 1];
        for (out, bucket) in buckets.iter_mut().zip(&self.buckets) {
            *out = bucket.load(Ordering::Relaxed);
        }
        Snapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            max_us: self.max_us.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}

impl Default for TickLateness {
    fn default() -> Self {
        Self::new()
    }
}

impl Snapshot {
    /// The counters in Prometheus text form, as tick lateness.
    pub fn render_prometheus(&self, out: &mut String) {
        self.render_histogram(
            out,
            "tutti_mixer_tick_lateness",
            "How late rooms woke for their 20 ms mixer ticks.",
            "The latest any room woke for a tick since the start.",
        );
        let skipped = "tutti_mixer_ticks_skipped_total";
        let _ = writeln!(
            out,
            "# HELP {skipped} Ticks rooms skipped after falling over 100 ms behind.\n# TYPE {skipped} counter\n{skipped} {}",
            self.skipped
        );
    }

    /// The counters in Prometheus text form, as tick durations.
    pub fn render_prometheus_duration(&self, out: &mut String) {
        self.render_histogram(
            out,
            "tutti_mixer_tick_duration",
            "How long rooms' 20 ms mixer ticks took (decode, mix, encode, send).",
            "The longest any room's tick took since the start.",
        );
    }

    /// `{base}_seconds` as a histogram and `{base}_max_seconds` as a gauge.
    fn render_histogram(&self, out: &mut String, base: &str, help: &str, max_help: &str) {
        let name = format!("{base}_seconds");
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", seconds(*bound));
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", seconds(self.sum_us));
        let _ = writeln!(out, "{name}_count {}", self.count);
        let max = format!("{base}_max_seconds");
        let _ = writeln!(
            out,
            "# HELP {max} {max_help}\n# TYPE {max} gauge\n{max} {}",
            seconds(self.max_us)
        );
    }
}

fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_counted_in_its_bucket_and_rendered_cumulatively() {
        let ticks = TickLateness::new();
        for us in [50, 100, 101, 1_500, 250_000] {
            ticks.record(Duration::from_micros(us));
        }
        ticks.add_skipped(3);
        let s = ticks.snapshot();
        assert_eq!(s.buckets[0], 2, "50 and 100 us are at most 100 us");
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[4], 1, "1.5 ms in the 2 ms bucket");
        assert_eq!(s.buckets[BUCKETS_US.len()], 1, "over 100 ms");
        assert_eq!((s.count, s.sum_us, s.max_us, s.skipped), (5, 251_751, 250_000, 3));
        let mut text = String::new();
        s.render_prometheus(&mut text);
        assert!(
            text.contains("tutti_mixer_tick_lateness_seconds_bucket{le=\"0.000250\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("tutti_mixer_tick_lateness_seconds_bucket{le=\"+Inf\"} 5\n"));
        assert!(text.contains("tutti_mixer_tick_lateness_max_seconds 0.250000\n"));
        assert!(text.contains("tutti_mixer_ticks_skipped_total 3\n"));
        let mut text = String::new();
        s.render_prometheus_duration(&mut text);
        assert!(text.contains("# TYPE tutti_mixer_tick_duration_seconds histogram\n"), "{text}");
        assert!(text.contains("tutti_mixer_tick_duration_seconds_bucket{le=\"+Inf\"} 5\n"));
        assert!(text.contains("tutti_mixer_tick_duration_max_seconds 0.250000\n"));
        assert!(!text.contains("skipped"));
    }
}
