//! WAV reading (accepted and refused formats, unfinalised files, garbage), the writer,
//! the prompt player (frames, loop, stop, done, rate conversion) and recording.

use std::path::Path;

use tutti_media::record::{RecordError, Recorder};
use tutti_media::source::{FrameSource, SourceState};
use tutti_media::tone::{goertzel_amplitude, rms};
use tutti_media::wav::{self, Player, Prompt, WavError, WavWriter, convert_rate};

fn sine(len: usize, rate: u32, freq: f64, amplitude: f64) -> Vec<i16> {
    (0..len)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                as i16
        })
        .collect()
}

/// A WAV file with arbitrary header fields and `data` bytes.
fn wav_bytes(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block_align = channels * bits / 8;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    // An unknown chunk before fmt, odd-sized, to exercise the skipping and padding.
    out.extend_from_slice(b"junk");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&[1, 2, 3, 0]);
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[test]
fn reads_mono_and_downmixes_stereo_at_each_prompt_rate() {
    for rate in [8_000, 16_000, 48_000] {
        let mono =
            wav::parse(&wav_bytes(1, 1, rate, 16, &pcm_bytes(&[1, -2, 300, -32768]))).unwrap();
        assert_eq!((mono.sample_rate, mono.channels), (rate, 1));
        assert_eq!(mono.samples, [1, -2, 300, -32768]);
        let stereo = wav::parse(&wav_bytes(
            1,
            2,
            rate,
            16,
            &pcm_bytes(&[100, 300, -32768, -32768, 32767, -32768]),
        ))
        .unwrap();
        assert_eq!(stereo.channels, 2);
        assert_eq!(stereo.samples, [200, -32768, 0]);
    }
}

#[test]
fn refuses_other_formats_naming_what_it_found() {
    let data = pcm_bytes(&[0; 8]);
    let cases: [(Vec<u8>, &str); 6] = [
        (wav_bytes(1, 1, 44_100, 16, &data), "44100 Hz"),
        (wav_bytes(1, 1, 8_000, 8, &data), "8-bit"),
        (wav_bytes(1, 1, 8_000, 24, &data), "24-bit"),
        (wav_bytes(3, 1, 8_000, 32, &data), "format tag 0x0003"),
        (wav_bytes(6, 1, 8_000, 8, &data), "format tag 0x0006"),
        (wav_bytes(1, 3, 8_000, 16, &data), "channel count: 3"),
    ];
    for (bytes, found) in cases {
        let error = wav::parse(&bytes).unwrap_err();
        assert!(error.to_string().contains(found), "{error} should name {found}");
    }
    assert!(matches!(wav::parse(b"RIFX....WAVE"), Err(WavError::NotWave)));
    assert!(matches!(wav::parse(b""), Err(WavError::NotWave)));
    assert!(matches!(
        wav::parse(&wav_bytes(1, 1, 8_000, 16, &data)[..52]),
        Err(WavError::MissingChunk("data"))
    ));
    assert!(matches!(
        wav::parse(&wav_bytes(1, 1, 8_000, 16, &data)[..40]),
        Err(WavError::MalformedFormat(_))
    ));
    // 44.1 kHz is refused for prompts but readable by parse_any (TTS output).
    assert_eq!(wav::parse_any(&wav_bytes(1, 1, 44_100, 16, &data)).unwrap().sample_rate, 44_100);
}

#[test]
fn garbage_never_panics() {
    let good = wav_bytes(1, 2, 16_000, 16, &pcm_bytes(&sine(400, 16_000, 500.0, 1000.0)));
    let mut seed = 7u32;
    for round in 0..3_000 {
        let mut bytes = good.clone();
        bytes.truncate(round % good.len());
        for _ in 0..(round % 7) {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let at = (seed as usize >> 8) % bytes.len().max(1);
            if let Some(byte) = bytes.get_mut(at) {
                *byte = (seed >> 3) as u8;
            }
        }
        let _ = wav::parse_any(&bytes);
    }
}

