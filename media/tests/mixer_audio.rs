//! Audio-level tests of the conference mixer: every member sends its own tone, and a
//! Goertzel filter on what each member receives tells who it hears and how loud.

use tutti_media::codec::{Codec, CodecKind};
use tutti_media::mixer::{
    BreakoutId, Delivery, IDLE_RELEASE_TICKS, InjectTarget, MemberId, Mixer, MixerConfig,
    MixerEvent, RoomRate, SILENCE_ENCODED_TICKS, VolumeStep,
};

/// A tone amplitude that leaves headroom for a few talkers and +12 dB of volume.
const AMPLITUDE: f64 = 4000.0;
/// A tone this far below its sent level is "not heard".
const INAUDIBLE_DB: f64 = -35.0;
/// Ticks run before measuring, so gates, resamplers and codecs have settled.
const WARM_UP_TICKS: usize = 10;
/// Ticks measured: 200 ms, a 5 Hz Goertzel resolution, so every test frequency (a
/// multiple of 5 Hz) falls on a bin.
const MEASURE_TICKS: usize = 10;

/// The amplitude of the `freq` component of `samples`, by the Goertzel algorithm.
fn goertzel_amplitude(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let n = samples.len() as f64;
    let k = (n * freq / f64::from(rate)).round();
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * k / n).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    2.0 * power.sqrt() / n
}

fn db(amplitude: f64, reference: f64) -> f64 {
    20.0 * (amplitude.max(1e-9) / reference).log10()
}

/// One member of a test room.
struct TestMember {
    id: MemberId,
    codec: CodecKind,
    freq: f64,
    amplitude: f64,
    speaking: bool,
    /// Frames go through encode and decode on the way in and out, as on the wire.
    through_codec: bool,
    tx_encoder: Box<dyn Codec>,
    tx_decoder: Box<dyn Codec>,
    rx_decoder: Box<dyn Codec>,
    sent: usize,
    received: Vec<i16>,
}

struct Room {
    mixer: Mixer,
    members: Vec<TestMember>,
    now_ms: u64,
}

impl Room {
    fn new(config: MixerConfig) -> Self {
        Self { mixer: Mixer::new(config).unwrap(), members: Vec::new(), now_ms: 0 }
    }

    /// Adds a member sending `freq` (0 for a silent listener); returns its index.
    fn add(&mut self, codec: CodecKind, freq: f64, through_codec: bool) -> usize {
        let id = self.mixer.add_member(codec).unwrap();
        self.members.push(TestMember {
            id,
            codec,
            freq,
            amplitude: AMPLITUDE,
            speaking: freq > 0.0,
            through_codec,
            tx_encoder: codec.new_codec(),
            tx_decoder: codec.new_codec(),
            rx_decoder: codec.new_codec(),
            sent: 0,
            received: Vec::new(),
        });
        self.members.len() - 1
    }

    fn id(&self, member: usize) -> MemberId {
        self.members[member].id
    }

    /// Pushes every member's next frame (tone or silence) without ticking.
    fn push_inputs(&mut self) {
        for m in &mut self.members {
            let len = m.codec.samples_per_frame();
            let rate = f64::from(m.codec.sample_rate());
            let mut frame: Vec<i16> = (0..len)
                .map(|i| {
                    if !m.speaking {
                        return 0;
                    }
                    let t = (m.sent + i) as f64 / rate;
                    (m.amplitude * (2.0 * std::f64::consts::PI * m.freq * t).sin()).round() as i16
                })
                .collect();
            m.sent += len;
            if m.through_codec {
                let mut payload = vec![0u8; m.codec.bytes_per_frame()];
                let n = m.tx_encoder.encode(&frame, &mut payload).unwrap();
                let decoded = m.tx_decoder.decode(&payload[..n], &mut frame).unwrap();
                assert_eq!(decoded, len);
            }
            self.mixer.push_frame(m.id, &frame).unwrap();
        }
    }

    /// Records what every member received in the last tick.
    fn collect_outputs(&mut self) {
        for m in &mut self.members {
            let out = self.mixer.output(m.id).unwrap();
            assert_eq!(out.codec, m.codec);
            if m.through_codec {
                let mut pcm = vec![0i16; m.codec.samples_per_frame()];
                let n = m.rx_decoder.decode(out.payload, &mut pcm).unwrap();
                assert_eq!(n, pcm.len());
                m.received.extend_from_slice(&pcm);
            } else {
                m.received.extend_from_slice(out.pcm);
            }
        }
    }

    fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.push_inputs();
            self.mixer.tick(self.now_ms);
            self.now_ms += 20;
            self.collect_outputs();
        }
    }

    /// Warms up, then measures: clears what was received before the measured ticks.
    fn settle_and_measure(&mut self) {
        self.run(WARM_UP_TICKS);
        for m in &mut self.members {
            m.received.clear();
        }
        self.run(MEASURE_TICKS);
    }

    /// The level, relative to the sent amplitude, at which `listener` hears `speaker`'s
    /// tone, in dB.
    fn hears_db(&self, listener: usize, speaker: usize) -> f64 {
        let l = &self.members[listener];
        let s = &self.members[speaker];
        let amplitude = goertzel_amplitude(&l.received, l.codec.sample_rate(), s.freq);
        db(amplitude, AMPLITUDE)
    }

    fn assert_hears(&self, listener: usize, speaker: usize, expected_db: f64, tolerance_db: f64) {
        let got = self.hears_db(listener, speaker);
        assert!(
            (got - expected_db).abs() <= tolerance_db,
            "member {listener} hears member {speaker} at {got:.2} dB, expected {expected_db:.1}"
        );
    }

    fn assert_not_hears(&self, listener: usize, speaker: usize) {
        let got = self.hears_db(listener, speaker);
        assert!(got < INAUDIBLE_DB, "member {listener} hears member {speaker} at {got:.1} dB");
    }

    fn silent(&self, member: usize) -> bool {
        self.members[member].received.iter().all(|&s| s == 0)
    }
}

/// No noise gate, so every frame that is not digital silence is mixed.
fn ungated() -> MixerConfig {
    MixerConfig { gate: None, ..MixerConfig::default() }
}

#[test]
fn everyone_hears_the_others_and_never_themselves() {
    let mut room = Room::new(MixerConfig::default());
    let members: Vec<usize> =
        [440.0, 1000.0, 1700.0].iter().map(|&f| room.add(CodecKind::Pcmu, f, false)).collect();
    room.settle_and_measure();
    for &listener in &members {
        for &speaker in &members {
            if listener == speaker {
                room.assert_not_hears(listener, speaker);
            } else {
                room.assert_hears(listener, speaker, 0.0, 0.1);
            }
        }
    }
    // Three speakers: three personal mix-minus frames, and one shared mix kept warm
    // for listeners that nobody receives.
    assert_eq!(room.mixer.personal_mix_count(), 3);
    assert_eq!(room.mixer.shared_mix_count(), 0);
}

#[test]
fn a_muted_member_is_heard_by_nobody_but_still_hears() {
    let mut room = Room::new(MixerConfig::default());
    let a = room.add(CodecKind::Pcmu, 440.0, false);
    let b = room.add(CodecKind::Pcmu, 1000.0, false);
    let c = room.add(CodecKind::Pcmu, 1700.0, false);
    room.mixer.set_muted(room.id(b), true).unwrap();
    room.settle_and_measure();
    room.assert_not_hears(a, b);
    room.assert_not_hears(c, b);
    room.assert_hears(b, a, 0.0, 0.1);
    room.assert_hears(b, c, 0.0, 0.1);
    room.assert_hears(a, c, 0.0, 0.1);
}

#[test]
fn a_deaf_member_hears_nothing_but_is_heard() {
    let mut room = Room::new(MixerConfig::default());
    let a = room.add(CodecKind::Pcma, 440.0, false);
    let b = room.add(CodecKind::Pcma, 1000.0, false);
    room.mixer.set_deaf(room.id(b), true).unwrap();
    room.settle_and_measure();
    assert!(room.silent(b));
    room.assert_hears(a, b, 0.0, 0.1);
}

