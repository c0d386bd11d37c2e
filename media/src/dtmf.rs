//! RFC 4733 telephone-event (DTMF over RTP): the 4-byte payload, a receive state
//! machine that turns a stream of event packets into one report per key press, and a
//! sender that turns a key press into its packet sequence.
//!
//! Both state machines are sans-IO: the receiver is fed `(now, RTP timestamp, marker,
//! payload)` and polled for events and its next deadline; the sender yields packets
//! with the offset at which the caller should send each. Neither allocates.
//!
//! How the receiver tells events apart (RFC 4733 section 2.5.1): all packets of one
//! event carry the timestamp of the event's start, so a new `(timestamp, event code)`
//! pair is a new key press. The first packet seen for a new pair reports the digit, even
//! if it is not the marker packet (the start may be lost) and even if it already has the
//! E bit (everything but the end may be lost). Packets for the press that just ended
//! (the redundant end packets, late updates) are ignored. A press with no end packet
//! ends when a new press starts or when [`DtmfReceiver::handle_timeout`] finds no packet
//! for [`ReceiverConfig::end_timeout_ms`].

use thiserror::Error;

/// Length of one telephone-event payload block.
pub const PAYLOAD_LEN: usize = 4;
/// The volume field is 6 bits: 0 to 63, in -dBm0 (0 is loudest).
pub const MAX_VOLUME: u8 = 63;
/// The E (end) bit in the second byte.
const END_BIT: u8 = 0x80;
/// The volume bits in the second byte (the R bit between E and volume is reserved).
const VOLUME_MASK: u8 = 0x3F;

/// Errors of the telephone-event payload and the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DtmfError {
    /// The peer sent a payload shorter than one event block.
    #[error("telephone-event payload of {0} bytes, at least {PAYLOAD_LEN} needed")]
    TooShort(usize),
    /// The caller's buffer is shorter than one event block.
    #[error("output buffer of {0} bytes, {PAYLOAD_LEN} needed")]
    BufferTooSmall(usize),
    /// The caller asked for a volume the 6-bit field cannot carry.
    #[error("volume {0} out of range 0..=63")]
    VolumeOutOfRange(u8),
    /// The caller asked for a key press of zero length or one too long for the 16-bit
    /// duration field (long-event segmentation is not implemented by the sender).
    #[error("duration of {0} ms is zero or does not fit one RFC 4733 event")]
    InvalidDuration(u32),
    /// The caller gave a zero packet interval or clock rate.
    #[error("packet interval and clock rate must be positive")]
    InvalidTiming,
}

/// A DTMF key: one of the RFC 4733 event codes 0 to 15 (`0`-`9`, `*`, `#`, `A`-`D`).
/// The field is private so that a `Digit` always holds a valid code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(u8);

/// The keys in event-code order.
const KEYS: &[u8; 16] = b"0123456789*#ABCD";

impl Digit {
    /// `*`, event 10.
    pub const STAR: Self = Self(10);
    /// `#`, event 11.
    pub const POUND: Self = Self(11);

    /// The digit for an RFC 4733 event code, or `None` for the non-DTMF events (flash,
    /// tones) that this crate does not handle.
    #[must_use]
    pub const fn from_event(code: u8) -> Option<Self> {
        if code < 16 { Some(Self(code)) } else { None }
    }

    /// The RFC 4733 event code.
    #[must_use]
    pub const fn event_code(self) -> u8 {
        self.0
    }

    /// The key as written on the keypad: `0`-`9`, `*`, `#`, `A`-`D`.
    #[must_use]
    pub const fn as_char(self) -> char {
        // self.0 < 16 by construction; the mask keeps the index in range regardless.
        KEYS[(self.0 & 0x0F) as usize] as char
    }

    /// The digit for a keypad character (`a`-`d` accepted too).
    #[must_use]
    pub const fn from_char(c: char) -> Option<Self> {
        match c {
            '0'..='9' => Some(Self(c as u8 - b'0')),
            '*' => Some(Self::STAR),
            '#' => Some(Self::POUND),
            'A'..='D' => Some(Self(c as u8 - b'A' + 12)),
            'a'..='d' => Some(Self(c as u8 - b'a' + 12)),
            _ => None,
        }
    }
}

