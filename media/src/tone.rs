//! Tones as a [`FrameSource`]: the entry and exit beeps, DTMF digits (ITU-T Q.23
//! frequency pairs), and any sequence of one- or two-frequency segments; plus a
//! Goertzel detector, which the tests use to check what a frame contains.
//!
//! Levels are in dBm0, the telephone network's digital reference: a sine at 0 dBm0 has
//! a peak of 3.14 dB below 16-bit full scale (G.711's largest sine is +3.14 dBm0).
//!
//! The beeps (documented for users in the conference's keypad and event docs):
//! - entry: 660 Hz then 880 Hz, 120 ms each, at -13 dBm0 (a rising pair);
//! - exit: 880 Hz then 660 Hz, 120 ms each, at -13 dBm0 (a falling pair).
//!
//! DTMF: the low-group tone at -10 dBm0 and the high-group tone 2 dB louder at -8 dBm0
//! (the "twist" that Q.24 and ETSI ES 201 235-2 expect senders to apply), 100 ms on and
//! 60 ms off per digit by default. Every segment starts and ends with a 4 ms
//! raised-cosine ramp, so tones do not click.

use std::f64::consts::PI;

use crate::dtmf::Digit;
use crate::source::{FrameSource, SourceError, SourceState, check_frame_buffer, check_rate};

/// Level of the entry and exit beeps.
pub const BEEP_LEVEL_DBM0: f64 = -13.0;
/// Length of each of the two notes of a beep.
pub const BEEP_NOTE_MS: u32 = 120;
/// The entry beep's notes, in order.
pub const ENTRY_BEEP_HZ: [f64; 2] = [660.0, 880.0];
/// The exit beep's notes, in order.
pub const EXIT_BEEP_HZ: [f64; 2] = [880.0, 660.0];
/// Level of the DTMF low-group (row) tone.
pub const DTMF_LOW_DBM0: f64 = -10.0;
/// Level of the DTMF high-group (column) tone.
pub const DTMF_HIGH_DBM0: f64 = -8.0;
/// Default DTMF tone length.
pub const DTMF_ON_MS: u32 = 100;
/// Default pause after each DTMF tone.
pub const DTMF_OFF_MS: u32 = 60;
/// Raised-cosine ramp at both ends of every segment.
pub const RAMP_MS: u32 = 4;
/// The DTMF row frequencies (Q.23), low group.
pub const DTMF_ROWS_HZ: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// The DTMF column frequencies (Q.23), high group.
pub const DTMF_COLUMNS_HZ: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// Peak of a 0 dBm0 sine in 16-bit PCM.
const DBM0_PEAK: f64 = 32_767.0 * 0.696_626; // 10^(-3.14/20)

/// The 16-bit peak amplitude of a sine at `dbm0`.
#[must_use]
pub fn dbm0_to_peak(dbm0: f64) -> f64 {
    DBM0_PEAK * 10f64.powf(dbm0 / 20.0)
}

/// The (row, column) frequencies of a DTMF key.
#[must_use]
pub fn dtmf_frequencies(digit: Digit) -> (f64, f64) {
    // Keypad positions of the RFC 4733 event codes 0-15 ("0123456789*#ABCD") as
    // (row, column) of the 4x4 keypad.
    const POSITIONS: [(usize, usize); 16] = [
        (3, 1), // 0
        (0, 0),
        (0, 1),
        (0, 2), // 1 2 3
        (1, 0),
        (1, 1),
        (1, 2), // 4 5 6
        (2, 0),
        (2, 1),
        (2, 2), // 7 8 9
        (3, 0), // *
        (3, 2), // #
        (0, 3),
        (1, 3),
        (2, 3),
        (3, 3), // A B C D
    ];
    let (row, column) = POSITIONS[usize::from(digit.event_code() & 0x0F)];
    (DTMF_ROWS_HZ[row], DTMF_COLUMNS_HZ[column])
}

/// One stretch of a tone: up to two sine components, or silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSegment {
    /// Up to two (frequency in Hz, level in dBm0) components; `None` is silent.
    pub components: [Option<(f64, f64)>; 2],
    /// Length in milliseconds.
    pub duration_ms: u32,
}

impl ToneSegment {
    /// A single sine.
    #[must_use]
    pub const fn single(freq_hz: f64, level_dbm0: f64, duration_ms: u32) -> Self {
        Self { components: [Some((freq_hz, level_dbm0)), None], duration_ms }
    }

    /// Two sines together.
    #[must_use]
    pub const fn dual(a: (f64, f64), b: (f64, f64), duration_ms: u32) -> Self {
        Self { components: [Some(a), Some(b)], duration_ms }
    }

    /// Silence.
    #[must_use]
    pub const fn silence(duration_ms: u32) -> Self {
        Self { components: [None, None], duration_ms }
    }
}

