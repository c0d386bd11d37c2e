//! WAV files: a bounded reader for prompts (16-bit PCM, 8/16/48 kHz, mono or stereo
//! downmixed; anything else refused with an error naming what was found), an
//! incremental writer for recordings, and a [`Player`] that plays a prompt as 20 ms frames.
//!
//! Written here rather than with `hound`: prompts need only 16-bit PCM, recordings need a
//! reader that accepts a file whose header was never finalised (a crash mid-recording
//! leaves one) and a writer whose header can be refreshed while it grows; the reader is a
//! cursor over a byte slice that cannot read past its end, so no file can make it panic.
//!
//! Rate conversion here ([`convert_rate`], windowed sinc) runs once when a prompt is
//! loaded, off the real-time path; the player itself only copies samples.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::source::{FrameSource, SourceError, SourceState, check_frame_buffer, check_rate};

/// The rates a prompt file may have.
pub const PROMPT_RATES: [u32; 3] = [8_000, 16_000, 48_000];
/// The largest WAV file read into memory (about 45 minutes at 48 kHz stereo).
pub const MAX_WAV_BYTES: u64 = 512 * 1024 * 1024;
/// Bytes of the canonical header the writer produces.
pub(crate) const HEADER_LEN: u64 = 44;
const FORMAT_PCM: u16 = 0x0001;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Why a WAV file could not be read or written.
#[derive(Debug, Error)]
pub enum WavError {
    /// The file system refused.
    #[error("WAV I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not RIFF/WAVE at all.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWave,
    /// The file is larger than [`MAX_WAV_BYTES`].
    #[error("WAV file of {0} bytes is larger than the {MAX_WAV_BYTES}-byte limit")]
    TooLarge(u64),
    /// A required chunk is missing.
    #[error("WAV file has no {0} chunk")]
    MissingChunk(&'static str),
    /// The `fmt ` chunk is shorter than its fields or inconsistent.
    #[error("WAV fmt chunk is malformed: {0}")]
    MalformedFormat(&'static str),
    /// Not PCM (for example IEEE float, A-law, ADPCM).
    #[error("unsupported WAV encoding: format tag {0:#06x}, only 16-bit PCM (0x0001) is supported")]
    UnsupportedEncoding(u16),
    /// PCM, but not 16-bit.
    #[error("unsupported WAV sample size: {0}-bit, only 16-bit PCM is supported")]
    UnsupportedBits(u16),
    /// Neither mono nor stereo.
    #[error("unsupported WAV channel count: {0}, only mono or stereo is supported")]
    UnsupportedChannels(u16),
    /// A rate other than the ones allowed here.
    #[error("unsupported WAV sample rate: {found} Hz, {allowed} expected")]
    UnsupportedRate {
        /// The file's rate.
        found: u32,
        /// What the caller accepts, for the message.
        allowed: &'static str,
    },
    /// The recording reached the 4 GiB size limit of the WAV format.
    #[error("WAV data would exceed the 4 GiB limit of the format")]
    TooLong,
}

/// Decoded audio of one WAV file, downmixed to mono.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavAudio {
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels in the file before the downmix.
    pub channels: u16,
    /// The mono samples.
    pub samples: Vec<i16>,
}

/// A cursor that cannot read past the end of its slice.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.position.checked_add(len)?;
        let slice = self.bytes.get(self.position..end)?;
        self.position = end;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }
}

struct Format {
    channels: u16,
    rate: u32,
}

