//! The conference mixer: one sans-IO object per room that, every 20 ms tick, takes one
//! decoded frame per member and produces, for each member, the encoded frame to send.
//!
//! The caller owns the clock ([`TickClock`] computes drift-free deadlines) and the
//! legs: it pushes each member's decoded (or concealed) frame with
//! [`Mixer::push_frame`], calls [`Mixer::tick`], then sends what
//! [`Mixer::deliveries`] lists and handles [`Mixer::poll_event`]. No clock, socket or
//! lock inside, so tests drive it frame by frame.
//!
//! # One tick
//!
//! 1. Every member's frame is measured (RMS energy), talking detection runs
//!    ([`TalkDetection`], with hysteresis), and the noise gate ([`NoiseGate`]) decides
//!    whether the frame is worth mixing. A member *contributes* when it is audible
//!    (not muted, not listen-only, and holding the mike in the main room, or in a
//!    breakout) and its gate is open. With [`MixerConfig::max_speakers`] only the N
//!    loudest contributors of each room or breakout are kept.
//! 2. Contributions are resampled to the room rate (only where a leg's rate differs),
//!    scaled by the member's input volume and summed in i32: one sum for the main room,
//!    one per breakout group. What a listener hears (its *scope*): the main room sum;
//!    or its breakout's sum plus, unless the breakout is private, the main room sum; or,
//!    when deaf, nothing.
//! 3. Outputs. This is the scaling technique: every member that does not contribute
//!    hears exactly its scope's sum, so all of them with the same scope, codec and
//!    output volume share one mix, limited, resampled and encoded once
//!    ([`Delivery::Shared`]). Only contributors (and members with a prompt of their
//!    own) get a personal mix-minus: the scope's sum minus their own contribution
//!    ([`Delivery::Personal`]). The cost of a tick therefore grows with the number of
//!    active speakers, not with the size of the room; the caller sends one shared
//!    payload to every member listed with it (only the RTP header differs).
//!
//! # Levels
//!
//! Sums are i32: with at most [`MAX_MEMBERS`] contributors at the highest input gain
//! (+12 dB) a sample cannot exceed 1.31e9 < 2^31, so nothing wraps. The sum is then
//! brought back to i16 by a memoryless soft limiter ([`limit`]): linear up to
//! [`LIMITER_KNEE`] (-2.5 dBFS), then a smooth curve that approaches but never reaches
//! full scale. Memoryless, so a shared mix and a personal mix of the same sum are
//! bit-identical, and loud double-talk is squashed rather than clipped harshly.
//!
//! Volume steps ([`VolumeStep`]) run from -4 to +4 in 3 dB steps (-12 dB to +12 dB);
//! 0 is unity. Input volume scales what a member says (to everyone); output volume
//! scales what it hears.
//!
//! # Codec state across the shared/personal switch
//!
//! A member that starts talking moves from a shared encoder and resampler to its own.
//! Resamplers are primed with the frame the shared one last saw, so the switch is
//! seamless for PCM (see [`crate::resample`]). Resamplers are lent to speakers from a
//! pool rather than owned by every member (see `ResamplerPool`). G.711 is stateless.
//! G.722's ADPCM state and Opus's state cannot be copied through the codec trait, so
//! the listener's decoder is briefly out of step on a switch and reconverges within a
//! few milliseconds.
//!
//! A member's own encoder exists only while it is needed: it is created for the first
//! personal mix and dropped after [`MixerConfig::idle_release_ticks`] (by default
//! [`IDLE_RELEASE_TICKS`], 5 s) without one, so a room keeps one encoder per recent
//! speaker rather than one per member who ever spoke (an `opus-rs` encoder holds about
//! 225 KB). When the member speaks again it gets a fresh encoder, exactly as the first
//! time: the listener's decoder sees the same kind of switch as above, and the RTP
//! sequence and timestamps, which belong to the leg, run on. Pooled resamplers that
//! nobody used for that long are freed the same way.
//!
//! # Allocation
//!
//! Every buffer is sized when a member joins or a setting changes (a breakout, deafness,
//! output volume, the room rate). A tick allocates nothing after warm-up; the warm-up
//! cases are the resampler pools growing to the room's peak number of simultaneous
//! speakers, a member's own encoder when it starts speaking (again, after
//! [`MixerConfig::idle_release_ticks`] of silence) and the first prompt injected to a
//! given member. The event queue, sized for two events per member, drops the oldest
//! event rather than grow when the caller does not poll.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::codec::{Codec, CodecKind, FRAME_MS};
use crate::resample::{FrameResampler, ResampleError, check_rate, frame_len};

/// Most members in one room. Also what bounds the i32 sums (see the module docs).
pub const MAX_MEMBERS: usize = 10_000;

/// Samples of the largest room frame (20 ms at 48 kHz).
pub const MAX_ROOM_FRAME: usize = frame_len(48_000);

/// The room rate used by an `auto` room with no members yet.
pub const DEFAULT_ROOM_RATE: u32 = 8000;

/// One tick of the mixer.
pub const TICK: Duration = Duration::from_millis(FRAME_MS as u64);

/// A caller that wakes up late runs at most this many missed ticks back to back
/// (100 ms of audio); older ticks are skipped, since audio that late is useless and
/// catching up would make every leg burst.
pub const MAX_CATCH_UP_TICKS: u64 = 5;

/// Sums above this magnitude go through the limiter's soft knee: 0.75 of full scale,
/// -2.5 dBFS, high enough that one loud talker passes untouched.
pub const LIMITER_KNEE: i32 = 24_576;

/// With [`MixerConfig::max_speakers`], a member mixed in the last tick competes with its
/// energy raised by this factor in Q4 (23/16 = 1.44, about +3 dB), so that two talkers
/// of about the same level do not take turns every 20 ms, which would chop both.
pub const SPEAKER_INCUMBENT_BONUS_Q4: u32 = 23;

/// The default of [`MixerConfig::idle_release_ticks`]: 250 ticks, 5 s. Long enough that
/// a speaker pausing between sentences keeps its encoder, short enough that a room
/// holds encoders for its recent speakers only.
pub const IDLE_RELEASE_TICKS: u32 = 250;

/// A shared mix that has been digital silence for more ticks in a row than this
/// sends its last payload again instead of running its encoder. Ten frames (200
/// ms, when libopus's own DTX starts) let the encoder settle on silence, so the
/// repeated frame decodes as the silence it would have coded; the encoder
/// resumes, its state that of silence, when the mix is sound again. An Opus
/// encode costs about 0.3 ms here: a room of one silent caller would otherwise
/// spend 1.5 % of a core coding nothing.
pub const SILENCE_ENCODED_TICKS: u32 = 10;

/// Fixed-point position of the volume gains.
const GAIN_SHIFT: u32 = 14;
/// Unity gain in Q14.
const UNITY_GAIN: i32 = 1 << GAIN_SHIFT;
/// Gains of volume steps -4..=+4, 3 dB apart, in Q14: round(16384 * 10^(3 * step / 20)).
const VOLUME_GAINS_Q14: [i32; 9] = [4115, 5813, 8211, 11599, 16384, 23143, 32690, 46176, 65226];
/// Decibels per volume step.
pub const VOLUME_STEP_DB: f64 = 3.0;

/// Scope index of the main room.
const SCOPE_MAIN: usize = 0;
/// Scope index of deaf members: they hear nothing.
const SCOPE_SILENT: usize = 1;
/// Scope index of the first breakout group.
const SCOPE_FIRST_GROUP: usize = 2;

/// A member of one mixer. Carries a generation, so the id of a member that left never
/// reaches the member that took its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId {
    index: u32,
    generation: u32,
}

/// A breakout group, named by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BreakoutId(pub u32);

/// The rate a room mixes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomRate {
    /// The highest native rate among the members present, so an all-G.711 room mixes
    /// at 8 kHz and resamples nothing.
    #[default]
    Auto,
    /// Always this rate (8000, 16000 or 48000).
    Fixed(u32),
}

/// A volume step from -4 (quietest, -12 dB) to +4 (loudest, +12 dB), [`VOLUME_STEP_DB`]
/// apart; 0 is unity. The scale of `tutti_api::live::CallerUpdate::VolumeIn/Out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VolumeStep(i8);