#[test]
fn writer_output_reads_back_and_unfinalised_files_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.wav");
    let pcm = sine(16_000, 16_000, 700.0, 9_000.0);
    let mut writer = WavWriter::create(&path, 16_000).unwrap();
    for frame in pcm.chunks(320) {
        writer.write(frame).unwrap();
    }
    // Before finishing, the header still says zero: the reader takes the data to the
    // end of the file (what a crash mid-recording leaves once the buffer is flushed).
    writer.update_header().unwrap();
    let (_, samples) = writer.finish().unwrap();
    assert_eq!(samples, 16_000);
    let audio = wav::read(&path).unwrap();
    assert_eq!(audio.samples, pcm);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 44 + 32_000);
    assert_eq!(&bytes[40..44], &32_000u32.to_le_bytes());
    assert_eq!(&bytes[4..8], &32_036u32.to_le_bytes());

    // A header with a zero data size (never finalised) still reads all the samples.
    let mut stale = bytes.clone();
    stale[40..44].copy_from_slice(&0u32.to_le_bytes());
    stale[4..8].copy_from_slice(&36u32.to_le_bytes());
    assert_eq!(wav::parse(&stale).unwrap().samples, pcm);
    // And one whose data size runs past the end (truncated copy).
    assert_eq!(wav::parse(&bytes[..44 + 1000]).unwrap().samples, pcm[..500]);
}

#[test]
fn dropping_an_unfinished_writer_leaves_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.wav");
    {
        let mut writer = WavWriter::create(&path, 8_000).unwrap();
        writer.write(&[5; 160]).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[40..44], &320u32.to_le_bytes());
    assert_eq!(wav::parse(&bytes).unwrap().samples.len(), 160);
}

fn play_all(player: &mut Player, max_frames: usize) -> (Vec<i16>, usize) {
    let mut out = vec![0i16; player.samples_per_frame()];
    let mut all = Vec::new();
    for frames in 0..max_frames {
        if player.next_frame(&mut out).unwrap() == SourceState::Done {
            return (all, frames);
        }
        all.extend_from_slice(&out);
    }
    (all, max_frames)
}

#[test]
fn player_yields_20_ms_frames_pads_the_last_and_reports_done() {
    let prompt = Prompt::from_samples((1..=400).collect(), 8_000).unwrap();
    assert_eq!(prompt.duration_ms(), 50);
    let mut player = Player::new(prompt, false);
    let (samples, frames) = play_all(&mut player, 10);
    assert_eq!(frames, 3);
    assert_eq!(&samples[..400], &(1..=400).collect::<Vec<i16>>()[..]);
    assert!(samples[400..].iter().all(|&s| s == 0));
    assert!(player.is_done());
    let mut out = [9i16; 160];
    assert_eq!(player.next_frame(&mut out), Ok(SourceState::Done));
    assert!(out.iter().all(|&s| s == 0));
}

#[test]
fn player_loops_until_stopped() {
    let prompt = Prompt::from_samples((0..100).collect(), 8_000).unwrap();
    let mut player = Player::new(prompt, true);
    let (samples, frames) = play_all(&mut player, 5);
    assert_eq!(frames, 5);
    // Seamless: sample i is i mod 100.
    assert!(samples.iter().enumerate().all(|(i, &s)| s == (i % 100) as i16));
    player.stop();
    assert_eq!(player.next_frame(&mut [0i16; 160]), Ok(SourceState::Done));
    // Turning looping off lets the current pass finish.
    let mut player = Player::new(Prompt::from_samples((0..100).collect(), 8_000).unwrap(), true);
    play_all(&mut player, 1);
    player.set_looping(false);
    // 60 of 100 samples were played in the second pass: one more frame ends it.
    assert_eq!(play_all(&mut player, 10).1, 1);
    // An empty prompt is done at once, looping or not.
    let mut empty = Player::new(Prompt::from_samples(Vec::new(), 16_000).unwrap(), true);
    assert_eq!(empty.next_frame(&mut [0i16; 320]), Ok(SourceState::Done));
}

