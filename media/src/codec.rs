//! Audio codecs behind one small trait, so the mixer can decode, encode and conceal
//! every leg the same way: PCMU and PCMA (G.711, written here and checked against
//! CPython's `audioop` on every input), G.722 (through the `audio-codec` crate) and
//! Opus (in [`crate::opus`], with its own concealment and in-band FEC).
//!
//! Every method works on caller-owned buffers and allocates nothing, so a codec can sit
//! on the real-time path. Frames are 20 ms ([`FRAME_MS`]).
//!
//! # Concealment
//!
//! None of these codecs has a packet-loss concealment of its own, so [`Concealer`]
//! provides one: the last decoded 20 ms frame is replayed with a gain that falls
//! linearly, sample by sample, from one to zero over [`CONCEAL_FADE_MS`] (60 ms, three
//! frames) of consecutive loss; after that it yields silence. The next good frame
//! resets the gain. Replaying real signal hides a single lost packet far better than a gap, and
//! the fade keeps a long outage from turning into a 50 Hz buzz. After a loss G.722's
//! adaptive predictor is out of step with the sender's for a few milliseconds; it
//! reconverges by itself.

use thiserror::Error;

/// Duration of one frame, in milliseconds.
pub const FRAME_MS: u32 = 20;

/// How long a run of concealed frames takes to fade from the last good frame to silence.
pub const CONCEAL_FADE_MS: u32 = 60;

/// The largest 20 ms frame any codec here produces: Opus at 48 kHz.
pub const MAX_FRAME_SAMPLES: usize = 960;

/// The codecs this crate can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 mu-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// G.722 at 64 kbit/s, static payload type 9.
    G722,
    /// Opus (RFC 7587), mono at 48 kHz; a dynamic payload type.
    Opus,
}

impl CodecKind {
    /// The static RTP payload type from RFC 3551.
    #[must_use]
    pub const fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
            Self::G722 => 9,
            // Dynamic: this is only the number offered by default; the SDP answer may
            // bind Opus to another.
            Self::Opus => crate::opus::DEFAULT_PAYLOAD_TYPE,
        }
    }

    /// The RTP clock rate. G.722 samples at 16 kHz but RFC 3551 keeps its RTP clock at
    /// 8000 Hz for historical reasons, so the two rates differ for it.
    #[must_use]
    pub const fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 8000,
            Self::Opus => crate::opus::SAMPLE_RATE,
        }
    }

    /// The PCM sample rate the codec consumes and produces.
    #[must_use]
    pub const fn sample_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::G722 => 16000,
            Self::Opus => crate::opus::SAMPLE_RATE,
        }
    }

    /// PCM samples in one 20 ms frame.
    #[must_use]
    pub const fn samples_per_frame(self) -> usize {
        (self.sample_rate() * FRAME_MS / 1000) as usize
    }

    /// Payload bytes of one encoded 20 ms frame (G.711 and G.722 are constant-rate); for
    /// the variable-rate Opus, the largest payload one frame can take, so an encode
    /// buffer of this size always suffices.
    #[must_use]
    pub const fn bytes_per_frame(self) -> usize {
        match self {
            // One byte per sample.
            Self::Pcmu | Self::Pcma => self.samples_per_frame(),
            // 64 kbit/s: one byte per pair of 16 kHz samples.
            Self::G722 => self.samples_per_frame() / 2,
            Self::Opus => crate::opus::MAX_PAYLOAD_BYTES,
        }
    }

    /// A fresh codec instance of this kind.
    #[must_use]
    pub fn new_codec(self) -> Box<dyn Codec> {
        match self {
            Self::Pcmu => Box::new(Pcmu::new()),
            Self::Pcma => Box::new(Pcma::new()),
            Self::G722 => Box::new(G722::new()),
            Self::Opus => Box::new(crate::opus::Opus::new()),
        }
    }
}