#[test]
fn mike_and_listen_only_decide_who_may_speak() {
    let mut room = Room::new(MixerConfig::default());
    let a = room.add(CodecKind::Pcmu, 440.0, false);
    let no_mike = room.add(CodecKind::Pcmu, 1000.0, false);
    let listen_only = room.add(CodecKind::Pcmu, 1700.0, false);
    room.mixer.set_mike(room.id(no_mike), false).unwrap();
    room.mixer.set_listen_only(room.id(listen_only), true).unwrap();
    room.settle_and_measure();
    room.assert_not_hears(a, no_mike);
    room.assert_not_hears(a, listen_only);
    room.assert_hears(no_mike, a, 0.0, 0.1);
    room.assert_hears(listen_only, a, 0.0, 0.1);

    // In a breakout the mike does not matter; listen-only still does.
    let group = Some(BreakoutId(7));
    for member in [a, no_mike, listen_only] {
        room.mixer.set_breakout(room.id(member), group).unwrap();
    }
    room.settle_and_measure();
    room.assert_hears(a, no_mike, 0.0, 0.1);
    room.assert_not_hears(a, listen_only);
}

#[test]
fn breakouts_are_isolated_and_private_ones_do_not_hear_the_main_room() {
    let mut room = Room::new(MixerConfig::default());
    let main_a = room.add(CodecKind::Pcmu, 440.0, false);
    let main_b = room.add(CodecKind::Pcmu, 1000.0, false);
    let out_c = room.add(CodecKind::Pcmu, 1700.0, false);
    let out_d = room.add(CodecKind::Pcmu, 2300.0, false);
    let other_e = room.add(CodecKind::Pcmu, 3100.0, false);
    let (one, two) = (BreakoutId(1), BreakoutId(2));
    room.mixer.set_breakout(room.id(out_c), Some(one)).unwrap();
    room.mixer.set_breakout(room.id(out_d), Some(one)).unwrap();
    room.mixer.set_breakout(room.id(other_e), Some(two)).unwrap();
    room.settle_and_measure();

    // The main room hears only itself.
    room.assert_hears(main_a, main_b, 0.0, 0.1);
    for breakout_member in [out_c, out_d, other_e] {
        room.assert_not_hears(main_a, breakout_member);
        room.assert_not_hears(main_b, breakout_member);
    }
    // A breakout hears itself and the main room, not another breakout.
    room.assert_hears(out_c, out_d, 0.0, 0.1);
    room.assert_hears(out_c, main_a, 0.0, 0.1);
    room.assert_hears(out_c, main_b, 0.0, 0.1);
    room.assert_not_hears(out_c, other_e);
    room.assert_not_hears(out_c, out_c);
    room.assert_not_hears(other_e, out_c);
    room.assert_hears(other_e, main_a, 0.0, 0.1);

    room.mixer.set_breakout_private(one, true);
    room.settle_and_measure();
    room.assert_hears(out_c, out_d, 0.0, 0.1);
    room.assert_not_hears(out_c, main_a);
    room.assert_not_hears(out_d, main_b);
    room.assert_not_hears(main_a, out_c);
    room.assert_hears(other_e, main_a, 0.0, 0.1);

    // Back to the main room.
    room.mixer.set_breakout(room.id(out_c), None).unwrap();
    room.settle_and_measure();
    room.assert_hears(main_a, out_c, 0.0, 0.1);
    room.assert_not_hears(out_d, out_c);
}

#[test]
fn volume_steps_change_the_received_level_by_three_db() {
    for step in VolumeStep::MIN..=VolumeStep::MAX {
        let expected = 3.0 * step as f64;
        // Input volume: what the speaker says, as everyone hears it.
        let mut room = Room::new(MixerConfig::default());
        let speaker = room.add(CodecKind::Pcmu, 1000.0, false);
        let listener = room.add(CodecKind::Pcmu, 0.0, false);
        room.mixer.set_volume_in(room.id(speaker), VolumeStep::new(step).unwrap()).unwrap();
        room.settle_and_measure();
        room.assert_hears(listener, speaker, expected, 0.05);

        // Output volume: what the listener hears.
        let mut room = Room::new(MixerConfig::default());
        let speaker = room.add(CodecKind::Pcma, 1000.0, false);
        let listener = room.add(CodecKind::Pcma, 0.0, false);
        let other = room.add(CodecKind::Pcma, 0.0, false);
        room.mixer.set_volume_out(room.id(listener), VolumeStep::new(step).unwrap()).unwrap();
        room.settle_and_measure();
        room.assert_hears(listener, speaker, expected, 0.05);
        room.assert_hears(other, speaker, 0.0, 0.05);
    }
}