fn parse_format(body: &[u8]) -> Result<Format, WavError> {
    let mut reader = Reader { bytes: body, position: 0 };
    let short = || WavError::MalformedFormat("shorter than 16 bytes");
    let tag = reader.u16().ok_or_else(short)?;
    let channels = reader.u16().ok_or_else(short)?;
    let rate = reader.u32().ok_or_else(short)?;
    let _byte_rate = reader.u32().ok_or_else(short)?;
    let block_align = reader.u16().ok_or_else(short)?;
    let bits = reader.u16().ok_or_else(short)?;
    let encoding = if tag == FORMAT_EXTENSIBLE {
        // cbSize, valid bits, channel mask, then the sub-format GUID whose first two
        // bytes are the format tag it stands for.
        reader.take(8).ok_or(WavError::MalformedFormat("extensible format too short"))?;
        reader.u16().ok_or(WavError::MalformedFormat("extensible format too short"))?
    } else {
        tag
    };
    if encoding != FORMAT_PCM {
        return Err(WavError::UnsupportedEncoding(encoding));
    }
    if bits != 16 {
        return Err(WavError::UnsupportedBits(bits));
    }
    if !(1..=2).contains(&channels) {
        return Err(WavError::UnsupportedChannels(channels));
    }
    if u32::from(block_align) != u32::from(channels) * 2 {
        return Err(WavError::MalformedFormat("block align does not match 16-bit samples"));
    }
    if rate == 0 || rate > crate::source::MAX_SOURCE_RATE {
        return Err(WavError::UnsupportedRate { found: rate, allowed: "1 to 192000 Hz" });
    }
    Ok(Format { channels, rate })
}

/// Parses a 16-bit PCM WAV file of any rate up to 192 kHz, mono or stereo.
///
/// A `data` chunk whose declared size is zero or runs past the end of the file (a
/// recording whose header was never finalised) is taken to extend to the end.
pub fn parse_any(bytes: &[u8]) -> Result<WavAudio, WavError> {
    let mut reader = Reader { bytes, position: 0 };
    if reader.take(4) != Some(b"RIFF") {
        return Err(WavError::NotWave);
    }
    reader.u32().ok_or(WavError::NotWave)?;
    if reader.take(4) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut format = None;
    while reader.remaining() >= 8 {
        let (Some(id), Some(size)) = (reader.take(4), reader.u32()) else { break };
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if id == b"data" {
            let format = format.ok_or(WavError::MissingChunk("fmt"))?;
            let available = reader.remaining();
            let len = if size == 0 || size > available { available } else { size };
            let data = reader.take(len).unwrap_or_default();
            return Ok(decode_samples(data, format));
        }
        let body = if size > reader.remaining() {
            return Err(if id == b"fmt " {
                WavError::MalformedFormat("chunk runs past the end of the file")
            } else {
                WavError::MissingChunk("data")
            });
        } else {
            reader.take(size).unwrap_or_default()
        };
        if id == b"fmt " {
            format = Some(parse_format(body)?);
        }
        // Chunks are padded to an even length.
        if size % 2 == 1 {
            reader.take(1);
        }
    }
    Err(WavError::MissingChunk(if format.is_some() { "data" } else { "fmt" }))
}

fn decode_samples(data: &[u8], format: Format) -> WavAudio {
    let samples = if format.channels == 2 {
        data.chunks_exact(4)
            .map(|b| {
                let left = i32::from(i16::from_le_bytes([b[0], b[1]]));
                let right = i32::from(i16::from_le_bytes([b[2], b[3]]));
                // The mean of two i16 values always fits an i16.
                ((left + right) / 2) as i16
            })
            .collect()
    } else {
        data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
    };
    WavAudio { sample_rate: format.rate, channels: format.channels, samples }
}

/// Parses a prompt: [`parse_any`], and the rate must be one of [`PROMPT_RATES`].
pub fn parse(bytes: &[u8]) -> Result<WavAudio, WavError> {
    let audio = parse_any(bytes)?;
    if !PROMPT_RATES.contains(&audio.sample_rate) {
        return Err(WavError::UnsupportedRate {
            found: audio.sample_rate,
            allowed: "8000, 16000 or 48000 Hz",
        });
    }
    Ok(audio)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, WavError> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_WAV_BYTES {
        return Err(WavError::TooLarge(len));
    }
    Ok(std::fs::read(path)?)
}

/// Reads a prompt file (see [`parse`]).
pub fn read(path: &Path) -> Result<WavAudio, WavError> {
    parse(&read_bounded(path)?)
}