/// Why a codec call failed. All of these are caller errors or bad input; none leaves
/// the codec in an unusable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CodecError {
    /// `encode` takes exactly one 20 ms frame.
    #[error("PCM input has {got} samples, one frame is {expected}")]
    WrongFrameLength {
        /// Samples in one frame of this codec.
        expected: usize,
        /// Samples given.
        got: usize,
    },
    /// The caller's output buffer cannot hold the result.
    #[error("output buffer holds {capacity}, {needed} needed")]
    OutputTooSmall {
        /// Elements the result needs.
        needed: usize,
        /// Elements the buffer holds.
        capacity: usize,
    },
    /// The G.722 implementation refused the input.
    #[error("G.722: {0}")]
    G722(audio_codec::CodecError),
    /// The Opus packet or backend refused.
    #[error("Opus: {0}")]
    Opus(crate::opus::OpusError),
}

/// One direction-independent codec instance (encoder state, decoder state and the
/// concealment history) for one leg.
pub trait Codec: Send {
    /// Which codec this is.
    fn kind(&self) -> CodecKind;

    /// The RTP clock rate (RTP timestamp units per second).
    fn clock_rate(&self) -> u32 {
        self.kind().clock_rate()
    }

    /// The PCM sample rate.
    fn sample_rate(&self) -> u32 {
        self.kind().sample_rate()
    }

    /// PCM samples in one 20 ms frame.
    fn samples_per_frame(&self) -> usize {
        self.kind().samples_per_frame()
    }

    /// Encodes exactly one 20 ms frame into `out`, returning the payload length.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;

    /// Decodes one RTP payload (any whole number of samples, not only 20 ms) into `out`,
    /// returning the number of samples written.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;

    /// Writes one 20 ms frame standing in for a lost packet (see the module docs),
    /// returning the number of samples written.
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError>;

    /// Like [`Codec::conceal`], for a lost packet when the packet after it, `next`, has
    /// already arrived: a codec with in-band FEC (Opus) rebuilds the lost frame from
    /// it. `next` is not consumed; decode it in its own turn. The others conceal.
    fn conceal_from_next(&mut self, next: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let _ = next;
        self.conceal(out)
    }

    /// Frees the decoder's state after the stream has been silent so long that
    /// concealment has nothing left to continue; the next packet is decoded by a fresh
    /// decoder, as the first one was. For codecs whose state is large (Opus); the
    /// others keep their few bytes (the default does nothing).
    fn release_decoder(&mut self) {}
}

fn check_output(needed: usize, capacity: usize) -> Result<(), CodecError> {
    if capacity < needed { Err(CodecError::OutputTooSmall { needed, capacity }) } else { Ok(()) }
}

fn check_frame(expected: usize, got: usize) -> Result<(), CodecError> {
    if got != expected { Err(CodecError::WrongFrameLength { expected, got }) } else { Ok(()) }
}

/// Replays the last decoded frame with a fade to silence while packets are missing.
///
/// Fed with every decoded sample through [`Concealer::remember`]; the history is a
/// fixed array, so neither remembering nor concealing allocates.
#[derive(Debug, Clone)]
pub struct Concealer {
    /// The most recent `frame_len` decoded samples, oldest first.
    history: [i16; MAX_FRAME_SAMPLES],
    frame_len: usize,
    /// Concealed samples produced since the last good frame.
    concealed: usize,
    /// Samples over which the gain falls from one to zero.
    fade_len: usize,
}

impl Concealer {
    /// A concealer for frames of `frame_len` samples at `sample_rate` (`frame_len` is
    /// capped at [`MAX_FRAME_SAMPLES`]).
    #[must_use]
    pub fn new(frame_len: usize, sample_rate: u32) -> Self {
        let fade_len = (sample_rate as usize * CONCEAL_FADE_MS as usize / 1000).max(1);
        Self {
            history: [0; MAX_FRAME_SAMPLES],
            frame_len: frame_len.min(MAX_FRAME_SAMPLES),
            concealed: 0,
            fade_len,
        }
    }

    /// Records decoded samples as the newest history and ends any concealment run.
    pub fn remember(&mut self, decoded: &[i16]) {
        if decoded.is_empty() {
            return;
        }
        let len = self.frame_len;
        if decoded.len() >= len {
            self.history[..len].copy_from_slice(&decoded[decoded.len() - len..]);
        } else {
            // A short packet (say 10 ms): shift the history left and append.
            self.history.copy_within(decoded.len()..len, 0);
            self.history[len - decoded.len()..len].copy_from_slice(decoded);
        }
        self.concealed = 0;
    }

