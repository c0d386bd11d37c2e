//! Opus (RFC 6716; RTP payload format RFC 7587) behind the [`Codec`] trait: mono at
//! 48 kHz internally (SDP still says `opus/48000/2`, as RFC 7587 requires), with the
//! decoder's own concealment, in-band FEC recovery and DTX-aware decoding.
//!
//! Two backends, chosen at build time: the pure-Rust `opus-rs` by default, so a plain
//! `cargo build` needs no system package, and the reference libopus (the `opus` crate,
//! whose build needs cmake) with the cargo feature `libopus`. With that feature both are
//! compiled and [`OpusBackend`] picks one per instance, which is how the two are tested
//! against each other; without it only `opus-rs` exists.
//!
//! # Loss, FEC and DTX
//!
//! - [`Codec::conceal`] runs the decoder's packet-loss concealment for 20 ms: it extends
//!   the last pitch and spectrum, which beats replaying a frame.
//! - [`Codec::conceal_from_next`] rebuilds a lost frame from the low-bit-rate copy (LBRR)
//!   that the encoder puts into the next packet when in-band FEC is on
//!   ([`OpusConfig::inband_fec`]); when that packet carries none, it conceals.
//! - DTX: a sender in DTX sends nothing, or TOC-only packets of at most two bytes, while
//!   it is silent. [`is_dtx`] tells such payloads apart: a sender should not transmit
//!   them and a receiver decodes them (the decoder fills the frame with comfort noise).
//!   Only libopus encodes DTX ([`OpusConfig::dtx`]); `opus-rs` has no DTX encoder and
//!   always sends full frames.
//!
//! Nothing allocates after construction: `opus-rs` decodes to `f32`, so the codec keeps
//! one preallocated scratch buffer for the conversion to `i16`.

use thiserror::Error;

use crate::codec::{Codec, CodecError, CodecKind};

/// The PCM and RTP clock rate of Opus in RTP (RFC 7587 fixes the RTP clock at 48 kHz).
pub const SAMPLE_RATE: u32 = 48_000;
/// PCM samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;
/// The longest packet Opus allows: 120 ms.
pub const MAX_PACKET_SAMPLES: usize = 5_760;
/// The largest payload of one 20 ms frame (RFC 6716 section 3.2.1).
pub const MAX_PAYLOAD_BYTES: usize = 1_276;
/// The dynamic payload type offered for Opus by default (the common WebRTC choice).
pub const DEFAULT_PAYLOAD_TYPE: u8 = 111;
/// Payloads of this length or less are DTX frames (libopus's `opus_encode` contract).
pub const DTX_MAX_BYTES: usize = 2;

/// Why an Opus call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OpusError {
    /// The peer sent a payload whose TOC and frame count are not a valid Opus packet.
    #[error("malformed packet")]
    MalformedPacket,
    /// The backend refused the input or its own state (its description).
    #[error("{0}")]
    Backend(&'static str),
}

impl From<OpusError> for CodecError {
    fn from(error: OpusError) -> Self {
        CodecError::Opus(error)
    }
}

/// Which Opus implementation an instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpusBackend {
    /// `opus-rs`, pure Rust.
    PureRust,
    /// The reference libopus through the `opus` crate (cargo feature `libopus`).
    #[cfg(feature = "libopus")]
    Libopus,
}

impl OpusBackend {
    /// libopus when the crate is built with the `libopus` feature, else `opus-rs`.
    #[cfg(feature = "libopus")]
    pub const DEFAULT: Self = Self::Libopus;
    /// libopus when the crate is built with the `libopus` feature, else `opus-rs`.
    #[cfg(not(feature = "libopus"))]
    pub const DEFAULT: Self = Self::PureRust;

    /// Every backend compiled into this build.
    #[must_use]
    pub const fn available() -> &'static [Self] {
        #[cfg(feature = "libopus")]
        {
            &[Self::PureRust, Self::Libopus]
        }
        #[cfg(not(feature = "libopus"))]
        {
            &[Self::PureRust]
        }
    }
}