#[test]
fn the_mix_is_limited_not_wrapped() {
    let mut room = Room::new(ungated());
    // Eight in-phase full-scale talkers: the sum is eight times full scale.
    let listener = room.add(CodecKind::Pcmu, 0.0, false);
    for _ in 0..8 {
        let m = room.add(CodecKind::Pcmu, 500.0, false);
        room.members[m].amplitude = 32_000.0;
    }
    room.settle_and_measure();
    let received = &room.members[listener].received;
    let peak = received.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 32_000, "peak {peak}");
    // Wrap-around would flip the sign at the crest; the limiter keeps the waveform's
    // sign equal to the sine's.
    let rate = 8000.0;
    for (i, &s) in received.iter().enumerate() {
        let t = (i + WARM_UP_TICKS * 160) as f64 / rate;
        let sine = (2.0 * std::f64::consts::PI * 500.0 * t).sin();
        if sine.abs() > 0.1 {
            assert_eq!(s.signum(), sine.signum() as i16, "sample {i}");
        }
    }
}

#[test]
fn only_the_n_loudest_speakers_are_mixed() {
    let mut room = Room::new(MixerConfig { max_speakers: Some(2), ..MixerConfig::default() });
    let listener = room.add(CodecKind::Pcmu, 0.0, false);
    let quiet = room.add(CodecKind::Pcmu, 440.0, false);
    let loud = room.add(CodecKind::Pcmu, 1000.0, false);
    let medium = room.add(CodecKind::Pcmu, 1700.0, false);
    room.members[quiet].amplitude = 1000.0;
    room.members[medium].amplitude = 2000.0;
    room.settle_and_measure();
    room.assert_hears(listener, loud, 0.0, 0.1);
    room.assert_hears(listener, medium, -6.02, 0.1);
    room.assert_not_hears(listener, quiet);
    // The loud one hears the medium one but not the quiet one either.
    room.assert_hears(loud, medium, -6.02, 0.1);
    room.assert_not_hears(loud, quiet);
    // The quiet one, not mixed, hears the shared mix of the two loudest.
    room.assert_hears(quiet, loud, 0.0, 0.1);
    assert_eq!(room.mixer.personal_mix_count(), 2);
}

#[test]
fn the_n_loudest_do_not_flap_between_talkers_of_the_same_level() {
    let mut room = Room::new(MixerConfig { max_speakers: Some(1), ..MixerConfig::default() });
    let listener = room.add(CodecKind::Pcmu, 0.0, false);
    let first = room.add(CodecKind::Pcmu, 440.0, false);
    let second = room.add(CodecKind::Pcmu, 1000.0, false);
    room.members[second].speaking = false;
    room.run(5);
    // A second talker 1 dB louder does not take over from the one already mixed...
    room.members[second].speaking = true;
    room.members[second].amplitude = AMPLITUDE * 1.12;
    room.settle_and_measure();
    room.assert_hears(listener, first, 0.0, 0.1);
    room.assert_not_hears(listener, second);
    // ...one 6 dB louder does.
    room.members[second].amplitude = AMPLITUDE * 2.0;
    room.settle_and_measure();
    room.assert_hears(listener, second, 6.02, 0.1);
    room.assert_not_hears(listener, first);
}

#[test]
fn cost_follows_speakers_not_room_size() {
    let mut room = Room::new(MixerConfig::default());
    for i in 0..3 {
        room.add(CodecKind::Pcmu, 440.0 + 300.0 * f64::from(i), false);
    }
    for _ in 0..97 {
        room.add(CodecKind::Pcmu, 0.0, false);
    }
    room.run(3);
    assert_eq!(room.mixer.personal_mix_count(), 3);
    assert_eq!(room.mixer.shared_mix_count(), 1);
    let mut receivers = 0;
    for delivery in room.mixer.deliveries() {
        match delivery {
            Delivery::Shared { members, frame, .. } => {
                receivers += members.len();
                assert_eq!(frame.payload.len(), 160);
            }
            Delivery::Personal { frame, .. } => {
                receivers += 1;
                assert_eq!(frame.payload.len(), 160);
            }
        }
    }
    assert_eq!(receivers, 100);
}