impl VolumeStep {
    /// Quietest step.
    pub const MIN: i64 = -4;
    /// Loudest step.
    pub const MAX: i64 = 4;
    /// Unity gain.
    pub const UNITY: VolumeStep = VolumeStep(0);

    /// A step, or an error outside -4..=4.
    pub fn new(step: i64) -> Result<Self, MixerError> {
        if (Self::MIN..=Self::MAX).contains(&step) {
            // In range, so it fits in an i8.
            Ok(Self(step as i8))
        } else {
            Err(MixerError::InvalidVolume(step))
        }
    }

    /// The step.
    #[must_use]
    pub fn step(self) -> i8 {
        self.0
    }

    /// The nominal gain in dB.
    #[must_use]
    pub fn gain_db(self) -> f64 {
        f64::from(self.0) * VOLUME_STEP_DB
    }

    fn gain_q14(self) -> i32 {
        // Constructed in range, so the index is 0..=8.
        VOLUME_GAINS_Q14[(i64::from(self.0) - Self::MIN) as usize]
    }
}

/// Talking detection, on each member's frame RMS (0..32767). Talking starts after
/// `start_frames` consecutive frames at or above `start_level` and stops after
/// `stop_frames` consecutive frames below `stop_level`; the gap between the levels and
/// the stop delay are the hysteresis that keeps pauses between words from flapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TalkDetection {
    /// RMS that counts towards starting (default 400, about -38 dBFS).
    pub start_level: u16,
    /// Consecutive loud frames needed to start (default 3: 60 ms).
    pub start_frames: u16,
    /// RMS below which a frame counts towards stopping (default 200, about -44 dBFS).
    pub stop_level: u16,
    /// Consecutive quiet frames needed to stop (default 30: 600 ms). With the
    /// start delay this bounds talking reports to well under one pair a second
    /// per member while it speaks.
    pub stop_frames: u16,
}

impl Default for TalkDetection {
    fn default() -> Self {
        Self { start_level: 400, start_frames: 3, stop_level: 200, stop_frames: 30 }
    }
}

/// Which frames are mixed at all. Phones send background noise all the time; mixing
/// it from everyone would make every member a contributor (and the room noisy), so a
/// frame is only mixed when its RMS reaches `level`, and for `hangover_frames` after,
/// so word endings are not cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseGate {
    /// RMS that opens the gate (default 150, about -47 dBFS).
    pub level: u16,
    /// Frames the gate stays open after the last loud frame (default 10: 200 ms).
    pub hangover_frames: u16,
}

impl Default for NoiseGate {
    fn default() -> Self {
        Self { level: 150, hangover_frames: 10 }
    }
}

/// How a room mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixerConfig {
    /// The mixing rate.
    pub rate: RoomRate,
    /// Mix only the N loudest contributors of the main room and of each breakout; those
    /// already mixed keep their place unless a newcomer is about 3 dB louder.
    pub max_speakers: Option<usize>,
    /// The noise gate; `None` mixes every frame that is not digital silence.
    pub gate: Option<NoiseGate>,
    /// Talking detection thresholds.
    pub talk: TalkDetection,
    /// Share one mix among non-contributing members (the default and the point). `false`
    /// gives everyone a personal mix: the slow reference the tests compare against.
    pub shared_mixes: bool,
    /// Run each member's encoder on its output. `false` leaves payloads empty for a
    /// caller that only wants PCM.
    pub encode: bool,
    /// A member's own encoder is dropped after this many ticks without a personal mix,
    /// and a pooled resampler after this many ticks unused (see the module docs);
    /// `None` keeps them for the member's whole stay. Default [`IDLE_RELEASE_TICKS`].
    pub idle_release_ticks: Option<u32>,
}

impl Default for MixerConfig {
    fn default() -> Self {
        Self {
            rate: RoomRate::Auto,
            max_speakers: None,
            gate: Some(NoiseGate::default()),
            talk: TalkDetection::default(),
            shared_mixes: true,
            encode: true,
            idle_release_ticks: Some(IDLE_RELEASE_TICKS),
        }
    }
}

/// Something the caller should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixerEvent {
    /// The member started talking (detection runs whether or not it is muted, so the
    /// engine can tell a muted talker).
    TalkingStarted {
        /// Who.
        member: MemberId,
        /// The tick's time, as given to [`Mixer::tick`].
        at_ms: u64,
    },
    /// The member stopped talking.
    TalkingStopped {
        /// Who.
        member: MemberId,
        /// The tick's time.
        at_ms: u64,
    },
}

/// Who hears an injected frame (a prompt, a file, a tone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectTarget {
    /// Mixed like a main-room speaker: heard by the main room and by breakouts that
    /// are not private, and included in [`Mixer::room_mix`].
    Room,
    /// Heard by this member only, even when deaf.
    Member(MemberId),
}

/// Why a mixer call was refused. All are caller errors; the mixer is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum MixerError {
    /// The member left or never was.
    #[error("unknown member")]
    UnknownMember,
    /// [`MAX_MEMBERS`] are already present.
    #[error("room full ({MAX_MEMBERS} members)")]
    RoomFull,
    /// A room rate other than 8000, 16000 or 48000.
    #[error("unsupported room rate {0} Hz")]
    UnsupportedRate(u32),
    /// A volume step outside -4..=4.
    #[error("volume step {0} outside -4..=4")]
    InvalidVolume(i64),
    /// A frame of the wrong length for its rate.
    #[error("frame has {got} samples, {expected} expected")]
    WrongFrameLength {
        /// Samples in one 20 ms frame at the expected rate.
        expected: usize,
        /// Samples given.
        got: usize,
    },
    /// A resampler could not be built.
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// One encoded output frame and the PCM it was encoded from.
#[derive(Debug, Clone, Copy)]
pub struct OutFrame<'a> {
    /// The codec of the members receiving it.
    pub codec: CodecKind,
    /// PCM at the codec's rate.
    pub pcm: &'a [i16],
    /// The encoded payload (empty when [`MixerConfig::encode`] is off).
    pub payload: &'a [u8],
}

/// One distinct output of a tick, to encode (already done) and send once per member.
#[derive(Debug, Clone, Copy)]
pub enum Delivery<'a> {
    /// One mix for every listed member.
    Shared {
        /// Index of the mix, stable while the room's layout does not change.
        mix: usize,
        /// Who receives it.
        members: &'a [MemberId],
        /// The frame.
        frame: OutFrame<'a>,
    },
    /// A mix-minus for one member.
    Personal {
        /// Who receives it.
        member: MemberId,
        /// The frame.
        frame: OutFrame<'a>,
    },
}

/// Computes tick deadlines from a fixed start, so rounding and late wake-ups never
/// accumulate into drift: tick `n` is due at `start + n * 20 ms`, whatever happened
/// before.
#[derive(Debug, Clone, Copy)]
pub struct TickClock {
    start: Instant,
    /// Index of the next tick to run.
    next: u64,
    skipped: u64,
}

impl TickClock {
    /// A clock whose tick 0 is due at `start`.
    #[must_use]
    pub fn new(start: Instant) -> Self {
        Self { start, next: 0, skipped: 0 }
    }

    /// When the next tick is due.
    #[must_use]
    pub fn next_deadline(&self) -> Instant {
        self.deadline(self.next)
    }

    /// When tick `index` is due.
    #[must_use]
    pub fn deadline(&self, index: u64) -> Instant {
        let period_ns = TICK.as_nanos() as u64;
        self.start + Duration::from_nanos(index.saturating_mul(period_ns))
    }

    /// How many ticks to run now (0 when woken early), advancing the clock past them.
    /// More than [`MAX_CATCH_UP_TICKS`] overdue are partly skipped.
    pub fn due(&mut self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let last_due = u64::try_from(elapsed / TICK.as_nanos()).unwrap_or(u64::MAX);
        if last_due < self.next {
            return 0;
        }
        let overdue = last_due - self.next + 1;
        self.next = last_due.saturating_add(1);
        if overdue > MAX_CATCH_UP_TICKS {
            self.skipped = self.skipped.saturating_add(overdue - MAX_CATCH_UP_TICKS);
            MAX_CATCH_UP_TICKS
        } else {
            overdue
        }
    }

