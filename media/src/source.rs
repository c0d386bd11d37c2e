//! What the mixer plays besides legs: anything that yields 20 ms PCM frames at a fixed
//! rate (a WAV prompt, a tone, rendered speech), with stop and a done report, so the
//! engine can raise its playing/done events the same way for all of them.

use thiserror::Error;

use crate::codec::FRAME_MS;

/// Why a frame source refused a call. All are caller errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SourceError {
    /// The output buffer cannot hold one frame.
    #[error("output buffer holds {capacity} samples, one frame is {needed}")]
    OutputTooSmall {
        /// Samples in one frame at the source's rate.
        needed: usize,
        /// Samples the buffer holds.
        capacity: usize,
    },
    /// The rate is not one that 20 ms frames divide evenly, or is absurd.
    #[error("unsupported sample rate {0} Hz")]
    UnsupportedRate(u32),
}

/// What [`FrameSource::next_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// A frame of audio was written (the last one is padded with silence).
    Playing,
    /// Nothing more to play, because the source ran out or was stopped; the frame was
    /// filled with silence. Every later call says `Done` too.
    Done,
}

/// A source of 20 ms PCM frames at one rate.
pub trait FrameSource: Send {
    /// The PCM rate of the frames.
    fn sample_rate(&self) -> u32;

    /// Samples in one frame.
    fn samples_per_frame(&self) -> usize {
        (self.sample_rate() * FRAME_MS / 1000) as usize
    }

    /// Writes the next frame into `out[..samples_per_frame()]`.
    fn next_frame(&mut self, out: &mut [i16]) -> Result<SourceState, SourceError>;

    /// Ends playback now: the next call to [`FrameSource::next_frame`] says `Done`.
    fn stop(&mut self);
}

/// The largest rate a source accepts; far above anything a leg or a room runs at.
pub const MAX_SOURCE_RATE: u32 = 192_000;

/// Checks that 20 ms frames at `rate` are a whole number of samples.
pub fn check_rate(rate: u32) -> Result<u32, SourceError> {
    if rate == 0 || rate > MAX_SOURCE_RATE || !rate.is_multiple_of(1000 / FRAME_MS) {
        Err(SourceError::UnsupportedRate(rate))
    } else {
        Ok(rate)
    }
}

/// Checks that `out` holds one frame, returning the frame length.
pub fn check_frame_buffer(rate: u32, out: &[i16]) -> Result<usize, SourceError> {
    let needed = (rate * FRAME_MS / 1000) as usize;
    if out.len() < needed {
        Err(SourceError::OutputTooSmall { needed, capacity: out.len() })
    } else {
        Ok(needed)
    }
}