/// Why a tone could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ToneError {
    /// The rate is not usable for 20 ms frames.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A DTMF string contained a character that is not a key.
    #[error("{0:?} is not a DTMF key (0-9, *, #, A-D)")]
    InvalidDigit(char),
}

/// A tone generator: plays its segments once, then reports done.
#[derive(Debug, Clone)]
pub struct Tone {
    segments: Vec<ToneSegment>,
    rate: u32,
    /// Index of the segment playing.
    index: usize,
    /// Samples of that segment already played.
    offset: usize,
    /// Oscillator phases in radians, one per component.
    phases: [f64; 2],
    stopped: bool,
}

impl Tone {
    /// A tone from arbitrary segments at `rate` Hz.
    pub fn new(segments: Vec<ToneSegment>, rate: u32) -> Result<Self, ToneError> {
        let mut tone = Self {
            segments,
            rate: check_rate(rate)?,
            index: 0,
            offset: 0,
            phases: [0.0; 2],
            stopped: false,
        };
        tone.skip_finished();
        Ok(tone)
    }

    /// Moves past segments with nothing left to play, so that `is_done` is true right
    /// after the last sample rather than one frame later.
    fn skip_finished(&mut self) {
        while let Some(segment) = self.segments.get(self.index) {
            if self.offset < self.segment_len(segment) {
                break;
            }
            self.index += 1;
            self.offset = 0;
            self.phases = [0.0; 2];
        }
    }

    /// The entry beep (see the module docs).
    pub fn entry_beep(rate: u32) -> Result<Self, ToneError> {
        Self::new(
            ENTRY_BEEP_HZ
                .iter()
                .map(|&f| ToneSegment::single(f, BEEP_LEVEL_DBM0, BEEP_NOTE_MS))
                .collect(),
            rate,
        )
    }

    /// The exit beep (see the module docs).
    pub fn exit_beep(rate: u32) -> Result<Self, ToneError> {
        Self::new(
            EXIT_BEEP_HZ
                .iter()
                .map(|&f| ToneSegment::single(f, BEEP_LEVEL_DBM0, BEEP_NOTE_MS))
                .collect(),
            rate,
        )
    }

    /// DTMF tones for each key of `digits` (`0`-`9`, `*`, `#`, `A`-`D`), each
    /// `on_ms` long and followed by `off_ms` of silence.
    pub fn dtmf(digits: &str, on_ms: u32, off_ms: u32, rate: u32) -> Result<Self, ToneError> {
        let mut segments = Vec::with_capacity(digits.len() * 2);
        for c in digits.chars() {
            let digit = Digit::from_char(c).ok_or(ToneError::InvalidDigit(c))?;
            let (low, high) = dtmf_frequencies(digit);
            segments.push(ToneSegment::dual((low, DTMF_LOW_DBM0), (high, DTMF_HIGH_DBM0), on_ms));
            if off_ms > 0 {
                segments.push(ToneSegment::silence(off_ms));
            }
        }
        Self::new(segments, rate)
    }

    /// Whether everything has been played (or the tone was stopped).
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.stopped || self.index >= self.segments.len()
    }

    fn segment_len(&self, segment: &ToneSegment) -> usize {
        (u64::from(self.rate) * u64::from(segment.duration_ms) / 1000) as usize
    }

    /// The next sample, advancing through the segments. Zero once done.
    fn next_sample(&mut self) -> i16 {
        loop {
            let Some(segment) = self.segments.get(self.index).copied() else {
                return 0;
            };
            let len = self.segment_len(&segment);
            if self.offset >= len {
                self.skip_finished();
                continue;
            }
            let ramp = (u64::from(self.rate) * u64::from(RAMP_MS) / 1000).max(1) as usize;
            let edge = self.offset.min(len - 1 - self.offset);
            let gain =
                if edge < ramp { 0.5 - 0.5 * (PI * edge as f64 / ramp as f64).cos() } else { 1.0 };
            let mut value = 0.0;
            for (component, phase) in segment.components.iter().zip(&mut self.phases) {
                if let Some((freq, level)) = component {
                    value += dbm0_to_peak(*level) * phase.sin();
                    *phase = (*phase + 2.0 * PI * freq / f64::from(self.rate)) % (2.0 * PI);
                }
            }
            self.offset += 1;
            // `as` saturates, so two loud components cannot wrap around.
            return (value * gain).round() as i16;
        }
    }
}

impl FrameSource for Tone {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn next_frame(&mut self, out: &mut [i16]) -> Result<SourceState, SourceError> {
        let len = check_frame_buffer(self.rate, out)?;
        if self.is_done() {
            out[..len].fill(0);
            return Ok(SourceState::Done);
        }
        for slot in &mut out[..len] {
            *slot = self.next_sample();
        }
        self.skip_finished();
        Ok(SourceState::Playing)
    }

    fn stop(&mut self) {
        self.stopped = true;
    }
}

