//! Uploaded sounds: every accepted encoding converted to 16-bit mono at a
//! prompt rate with its tone intact, and every lie or unsupported format refused
//! with a reason.

use tutti_media::codec::g711;
use tutti_media::tone::goertzel_amplitude;
use tutti_media::wav::{self, MAX_UPLOAD_MS, convert_upload};

/// A WAV file: `tag`, `channels`, `rate`, `bits`, and the data bytes.
fn file(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    let align = channels * (bits / 8);
    out.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn tone(rate: u32, freq: f64, ms: u32) -> Vec<i16> {
    let n = rate * ms / 1000;
    (0..n)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * freq * f64::from(i) / f64::from(rate)).sin())
                as i16
        })
        .collect()
}

fn check(upload: &wav::Upload, freq: f64, ms: u64) {
    let audio = wav::parse(&upload.wav).expect("the converted file reads as a prompt");
    assert_eq!(audio.channels, 1);
    assert_eq!(audio.sample_rate, upload.sample_rate);
    assert!(upload.duration_ms.abs_diff(ms) <= ms / 50, "{} ms, {ms} expected", upload.duration_ms);
    let level = goertzel_amplitude(&audio.samples, audio.sample_rate, freq);
    let off = goertzel_amplitude(&audio.samples, audio.sample_rate, freq * 1.5);
    assert!(level > 1000.0 && off < level / 20.0, "tone {level:.0}, elsewhere {off:.0}");
}

#[test]
fn every_accepted_encoding_keeps_its_tone() {
    let pcm16: Vec<u8> = tone(8000, 440.0, 500).iter().flat_map(|s| s.to_le_bytes()).collect();
    let up = convert_upload(&file(1, 1, 8000, 16, &pcm16)).expect("pcm16");
    assert_eq!((up.encoding, up.sample_rate), ("pcm16", 8000));
    check(&up, 440.0, 500);

    let ulaw: Vec<u8> = tone(8000, 700.0, 400).iter().map(|&s| g711::linear_to_ulaw(s)).collect();
    let up = convert_upload(&file(7, 1, 8000, 8, &ulaw)).expect("ulaw");
    assert_eq!(up.encoding, "ulaw");
    check(&up, 700.0, 400);

    let alaw: Vec<u8> = tone(8000, 700.0, 400).iter().map(|&s| g711::linear_to_alaw(s)).collect();
    let up = convert_upload(&file(6, 1, 8000, 8, &alaw)).expect("alaw");
    check(&up, 700.0, 400);

    let pcm8: Vec<u8> = tone(11025, 500.0, 300).iter().map(|&s| ((s >> 8) + 128) as u8).collect();
    let up = convert_upload(&file(1, 1, 11025, 8, &pcm8)).expect("pcm8");
    assert_eq!((up.encoding, up.sample_rate, up.original_rate), ("pcm8", 16000, 11025));
    check(&up, 500.0, 300);

    let stereo: Vec<u8> = tone(44100, 1000.0, 200)
        .iter()
        .flat_map(|s| [s.to_le_bytes(), s.to_le_bytes()])
        .flatten()
        .collect();
    let up = convert_upload(&file(1, 2, 44100, 16, &stereo)).expect("stereo 44.1 kHz");
    assert_eq!((up.sample_rate, up.original_channels), (48000, 2));
    check(&up, 1000.0, 200);
}

#[test]
fn lies_and_unsupported_formats_are_refused_with_a_reason() {
    let pcm: Vec<u8> = tone(8000, 440.0, 100).iter().flat_map(|s| s.to_le_bytes()).collect();
    let good = file(1, 1, 8000, 16, &pcm);
    let refused = |bytes: &[u8], needle: &str| {
        let e = convert_upload(bytes).expect_err(needle);
        assert!(e.0.contains(needle), "{:?} does not say {needle:?}", e.0);
    };
    refused(b"hello", "not a WAV");
    refused(b"RIFF\x10\0\0\0AVI LIST", "not WAVE");
    // The data chunk claims more than follows.
    let mut long = good.clone();
    long[40..44].copy_from_slice(&100_000u32.to_le_bytes());
    refused(&long, "only");
    // The RIFF size claims more than the file.
    let mut riff = good.clone();
    riff[4..8].copy_from_slice(&100_000u32.to_le_bytes());
    refused(&riff, "RIFF header claims");
    // Truncated in the middle of the data.
    refused(&good[..good.len() - 10], "RIFF header claims");
    refused(&file(3, 1, 8000, 32, &[0; 64]), "format tag 0x0003");
    refused(&file(1, 1, 8000, 24, &[0; 60]), "24-bit");
    refused(&file(1, 3, 8000, 16, &[0; 60]), "3 channels");
    refused(&file(1, 1, 4000, 16, &[0; 60]), "4000 Hz");
    refused(&file(1, 1, 96000, 16, &[0; 60]), "96000 Hz");
    refused(&file(1, 1, 8000, 16, &[]), "no audio");
    let mut no_data = good[..36].to_vec();
    no_data[4..8].copy_from_slice(&28u32.to_le_bytes());
    refused(&no_data, "no data chunk");
    // Longer than ten minutes (mu-law keeps it small).
    let minutes = (MAX_UPLOAD_MS / 1000 + 1) as usize * 8000;
    refused(&file(7, 1, 8000, 8, &vec![0xFF; minutes]), "at most 600 s");
    refused(&vec![0; wav::MAX_UPLOAD_BYTES + 1], "larger than");
}