/// One telephone-event payload block (RFC 4733 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 are the DTMF keys).
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload. Bytes after the first block are
    /// ignored: RFC 4733 sends one event per packet, and the reserved R bit is ignored
    /// as the RFC asks of receivers.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, hi, lo, ..] = *payload else {
            return Err(DtmfError::TooShort(payload.len()));
        };
        Ok(Self {
            event,
            end: flags & END_BIT != 0,
            volume: flags & VOLUME_MASK,
            duration: u16::from_be_bytes([hi, lo]),
        })
    }

    /// Writes the 4-byte block into `out`, returning [`PAYLOAD_LEN`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, DtmfError> {
        if self.volume > MAX_VOLUME {
            return Err(DtmfError::VolumeOutOfRange(self.volume));
        }
        let Some(block) = out.get_mut(..PAYLOAD_LEN) else {
            return Err(DtmfError::BufferTooSmall(out.len()));
        };
        let flags = if self.end { END_BIT } else { 0 } | self.volume;
        let [hi, lo] = self.duration.to_be_bytes();
        block.copy_from_slice(&[self.event, flags, hi, lo]);
        Ok(PAYLOAD_LEN)
    }

    /// The 4-byte block.
    pub fn to_bytes(&self) -> Result<[u8; PAYLOAD_LEN], DtmfError> {
        let mut bytes = [0u8; PAYLOAD_LEN];
        self.write_to(&mut bytes)?;
        Ok(bytes)
    }
}

/// Why a key press was reported as ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A packet with the E bit arrived.
    EndBit,
    /// A packet of a new press arrived before any end packet of this one.
    Superseded,
    /// No packet arrived for the configured timeout.
    TimedOut,
}

/// What the receiver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A key press began. Reported exactly once per press: this is the digit.
    Started {
        /// The key.
        digit: Digit,
        /// RTP timestamp of the press (the event's start).
        timestamp: u32,
    },
    /// The press reported by the matching `Started` ended.
    Ended {
        /// The key.
        digit: Digit,
        /// RTP timestamp of the press.
        timestamp: u32,
        /// The longest duration seen, in RTP timestamp units.
        duration: u32,
        /// What ended it.
        reason: EndReason,
    },
}

/// Receiver tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// A press with no packet for this long is ended with [`EndReason::TimedOut`].
    /// Senders refresh at least every 50 ms (RFC 4733 section 2.5.1.2 suggests 50 ms);
    /// 500 ms rides out a burst of loss without splitting one press into two.
    pub end_timeout_ms: u64,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self { end_timeout_ms: 500 }
    }
}

/// The press in progress.
#[derive(Debug, Clone, Copy)]
struct ActivePress {
    digit: Digit,
    /// Timestamp of the current segment (changes for long-event continuation).
    segment_timestamp: u32,
    /// Timestamp the press was reported with.
    timestamp: u32,
    /// Duration accumulated by completed segments of a long event.
    earlier_segments: u32,
    /// Longest duration seen in the current segment.
    duration: u16,
    last_packet_ms: u64,
}

impl ActivePress {
    fn total_duration(&self) -> u32 {
        self.earlier_segments.saturating_add(u32::from(self.duration))
    }

    fn ended(&self, reason: EndReason) -> DtmfEvent {
        DtmfEvent::Ended {
            digit: self.digit,
            timestamp: self.timestamp,
            duration: self.total_duration(),
            reason,
        }
    }
}

/// Counters kept by the receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Payloads too short to parse.
    pub malformed: u64,
    /// Events with codes this crate does not handle (flash, tones).
    pub unsupported: u64,
    /// Packets ignored as repeats of a finished press or as older than it.
    pub stale: u64,
}

/// Maximum events one packet can produce: end of the old press, start and end of the
/// new one.
const QUEUE_LEN: usize = 4;

/// The RFC 4733 receive state machine for one leg.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    config: ReceiverConfig,
    active: Option<ActivePress>,
    /// `(segment timestamp, event code)` of the press that ended last, so its redundant
    /// end packets and late updates are not taken for a new press.
    last_ended: Option<(u32, u8)>,
    queue: [Option<DtmfEvent>; QUEUE_LEN],
    queue_head: usize,
    queue_len: usize,
    stats: ReceiverStats,
}

impl Default for DtmfReceiver {
    fn default() -> Self {
        Self::new(ReceiverConfig::default())
    }
}

/// Serial-number comparison of RTP timestamps: is `a` before `b`?
fn timestamp_before(a: u32, b: u32) -> bool {
    // Reinterpreting the wrapped difference as signed is the RFC 1982 idiom.
    (a.wrapping_sub(b) as i32) < 0
}