    /// Ticks skipped so far because the caller fell too far behind.
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// The soft limiter: identity up to [`LIMITER_KNEE`], then
/// `knee + d * r / (d + r)` where `d` is the excess and `r` the headroom left, a curve
/// with slope 1 at the knee that tends to full scale and never passes it.
#[must_use]
pub fn limit(sum: i32) -> i16 {
    const HEADROOM: i64 = i16::MAX as i64 - LIMITER_KNEE as i64;
    let magnitude = i64::from(sum).abs();
    if magnitude <= i64::from(LIMITER_KNEE) {
        // Within the knee, so within i16.
        return sum as i16;
    }
    let excess = magnitude - i64::from(LIMITER_KNEE);
    let limited = i64::from(LIMITER_KNEE) + excess * HEADROOM / (excess + HEADROOM);
    // limited < i16::MAX by construction.
    let limited = limited as i16;
    if sum < 0 { -limited } else { limited }
}

/// RMS, 0..=32768, of a frame of `len` samples whose squares sum to `energy`.
fn rms(energy: u64, len: usize) -> u16 {
    if len == 0 {
        return 0;
    }
    // At most 32768, which fits a u16.
    ((energy / len as u64) as f64).sqrt().min(f64::from(u16::MAX)) as u16
}

/// Applies a Q14 gain and the limiter.
fn finish(sum: &[i32], gain: i32, out: &mut [i16]) {
    if gain == UNITY_GAIN {
        for (o, &s) in out.iter_mut().zip(sum) {
            *o = limit(s);
        }
    } else {
        for (o, &s) in out.iter_mut().zip(sum) {
            let scaled = (i64::from(s) * i64::from(gain)) >> GAIN_SHIFT;
            *o = limit(scaled.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
        }
    }
}

/// Encodes `pcm` into `payload`, returning the length (0 when the codec refuses, which
/// the frame sizes here rule out; a silent gap beats a panic).
fn encode(encoder: &mut dyn Codec, pcm: &[i16], payload: &mut [u8], enabled: bool) -> usize {
    if !enabled {
        return 0;
    }
    match encoder.encode(pcm, payload) {
        Ok(len) => len,
        Err(error) => {
            tracing::warn!(%error, "mixer: encoding failed");
            0
        }
    }
}

struct Member {
    id: MemberId,
    codec: CodecKind,
    native_rate: u32,
    // Settings.
    muted: bool,
    deaf: bool,
    mike: bool,
    listen_only: bool,
    volume_in: VolumeStep,
    volume_out: VolumeStep,
    /// Index into `Mixer::groups`.
    group: Option<usize>,
    // Input.
    input: Vec<i16>,
    prev_input: Vec<i16>,
    has_input: bool,
    /// Sum of squares of `input`, measured in [`Mixer::push_frame`].
    input_energy: u64,
    prev_valid: bool,
    /// Whether the native rate differs from the room's, so frames need resampling.
    resampled: bool,
    /// The pooled native -> room resampler this member used last (see [`ResamplerPool`]).
    in_lease: Option<usize>,
    /// This tick's contribution at the room rate, after the input volume.
    contrib: Vec<i32>,
    contributing: bool,
    contributed_last: bool,
    // Detection.
    energy: u16,
    talking: bool,
    loud_run: u16,
    quiet_run: u16,
    gate_hold: u16,
    // Output.
    scope: usize,
    shared_slot: usize,
    personal: bool,
    personal_last: bool,
    /// The pooled room -> native resampler this member used last.
    out_lease: Option<usize>,
    /// Its own encoder, for personal mixes: created on the first one, dropped after
    /// [`MixerConfig::idle_release_ticks`] without one.
    encoder: Option<Box<dyn Codec>>,
    /// The tick of its last personal mix.
    personal_tick: u64,
    out_pcm: Vec<i16>,
    payload: Vec<u8>,
    payload_len: usize,
    /// A prompt for this member only; allocated on first use.
    injection: Vec<i32>,
    has_injection: bool,
}

impl Member {
    /// The scope a contribution goes to, when the member may be heard at all.
    fn speak_scope(&self) -> Option<usize> {
        if self.muted || self.listen_only {
            return None;
        }
        match self.group {
            Some(group) => Some(SCOPE_FIRST_GROUP + group),
            None if self.mike => Some(SCOPE_MAIN),
            None => None,
        }
    }

    fn listen_scope(&self) -> usize {
        match (self.deaf, self.group) {
            (true, _) => SCOPE_SILENT,
            (false, Some(group)) => SCOPE_FIRST_GROUP + group,
            (false, None) => SCOPE_MAIN,
        }
    }

    fn apply_rate(&mut self, room_rate: u32) {
        self.resampled = self.native_rate != room_rate;
        self.in_lease = None;
        self.out_lease = None;
        self.contrib.resize(frame_len(room_rate), 0);
        if !self.injection.is_empty() {
            self.injection.resize(frame_len(room_rate), 0);
        }
    }
}

struct Slot {
    generation: u32,
    member: Option<Member>,
}

struct Group {
    id: BreakoutId,
    private: bool,
}

/// One mix shared by every non-contributing member with the same scope, codec and
/// output volume.
struct SharedMix {
    scope: usize,
    codec: CodecKind,
    volume: VolumeStep,
    /// Members with this key in the layout (whether or not personal this tick).
    listeners: usize,
    /// Members receiving it this tick.
    members: Vec<MemberId>,
    resampler: Option<FrameResampler>,
    encoder: Box<dyn Codec>,
    room_pcm: Vec<i16>,
    /// Last tick's `room_pcm`, to prime the resampler of a member going personal.
    prev_room_pcm: Vec<i16>,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    payload_len: usize,
    /// Ticks in a row its `pcm` was digital silence; see [`SILENCE_ENCODED_TICKS`].
    silent_ticks: u32,
}

impl SharedMix {
    fn new(
        scope: usize,
        codec: CodecKind,
        volume: VolumeStep,
        room_rate: u32,
    ) -> Result<Self, ResampleError> {
        let mut mix = Self {
            scope,
            codec,
            volume,
            listeners: 0,
            members: Vec::new(),
            resampler: None,
            encoder: codec.new_codec(),
            room_pcm: Vec::new(),
            prev_room_pcm: Vec::new(),
            pcm: vec![0; codec.samples_per_frame()],
            payload: vec![0; codec.bytes_per_frame()],
            payload_len: 0,
            silent_ticks: 0,
        };
        mix.apply_rate(room_rate)?;
        Ok(mix)
    }

    fn apply_rate(&mut self, room_rate: u32) -> Result<(), ResampleError> {
        let native = self.codec.sample_rate();
        self.resampler =
            if native == room_rate { None } else { Some(FrameResampler::new(room_rate, native)?) };
        self.room_pcm = vec![0; frame_len(room_rate)];
        self.prev_room_pcm = vec![0; frame_len(room_rate)];
        Ok(())
    }
}

/// Resamplers between one pair of rates, lent to the members that need one in a tick.
///
/// A member only needs a resampler while it contributes (input side) or gets a
/// personal mix (output side): a few speakers, not the whole room. Since the state of
/// a [`FrameResampler`] after a frame depends on that frame only, a member can take
/// any free resampler and prime it with the frame it would have seen, so resamplers
/// need not belong to members: at about 60 KB each (8 <-> 48 kHz), one per member per
/// direction would cost a 1000-member room over 100 MB. A member keeps its resampler
/// as long as it uses it every tick; one unused for a whole tick is free for others.
/// The pool grows to the room's peak of simultaneous speakers (warm-up) and stays.
struct ResamplerPool {
    from: u32,
    to: u32,
    leases: Vec<Lease>,
}

struct Lease {
    resampler: FrameResampler,
    /// Slot index of the member that used it last.
    owner: usize,
    /// The tick it was last used in.
    used_at: u64,
}

impl ResamplerPool {
    fn new(from: u32, to: u32) -> Self {
        Self { from, to, leases: Vec::new() }
    }

    /// The resampler for `owner` in `tick`: the one it used in the previous tick, in
    /// step (`true`), or another that the caller must prime (`false`).
    fn lease(
        &mut self,
        owner: usize,
        previous: Option<usize>,
        tick: u64,
    ) -> Result<(usize, bool), ResampleError> {
        if let Some(index) = previous
            && let Some(lease) = self.leases.get_mut(index)
            && lease.owner == owner
            && lease.used_at.saturating_add(1) >= tick
        {
            lease.used_at = tick;
            return Ok((index, true));
        }
        // Free: not used in this tick nor the previous one, whose user may still come
        // back for it in this tick.
        let free = self.leases.iter().position(|lease| lease.used_at.saturating_add(1) < tick);
        let index = match free {
            Some(index) => index,
            None => {
                self.leases.push(Lease {
                    resampler: FrameResampler::new(self.from, self.to)?,
                    owner,
                    used_at: tick,
                });
                self.leases.len() - 1
            }
        };
        let lease = &mut self.leases[index];
        lease.owner = owner;
        lease.used_at = tick;
        Ok((index, false))
    }

    /// Frees the resamplers at the end of the pool unused for `idle` ticks. Only from
    /// the end, so the indices members hold stay valid: [`ResamplerPool::lease`] hands
    /// out the lowest free index first, so the resamplers in use gather at the front.
    fn release_idle(&mut self, tick: u64, idle: u64) {
        while self.leases.last().is_some_and(|lease| tick.saturating_sub(lease.used_at) >= idle) {
            self.leases.pop();
        }
    }
}

/// The pool for `from` -> `to`, created on first use (which allocates, as a warm-up).
fn pool_for(pools: &mut Vec<ResamplerPool>, from: u32, to: u32) -> &mut ResamplerPool {
    let index = match pools.iter().position(|pool| pool.from == from && pool.to == to) {
        Some(index) => index,
        None => {
            pools.push(ResamplerPool::new(from, to));
            pools.len() - 1
        }
    };
    &mut pools[index]
}

/// Takes a resampler from the pool for `member`'s direction, primes it when it is not
/// the one the member used last tick, and runs it on `input`.
fn resample_leased(
    pools: &mut Vec<ResamplerPool>,
    (from, to): (u32, u32),
    (owner, lease): (usize, &mut Option<usize>),
    tick: u64,
    prime_with: Option<&[i16]>,
    input: &[i16],
    out: &mut [i16],
) -> Result<usize, ResampleError> {
    let pool = pool_for(pools, from, to);
    let (index, in_step) = pool.lease(owner, *lease, tick)?;
    *lease = Some(index);
    let resampler = &mut pool.leases[index].resampler;
    if !in_step {
        match prime_with {
            Some(frame) => resampler.prime(frame)?,
            None => resampler.reset(),
        }
    }
    resampler.process(input, out)
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    scope: usize,
    /// Energy, with the incumbents' bonus ([`SPEAKER_INCUMBENT_BONUS_Q4`]).
    rank: u32,
    index: u32,
}

/// The conference mixer of one room. See the module docs.
pub struct Mixer {
    config: MixerConfig,
    room_rate: u32,
    slots: Vec<Slot>,
    free: Vec<u32>,
    count: usize,
    groups: Vec<Group>,
    /// Per scope: the i32 sum a listener of that scope hears this tick. Scope 0 is the
    /// main room, 1 silence, 2.. the breakouts.
    hear: Vec<Vec<i32>>,
    /// Per breakout: the sum of its own contributors.
    group_sums: Vec<Vec<i32>>,
    shared: Vec<SharedMix>,
    /// Resamplers lent to speakers, one pool per pair of rates.
    pools: Vec<ResamplerPool>,
    personal: Vec<MemberId>,
    candidates: Vec<Candidate>,
    room_injection: Vec<i32>,
    has_room_injection: bool,
    room_mix: Vec<i16>,
    /// Personal mix at the room rate, before resampling.
    scratch_sum: Vec<i32>,
    scratch_pcm: Vec<i16>,
    events: VecDeque<MixerEvent>,
    events_dropped: u64,
    ticks: u64,
    /// Frames encoded so far.
    encodes: u64,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("room_rate", &self.room_rate)
            .field("members", &self.count)
            .field("ticks", &self.ticks)
            .finish_non_exhaustive()
    }
}

impl Mixer {
    /// An empty room.
    pub fn new(config: MixerConfig) -> Result<Self, MixerError> {
        let room_rate = match config.rate {
            RoomRate::Auto => DEFAULT_ROOM_RATE,
            RoomRate::Fixed(rate) => {
                check_rate(rate).map_err(|_| MixerError::UnsupportedRate(rate))?
            }
        };
        let len = frame_len(room_rate);
        Ok(Self {
            config,
            room_rate,
            slots: Vec::new(),
            free: Vec::new(),
            count: 0,
            groups: Vec::new(),
            hear: vec![vec![0; len]; SCOPE_FIRST_GROUP],
            group_sums: Vec::new(),
            shared: Vec::new(),
            pools: Vec::new(),
            personal: Vec::new(),
            candidates: Vec::new(),
            room_injection: vec![0; len],
            has_room_injection: false,
            room_mix: vec![0; len],
            scratch_sum: vec![0; len],
            scratch_pcm: vec![0; len],
            events: VecDeque::new(),
            events_dropped: 0,
            ticks: 0,
            encodes: 0,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    /// The current mixing rate.
    #[must_use]
    pub fn room_rate(&self) -> u32 {
        self.room_rate
    }

    /// Samples in one room-rate frame (what [`Mixer::inject`] takes).
    #[must_use]
    pub fn room_frame_len(&self) -> usize {
        frame_len(self.room_rate)
    }

    /// Members present.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// No members: the room needs no tick at all.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.count == 0
    }

    /// Same as [`Mixer::is_idle`].
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a member whose leg uses `codec`: it sends and receives frames at the codec's
    /// sample rate. A new member may speak (mike on), is not muted and not deaf. In an
    /// `auto` room this may raise the room rate.
    pub fn add_member(&mut self, codec: CodecKind) -> Result<MemberId, MixerError> {
        if self.count >= MAX_MEMBERS {
            return Err(MixerError::RoomFull);
        }
        let native_rate = check_rate(codec.sample_rate())?;
        let native_len = codec.samples_per_frame();
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot { generation: 0, member: None });
                // Bounded by MAX_MEMBERS, far below u32::MAX.
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        let id = MemberId { index, generation: slot.generation };
        let mut member = Member {
            id,
            codec,
            native_rate,
            muted: false,
            deaf: false,
            mike: true,
            listen_only: false,
            volume_in: VolumeStep::UNITY,
            volume_out: VolumeStep::UNITY,
            group: None,
            input: vec![0; native_len],
            prev_input: vec![0; native_len],
            has_input: false,
            input_energy: 0,
            prev_valid: false,
            resampled: false,
            in_lease: None,
            contrib: Vec::new(),
            contributing: false,
            contributed_last: false,
            energy: 0,
            talking: false,
            loud_run: 0,
            quiet_run: 0,
            gate_hold: 0,
            scope: SCOPE_MAIN,
            shared_slot: 0,
            personal: false,
            personal_last: false,
            out_lease: None,
            encoder: None,
            personal_tick: 0,
            out_pcm: vec![0; native_len],
            // Exact for constant-rate codecs, the largest frame for Opus.
            payload: vec![0; codec.bytes_per_frame()],
            payload_len: 0,
            injection: Vec::new(),
            has_injection: false,
        };
        member.apply_rate(self.room_rate);
        slot.member = Some(member);
        self.count += 1;
        // Room for every member to be listed in a tick's lists and raise two events.
        self.candidates.reserve(self.count.saturating_sub(self.candidates.len()));
        self.personal.reserve(self.count.saturating_sub(self.personal.len()));
        let events_wanted = self.count * 2;
        self.events.reserve(events_wanted.saturating_sub(self.events.len()));
        self.refresh_rate()?;
        self.relayout()?;
        Ok(id)
    }

    /// Removes a member. An `auto` room may lower its rate.
    pub fn remove_member(&mut self, id: MemberId) -> Result<(), MixerError> {
        self.member(id)?;
        let slot = &mut self.slots[id.index as usize];
        slot.member = None;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.count -= 1;
        self.refresh_rate()?;
        self.relayout()
    }

    fn member(&self, id: MemberId) -> Result<&Member, MixerError> {
        self.slots
            .get(id.index as usize)
            .filter(|slot| slot.generation == id.generation)
            .and_then(|slot| slot.member.as_ref())
            .ok_or(MixerError::UnknownMember)
    }

    fn member_mut(&mut self, id: MemberId) -> Result<&mut Member, MixerError> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.generation == id.generation)
            .and_then(|slot| slot.member.as_mut())
            .ok_or(MixerError::UnknownMember)
    }

