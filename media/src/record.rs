//! Recording: 20 ms frames of a room's mix (or of one member) written to
//! `<dir>/<name>.wav` as 16-bit mono PCM at the room's rate, with start and stop.
//!
//! Writing is buffered file I/O, which can block on a slow disk, so the mixer
//! tick never writes: it hands each frame to a [`RecordingWriter`], whose own
//! thread writes it. When the disk falls more than [`WRITER_BACKLOG`] frames
//! behind, frames are dropped and counted rather than delaying the mix.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

use thiserror::Error;

use crate::codec::FRAME_MS;
use crate::wav::{HEADER_LEN, WavError, WavWriter};

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
    /// The bytes it was allowed ([`RecordLimits::budget`]) are spent.
    #[error("the recording's bytes are spent: {left} left, too few for what comes next")]
    SizeLimit {
        /// Bytes the budget still held.
        left: u64,
    },
    /// The file system's free space fell below [`RecordLimits::min_free_bytes`].
    #[error(
        "{free_bytes} bytes free on the recordings' file system, below the {min_free_bytes} kept free"
    )]
    DiskLow {
        /// Free space found (for an unprivileged process).
        free_bytes: u64,
        /// The floor.
        min_free_bytes: u64,
    },
}

impl RecordError {
    /// Whether the recording was stopped by a [`RecordLimits`] rather than by a
    /// fault.
    #[must_use]
    pub fn is_limit(&self) -> bool {
        matches!(self, RecordError::SizeLimit { .. } | RecordError::DiskLow { .. })
    }
}

/// When a recording stops by itself, however long its call goes on.
#[derive(Debug, Clone)]
pub struct RecordLimits {
    /// Bytes the file system must keep free, checked as the file starts and
    /// every [`HEADER_REFRESH_FRAMES`] frames; 0: none.
    pub min_free_bytes: u64,
    /// Bytes left to every recording that holds it (one file's size, or a
    /// customer's quota shared by its recordings): each file takes what it
    /// writes from it, header included, and stops when what it would write
    /// is no longer there. `None`: any size.
    pub budget: Option<Arc<AtomicU64>>,
}

impl RecordLimits {
    /// No limit.
    pub const NONE: RecordLimits = RecordLimits { min_free_bytes: 0, budget: None };

    /// Takes `bytes` from the budget, if there is one; when it holds less,
    /// takes nothing and says how much it holds.
    fn take(&self, bytes: u64) -> Result<(), RecordError> {
        let Some(budget) = &self.budget else { return Ok(()) };
        budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(bytes))
            .map(drop)
            .map_err(|left| RecordError::SizeLimit { left })
    }

    /// Checks the free space of the file system holding `dir`.
    pub fn check_free_space(&self, dir: &Path) -> Result<(), RecordError> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let free_bytes = free_bytes(dir).map_err(|e| WavError::Io(e.into()))?;
        if free_bytes < self.min_free_bytes {
            return Err(RecordError::DiskLow { free_bytes, min_free_bytes: self.min_free_bytes });
        }
        Ok(())
    }
}

/// Bytes an unprivileged process may still write on the file system holding
/// `dir`.
pub fn free_bytes(dir: &Path) -> rustix::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
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
    limits: RecordLimits,
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
        Self::start_limited(dir, name, rate, RecordLimits::NONE)
    }

    /// [`Recorder::start`] for a recording that stops at `limits`: it does not
    /// start where the disk is already below their floor, and
    /// [`Recorder::write_frame`] refuses the frame that would pass them.
    pub fn start_limited(
        dir: &Path,
        name: &str,
        rate: u32,
        limits: RecordLimits,
    ) -> Result<Self, RecordError> {
        if !valid_name(name) {
            return Err(RecordError::InvalidName(name.to_owned()));
        }
        crate::source::check_rate(rate).map_err(|_| RecordError::UnsupportedRate(rate))?;
        std::fs::create_dir_all(dir).map_err(WavError::Io)?;
        limits.check_free_space(dir)?;
        limits.take(HEADER_LEN)?;
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
        Ok(Self { writer, path, frame_len, frames_since_refresh: 0, limits })
    }

    /// Appends one 20 ms frame.
    pub fn write_frame(&mut self, frame: &[i16]) -> Result<(), RecordError> {
        if frame.len() != self.frame_len {
            return Err(RecordError::WrongFrameLength {
                expected: self.frame_len,
                got: frame.len(),
            });
        }
        self.limits.take(frame.len() as u64 * 2)?;
        self.writer.write(frame)?;
        self.frames_since_refresh += 1;
        if self.frames_since_refresh >= HEADER_REFRESH_FRAMES {
            self.frames_since_refresh = 0;
            self.writer.update_header()?;
            if let Some(dir) = self.path.parent() {
                self.limits.check_free_space(dir)?;
            }
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

/// Where a recording's frames go: a WAV file ([`Recorder`]) or, in tests,
/// anything that takes frames.
pub trait FrameSink: Send + 'static {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), RecordError>;
    /// Finishes the recording.
    fn finish(self: Box<Self>) -> Result<Recording, RecordError>;
}

impl FrameSink for Recorder {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), RecordError> {
        Recorder::write_frame(self, frame)
    }

    fn finish(self: Box<Self>) -> Result<Recording, RecordError> {
        self.stop()
    }
}