impl DtmfReceiver {
    /// A receiver with the given tuning.
    #[must_use]
    pub fn new(config: ReceiverConfig) -> Self {
        Self {
            config,
            active: None,
            last_ended: None,
            queue: [None; QUEUE_LEN],
            queue_head: 0,
            queue_len: 0,
            stats: ReceiverStats::default(),
        }
    }

    /// Feeds one telephone-event RTP packet: its arrival time in ms on the caller's
    /// monotonic clock, RTP timestamp, marker bit and payload. Poll
    /// [`Self::poll_event`] afterwards. A malformed payload is counted and reported as
    /// an error; the state is unchanged.
    pub fn handle_packet(
        &mut self,
        now_ms: u64,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        let packet = TelephoneEvent::parse(payload).inspect_err(|_| self.stats.malformed += 1)?;
        let Some(digit) = Digit::from_event(packet.event) else {
            self.stats.unsupported += 1;
            return Ok(());
        };
        let key = (timestamp, packet.event);

        if let Some(active) = &mut self.active {
            if (active.segment_timestamp, active.digit.event_code()) == key {
                active.duration = active.duration.max(packet.duration);
                active.last_packet_ms = active.last_packet_ms.max(now_ms);
                if packet.end {
                    let ended = active.ended(EndReason::EndBit);
                    self.finish(key, ended);
                }
                return Ok(());
            }
            // RFC 4733 section 2.5.2.3: an event longer than the 16-bit duration field
            // continues in a new segment whose timestamp is the old one plus the old
            // duration, without the marker bit. It is the same key press.
            let continues = !marker
                && active.digit == digit
                && timestamp == active.segment_timestamp.wrapping_add(u32::from(active.duration));
            if continues {
                active.earlier_segments = active.total_duration();
                active.segment_timestamp = timestamp;
                active.duration = packet.duration;
                active.last_packet_ms = active.last_packet_ms.max(now_ms);
                if packet.end {
                    let ended = active.ended(EndReason::EndBit);
                    self.finish(key, ended);
                }
                return Ok(());
            }
            if timestamp_before(timestamp, active.segment_timestamp) {
                // A late packet from an earlier press.
                self.stats.stale += 1;
                return Ok(());
            }
        }

        if let Some(last) = self.last_ended
            && (last == key || timestamp_before(timestamp, last.0))
        {
            // Redundant end packets (normally three), or a reordered update of the
            // press already reported, or an older press.
            self.stats.stale += 1;
            return Ok(());
        }

        // A new press.
        if let Some(previous) = self.active.take() {
            self.push(previous.ended(EndReason::Superseded));
            self.last_ended = Some((previous.segment_timestamp, previous.digit.event_code()));
        }
        self.push(DtmfEvent::Started { digit, timestamp });
        let press = ActivePress {
            digit,
            segment_timestamp: timestamp,
            timestamp,
            earlier_segments: 0,
            duration: packet.duration,
            last_packet_ms: now_ms,
        };
        if packet.end {
            // Start and middle lost: report the whole press at once.
            self.finish(key, press.ended(EndReason::EndBit));
        } else {
            self.active = Some(press);
        }
        Ok(())
    }

    /// Ends a press that has gone quiet for the configured timeout.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if let Some(deadline) = self.poll_timeout()
            && now_ms >= deadline
            && let Some(active) = self.active.take()
        {
            self.push(active.ended(EndReason::TimedOut));
            self.last_ended = Some((active.segment_timestamp, active.digit.event_code()));
        }
    }

    /// When [`Self::handle_timeout`] should next be called, if a press is in progress.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.active.map(|a| a.last_packet_ms.saturating_add(self.config.end_timeout_ms))
    }

    /// The next event, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        if self.queue_len == 0 {
            return None;
        }
        let event = self.queue[self.queue_head].take();
        self.queue_head = (self.queue_head + 1) % QUEUE_LEN;
        self.queue_len -= 1;
        event
    }

    /// Whether a key is held down right now.
    #[must_use]
    pub fn active_digit(&self) -> Option<Digit> {
        self.active.map(|a| a.digit)
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    fn finish(&mut self, key: (u32, u8), ended: DtmfEvent) {
        self.active = None;
        self.last_ended = Some(key);
        self.push(ended);
    }

    fn push(&mut self, event: DtmfEvent) {
        if self.queue_len == QUEUE_LEN {
            // Cannot happen when the caller polls after each packet (one packet queues
            // at most three events); if it does not poll, the oldest event is dropped
            // rather than growing memory.
            self.queue_head = (self.queue_head + 1) % QUEUE_LEN;
            self.queue_len -= 1;
        }
        let tail = (self.queue_head + self.queue_len) % QUEUE_LEN;
        self.queue[tail] = Some(event);
        self.queue_len += 1;
    }
}