/// Reads a 16-bit PCM file of any rate (see [`parse_any`]).
pub fn read_any(path: &Path) -> Result<WavAudio, WavError> {
    parse_any(&read_bounded(path)?)
}

/// The largest sound file accepted for upload.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;
/// The longest sound accepted for upload, in milliseconds (10 minutes).
pub const MAX_UPLOAD_MS: u64 = 10 * 60 * 1000;
/// The rates an uploaded sound may have (it is converted to a prompt rate).
pub const UPLOAD_RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;
const FORMAT_ALAW: u16 = 0x0006;
const FORMAT_ULAW: u16 = 0x0007;

/// Why an uploaded sound was refused: what a client can act on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct UploadError(pub String);

/// An uploaded sound, checked and converted to what tutti plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file as uploaded: `"pcm16"`, `"pcm8"`, `"alaw"` or `"ulaw"`.
    pub encoding: &'static str,
    /// The uploaded file's rate and channels.
    pub original_rate: u32,
    pub original_channels: u16,
    /// The converted file: 16-bit mono PCM at 8, 16 or 48 kHz.
    pub wav: Vec<u8>,
    /// Its rate.
    pub sample_rate: u32,
    /// Its length.
    pub duration_ms: u64,
}

/// Checks an uploaded WAV file strictly and converts it for playing: RIFF/WAVE
/// whose chunks all fit the file (a header that claims more than was sent is
/// refused, unlike [`parse_any`], which forgives recordings cut short), PCM of 8
/// or 16 bits or G.711 (A-law, mu-law), mono or stereo, 8 to 48 kHz, at most
/// [`MAX_UPLOAD_BYTES`] and [`MAX_UPLOAD_MS`]. The result is 16-bit mono at the
/// prompt rate nearest above the file's own (8, 16 or 48 kHz).
pub fn convert_upload(bytes: &[u8]) -> Result<Upload, UploadError> {
    let refuse = |why: String| Err(UploadError(why));
    if bytes.len() > MAX_UPLOAD_BYTES {
        return refuse(format!("the file is larger than {MAX_UPLOAD_BYTES} bytes"));
    }
    let mut reader = Reader { bytes, position: 0 };
    if reader.take(4) != Some(b"RIFF") {
        return refuse("not a WAV file (no RIFF header)".into());
    }
    let riff_size = reader.u32().unwrap_or(0) as usize;
    if reader.take(4) != Some(b"WAVE") {
        return refuse("not a WAV file (RIFF, but not WAVE)".into());
    }
    if riff_size.saturating_add(8) > bytes.len() {
        return refuse(format!(
            "the RIFF header claims {} bytes, the file has {}",
            riff_size.saturating_add(8),
            bytes.len()
        ));
    }
    let mut format: Option<(u16, u16, u32, u16)> = None;
    let mut data: Option<&[u8]> = None;
    while reader.remaining() >= 8 {
        let (Some(id), Some(size)) = (reader.take(4), reader.u32()) else { break };
        let size = size as usize;
        let Some(body) = reader.take(size) else {
            return refuse(format!(
                "the {:?} chunk claims {size} bytes, only {} follow",
                String::from_utf8_lossy(id),
                reader.remaining()
            ));
        };
        match id {
            b"fmt " => format = Some(upload_format(body).map_err(UploadError)?),
            b"data" => data = Some(body),
            _ => {}
        }
        if size % 2 == 1 {
            reader.take(1);
        }
    }
    let Some((encoding, channels, rate, bits)) = format else {
        return refuse("the WAV file has no fmt chunk".into());
    };
    let Some(data) = data else { return refuse("the WAV file has no data chunk".into()) };
    let width = usize::from(bits / 8) * usize::from(channels);
    let frames = data.len() / width;
    if frames == 0 {
        return refuse("the WAV file holds no audio".into());
    }
    let duration_ms = frames as u64 * 1000 / u64::from(rate);
    if duration_ms > MAX_UPLOAD_MS {
        return refuse(format!(
            "the sound lasts {} s, at most {} s are accepted",
            duration_ms / 1000,
            MAX_UPLOAD_MS / 1000
        ));
    }
    let sample = |b: &[u8]| -> i32 {
        match (encoding, bits) {
            (FORMAT_ALAW, _) => i32::from(crate::codec::g711::alaw_to_linear(b[0])),
            (FORMAT_ULAW, _) => i32::from(crate::codec::g711::ulaw_to_linear(b[0])),
            (_, 8) => (i32::from(b[0]) - 128) << 8,
            _ => i32::from(i16::from_le_bytes([b[0], b[1]])),
        }
    };
    let step = usize::from(bits / 8);
    let mono: Vec<i16> = data
        .chunks_exact(width)
        .map(|frame| {
            let sum: i32 = frame.chunks_exact(step).map(sample).sum();
            // The mean of one or two i16 values fits an i16.
            (sum / i32::from(channels)) as i16
        })
        .collect();
    let target = match rate {
        8_000 | 16_000 | 48_000 => rate,
        r if r < 16_000 => 16_000,
        _ => 48_000,
    };
    let samples = convert_rate(&mono, rate, target);
    let mut out = std::io::Cursor::new(Vec::with_capacity(samples.len() * 2 + 44));
    let written = WavWriter::new(&mut out, target)
        .and_then(|mut w| w.write(&samples).and_then(|()| w.finish()));
    if let Err(e) = written {
        return refuse(format!("the sound could not be converted: {e}"));
    }
    let encoding = match (encoding, bits) {
        (FORMAT_ALAW, _) => "alaw",
        (FORMAT_ULAW, _) => "ulaw",
        (_, 8) => "pcm8",
        _ => "pcm16",
    };
    Ok(Upload {
        encoding,
        original_rate: rate,
        original_channels: channels,
        wav: out.into_inner(),
        sample_rate: target,
        duration_ms: samples.len() as u64 * 1000 / u64::from(target),
    })
}

