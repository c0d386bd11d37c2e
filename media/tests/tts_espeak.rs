//! Text-to-speech through the real espeak-ng (Debian package `espeak-ng`): rendering,
//! the cache (a hit runs no program), and the errors. Skipped with a message when
//! espeak-ng is not installed, except under CI (`CI=true`), where that is a failure.

use std::path::{Path, PathBuf};

use tutti_media::tone::rms;
use tutti_media::tts::{CACHE_RATE, Speech, Tts, TtsError};
use tutti_media::wav;

fn espeak_available() -> bool {
    let found = std::process::Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "espeak-ng is missing on CI: install the Debian package espeak-ng"
        );
        eprintln!("SKIPPED: espeak-ng is not installed (apt-get install espeak-ng)");
    }
    found
}

/// A wrapper around espeak-ng that counts its runs in `<dir>/runs`.
fn counting_wrapper(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("espeak-counting");
    let runs = dir.join("runs");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho run >> '{}'\nexec espeak-ng \"$@\"\n", runs.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs")).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn renders_speech_into_a_cached_16_khz_wav_and_hits_the_cache() {
    if !espeak_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tts = Tts::with_program(counting_wrapper(dir.path()), dir.path().join("cache"));
    let speech = Speech::new("Welcome to the conference. You are the first participant.");
    let path = tts.render(speech.clone()).await.unwrap();
    assert_eq!(runs(dir.path()), 1);
    assert_eq!(path, tts.cache_path(&speech));
    let audio = wav::read(&path).unwrap();
    assert_eq!((audio.sample_rate, audio.channels), (CACHE_RATE, 1));
    // A few seconds of clearly audible speech.
    let seconds = audio.samples.len() as f64 / f64::from(CACHE_RATE);
    assert!((2.0..10.0).contains(&seconds), "{seconds:.1} s of speech");
    assert!(rms(&audio.samples) > 500.0, "speech RMS {:.0}", rms(&audio.samples));

    // Same request: served from the cache, the program does not run again.
    assert_eq!(tts.render(speech.clone()).await.unwrap(), path);
    let prompt = tts.prompt(speech.clone(), 8_000).await.unwrap();
    assert_eq!(runs(dir.path()), 1);
    assert_eq!(prompt.sample_rate(), 8_000);
    assert_eq!(prompt.samples().len(), audio.samples.len() / 2);

    // A different voice or rate is a different entry.
    let faster = Speech { words_per_minute: 250, ..speech.clone() };
    assert_ne!(tts.cache_path(&faster), path);
    let fast_path = tts.render(faster).await.unwrap();
    assert_eq!(runs(dir.path()), 2);
    let fast = wav::read(&fast_path).unwrap();
    assert!(fast.samples.len() < audio.samples.len());
    // Only the two cached files remain: no temporary files are left behind.
    assert_eq!(std::fs::read_dir(dir.path().join("cache")).unwrap().count(), 2);
}

#[test]
fn text_that_looks_like_an_option_is_spoken_not_parsed() {
    if !espeak_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tts = Tts::new(dir.path());
    let path = tts.render_blocking(&Speech::new("--help -w /tmp/x")).unwrap();
    assert!(wav::read(&path).unwrap().samples.len() > 1_000);
}

#[test]
fn a_missing_program_and_bad_requests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tts = Tts::with_program("/nonexistent/espeak-ng", dir.path());
    let error = tts.render_blocking(&Speech::new("hello")).unwrap_err();
    assert!(matches!(error, TtsError::ProgramMissing(_)), "{error}");
    assert!(error.to_string().contains("install espeak-ng"));
    assert!(matches!(tts.render_blocking(&Speech::new("   ")), Err(TtsError::InvalidText)));
    let bad_voice = Speech { voice: "-w /etc/passwd".into(), ..Speech::new("hi") };
    assert!(matches!(tts.render_blocking(&bad_voice), Err(TtsError::InvalidVoice(_))));
    let bad_rate = Speech { words_per_minute: 10, ..Speech::new("hi") };
    assert!(matches!(tts.render_blocking(&bad_rate), Err(TtsError::InvalidRate(10))));
}

#[test]
fn a_failing_program_reports_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let tts = Tts::with_program("false", dir.path());
    assert!(matches!(
        tts.render_blocking(&Speech::new("hello")),
        Err(TtsError::ProgramFailed { .. })
    ));
}