    /// Whether `id` is present.
    #[must_use]
    pub fn contains(&self, id: MemberId) -> bool {
        self.member(id).is_ok()
    }

    /// Mute: nobody hears the member (it still hears the room).
    pub fn set_muted(&mut self, id: MemberId, muted: bool) -> Result<(), MixerError> {
        self.member_mut(id)?.muted = muted;
        Ok(())
    }

    /// Deaf: the member hears nothing (but prompts injected for it).
    pub fn set_deaf(&mut self, id: MemberId, deaf: bool) -> Result<(), MixerError> {
        self.member_mut(id)?.deaf = deaf;
        self.relayout()
    }

    /// Mike: may speak in the main room. Breakouts ignore it.
    pub fn set_mike(&mut self, id: MemberId, mike: bool) -> Result<(), MixerError> {
        self.member_mut(id)?.mike = mike;
        Ok(())
    }

    /// Listen-only: never heard, wherever it is.
    pub fn set_listen_only(&mut self, id: MemberId, listen_only: bool) -> Result<(), MixerError> {
        self.member_mut(id)?.listen_only = listen_only;
        Ok(())
    }

    /// Scales what the member says.
    pub fn set_volume_in(&mut self, id: MemberId, step: VolumeStep) -> Result<(), MixerError> {
        self.member_mut(id)?.volume_in = step;
        Ok(())
    }