    /// Writes one concealment frame into `out`, returning its length.
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let len = self.frame_len;
        check_output(len, out.len())?;
        for (slot, &sample) in out[..len].iter_mut().zip(&self.history[..len]) {
            let remaining = self.fade_len.saturating_sub(self.concealed);
            // Linear gain remaining/fade_len in integer arithmetic: no float rounding
            // differences between machines, and the product fits easily in i64.
            let scaled = i64::from(sample) * remaining as i64 / self.fade_len as i64;
            // |scaled| <= |sample|, so the conversion back cannot fail.
            *slot = i16::try_from(scaled).unwrap_or(0);
            self.concealed = self.concealed.saturating_add(1);
        }
        Ok(len)
    }

    /// Consecutive concealed samples since the last good frame.
    #[must_use]
    pub fn concealed_samples(&self) -> usize {
        self.concealed
    }
}

/// G.711 in the formulation of Sun Microsystems' public-domain `g711.c`, which is also
/// what CPython's `audioop` uses; the tests compare every input against `audioop`.
pub mod g711 {
    /// mu-law: bias added to the magnitude before the segment search (in 14-bit units).
    const ULAW_BIAS: i32 = 0x84 >> 2;
    /// mu-law: largest 14-bit magnitude that is still encoded without clipping.
    const ULAW_CLIP: i32 = 8159;
    /// Upper ends of the eight mu-law segments, in biased 14-bit magnitude.
    const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
    /// Upper ends of the eight A-law segments, in 13-bit magnitude.
    const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    const QUANT_MASK: i32 = 0x0F;
    const SEG_MASK: u8 = 0x70;
    const SEG_SHIFT: u32 = 4;
    const SIGN_BIT: u8 = 0x80;
    /// A-law inverts the even bits of the code word on the wire.
    const ALAW_EVEN_BITS: u8 = 0x55;

    fn segment(magnitude: i32, ends: &[i32; 8]) -> usize {
        ends.iter().position(|&end| magnitude <= end).unwrap_or(8)
    }

    /// Encodes one 16-bit sample as mu-law.
    #[must_use]
    pub fn linear_to_ulaw(sample: i16) -> u8 {
        // 14-bit input, as G.711 defines mu-law on 14 bits.
        let mut value = i32::from(sample) >> 2;
        let mask: u8 = if value < 0 {
            value = -value;
            0x7F
        } else {
            0xFF
        };
        let value = value.min(ULAW_CLIP) + ULAW_BIAS;
        match segment(value, &ULAW_SEG_END) {
            8 => 0x7F ^ mask,
            seg => {
                let code = ((seg as i32) << SEG_SHIFT) | ((value >> (seg + 1)) & QUANT_MASK);
                (code as u8) ^ mask
            }
        }
    }

    /// Encodes one 16-bit sample as A-law.
    #[must_use]
    pub fn linear_to_alaw(sample: i16) -> u8 {
        // 13-bit input, as G.711 defines A-law on 13 bits.
        let value = i32::from(sample) >> 3;
        let (mask, magnitude) = if value >= 0 {
            (0xD5u8, value)
        } else {
            // One's complement magnitude: A-law has no negative zero level.
            (0x55u8, -value - 1)
        };
        match segment(magnitude, &ALAW_SEG_END) {
            8 => 0x7F ^ mask,
            seg => {
                let quant = if seg < 2 {
                    (magnitude >> 1) & QUANT_MASK
                } else {
                    (magnitude >> seg) & QUANT_MASK
                };
                let code = ((seg as i32) << SEG_SHIFT) | quant;
                (code as u8) ^ mask
            }
        }
    }

    const fn ulaw_to_linear_const(code: u8) -> i16 {
        let code = !code;
        let mut t = (((code as i32) & QUANT_MASK) << 3) + 0x84;
        t <<= ((code & SEG_MASK) >> SEG_SHIFT) as i32;
        if code & SIGN_BIT != 0 { (0x84 - t) as i16 } else { (t - 0x84) as i16 }
    }

    const fn alaw_to_linear_const(code: u8) -> i16 {
        let code = code ^ ALAW_EVEN_BITS;
        let mut t = ((code as i32) & QUANT_MASK) << 4;
        let seg = ((code & SEG_MASK) >> SEG_SHIFT) as i32;
        match seg {
            0 => t += 8,
            1 => t += 0x108,
            _ => {
                t += 0x108;
                t <<= seg - 1;
            }
        }
        if code & SIGN_BIT != 0 { t as i16 } else { -t as i16 }
    }