/// The shared path must be an optimisation only: the same room with every member on a
/// personal mix gives the same PCM and payloads.
#[test]
fn shared_mixes_sound_exactly_like_personal_mixes() {
    let build = |shared_mixes: bool| {
        let mut room = Room::new(MixerConfig { shared_mixes, ..MixerConfig::default() });
        // Mixed rates (auto: 16 kHz), so the resamplers are on both paths.
        room.add(CodecKind::Pcmu, 440.0, false);
        room.add(CodecKind::G722, 1000.0, false);
        room.add(CodecKind::Pcma, 1700.0, false);
        for codec in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722, CodecKind::Pcmu] {
            room.add(codec, 0.0, false);
        }
        room
    };
    let mut shared = build(true);
    let mut reference = build(false);
    assert_eq!(shared.mixer.room_rate(), 16_000);
    for tick in 0..60 {
        // Speakers start and stop, so members move between the two paths.
        for room in [&mut shared, &mut reference] {
            room.members[0].speaking = (tick / 10) % 2 == 0;
            room.members[1].speaking = (tick / 15) % 2 == 1;
            room.members[2].speaking = tick >= 20;
            room.push_inputs();
            room.mixer.tick(tick * 20);
        }
        assert_eq!(reference.mixer.personal_mix_count(), 7);
        for m in 0..7 {
            let id = shared.id(m);
            let a = shared.mixer.output(id).unwrap();
            let b = reference.mixer.output(reference.id(m)).unwrap();
            let listener_only = m >= 3;
            let personal_now = shared
                .mixer
                .deliveries()
                .any(|d| matches!(d, Delivery::Personal { member, .. } if member == id));
            if listener_only || personal_now {
                assert_eq!(a.pcm, b.pcm, "tick {tick}, member {m}: PCM differs");
            }
            // G.722 keeps ADPCM state: payloads only match for members that never switch.
            if listener_only || a.codec != CodecKind::G722 && personal_now {
                assert_eq!(a.payload, b.payload, "tick {tick}, member {m}: payload differs");
            }
        }
    }
}

#[test]
fn pcmu_pcma_and_g722_legs_mix_through_their_codecs_at_auto_rate() {
    let mut room = Room::new(MixerConfig::default());
    let u = room.add(CodecKind::Pcmu, 440.0, true);
    let a = room.add(CodecKind::Pcma, 1000.0, true);
    let g = room.add(CodecKind::G722, 1700.0, true);
    let g2 = room.add(CodecKind::G722, 2300.0, true);
    // Silent listeners of each codec take the shared, once-encoded path.
    let listeners: Vec<usize> = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722]
        .into_iter()
        .map(|codec| room.add(codec, 0.0, true))
        .collect();
    assert_eq!(room.mixer.room_rate(), 16_000);
    room.settle_and_measure();
    let speakers = [u, a, g, g2];
    for &listener in speakers.iter().chain(&listeners) {
        for &speaker in &speakers {
            if listener == speaker {
                room.assert_not_hears(listener, speaker);
            } else {
                // G.711 and G.722 each cost a fraction of a dB on a tone.
                room.assert_hears(listener, speaker, 0.0, 1.0);
            }
        }
    }
    assert_eq!(room.mixer.personal_mix_count(), 4);
    assert_eq!(room.mixer.shared_mix_count(), 3);
}

#[test]
fn opus_legs_raise_an_auto_room_to_48_khz_and_mix_with_the_others() {
    let mut room = Room::new(MixerConfig::default());
    let u = room.add(CodecKind::Pcmu, 440.0, true);
    let g = room.add(CodecKind::G722, 1000.0, true);
    let o = room.add(CodecKind::Opus, 1700.0, true);
    let o2 = room.add(CodecKind::Opus, 2300.0, true);
    let listeners: Vec<usize> =
        [CodecKind::Opus, CodecKind::Pcma].into_iter().map(|c| room.add(c, 0.0, true)).collect();
    assert_eq!(room.mixer.room_rate(), 48_000);
    room.settle_and_measure();
    let speakers = [u, g, o, o2];
    for &listener in speakers.iter().chain(&listeners) {
        for &speaker in &speakers {
            if listener == speaker {
                room.assert_not_hears(listener, speaker);
            } else {
                // Opus is a perceptual codec: allow it a little more than G.711.
                room.assert_hears(listener, speaker, 0.0, 2.0);
            }
        }
    }
}