    /// Scales what the member hears.
    pub fn set_volume_out(&mut self, id: MemberId, step: VolumeStep) -> Result<(), MixerError> {
        self.member_mut(id)?.volume_out = step;
        self.relayout()
    }

    /// Moves the member into a breakout group (created on first use, not private) or,
    /// with `None`, back to the main room.
    pub fn set_breakout(
        &mut self,
        id: MemberId,
        breakout: Option<BreakoutId>,
    ) -> Result<(), MixerError> {
        self.member(id)?;
        let group = breakout.map(|breakout| self.group_index(breakout));
        self.member_mut(id)?.group = group;
        self.relayout()
    }

    /// Makes a breakout private (its members stop hearing the main room) or not.
    pub fn set_breakout_private(&mut self, breakout: BreakoutId, private: bool) {
        let index = self.group_index(breakout);
        self.groups[index].private = private;
    }

    /// The group index of `breakout`, created with its buffers if new.
    fn group_index(&mut self, breakout: BreakoutId) -> usize {
        if let Some(index) = self.groups.iter().position(|group| group.id == breakout) {
            return index;
        }
        let len = frame_len(self.room_rate);
        self.groups.push(Group { id: breakout, private: false });
        self.group_sums.push(vec![0; len]);
        self.hear.push(vec![0; len]);
        self.groups.len() - 1
    }

    /// The RMS (0..32768) of the member's last frame at its native rate; 0 without one.
    pub fn energy(&self, id: MemberId) -> Result<u16, MixerError> {
        Ok(self.member(id)?.energy)
    }

    /// The member's last frame level in dBFS (a sine at full scale is -3 dBFS);
    /// `f64::NEG_INFINITY` for silence.
    pub fn level_dbfs(&self, id: MemberId) -> Result<f64, MixerError> {
        let energy = self.energy(id)?;
        Ok(20.0 * (f64::from(energy) / 32768.0).log10())
    }

    /// Whether talking detection currently says the member talks.
    pub fn is_talking(&self, id: MemberId) -> Result<bool, MixerError> {
        Ok(self.member(id)?.talking)
    }

    /// Gives the member's decoded (or concealed) frame for the next tick, at its native
    /// rate (its codec's). A member without a frame in a tick is silent in it.
    pub fn push_frame(&mut self, id: MemberId, pcm: &[i16]) -> Result<(), MixerError> {
        let member = self.member_mut(id)?;
        if pcm.len() != member.input.len() {
            return Err(MixerError::WrongFrameLength {
                expected: member.input.len(),
                got: pcm.len(),
            });
        }
        // Copy and measure in one pass: in a big room this loop is most of a tick.
        let mut energy = 0u64;
        for (slot, &sample) in member.input.iter_mut().zip(pcm) {
            *slot = sample;
            energy += (i32::from(sample) * i32::from(sample)) as u64;
        }
        member.input_energy = energy;
        member.has_input = true;
        Ok(())
    }

    /// Adds a frame at the room rate ([`Mixer::room_frame_len`]) to the next tick, for
    /// the room or one member; several injections to one target add up. The prompt
    /// player resamples its file to [`Mixer::room_rate`] itself.
    pub fn inject(&mut self, target: InjectTarget, pcm: &[i16]) -> Result<(), MixerError> {
        let len = self.room_frame_len();
        if pcm.len() != len {
            return Err(MixerError::WrongFrameLength { expected: len, got: pcm.len() });
        }
        let (buffer, flag) = match target {
            InjectTarget::Room => (&mut self.room_injection, &mut self.has_room_injection),
            InjectTarget::Member(id) => {
                let member = self.member_mut(id)?;
                if member.injection.len() != len {
                    member.injection = vec![0; len];
                }
                (&mut member.injection, &mut member.has_injection)
            }
        };
        if !*flag {
            buffer.fill(0);
            *flag = true;
        }
        for (acc, &s) in buffer.iter_mut().zip(pcm) {
            *acc += i32::from(s);
        }
        Ok(())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MixerEvent> {
        self.events.pop_front()
    }

    /// Events dropped because the caller did not poll.
    #[must_use]
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// The main room's mix of the last tick at the room rate, prompts included: the tap
    /// a room recording reads.
    #[must_use]
    pub fn room_mix(&self) -> &[i16] {
        &self.room_mix
    }

    /// Ticks run so far.
    #[must_use]
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Frames encoded so far (shared and personal mixes): a silent shared mix
    /// stops adding to it after [`SILENCE_ENCODED_TICKS`].
    #[must_use]
    pub fn encodes(&self) -> u64 {
        self.encodes
    }

    /// Shared mixes delivered in the last tick.
    #[must_use]
    pub fn shared_mix_count(&self) -> usize {
        self.shared.iter().filter(|mix| !mix.members.is_empty()).count()
    }

    /// Personal mixes made in the last tick.
    #[must_use]
    pub fn personal_mix_count(&self) -> usize {
        self.personal.len()
    }

    /// What to send to `id` for the last tick.
    pub fn output(&self, id: MemberId) -> Result<OutFrame<'_>, MixerError> {
        let member = self.member(id)?;
        if member.personal {
            Ok(OutFrame {
                codec: member.codec,
                pcm: &member.out_pcm,
                payload: &member.payload[..member.payload_len],
            })
        } else {
            let mix = self.shared.get(member.shared_slot).ok_or(MixerError::UnknownMember)?;
            Ok(OutFrame {
                codec: mix.codec,
                pcm: &mix.pcm,
                payload: &mix.payload[..mix.payload_len],
            })
        }
    }

    /// Every distinct output of the last tick: each is encoded once and goes to the
    /// members it lists.
    pub fn deliveries(&self) -> impl Iterator<Item = Delivery<'_>> + '_ {
        let shared = self.shared.iter().enumerate().filter(|(_, mix)| !mix.members.is_empty()).map(
            |(index, mix)| Delivery::Shared {
                mix: index,
                members: &mix.members,
                frame: OutFrame {
                    codec: mix.codec,
                    pcm: &mix.pcm,
                    payload: &mix.payload[..mix.payload_len],
                },
            },
        );
        let personal = self.personal.iter().filter_map(|&id| {
            let member = self.member(id).ok()?;
            Some(Delivery::Personal {
                member: id,
                frame: OutFrame {
                    codec: member.codec,
                    pcm: &member.out_pcm,
                    payload: &member.payload[..member.payload_len],
                },
            })
        });
        shared.chain(personal)
    }

