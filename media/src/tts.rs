//! Text-to-speech by running Debian's `espeak-ng` as a subprocess. Each rendering is
//! cached as `<cache dir>/<sha256 of (text, voice, rate)>.wav`, converted once to
//! 16 kHz mono so it plays like any other prompt; a cache hit runs no program.
//!
//! The text goes to the program on standard input (`--stdin`), never on its command
//! line, so no text can be taken for an option. A missing program is a clear
//! [`TtsError::ProgramMissing`], not an I/O error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::wav::{self, Prompt, WavError, WavWriter};

/// The program run when none is configured.
pub const DEFAULT_PROGRAM: &str = "espeak-ng";
/// The voice used when none is given.
pub const DEFAULT_VOICE: &str = "en";
/// The speaking rate used when none is given, in words per minute (espeak-ng's default).
pub const DEFAULT_WORDS_PER_MINUTE: u32 = 175;
/// The rate of the cached files.
pub const CACHE_RATE: u32 = 16_000;
/// The longest text accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 4_096;
/// The speaking rates espeak-ng accepts.
pub const WORDS_PER_MINUTE: std::ops::RangeInclusive<u32> = 80..=450;

/// Why speech could not be rendered.
#[derive(Debug, Error)]
pub enum TtsError {
    /// The program is not installed (or not at the configured path).
    #[error("text-to-speech program {0:?} not found: install espeak-ng (Debian package espeak-ng)")]
    ProgramMissing(PathBuf),
    /// The program ran and failed.
    #[error("{program:?} failed ({status}): {stderr}")]
    ProgramFailed {
        /// The program.
        program: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The start of what it printed on standard error.
        stderr: String,
    },
    /// Empty text, or longer than [`MAX_TEXT_BYTES`].
    #[error("text is empty or longer than {MAX_TEXT_BYTES} bytes")]
    InvalidText,
    /// Voice names are letters, digits, `-`, `_` and `+` (for example `en-us+f3`).
    #[error("invalid voice name {0:?}")]
    InvalidVoice(String),
    /// Outside [`WORDS_PER_MINUTE`].
    #[error("speaking rate {0} words per minute is outside 80..=450")]
    InvalidRate(u32),
    /// The cache directory or a temporary file could not be used.
    #[error("TTS cache: {0}")]
    Io(#[from] std::io::Error),
    /// The program's output could not be read or converted.
    #[error("TTS output: {0}")]
    Wav(#[from] WavError),
    /// The blocking task running the program was lost (the runtime is shutting down).
    #[error("TTS task did not complete")]
    TaskLost,
}

/// What to say and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Speech {
    /// The text.
    pub text: String,
    /// An espeak-ng voice (`espeak-ng --voices` lists them).
    pub voice: String,
    /// Words per minute.
    pub words_per_minute: u32,
}

impl Speech {
    /// `text` in the default voice at the default rate.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            voice: DEFAULT_VOICE.to_owned(),
            words_per_minute: DEFAULT_WORDS_PER_MINUTE,
        }
    }

    fn validate(&self) -> Result<(), TtsError> {
        if self.text.trim().is_empty() || self.text.len() > MAX_TEXT_BYTES {
            return Err(TtsError::InvalidText);
        }
        let voice_ok = !self.voice.is_empty()
            && self.voice.len() <= 64
            && !self.voice.starts_with('-')
            && self
                .voice
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+'));
        if !voice_ok {
            return Err(TtsError::InvalidVoice(self.voice.clone()));
        }
        if !WORDS_PER_MINUTE.contains(&self.words_per_minute) {
            return Err(TtsError::InvalidRate(self.words_per_minute));
        }
        Ok(())
    }

    /// The cache key: SHA-256 over the fields, each length-prefixed so that no two
    /// different requests can produce the same input.
    #[must_use]
    pub fn cache_key(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"tutti-tts-v1");
        for field in [self.text.as_bytes(), self.voice.as_bytes()] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        hasher.update(self.words_per_minute.to_le_bytes());
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Renders speech through espeak-ng into a cache directory.
#[derive(Debug, Clone)]
pub struct Tts {
    program: PathBuf,
    cache_dir: PathBuf,
}