/// A room nobody talks in stops encoding its silence after a while and sends
/// the last silent frame again; each listener still decodes silence, and hears
/// the talker as before once it speaks, through the encoder that paused.
#[test]
fn a_silent_room_stops_encoding_and_is_heard_again_when_someone_talks() {
    for codec in [CodecKind::Opus, CodecKind::G722, CodecKind::Pcmu] {
        let mut room = Room::new(MixerConfig::default());
        let talker = room.add(codec, 1000.0, true);
        let listener = room.add(codec, 0.0, true);
        for round in 0..2 {
            room.members[talker].speaking = false;
            // The gate's hangover keeps a talker that stopped in the mix a
            // little longer (its own encoder with it).
            room.run(SILENCE_ENCODED_TICKS as usize + 40);
            let paused = room.mixer.encodes();
            for m in &mut room.members {
                m.received.clear();
            }
            room.run(50);
            assert_eq!(room.mixer.encodes(), paused, "{codec:?} round {round}: encoded silence");
            for heard in [listener, talker] {
                let peak = room.members[heard].received.iter().map(|s| s.unsigned_abs()).max();
                assert!(peak < Some(50), "{codec:?} round {round}: silence decodes as {peak:?}");
            }
            room.members[talker].speaking = true;
            room.settle_and_measure();
            assert!(room.mixer.encodes() > paused, "{codec:?}: encoding resumed");
            // Opus is a perceptual codec: allow it a little more than G.711.
            room.assert_hears(listener, talker, 0.0, 2.0);
            room.assert_not_hears(talker, talker);
        }
    }
}

#[test]
fn a_g711_room_at_auto_rate_mixes_at_8_khz() {
    let mut room = Room::new(MixerConfig::default());
    room.add(CodecKind::Pcmu, 440.0, true);
    room.add(CodecKind::Pcma, 1000.0, true);
    assert_eq!(room.mixer.room_rate(), 8000);
    let mut fixed =
        Room::new(MixerConfig { rate: RoomRate::Fixed(48_000), ..MixerConfig::default() });
    let x = fixed.add(CodecKind::Pcmu, 440.0, true);
    let y = fixed.add(CodecKind::G722, 1000.0, true);
    let z = fixed.add(CodecKind::Pcma, 0.0, true);
    fixed.settle_and_measure();
    fixed.assert_hears(x, y, 0.0, 1.0);
    fixed.assert_hears(y, x, 0.0, 1.0);
    fixed.assert_hears(z, x, 0.0, 1.0);
    fixed.assert_hears(z, y, 0.0, 1.0);
}

#[test]
fn talking_detection_has_hysteresis() {
    let mut room = Room::new(MixerConfig::default());
    let talker = room.add(CodecKind::Pcmu, 1000.0, false);
    room.add(CodecKind::Pcmu, 0.0, false);
    let id = room.id(talker);
    let mut events: Vec<(u64, MixerEvent)> = Vec::new();
    let step = |room: &mut Room,
                events: &mut Vec<(u64, MixerEvent)>,
                ticks: usize,
                amplitude: f64,
                speaking: bool| {
        room.members[talker].amplitude = amplitude;
        room.members[talker].speaking = speaking;
        for _ in 0..ticks {
            room.run(1);
            while let Some(event) = room.mixer.poll_event() {
                events.push((room.now_ms, event));
            }
        }
    };
    // One loud frame is a click, not talk (two are needed).
    step(&mut room, &mut events, 1, 4000.0, true);
    step(&mut room, &mut events, 5, 0.0, false);
    assert!(events.is_empty());
    // Talk starts on the second loud frame.
    step(&mut room, &mut events, 10, 4000.0, true);
    assert_eq!(events.len(), 1);
    assert!(matches!(events[0].1, MixerEvent::TalkingStarted { member, .. } if member == id));
    assert!(room.mixer.is_talking(id).unwrap());
    // A 200 ms pause between words, and a level between the thresholds (RMS about
    // 280: below start, above stop), keep it talking.
    step(&mut room, &mut events, 10, 0.0, false);
    step(&mut room, &mut events, 40, 400.0, true);
    assert_eq!(events.len(), 1);
    // 500 ms of silence stop it, once.
    step(&mut room, &mut events, 24, 0.0, false);
    assert_eq!(events.len(), 1);
    step(&mut room, &mut events, 10, 0.0, false);
    assert_eq!(events.len(), 2);
    assert!(matches!(events[1].1, MixerEvent::TalkingStopped { member, .. } if member == id));
    assert!(!room.mixer.is_talking(id).unwrap());
    // The in-between level does not start talk again.
    step(&mut room, &mut events, 20, 400.0, true);
    assert_eq!(events.len(), 2);
    assert!(room.mixer.energy(id).unwrap() > 200);
}

