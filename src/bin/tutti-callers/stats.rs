//! What a caller measures in what it receives: a fine histogram for
//! lateness, RFC 3550 jitter, a streaming Goertzel bank for "who hears whom",
//! and the click detector for the latency through the server.

use std::f64::consts::PI;
use std::time::{Duration, Instant};

/// Samples per second of the G.711 streams the callers send and receive.
pub const RATE: u32 = 8000;
/// Samples in one 20 ms frame.
pub const FRAME: usize = 160;

/// Histogram of durations in 0.1 ms steps up to 200 ms, plus an overflow
/// count and the exact maximum: percentiles to a tenth of a millisecond
/// without keeping every value.
#[derive(Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    over: u64,
    count: u64,
    max: Duration,
}

const STEP_US: u64 = 100;
const BUCKETS: usize = 2000;

impl Default for Histogram {
    fn default() -> Self {
        Self { buckets: vec![0; BUCKETS], over: 0, count: 0, max: Duration::ZERO }
    }
}

impl Histogram {
    pub fn record(&mut self, value: Duration) {
        let step = (value.as_micros() / u128::from(STEP_US)) as usize;
        match self.buckets.get_mut(step) {
            Some(bucket) => *bucket += 1,
            None => self.over += 1,
        }
        self.count += 1;
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.over += other.over;
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value below which a share `q` (0..=1) of the recorded values lie,
    /// in milliseconds (the upper edge of its 0.1 ms bucket; the maximum when
    /// it falls in the overflow).
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (step, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let edge = (step as u64 + 1) * STEP_US;
                return Some((edge as f64 / 1000.0).min(self.max_ms()));
            }
        }
        Some(self.max_ms())
    }

    pub fn max_ms(&self) -> f64 {
        self.max.as_secs_f64() * 1000.0
    }

    /// How many recorded values exceed `limit`.
    pub fn above(&self, limit: Duration) -> u64 {
        let from = (limit.as_micros() / u128::from(STEP_US)) as usize;
        self.buckets.iter().skip(from + 1).sum::<u64>() + self.over
    }
}

/// One Goertzel filter run over a stream, sample by sample.
#[derive(Clone, Copy)]
pub struct Goertzel {
    coefficient: f64,
    s1: f64,
    s2: f64,
}

impl Goertzel {
    pub fn new(freq_hz: f64) -> Self {
        Self { coefficient: 2.0 * (2.0 * PI * freq_hz / f64::from(RATE)).cos(), s1: 0.0, s2: 0.0 }
    }

    pub fn push(&mut self, sample: f64) {
        let s0 = sample + self.coefficient * self.s1 - self.s2;
        self.s2 = self.s1;
        self.s1 = s0;
    }

    /// The amplitude of the frequency over the `n` samples pushed since the
    /// last reset (a sine of peak A gives about A), and a reset.
    pub fn take(&mut self, n: usize) -> f64 {
        let power =
            (self.s1 * self.s1 + self.s2 * self.s2 - self.coefficient * self.s1 * self.s2).max(0.0);
        self.s1 = 0.0;
        self.s2 = 0.0;
        if n == 0 { 0.0 } else { 2.0 * power.sqrt() / n as f64 }
    }
}

/// The amplitude of `freq_hz` in `samples`.
pub fn amplitude(samples: &[f64], freq_hz: f64) -> f64 {
    let mut filter = Goertzel::new(freq_hz);
    for &s in samples {
        filter.push(s);
    }
    filter.take(samples.len())
}

/// RFC 3550 interarrival jitter, in timestamp units (1/8000 s).
#[derive(Default, Clone, Copy)]
pub struct Jitter {
    last_transit: Option<f64>,
    jitter: f64,
}

