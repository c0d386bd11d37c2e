//! One call leg's media as a sans-IO state machine: datagrams and the time go in;
//! decoded frames for the mixer, packets to send, digits and the next deadline come
//! out. It composes the pieces of this crate: latching, SRTP, RFC 3550 statistics,
//! RTCP, the jitter buffer, the codec and RFC 4733 in both directions.
//!
//! The real-time path allocates nothing after construction: [`Leg::pull_frame`]
//! decodes into the caller's buffer and [`Leg::write_audio`] writes the packet into
//! the caller's buffer (SRTP is the exception: rtc-srtp returns a new buffer; and an
//! Opus decoder is created by the first packet, and again by the first after
//! [`DECODER_IDLE_FRAMES`] of silence).
//! Infrequent outputs (RTCP reports, digits) queue up for [`Leg::poll_output`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::codec::{Codec, CodecError, CodecKind, FRAME_MS};
use crate::counters::{DropReason, MEDIA};
use crate::dtmf::{Digit, DtmfEvent, DtmfPackets, DtmfReceiver, OutgoingEvent, SenderConfig};
use crate::jitter::{
    ConcealReason, IncomingPacket, JitterBuffer, JitterConfig, JitterError, Playout, Ssrc,
};
use crate::rtp::{
    CodecImpairment, Latch, LegStats, ReceiveStats, RtcpSession, RtpError, RtpSender, RtpView,
    SrtpError, SrtpSession, SrtpSuite, is_rtcp, ntp_from_unix,
};

/// Smallest jitter-buffer delay of an Opus leg: two frames, so the packet after a
/// lost one is there for in-band FEC.
const OPUS_MIN_DELAY_MS: u32 = 40;

/// Ticks in a row with nothing to play (the peer sends nothing: hold, a one-way
/// stream) after which the leg frees its decoder's state, 5 s: concealment ended long
/// before, and the next packet is decoded afresh as the first one was. An `opus-rs`
/// decoder holds about 175 KB. A leg receiving packets, even with gaps and losses,
/// never gets near this, so concealment and FEC are unaffected.
pub const DECODER_IDLE_FRAMES: u32 = 250;

/// While the mix a leg receives is digital silence and its peer agreed to comfort
/// noise (RFC 3389), one comfort-noise packet goes out every this many frames
/// (500 ms) instead of a silent frame every 20 ms. The refresh keeps the peer's
/// RTP-inactivity timer and NAT bindings fed.
pub const COMFORT_NOISE_REFRESH_FRAMES: u32 = 25;

/// While the mix a leg receives is digital silence and its Opus peer asked for
/// DTX (`usedtx=1`), the frame's table-of-contents byte alone goes out every
/// this many frames (400 ms, as an Opus encoder in DTX sends), nothing between.
pub const DTX_REFRESH_FRAMES: u32 = 20;

/// Silent frames sent whole before DTX starts (200 ms, as libopus waits), so
/// that the peer's decoder has decoded silence and conceals the frames of no
/// data as silence, not as the last words.
pub const DTX_AFTER_FRAMES: u32 = 10;

/// The comfort-noise payload for digital silence: a noise level of -127 dBov and
/// no spectral parameters (RFC 3389 section 3).
const COMFORT_NOISE_SILENCE: [u8; 1] = [127];

/// RFC 3550's recommended report interval for a two-party session.
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// SRTP keys for a leg: the suite, our key+salt and the peer's.
#[derive(Clone)]
pub struct SrtpKeys {
    pub suite: SrtpSuite,
    pub local: [u8; 30],
    pub remote: [u8; 30],
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys").field("suite", &self.suite).finish_non_exhaustive()
    }
}