#[test]
fn a_prompt_reaches_its_target_only_and_the_room_tap_records_the_mix() {
    let mut room = Room::new(MixerConfig::default());
    let a = room.add(CodecKind::Pcmu, 440.0, false);
    let b = room.add(CodecKind::Pcmu, 0.0, false);
    let c = room.add(CodecKind::Pcmu, 0.0, false);
    room.mixer.set_deaf(room.id(c), true).unwrap();
    let prompt_freq = 2500.0;
    let mut recorded = Vec::new();
    for tick in 0..WARM_UP_TICKS + MEASURE_TICKS {
        let len = room.mixer.room_frame_len();
        let prompt: Vec<i16> = (0..len)
            .map(|i| {
                let t = (tick * len + i) as f64 / 8000.0;
                (AMPLITUDE * (2.0 * std::f64::consts::PI * prompt_freq * t).sin()).round() as i16
            })
            .collect();
        room.push_inputs();
        room.mixer.inject(InjectTarget::Member(room.id(b)), &prompt).unwrap();
        room.mixer.inject(InjectTarget::Member(room.id(c)), &prompt).unwrap();
        room.mixer.tick(room.now_ms);
        room.now_ms += 20;
        room.collect_outputs();
        if tick >= WARM_UP_TICKS {
            recorded.extend_from_slice(room.mixer.room_mix());
        } else {
            for m in &mut room.members {
                m.received.clear();
            }
        }
    }
    let heard = |room: &Room, member: usize| {
        db(goertzel_amplitude(&room.members[member].received, 8000, prompt_freq), AMPLITUDE)
    };
    assert!(heard(&room, b).abs() < 0.1);
    // A deaf member still hears a prompt meant for it, and only that.
    assert!(heard(&room, c).abs() < 0.1);
    room.assert_not_hears(c, a);
    assert!(heard(&room, a) < INAUDIBLE_DB);
    room.assert_hears(b, a, 0.0, 0.1);
    // The room tap holds the speakers but not a member's private prompt.
    assert!(db(goertzel_amplitude(&recorded, 8000, 440.0), AMPLITUDE).abs() < 0.1);
    assert!(db(goertzel_amplitude(&recorded, 8000, prompt_freq), AMPLITUDE) < INAUDIBLE_DB);

    // A room-wide prompt: everyone hears it, and so does the recording.
    let mut recorded = Vec::new();
    for m in &mut room.members {
        m.received.clear();
    }
    for tick in 0..MEASURE_TICKS {
        let prompt: Vec<i16> = (0..160)
            .map(|i| {
                let t = (tick * 160 + i) as f64 / 8000.0;
                (AMPLITUDE * (2.0 * std::f64::consts::PI * prompt_freq * t).sin()).round() as i16
            })
            .collect();
        room.push_inputs();
        room.mixer.inject(InjectTarget::Room, &prompt).unwrap();
        room.mixer.tick(room.now_ms);
        room.now_ms += 20;
        room.collect_outputs();
        recorded.extend_from_slice(room.mixer.room_mix());
    }
    assert!(heard(&room, a).abs() < 0.1);
    assert!(heard(&room, b).abs() < 0.1);
    assert!(heard(&room, c) < INAUDIBLE_DB, "deaf members do not hear the room");
    assert!(db(goertzel_amplitude(&recorded, 8000, prompt_freq), AMPLITUDE).abs() < 0.1);
}

#[test]
fn a_member_leaving_and_joining_mid_call_keeps_the_others_mixing() {
    let mut room = Room::new(MixerConfig::default());
    let a = room.add(CodecKind::Pcmu, 440.0, false);
    let b = room.add(CodecKind::Pcmu, 1000.0, false);
    room.run(5);
    let g = room.add(CodecKind::G722, 1700.0, false);
    assert_eq!(room.mixer.room_rate(), 16_000);
    room.settle_and_measure();
    room.assert_hears(a, g, 0.0, 0.5);
    room.assert_hears(g, b, 0.0, 0.5);
    let gone = room.members.remove(g);
    room.mixer.remove_member(gone.id).unwrap();
    assert_eq!(room.mixer.room_rate(), 8000);
    room.settle_and_measure();
    room.assert_hears(a, b, 0.0, 0.1);
    assert!(room.mixer.output(gone.id).is_err());
}