    const fn build_table(alaw: bool) -> [i16; 256] {
        let mut table = [0i16; 256];
        let mut i = 0;
        while i < 256 {
            table[i] =
                if alaw { alaw_to_linear_const(i as u8) } else { ulaw_to_linear_const(i as u8) };
            i += 1;
        }
        table
    }

    /// Decoding is a table look-up; the tables are built at compile time.
    static ULAW_TABLE: [i16; 256] = build_table(false);
    static ALAW_TABLE: [i16; 256] = build_table(true);

    /// Decodes one mu-law byte.
    #[must_use]
    pub fn ulaw_to_linear(code: u8) -> i16 {
        ULAW_TABLE[usize::from(code)]
    }

    /// Decodes one A-law byte.
    #[must_use]
    pub fn alaw_to_linear(code: u8) -> i16 {
        ALAW_TABLE[usize::from(code)]
    }
}

/// G.711 codec state shared by PCMU and PCMA: only the concealment history, since
/// G.711 itself is stateless.
#[derive(Debug, Clone)]
struct G711 {
    kind: CodecKind,
    concealer: Concealer,
}

impl G711 {
    fn new(kind: CodecKind) -> Self {
        Self { kind, concealer: Concealer::new(kind.samples_per_frame(), kind.sample_rate()) }
    }

    fn encode(&self, pcm: &[i16], out: &mut [u8], law: fn(i16) -> u8) -> Result<usize, CodecError> {
        check_frame(self.kind.samples_per_frame(), pcm.len())?;
        check_output(pcm.len(), out.len())?;
        for (byte, &sample) in out.iter_mut().zip(pcm) {
            *byte = law(sample);
        }
        Ok(pcm.len())
    }

    fn decode(
        &mut self,
        payload: &[u8],
        out: &mut [i16],
        law: fn(u8) -> i16,
    ) -> Result<usize, CodecError> {
        check_output(payload.len(), out.len())?;
        for (sample, &byte) in out.iter_mut().zip(payload) {
            *sample = law(byte);
        }
        self.concealer.remember(&out[..payload.len()]);
        Ok(payload.len())
    }
}

/// G.711 mu-law (PCMU).
#[derive(Debug, Clone)]
pub struct Pcmu(G711);

impl Pcmu {
    /// A new PCMU codec.
    #[must_use]
    pub fn new() -> Self {
        Self(G711::new(CodecKind::Pcmu))
    }
}

impl Default for Pcmu {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec for Pcmu {
    fn kind(&self) -> CodecKind {
        CodecKind::Pcmu
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.0.encode(pcm, out, g711::linear_to_ulaw)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.0.decode(payload, out, g711::ulaw_to_linear)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.0.concealer.conceal(out)
    }
}

/// G.711 A-law (PCMA).
#[derive(Debug, Clone)]
pub struct Pcma(G711);

impl Pcma {
    /// A new PCMA codec.
    #[must_use]
    pub fn new() -> Self {
        Self(G711::new(CodecKind::Pcma))
    }
}

impl Default for Pcma {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec for Pcma {
    fn kind(&self) -> CodecKind {
        CodecKind::Pcma
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.0.encode(pcm, out, g711::linear_to_alaw)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.0.decode(payload, out, g711::alaw_to_linear)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.0.concealer.conceal(out)
    }
}

/// G.722 at 64 kbit/s (mode 1, unpacked: one code byte per pair of 16 kHz samples, the
/// RTP payload format of RFC 3551), through the `audio-codec` crate.
pub struct G722 {
    encoder: audio_codec::g722::G722Encoder,
    decoder: audio_codec::g722::G722Decoder,
    concealer: Concealer,
}

impl G722 {
    /// A new G.722 codec with fresh encoder and decoder state.
    #[must_use]
    pub fn new() -> Self {
        Self {
            encoder: audio_codec::g722::G722Encoder::new(),
            decoder: audio_codec::g722::G722Decoder::new(),
            concealer: Concealer::new(
                CodecKind::G722.samples_per_frame(),
                CodecKind::G722.sample_rate(),
            ),
        }
    }
}

impl Default for G722 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for G722 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("G722").finish_non_exhaustive()
    }
}