/// Frames a writer may fall behind by (2 s) before new frames are dropped.
pub const WRITER_BACKLOG: usize = 100;

/// Called once with the outcome of opening the sink.
pub type Started = Box<dyn FnOnce(Result<(), RecordError>) + Send>;
/// Called once with the finished recording.
pub type Finished = Box<dyn FnOnce(Result<Recording, RecordError>) + Send>;

enum WriterMessage {
    Frame(Vec<i16>),
    Stop(Finished),
}

/// The mixer's end of a recording written on its own thread. Handing a frame
/// over never blocks and, after warm-up, never allocates: buffers come back
/// from the writer for reuse.
pub struct RecordingWriter {
    messages: mpsc::Sender<WriterMessage>,
    free: mpsc::Receiver<Vec<i16>>,
    /// Frames handed over and not yet written.
    in_flight: Arc<AtomicUsize>,
    /// Set by the writer when the sink failed; nothing more is written.
    failed: Arc<AtomicBool>,
    dropped: u64,
}

impl RecordingWriter {
    /// Starts the writer thread; it opens the sink with `open` and reports the
    /// outcome to `started`.
    pub fn spawn(
        open: impl FnOnce() -> Result<Box<dyn FrameSink>, RecordError> + Send + 'static,
        started: Started,
    ) -> Self {
        let (messages, inbox) = mpsc::channel();
        let (give_back, free) = mpsc::channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (flight, fail) = (in_flight.clone(), failed.clone());
        let spawned = std::thread::Builder::new().name("recording".into()).spawn(move || {
            write_loop(open, started, &inbox, &give_back, &flight, &fail);
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "recording thread not started");
            failed.store(true, Ordering::Relaxed);
        }
        Self { messages, free, in_flight, failed, dropped: 0 }
    }

    /// Starts writing `<dir>/<name>.wav` at `rate`, until `limits`.
    pub fn start_file(
        dir: PathBuf,
        name: String,
        rate: u32,
        limits: RecordLimits,
        started: Started,
    ) -> Self {
        Self::spawn(
            move || {
                Recorder::start_limited(&dir, &name, rate, limits)
                    .map(|r| Box::new(r) as Box<dyn FrameSink>)
            },
            started,
        )
    }

    /// Hands one frame to the writer; drops it (and counts it) when the writer
    /// is [`WRITER_BACKLOG`] frames behind.
    pub fn write_frame(&mut self, frame: &[i16]) {
        if self.in_flight.load(Ordering::Acquire) >= WRITER_BACKLOG {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "recording: the disk is behind; frames dropped"
                );
            }
            return;
        }
        let mut buffer = self.free.try_recv().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(frame);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if self.messages.send(WriterMessage::Frame(buffer)).is_err() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.failed.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the sink failed (or could not be opened): the recording is over.
    #[must_use]
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Frames dropped because the writer was behind.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Finishes the recording after every frame handed over; `finished` learns
    /// the outcome from the writer thread.
    pub fn stop(self, finished: Finished) {
        if self.dropped > 0 {
            tracing::warn!(dropped = self.dropped, "recording ended with frames dropped");
        }
        if let Err(mpsc::SendError(WriterMessage::Stop(finished))) =
            self.messages.send(WriterMessage::Stop(finished))
        {
            finished(Err(RecordError::Wav(WavError::Io(std::io::Error::other(
                "the recording thread has ended",
            )))));
        }
    }
}