/// An upload's `fmt ` chunk: encoding, channels, rate, bits per sample.
fn upload_format(body: &[u8]) -> Result<(u16, u16, u32, u16), String> {
    let mut reader = Reader { bytes: body, position: 0 };
    let short = || "the fmt chunk is shorter than 16 bytes".to_owned();
    let tag = reader.u16().ok_or_else(short)?;
    let channels = reader.u16().ok_or_else(short)?;
    let rate = reader.u32().ok_or_else(short)?;
    let _byte_rate = reader.u32().ok_or_else(short)?;
    let block_align = reader.u16().ok_or_else(short)?;
    let bits = reader.u16().ok_or_else(short)?;
    let encoding = if tag == FORMAT_EXTENSIBLE {
        reader.take(8).ok_or("the extensible fmt chunk is too short")?;
        reader.u16().ok_or("the extensible fmt chunk is too short")?
    } else {
        tag
    };
    let bits_ok = match encoding {
        FORMAT_PCM => bits == 8 || bits == 16,
        FORMAT_ALAW | FORMAT_ULAW => bits == 8,
        other => {
            return Err(format!(
                "format tag {other:#06x} is not accepted: PCM (8 or 16 bit), A-law or mu-law"
            ));
        }
    };
    if !bits_ok {
        return Err(format!("{bits}-bit samples are not accepted for this encoding"));
    }
    if !(1..=2).contains(&channels) {
        return Err(format!("{channels} channels: mono or stereo only"));
    }
    if u32::from(block_align) != u32::from(channels) * u32::from(bits / 8) {
        return Err("the block align does not match the sample size".into());
    }
    if !UPLOAD_RATES.contains(&rate) {
        return Err(format!("{rate} Hz: 8000 to 48000 Hz only"));
    }
    Ok((encoding, channels, rate, bits))
}