impl Codec for G722 {
    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        use audio_codec::Encoder as _;
        check_frame(CodecKind::G722.samples_per_frame(), pcm.len())?;
        check_output(CodecKind::G722.bytes_per_frame(), out.len())?;
        self.encoder.encode_into(pcm, out).map_err(CodecError::G722)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        use audio_codec::Decoder as _;
        // Each byte carries one low-band and one high-band code: two 16 kHz samples.
        let needed = payload.len().saturating_mul(2);
        check_output(needed, out.len())?;
        let written = self.decoder.decode_into(payload, out).map_err(CodecError::G722)?;
        self.concealer.remember(&out[..written.min(out.len())]);
        Ok(written)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.concealer.conceal(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(len: usize, rate: u32, freq: f64, amplitude: f64) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    fn snr_db(reference: &[i16], decoded: &[i16]) -> f64 {
        let signal: f64 = reference.iter().map(|&s| f64::from(s).powi(2)).sum();
        let noise: f64 = reference
            .iter()
            .zip(decoded)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        10.0 * (signal / noise.max(1.0)).log10()
    }

    #[test]
    fn kinds_describe_rtp_parameters() {
        assert_eq!(CodecKind::Pcmu.payload_type(), 0);
        assert_eq!(CodecKind::Pcma.payload_type(), 8);
        assert_eq!(CodecKind::G722.payload_type(), 9);
        assert_eq!(CodecKind::G722.clock_rate(), 8000);
        assert_eq!(CodecKind::G722.sample_rate(), 16000);
        assert_eq!(CodecKind::G722.samples_per_frame(), 320);
        assert_eq!(CodecKind::G722.bytes_per_frame(), 160);
        assert_eq!(CodecKind::Pcmu.samples_per_frame(), 160);
        assert_eq!(CodecKind::Pcma.bytes_per_frame(), 160);
    }

    #[test]
    fn g711_round_trip_keeps_a_tone() {
        for kind in [CodecKind::Pcmu, CodecKind::Pcma] {
            let mut codec = kind.new_codec();
            let pcm = sine(160, 8000, 1000.0, 8000.0);
            let mut payload = [0u8; 160];
            let mut out = [0i16; 160];
            assert_eq!(codec.encode(&pcm, &mut payload).unwrap(), 160);
            assert_eq!(codec.decode(&payload, &mut out).unwrap(), 160);
            let snr = snr_db(&pcm, &out);
            // G.711 gives about 38 dB on a loud tone.
            assert!(snr > 30.0, "{kind:?}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn g722_round_trip_keeps_a_tone() {
        let mut codec = G722::new();
        let pcm = sine(320 * 10, 16000, 1000.0, 8000.0);
        let mut decoded = Vec::new();
        for frame in pcm.chunks(320) {
            let mut payload = [0u8; 160];
            let mut out = [0i16; 320];
            assert_eq!(codec.encode(frame, &mut payload).unwrap(), 160);
            assert_eq!(codec.decode(&payload, &mut out).unwrap(), 320);
            decoded.extend_from_slice(&out);
        }
        // The QMF filter bank delays the signal; find the best alignment, then skip
        // the first frames while the adaptive quantisers settle.
        let best = (0..40)
            .map(|delay| snr_db(&pcm[640..2880], &decoded[640 + delay..2880 + delay]))
            .fold(f64::MIN, f64::max);
        assert!(best > 20.0, "G.722 SNR {best:.1} dB");
    }

    #[test]
    fn encode_rejects_wrong_frame_length_and_small_output() {
        let mut codec = Pcmu::new();
        let mut payload = [0u8; 160];
        assert_eq!(
            codec.encode(&[0; 159], &mut payload),
            Err(CodecError::WrongFrameLength { expected: 160, got: 159 })
        );
        assert_eq!(
            codec.encode(&[0; 160], &mut payload[..100]),
            Err(CodecError::OutputTooSmall { needed: 160, capacity: 100 })
        );
        let mut g722 = G722::new();
        assert!(matches!(
            g722.encode(&[0; 320], &mut [0u8; 10]),
            Err(CodecError::OutputTooSmall { .. })
        ));
        assert!(matches!(
            g722.encode(&[0; 160], &mut [0u8; 160]),
            Err(CodecError::WrongFrameLength { .. })
        ));
    }

    #[test]
    fn decode_rejects_small_output_and_accepts_any_payload_length() {
        let mut codec = Pcma::new();
        let mut out = [0i16; 160];
        assert!(matches!(
            codec.decode(&[0xD5; 161], &mut out),
            Err(CodecError::OutputTooSmall { .. })
        ));
        assert_eq!(codec.decode(&[], &mut out), Ok(0));
        assert_eq!(codec.decode(&[0xD5; 80], &mut out), Ok(80));
        let mut g722 = G722::new();
        assert!(matches!(
            g722.decode(&[0; 160], &mut [0i16; 319]),
            Err(CodecError::OutputTooSmall { .. })
        ));
        assert_eq!(g722.decode(&[0x55; 3], &mut [0i16; 320]), Ok(6));
    }

    #[test]
    fn concealment_repeats_the_last_frame_and_fades_to_silence_in_60_ms() {
        let mut codec = Pcmu::new();
        let pcm = [8000i16; 160];
        let mut payload = [0u8; 160];
        let mut out = [0i16; 160];
        codec.encode(&pcm, &mut payload).unwrap();
        codec.decode(&payload, &mut out).unwrap();
        let level = out[0];
        assert!(level > 7000);

        let mut frames = [[0i16; 160]; 4];
        for frame in &mut frames {
            assert_eq!(codec.conceal(frame), Ok(160));
        }
        // First concealed sample carries (almost) the full level, not silence.
        assert_eq!(frames[0][0], level);
        // The gain falls monotonically across the three fade frames...
        let flat: Vec<i16> = frames[..3].iter().flatten().copied().collect();
        assert!(flat.windows(2).all(|w| w[1] <= w[0]));
        assert!(frames[1][0] < frames[0][0] && frames[2][0] < frames[1][0]);
        // ...reaching a third of the way at 20 ms and two thirds at 40 ms...
        let expected_at_20ms = i32::from(level) * 2 / 3;
        assert!((i32::from(frames[1][0]) - expected_at_20ms).abs() <= 1);
        // ...and silence from 60 ms on.
        assert!(frames[3].iter().all(|&s| s == 0));
        assert!(frames[2][159] < level / 100);
    }

    #[test]
    fn a_good_frame_ends_the_fade() {
        let mut codec = G722::new();
        let pcm = sine(320, 16000, 500.0, 6000.0);
        let mut payload = [0u8; 160];
        let mut out = [0i16; 320];
        codec.encode(&pcm, &mut payload).unwrap();
        codec.decode(&payload, &mut out).unwrap();
        for _ in 0..5 {
            codec.conceal(&mut [0i16; 320]).unwrap();
        }
        codec.decode(&payload, &mut out).unwrap();
        let mut concealed = [0i16; 320];
        codec.conceal(&mut concealed).unwrap();
        // Restarted at full gain: the first concealed sample equals the history.
        assert_eq!(concealed[0], out[0]);
        assert!(concealed.iter().any(|&s| s.abs() > 1000));
    }

    #[test]
    fn concealment_after_short_packets_uses_the_latest_samples() {
        let mut concealer = Concealer::new(4, 8000);
        concealer.remember(&[1000, 2000, 3000, 4000]);
        concealer.remember(&[5000, 6000]);
        let mut out = [0i16; 4];
        concealer.conceal(&mut out).unwrap();
        // 480-sample fade: gain (480 - n) / 480 on the n-th concealed sample.
        assert_eq!(out, [3000, 3991, 4979, 5962]);
        assert!(matches!(
            concealer.conceal(&mut [0i16; 3]),
            Err(CodecError::OutputTooSmall { .. })
        ));
    }

    #[test]
    fn conceal_before_any_packet_is_silence() {
        for kind in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722] {
            let mut codec = kind.new_codec();
            let mut out = [1i16; MAX_FRAME_SAMPLES];
            assert_eq!(codec.conceal(&mut out), Ok(kind.samples_per_frame()));
            assert!(out[..kind.samples_per_frame()].iter().all(|&s| s == 0));
        }
    }
}
