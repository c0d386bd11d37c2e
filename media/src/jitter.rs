//! The adaptive jitter buffer of one leg: RTP packets go in as they arrive
//! ([`JitterBuffer::push`]), and the mixer takes one 20 ms frame per tick
//! ([`JitterBuffer::pop`]), getting either the next frame or an order to conceal.
//!
//! Sans-IO: the caller supplies every time (arrival and tick, in ms on its monotonic
//! clock; a time that goes backwards is treated as no time passing), and all storage is
//! allocated in [`JitterBuffer::new`], so neither `push` nor `pop` allocates.
//!
//! # How it works
//!
//! - Packets are kept in a ring of slots indexed by extended sequence number
//!   ([`SeqNo`], a `u64` that keeps counting across the `u16` wrap). Playout follows the
//!   sequence: reordered packets fall into place, duplicates are dropped, and a packet
//!   whose turn has passed is discarded and counted as late.
//! - The *target delay* follows the RFC 3550 interarrival jitter estimate J:
//!   one frame plus [`JITTER_MULTIPLIER`] x J, rounded up to whole frames and kept between
//!   [`JitterConfig::min_delay_ms`] and [`JitterConfig::max_delay_ms`] (20 and 200 ms).
//! - Playout starts (and restarts after running dry) once the buffer holds the target
//!   depth. Running dry raises the delay by itself; a buffer that holds too much is
//!   trimmed: when the smallest depth seen over [`JitterConfig::drift_window_ms`] stayed
//!   at least [`DRIFT_SLACK_FRAMES`] above target, one frame is dropped. That both
//!   brings the delay down after jitter falls and stops a sender whose clock runs fast
//!   from growing the delay without bound.
//! - A new SSRC, or a sequence jump confirmed by a second packet (RFC 3550 appendix A.1
//!   probation), restarts the buffer. A timestamp jump that sequence numbers do not
//!   explain (the sender switched source) only restarts the jitter estimate, so that
//!   the jump is not taken for network jitter; the buffered frames still play.
//!
//! Each packet is expected to carry one frame ([`JitterConfig::frame_ms`]); the leg
//! repacketises other packet times before they get here.

use thiserror::Error;

use crate::counters::{DropReason, MEDIA};

/// Target delay = one frame + this many times the measured jitter. For delays varying
/// uniformly over a range R, the RFC 3550 estimate is about R / 3, so three times J
/// covers nearly all of the range.
pub const JITTER_MULTIPLIER: u32 = 3;

/// Frames the buffer may stay above target before it drops one: one frame of
/// ordinary fluctuation plus one, so a drop never causes an underrun by itself.
pub const DRIFT_SLACK_FRAMES: usize = 2;

/// Consecutive ticks of underrun reported as [`ConcealReason::Underrun`] before the
/// buffer reports [`Playout::Empty`]: 60 ms, the length of the codecs' fade-out, after
/// which concealing only produces silence.
pub const UNDERRUN_CONCEAL_FRAMES: u32 = 3;

/// RFC 3550 appendix A.1: a packet more than this many sequence numbers ahead of the
/// highest received is a jump that needs confirmation.
const MAX_DROPOUT: i64 = 3000;
/// RFC 3550 appendix A.1: a packet more than this many behind the highest is not a
/// reordering but a jump backwards.
const MAX_MISORDER: i64 = 100;

/// Extended sequence numbers start here so that a stream's first packets may be
/// reordered below the first one seen without going below zero.
const FIRST_EXTENDED_BASE: u64 = 1 << 16;

/// An RTP synchronisation source identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// An extended RTP sequence number: the 16-bit wire value plus a count of wraps, so
/// ordering works across the wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqNo(u64);

impl SeqNo {
    /// The extended number of `seq` nearest to `reference` (within half the `u16`
    /// space either way), which is how a wrapped sequence number is told from an old one.
    #[must_use]
    pub fn extend(seq: u16, reference: SeqNo) -> SeqNo {
        // The signed 16-bit difference picks the nearest candidate.
        let delta = seq.wrapping_sub(reference.0 as u16) as i16;
        SeqNo(reference.0.saturating_add_signed(i64::from(delta)))
    }

    /// The extended value.
    #[must_use]
    pub fn value(self) -> u64 {
        self.0
    }

    /// The 16-bit value as on the wire.
    #[must_use]
    pub fn wire(self) -> u16 {
        self.0 as u16
    }