impl Default for OpusBackend {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bit rate (variable bit rate around it). The default, 40 kbit/s, leaves room
    /// for the FEC copy; at 32 kbit/s and complexity 5 libopus dulled one tone of a
    /// three-tone mix by almost 3 dB.
    pub bitrate_bps: u32,
    /// 0 (fastest) to 10 (best); values above 10 are treated as 10. The default, 5,
    /// costs opus-rs about a third less time per frame than 10.
    pub complexity: u8,
    /// Put a low-bit-rate copy of each frame into the next packet.
    pub inband_fec: bool,
    /// The loss rate the encoder plans FEC for, 0 to 100. libopus sends no FEC at 0.
    pub expected_loss_percent: u8,
    /// Discontinuous transmission during silence (libopus only; see the module docs).
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            bitrate_bps: 40_000,
            complexity: 5,
            inband_fec: true,
            expected_loss_percent: 10,
            dtx: false,
        }
    }
}

/// Whether a payload is a DTX frame that need not be sent (two bytes or less).
#[must_use]
pub fn is_dtx(payload: &[u8]) -> bool {
    payload.len() <= DTX_MAX_BYTES
}

/// Samples at 48 kHz in one packet, from its TOC byte and frame count (RFC 6716
/// section 3.1), without decoding it.
pub fn packet_samples(payload: &[u8]) -> Result<usize, OpusError> {
    let Some(&toc) = payload.first() else {
        return Err(OpusError::MalformedPacket);
    };
    let config = toc >> 3;
    // Frame durations in 48 kHz samples for each configuration group.
    let per_frame = match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let Some(&count) = payload.get(1) else {
                return Err(OpusError::MalformedPacket);
            };
            usize::from(count & 0x3F)
        }
    };
    let total = per_frame * frames;
    if frames == 0 || total > MAX_PACKET_SAMPLES {
        return Err(OpusError::MalformedPacket);
    }
    Ok(total)
}

fn backend_error(message: &'static str) -> CodecError {
    CodecError::Opus(OpusError::Backend(message))
}

fn check_output(needed: usize, capacity: usize) -> Result<(), CodecError> {
    if capacity < needed { Err(CodecError::OutputTooSmall { needed, capacity }) } else { Ok(()) }
}

/// `opus-rs` works in `f32` at +-1.0 full scale.
fn f32_to_i16(input: &[f32], out: &mut [i16]) {
    for (slot, &value) in out.iter_mut().zip(input) {
        // `as` saturates and maps NaN to 0, so no input can panic here.
        *slot = (value * 32_768.0).round() as i16;
    }
}

/// The encoder and decoder are created on first use: a leg only decodes (the
/// mixer encodes for it) and a mixer member only encodes, and each opus-rs half
/// costs about 200 KB. [`Codec::release_decoder`] frees the decoder again.
struct PureRust {
    config: OpusConfig,
    encoder: Option<opus_rs::OpusEncoder>,
    decoder: Option<opus_rs::OpusDecoder>,
    /// Decoder output before conversion to `i16`; one 120 ms packet.
    scratch: Box<[f32]>,
}

impl PureRust {
    fn new(config: &OpusConfig) -> Result<Self, OpusError> {
        Ok(Self { config: *config, encoder: None, decoder: None, scratch: Box::default() })
    }

    fn encoder(&mut self) -> Result<&mut opus_rs::OpusEncoder, CodecError> {
        if self.encoder.is_none() {
            let config = &self.config;
            let mut encoder =
                opus_rs::OpusEncoder::new(SAMPLE_RATE as i32, 1, opus_rs::Application::Voip)
                    .map_err(backend_error)?;
            encoder.bitrate_bps = i32::try_from(config.bitrate_bps).unwrap_or(i32::MAX);
            encoder.complexity = i32::from(config.complexity.min(10));
            encoder.use_inband_fec = config.inband_fec;
            encoder.packet_loss_perc = i32::from(config.expected_loss_percent.min(100));
            self.encoder = Some(encoder);
        }
        self.encoder.as_mut().ok_or_else(|| backend_error("encoder unavailable"))
    }

    fn decoder(&mut self) -> Result<&mut opus_rs::OpusDecoder, CodecError> {
        if self.decoder.is_none() {
            self.decoder =
                Some(opus_rs::OpusDecoder::new(SAMPLE_RATE as i32, 1).map_err(backend_error)?);
            self.scratch = vec![0.0; MAX_PACKET_SAMPLES].into_boxed_slice();
        }
        self.decoder.as_mut().ok_or_else(|| backend_error("decoder unavailable"))
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.encoder()?.encode_i16(pcm, FRAME_SAMPLES, out).map_err(backend_error)
    }

