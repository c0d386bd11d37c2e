//! Opus through the `Codec` trait: a tone keeps its frequency and level, concealment
//! and FEC fill a lost frame with signal, DTX frames decode, and (with the `libopus`
//! feature) opus-rs and libopus decode each other's packets.

use tutti_media::codec::{Codec, CodecKind};
use tutti_media::opus::{
    FRAME_SAMPLES, MAX_PAYLOAD_BYTES, Opus, OpusBackend, OpusConfig, SAMPLE_RATE, is_dtx,
};
use tutti_media::tone::{goertzel_amplitude, rms};

const RATE: u32 = SAMPLE_RATE;

fn tone(frames: usize, freq: f64, amplitude: f64) -> Vec<i16> {
    (0..frames * FRAME_SAMPLES)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(RATE)).sin())
                as i16
        })
        .collect()
}

fn codec(backend: OpusBackend) -> Opus {
    Opus::with_config(backend, OpusConfig::default()).expect("default settings are valid")
}

/// Encodes `pcm` with `encoder`, returning each frame's payload.
fn encode_all(encoder: &mut Opus, pcm: &[i16]) -> Vec<Vec<u8>> {
    pcm.chunks(FRAME_SAMPLES)
        .map(|frame| {
            let mut payload = [0u8; MAX_PAYLOAD_BYTES];
            let len = encoder.encode(frame, &mut payload).expect("encode");
            payload[..len].to_vec()
        })
        .collect()
}

fn decode_all(decoder: &mut Opus, packets: &[Vec<u8>]) -> Vec<i16> {
    let mut out = Vec::new();
    for packet in packets {
        let mut frame = [0i16; FRAME_SAMPLES];
        let n = decoder.decode(packet, &mut frame).expect("decode");
        assert_eq!(n, FRAME_SAMPLES);
        out.extend_from_slice(&frame);
    }
    out
}

/// Checks that `decoded` (past the codec's start-up) is a `freq` tone at about the level
/// of `reference`: the tone dominates other frequencies and the RMS is within 2 dB.
fn assert_same_tone(reference: &[i16], decoded: &[i16], freq: f64, what: &str) {
    // Skip 100 ms of encoder and decoder start-up.
    let start = 5 * FRAME_SAMPLES;
    let window = &decoded[start..];
    let expected = rms(&reference[start..]);
    let level_db = 20.0 * (rms(window) / expected).log10();
    assert!(level_db.abs() < 2.0, "{what}: level off by {level_db:.1} dB");
    let at_tone = goertzel_amplitude(window, RATE, freq);
    for other in [freq * 0.5, freq * 1.5, freq * 2.0, 3_000.0] {
        let leak = goertzel_amplitude(window, RATE, other);
        assert!(leak < at_tone / 30.0, "{what}: {other} Hz at {leak:.0} vs {at_tone:.0} at {freq}");
    }
    assert!(at_tone > 0.8 * expected * 2f64.sqrt(), "{what}: tone amplitude {at_tone:.0}");
}

#[test]
fn a_tone_keeps_its_frequency_and_level_on_every_backend() {
    for &backend in OpusBackend::available() {
        for freq in [440.0, 1_000.0, 1_700.0] {
            let pcm = tone(25, freq, 8_000.0);
            let mut encoder = codec(backend);
            let mut decoder = codec(backend);
            let packets = encode_all(&mut encoder, &pcm);
            // 40 kbit/s, variable: about 100 bytes a frame, never near the maximum.
            assert!(packets.iter().all(|p| p.len() > 10 && p.len() < 400), "{backend:?}");
            let decoded = decode_all(&mut decoder, &packets);
            assert_same_tone(&pcm, &decoded, freq, &format!("{backend:?} {freq} Hz"));
        }
    }
}