    fn next(self) -> SeqNo {
        SeqNo(self.0.saturating_add(1))
    }
}

/// Tuning of a jitter buffer. The defaults suit 20 ms G.711/G.722 at 8000 Hz RTP clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream (timestamp units per second).
    pub clock_rate: u32,
    /// Duration of the audio in one packet and of one `pop`, in ms.
    pub frame_ms: u32,
    /// Lowest target delay, in ms.
    pub min_delay_ms: u32,
    /// Highest target delay, in ms.
    pub max_delay_ms: u32,
    /// Slots in the ring, i.e. how far ahead of playout a packet may arrive (32 x 20 ms
    /// = 640 ms, well beyond the 200 ms maximum delay, to absorb bursts).
    pub capacity: usize,
    /// Largest payload kept; each slot reserves this much once, at construction.
    pub max_payload: usize,
    /// How long the buffer must stay above target before a frame is dropped, in ms.
    pub drift_window_ms: u64,
    /// A change of transit time larger than this (ms) is a timestamp jump, not jitter.
    pub resync_jump_ms: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            clock_rate: 8000,
            frame_ms: 20,
            min_delay_ms: 20,
            max_delay_ms: 200,
            capacity: 32,
            // 20 ms of G.711 or G.722 is 160 bytes; Opus at conference bitrates stays
            // far below 512.
            max_payload: 512,
            drift_window_ms: 1000,
            resync_jump_ms: 1000,
        }
    }
}

/// Why the buffer refused a configuration or a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JitterError {
    /// The configuration is unusable (zero rates or sizes, min above max).
    #[error("invalid jitter buffer configuration: {0}")]
    InvalidConfig(&'static str),
    /// The peer sent a payload larger than a slot holds.
    #[error("payload of {len} bytes exceeds the {max}-byte slot")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Slot size.
        max: usize,
    },
}

/// One RTP packet as the buffer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingPacket<'a> {
    /// The sender's SSRC.
    pub ssrc: Ssrc,
    /// The 16-bit RTP sequence number.
    pub seq: u16,
    /// The RTP timestamp.
    pub timestamp: u32,
    /// The payload (copied into the buffer).
    pub payload: &'a [u8],
}

/// Why the buffer restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The SSRC changed.
    SsrcChange,
    /// The sequence number jumped and a second packet confirmed it.
    SequenceJump,
    /// The timestamp jumped without a matching gap in time (only the jitter estimate
    /// restarts; buffered frames still play).
    TimestampJump,
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Buffered,
    /// Stored for playout after a restart.
    Resynced(ResyncReason),
    /// Already had it; dropped.
    Duplicate,
    /// Its turn had passed; dropped and counted.
    Late,
    /// A sequence jump waiting for confirmation by the next packet; dropped.
    Probation,
}

/// Why `pop` asks the caller to conceal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcealReason {
    /// The packet for this frame is missing while later ones arrived.
    Lost,
    /// The buffer ran dry (late packets, or the sender stopped).
    Underrun,
}

/// One frame to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Its extended sequence number.
    pub seq: SeqNo,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// The payload.
    pub payload: &'a [u8],
}

/// What the mixer gets for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The next frame.
    Frame(Frame<'a>),
    /// No frame: run the codec's concealment.
    Conceal(ConcealReason),
    /// Nothing to play and nothing worth concealing (not started, or silent for longer
    /// than [`UNDERRUN_CONCEAL_FRAMES`]): the leg contributes no audio this tick.
    Empty,
}

/// Counters, for RTCP and the leg statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets stored (not counting duplicates, late or probation packets).
    pub received: u64,
    /// Frames handed out.
    pub played: u64,
    /// Frames whose packet never came in time: concealed, or skipped while trimming
    /// the delay.
    pub lost: u64,
    /// Packets that arrived after their turn.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// Received frames dropped to bring the delay back to target (drift, falling
    /// jitter).
    pub drift_drops: u64,
    /// Frames dropped because a packet arrived beyond the ring's capacity.
    pub overflow_drops: u64,
    /// Times playout ran dry.
    pub underruns: u64,
    /// Restarts of the buffer or of the jitter estimate.
    pub resyncs: u64,
    /// Packets dropped while a sequence jump waited for confirmation.
    pub probation_drops: u64,
}