    fn release_decoder(&mut self) {
        self.decoder = None;
        self.scratch = Box::default();
    }

    /// `payload` empty means a lost frame of `samples`.
    fn decode(
        &mut self,
        payload: &[u8],
        samples: usize,
        fec: bool,
        out: &mut [i16],
    ) -> Result<usize, CodecError> {
        self.decoder()?;
        let (Some(decoder), Some(scratch)) =
            (self.decoder.as_mut(), self.scratch.get_mut(..samples))
        else {
            return Err(backend_error("frame larger than a packet"));
        };
        let written = if fec {
            decoder.decode_fec(payload, samples, scratch)
        } else {
            decoder.decode(payload, samples, scratch)
        }
        .map_err(backend_error)?
        .min(samples);
        f32_to_i16(&self.scratch[..written], &mut out[..written]);
        Ok(written)
    }
}

#[cfg(feature = "libopus")]
struct Libopus {
    config: OpusConfig,
    /// Created on first use, as for [`PureRust`].
    encoder: Option<opus::Encoder>,
    decoder: Option<opus::Decoder>,
}

#[cfg(feature = "libopus")]
fn libopus_error(error: opus::Error) -> CodecError {
    backend_error(error.code().description())
}

#[cfg(feature = "libopus")]
impl Libopus {
    fn new(config: &OpusConfig) -> Result<Self, OpusError> {
        Ok(Self { config: *config, encoder: None, decoder: None })
    }

    fn encoder(&mut self) -> Result<&mut opus::Encoder, CodecError> {
        if self.encoder.is_none() {
            let config = &self.config;
            let mut encoder =
                opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                    .map_err(libopus_error)?;
            let bitrate = i32::try_from(config.bitrate_bps).unwrap_or(i32::MAX);
            encoder.set_bitrate(opus::Bitrate::Bits(bitrate)).map_err(libopus_error)?;
            encoder.set_complexity(i32::from(config.complexity.min(10))).map_err(libopus_error)?;
            encoder.set_inband_fec(config.inband_fec).map_err(libopus_error)?;
            encoder
                .set_packet_loss_perc(i32::from(config.expected_loss_percent.min(100)))
                .map_err(libopus_error)?;
            encoder.set_dtx(config.dtx).map_err(libopus_error)?;
            self.encoder = Some(encoder);
        }
        self.encoder.as_mut().ok_or_else(|| backend_error("encoder unavailable"))
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.encoder()?.encode(pcm, out).map_err(libopus_error)
    }

    fn release_decoder(&mut self) {
        self.decoder = None;
    }

    fn decode(
        &mut self,
        payload: &[u8],
        samples: usize,
        fec: bool,
        out: &mut [i16],
    ) -> Result<usize, CodecError> {
        // libopus takes the frame size (the loss to cover, for PLC and FEC) from the
        // output length, so the slice must be exactly `samples` long.
        if self.decoder.is_none() {
            let decoder =
                opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).map_err(libopus_error)?;
            self.decoder = Some(decoder);
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return Err(backend_error("decoder unavailable"));
        };
        let written = decoder.decode(payload, &mut out[..samples], fec).map_err(libopus_error)?;
        Ok(written.min(samples))
    }
}

enum Engine {
    // Boxed: opus-rs keeps a few KB inline, libopus only a pointer.
    PureRust(Box<PureRust>),
    #[cfg(feature = "libopus")]
    Libopus(Libopus),
}

/// One Opus encoder and decoder pair for one leg.
pub struct Opus {
    engine: Engine,
    backend: OpusBackend,
    /// Whether any packet has been decoded: before that, concealment is silence.
    started: bool,
}