/// The canonical 44-byte header of 16-bit mono PCM.
fn header(rate: u32, data_bytes: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_bytes.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&rate.saturating_mul(2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Largest data chunk: the RIFF size field (data + 36) must fit in 32 bits.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - 36;

/// Writes 16-bit mono PCM incrementally. The header's sizes are written as zero at
/// first and fixed by [`WavWriter::update_header`] (call it now and then so a crash
/// loses little) and by [`WavWriter::finish`]; dropping an unfinished writer fixes them
/// too, as well as it can. Readers here accept a file whose header was never fixed.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    inner: Option<W>,
    rate: u32,
    data_bytes: u64,
}

impl WavWriter<BufWriter<File>> {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, rate: u32) -> Result<Self, WavError> {
        Self::new(BufWriter::new(File::create(path)?), rate)
    }
}

impl<W: Write + Seek> WavWriter<W> {
    /// Starts a WAV stream at the current position of `inner`, which should be 0.
    pub fn new(mut inner: W, rate: u32) -> Result<Self, WavError> {
        inner.write_all(&header(rate, 0))?;
        Ok(Self { inner: Some(inner), rate, data_bytes: 0 })
    }

    /// Samples written so far.
    #[must_use]
    pub fn samples_written(&self) -> u64 {
        self.data_bytes / 2
    }

    /// The sample rate written into the header.
    #[must_use]
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Appends samples. Converts through a small stack buffer: no allocation.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), WavError> {
        let bytes = samples.len() as u64 * 2;
        if self.data_bytes + bytes > MAX_DATA_BYTES {
            return Err(WavError::TooLong);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Err(WavError::Io(std::io::Error::other("WAV writer already finished")));
        };
        let mut buffer = [0u8; 1024];
        for chunk in samples.chunks(buffer.len() / 2) {
            for (pair, sample) in buffer.chunks_exact_mut(2).zip(chunk) {
                pair.copy_from_slice(&sample.to_le_bytes());
            }
            inner.write_all(&buffer[..chunk.len() * 2])?;
        }
        self.data_bytes += bytes;
        Ok(())
    }

    /// Writes the current sizes into the header and flushes, leaving a valid file.
    pub fn update_header(&mut self) -> Result<(), WavError> {
        let Some(inner) = self.inner.as_mut() else { return Ok(()) };
        // data_bytes <= MAX_DATA_BYTES by the check in `write`.
        let data = u32::try_from(self.data_bytes).unwrap_or(u32::MAX - 36);
        inner.seek(SeekFrom::Start(0))?;
        inner.write_all(&header(self.rate, data))?;
        inner.seek(SeekFrom::Start(HEADER_LEN + self.data_bytes))?;
        inner.flush()?;
        Ok(())
    }

    /// Fixes the header and returns the inner writer and the number of samples.
    pub fn finish(mut self) -> Result<(W, u64), WavError> {
        self.update_header()?;
        let samples = self.samples_written();
        let inner = self
            .inner
            .take()
            .ok_or_else(|| WavError::Io(std::io::Error::other("WAV writer already finished")))?;
        Ok((inner, samples))
    }
}

impl<W: Write + Seek> Drop for WavWriter<W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            // Best effort: an error here has nowhere to go, and the reader copes with
            // a stale header anyway.
            let _ = self.update_header();
        }
    }
}