#[test]
fn prompts_convert_between_8_16_and_48_khz_keeping_the_tone() {
    for from in [8_000u32, 16_000, 48_000] {
        for to in [8_000u32, 16_000, 48_000] {
            let pcm = sine(from as usize / 2, from, 1_000.0, 10_000.0);
            let converted = convert_rate(&pcm, from, to);
            assert_eq!(converted.len(), to as usize / 2);
            // Skip the filter's edges.
            let middle = &converted[to as usize / 20..to as usize * 9 / 20];
            let amplitude = goertzel_amplitude(middle, to, 1_000.0);
            assert!((amplitude / 10_000.0 - 1.0).abs() < 0.03, "{from}->{to}: {amplitude:.0}");
            let leak = goertzel_amplitude(middle, to, 2_000.0);
            assert!(leak < 30.0, "{from}->{to}: 2 kHz at {leak:.0}");
        }
    }
    // Down-sampling removes what the lower rate cannot carry instead of aliasing it.
    let high = sine(48_000, 48_000, 6_000.0, 10_000.0);
    let down = convert_rate(&high, 48_000, 8_000);
    assert!(rms(&down[800..7200]) < 50.0, "6 kHz aliased into 8 kHz: {:.0}", rms(&down[800..7200]));
}

#[test]
fn prompt_load_reads_and_converts_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hello.wav");
    std::fs::write(
        &path,
        wav_bytes(1, 2, 16_000, 16, &pcm_bytes(&sine(3_200, 16_000, 800.0, 5_000.0))),
    )
    .unwrap();
    let prompt = Prompt::load(&path, 48_000).unwrap();
    assert_eq!(prompt.sample_rate(), 48_000);
    // 1600 stereo frames -> 1600 mono samples at 16 kHz -> 4800 at 48 kHz.
    assert_eq!(prompt.samples().len(), 4_800);
    assert!(matches!(Prompt::load(Path::new("/nonexistent.wav"), 8_000), Err(WavError::Io(_))));
}

#[test]
fn a_recording_contains_what_was_fed() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let mut recorder = Recorder::start(&recordings, "room-42_2026", 16_000).unwrap();
    let first = sine(320 * 50, 16_000, 440.0, 6_000.0);
    let second = sine(320 * 50, 16_000, 1_700.0, 6_000.0);
    for frame in first.chunks(320).chain(second.chunks(320)) {
        recorder.write_frame(frame).unwrap();
    }
    assert_eq!(recorder.duration_ms(), 2_000);
    assert!(matches!(recorder.write_frame(&[0; 160]), Err(RecordError::WrongFrameLength { .. })));
    let recording = recorder.stop().unwrap();
    assert_eq!(recording.path, recordings.join("room-42_2026.wav"));
    assert_eq!((recording.samples, recording.duration_ms), (32_000, 2_000));

    let audio = wav::read(&recording.path).unwrap();
    assert_eq!(audio.sample_rate, 16_000);
    let (a, b) = audio.samples.split_at(16_000);
    assert!(goertzel_amplitude(a, 16_000, 440.0) > 5_500.0);
    assert!(goertzel_amplitude(a, 16_000, 1_700.0) < 100.0);
    assert!(goertzel_amplitude(b, 16_000, 1_700.0) > 5_500.0);
    assert!(goertzel_amplitude(b, 16_000, 440.0) < 100.0);

    // Never overwritten; names cannot leave the directory.
    assert!(matches!(
        Recorder::start(&recordings, "room-42_2026", 16_000),
        Err(RecordError::AlreadyExists(_))
    ));
    for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
        assert!(
            matches!(Recorder::start(&recordings, bad, 8_000), Err(RecordError::InvalidName(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Recorder::start(&recordings, "r", 8_001),
        Err(RecordError::UnsupportedRate(8_001))
    ));
}

#[test]
fn a_recording_in_progress_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut recorder = Recorder::start(dir.path(), "live", 8_000).unwrap();
    let pcm = sine(160 * 300, 8_000, 1_000.0, 4_000.0);
    for frame in pcm.chunks(160) {
        recorder.write_frame(frame).unwrap();
    }
    // The header was refreshed after 250 frames (5 s): at least that much is valid now.
    let audio = wav::read(recorder.path()).unwrap();
    assert!(audio.samples.len() >= 160 * 250);
    assert_eq!(&audio.samples[..1000], &pcm[..1000]);
    drop(recorder);
    assert_eq!(wav::read(&dir.path().join("live.wav")).unwrap().samples, pcm);
}