impl Tts {
    /// Runs `espeak-ng` from `PATH`, caching in `cache_dir` (created when needed).
    #[must_use]
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self::with_program(DEFAULT_PROGRAM, cache_dir)
    }

    /// Runs `program` instead (same command-line interface as espeak-ng).
    #[must_use]
    pub fn with_program(program: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), cache_dir: cache_dir.into() }
    }

    /// Where the rendering of `speech` is (or would be) cached.
    #[must_use]
    pub fn cache_path(&self, speech: &Speech) -> PathBuf {
        self.cache_dir.join(format!("{}.wav", speech.cache_key()))
    }

    /// Returns the cached WAV (16 kHz mono) for `speech`, rendering it first on a miss.
    /// Blocks while the program runs: call it from a blocking thread, or use
    /// [`Tts::render`].
    pub fn render_blocking(&self, speech: &Speech) -> Result<PathBuf, TtsError> {
        speech.validate()?;
        let path = self.cache_path(speech);
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.cache_dir)?;
        // Unique names per attempt: two renderings of one text may race, and the final
        // rename makes whichever finishes last win with an identical file.
        let unique = format!(
            "{}.{}.{}",
            speech.cache_key(),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let raw = self.cache_dir.join(format!("{unique}.raw.tmp"));
        let converted = self.cache_dir.join(format!("{unique}.wav.tmp"));
        let result = self.run_program(speech, &raw).and_then(|()| {
            let audio = wav::read_any(&raw)?;
            let samples = wav::convert_rate(&audio.samples, audio.sample_rate, CACHE_RATE);
            let mut writer = WavWriter::create(&converted, CACHE_RATE)?;
            writer.write(&samples)?;
            writer.finish()?;
            std::fs::rename(&converted, &path)?;
            Ok(())
        });
        let _ = std::fs::remove_file(&raw);
        let _ = std::fs::remove_file(&converted);
        result.map(|()| path)
    }

    fn run_program(&self, speech: &Speech, out: &Path) -> Result<(), TtsError> {
        let mut child = Command::new(&self.program)
            .arg("-v")
            .arg(&speech.voice)
            .arg("-s")
            .arg(speech.words_per_minute.to_string())
            .arg("-w")
            .arg(out)
            .arg("--stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                if error.kind() == std::io::ErrorKind::NotFound {
                    TtsError::ProgramMissing(self.program.clone())
                } else {
                    TtsError::Io(error)
                }
            })?;
        // Dropping stdin closes it: the program reads to the end of the stream. A write
        // error (a program that exited early breaks the pipe) is reported only if the
        // exit status does not explain it.
        let written = match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(speech.text.as_bytes()),
            None => Ok(()),
        };
        let output = child.wait_with_output()?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(TtsError::ProgramFailed {
                program: self.program.clone(),
                status: output.status,
                stderr: stderr.chars().take(300).collect(),
            });
        }
        written?;
        Ok(())
    }

    /// [`Tts::render_blocking`] on tokio's blocking pool.
    pub async fn render(&self, speech: Speech) -> Result<PathBuf, TtsError> {
        let tts = self.clone();
        tokio::task::spawn_blocking(move || tts.render_blocking(&speech))
            .await
            .map_err(|_| TtsError::TaskLost)?
    }

    /// Renders (or finds) `speech` and loads it as a prompt at `rate`.
    pub async fn prompt(&self, speech: Speech, rate: u32) -> Result<Prompt, TtsError> {
        let tts = self.clone();
        tokio::task::spawn_blocking(move || {
            let path = tts.render_blocking(&speech)?;
            Ok(Prompt::load(&path, rate)?)
        })
        .await
        .map_err(|_| TtsError::TaskLost)?
    }
}
