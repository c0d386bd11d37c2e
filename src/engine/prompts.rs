//! The engine's spoken prompts: WAV files rendered once with espeak-ng, kept in
//! the repository under sounds/prompts/ and built into the binary, so a fresh
//! `cargo run` has them. A file of the same name in `<data-dir>/sounds/`
//! replaces one (a recorded voice, another language).

use std::path::Path;

use tutti_media::wav::{self, Prompt, WavError};

/// The prompts the engine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptName {
    EnterPin,
    WrongPin,
    Goodbye,
    Locked,
    Invite,
    /// Before recording a caller's name for `announce_caller_name`.
    SayName,
    /// Said after a caller's recorded name.
    HasJoined,
    HasLeft,
    /// Played in a loop to a caller alone in a conference
    /// (scripts/make_music_on_hold.py makes it).
    MusicOnHold,
}

impl PromptName {
    /// The file name, in sounds/prompts/ and in `<data-dir>/sounds/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::EnterPin => "enter_pin.wav",
            Self::WrongPin => "wrong_pin.wav",
            Self::Goodbye => "goodbye.wav",
            Self::Locked => "locked.wav",
            Self::Invite => "invite.wav",
            Self::SayName => "say_name.wav",
            Self::HasJoined => "has_joined.wav",
            Self::HasLeft => "has_left.wav",
            Self::MusicOnHold => "music_on_hold.wav",
        }
    }

    fn bundled(self) -> &'static [u8] {
        match self {
            Self::EnterPin => include_bytes!("../../sounds/prompts/enter_pin.wav"),
            Self::WrongPin => include_bytes!("../../sounds/prompts/wrong_pin.wav"),
            Self::Goodbye => include_bytes!("../../sounds/prompts/goodbye.wav"),
            Self::Locked => include_bytes!("../../sounds/prompts/locked.wav"),
            Self::Invite => include_bytes!("../../sounds/prompts/invite.wav"),
            Self::SayName => include_bytes!("../../sounds/prompts/say_name.wav"),
            Self::HasJoined => include_bytes!("../../sounds/prompts/has_joined.wav"),
            Self::HasLeft => include_bytes!("../../sounds/prompts/has_left.wav"),
            Self::MusicOnHold => include_bytes!("../../sounds/prompts/music_on_hold.wav"),
        }
    }
}

/// The prompt, from `<sounds_dir>/<file>` when that exists, else the built-in one.
pub fn load(name: PromptName, sounds_dir: &Path) -> Result<Prompt, WavError> {
    let replacement = sounds_dir.join(name.file_name());
    let audio =
        if replacement.is_file() { wav::read(&replacement)? } else { wav::parse(name.bundled())? };
    let rate = audio.sample_rate;
    Prompt::from_audio(audio, rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPOKEN: [PromptName; 8] = [
        PromptName::EnterPin,
        PromptName::WrongPin,
        PromptName::Goodbye,
        PromptName::Locked,
        PromptName::Invite,
        PromptName::SayName,
        PromptName::HasJoined,
        PromptName::HasLeft,
    ];

    #[test]
    fn every_bundled_prompt_is_speech_of_sensible_length() {
        let nowhere = Path::new("/nonexistent");
        for name in SPOKEN {
            let prompt = load(name, nowhere).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!(prompt.sample_rate(), 16_000, "{name:?}");
            let ms = prompt.duration_ms();
            assert!((400..6000).contains(&ms), "{name:?} lasts {ms} ms");
            let loud = prompt.samples().iter().filter(|s| s.unsigned_abs() > 1000).count();
            assert!(loud > prompt.samples().len() / 10, "{name:?} is mostly silence");
        }
    }

    #[test]
    fn the_bundled_music_on_hold_is_a_quiet_loop_clear_of_test_and_beep_tones() {
        let moh = load(PromptName::MusicOnHold, Path::new("/nonexistent")).expect("bundled");
        assert_eq!((moh.sample_rate(), moh.duration_ms()), (16_000, 8000));
        let samples = moh.samples();
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((3000..12_000).contains(&peak), "peak {peak}");
        // It loops without a click: it starts and ends in silence.
        assert!(samples[0].unsigned_abs() < 50 && samples[samples.len() - 1].unsigned_abs() < 50);
        let first_chord = &samples[4000..28_000];
        let level = |f| tutti_media::tone::goertzel_amplitude(first_chord, 16_000, f);
        assert!(level(261.63) > 1000.0, "C4 missing: {}", level(261.63));
        for busy in [440.0, 660.0, 880.0, 1000.0, 1700.0] {
            assert!(level(busy) < 50.0, "{busy} Hz present: {}", level(busy));
        }
    }

    #[test]
    fn a_file_in_the_sounds_directory_replaces_a_prompt() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer =
            wav::WavWriter::create(&dir.path().join("goodbye.wav"), 8000).expect("create");
        writer.write(&[1000i16; 800]).expect("write");
        writer.finish().expect("finish");
        let prompt = load(PromptName::Goodbye, dir.path()).expect("replacement");
        assert_eq!((prompt.sample_rate(), prompt.duration_ms()), (8000, 100));
        let bundled = load(PromptName::EnterPin, dir.path()).expect("others stay built in");
        assert_eq!(bundled.sample_rate(), 16_000);
    }
}