    /// The room rate an `auto` room should run at now.
    fn wanted_rate(&self) -> u32 {
        match self.config.rate {
            RoomRate::Fixed(rate) => rate,
            RoomRate::Auto => self
                .slots
                .iter()
                .filter_map(|slot| slot.member.as_ref())
                .map(|member| member.native_rate)
                .max()
                .unwrap_or(DEFAULT_ROOM_RATE),
        }
    }

    /// Rebuilds every rate-dependent buffer and resampler when the room rate changes.
    fn refresh_rate(&mut self) -> Result<(), MixerError> {
        let rate = self.wanted_rate();
        if rate == self.room_rate {
            return Ok(());
        }
        let len = frame_len(rate);
        for member in self.slots.iter_mut().filter_map(|slot| slot.member.as_mut()) {
            member.apply_rate(rate);
        }
        // Leases at the old rate are useless; the new pools fill up as speakers need them.
        self.pools.clear();
        for mix in &mut self.shared {
            mix.apply_rate(rate)?;
        }
        for buffer in self.hear.iter_mut().chain(&mut self.group_sums) {
            *buffer = vec![0; len];
        }
        self.room_injection = vec![0; len];
        self.has_room_injection = false;
        self.room_mix = vec![0; len];
        self.scratch_sum = vec![0; len];
        self.scratch_pcm = vec![0; len];
        self.room_rate = rate;
        Ok(())
    }

    /// Assigns every member its listening scope and shared mix, creating the mixes that
    /// are new and dropping those nobody listens to. Runs on every change that affects
    /// the keys (join, leave, deaf, breakout, output volume), never in a tick.
    fn relayout(&mut self) -> Result<(), MixerError> {
        for mix in &mut self.shared {
            mix.listeners = 0;
        }
        for member in self.slots.iter_mut().filter_map(|slot| slot.member.as_mut()) {
            member.scope = member.listen_scope();
            let key = (member.scope, member.codec, member.volume_out);
            let position =
                self.shared.iter().position(|mix| (mix.scope, mix.codec, mix.volume) == key);
            let index = match position {
                Some(index) => index,
                None => {
                    self.shared.push(SharedMix::new(key.0, key.1, key.2, self.room_rate)?);
                    self.shared.len() - 1
                }
            };
            self.shared[index].listeners += 1;
        }
        self.shared.retain(|mix| mix.listeners > 0);
        let count = self.count;
        for member in self.slots.iter_mut().filter_map(|slot| slot.member.as_mut()) {
            let key = (member.scope, member.codec, member.volume_out);
            member.shared_slot = self
                .shared
                .iter()
                .position(|mix| (mix.scope, mix.codec, mix.volume) == key)
                .unwrap_or(0);
        }
        for mix in &mut self.shared {
            mix.members.reserve(count.saturating_sub(mix.members.len()));
        }
        Ok(())
    }

    /// Runs one 20 ms tick: mixes the frames pushed since the last tick and produces
    /// every member's output. `now_ms` (the caller's monotonic clock) only stamps
    /// events. An idle room returns at once.
    pub fn tick(&mut self, now_ms: u64) {
        if self.count == 0 {
            return;
        }
        self.ticks += 1;
        self.detect(now_ms);
        self.select_speakers();
        self.sum_contributions();
        self.assign_outputs();
        if self.config.shared_mixes {
            self.mix_shared();
        }
        self.mix_personal();
        self.end_tick();
    }

    /// Step 1: energy, talking detection, gate; fills `candidates`.
    fn detect(&mut self, now_ms: u64) {
        let Self { slots, config, candidates, events, events_dropped, .. } = self;
        candidates.clear();
        for (index, member) in
            slots.iter_mut().enumerate().filter_map(|(i, slot)| Some((i, slot.member.as_mut()?)))
        {
            let energy =
                if member.has_input { rms(member.input_energy, member.input.len()) } else { 0 };
            member.energy = energy;
            let talk = &config.talk;
            let change = if member.talking {
                member.quiet_run =
                    if energy < talk.stop_level { member.quiet_run.saturating_add(1) } else { 0 };
                (member.quiet_run >= talk.stop_frames).then(|| {
                    member.talking = false;
                    member.loud_run = 0;
                    MixerEvent::TalkingStopped { member: member.id, at_ms: now_ms }
                })
            } else {
                member.loud_run =
                    if energy >= talk.start_level { member.loud_run.saturating_add(1) } else { 0 };
                (member.loud_run >= talk.start_frames).then(|| {
                    member.talking = true;
                    member.quiet_run = 0;
                    MixerEvent::TalkingStarted { member: member.id, at_ms: now_ms }
                })
            };
            if let Some(event) = change {
                if events.len() == events.capacity() {
                    events.pop_front();
                    *events_dropped += 1;
                }
                events.push_back(event);
            }
            let gate_open = match config.gate {
                Some(gate) => {
                    if member.has_input && energy >= gate.level {
                        member.gate_hold = gate.hangover_frames.saturating_add(1);
                    }
                    member.gate_hold = member.gate_hold.saturating_sub(1);
                    member.has_input && (energy >= gate.level || member.gate_hold > 0)
                }
                // Any sample not zero gives a sum of squares above zero.
                None => member.has_input && member.input_energy > 0,
            };
            member.contributing = false;
            if let (true, Some(scope)) = (gate_open, member.speak_scope()) {
                // Slot indices are bounded by MAX_MEMBERS.
                let bonus = if member.contributed_last { SPEAKER_INCUMBENT_BONUS_Q4 } else { 16 };
                let rank = u32::from(energy) * bonus / 16;
                candidates.push(Candidate { scope, rank, index: index as u32 });
            }
        }
    }

    /// Step 1b: keep only the N loudest of each scope.
    fn select_speakers(&mut self) {
        let Some(max) = self.config.max_speakers else { return };
        // Sorting in place allocates nothing; candidates are few unless everyone talks.
        self.candidates.sort_unstable_by_key(|c| (c.scope, Reverse(c.rank), c.index));
        let mut kept = 0;
        let mut in_scope = 0;
        let mut scope = usize::MAX;
        for i in 0..self.candidates.len() {
            let candidate = self.candidates[i];
            if candidate.scope != scope {
                scope = candidate.scope;
                in_scope = 0;
            }
            if in_scope < max {
                self.candidates[kept] = candidate;
                kept += 1;
                in_scope += 1;
            }
        }
        self.candidates.truncate(kept);
    }

    /// Step 2: resample and scale contributions, and sum them per scope.
    fn sum_contributions(&mut self) {
        let Self {
            slots,
            candidates,
            hear,
            group_sums,
            groups,
            room_injection,
            has_room_injection,
            scratch_pcm,
            pools,
            room_rate,
            ticks,
            ..
        } = self;
        if *has_room_injection {
            hear[SCOPE_MAIN].copy_from_slice(room_injection);
        } else {
            hear[SCOPE_MAIN].fill(0);
        }
        for sum in group_sums.iter_mut() {
            sum.fill(0);
        }
        for candidate in candidates.iter() {
            let Some(member) = slots[candidate.index as usize].member.as_mut() else { continue };
            let source: &[i16] = if member.resampled {
                // Continue from the previous frame, unless the member kept its
                // resampler from the last tick; with no previous frame, from silence.
                let prime_with = member.prev_valid.then_some(&member.prev_input[..]);
                match resample_leased(
                    pools,
                    (member.native_rate, *room_rate),
                    (candidate.index as usize, &mut member.in_lease),
                    *ticks,
                    prime_with,
                    &member.input,
                    scratch_pcm,
                ) {
                    Ok(len) => &scratch_pcm[..len],
                    Err(error) => {
                        tracing::warn!(%error, "mixer: input resampling failed");
                        continue;
                    }
                }
            } else {
                &member.input
            };
            let gain = member.volume_in.gain_q14();
            if gain == UNITY_GAIN {
                for (c, &s) in member.contrib.iter_mut().zip(source) {
                    *c = i32::from(s);
                }
            } else {
                for (c, &s) in member.contrib.iter_mut().zip(source) {
                    // |s| * gain < 2^15 * 2^17: fits i32.
                    *c = (i32::from(s) * gain) >> GAIN_SHIFT;
                }
            }
            let sum = if candidate.scope == SCOPE_MAIN {
                &mut hear[SCOPE_MAIN]
            } else {
                &mut group_sums[candidate.scope - SCOPE_FIRST_GROUP]
            };
            for (acc, &c) in sum.iter_mut().zip(&member.contrib) {
                *acc += c;
            }
            member.contributing = true;
        }
        // Breakouts hear their own sum plus, unless private, the main room.
        let (main, rest) = hear.split_at_mut(SCOPE_FIRST_GROUP);
        let main = &main[SCOPE_MAIN];
        for ((heard, own), group) in rest.iter_mut().zip(group_sums.iter()).zip(groups.iter()) {
            if group.private {
                heard.copy_from_slice(own);
            } else {
                for ((h, &o), &m) in heard.iter_mut().zip(own).zip(main) {
                    *h = o + m;
                }
            }
        }
        for (out, &s) in self.room_mix.iter_mut().zip(&self.hear[SCOPE_MAIN]) {
            *out = limit(s);
        }
    }