#[derive(Debug, Clone)]
struct Slot {
    /// The packet this slot last held, kept after playout to tell duplicates from late
    /// packets.
    seq: Option<SeqNo>,
    filled: bool,
    timestamp: u32,
    len: usize,
    data: Box<[u8]>,
}

/// RFC 3550 section 6.4.1 interarrival jitter, in timestamp units scaled by 16 as in
/// the RFC's integer implementation (appendix A.8).
#[derive(Debug, Clone, Copy, Default)]
struct JitterEstimator {
    last_transit: Option<u32>,
    jitter_q4: u64,
}

impl JitterEstimator {
    /// Feeds one packet; returns false when the transit change is too large to be
    /// jitter (a timestamp jump), in which case the estimate restarts from this packet.
    fn update(&mut self, arrival_units: u32, timestamp: u32, jump_units: u32) -> bool {
        let transit = arrival_units.wrapping_sub(timestamp);
        let Some(last) = self.last_transit.replace(transit) else {
            return true;
        };
        let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
        if d > jump_units {
            return false;
        }
        // J += (|D| - J) / 16, with J kept as 16 x J.
        self.jitter_q4 = (self.jitter_q4 + u64::from(d)).saturating_sub((self.jitter_q4 + 8) >> 4);
        true
    }

    fn jitter_units(&self) -> u64 {
        self.jitter_q4 >> 4
    }
}