/// What signalling negotiated for the leg.
#[derive(Debug, Clone)]
pub struct LegConfig {
    pub codec: CodecKind,
    /// Payload type on what we send (the peer's number for the codec).
    pub send_payload_type: u8,
    /// Payload type on what we receive (our number for the codec).
    pub recv_payload_type: u8,
    pub send_telephone_event: Option<u8>,
    pub recv_telephone_event: Option<u8>,
    /// Comfort-noise payload type on what we send, when the peer agreed to it:
    /// silence then goes out as a comfort-noise packet every
    /// [`COMFORT_NOISE_REFRESH_FRAMES`].
    pub send_comfort_noise: Option<u8>,
    /// Comfort-noise payload type on what we receive.
    pub recv_comfort_noise: Option<u8>,
    /// The Opus peer asked for DTX: silence then goes out as a packet of the
    /// frame's table-of-contents byte alone every [`DTX_REFRESH_FRAMES`].
    pub send_dtx: bool,
    /// Where the SDP says to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP; `None` with rtcp-mux (on the RTP address).
    pub remote_rtcp: Option<SocketAddr>,
    pub srtp: Option<SrtpKeys>,
    /// RTCP CNAME.
    pub cname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Jitter(#[from] JitterError),
    #[error(transparent)]
    Rtp(#[from] RtpError),
    #[error(transparent)]
    Srtp(#[from] SrtpError),
}

/// Something the shell must do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes to `to` (from the RTCP socket when `rtcp` and not muxed).
    Transmit { to: SocketAddr, data: Vec<u8>, rtcp: bool },
    /// A key was pressed (reported once per press, at its start).
    Digit(char),
    /// The peer said goodbye in RTCP.
    RemoteBye,
    /// Nothing (no RTP, no RTCP) came from the peer for the leg's silence limit
    /// (see [`Leg::set_silence_limits`]): its phone has most likely vanished.
    /// Reported once, until something arrives again.
    Silent {
        /// Whether the peer holds the call (the longer limit applied).
        held: bool,
        /// How long nothing came.
        for_ms: u64,
    },
}

/// How long a leg may hear nothing before [`Output::Silent`]: one limit while
/// the call is active, a longer one while the peer holds it (a held phone
/// sends nothing, legitimately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceLimits {
    pub active: Duration,
    pub held: Duration,
}

/// Datagrams the leg refused, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RejectCounts {
    pub malformed: u64,
    pub unknown_payload_type: u64,
    pub wrong_source: u64,
    pub srtp_rejected: u64,
    pub oversized: u64,
}

impl Drop for Leg {
    fn drop(&mut self) {
        MEDIA.leg(self.config.codec, -1);
    }
}

pub struct Leg {
    config: LegConfig,
    codec: Box<dyn Codec>,
    jitter: JitterBuffer,
    dtmf_in: DtmfReceiver,
    dtmf_out: Option<(DtmfPackets, u32, Option<OutgoingEvent>)>,
    sender: RtpSender,
    receive: ReceiveStats,
    rtcp: RtcpSession,
    latch: Latch,
    srtp: Option<SrtpSession>,
    epoch: Instant,
    outputs: VecDeque<Output>,
    rejects: RejectCounts,
    /// Whether the last frame sent carried speech, for the talk-spurt marker.
    sending_speech: bool,
    /// While silence goes out as comfort noise: frames since the last
    /// comfort-noise packet. `None` while audio goes out.
    comfort_noise_frames: Option<u32>,
    /// While silence goes out as Opus DTX: silent frames so far. `None` while
    /// audio goes out.
    dtx_frames: Option<u32>,
    /// The last thing played was the peer's comfort noise: a gap after it is
    /// silence, not a loss to conceal.
    after_comfort_noise: bool,
    /// False while the peer holds the call (it sent sendonly or inactive).
    sending: bool,
    /// Ticks in a row [`Leg::pull_frame`] had nothing to play (see
    /// [`DECODER_IDLE_FRAMES`]).
    idle_frames: u32,
    /// When the peer was last heard (an accepted RTP or RTCP packet), or the
    /// hold state last changed.
    last_heard: Instant,
    silence_limits: Option<SilenceLimits>,
    /// [`Output::Silent`] was reported for the current silence.
    silence_reported: bool,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg").field("codec", &self.config.codec).finish_non_exhaustive()
    }
}