fn write_loop(
    open: impl FnOnce() -> Result<Box<dyn FrameSink>, RecordError>,
    started: Started,
    inbox: &mpsc::Receiver<WriterMessage>,
    give_back: &mpsc::Sender<Vec<i16>>,
    in_flight: &AtomicUsize,
    failed: &AtomicBool,
) {
    let mut sink = match open() {
        Ok(sink) => {
            started(Ok(()));
            sink
        }
        Err(e) => {
            failed.store(true, Ordering::Relaxed);
            started(Err(e));
            return;
        }
    };
    let mut broken = false;
    while let Ok(message) = inbox.recv() {
        match message {
            WriterMessage::Frame(frame) => {
                if !broken && let Err(e) = sink.write_frame(&frame) {
                    if e.is_limit() {
                        tracing::warn!(reason = %e, "recording stopped at its limit");
                    } else {
                        tracing::error!(error = %e, "recording failed; stopped");
                    }
                    broken = true;
                    failed.store(true, Ordering::Relaxed);
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
                let _ = give_back.send(frame);
            }
            WriterMessage::Stop(finished) => {
                finished(sink.finish());
                return;
            }
        }
    }
    // The room went away without stopping: still leave a valid file.
    if let Err(e) = sink.finish() {
        tracing::error!(error = %e, "recording not finalised");
    }
}

#[cfg(test)]
mod writer_tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// A sink on a stalled disk: each write waits until the test lets it go.
    struct Stalled {
        gate: Arc<Mutex<()>>,
        written: Arc<AtomicUsize>,
    }

    impl FrameSink for Stalled {
        fn write_frame(&mut self, _frame: &[i16]) -> Result<(), RecordError> {
            drop(self.gate.lock().expect("gate"));
            self.written.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }

        fn finish(self: Box<Self>) -> Result<Recording, RecordError> {
            let samples = self.written.load(Ordering::Relaxed) as u64 * 160;
            Ok(Recording { path: PathBuf::new(), samples, duration_ms: samples / 8 })
        }
    }

    #[test]
    fn a_stalled_sink_never_blocks_the_caller_and_drops_what_does_not_fit() {
        let gate = Arc::new(Mutex::new(()));
        let written = Arc::new(AtomicUsize::new(0));
        let stall = gate.lock().expect("gate");
        let sink = Stalled { gate: gate.clone(), written: written.clone() };
        let (tx, rx) = mpsc::channel();
        let mut writer = RecordingWriter::spawn(
            move || Ok(Box::new(sink) as Box<dyn FrameSink>),
            Box::new(move |r| tx.send(r.is_ok()).expect("started")),
        );
        assert!(rx.recv().expect("opened"));
        let frame = [7i16; 160];
        let begun = Instant::now();
        for _ in 0..1000 {
            writer.write_frame(&frame);
        }
        assert!(begun.elapsed() < Duration::from_millis(200), "{:?}", begun.elapsed());
        // One frame may be in the sink's hands, the rest wait in the queue.
        assert!(writer.dropped() >= 1000 - WRITER_BACKLOG as u64 - 1, "{}", writer.dropped());
        drop(stall);
        let (tx, rx) = mpsc::channel();
        writer.stop(Box::new(move |r| tx.send(r).expect("finished")));
        let recording = rx.recv_timeout(Duration::from_secs(5)).expect("in time").expect("ok");
        let kept = written.load(Ordering::Relaxed);
        assert!((WRITER_BACKLOG..=WRITER_BACKLOG + 1).contains(&kept), "{kept} frames written");
        assert_eq!(recording.samples, kept as u64 * 160, "every frame kept is in the file");
    }

    #[test]
    fn a_file_holds_every_frame_handed_over_and_buffers_are_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let (tx, rx) = mpsc::channel();
        let mut writer = RecordingWriter::start_file(
            dir.path().to_owned(),
            "w".into(),
            8000,
            RecordLimits::NONE,
            Box::new(move |r| tx.send(r.is_ok()).expect("started")),
        );
        assert!(rx.recv().expect("opened"));
        for i in 0..50i16 {
            writer.write_frame(&[i; 160]);
            std::thread::sleep(Duration::from_millis(1));
        }
        let (tx, rx) = mpsc::channel();
        writer.stop(Box::new(move |r| tx.send(r).expect("finished")));
        let recording = rx.recv_timeout(Duration::from_secs(5)).expect("in time").expect("ok");
        assert_eq!(recording.samples, 50 * 160);
        let audio = crate::wav::read(&dir.path().join("w.wav")).expect("wav");
        assert_eq!(audio.samples[160 * 49], 49);
    }

    #[test]
    fn a_sink_that_cannot_open_reports_it() {
        let dir = tempfile::tempdir().expect("dir");
        let (tx, rx) = mpsc::channel();
        let writer = RecordingWriter::start_file(
            dir.path().to_owned(),
            "../bad".into(),
            8000,
            RecordLimits::NONE,
            Box::new(move |r| tx.send(r.is_ok()).expect("started")),
        );
        assert!(!rx.recv().expect("reported"));
        assert!(writer.has_failed());
    }

    #[test]
    fn a_recording_stops_at_its_size_and_leaves_a_whole_file() {
        let dir = tempfile::tempdir().expect("dir");
        // Room for the header and ten 20 ms frames at 8 kHz, and a little more.
        let max_bytes = 44 + 10 * 320 + 100;
        let budget = Some(Arc::new(AtomicU64::new(max_bytes)));
        let limits = RecordLimits { budget, ..RecordLimits::NONE };
        let (tx, rx) = mpsc::channel();
        let mut writer = RecordingWriter::start_file(
            dir.path().to_owned(),
            "capped".into(),
            8000,
            limits,
            Box::new(move |r| tx.send(r.is_ok()).expect("started")),
        );
        assert!(rx.recv().expect("opened"));
        for i in 0..20i16 {
            writer.write_frame(&[i; 160]);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !writer.has_failed() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(writer.has_failed(), "the writer stopped at the limit");
        let (tx, rx) = mpsc::channel();
        writer.stop(Box::new(move |r| tx.send(r).expect("finished")));
        let recording = rx.recv_timeout(Duration::from_secs(5)).expect("in time").expect("ok");
        assert_eq!(recording.samples, 10 * 160, "every frame that fits, no more");
        let path = dir.path().join("capped.wav");
        assert!(std::fs::metadata(&path).expect("file").len() <= max_bytes);
        let audio = crate::wav::read(&path).expect("a valid WAV file");
        assert_eq!(audio.samples.len(), 10 * 160);
        assert_eq!(audio.samples[160 * 9], 9);
    }

    #[test]
    fn a_recording_does_not_start_on_a_disk_below_the_floor() {
        let dir = tempfile::tempdir().expect("dir");
        let limits = RecordLimits { min_free_bytes: u64::MAX, ..RecordLimits::NONE };
        let refused = Recorder::start_limited(dir.path(), "full", 8000, limits);
        let Err(e @ RecordError::DiskLow { .. }) = refused else {
            panic!("refused for the disk: {refused:?}");
        };
        assert!(e.is_limit());
        assert!(!dir.path().join("full.wav").exists(), "no file left behind");
        let free = free_bytes(dir.path()).expect("statvfs");
        assert!(free > 0, "the test's file system has room");
        let fits = RecordLimits { min_free_bytes: 1, ..RecordLimits::NONE };
        Recorder::start_limited(dir.path(), "fits", 8000, fits).expect("starts with room");
    }

    #[test]
    fn recordings_sharing_a_budget_stop_when_it_is_spent_together() {
        let dir = tempfile::tempdir().expect("dir");
        // Two headers and 25 frames at 8 kHz between them.
        let budget = Arc::new(AtomicU64::new(2 * 44 + 25 * 320));
        let limits = RecordLimits { budget: Some(budget.clone()), ..RecordLimits::NONE };
        let mut a = Recorder::start_limited(dir.path(), "a", 8000, limits.clone()).expect("a");
        let mut b = Recorder::start_limited(dir.path(), "b", 8000, limits.clone()).expect("b");
        let (mut written, mut refused) = (0, 0);
        for i in 0..40 {
            let recorder = if i % 2 == 0 { &mut a } else { &mut b };
            match recorder.write_frame(&[1; 160]) {
                Ok(()) => written += 1,
                Err(RecordError::SizeLimit { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((written, refused), (25, 15), "the frames that fit, across both");
        assert_eq!(budget.load(Ordering::Acquire), 0);
        // Nothing left: a third does not start.
        let c = Recorder::start_limited(dir.path(), "c", 8000, limits);
        assert!(matches!(c, Err(RecordError::SizeLimit { .. })), "{c:?}");
        let total: u64 = [a.stop(), b.stop()]
            .into_iter()
            .map(|r| std::fs::metadata(r.expect("stopped").path).expect("file").len())
            .sum();
        assert!(total <= 2 * 44 + 25 * 320, "{total} bytes on disk");
    }
}