#[test]
fn a_speaker_idle_for_five_seconds_loses_its_encoder_and_hears_on_when_it_speaks_again() {
    let mut room = Room::new(MixerConfig::default());
    let a = room.add(CodecKind::Opus, 1000.0, true);
    let b = room.add(CodecKind::Opus, 1700.0, true);
    // A G.711 caller in the 48 kHz room: its own encoder and pooled resamplers too.
    let p = room.add(CodecKind::Pcmu, 440.0, true);
    let listeners: Vec<usize> =
        [CodecKind::Opus, CodecKind::Pcmu].into_iter().map(|c| room.add(c, 0.0, true)).collect();
    assert_eq!(room.mixer.room_rate(), 48_000);
    let everyone: Vec<usize> = [a, b, p].iter().chain(&listeners).copied().collect();
    let assert_all_hear = |room: &Room, speakers: &[usize], tolerance_db: f64| {
        for &listener in &everyone {
            for &speaker in &[a, b, p] {
                if listener == speaker || !speakers.contains(&speaker) {
                    room.assert_not_hears(listener, speaker);
                } else {
                    room.assert_hears(listener, speaker, 0.0, tolerance_db);
                }
            }
        }
    };

    room.settle_and_measure();
    assert_all_hear(&room, &[a, b, p], 2.0);
    assert_eq!(room.mixer.own_encoder_count(), 3);
    // Only the shared mixes' resampler (48 -> 8 kHz for G.711 listeners) is not pooled.
    let (shared_resamplers, _) = {
        let mut quiet = Mixer::new(MixerConfig::default()).unwrap();
        quiet.add_member(CodecKind::Opus).unwrap();
        quiet.add_member(CodecKind::Pcmu).unwrap();
        quiet.resampler_memory_estimate()
    };
    assert!(room.mixer.resampler_memory_estimate().0 > shared_resamplers);

    // A and P fall silent; B talks on. They keep their encoders through a pause...
    room.members[a].speaking = false;
    room.members[p].speaking = false;
    let idle = IDLE_RELEASE_TICKS as usize;
    room.run(idle - 20);
    assert_eq!(room.mixer.own_encoder_count(), 3);
    // ...and lose them (and the resamplers) once silent for the idle period (plus the
    // gate's hangover).
    room.run(40);
    assert_eq!(room.mixer.own_encoder_count(), 1);
    assert_eq!(room.mixer.resampler_memory_estimate().0, shared_resamplers);
    for m in &mut room.members {
        m.received.clear();
    }
    room.run(MEASURE_TICKS);
    assert_all_hear(&room, &[b], 2.0);

    // They speak again: from the very first frames, on fresh encoders, what A and P
    // receive (now personal mixes) still decodes to B at its level.
    room.members[a].speaking = true;
    room.members[p].speaking = true;
    for m in &mut room.members {
        m.received.clear();
    }
    room.run(MEASURE_TICKS);
    assert_eq!(room.mixer.personal_mix_count(), 3);
    room.assert_hears(a, b, 0.0, 3.0);
    room.assert_hears(p, b, 0.0, 3.0);
    room.settle_and_measure();
    assert_all_hear(&room, &[a, b, p], 2.0);
    assert_eq!(room.mixer.own_encoder_count(), 3);
}

#[test]
fn idle_release_can_be_turned_off() {
    let config = MixerConfig { idle_release_ticks: None, ..MixerConfig::default() };
    let mut room = Room::new(config);
    let a = room.add(CodecKind::Pcmu, 440.0, false);
    room.add(CodecKind::Pcmu, 1000.0, false);
    room.run(5);
    assert_eq!(room.mixer.own_encoder_count(), 2);
    room.members[a].speaking = false;
    room.run(IDLE_RELEASE_TICKS as usize + 50);
    assert_eq!(room.mixer.own_encoder_count(), 2);
}
