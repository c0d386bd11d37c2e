//! Interop with Debian's opus-tools (the reference `opusenc`/`opusdec`, built on
//! libopus): a tone encoded by `opusenc` decodes through our codec, and our packets in
//! an Ogg Opus file decode through `opusdec`. Skipped with a message when opus-tools is
//! not installed; the in-process tests in opus_codec.rs cover libopus either way.

use std::path::Path;
use std::process::Command;

use tutti_media::codec::Codec;
use tutti_media::opus::{FRAME_SAMPLES, MAX_PAYLOAD_BYTES, Opus, OpusBackend, OpusConfig};
use tutti_media::tone::{goertzel_amplitude, rms};
use tutti_media::wav::{self, WavWriter};

const RATE: u32 = 48_000;

fn tools_available() -> bool {
    let found = ["opusenc", "opusdec"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()));
    if !found {
        eprintln!("SKIPPED: opus-tools (opusenc, opusdec) is not installed");
    }
    found
}

fn tone(samples: usize, freq: f64, amplitude: f64) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(RATE)).sin())
                as i16
        })
        .collect()
}

fn assert_tone(pcm: &[i16], freq: f64, amplitude: f64, what: &str) {
    let level_db = 20.0 * (rms(pcm) / (amplitude / 2f64.sqrt())).log10();
    assert!(level_db.abs() < 2.0, "{what}: level off by {level_db:.1} dB");
    let at_tone = goertzel_amplitude(pcm, RATE, freq);
    assert!(at_tone > 0.8 * amplitude, "{what}: tone at {at_tone:.0}");
    for other in [freq / 2.0, freq * 2.0] {
        let leak = goertzel_amplitude(pcm, RATE, other);
        assert!(leak < at_tone / 30.0, "{what}: {other} Hz at {leak:.0}");
    }
}

/// The packets of the first logical stream of an Ogg file (RFC 3533), in order.
fn ogg_packets(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 27 && &bytes[at..at + 4] == b"OggS" {
        let segments = usize::from(bytes[at + 26]);
        let table = &bytes[at + 27..at + 27 + segments];
        let mut data = at + 27 + segments;
        for &len in table {
            current.extend_from_slice(&bytes[data..data + usize::from(len)]);
            data += usize::from(len);
            if len < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = data;
    }
    packets
}

/// The Ogg CRC-32: polynomial 0x04C11DB7, not reflected, zero initial value.
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
    }
    crc
}

/// One Ogg page holding one packet (shorter than 255 * 255 bytes).
fn ogg_page(out: &mut Vec<u8>, flags: u8, granule: u64, sequence: u32, packet: &[u8]) {
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&0x7475_7474u32.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    out.push(lacing.len() as u8);
    out.extend_from_slice(&lacing);
    out.extend_from_slice(packet);
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// An Ogg Opus file (RFC 7845) of mono 48 kHz packets of 20 ms each.
fn ogg_opus(packets: &[Vec<u8>], pre_skip: u16) -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(1);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&RATE.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&5u32.to_le_bytes());
    tags.extend_from_slice(b"tutti");
    tags.extend_from_slice(&0u32.to_le_bytes());
    let mut out = Vec::new();
    ogg_page(&mut out, 0x02, 0, 0, &head);
    ogg_page(&mut out, 0, 0, 1, &tags);
    for (i, packet) in packets.iter().enumerate() {
        let last = i + 1 == packets.len();
        let granule = (i as u64 + 1) * FRAME_SAMPLES as u64;
        ogg_page(&mut out, if last { 0x04 } else { 0 }, granule, i as u32 + 2, packet);
    }
    out
}

fn run(command: &mut Command) {
    let output = command.output().expect("the tool runs");
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn opusenc_output_decodes_through_every_backend() {
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tone.wav");
    let mut writer = WavWriter::create(&input, RATE).unwrap();
    writer.write(&tone(RATE as usize, 1_000.0, 8_000.0)).unwrap();
    writer.finish().unwrap();
    let encoded = dir.path().join("tone.opus");
    run(Command::new("opusenc").args(["--quiet", "--bitrate", "40"]).arg(&input).arg(&encoded));
    let packets = ogg_packets(&std::fs::read(&encoded).unwrap());
    assert!(packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
    for &backend in OpusBackend::available() {
        let mut decoder = Opus::with_config(backend, OpusConfig::default()).unwrap();
        let mut pcm = Vec::new();
        let mut out = [0i16; tutti_media::opus::MAX_PACKET_SAMPLES];
        for packet in &packets[2..] {
            let n = decoder.decode(packet, &mut out).unwrap();
            pcm.extend_from_slice(&out[..n]);
        }
        assert!(pcm.len() >= RATE as usize);
        assert_tone(&pcm[4_800..40_000], 1_000.0, 8_000.0, &format!("opusenc -> {backend:?}"));
    }
}

#[test]
fn our_packets_decode_through_opusdec() {
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for &backend in OpusBackend::available() {
        let mut encoder = Opus::with_config(backend, OpusConfig::default()).unwrap();
        let pcm = tone(50 * FRAME_SAMPLES, 700.0, 8_000.0);
        let packets: Vec<Vec<u8>> = pcm
            .chunks(FRAME_SAMPLES)
            .map(|frame| {
                let mut payload = [0u8; MAX_PAYLOAD_BYTES];
                let len = encoder.encode(frame, &mut payload).unwrap();
                payload[..len].to_vec()
            })
            .collect();
        let file = dir.path().join(format!("{backend:?}.opus"));
        std::fs::write(&file, ogg_opus(&packets, 312)).unwrap();
        let decoded = dir.path().join(format!("{backend:?}.wav"));
        run(Command::new("opusdec").args(["--quiet", "--rate", "48000"]).arg(&file).arg(&decoded));
        let audio = wav::read(Path::new(&decoded)).unwrap();
        assert_eq!(audio.sample_rate, RATE);
        assert!(audio.samples.len() > 40 * FRAME_SAMPLES);
        assert_tone(
            &audio.samples[4_800..40_000],
            700.0,
            8_000.0,
            &format!("{backend:?} -> opusdec"),
        );
    }
}