#[test]
fn concealment_after_a_loss_is_not_silence() {
    for &backend in OpusBackend::available() {
        let pcm = tone(15, 600.0, 8_000.0);
        let mut encoder = codec(backend);
        let mut decoder = codec(backend);
        let packets = encode_all(&mut encoder, &pcm);
        decode_all(&mut decoder, &packets[..10]);
        let mut concealed = [0i16; FRAME_SAMPLES];
        assert_eq!(decoder.conceal(&mut concealed), Ok(FRAME_SAMPLES));
        let level = rms(&concealed);
        assert!(level > 1_000.0, "{backend:?}: concealed frame RMS {level:.0}");
        assert!(goertzel_amplitude(&concealed, RATE, 600.0) > 1_000.0, "{backend:?}");
        // And decoding goes on normally after it.
        let after = decode_all(&mut decoder, &packets[11..]);
        assert!(rms(&after) > 3_000.0);
    }
}

#[test]
fn fec_rebuilds_a_lost_frame_from_the_next_packet() {
    for &backend in OpusBackend::available() {
        let pcm = tone(20, 500.0, 8_000.0);
        let mut encoder = codec(backend);
        let mut decoder = codec(backend);
        let packets = encode_all(&mut encoder, &pcm);
        decode_all(&mut decoder, &packets[..12]);
        // Packet 12 is lost; packet 13 carries its low-bit-rate copy.
        let mut recovered = [0i16; FRAME_SAMPLES];
        assert_eq!(decoder.conceal_from_next(&packets[13], &mut recovered), Ok(FRAME_SAMPLES));
        let level = rms(&recovered);
        assert!(level > 2_000.0, "{backend:?}: recovered frame RMS {level:.0}");
        assert!(goertzel_amplitude(&recovered, RATE, 500.0) > 2_000.0, "{backend:?}");
        let after = decode_all(&mut decoder, &packets[13..]);
        assert!(rms(&after) > 3_000.0);
    }
}

#[test]
fn toc_only_dtx_packets_decode_to_a_full_frame() {
    for &backend in OpusBackend::available() {
        let pcm = tone(10, 400.0, 4_000.0);
        let mut encoder = codec(backend);
        let mut decoder = codec(backend);
        let packets = encode_all(&mut encoder, &pcm);
        decode_all(&mut decoder, &packets);
        // What a DTX sender emits for a silent frame: the TOC alone.
        let dtx = [packets[9][0]];
        assert!(is_dtx(&dtx));
        let mut out = [0i16; FRAME_SAMPLES];
        assert_eq!(decoder.decode(&dtx, &mut out), Ok(FRAME_SAMPLES), "{backend:?}");
    }
}

#[test]
fn mutated_packets_never_panic_a_decoder() {
    let pcm = tone(20, 900.0, 8_000.0);
    for &encoder_backend in OpusBackend::available() {
        let packets = encode_all(&mut codec(encoder_backend), &pcm);
        for &backend in OpusBackend::available() {
            let mut decoder = codec(backend);
            let mut seed = 0x9E37_79B9u32;
            let mut out = [0i16; tutti_media::opus::MAX_PACKET_SAMPLES];
            for round in 0..1_500 {
                let mut packet = packets[round % packets.len()].clone();
                for _ in 0..1 + round % 4 {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let at = (seed >> 8) as usize % packet.len();
                    packet[at] ^= (seed >> 24) as u8 | 1;
                }
                if round % 5 == 0 {
                    packet.truncate(1 + (seed as usize >> 4) % packet.len());
                }
                // Errors are fine; panics are not. Decoding must go on afterwards.
                let _ = decoder.decode(&packet, &mut out);
                let _ = decoder.conceal_from_next(&packet, &mut out);
            }
            let good = decode_all(&mut decoder, &packets);
            assert!(rms(&good[10 * FRAME_SAMPLES..]) > 3_000.0, "{backend:?} recovers");
        }
    }
}