/// The jitter buffer of one leg. See the module docs.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Vec<Slot>,
    ssrc: Option<Ssrc>,
    /// Highest extended sequence number stored since the last restart.
    highest: Option<SeqNo>,
    /// Next sequence number to play.
    next: SeqNo,
    /// Whether `next` has moved since the last restart (before that, an earlier packet
    /// may still become the first to play).
    started: bool,
    /// Playing, as opposed to filling up to the target depth.
    playing: bool,
    /// The sequence number that would confirm a pending jump.
    probation: Option<u16>,
    estimator: JitterEstimator,
    last_arrival_ms: u64,
    last_pop_ms: u64,
    /// Start of the current drift window and the smallest depth seen in it.
    window: Option<(u64, usize)>,
    underrun_pops: u32,
    played_any: bool,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer with all of its storage allocated.
    pub fn new(config: JitterConfig) -> Result<Self, JitterError> {
        if config.clock_rate == 0 || config.frame_ms == 0 {
            return Err(JitterError::InvalidConfig("clock rate and frame length must be positive"));
        }
        if config.min_delay_ms > config.max_delay_ms {
            return Err(JitterError::InvalidConfig("minimum delay above maximum"));
        }
        let max_frames = config.max_delay_ms.div_ceil(config.frame_ms) as usize;
        if config.capacity <= max_frames + DRIFT_SLACK_FRAMES {
            return Err(JitterError::InvalidConfig("capacity must exceed the maximum delay"));
        }
        if config.max_payload == 0 {
            return Err(JitterError::InvalidConfig("slots must hold a payload"));
        }
        let slot = Slot {
            seq: None,
            filled: false,
            timestamp: 0,
            len: 0,
            data: vec![0; config.max_payload].into_boxed_slice(),
        };
        Ok(Self {
            config,
            slots: vec![slot; config.capacity],
            ssrc: None,
            highest: None,
            next: SeqNo(FIRST_EXTENDED_BASE),
            started: false,
            playing: false,
            probation: None,
            estimator: JitterEstimator::default(),
            last_arrival_ms: 0,
            last_pop_ms: 0,
            window: None,
            underrun_pops: 0,
            played_any: false,
            stats: JitterStats::default(),
        })
    }

    /// Stores one packet that arrived at `arrival_ms`.
    pub fn push(
        &mut self,
        packet: IncomingPacket<'_>,
        arrival_ms: u64,
    ) -> Result<PushOutcome, JitterError> {
        if packet.payload.len() > self.config.max_payload {
            return Err(JitterError::PayloadTooLarge {
                len: packet.payload.len(),
                max: self.config.max_payload,
            });
        }
        self.last_arrival_ms = self.last_arrival_ms.max(arrival_ms);

        let mut resync = None;
        if self.ssrc != Some(packet.ssrc) {
            if self.ssrc.is_some() {
                resync = Some(ResyncReason::SsrcChange);
                self.restart();
            }
            self.ssrc = Some(packet.ssrc);
        }

        let seq = match self.highest {
            None => SeqNo(FIRST_EXTENDED_BASE + u64::from(packet.seq)),
            Some(highest) => {
                let seq = SeqNo::extend(packet.seq, highest);
                let delta = seq.0 as i64 - highest.0 as i64;
                if (-MAX_MISORDER..=MAX_DROPOUT).contains(&delta) {
                    self.probation = None;
                    seq
                } else if self.probation == Some(packet.seq) {
                    self.probation = None;
                    resync = Some(ResyncReason::SequenceJump);
                    self.restart();
                    SeqNo(FIRST_EXTENDED_BASE + u64::from(packet.seq))
                } else {
                    self.probation = Some(packet.seq.wrapping_add(1));
                    self.stats.probation_drops += 1;
                    return Ok(PushOutcome::Probation);
                }
            }
        };
        if self.highest.is_none() {
            self.highest = Some(seq);
            self.next = seq;
        }

        if self.is_duplicate(seq) {
            self.stats.duplicates += 1;
            MEDIA.dropped(DropReason::Duplicate);
            return Ok(PushOutcome::Duplicate);
        }

        if !self.estimator.update(
            self.arrival_units(),
            packet.timestamp,
            self.ms_to_units(u64::from(self.config.resync_jump_ms)),
        ) {
            self.stats.resyncs += 1;
            resync = resync.or(Some(ResyncReason::TimestampJump));
        }

        if seq < self.next {
            let highest = self.highest.unwrap_or(seq);
            let fits = highest.0 - seq.0 < self.slots.len() as u64;
            if self.started || !fits {
                self.stats.late += 1;
                MEDIA.dropped(DropReason::Late);
                return Ok(PushOutcome::Late);
            }
            // Nothing played since the (re)start: an earlier packet becomes the first.
            self.next = seq;
        }

        let capacity = self.slots.len() as u64;
        if seq.0 - self.next.0 >= capacity {
            // Too far ahead for the ring: give up the oldest frames to make room.
            let new_next = SeqNo(seq.0 + 1 - capacity);
            while self.next < new_next {
                let index = self.index(self.next);
                if self.slots[index].filled {
                    self.slots[index].filled = false;
                    self.stats.overflow_drops += 1;
                    MEDIA.dropped(DropReason::JitterOverflow);
                }
                self.next = self.next.next();
            }
            self.started = true;
        }

        let index = self.index(seq);
        let slot = &mut self.slots[index];
        slot.seq = Some(seq);
        slot.filled = true;
        slot.timestamp = packet.timestamp;
        slot.len = packet.payload.len();
        slot.data[..packet.payload.len()].copy_from_slice(packet.payload);
        self.highest = self.highest.max(Some(seq));
        self.stats.received += 1;

        if let Some(reason) = resync {
            if reason != ResyncReason::TimestampJump {
                self.stats.resyncs += 1;
            }
            return Ok(PushOutcome::Resynced(reason));
        }
        Ok(PushOutcome::Buffered)
    }

    /// After [`Playout::Conceal`] with [`ConcealReason::Lost`]: the payload of the
    /// frame that plays next, if it has arrived. Opus carries a copy of the lost
    /// frame in it (in-band FEC), which rebuilds the loss better than guessing.
    #[must_use]
    pub fn peek_next(&self) -> Option<&[u8]> {
        let slot = &self.slots[self.index(self.next)];
        (slot.filled && slot.seq == Some(self.next)).then(|| &slot.data[..slot.len])
    }

    /// The frame for the tick at `now_ms` (call once per frame interval).
    #[must_use = "a popped frame is gone from the buffer"]
    pub fn pop(&mut self, now_ms: u64) -> Playout<'_> {
        let now_ms = now_ms.max(self.last_pop_ms);
        self.last_pop_ms = now_ms;
        if self.highest.is_none() {
            return self.underrun();
        }
        let mut depth = self.depth_frames();
        let target = self.target_frames();
        if !self.playing && depth >= target {
            self.playing = true;
            self.window = None;
        }
        if !self.playing {
            return self.underrun();
        }
        if depth == 0 {
            self.playing = false;
            self.stats.underruns += 1;
            return self.underrun();
        }

        // Drift and over-target handling: the smallest depth over a window is the
        // margin the buffer really keeps; when even that is well above target, the
        // extra frames are only delay.
        match self.window {
            None => self.window = Some((now_ms, depth)),
            Some((start, min_depth)) => {
                let min_depth = min_depth.min(depth);
                if now_ms.saturating_sub(start) >= self.config.drift_window_ms {
                    if min_depth >= target + DRIFT_SLACK_FRAMES {
                        self.skip_one();
                        depth -= 1;
                    }
                    self.window = Some((now_ms, depth));
                } else {
                    self.window = Some((start, min_depth));
                }
            }
        }

        let seq = self.next;
        self.next = seq.next();
        self.started = true;
        let index = self.index(seq);
        if self.slots[index].filled && self.slots[index].seq == Some(seq) {
            self.slots[index].filled = false;
            self.stats.played += 1;
            self.underrun_pops = 0;
            self.played_any = true;
            let slot = &self.slots[index];
            Playout::Frame(Frame {
                seq,
                timestamp: slot.timestamp,
                payload: &slot.data[..slot.len],
            })
        } else {
            self.stats.lost += 1;
            Playout::Conceal(ConcealReason::Lost)
        }
    }

    /// The current target delay in ms (a whole number of frames).
    #[must_use]
    pub fn target_delay_ms(&self) -> u32 {
        self.target_frames() as u32 * self.config.frame_ms
    }

    /// The RFC 3550 interarrival jitter estimate, in ms.
    #[must_use]
    pub fn jitter_ms(&self) -> f64 {
        self.estimator.jitter_units() as f64 * 1000.0 / f64::from(self.config.clock_rate)
    }

    /// The RFC 3550 interarrival jitter estimate in timestamp units, as RTCP reports it.
    #[must_use]
    pub fn jitter_units(&self) -> u32 {
        u32::try_from(self.estimator.jitter_units()).unwrap_or(u32::MAX)
    }

    /// Frames from the next to play to the newest received, holes included.
    #[must_use]
    pub fn depth_frames(&self) -> usize {
        match self.highest {
            Some(highest) if highest >= self.next => (highest.0 - self.next.0 + 1) as usize,
            _ => 0,
        }
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    fn target_frames(&self) -> usize {
        let frame = u64::from(self.config.frame_ms);
        let jitter_ms = self.estimator.jitter_units() * 1000 / u64::from(self.config.clock_rate);
        let wanted_ms = frame + u64::from(JITTER_MULTIPLIER) * jitter_ms;
        let min = u64::from(self.config.min_delay_ms).div_ceil(frame).max(1);
        let max = (u64::from(self.config.max_delay_ms) / frame).max(min);
        wanted_ms.div_ceil(frame).clamp(min, max) as usize
    }

    fn underrun(&mut self) -> Playout<'_> {
        self.underrun_pops = self.underrun_pops.saturating_add(1);
        if self.played_any && self.underrun_pops <= UNDERRUN_CONCEAL_FRAMES {
            Playout::Conceal(ConcealReason::Underrun)
        } else {
            Playout::Empty
        }
    }

    /// Drops the next frame to shorten the delay. Skipping a hole shortens it just as
    /// well; that packet is then counted as lost rather than dropped.
    fn skip_one(&mut self) {
        let index = self.index(self.next);
        let slot = &mut self.slots[index];
        if slot.filled && slot.seq == Some(self.next) {
            self.stats.drift_drops += 1;
        } else {
            self.stats.lost += 1;
        }
        slot.filled = false;
        self.next = self.next.next();
    }

    fn is_duplicate(&self, seq: SeqNo) -> bool {
        let slot = &self.slots[self.index(seq)];
        // A slot keeps its sequence number after playout, so a copy of a packet already
        // played is still recognised (until the slot is reused a ring later).
        slot.seq == Some(seq) && (slot.filled || seq < self.next)
    }

    fn restart(&mut self) {
        for slot in &mut self.slots {
            slot.seq = None;
            slot.filled = false;
        }
        self.highest = None;
        self.started = false;
        self.playing = false;
        self.probation = None;
        self.window = None;
        // A new stream has a new timestamp base; the jitter value itself describes the
        // network path and is kept.
        self.estimator.last_transit = None;
    }

    fn index(&self, seq: SeqNo) -> usize {
        (seq.0 % self.slots.len() as u64) as usize
    }

    fn ms_to_units(&self, ms: u64) -> u32 {
        (ms * u64::from(self.config.clock_rate) / 1000) as u32
    }

    fn arrival_units(&self) -> u32 {
        // Only differences matter, so wrapping to 32 bits is harmless.
        (u128::from(self.last_arrival_ms) * u128::from(self.config.clock_rate) / 1000) as u32
    }
}