/// The amplitude of the `freq_hz` component of `samples` (a sine of peak `A` at that
/// frequency gives about `A`), by the Goertzel algorithm. Allocation-free.
#[must_use]
pub fn goertzel_amplitude(samples: &[i16], rate: u32, freq_hz: f64) -> f64 {
    if samples.is_empty() || rate == 0 {
        return 0.0;
    }
    let coefficient = 2.0 * (2.0 * PI * freq_hz / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &sample in samples {
        let s0 = f64::from(sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - coefficient * s1 * s2).max(0.0);
    2.0 * power.sqrt() / samples.len() as f64
}

/// The root-mean-square level of `samples`.
#[must_use]
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(mut tone: Tone) -> Vec<i16> {
        let frame = tone.samples_per_frame();
        let mut all = Vec::new();
        let mut out = vec![0i16; frame];
        while tone.next_frame(&mut out).unwrap() == SourceState::Playing {
            all.extend_from_slice(&out);
        }
        all
    }

    #[test]
    fn each_dtmf_digit_holds_its_two_frequencies_and_no_other() {
        let all: Vec<f64> = DTMF_ROWS_HZ.iter().chain(&DTMF_COLUMNS_HZ).copied().collect();
        for rate in [8000, 16000, 48000] {
            for key in "0123456789*#ABCD".chars() {
                let pcm = render(Tone::dtmf(&key.to_string(), 100, 0, rate).unwrap());
                assert_eq!(pcm.len(), rate as usize / 10);
                let digit = Digit::from_char(key).unwrap();
                let (low, high) = dtmf_frequencies(digit);
                let expected_low = dbm0_to_peak(DTMF_LOW_DBM0);
                let expected_high = dbm0_to_peak(DTMF_HIGH_DBM0);
                for &freq in &all {
                    let amplitude = goertzel_amplitude(&pcm, rate, freq);
                    if freq == low {
                        // The ramps take a little energy: within 1 dB.
                        assert!(amplitude > expected_low * 0.89, "{key} {freq} Hz: {amplitude:.0}");
                    } else if freq == high {
                        assert!(
                            amplitude > expected_high * 0.89,
                            "{key} {freq} Hz: {amplitude:.0}"
                        );
                    } else {
                        // At least 26 dB below the weaker of the two tones.
                        assert!(
                            amplitude < expected_low / 20.0,
                            "{key} leaks {freq} Hz: {amplitude:.0}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn dtmf_layout_matches_q23() {
        assert_eq!(dtmf_frequencies(Digit::from_char('1').unwrap()), (697.0, 1209.0));
        assert_eq!(dtmf_frequencies(Digit::from_char('0').unwrap()), (941.0, 1336.0));
        assert_eq!(dtmf_frequencies(Digit::STAR), (941.0, 1209.0));
        assert_eq!(dtmf_frequencies(Digit::POUND), (941.0, 1477.0));
        assert_eq!(dtmf_frequencies(Digit::from_char('D').unwrap()), (941.0, 1633.0));
        assert_eq!(dtmf_frequencies(Digit::from_char('6').unwrap()), (770.0, 1477.0));
        assert_eq!(Tone::dtmf("12x", 100, 60, 8000).unwrap_err(), ToneError::InvalidDigit('x'));
    }

    #[test]
    fn beeps_rise_and_fall_and_then_report_done() {
        let entry = render(Tone::entry_beep(16000).unwrap());
        assert_eq!(entry.len(), 16 * 240);
        let (first, second) = entry.split_at(16 * 120);
        assert!(goertzel_amplitude(first, 16000, 660.0) > 1000.0);
        assert!(goertzel_amplitude(first, 16000, 880.0) < 100.0);
        assert!(goertzel_amplitude(second, 16000, 880.0) > 1000.0);
        let exit = render(Tone::exit_beep(8000).unwrap());
        assert!(goertzel_amplitude(&exit[..960], 8000, 880.0) > 1000.0);
        assert!(goertzel_amplitude(&exit[960..], 8000, 660.0) > 1000.0);
        // Level: -13 dBm0 peak, so RMS is peak / sqrt(2) (less a little for the ramps).
        let expected = dbm0_to_peak(BEEP_LEVEL_DBM0) / 2f64.sqrt();
        assert!((rms(first) / expected - 1.0).abs() < 0.05);
    }

    #[test]
    fn stop_and_bad_calls() {
        let mut tone = Tone::dtmf("123", 100, 60, 8000).unwrap();
        let mut out = [1i16; 160];
        assert_eq!(tone.next_frame(&mut out), Ok(SourceState::Playing));
        tone.stop();
        assert_eq!(tone.next_frame(&mut out), Ok(SourceState::Done));
        assert!(out.iter().all(|&s| s == 0));
        assert!(matches!(tone.next_frame(&mut out[..10]), Err(SourceError::OutputTooSmall { .. })));
        assert!(Tone::entry_beep(0).is_err());
        assert!(Tone::entry_beep(8001).is_err());
        assert_eq!(goertzel_amplitude(&[], 8000, 1000.0), 0.0);
    }
}