#[test]
fn new_codec_uses_the_default_backend() {
    let codec = CodecKind::Opus.new_codec();
    assert_eq!(codec.kind(), CodecKind::Opus);
    assert_eq!(Opus::new().backend(), OpusBackend::DEFAULT);
}

#[cfg(feature = "libopus")]
mod with_libopus {
    use super::*;

    #[test]
    fn opus_rs_and_libopus_decode_each_other() {
        for (from, to) in [
            (OpusBackend::PureRust, OpusBackend::Libopus),
            (OpusBackend::Libopus, OpusBackend::PureRust),
        ] {
            for freq in [440.0, 1_000.0] {
                let pcm = tone(25, freq, 8_000.0);
                let packets = encode_all(&mut codec(from), &pcm);
                let decoded = decode_all(&mut codec(to), &packets);
                assert_same_tone(&pcm, &decoded, freq, &format!("{from:?} -> {to:?} {freq} Hz"));
            }
        }
    }

    #[test]
    fn fec_and_concealment_work_across_backends() {
        for (from, to) in [
            (OpusBackend::PureRust, OpusBackend::Libopus),
            (OpusBackend::Libopus, OpusBackend::PureRust),
        ] {
            let pcm = tone(20, 500.0, 8_000.0);
            let packets = encode_all(&mut codec(from), &pcm);
            let mut decoder = codec(to);
            decode_all(&mut decoder, &packets[..12]);
            let mut recovered = [0i16; FRAME_SAMPLES];
            decoder.conceal_from_next(&packets[13], &mut recovered).unwrap();
            assert!(rms(&recovered) > 2_000.0, "{from:?} -> {to:?} FEC");
            decode_all(&mut decoder, &packets[13..15]);
            let mut concealed = [0i16; FRAME_SAMPLES];
            decoder.conceal(&mut concealed).unwrap();
            assert!(rms(&concealed) > 1_000.0, "{from:?} -> {to:?} PLC");
        }
    }

    #[test]
    fn libopus_dtx_stops_sending_in_silence_and_both_decoders_accept_it() {
        let config = OpusConfig { dtx: true, ..OpusConfig::default() };
        let mut encoder = Opus::with_config(OpusBackend::Libopus, config).unwrap();
        let mut speech = tone(10, 400.0, 6_000.0);
        speech.extend(std::iter::repeat_n(0i16, 40 * FRAME_SAMPLES));
        let packets = encode_all(&mut encoder, &speech);
        assert!(packets[..10].iter().all(|p| !is_dtx(p)));
        let silent = packets[10..].iter().filter(|p| is_dtx(p)).count();
        // After a few frames of hangover, most silent frames need not be sent.
        assert!(silent > 20, "only {silent} of 40 silent frames were DTX");
        for backend in [OpusBackend::PureRust, OpusBackend::Libopus] {
            let mut decoder = codec(backend);
            let decoded = decode_all(&mut decoder, &packets);
            // Comfort noise at most: far below the speech.
            assert!(rms(&decoded[45 * FRAME_SAMPLES..]) < 100.0, "{backend:?}");
        }
    }
}

/// Per-frame cost of encode plus decode on each backend. Run with
/// `cargo test --release -p tutti-media --features libopus --test opus_codec -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check; run on purpose in release mode"]
fn per_frame_timing() {
    let pcm = tone(500, 440.0, 8_000.0);
    for &backend in OpusBackend::available() {
        let mut encoder = codec(backend);
        let mut decoder = codec(backend);
        let mut payload = [0u8; MAX_PAYLOAD_BYTES];
        let mut out = [0i16; FRAME_SAMPLES];
        let start = std::time::Instant::now();
        for frame in pcm.chunks(FRAME_SAMPLES) {
            let len = encoder.encode(frame, &mut payload).unwrap();
            decoder.decode(&payload[..len], &mut out).unwrap();
        }
        let per_frame = start.elapsed() / 500;
        println!("{backend:?}: encode+decode {per_frame:?} per 20 ms frame");
    }
}