/// Converts `input` from `from` Hz to `to` Hz with a Blackman-windowed sinc low-pass
/// (cut-off at 0.45 of the lower rate, 16 zero crossings each side). For prompts, at
/// load time: it allocates its output and costs about 32 multiply-adds per output
/// sample when upsampling, proportionally more when downsampling.
#[must_use]
pub fn convert_rate(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || from == 0 || to == 0 || input.is_empty() {
        return if from == to { input.to_vec() } else { Vec::new() };
    }
    const ZERO_CROSSINGS: f64 = 16.0;
    let scale = (f64::from(to) / f64::from(from)).min(1.0);
    // Cut-off in cycles per input sample.
    let cutoff = 0.45 * scale * 2.0;
    let half_width = ZERO_CROSSINGS / scale;
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let mut out = Vec::with_capacity(out_len);
    let last = input.len() as i64 - 1;
    for n in 0..out_len {
        let t = n as f64 * f64::from(from) / f64::from(to);
        let first = (t - half_width).ceil().max(0.0) as i64;
        let end = ((t + half_width).floor() as i64).min(last);
        let mut sum = 0.0;
        for k in first..=end {
            let d = t - k as f64;
            let x = d / half_width;
            // Blackman window over [-1, 1].
            let window = 0.42
                + 0.5 * (std::f64::consts::PI * x).cos()
                + 0.08 * (2.0 * std::f64::consts::PI * x).cos();
            let arg = std::f64::consts::PI * cutoff * d;
            let sinc = if arg.abs() < 1e-12 { 1.0 } else { arg.sin() / arg };
            // k is within 0..=last, so the index is in range.
            let sample = input.get(k as usize).copied().unwrap_or(0);
            sum += f64::from(sample) * cutoff * sinc * window;
        }
        out.push(sum.round().clamp(-32_768.0, 32_767.0) as i16);
    }
    out
}

/// Audio ready to play at one rate, shared cheaply between players (a prompt played
/// to a whole room is decoded once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    rate: u32,
    samples: Arc<[i16]>,
}

impl Prompt {
    /// Reads a prompt file (8, 16 or 48 kHz) and converts it to `rate`.
    pub fn load(path: &Path, rate: u32) -> Result<Self, WavError> {
        Self::from_audio(read(path)?, rate)
    }

    /// Converts decoded audio to `rate`.
    pub fn from_audio(audio: WavAudio, rate: u32) -> Result<Self, WavError> {
        let rate = check_rate(rate).map_err(|_| WavError::UnsupportedRate {
            found: rate,
            allowed: "a multiple of 50 Hz",
        })?;
        let samples = if audio.sample_rate == rate {
            audio.samples
        } else {
            convert_rate(&audio.samples, audio.sample_rate, rate)
        };
        Ok(Self { rate, samples: samples.into() })
    }

    /// Audio already at `rate`.
    pub fn from_samples(samples: Vec<i16>, rate: u32) -> Result<Self, SourceError> {
        Ok(Self { rate: check_rate(rate)?, samples: samples.into() })
    }

    /// The rate of the samples.
    #[must_use]
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// The samples.
    #[must_use]
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Length in milliseconds.
    #[must_use]
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(self.rate)
    }
}

/// Plays a [`Prompt`] as 20 ms frames, once or in a loop, until done or stopped.
#[derive(Debug, Clone)]
pub struct Player {
    prompt: Prompt,
    position: usize,
    looping: bool,
    stopped: bool,
}

impl Player {
    /// A player at the start of `prompt`.
    #[must_use]
    pub fn new(prompt: Prompt, looping: bool) -> Self {
        Self { prompt, position: 0, looping, stopped: false }
    }

    /// Turns looping on or off; turning it off lets the current pass finish.
    pub fn set_looping(&mut self, looping: bool) {
        self.looping = looping;
    }

    /// Whether nothing more will play.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.stopped
            || self.prompt.samples.is_empty()
            || (!self.looping && self.position >= self.prompt.samples.len())
    }
}

impl FrameSource for Player {
    fn sample_rate(&self) -> u32 {
        self.prompt.rate
    }

    fn next_frame(&mut self, out: &mut [i16]) -> Result<SourceState, SourceError> {
        let len = check_frame_buffer(self.prompt.rate, out)?;
        if self.is_done() {
            out[..len].fill(0);
            return Ok(SourceState::Done);
        }
        let samples = &self.prompt.samples;
        let mut filled = 0;
        while filled < len {
            if self.position >= samples.len() {
                if !self.looping {
                    out[filled..len].fill(0);
                    break;
                }
                self.position = 0;
            }
            let take = (len - filled).min(samples.len() - self.position);
            out[filled..filled + take]
                .copy_from_slice(&samples[self.position..self.position + take]);
            filled += take;
            self.position += take;
        }
        Ok(SourceState::Playing)
    }

    fn stop(&mut self) {
        self.stopped = true;
    }
}