/// Sender tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// RTP clock rate of the telephone-event payload type (8000 for most offers).
    pub clock_rate: u32,
    /// Interval between update packets, in ms.
    pub interval_ms: u32,
    /// How many times the end packet is sent (RFC 4733 section 2.5.1.4 suggests three).
    pub end_packets: u8,
    /// Volume in -dBm0 (0..=63).
    pub volume: u8,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self { clock_rate: 8000, interval_ms: 20, end_packets: 3, volume: 10 }
    }
}

/// One packet of a key press to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingEvent {
    /// Send this long after the first packet, in ms.
    pub offset_ms: u32,
    /// The RTP marker bit (set on the first packet only).
    pub marker: bool,
    /// The RTP timestamp (the same for every packet of the press).
    pub timestamp: u32,
    /// The payload.
    pub payload: [u8; PAYLOAD_LEN],
}

/// Produces the packets of one key press: a start packet with the marker bit, an update
/// every interval, then the end packet repeated. Each update reports the duration of
/// the press up to the end of its interval, as an audio packet covers its interval.
#[derive(Debug, Clone)]
pub struct DtmfPackets {
    digit: Digit,
    config: SenderConfig,
    timestamp: u32,
    /// Total duration in timestamp units.
    duration: u16,
    /// Timestamp units per interval.
    step: u32,
    /// Update packets before the end packets.
    updates: u32,
    /// Packets produced so far.
    index: u32,
}

impl DtmfPackets {
    /// The packets for `digit` held for `duration_ms`, starting at RTP `timestamp`.
    pub fn new(
        digit: Digit,
        duration_ms: u32,
        timestamp: u32,
        config: SenderConfig,
    ) -> Result<Self, DtmfError> {
        if config.volume > MAX_VOLUME {
            return Err(DtmfError::VolumeOutOfRange(config.volume));
        }
        if config.interval_ms == 0 || config.clock_rate == 0 {
            return Err(DtmfError::InvalidTiming);
        }
        let units = u64::from(duration_ms) * u64::from(config.clock_rate) / 1000;
        let duration = u16::try_from(units)
            .ok()
            .filter(|&d| d > 0)
            .ok_or(DtmfError::InvalidDuration(duration_ms))?;
        let step = u64::from(config.interval_ms) * u64::from(config.clock_rate) / 1000;
        let step = u32::try_from(step.max(1)).map_err(|_| DtmfError::InvalidTiming)?;
        let updates = u32::from(duration).div_ceil(step);
        Ok(Self { digit, config, timestamp, duration, step, updates, index: 0 })
    }

    /// Packets still to come.
    #[must_use]
    pub fn remaining(&self) -> usize {
        (self.updates + u32::from(self.config.end_packets)).saturating_sub(self.index) as usize
    }
}

impl Iterator for DtmfPackets {
    type Item = OutgoingEvent;