impl std::fmt::Debug for Opus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opus").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Opus {
    /// The default backend with the default settings.
    ///
    /// # Panics
    ///
    /// Never in practice: the fixed, valid settings cannot be refused. Should a
    /// backend still refuse them, this falls back to `opus-rs`, and panics only if
    /// that refuses them too, which would be a bug in this module.
    #[must_use]
    pub fn new() -> Self {
        let config = OpusConfig::default();
        Self::with_config(OpusBackend::DEFAULT, config)
            .or_else(|_| Self::with_config(OpusBackend::PureRust, config))
            .expect("opus-rs accepts 48 kHz mono VoIP with the default settings")
    }

    /// A codec on the given backend with the given encoder settings.
    pub fn with_config(backend: OpusBackend, config: OpusConfig) -> Result<Self, OpusError> {
        let engine = match backend {
            OpusBackend::PureRust => Engine::PureRust(Box::new(PureRust::new(&config)?)),
            #[cfg(feature = "libopus")]
            OpusBackend::Libopus => Engine::Libopus(Libopus::new(&config)?),
        };
        Ok(Self { engine, backend, started: false })
    }

    /// The backend this instance runs.
    #[must_use]
    pub fn backend(&self) -> OpusBackend {
        self.backend
    }

    fn run_decoder(
        &mut self,
        payload: &[u8],
        samples: usize,
        fec: bool,
        out: &mut [i16],
    ) -> Result<usize, CodecError> {
        match &mut self.engine {
            Engine::PureRust(engine) => engine.decode(payload, samples, fec, out),
            #[cfg(feature = "libopus")]
            Engine::Libopus(engine) => engine.decode(payload, samples, fec, out),
        }
    }
}