    /// Step 3a: who gets a personal mix, who which shared one.
    fn assign_outputs(&mut self) {
        let Self { slots, shared, personal, config, .. } = self;
        personal.clear();
        for mix in shared.iter_mut() {
            mix.members.clear();
        }
        for member in slots.iter_mut().filter_map(|slot| slot.member.as_mut()) {
            // A contributor hears its own scope (a deaf one hears nothing), so its
            // contribution must come out of its mix.
            member.personal = !config.shared_mixes
                || member.has_injection
                || (member.contributing && member.scope != SCOPE_SILENT);
            if member.personal {
                personal.push(member.id);
            } else if let Some(mix) = shared.get_mut(member.shared_slot) {
                mix.members.push(member.id);
            }
        }
    }

    /// Step 3b: one limited, resampled, encoded frame per shared key. Keys with no
    /// receiver this tick still run, so their resampler and encoder stay continuous for
    /// the members that come back to them. A mix silent for long repeats its last
    /// payload instead ([`SILENCE_ENCODED_TICKS`]).
    fn mix_shared(&mut self) {
        let encode_enabled = self.config.encode;
        let mut encodes = 0;
        for mix in &mut self.shared {
            std::mem::swap(&mut mix.room_pcm, &mut mix.prev_room_pcm);
            let Some(heard) = self.hear.get(mix.scope) else { continue };
            finish(heard, mix.volume.gain_q14(), &mut mix.room_pcm);
            let pcm_ready = match mix.resampler.as_mut() {
                Some(resampler) => resampler.process(&mix.room_pcm, &mut mix.pcm).is_ok(),
                None => {
                    mix.pcm.copy_from_slice(&mix.room_pcm);
                    true
                }
            };
            if !pcm_ready {
                mix.pcm.fill(0);
            }
            let silent = mix.pcm.iter().all(|&s| s == 0);
            mix.silent_ticks = if silent { mix.silent_ticks.saturating_add(1) } else { 0 };
            if mix.silent_ticks > SILENCE_ENCODED_TICKS && mix.payload_len > 0 {
                continue;
            }
            mix.payload_len =
                encode(mix.encoder.as_mut(), &mix.pcm, &mut mix.payload, encode_enabled);
            encodes += u64::from(encode_enabled);
        }
        self.encodes += encodes;
    }

    /// Step 3c: the mix-minus of each personal member.
    fn mix_personal(&mut self) {
        let Self {
            slots,
            shared,
            personal,
            hear,
            scratch_sum,
            scratch_pcm,
            config,
            pools,
            room_rate,
            ticks,
            encodes,
            ..
        } = self;
        for id in personal.iter() {
            let Some(member) = slots[id.index as usize].member.as_mut() else { continue };
            let Some(heard) = hear.get(member.scope) else { continue };
            if member.contributing && member.scope != SCOPE_SILENT {
                for ((s, &h), &c) in scratch_sum.iter_mut().zip(heard).zip(&member.contrib) {
                    *s = h - c;
                }
            } else {
                scratch_sum.copy_from_slice(heard);
            }
            if member.has_injection {
                for (s, &p) in scratch_sum.iter_mut().zip(&member.injection) {
                    *s += p;
                }
            }
            finish(scratch_sum, member.volume_out.gain_q14(), scratch_pcm);
            if member.resampled {
                // A member new to the personal path takes over from the shared
                // resampler it heard last: prime with that resampler's last frame.
                let prime_with = match shared.get(member.shared_slot) {
                    Some(mix) if config.shared_mixes => Some(&mix.prev_room_pcm[..]),
                    _ => None,
                };
                let resampled = resample_leased(
                    pools,
                    (*room_rate, member.native_rate),
                    (id.index as usize, &mut member.out_lease),
                    *ticks,
                    prime_with,
                    scratch_pcm,
                    &mut member.out_pcm,
                );
                if let Err(error) = resampled {
                    tracing::warn!(%error, "mixer: output resampling failed");
                    member.out_pcm.fill(0);
                }
            } else {
                member.out_pcm.copy_from_slice(scratch_pcm);
            }
            member.payload_len = if config.encode {
                let codec = member.codec;
                // Allocates on the member's first personal mix after an idle spell.
                let encoder = member.encoder.get_or_insert_with(|| codec.new_codec());
                *encodes += 1;
                encode(encoder.as_mut(), &member.out_pcm, &mut member.payload, true)
            } else {
                0
            };
        }
    }

    /// Step 4: remember what continuity needs, clear the inputs and free what has been
    /// idle for [`MixerConfig::idle_release_ticks`].
    fn end_tick(&mut self) {
        self.has_room_injection = false;
        let ticks = self.ticks;
        let idle = self.config.idle_release_ticks.map(u64::from);
        for member in self.slots.iter_mut().filter_map(|slot| slot.member.as_mut()) {
            if member.personal {
                member.personal_tick = ticks;
            } else if let Some(idle) = idle
                && member.encoder.is_some()
                && ticks.saturating_sub(member.personal_tick) >= idle
            {
                member.encoder = None;
            }
            member.contributed_last = member.contributing;
            member.personal_last = member.personal;
            if member.has_input {
                std::mem::swap(&mut member.input, &mut member.prev_input);
            }
            member.prev_valid = member.has_input;
            member.has_input = false;
            member.has_injection = false;
        }
        if let Some(idle) = idle {
            for pool in &mut self.pools {
                pool.release_idle(ticks, idle);
            }
        }
    }

    /// Members holding an encoder of their own now: those that had a personal mix in
    /// the last [`MixerConfig::idle_release_ticks`]. The others are served by the
    /// shared mixes' encoders.
    #[must_use]
    pub fn own_encoder_count(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|slot| slot.member.as_ref())
            .filter(|member| member.encoder.is_some())
            .count()
    }

    /// An estimate of the heap memory one member costs, in bytes: its slot, buffers and
    /// the encoder it holds while it speaks (G.711/G.722 state; an Opus encoder is far
    /// larger, see docs/performance.md). Resamplers are pooled per speaker, not per
    /// member: see [`Mixer::resampler_memory_estimate`].
    #[must_use]
    pub fn member_memory_estimate(&self, id: MemberId) -> Option<usize> {
        let member = self.member(id).ok()?;
        let buffers =
            (member.input.capacity() + member.prev_input.capacity() + member.out_pcm.capacity())
                * size_of::<i16>()
                + (member.contrib.capacity() + member.injection.capacity()) * size_of::<i32>()
                + member.payload.capacity();
        // The codec state, roughly: the concealer's history plus the ADPCM state.
        let codec = member.codec.samples_per_frame() * size_of::<i16>() + 512;
        Some(size_of::<Slot>() + buffers + codec)
    }

    /// Resamplers the room holds now (pooled per speaker, see the module docs) and an
    /// estimate of their heap memory in bytes.
    #[must_use]
    pub fn resampler_memory_estimate(&self) -> (usize, usize) {
        let pooled = self.pools.iter().flat_map(|pool| &pool.leases).map(|lease| &lease.resampler);
        let shared = self.shared.iter().filter_map(|mix| mix.resampler.as_ref());
        pooled.chain(shared).fold((0, 0), |(count, bytes), r| {
            let size = size_of::<FrameResampler>()
                + resampler_memory_estimate(r.input_len(), r.output_len());
            (count + 1, bytes + size)
        })
    }
}