    fn next(&mut self) -> Option<OutgoingEvent> {
        if self.remaining() == 0 {
            return None;
        }
        let index = self.index;
        self.index += 1;
        let end = index >= self.updates;
        let duration = if end {
            self.duration
        } else {
            let covered = (index + 1).saturating_mul(self.step);
            // covered <= duration is checked by the min, so the conversion holds.
            u16::try_from(covered.min(u32::from(self.duration))).unwrap_or(self.duration)
        };
        let event = TelephoneEvent {
            event: self.digit.event_code(),
            end,
            volume: self.config.volume,
            duration,
        };
        let mut payload = [0u8; PAYLOAD_LEN];
        // The volume was checked in new() and the buffer is exactly PAYLOAD_LEN long.
        event.write_to(&mut payload).ok()?;
        Some(OutgoingEvent {
            offset_ms: index.saturating_mul(self.config.interval_ms),
            marker: index == 0,
            timestamp: self.timestamp,
            payload,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent { event, end, volume: 10, duration }.to_bytes().unwrap()
    }

    fn drain(receiver: &mut DtmfReceiver) -> Vec<DtmfEvent> {
        std::iter::from_fn(|| receiver.poll_event()).collect()
    }

    fn started(receiver: &[DtmfEvent]) -> Vec<char> {
        receiver
            .iter()
            .filter_map(|e| match e {
                DtmfEvent::Started { digit, .. } => Some(digit.as_char()),
                DtmfEvent::Ended { .. } => None,
            })
            .collect()
    }

    #[test]
    fn parse_and_write_round_trip() {
        let bytes = [0x05, 0x8A, 0x03, 0x20];
        let event = TelephoneEvent::parse(&bytes).unwrap();
        assert_eq!(event, TelephoneEvent { event: 5, end: true, volume: 10, duration: 800 });
        assert_eq!(event.to_bytes().unwrap(), bytes);
        // The reserved bit is ignored on receive and written as zero.
        let with_reserved = TelephoneEvent::parse(&[0x05, 0xCA, 0x03, 0x20]).unwrap();
        assert_eq!(with_reserved, event);
        // Extra bytes after the first block are ignored.
        assert_eq!(TelephoneEvent::parse(&[0x05, 0x8A, 0x03, 0x20, 0xFF]), Ok(event));
    }

    #[test]
    fn parse_rejects_short_input() {
        for len in 0..4 {
            assert_eq!(TelephoneEvent::parse(&[0u8; 3][..len]), Err(DtmfError::TooShort(len)));
        }
    }

    #[test]
    fn write_rejects_bad_volume_and_short_buffer() {
        let mut event = TelephoneEvent { event: 1, end: false, volume: 64, duration: 0 };
        assert_eq!(event.to_bytes(), Err(DtmfError::VolumeOutOfRange(64)));
        event.volume = 63;
        assert_eq!(event.write_to(&mut [0u8; 3]), Err(DtmfError::BufferTooSmall(3)));
        let mut long = [0xEEu8; 6];
        assert_eq!(event.write_to(&mut long), Ok(4));
        assert_eq!(long, [1, 63, 0, 0, 0xEE, 0xEE]);
    }

    /// Cross-check of the byte layout against the `audio-codec` crate's independent
    /// implementation, over every event code, both E values and sampled fields.
    #[test]
    fn payload_layout_matches_audio_codec() {
        for event in 0..=255u8 {
            for end in [false, true] {
                for (volume, duration) in [(0u8, 0u16), (10, 160), (63, 65535), (37, 4321)] {
                    let ours = TelephoneEvent { event, end, volume, duration };
                    let theirs = audio_codec::telephone_event::encode_event_payload(
                        event, end, volume, duration,
                    );
                    assert_eq!(ours.to_bytes().unwrap(), theirs);
                    let parsed = audio_codec::telephone_event::parse_telephone_event(&theirs)
                        .expect("audio-codec parses its own payload");
                    assert_eq!(
                        (parsed.event, parsed.end, parsed.volume, parsed.duration),
                        (event, end, volume, duration)
                    );
                }
            }
        }
    }

    #[test]
    fn digits_map_to_codes_and_characters() {
        let keys = "0123456789*#ABCD";
        for (code, c) in keys.chars().enumerate() {
            let digit = Digit::from_event(code as u8).unwrap();
            assert_eq!(digit.as_char(), c);
            assert_eq!(digit.event_code(), code as u8);
            assert_eq!(Digit::from_char(c), Some(digit));
        }
        assert_eq!(Digit::from_char('b'), Digit::from_event(13));
        assert_eq!(Digit::from_event(16), None);
        assert_eq!(Digit::from_char('E'), None);
    }

    /// The normal case: marker start, updates, three end packets -> one digit, one end.
    #[test]
    fn a_full_press_reports_one_digit_and_one_end() {
        let mut rx = DtmfReceiver::default();
        let ts = 1000;
        rx.handle_packet(0, ts, true, &payload(7, false, 160)).unwrap();
        assert_eq!(
            drain(&mut rx),
            [DtmfEvent::Started { digit: Digit::from_event(7).unwrap(), timestamp: ts }]
        );
        for i in 2..=5u16 {
            rx.handle_packet(u64::from(i) * 20, ts, false, &payload(7, false, i * 160)).unwrap();
        }
        assert!(drain(&mut rx).is_empty(), "updates report nothing");
        for n in 0..3 {
            rx.handle_packet(120 + n * 20, ts, false, &payload(7, true, 800)).unwrap();
        }
        assert_eq!(
            drain(&mut rx),
            [DtmfEvent::Ended {
                digit: Digit::from_event(7).unwrap(),
                timestamp: ts,
                duration: 800,
                reason: EndReason::EndBit
            }]
        );
        assert_eq!(rx.stats().stale, 2, "the two redundant end packets");
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn lost_start_packets_still_report_the_digit_once() {
        let mut rx = DtmfReceiver::default();
        // The marker packet and the first update are lost.
        rx.handle_packet(40, 5000, false, &payload(11, false, 480)).unwrap();
        rx.handle_packet(60, 5000, false, &payload(11, false, 640)).unwrap();
        let events = drain(&mut rx);
        assert_eq!(started(&events), ['#']);
    }

    #[test]
    fn only_end_packets_report_start_and_end_together() {
        let mut rx = DtmfReceiver::default();
        for n in 0..3 {
            rx.handle_packet(n * 20, 8000, false, &payload(10, true, 1600)).unwrap();
        }
        assert_eq!(
            drain(&mut rx),
            [
                DtmfEvent::Started { digit: Digit::STAR, timestamp: 8000 },
                DtmfEvent::Ended {
                    digit: Digit::STAR,
                    timestamp: 8000,
                    duration: 1600,
                    reason: EndReason::EndBit
                }
            ]
        );
    }

    #[test]
    fn the_same_digit_twice_is_two_presses_told_apart_by_timestamp() {
        let mut rx = DtmfReceiver::default();
        for (start_ms, ts) in [(0u64, 0u32), (300, 2400)] {
            rx.handle_packet(start_ms, ts, true, &payload(1, false, 160)).unwrap();
            for n in 0..3 {
                rx.handle_packet(start_ms + 20 + n * 20, ts, false, &payload(1, true, 320))
                    .unwrap();
            }
        }
        let events = drain(&mut rx);
        assert_eq!(started(&events), ['1', '1']);
        assert_eq!(events.len(), 4);
    }

    #[test]
    fn a_press_without_end_packets_is_ended_by_the_next_press() {
        let mut rx = DtmfReceiver::default();
        rx.handle_packet(0, 100, true, &payload(2, false, 160)).unwrap();
        rx.handle_packet(20, 100, false, &payload(2, false, 320)).unwrap();
        // The end packets are lost; the next press starts.
        rx.handle_packet(200, 2000, true, &payload(3, false, 160)).unwrap();
        let events = drain(&mut rx);
        assert_eq!(
            events,
            [
                DtmfEvent::Started { digit: Digit::from_event(2).unwrap(), timestamp: 100 },
                DtmfEvent::Ended {
                    digit: Digit::from_event(2).unwrap(),
                    timestamp: 100,
                    duration: 320,
                    reason: EndReason::Superseded
                },
                DtmfEvent::Started { digit: Digit::from_event(3).unwrap(), timestamp: 2000 },
            ]
        );
        // A late end packet of the superseded press starts nothing.
        rx.handle_packet(220, 100, false, &payload(2, true, 480)).unwrap();
        assert!(drain(&mut rx).is_empty());
        assert_eq!(rx.active_digit(), Some(Digit::from_event(3).unwrap()));
    }

    #[test]
    fn a_press_without_end_packets_times_out_at_the_callers_time() {
        let mut rx = DtmfReceiver::new(ReceiverConfig { end_timeout_ms: 500 });
        rx.handle_packet(1000, 0, true, &payload(9, false, 160)).unwrap();
        rx.handle_packet(1050, 0, false, &payload(9, false, 560)).unwrap();
        drain(&mut rx);
        assert_eq!(rx.poll_timeout(), Some(1550));
        rx.handle_timeout(1549);
        assert!(drain(&mut rx).is_empty(), "not yet");
        rx.handle_timeout(1550);
        assert_eq!(
            drain(&mut rx),
            [DtmfEvent::Ended {
                digit: Digit::from_event(9).unwrap(),
                timestamp: 0,
                duration: 560,
                reason: EndReason::TimedOut
            }]
        );
        assert_eq!(rx.poll_timeout(), None);
        // Late packets of the timed-out press do not start it again.
        rx.handle_packet(1600, 0, false, &payload(9, true, 800)).unwrap();
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn a_clock_going_backwards_does_not_shorten_the_timeout() {
        let mut rx = DtmfReceiver::default();
        rx.handle_packet(1000, 0, true, &payload(4, false, 160)).unwrap();
        rx.handle_packet(900, 0, false, &payload(4, false, 320)).unwrap();
        assert_eq!(rx.poll_timeout(), Some(1500));
    }

    #[test]
    fn reordered_packets_of_an_older_press_are_ignored() {
        let mut rx = DtmfReceiver::default();
        rx.handle_packet(0, 10_000, true, &payload(5, false, 160)).unwrap();
        // An update of a press that started before this one arrives late.
        rx.handle_packet(10, 9_000, false, &payload(6, false, 320)).unwrap();
        let events = drain(&mut rx);
        assert_eq!(started(&events), ['5']);
        assert_eq!(events.len(), 1);
        assert_eq!(rx.stats().stale, 1);
    }

    #[test]
    fn timestamps_wrapping_around_u32_are_still_new_presses() {
        let mut rx = DtmfReceiver::default();
        rx.handle_packet(0, u32::MAX - 100, true, &payload(1, true, 160)).unwrap();
        rx.handle_packet(300, 2000, true, &payload(2, true, 160)).unwrap();
        assert_eq!(started(&drain(&mut rx)), ['1', '2']);
    }

    #[test]
    fn a_long_event_continues_across_segments() {
        let mut rx = DtmfReceiver::default();
        rx.handle_packet(0, 0, true, &payload(0, false, 160)).unwrap();
        rx.handle_packet(8000, 0, false, &payload(0, false, u16::MAX)).unwrap();
        // RFC 4733 2.5.2.3: the next segment starts at the old timestamp + duration.
        rx.handle_packet(8020, u32::from(u16::MAX), false, &payload(0, false, 160)).unwrap();
        rx.handle_packet(8040, u32::from(u16::MAX), false, &payload(0, true, 320)).unwrap();
        assert_eq!(
            drain(&mut rx),
            [
                DtmfEvent::Started { digit: Digit::from_event(0).unwrap(), timestamp: 0 },
                DtmfEvent::Ended {
                    digit: Digit::from_event(0).unwrap(),
                    timestamp: 0,
                    duration: u32::from(u16::MAX) + 320,
                    reason: EndReason::EndBit
                }
            ]
        );
    }

    #[test]
    fn malformed_and_unsupported_packets_are_counted_not_reported() {
        let mut rx = DtmfReceiver::default();
        assert_eq!(rx.handle_packet(0, 0, true, &[1, 2]), Err(DtmfError::TooShort(2)));
        // Event 16 is hook flash.
        rx.handle_packet(0, 0, true, &payload(16, false, 160)).unwrap();
        assert!(drain(&mut rx).is_empty());
        assert_eq!(rx.stats(), ReceiverStats { malformed: 1, unsupported: 1, stale: 0 });
    }

    #[test]
    fn sender_makes_marker_start_updates_and_three_ends() {
        let packets: Vec<OutgoingEvent> =
            DtmfPackets::new(Digit::POUND, 100, 4242, SenderConfig::default()).unwrap().collect();
        // 100 ms at 20 ms intervals: 5 updates, then 3 end packets.
        assert_eq!(packets.len(), 8);
        assert!(packets[0].marker);
        assert!(packets[1..].iter().all(|p| !p.marker));
        assert!(packets.iter().all(|p| p.timestamp == 4242));
        let parsed: Vec<TelephoneEvent> =
            packets.iter().map(|p| TelephoneEvent::parse(&p.payload).unwrap()).collect();
        let durations: Vec<u16> = parsed.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800, 800]);
        let ends: Vec<bool> = parsed.iter().map(|e| e.end).collect();
        assert_eq!(ends, [false, false, false, false, false, true, true, true]);
        assert!(parsed.iter().all(|e| e.event == 11 && e.volume == 10));
        let offsets: Vec<u32> = packets.iter().map(|p| p.offset_ms).collect();
        assert_eq!(offsets, [0, 20, 40, 60, 80, 100, 120, 140]);
    }

    #[test]
    fn sender_interval_is_configurable_and_caps_the_last_update() {
        let config = SenderConfig { interval_ms: 50, clock_rate: 16000, ..SenderConfig::default() };
        let packets: Vec<OutgoingEvent> =
            DtmfPackets::new(Digit::from_event(3).unwrap(), 120, 0, config).unwrap().collect();
        let durations: Vec<u16> =
            packets.iter().map(|p| TelephoneEvent::parse(&p.payload).unwrap().duration).collect();
        assert_eq!(durations, [800, 1600, 1920, 1920, 1920, 1920]);
        assert_eq!(packets[1].offset_ms, 50);
    }

    #[test]
    fn sender_rejects_bad_parameters() {
        let config = SenderConfig::default();
        assert_eq!(
            DtmfPackets::new(Digit::from_event(1).unwrap(), 0, 0, config).err(),
            Some(DtmfError::InvalidDuration(0))
        );
        // 8.2 s at 8 kHz exceeds the 16-bit duration field.
        assert_eq!(
            DtmfPackets::new(Digit::from_event(1).unwrap(), 8200, 0, config).err(),
            Some(DtmfError::InvalidDuration(8200))
        );
        let loud = SenderConfig { volume: 64, ..config };
        assert_eq!(
            DtmfPackets::new(Digit::from_event(1).unwrap(), 100, 0, loud).err(),
            Some(DtmfError::VolumeOutOfRange(64))
        );
        let zero = SenderConfig { interval_ms: 0, ..config };
        assert_eq!(
            DtmfPackets::new(Digit::from_event(1).unwrap(), 100, 0, zero).err(),
            Some(DtmfError::InvalidTiming)
        );
    }

    /// The sender and the receiver agree: every key, sent with loss of the marker
    /// packet or of all but one end packet, is received exactly once.
    #[test]
    fn sender_output_drives_the_receiver_to_one_digit_per_press() {
        let keys = "0123456789*#ABCD";
        for drop in [None, Some(0usize), Some(6), Some(7)] {
            let mut rx = DtmfReceiver::default();
            let mut events = Vec::new();
            let mut now = 0u64;
            let mut ts = 0u32;
            for c in keys.chars() {
                let digit = Digit::from_char(c).unwrap();
                let packets = DtmfPackets::new(digit, 100, ts, SenderConfig::default()).unwrap();
                for (i, p) in packets.enumerate() {
                    if Some(i) == drop {
                        continue;
                    }
                    rx.handle_packet(
                        now + u64::from(p.offset_ms),
                        p.timestamp,
                        p.marker,
                        &p.payload,
                    )
                    .unwrap();
                    events.extend(drain(&mut rx));
                }
                now += 300;
                ts = ts.wrapping_add(2400);
            }
            let digits: String = started(&events).into_iter().collect();
            assert_eq!(digits, keys, "dropping packet {drop:?}");
            let ends = events
                .iter()
                .filter(|e| matches!(e, DtmfEvent::Ended { reason: EndReason::EndBit, .. }))
                .count();
            assert_eq!(ends, keys.len());
        }
    }

    /// Random loss, duplication and adjacent reordering of the sender's packets: every
    /// press with at least one surviving packet is reported exactly once, in order,
    /// and starts and ends alternate.
    #[test]
    fn random_loss_and_reordering_report_each_press_once() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % 100
        };
        let keys: Vec<Digit> = "159*#0AD".chars().filter_map(Digit::from_char).collect();
        for _round in 0..200 {
            let mut rx = DtmfReceiver::default();
            let mut expected = String::new();
            let mut got = String::new();
            let mut open = false;
            let mut now = 0u64;
            for (n, &digit) in keys.iter().enumerate() {
                let ts = 1_000 + n as u32 * 4_000;
                let mut packets: Vec<OutgoingEvent> =
                    DtmfPackets::new(digit, 60 + 20 * (n as u32 % 4), ts, SenderConfig::default())
                        .unwrap()
                        .filter(|_| random() >= 30)
                        .collect();
                if random() < 30 && packets.len() > 1 {
                    let i = random() as usize % (packets.len() - 1);
                    packets.swap(i, i + 1);
                }
                if let Some(&first) = packets.first()
                    && random() < 20
                {
                    packets.push(first);
                }
                if !packets.is_empty() {
                    expected.push(digit.as_char());
                }
                for p in packets {
                    rx.handle_packet(
                        now + u64::from(p.offset_ms),
                        p.timestamp,
                        p.marker,
                        &p.payload,
                    )
                    .unwrap();
                    while let Some(event) = rx.poll_event() {
                        match event {
                            DtmfEvent::Started { digit, .. } => {
                                assert!(!open);
                                open = true;
                                got.push(digit.as_char());
                            }
                            DtmfEvent::Ended { .. } => {
                                assert!(open);
                                open = false;
                            }
                        }
                    }
                }
                now += 500;
            }
            assert_eq!(got, expected);
        }
    }
}
