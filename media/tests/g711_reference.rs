//! Exhaustive check of the in-house G.711 against CPython's `audioop`: every one of the
//! 65,536 16-bit inputs through both encoders and every one of the 256 code words
//! through both decoders. The reference tables are made by `data/make_g711_tables.py`.

use tutti_media::codec::{Codec, Pcma, Pcmu, g711};

const ULAW_ENCODE: &[u8] = include_bytes!("data/ulaw_encode.bin");
const ALAW_ENCODE: &[u8] = include_bytes!("data/alaw_encode.bin");
const ULAW_DECODE: &[u8] = include_bytes!("data/ulaw_decode.bin");
const ALAW_DECODE: &[u8] = include_bytes!("data/alaw_decode.bin");

fn all_samples() -> impl Iterator<Item = i16> {
    i16::MIN..=i16::MAX
}

fn decode_table(bytes: &[u8]) -> Vec<i16> {
    assert_eq!(bytes.len(), 512, "decode table must hold 256 little-endian i16");
    bytes.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect()
}

fn assert_encoder_matches(name: &str, table: &[u8], encode: fn(i16) -> u8) {
    assert_eq!(table.len(), 65_536, "{name}: reference table size");
    let mismatches: Vec<(i16, u8, u8)> = all_samples()
        .zip(table)
        .map(|(sample, &expected)| (sample, encode(sample), expected))
        .filter(|(_, got, expected)| got != expected)
        .collect();
    assert!(
        mismatches.is_empty(),
        "{name}: {} of 65536 inputs differ from audioop, first (input, ours, audioop): {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

fn assert_decoder_matches(name: &str, table: &[u8], decode: fn(u8) -> i16) {
    let table = decode_table(table);
    for code in 0..=255u8 {
        assert_eq!(decode(code), table[usize::from(code)], "{name}: code word {code:#04x}");
    }
}

#[test]
fn ulaw_encoder_matches_audioop_on_every_input() {
    assert_encoder_matches("lin2ulaw", ULAW_ENCODE, g711::linear_to_ulaw);
}

#[test]
fn alaw_encoder_matches_audioop_on_every_input() {
    assert_encoder_matches("lin2alaw", ALAW_ENCODE, g711::linear_to_alaw);
}

#[test]
fn ulaw_decoder_matches_audioop_on_every_code() {
    assert_decoder_matches("ulaw2lin", ULAW_DECODE, g711::ulaw_to_linear);
}

#[test]
fn alaw_decoder_matches_audioop_on_every_code() {
    assert_decoder_matches("alaw2lin", ALAW_DECODE, g711::alaw_to_linear);
}

/// The codec objects must use the same tables as the functions: run every input
/// through `Codec::encode`/`decode` frame by frame.
#[test]
fn codec_objects_match_audioop_frame_by_frame() {
    let samples: Vec<i16> = all_samples().collect();
    let ulaw_decode = decode_table(ULAW_DECODE);
    let alaw_decode = decode_table(ALAW_DECODE);
    let mut pcmu = Pcmu::new();
    let mut pcma = Pcma::new();
    let mut payload = [0u8; 160];
    let mut pcm = [0i16; 160];
    for (index, frame) in samples.chunks_exact(160).enumerate() {
        let range = index * 160..(index + 1) * 160;

        assert_eq!(pcmu.encode(frame, &mut payload), Ok(160));
        assert_eq!(&payload[..], &ULAW_ENCODE[range.clone()]);
        assert_eq!(pcmu.decode(&payload, &mut pcm), Ok(160));
        let expected: Vec<i16> = payload.iter().map(|&b| ulaw_decode[usize::from(b)]).collect();
        assert_eq!(&pcm[..], &expected[..]);

        assert_eq!(pcma.encode(frame, &mut payload), Ok(160));
        assert_eq!(&payload[..], &ALAW_ENCODE[range]);
        assert_eq!(pcma.decode(&payload, &mut pcm), Ok(160));
        let expected: Vec<i16> = payload.iter().map(|&b| alaw_decode[usize::from(b)]).collect();
        assert_eq!(&pcm[..], &expected[..]);
    }
}

/// G.711 decoding then re-encoding must give back the same code word (except mu-law's
/// negative zero 0x7F, which decodes to 0 and re-encodes as positive zero 0xFF).
#[test]
fn decode_then_encode_is_identity_on_code_words() {
    for code in 0..=255u8 {
        assert_eq!(g711::linear_to_alaw(g711::alaw_to_linear(code)), code);
        let back = g711::linear_to_ulaw(g711::ulaw_to_linear(code));
        if code == 0x7F {
            assert_eq!(back, 0xFF);
        } else {
            assert_eq!(back, code, "mu-law code {code:#04x}");
        }
    }
}