/// Heap bytes of one rubato FFT resampler with blocks of `fft_in` and `fft_out` samples:
/// scratch, overlap and spectra in f32 and complex f32, plus the FFT plans' twiddles.
fn resampler_memory_estimate(fft_in: usize, fft_out: usize) -> usize {
    const F32: usize = 4;
    const COMPLEX: usize = 8;
    // rubato (5.0.1 synchro.rs): input buffer and scratch 2 blocks each, output buffer
    // and scratch 2 each, overlap 1; ours: one block each way.
    let real = (5 * fft_in + 6 * fft_out) * F32;
    // Filter and input spectrum (fft_in + 1 each), output spectrum (fft_out + 1), two
    // FFT scratch buffers and the twiddles of the two plans (about 1.5 blocks each).
    let complex = (4 * fft_in + 3 * fft_out + 3 + (fft_in + fft_out) / 2) * COMPLEX;
    real + complex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_is_identity_below_the_knee_and_never_wraps() {
        for x in [-LIMITER_KNEE, -1000, 0, 1, 1000, LIMITER_KNEE] {
            assert_eq!(i32::from(limit(x)), x);
        }
        let mut previous = limit(LIMITER_KNEE);
        for x in (LIMITER_KNEE..2_000_000_000).step_by(99_991) {
            let y = limit(x);
            assert!(y >= previous && y < i16::MAX, "{x} -> {y}");
            assert_eq!(limit(-x), -y);
            previous = y;
        }
        assert!(limit(i32::MAX) > 32_700);
        assert!(limit(i32::MIN + 1) < -32_700);
        assert_eq!(limit(i32::MIN), -limit(i32::MAX));
    }

    #[test]
    fn volume_steps_are_three_db_apart() {
        for step in VolumeStep::MIN..=VolumeStep::MAX {
            let v = VolumeStep::new(step).unwrap();
            let db = 20.0 * (f64::from(v.gain_q14()) / f64::from(UNITY_GAIN)).log10();
            assert!((db - v.gain_db()).abs() < 0.01, "step {step}: {db:.3} dB");
        }
        assert_eq!(VolumeStep::new(5), Err(MixerError::InvalidVolume(5)));
        assert_eq!(VolumeStep::new(-5), Err(MixerError::InvalidVolume(-5)));
    }

    #[test]
    fn tick_clock_never_drifts_and_caps_catch_up() {
        let start = Instant::now();
        let mut clock = TickClock::new(start);
        assert_eq!(clock.due(start), 1);
        assert_eq!(clock.due(start + Duration::from_millis(19)), 0);
        assert_eq!(clock.next_deadline(), start + TICK);
        // Woken 3 ms late: one tick, and the next deadline stays on the 20 ms grid.
        assert_eq!(clock.due(start + Duration::from_millis(23)), 1);
        assert_eq!(clock.next_deadline(), start + Duration::from_millis(40));
        assert_eq!(clock.due(start + Duration::from_millis(81)), 3);
        assert_eq!(clock.next_deadline(), start + Duration::from_millis(100));
        // A one-second stall: only MAX_CATCH_UP_TICKS run, the rest are skipped.
        assert_eq!(clock.due(start + Duration::from_millis(1100)), MAX_CATCH_UP_TICKS);
        assert_eq!(clock.skipped(), 51 - MAX_CATCH_UP_TICKS);
        assert_eq!(clock.next_deadline(), start + Duration::from_millis(1120));
        // A clock going backwards is no time passing.
        assert_eq!(clock.due(start), 0);
        assert_eq!(clock.deadline(1_000_000), start + Duration::from_secs(20_000));
    }

    #[test]
    fn an_empty_room_is_idle_and_ticks_cost_nothing() {
        let mut mixer = Mixer::new(MixerConfig::default()).unwrap();
        assert!(mixer.is_idle());
        mixer.tick(0);
        assert_eq!(mixer.ticks(), 0);
        let id = mixer.add_member(CodecKind::Pcmu).unwrap();
        assert!(!mixer.is_idle());
        mixer.remove_member(id).unwrap();
        assert!(mixer.is_idle());
        assert_eq!(mixer.set_muted(id, true), Err(MixerError::UnknownMember));
    }

    #[test]
    fn bad_input_is_refused_with_a_typed_error() {
        assert_eq!(
            Mixer::new(MixerConfig { rate: RoomRate::Fixed(44_100), ..MixerConfig::default() })
                .unwrap_err(),
            MixerError::UnsupportedRate(44_100)
        );
        let mut mixer = Mixer::new(MixerConfig::default()).unwrap();
        let id = mixer.add_member(CodecKind::Pcma).unwrap();
        assert_eq!(
            mixer.push_frame(id, &[0; 320]),
            Err(MixerError::WrongFrameLength { expected: 160, got: 320 })
        );
        assert_eq!(
            mixer.inject(InjectTarget::Room, &[0; 10]),
            Err(MixerError::WrongFrameLength { expected: 160, got: 10 })
        );
        // A stale id after the slot is reused.
        mixer.remove_member(id).unwrap();
        let other = mixer.add_member(CodecKind::Pcma).unwrap();
        assert_ne!(id, other);
        assert_eq!(mixer.energy(id), Err(MixerError::UnknownMember));
        assert!(mixer.energy(other).is_ok());
    }

    #[test]
    fn auto_rate_follows_the_highest_native_rate() {
        let mut mixer = Mixer::new(MixerConfig::default()).unwrap();
        assert_eq!(mixer.room_rate(), 8000);
        let a = mixer.add_member(CodecKind::Pcmu).unwrap();
        assert_eq!(mixer.room_rate(), 8000);
        let b = mixer.add_member(CodecKind::G722).unwrap();
        assert_eq!(mixer.room_rate(), 16_000);
        assert_eq!(mixer.room_frame_len(), 320);
        mixer.remove_member(b).unwrap();
        assert_eq!(mixer.room_rate(), 8000);
        mixer.remove_member(a).unwrap();
        let fixed =
            Mixer::new(MixerConfig { rate: RoomRate::Fixed(48_000), ..MixerConfig::default() })
                .unwrap();
        assert_eq!(fixed.room_rate(), 48_000);
    }

    #[test]
    fn memory_per_member_is_small() {
        let mut mixer = Mixer::new(MixerConfig::default()).unwrap();
        let g711 = mixer.add_member(CodecKind::Pcmu).unwrap();
        let at_8k = mixer.member_memory_estimate(g711).unwrap();
        println!("member at its own rate: {at_8k} bytes, Slot {} bytes", size_of::<Slot>());
        assert!(at_8k < 8 * 1024, "{at_8k} bytes");
        let mut wide =
            Mixer::new(MixerConfig { rate: RoomRate::Fixed(48_000), ..MixerConfig::default() })
                .unwrap();
        let resampled = wide.add_member(CodecKind::Pcmu).unwrap();
        let at_48k = wide.member_memory_estimate(resampled).unwrap();
        println!("member of a 48 kHz room: {at_48k} bytes");
        assert!(at_48k < 16 * 1024, "{at_48k} bytes");
    }

    #[test]
    fn resamplers_are_pooled_per_speaker_not_per_member() {
        let config = MixerConfig { rate: RoomRate::Fixed(48_000), ..MixerConfig::default() };
        let mut mixer = Mixer::new(config).unwrap();
        let members: Vec<MemberId> =
            (0..50).map(|_| mixer.add_member(CodecKind::Pcmu).unwrap()).collect();
        let loud = [8000i16; 160];
        for tick in 0..20 {
            // Speakers change every 5 ticks: leases move from one member to another.
            let first = (tick / 5) * 3;
            for &id in &members[first..first + 3] {
                mixer.push_frame(id, &loud).unwrap();
            }
            mixer.tick(tick as u64 * 20);
            assert_eq!(mixer.personal_mix_count(), 3);
        }
        let (count, bytes) = mixer.resampler_memory_estimate();
        println!("{count} resamplers, {bytes} bytes");
        // One shared 48 -> 8 kHz resampler, and per direction the 3 speakers plus the 3
        // whose gates are still open, plus the previous ones during their grace tick.
        assert!(count <= 1 + 2 * 9, "{count} resamplers");
        assert!(bytes < 2 * 1024 * 1024, "{bytes} bytes");
    }
}
