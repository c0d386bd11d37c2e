//! Mixer tick, codec, resampler and Opus decode-rate costs. Run with
//! `cargo bench -p tutti-media --bench mixer -- --warm-up-time 1 --measurement-time 3`;
//! results are recorded in docs/performance.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tutti_media::codec::CodecKind;
use tutti_media::mixer::{MemberId, Mixer, MixerConfig};
use tutti_media::resample::{FrameResampler, frame_len};

/// Speech-like level of a talking member's tone.
const TALK_AMPLITUDE: f64 = 3000.0;
/// Background noise of a silent member: well under the noise gate, as a phone on a
/// desk sends.
const NOISE_AMPLITUDE: i32 = 20;

fn tone(len: usize, rate: u32, freq: f64, amplitude: f64) -> Vec<i16> {
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

fn noise(len: usize, seed: u32) -> Vec<i16> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 16) as i32 % (2 * NOISE_AMPLITUDE + 1) - NOISE_AMPLITUDE) as i16
        })
        .collect()
}

/// A room of `size` members of `codecs` (round robin), the first `speakers` talking,
/// the rest sending background noise. Returns the mixer and each member's frame.
fn room(size: usize, speakers: usize, codecs: &[CodecKind]) -> (Mixer, Vec<(MemberId, Vec<i16>)>) {
    let mut mixer = Mixer::new(MixerConfig::default()).expect("default config is valid");
    let mut members = Vec::with_capacity(size);
    for i in 0..size {
        let codec = codecs[i % codecs.len()];
        let id = mixer.add_member(codec).expect("room below MAX_MEMBERS");
        let len = codec.samples_per_frame();
        let frame = if i < speakers {
            tone(len, codec.sample_rate(), 300.0 + 97.0 * i as f64, TALK_AMPLITUDE)
        } else {
            noise(len, i as u32)
        };
        members.push((id, frame));
    }
    (mixer, members)
}

fn tick(mixer: &mut Mixer, members: &[(MemberId, Vec<i16>)], now_ms: &mut u64) {
    for (id, frame) in members {
        mixer.push_frame(*id, frame).expect("frame of the member's length");
    }
    mixer.tick(*now_ms);
    *now_ms += 20;
    while mixer.poll_event().is_some() {}
    black_box(mixer.room_mix());
}

fn bench_mixer(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixer_tick");
    // (name, codecs round robin, room sizes, largest room benchmarked all speaking)
    let cases: [(&str, &[CodecKind], &[usize], usize); 4] = [
        ("pcmu", &[CodecKind::Pcmu], &[10, 100, 1000], 1000),
        ("g722", &[CodecKind::G722], &[1000], 1000),
        ("pcmu+g722", &[CodecKind::Pcmu, CodecKind::G722], &[1000], 1000),
        // Opus encodes cost ~100x G.711: 1000 all speaking would take seconds per tick.
        ("opus", &[CodecKind::Opus], &[10, 100, 1000], 100),
    ];
    for (name, codecs, sizes, all_up_to) in cases {
        for &size in sizes {
            for (label, speakers) in [("3_speakers", 3), ("all_speaking", size)] {
                if label == "all_speaking" && size > all_up_to {
                    continue;
                }
                let (mut mixer, members) = room(size, speakers, codecs);
                let mut now_ms = 0;
                // Warm up: gates open, talking detected, layouts settled.
                for _ in 0..10 {
                    tick(&mut mixer, &members, &mut now_ms);
                }
                group.bench_with_input(
                    BenchmarkId::new(format!("{name}/{label}"), size),
                    &size,
                    |b, _| b.iter(|| tick(&mut mixer, &members, &mut now_ms)),
                );
            }
        }
    }
    group.finish();
}

fn bench_codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_encode_decode_20ms");
    for kind in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722, CodecKind::Opus] {
        let mut codec = kind.new_codec();
        let pcm = tone(kind.samples_per_frame(), kind.sample_rate(), 1000.0, 8000.0);
        let mut payload = vec![0u8; kind.bytes_per_frame()];
        let mut out = vec![0i16; kind.samples_per_frame()];
        group.bench_function(format!("{kind:?}"), |b| {
            b.iter(|| {
                let n = codec.encode(black_box(&pcm), &mut payload).expect("one frame");
                codec.decode(black_box(&payload[..n]), &mut out).expect("room for one frame");
            });
        });
    }
    group.finish();
}

fn bench_resampler(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_20ms");
    for (from, to) in
        [(8000, 16_000), (16_000, 8000), (8000, 48_000), (48_000, 8000), (16_000, 48_000)]
    {
        let mut resampler = FrameResampler::new(from, to).expect("supported rates");
        let input = tone(frame_len(from), from, 1000.0, 8000.0);
        let mut out = vec![0i16; frame_len(to)];
        group.bench_function(format!("{from}->{to}"), |b| {
            b.iter(|| resampler.process(black_box(&input), &mut out).expect("one frame"));
        });
    }
    group.finish();
}

/// What one 20 ms Opus frame costs opus-rs to decode at each output rate it
/// offers, for a stream of tutti's own encoder (default settings): silence and
/// a tone. tutti decodes every Opus leg at 48 kHz today; this says what
/// decoding at a room's lower rate would save (docs/performance.md).
fn bench_opus_decode_rate(c: &mut Criterion) {
    let mut group = c.benchmark_group("opus_decode_20ms_at");
    let kind = CodecKind::Opus;
    let len = kind.samples_per_frame();
    let inputs = [
        ("silence", vec![0i16; len * FRAMES]),
        ("tone", tone(len * FRAMES, kind.sample_rate(), 480.0, 8000.0)),
    ];
    for (name, pcm) in inputs {
        let mut encoder = kind.new_codec();
        let mut payload = vec![0u8; 1500];
        let packets: Vec<Vec<u8>> = pcm
            .chunks(len)
            .map(|frame| {
                let n = encoder.encode(frame, &mut payload).expect("one frame");
                payload[..n].to_vec()
            })
            .collect();
        for rate in [48_000, 24_000, 16_000, 8000] {
            let mut decoder = opus_rs::OpusDecoder::new(rate, 1).expect("a rate Opus offers");
            let samples = rate as usize / 50;
            let mut out = vec![0f32; samples];
            let mut next = packets.iter().cycle();
            group.bench_function(format!("{name}/{rate}"), |b| {
                b.iter(|| {
                    let packet = next.next().expect("a cycle never ends");
                    decoder.decode(black_box(packet), samples, &mut out).expect("one frame")
                });
            });
        }
    }
    group.finish();
}

/// Frames in each input of [`bench_opus_decode_rate`]: 5 s, cycled.
const FRAMES: usize = 250;

criterion_group!(benches, bench_mixer, bench_codecs, bench_resampler, bench_opus_decode_rate);
criterion_main!(benches);