impl Default for Opus {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec for Opus {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if pcm.len() != FRAME_SAMPLES {
            return Err(CodecError::WrongFrameLength { expected: FRAME_SAMPLES, got: pcm.len() });
        }
        // More room than one frame can use would only invite the encoder to spend it.
        let out_len = out.len().min(MAX_PAYLOAD_BYTES);
        let out = &mut out[..out_len];
        // The backends accept small buffers by lowering the rate, but below this they
        // cannot hold a TOC and a frame.
        check_output(DTX_MAX_BYTES + 1, out.len())?;
        match &mut self.engine {
            Engine::PureRust(engine) => engine.encode(pcm, out),
            #[cfg(feature = "libopus")]
            Engine::Libopus(engine) => engine.encode(pcm, out),
        }
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Ok(0);
        }
        let samples = packet_samples(payload)?;
        check_output(samples, out.len())?;
        let written = self.run_decoder(payload, samples, false, out)?;
        self.started = true;
        Ok(written)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        check_output(FRAME_SAMPLES, out.len())?;
        if !self.started {
            out[..FRAME_SAMPLES].fill(0);
            return Ok(FRAME_SAMPLES);
        }
        self.run_decoder(&[], FRAME_SAMPLES, false, out)
    }

    fn conceal_from_next(&mut self, next: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_output(FRAME_SAMPLES, out.len())?;
        // A garbled or DTX next packet carries no FEC: plain concealment.
        if !self.started || is_dtx(next) || packet_samples(next).is_err() {
            return self.conceal(out);
        }
        self.run_decoder(next, FRAME_SAMPLES, true, out)
    }

    fn release_decoder(&mut self) {
        match &mut self.engine {
            Engine::PureRust(engine) => engine.release_decoder(),
            #[cfg(feature = "libopus")]
            Engine::Libopus(engine) => engine.release_decoder(),
        }
        // A fresh decoder has nothing to conceal from.
        self.started = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_parsing_counts_samples_and_rejects_garbage() {
        // Config 1 (SILK NB 20 ms), code 0: one frame.
        assert_eq!(packet_samples(&[0x08, 0]), Ok(960));
        // Config 31 (CELT FB 20 ms), code 1: two frames.
        assert_eq!(packet_samples(&[0xF9, 0, 0]), Ok(1920));
        // Config 16 (CELT 2.5 ms), code 3 with 48 frames: 120 ms, the maximum.
        assert_eq!(packet_samples(&[0x83, 48]), Ok(5760));
        assert_eq!(packet_samples(&[0x83, 49]), Err(OpusError::MalformedPacket));
        assert_eq!(packet_samples(&[0x83, 0]), Err(OpusError::MalformedPacket));
        assert_eq!(packet_samples(&[0x83]), Err(OpusError::MalformedPacket));
        assert_eq!(packet_samples(&[]), Err(OpusError::MalformedPacket));
        // Config 3 (SILK 60 ms), code 3 with 3 frames: 180 ms, too long.
        assert_eq!(packet_samples(&[0x1B, 3]), Err(OpusError::MalformedPacket));
    }

    #[test]
    fn kind_describes_rtp_parameters() {
        assert_eq!(CodecKind::Opus.clock_rate(), 48_000);
        assert_eq!(CodecKind::Opus.sample_rate(), 48_000);
        assert_eq!(CodecKind::Opus.samples_per_frame(), FRAME_SAMPLES);
        assert_eq!(CodecKind::Opus.payload_type(), DEFAULT_PAYLOAD_TYPE);
        assert_eq!(CodecKind::Opus.new_codec().kind(), CodecKind::Opus);
    }

    #[test]
    fn rejects_bad_calls_without_panicking() {
        for &backend in OpusBackend::available() {
            let mut codec = Opus::with_config(backend, OpusConfig::default()).unwrap();
            let mut payload = [0u8; MAX_PAYLOAD_BYTES];
            assert!(matches!(
                codec.encode(&[0; 959], &mut payload),
                Err(CodecError::WrongFrameLength { expected: 960, got: 959 })
            ));
            assert!(matches!(
                codec.encode(&[0; 960], &mut payload[..2]),
                Err(CodecError::OutputTooSmall { .. })
            ));
            let mut out = [0i16; 960];
            assert!(matches!(
                codec.decode(&[0x83, 48, 0, 0], &mut out),
                Err(CodecError::OutputTooSmall { needed: 5760, capacity: 960 })
            ));
            assert!(matches!(
                codec.decode(&[0x83], &mut out),
                Err(CodecError::Opus(OpusError::MalformedPacket))
            ));
            assert_eq!(codec.decode(&[], &mut out), Ok(0));
            assert!(matches!(
                codec.conceal(&mut out[..100]),
                Err(CodecError::OutputTooSmall { .. })
            ));
            // Before any packet, concealment is silence.
            out.fill(7);
            assert_eq!(codec.conceal(&mut out), Ok(960));
            assert!(out.iter().all(|&s| s == 0));
            // Random bytes must not panic whichever way they are decoded.
            let mut seed = 0x1234_5678u32;
            for len in 1..200 {
                let mut junk = [0u8; 200];
                for byte in &mut junk[..len] {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    *byte = (seed >> 24) as u8;
                }
                let mut big = [0i16; MAX_PACKET_SAMPLES];
                let _ = codec.decode(&junk[..len], &mut big);
                let _ = codec.conceal_from_next(&junk[..len], &mut big);
                let _ = codec.conceal(&mut big);
            }
        }
    }

    #[test]
    fn a_released_decoder_is_freed_and_starts_afresh() {
        let tone: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|n| {
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 48_000.0).sin()) as i16
            })
            .collect();
        for &backend in OpusBackend::available() {
            let mut sender = Opus::with_config(backend, OpusConfig::default()).unwrap();
            let mut codec = Opus::with_config(backend, OpusConfig::default()).unwrap();
            let mut payload = [0u8; MAX_PAYLOAD_BYTES];
            let mut out = [0i16; FRAME_SAMPLES];
            let has_decoder = |codec: &Opus| match &codec.engine {
                Engine::PureRust(engine) => engine.decoder.is_some(),
                #[cfg(feature = "libopus")]
                Engine::Libopus(engine) => engine.decoder.is_some(),
            };
            for _ in 0..5 {
                let n = sender.encode(&tone, &mut payload).unwrap();
                assert_eq!(codec.decode(&payload[..n], &mut out), Ok(FRAME_SAMPLES));
            }
            assert!(has_decoder(&codec));
            codec.release_decoder();
            assert!(!has_decoder(&codec), "{backend:?}");
            // Nothing to conceal from until the next packet.
            out.fill(7);
            assert_eq!(codec.conceal(&mut out), Ok(FRAME_SAMPLES));
            assert!(out.iter().all(|&s| s == 0));
            for _ in 0..5 {
                let n = sender.encode(&tone, &mut payload).unwrap();
                assert_eq!(codec.decode(&payload[..n], &mut out), Ok(FRAME_SAMPLES));
            }
            let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!(peak > 4000, "{backend:?}: peak {peak} after the decoder came back");
        }
    }

    #[test]
    fn dtx_payloads_are_recognised() {
        assert!(is_dtx(&[]));
        assert!(is_dtx(&[0x08]));
        assert!(is_dtx(&[0x08, 0x00]));
        assert!(!is_dtx(&[0x08, 0x00, 0x00]));
    }
}