impl Leg {
    pub fn new(config: LegConfig, now: Instant) -> Result<Self, LegError> {
        let codec = config.codec.new_codec();
        // Opus rebuilds a lost frame from the next packet's in-band FEC, but only
        // if that packet is already buffered when the lost frame is due: Opus legs
        // keep at least two frames (40 ms) so that a single loss is rebuilt.
        let min_delay_ms = if config.codec == CodecKind::Opus {
            OPUS_MIN_DELAY_MS
        } else {
            JitterConfig::default().min_delay_ms
        };
        let jitter = JitterBuffer::new(JitterConfig {
            clock_rate: config.codec.clock_rate(),
            frame_ms: FRAME_MS,
            min_delay_ms,
            ..JitterConfig::default()
        })?;
        let srtp = match &config.srtp {
            Some(keys) => Some(SrtpSession::new(keys.suite, &keys.local, &keys.remote)?),
            None => None,
        };
        let frame_ticks = config.codec.clock_rate() * FRAME_MS / 1000;
        MEDIA.leg(config.codec, 1);
        Ok(Self {
            codec,
            jitter,
            dtmf_in: DtmfReceiver::default(),
            dtmf_out: None,
            sender: RtpSender::random(config.send_payload_type, frame_ticks),
            receive: ReceiveStats::new(config.codec.clock_rate(), now),
            rtcp: RtcpSession::new(&config.cname, now, RTCP_INTERVAL),
            latch: Latch::new(config.remote_rtp),
            srtp,
            epoch: now,
            outputs: VecDeque::new(),
            rejects: RejectCounts::default(),
            sending_speech: false,
            comfort_noise_frames: None,
            dtx_frames: None,
            after_comfort_noise: false,
            sending: true,
            idle_frames: 0,
            last_heard: now,
            silence_limits: None,
            silence_reported: false,
            config,
        })
    }

    pub fn codec(&self) -> CodecKind {
        self.config.codec
    }

    /// The payload type of the audio this leg sends.
    pub fn payload_type(&self) -> u8 {
        self.config.send_payload_type
    }