impl Jitter {
    pub fn update(&mut self, arrival_units: f64, rtp_timestamp: u32) {
        let transit = arrival_units - f64::from(rtp_timestamp);
        if let Some(last) = self.last_transit {
            // Timestamps wrap; so does the difference of transits around them.
            let mut d = (transit - last).abs();
            if d > f64::from(u32::MAX) / 2.0 {
                d = (f64::from(u32::MAX) + 1.0 - d).abs();
            }
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// In milliseconds, for a stream with the RTP clock `rate`.
    pub fn ms(&self, rate: u32) -> f64 {
        self.jitter * 1000.0 / f64::from(rate)
    }
}

/// The click a talker adds to its tone once a second: a burst of
/// [`CLICK_HZ`] lasting [`CLICK_LEN`] samples from sample [`CLICK_AT`] of
/// the frame. Its onset is found in what others receive to within a sample
/// or two.
pub const CLICK_HZ: f64 = 2000.0;
pub const CLICK_AT: usize = 32;
pub const CLICK_LEN: usize = 64;
pub const CLICK_AMPLITUDE: f64 = 12000.0;
/// Window of the onset search: 16 samples hold exactly four periods of 2 kHz.
const ONSET_WINDOW: usize = 16;
/// A received frame with this much 2 kHz in it holds (part of) a click.
const CLICK_GATE: f64 = 600.0;

/// Finds clicks in a received stream: where in the last two frames the
/// click starts, and when that sample arrived.
#[derive(Default)]
pub struct ClickDetector {
    previous: Option<([f64; FRAME], Instant)>,
    /// Frames since the last one with a click in it; a new click is only
    /// looked for after a quiet spell, so one click is found once.
    quiet_frames: u32,
    armed: bool,
}

impl ClickDetector {
    /// Feeds one received frame (`arrival`: when its packet arrived); returns
    /// when the first sample of a click in it (or the frame before) arrived.
    pub fn frame(&mut self, samples: &[f64; FRAME], arrival: Instant) -> Option<Instant> {
        let level = amplitude(samples, CLICK_HZ);
        let mut found = None;
        if level >= CLICK_GATE {
            if self.armed {
                self.armed = false;
                found = self.onset(samples, arrival);
            }
            self.quiet_frames = 0;
        } else {
            self.quiet_frames += 1;
            if self.quiet_frames >= 5 {
                self.armed = true;
            }
        }
        self.previous = Some((*samples, arrival));
        found
    }

    fn onset(&self, current: &[f64; FRAME], arrival: Instant) -> Option<Instant> {
        let mut joined = [0.0; 2 * FRAME];
        let before = self.previous.map(|(samples, at)| {
            joined[..FRAME].copy_from_slice(&samples);
            at
        });
        joined[FRAME..].copy_from_slice(current);
        let start = if before.is_some() { 0 } else { FRAME };
        let levels: Vec<(usize, f64)> = (start..=2 * FRAME - ONSET_WINDOW)
            .map(|i| (i, amplitude(&joined[i..i + ONSET_WINDOW], CLICK_HZ)))
            .collect();
        let peak = levels.iter().map(|(_, l)| *l).fold(0.0, f64::max);
        let (first, _) = *levels.iter().find(|(_, l)| *l >= peak / 2.0)?;
        // Half the window covers the burst when the level reaches half its peak.
        let sample = first + ONSET_WINDOW / 2;
        let offset = |n: usize| Duration::from_secs_f64(n as f64 / f64::from(RATE));
        if sample < FRAME {
            before.map(|at| at + offset(sample))
        } else {
            Some(arrival + offset(sample - FRAME))
        }
    }
}

/// The 20 ms frame number `index` of a sine of `freq_hz` at peak
/// `amplitude`, sampled at `rate`: continuous across frames.
pub fn tone(freq_hz: f64, amplitude: f64, index: usize, rate: u32) -> Vec<f64> {
    let len = rate as usize / 50;
    (0..len)
        .map(|i| {
            let n = (index * len + i) as f64;
            amplitude * (2.0 * PI * freq_hz * n / f64::from(rate)).sin()
        })
        .collect()
}

/// Adds the click to a 20 ms frame sampled at `rate` (a multiple of 8 kHz):
/// from [`CLICK_AT`] for [`CLICK_LEN`] samples of 8 kHz.
pub fn add_click(frame: &mut [f64], rate: u32) {
    let scale = (rate / RATE) as usize;
    let burst = &mut frame[CLICK_AT * scale..(CLICK_AT + CLICK_LEN) * scale];
    for (i, sample) in burst.iter_mut().enumerate() {
        *sample += CLICK_AMPLITUDE * (2.0 * PI * CLICK_HZ * i as f64 / f64::from(rate)).sin();
    }
}

/// [`tone`] at 8 kHz, as a frame.
#[cfg(test)]
fn tone_frame(freq_hz: f64, amplitude: f64, index: usize) -> [f64; FRAME] {
    let mut out = [0.0; FRAME];
    out.copy_from_slice(&tone(freq_hz, amplitude, index, RATE));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_bucket_edges() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_micros(ms * 1000 - 50));
        }
        assert_eq!(h.quantile_ms(0.5), Some(50.0));
        assert_eq!(h.quantile_ms(0.99), Some(99.0));
        assert!((h.max_ms() - 99.95).abs() < 1e-9);
        assert_eq!(h.above(Duration::from_millis(90)), 10);
        h.record(Duration::from_secs(1));
        assert_eq!(h.above(Duration::from_millis(90)), 11);
        assert_eq!(h.quantile_ms(1.0), Some(1000.0));
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
    }

    #[test]
    fn goertzel_separates_whole_hertz_tones_over_a_second() {
        let frames: Vec<f64> =
            (0..50).flat_map(|i| tone_frame(350.0, 6000.0, i)).collect::<Vec<_>>();
        assert!((amplitude(&frames, 350.0) - 6000.0).abs() < 10.0);
        assert!(amplitude(&frames, 480.0) < 5.0);
    }

    #[test]
    fn a_click_is_found_at_its_sample() {
        let start = Instant::now();
        let mut detector = ClickDetector::default();
        let step = Duration::from_millis(20);
        for i in 0..10 {
            let frame = tone_frame(480.0, 6000.0, i);
            assert!(detector.frame(&frame, start + step * i as u32).is_none());
        }
        // The click starts at sample CLICK_AT + 100 of frame 10 (shifted by
        // 100 samples, as a server's mixing may place it anywhere).
        let mut shifted = [0.0; 2 * FRAME];
        let mut click = [0.0; FRAME];
        add_click(&mut click, RATE);
        shifted[100..100 + FRAME].copy_from_slice(&click);
        let mut found = Vec::new();
        for (k, i) in (10..12).enumerate() {
            let mut frame = tone_frame(480.0, 6000.0, i);
            for (s, c) in frame.iter_mut().zip(&shifted[k * FRAME..(k + 1) * FRAME]) {
                *s += c;
            }
            found.extend(detector.frame(&frame, start + step * i as u32));
        }
        assert_eq!(found.len(), 1, "one click found once");
        let expected =
            start + step * 10 + Duration::from_secs_f64((CLICK_AT + 100) as f64 / 8000.0);
        let error = found[0].max(expected) - found[0].min(expected);
        assert!(error <= Duration::from_micros(250), "onset off by {error:?}");
    }

    #[test]
    fn jitter_is_zero_for_a_steady_stream_and_grows_with_variation() {
        let mut steady = Jitter::default();
        for k in 0..100u32 {
            steady.update(f64::from(k * 160) + 5000.0, k * 160);
        }
        assert!(steady.ms(RATE) < 1e-9);
        let mut shaky = Jitter::default();
        for k in 0..1000u32 {
            let wobble = if k % 2 == 0 { 0.0 } else { 80.0 };
            shaky.update(f64::from(k * 160) + wobble, k * 160);
        }
        assert!((shaky.ms(RATE) - 10.0).abs() < 0.5, "{}", shaky.ms(RATE));
    }
}
