//! Recording: 20 ms frames of a room's mix (or of one member) written to
//! `<dir>/<name>.wav` as 16-bit mono PCM at the room's rate, with start and stop.
//!
//! Writing is buffered file I/O, which can block on a slow disk: the engine should feed
//! the recorder from its own task (frames over a channel), not from the mixer tick.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::codec::FRAME_MS;
use crate::wav::{WavError, WavWriter};

/// How often the header's sizes are refreshed while recording, in frames (5 s), so a
/// crash leaves a file whose header is at most this far behind.
pub const HEADER_REFRESH_FRAMES: u32 = 250;
/// The longest recording name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Why a recording could not start or go on.
#[derive(Debug, Error)]
pub enum RecordError {
    /// Names are file names without an extension: letters, digits, `-`, `_` and `.`,
    /// not starting with `.`, at most [`MAX_NAME_LEN`] bytes.
    #[error("invalid recording name {0:?}")]
    InvalidName(String),
    /// A recording of that name exists; recordings are never overwritten.
    #[error("recording {0} already exists")]
    AlreadyExists(PathBuf),
    /// The rate cannot give 20 ms frames.
    #[error("unsupported recording rate {0} Hz")]
    UnsupportedRate(u32),
    /// A frame of the wrong length for the recording's rate.
    #[error("frame of {got} samples, one 20 ms frame is {expected}")]
    WrongFrameLength {
        /// Samples in one frame.
        expected: usize,
        /// Samples given.
        got: usize,
    },
    /// Writing failed.
    #[error(transparent)]
    Wav(#[from] WavError),
}

/// What a finished recording left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The WAV file.
    pub path: PathBuf,
    /// Samples written.
    pub samples: u64,
    /// Length in milliseconds.
    pub duration_ms: u64,
}

/// A recording in progress. Dropping it without [`Recorder::stop`] still leaves a
/// valid file (the writer fixes the header as it goes away).
#[derive(Debug)]
pub struct Recorder {
    writer: WavWriter<BufWriter<File>>,
    path: PathBuf,
    frame_len: usize,
    frames_since_refresh: u32,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Recorder {
    /// Creates `<dir>/<name>.wav` (and `dir` if needed) and starts recording at `rate`.
    pub fn start(dir: &Path, name: &str, rate: u32) -> Result<Self, RecordError> {
        if !valid_name(name) {
            return Err(RecordError::InvalidName(name.to_owned()));
        }
        crate::source::check_rate(rate).map_err(|_| RecordError::UnsupportedRate(rate))?;
        std::fs::create_dir_all(dir).map_err(WavError::Io)?;
        let path = dir.join(format!("{name}.wav"));
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RecordError::AlreadyExists(path));
            }
            Err(error) => return Err(WavError::Io(error).into()),
        };
        let writer = WavWriter::new(BufWriter::new(file), rate)?;
        let frame_len = (rate * FRAME_MS / 1000) as usize;
        Ok(Self { writer, path, frame_len, frames_since_refresh: 0 })
    }

    /// Appends one 20 ms frame.
    pub fn write_frame(&mut self, frame: &[i16]) -> Result<(), RecordError> {
        if frame.len() != self.frame_len {
            return Err(RecordError::WrongFrameLength {
                expected: self.frame_len,
                got: frame.len(),
            });
        }
        self.writer.write(frame)?;
        self.frames_since_refresh += 1;
        if self.frames_since_refresh >= HEADER_REFRESH_FRAMES {
            self.frames_since_refresh = 0;
            self.writer.update_header()?;
        }
        Ok(())
    }

    /// The file being written.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Recorded length so far, in milliseconds.
    #[must_use]
    pub fn duration_ms(&self) -> u64 {
        self.writer.samples_written() * 1000 / u64::from(self.writer.sample_rate())
    }

    /// Finishes the file.
    pub fn stop(self) -> Result<Recording, RecordError> {
        let duration_ms = self.duration_ms();
        let (_, samples) = self.writer.finish()?;
        Ok(Recording { path: self.path, samples, duration_ms })
    }
}