    fn ms_since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// One datagram that arrived on the leg's RTP socket (RTP, or RTCP with
    /// rtcp-mux) or, with `rtcp_socket`, on its RTCP socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        rtcp_socket: bool,
    ) {
        MEDIA.received(data.len());
        if rtcp_socket || is_rtcp(data) {
            self.handle_rtcp(now, data);
        } else {
            self.handle_rtp(now, from, data);
        }
    }

    /// The datagram in plain text: as it is without SRTP, decrypted and
    /// authenticated with it; `None` (counted) when SRTP rejects it.
    fn unprotect<'a>(&mut self, data: &'a [u8], rtcp: bool) -> Option<std::borrow::Cow<'a, [u8]>> {
        let Some(srtp) = &mut self.srtp else {
            return Some(std::borrow::Cow::Borrowed(data));
        };
        let plain = if rtcp { srtp.unprotect_rtcp(data) } else { srtp.unprotect_rtp(data) };
        match plain {
            Ok(plain) => Some(std::borrow::Cow::Owned(plain)),
            Err(_) => {
                self.rejects.srtp_rejected += 1;
                MEDIA.dropped(DropReason::Srtp);
                None
            }
        }
    }

    fn handle_rtp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Some(data) = self.unprotect(data, false) else { return };
        let data = &*data;
        let Ok(view) = RtpView::parse(data) else {
            self.rejects.malformed += 1;
            MEDIA.dropped(DropReason::Malformed);
            return;
        };
        let is_audio = view.payload_type == self.config.recv_payload_type;
        let is_event = Some(view.payload_type) == self.config.recv_telephone_event;
        let is_comfort_noise = Some(view.payload_type) == self.config.recv_comfort_noise;
        if !is_audio && !is_event && !is_comfort_noise {
            self.rejects.unknown_payload_type += 1;
            MEDIA.dropped(DropReason::UnknownPayloadType);
            return;
        }
        // Only a packet we understand may latch the leg to its source.
        if !self.latch.accept(from) {
            self.rejects.wrong_source += 1;
            MEDIA.dropped(DropReason::ForeignSource);
            return;
        }
        self.heard(now);
        let payload = view.payload(data);
        let _ = self.receive.handle_packet(
            now,
            view.ssrc,
            view.sequence,
            view.timestamp,
            payload.len(),
        );
        let now_ms = self.ms_since_epoch(now);
        if is_comfort_noise {
            MEDIA.comfort_noise_received();
        }
        if is_event {
            if self.dtmf_in.handle_packet(now_ms, view.timestamp, view.marker, payload).is_ok() {
                self.drain_digits();
            }
            return;
        }
        let packet = IncomingPacket {
            ssrc: Ssrc(view.ssrc),
            seq: view.sequence,
            timestamp: view.timestamp,
            // Comfort noise takes its place in the sequence as an empty frame:
            // the silence it starts is then not taken for a loss.
            payload: if is_comfort_noise { &[] } else { payload },
        };
        if self.jitter.push(packet, now_ms).is_err() {
            self.rejects.oversized += 1;
            MEDIA.dropped(DropReason::Oversized);
        }
    }

    fn drain_digits(&mut self) {
        while let Some(event) = self.dtmf_in.poll_event() {
            if let DtmfEvent::Started { digit, .. } = event {
                self.outputs.push_back(Output::Digit(digit.as_char()));
            }
        }
    }

    fn handle_rtcp(&mut self, now: Instant, data: &[u8]) {
        let Some(data) = self.unprotect(data, true) else { return };
        let data = &*data;
        let ntp = ntp_now();
        let was_bye = self.rtcp.remote_bye();
        if self.rtcp.handle_rtcp(now, ntp, data, self.sender.ssrc(), &mut self.receive).is_err() {
            self.rejects.malformed += 1;
            MEDIA.dropped(DropReason::Malformed);
            return;
        }
        self.heard(now);
        if !was_bye && self.rtcp.remote_bye() {
            self.outputs.push_back(Output::RemoteBye);
        }
    }

    /// The leg's decoded audio for the tick at `now`, at the codec's sample rate,
    /// into `out`: `Some(samples)`, or `None` when it contributes nothing (not
    /// started, or silent beyond concealment).
    pub fn pull_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<Option<usize>, LegError> {
        let now_ms = self.ms_since_epoch(now);
        let playout = self.jitter.pop(now_ms);
        if matches!(playout, Playout::Empty) {
            self.idle_frames = self.idle_frames.saturating_add(1);
            if self.idle_frames == DECODER_IDLE_FRAMES {
                self.codec.release_decoder();
            }
        } else {
            self.idle_frames = 0;
        }
        let reason = match playout {
            Playout::Frame(frame) if frame.payload.is_empty() => {
                // The peer's comfort noise (or an empty payload): silence.
                self.after_comfort_noise = true;
                return Ok(None);
            }
            Playout::Frame(frame) => {
                self.after_comfort_noise = false;
                return match self.codec.decode(frame.payload, out) {
                    Ok(n) => Ok(Some(n)),
                    Err(e) => {
                        MEDIA.dropped(DropReason::DecodeError);
                        Err(e.into())
                    }
                };
            }
            // Nothing to conceal in the silence the peer announced.
            Playout::Conceal(_) if self.after_comfort_noise => return Ok(None),
            Playout::Conceal(reason) => reason,
            Playout::Empty => return Ok(None),
        };
        // A lost frame whose successor is here: Opus rebuilds it from the
        // successor's in-band FEC; other codecs conceal as usual.
        let n = match (reason, self.jitter.peek_next()) {
            (ConcealReason::Lost, Some(next)) => self.codec.conceal_from_next(next, out)?,
            _ => self.codec.conceal(out)?,
        };
        Ok(Some(n))
    }

    /// Encodes one frame of PCM (at the codec's rate) and writes the packet into
    /// `buf`. Returns the destination and length, or `None` when nothing is to be
    /// sent (hold). `speech` says whether the frame carries speech (for the
    /// talk-spurt marker).
    pub fn encode_and_write(
        &mut self,
        pcm: &[i16],
        speech: bool,
        scratch: &mut [u8],
        buf: &mut [u8],
    ) -> Result<Option<(SocketAddr, usize)>, LegError> {
        let n = self.codec.encode(pcm, scratch)?;
        self.write_audio(&scratch[..n], speech, buf)
    }

    /// Writes one already encoded audio frame (a mix shared by many legs is
    /// encoded once) into `buf`. While a digit is being sent, its RFC 4733
    /// packets replace the audio: they are queued, in order, for
    /// [`Leg::poll_output`], and nothing is written here.
    pub fn write_audio(
        &mut self,
        payload: &[u8],
        speech: bool,
        buf: &mut [u8],
    ) -> Result<Option<(SocketAddr, usize)>, LegError> {
        self.write_mix(payload, speech, false, buf)
    }

    /// [`Leg::write_audio`] for a frame that may be digital silence (`silent`).
    /// When the peer agreed to comfort noise, silence goes out as one
    /// comfort-noise packet at its start and then every
    /// [`COMFORT_NOISE_REFRESH_FRAMES`]; when an Opus peer asked for DTX, after
    /// [`DTX_AFTER_FRAMES`] silent frames sent whole, as the frame's
    /// table-of-contents byte alone (a frame of no data, which the decoder
    /// conceals: RFC 6716 section 3.2.1) every [`DTX_REFRESH_FRAMES`]. The
    /// frames between are not sent
    /// (their time still passes on the RTP clock); the first audio packet after
    /// the silence carries the marker bit (RFC 3551 section 4.1).
    pub fn write_mix(
        &mut self,
        payload: &[u8],
        speech: bool,
        silent: bool,
        buf: &mut [u8],
    ) -> Result<Option<(SocketAddr, usize)>, LegError> {
        let Some(to) = self.latch.destination().filter(|_| self.sending) else {
            self.sender.skip_frame();
            self.comfort_noise_frames = None;
            self.dtx_frames = None;
            return Ok(None);
        };
        if self.dtmf_out.is_some() {
            self.queue_digit_packets(to, buf)?;
            return Ok(None);
        }
        if let (true, Some(pt)) = (silent, self.config.send_comfort_noise) {
            self.sending_speech = false;
            let due = self.comfort_noise_frames.is_none_or(|n| n >= COMFORT_NOISE_REFRESH_FRAMES);
            if !due {
                self.comfort_noise_frames = self.comfort_noise_frames.map(|n| n + 1);
                self.sender.skip_frame();
                return Ok(None);
            }
            self.comfort_noise_frames = Some(1);
            let timestamp = self.sender.next_timestamp();
            let n = self.sender.write_packet(buf, pt, false, timestamp, &COMFORT_NOISE_SILENCE)?;
            self.sender.skip_frame();
            MEDIA.comfort_noise_sent();
            return self.protect(buf, n).map(|n| Some((to, n)));
        }
        if let (true, true, Some(toc)) = (silent, self.config.send_dtx, payload.get(..1)) {
            self.sending_speech = false;
            let before = self.dtx_frames.unwrap_or(0);
            self.dtx_frames = Some(before.saturating_add(1));
            let n = match before.checked_sub(DTX_AFTER_FRAMES) {
                None => self.sender.write_frame(buf, payload, false)?,
                Some(k) if k % DTX_REFRESH_FRAMES == 0 => {
                    MEDIA.comfort_noise_sent();
                    self.sender.write_frame(buf, toc, false)?
                }
                Some(_) => {
                    self.sender.skip_frame();
                    return Ok(None);
                }
            };
            return self.protect(buf, n).map(|n| Some((to, n)));
        }
        let after_dtx = self.dtx_frames.take().is_some_and(|n| n > DTX_AFTER_FRAMES);
        let after_silence = self.comfort_noise_frames.take().is_some() || after_dtx;
        let marker = after_silence || (speech && !self.sending_speech);
        self.sending_speech = speech;
        let n = self.sender.write_frame(buf, payload, marker)?;
        self.protect(buf, n).map(|n| Some((to, n)))
    }

    fn protect(&mut self, buf: &mut [u8], n: usize) -> Result<usize, LegError> {
        let Some(srtp) = &mut self.srtp else {
            return Ok(n);
        };
        let wire = srtp.protect_rtp(&buf[..n])?;
        let out = buf
            .get_mut(..wire.len())
            .ok_or(RtpError::BufferTooSmall { need: wire.len(), have: n })?;
        out.copy_from_slice(&wire);
        Ok(wire.len())
    }

    /// Starts sending `digit` for `duration_ms` as RFC 4733 events; refused
    /// (false) when the peer did not negotiate telephone-event.
    pub fn send_digit(&mut self, digit: Digit, duration_ms: u32) -> bool {
        let Some(_) = self.config.send_telephone_event else {
            return false;
        };
        let config =
            SenderConfig { clock_rate: self.config.codec.clock_rate(), ..SenderConfig::default() };
        match DtmfPackets::new(digit, duration_ms, self.sender.next_timestamp(), config) {
            Ok(mut packets) => {
                let first = packets.next();
                self.dtmf_out = Some((packets, 0, first));
                true
            }
            Err(_) => false,
        }
    }

    /// Queues the event packets due in this frame interval (the end packets are
    /// due together).
    fn queue_digit_packets(&mut self, to: SocketAddr, buf: &mut [u8]) -> Result<(), LegError> {
        let (Some((mut packets, tick, mut pending)), Some(pt)) =
            (self.dtmf_out.take(), self.config.send_telephone_event)
        else {
            return Ok(());
        };
        let window_end = (tick + 1) * FRAME_MS;
        while let Some(event) = pending.filter(|e| e.offset_ms < window_end) {
            let n =
                self.sender.write_packet(buf, pt, event.marker, event.timestamp, &event.payload)?;
            let n = self.protect(buf, n)?;
            self.outputs.push_back(Output::Transmit { to, data: buf[..n].to_vec(), rtcp: false });
            pending = packets.next();
        }
        // The audio frame this interval replaces still takes its time.
        self.sender.skip_frame();
        if pending.is_some() {
            self.dtmf_out = Some((packets, tick + 1, pending));
        }
        Ok(())
    }

    /// The peer was heard at `now` (a packet it sent was accepted; a clock
    /// going backwards is ignored).
    fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
        self.silence_reported = false;
    }

    /// When the current silence counts as the peer gone, if it is watched.
    fn silence_deadline(&self) -> Option<Instant> {
        let limits = self.silence_limits.filter(|_| !self.silence_reported)?;
        let limit = if self.sending { limits.active } else { limits.held };
        Some(self.last_heard + limit)
    }

    /// Watches for a peer that goes silent (`None`: never). Counting starts
    /// afresh now.
    pub fn set_silence_limits(&mut self, limits: Option<SilenceLimits>, now: Instant) {
        self.silence_limits = limits;
        self.heard(now);
    }

    /// When [`Leg::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.rtcp.poll_timeout();
        if let Some(ms) = self.dtmf_in.poll_timeout() {
            next = next.min(self.epoch + Duration::from_millis(ms));
        }
        match self.silence_deadline() {
            Some(silent) => next.min(silent),
            None => next,
        }
    }

    /// Runs what is due at `now`: an RTCP report, a digit whose end never
    /// came, a peer silent for too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.dtmf_in.handle_timeout(self.ms_since_epoch(now));
        self.drain_digits();
        if self.silence_deadline().is_some_and(|deadline| now >= deadline) {
            self.silence_reported = true;
            let for_ms = now.saturating_duration_since(self.last_heard).as_millis() as u64;
            self.outputs.push_back(Output::Silent { held: !self.sending, for_ms });
        }
        if now < self.rtcp.poll_timeout() {
            return;
        }
        let Ok(report) = self.rtcp.build_report(now, ntp_now(), &self.sender, &mut self.receive)
        else {
            return;
        };
        let report = match &mut self.srtp {
            Some(srtp) => match srtp.protect_rtcp(&report) {
                Ok(wire) => wire,
                Err(_) => return,
            },
            None => report,
        };
        let (to, rtcp) = match self.config.remote_rtcp {
            Some(addr) => (Some(addr), true),
            None => (self.latch.destination(), false),
        };
        if let Some(to) = to.filter(|a| !a.ip().is_unspecified()) {
            self.outputs.push_back(Output::Transmit { to, data: report, rtcp });
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Whether to send at all: not while the peer holds the call. The clock runs
    /// on, so sending resumes without a timestamp jump. A change of hold state
    /// starts the silence count afresh at `now` (a phone resuming after a long
    /// hold is not silent yet).
    pub fn set_sending(&mut self, sending: bool, now: Instant) {
        if sending != self.sending {
            self.heard(now);
        }
        self.sending = sending;
    }

    /// A re-INVITE or UPDATE moved the peer: latch afresh.
    pub fn update_remote(&mut self, remote_rtp: SocketAddr, remote_rtcp: Option<SocketAddr>) {
        self.latch.reset(remote_rtp);
        self.config.remote_rtp = remote_rtp;
        self.config.remote_rtcp = remote_rtcp;
    }

    pub fn stats(&self) -> LegStats {
        self.rtcp.stats(&self.sender, &self.receive, CodecImpairment::G711_PLC)
    }

    pub fn rejects(&self) -> RejectCounts {
        self.rejects
    }

    pub fn jitter_stats(&self) -> crate::jitter::JitterStats {
        self.jitter.stats()
    }
}

/// Wall-clock NTP time for RTCP sender reports.
fn ntp_now() -> u64 {
    let since_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    ntp_from_unix(since_unix)
}
