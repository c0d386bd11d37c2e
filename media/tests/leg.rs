//! Two legs talking to each other through memory instead of sockets: audio
//! survives the trip (checked as audio), digits arrive once, SRTP legs interoperate,
//! strangers and wrong payload types are refused, RTCP flows both ways.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tutti_media::codec::CodecKind;
use tutti_media::dtmf::Digit;
use tutti_media::leg::{DECODER_IDLE_FRAMES, Leg, LegConfig, Output, SrtpKeys};
use tutti_media::rtp::SrtpSuite;
use tutti_media::tone::goertzel_amplitude;

const A: &str = "127.0.0.1:40000";
const B: &str = "127.0.0.1:40002";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn config(codec: CodecKind, remote: &str, srtp: Option<SrtpKeys>) -> LegConfig {
    let pt = codec.payload_type();
    LegConfig {
        codec,
        send_payload_type: pt,
        recv_payload_type: pt,
        send_telephone_event: Some(101),
        recv_telephone_event: Some(101),
        send_comfort_noise: None,
        recv_comfort_noise: None,
        send_dtx: false,
        remote_rtp: addr(remote),
        remote_rtcp: None,
        srtp,
        cname: "test@tutti".into(),
    }
}

fn tone(rate: u32, freq: f64, frame: usize, index: usize) -> Vec<i16> {
    (0..frame)
        .map(|i| {
            let t = (index * frame + i) as f64 / f64::from(rate);
            (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// Sends `frames` tone frames from `tx` to `rx` one tick apart and returns what
/// `rx` decoded.
fn stream(tx: &mut Leg, rx: &mut Leg, t0: Instant, frames: usize, freq: f64) -> Vec<i16> {
    let kind = tx.codec();
    let (rate, frame) = (kind.sample_rate(), kind.samples_per_frame());
    let mut heard = Vec::new();
    let (mut scratch, mut buf, mut pcm) = ([0u8; 1500], [0u8; 1500], vec![0i16; 960]);
    for i in 0..frames {
        let now = t0 + Duration::from_millis(20 * i as u64);
        if let Some((to, n)) = tx
            .encode_and_write(&tone(rate, freq, frame, i), true, &mut scratch, &mut buf)
            .expect("send")
        {
            assert_eq!(to, addr(B));
            rx.handle_datagram(now, addr(A), &buf[..n], false);
        }
        while let Some(Output::Transmit { data, .. }) = tx.poll_output() {
            rx.handle_datagram(now, addr(A), &data, false);
        }
        if let Some(n) = rx.pull_frame(now, &mut pcm).expect("pull") {
            heard.extend_from_slice(&pcm[..n]);
        }
    }
    heard
}

#[test]
fn a_tone_crosses_plain_and_srtp_legs_for_every_codec() {
    for codec in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722] {
        for secure in [false, true] {
            let keys = |local: u8, remote: u8| SrtpKeys {
                suite: SrtpSuite::AesCm128HmacSha1_80,
                local: [local; 30],
                remote: [remote; 30],
            };
            let t0 = Instant::now();
            let mut a = Leg::new(config(codec, B, secure.then(|| keys(1, 2))), t0).expect("leg a");
            let mut b = Leg::new(config(codec, A, secure.then(|| keys(2, 1))), t0).expect("leg b");
            let heard = stream(&mut a, &mut b, t0, 50, 1000.0);
            let rate = codec.sample_rate();
            let tail = &heard[heard.len() / 2..];
            let on = goertzel_amplitude(tail, rate, 1000.0);
            let off = goertzel_amplitude(tail, rate, 1700.0);
            assert!(
                heard.len() >= 40 * codec.samples_per_frame(),
                "{codec:?} srtp={secure}: heard {} samples",
                heard.len()
            );
            assert!(
                on > 30.0 * off,
                "{codec:?} srtp={secure}: 1000 Hz {on:.0} vs 1700 Hz {off:.0}"
            );
            assert_eq!(b.rejects().srtp_rejected, 0);
            assert_eq!(b.stats().packets_received, 49, "first packet is on probation");
        }
    }
}

#[test]
fn wrong_srtp_keys_are_rejected_not_decoded() {
    let t0 = Instant::now();
    let keys = |local: u8, remote: u8| {
        Some(SrtpKeys {
            suite: SrtpSuite::AesCm128HmacSha1_32,
            local: [local; 30],
            remote: [remote; 30],
        })
    };
    let mut a = Leg::new(config(CodecKind::Pcmu, B, keys(1, 2)), t0).expect("leg a");
    let mut b = Leg::new(config(CodecKind::Pcmu, A, keys(2, 9)), t0).expect("leg b");
    let heard = stream(&mut a, &mut b, t0, 10, 1000.0);
    assert!(heard.is_empty());
    assert_eq!(b.rejects().srtp_rejected, 10);
}

#[test]
fn a_digit_sent_by_one_leg_is_reported_once_by_the_other() {
    let t0 = Instant::now();
    let mut a = Leg::new(config(CodecKind::Pcmu, B, None), t0).expect("leg a");
    let mut b = Leg::new(config(CodecKind::Pcmu, A, None), t0).expect("leg b");
    let _ = stream(&mut a, &mut b, t0, 5, 440.0);
    assert!(a.send_digit(Digit::from_char('7').expect("digit"), 100));
    let later = t0 + Duration::from_millis(100);
    let _ = stream(&mut a, &mut b, later, 12, 440.0);
    let digits: Vec<Output> =
        std::iter::from_fn(|| b.poll_output()).filter(|o| matches!(o, Output::Digit(_))).collect();
    assert_eq!(digits, [Output::Digit('7')]);
}

#[test]
fn strangers_and_unknown_payload_types_are_refused() {
    let t0 = Instant::now();
    let mut a = Leg::new(config(CodecKind::Pcmu, B, None), t0).expect("leg a");
    let mut b = Leg::new(config(CodecKind::Pcmu, A, None), t0).expect("leg b");
    let _ = stream(&mut a, &mut b, t0, 3, 440.0);
    let mut buf = [0u8; 200];
    let (mut scratch, pcm) = ([0u8; 200], vec![0i16; 160]);
    let (_, n) =
        a.encode_and_write(&pcm, false, &mut scratch, &mut buf).expect("send").expect("dest");
    b.handle_datagram(t0, addr("127.0.0.9:5000"), &buf[..n], false);
    assert_eq!(b.rejects().wrong_source, 1, "latched to the first source");
    let mut pcma = Leg::new(config(CodecKind::Pcma, B, None), t0).expect("pcma leg");
    let (_, n) =
        pcma.encode_and_write(&pcm, false, &mut scratch, &mut buf).expect("send").expect("dest");
    b.handle_datagram(t0, addr(A), &buf[..n], false);
    assert_eq!(b.rejects().unknown_payload_type, 1);
    b.handle_datagram(t0, addr(A), &[0x80, 0, 1], false);
    b.handle_datagram(t0, addr(A), &[0xFF; 3], false);
    assert_eq!(b.rejects().malformed, 2);
}

#[test]
fn rtcp_reports_flow_and_are_read_back() {
    let t0 = Instant::now();
    let mut a = Leg::new(config(CodecKind::Pcmu, B, None), t0).expect("leg a");
    let mut b = Leg::new(config(CodecKind::Pcmu, A, None), t0).expect("leg b");
    let _ = stream(&mut a, &mut b, t0, 150, 440.0);
    let due = a.poll_timeout();
    assert!(due <= t0 + Duration::from_millis(2500), "first report after half an interval");
    a.handle_timeout(due);
    let Some(Output::Transmit { to, data, rtcp }) = a.poll_output() else { panic!("a report") };
    assert_eq!((to, rtcp), (addr(B), false), "rtcp-mux: to the RTP address");
    assert_eq!(data[1], 200, "a sender report, since A sends");
    b.handle_datagram(due, addr(A), &data, false);
    assert_eq!(b.rejects().malformed, 0);
    b.handle_timeout(b.poll_timeout());
    let Some(Output::Transmit { data, .. }) = b.poll_output() else { panic!("b report") };
    a.handle_datagram(due, addr(B), &data, false);
    assert!(a.stats().remote.is_some(), "A learns how B hears it");
}

#[test]
fn each_digit_of_a_sequence_is_reported_when_it_starts() {
    let t0 = Instant::now();
    let mut a = Leg::new(config(CodecKind::Pcmu, B, None), t0).expect("leg a");
    let mut b = Leg::new(config(CodecKind::Pcmu, A, None), t0).expect("leg b");
    let _ = stream(&mut a, &mut b, t0, 5, 440.0);
    let mut at = t0 + Duration::from_millis(100);
    for key in ['*', '9', '0'] {
        assert!(a.send_digit(Digit::from_char(key).expect("digit"), 100));
        let _ = stream(&mut a, &mut b, at, 10, 440.0);
        at += Duration::from_millis(200);
        let digits: Vec<Output> = std::iter::from_fn(|| b.poll_output())
            .filter(|o| matches!(o, Output::Digit(_)))
            .collect();
        assert_eq!(digits, [Output::Digit(key)], "{key} reported within its own 200 ms");
    }
}

/// An Opus stream loses one packet exactly where the tone changes from 440 to
/// 1000 Hz. Concealment alone would extend the 440 Hz into the gap; the leg
/// hands the next packet to the decoder, whose in-band FEC copy of the lost
/// frame already carries 1000 Hz.
#[test]
fn a_lost_opus_frame_is_rebuilt_from_the_next_packets_fec() {
    let t0 = Instant::now();
    let opus = |remote| LegConfig {
        send_payload_type: 96,
        recv_payload_type: 96,
        ..config(CodecKind::Opus, remote, None)
    };
    let mut a = Leg::new(opus(B), t0).expect("leg a");
    let mut b = Leg::new(opus(A), t0).expect("leg b");
    let frame = CodecKind::Opus.samples_per_frame();
    let (mut scratch, mut buf, mut pcm) = ([0u8; 1500], [0u8; 1500], vec![0i16; 960]);
    const LOST: usize = 30;
    let mut frames = Vec::new();
    for i in 0..60usize {
        let now = t0 + Duration::from_millis(20 * i as u64);
        let freq = if i < LOST { 440.0 } else { 1000.0 };
        let audio = tone(48_000, freq, frame, i);
        let (_, n) =
            a.encode_and_write(&audio, true, &mut scratch, &mut buf).expect("send").expect("dest");
        if i != LOST {
            b.handle_datagram(now, addr(A), &buf[..n], false);
        }
        if let Some(n) = b.pull_frame(now, &mut pcm).expect("pull") {
            frames.push(pcm[..n].to_vec());
        }
    }
    // Every 440 Hz frame sent is played (the loop runs on long after the loss);
    // a concealed gap would add a 31st.
    let dominant_440 = frames
        .iter()
        .filter(|f| {
            goertzel_amplitude(f, 48_000, 440.0) > 2.0 * goertzel_amplitude(f, 48_000, 1000.0)
        })
        .count();
    assert!(
        dominant_440 <= LOST,
        "{dominant_440} frames of 440 Hz for {LOST} sent: the gap was concealed, not rebuilt"
    );
    assert!(dominant_440 >= LOST - 2, "{dominant_440} frames of 440 Hz for {LOST} sent");
    assert_eq!(b.jitter_stats().lost, 1, "exactly the one packet was lost");
}

/// A peer that sends nothing for longer than DECODER_IDLE_FRAMES (hold, a one-way
/// stream): the Opus leg frees its decoder, and when the peer comes back it decodes
/// as well as at the start of the call.
#[test]
fn an_opus_leg_silent_for_long_frees_its_decoder_and_decodes_again_when_the_peer_returns() {
    let t0 = Instant::now();
    let opus = |remote| LegConfig {
        send_payload_type: 96,
        recv_payload_type: 96,
        ..config(CodecKind::Opus, remote, None)
    };
    let mut a = Leg::new(opus(B), t0).expect("leg a");
    let mut b = Leg::new(opus(A), t0).expect("leg b");
    let dominant = |heard: &[i16], freq: f64, other: f64| {
        let tail = &heard[heard.len() / 2..];
        goertzel_amplitude(tail, 48_000, freq) > 30.0 * goertzel_amplitude(tail, 48_000, other)
    };
    let heard = stream(&mut a, &mut b, t0, 50, 1000.0);
    assert!(dominant(&heard, 1000.0, 1700.0));
    // The peer goes quiet: a few concealed frames, then nothing, for over 5 s.
    let mut pcm = vec![0i16; 960];
    let quiet_from = t0 + Duration::from_millis(20 * 50);
    let quiet = DECODER_IDLE_FRAMES as u64 + 20;
    let mut played = 0;
    for i in 0..quiet {
        if b.pull_frame(quiet_from + Duration::from_millis(20 * i), &mut pcm)
            .expect("pull")
            .is_some()
        {
            played += 1;
        }
    }
    assert!(played <= 5, "{played} frames played while the peer sent nothing");
    let back = quiet_from + Duration::from_millis(20 * quiet);
    let heard = stream(&mut a, &mut b, back, 50, 1700.0);
    assert!(heard.len() >= 40 * 960, "heard {} samples after the pause", heard.len());
    assert!(dominant(&heard, 1700.0, 1000.0));
}

/// One frame of `kind`'s audio: a tone, or digital silence.
fn frame_of(kind: CodecKind, index: usize, silent: bool) -> Vec<i16> {
    let (rate, len) = (kind.sample_rate(), kind.samples_per_frame());
    if silent { vec![0; len] } else { tone(rate, 440.0, len, index) }
}

#[test]
fn silence_goes_out_as_comfort_noise_and_the_peer_plays_it_as_silence() {
    let kind = CodecKind::Pcmu;
    let with_cn = |remote: &str| LegConfig {
        send_comfort_noise: Some(13),
        recv_comfort_noise: Some(13),
        send_dtx: false,
        ..config(kind, remote, None)
    };
    let t0 = Instant::now();
    let mut a = Leg::new(with_cn(B), t0).expect("leg a");
    let mut b = Leg::new(with_cn(A), t0).expect("leg b");
    let (mut scratch, mut buf, mut pcm) = ([0u8; 1500], [0u8; 1500], vec![0i16; 960]);
    // 1 s of tone, 3 s of silence, 1 s of tone again.
    let silent = |i: usize| (50..200).contains(&i);
    let mut sent = Vec::new();
    let (mut heard, mut heard_in_silence) = (Vec::new(), 0usize);
    let mut encoder = kind.new_codec();
    for i in 0..250 {
        let now = t0 + Duration::from_millis(20 * i as u64);
        let pcm_out = frame_of(kind, i, silent(i));
        let payload_len = encoder.encode(&pcm_out, &mut scratch).expect("encode");
        if let Some((to, len)) =
            a.write_mix(&scratch[..payload_len], !silent(i), silent(i), &mut buf).expect("send")
        {
            assert_eq!(to, addr(B));
            let packet = buf[..len].to_vec();
            b.handle_datagram(now, addr(A), &packet, false);
            sent.push((i, packet));
        }
        let got = b.pull_frame(now, &mut pcm).expect("pull");
        if let Some(n) = got {
            if (60..200).contains(&i) {
                heard_in_silence += pcm[..n].iter().filter(|s| s.unsigned_abs() > 100).count();
            }
            if i >= 220 {
                heard.extend_from_slice(&pcm[..n]);
            }
        }
    }
    // 50 audio packets, then comfort noise at the silence's start and every
    // 500 ms (6 in 3 s), then 50 audio packets again.
    let cn: Vec<usize> = sent.iter().filter(|(_, p)| p[1] & 0x7f == 13).map(|(i, _)| *i).collect();
    assert_eq!(cn, vec![50, 75, 100, 125, 150, 175], "comfort noise sent at");
    assert_eq!(sent.len(), 100 + cn.len(), "nothing else went out in the silence");
    for (i, packet) in &sent {
        let marker = packet[1] & 0x80 != 0;
        if cn.contains(i) {
            assert_eq!(packet[12..], [127], "a -127 dBov level, no spectrum");
        }
        // The first audio packet after the silence starts a talk spurt.
        assert_eq!(marker, *i == 0 || *i == 200, "marker on packet {i}");
    }
    // Sequence numbers run on without a gap; timestamps follow the clock.
    let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    for pair in sent.windows(2) {
        let ((i, p), (j, q)) = (&pair[0], &pair[1]);
        assert_eq!(seq(q), seq(p).wrapping_add(1), "sequence {i} -> {j}");
        assert_eq!(ts(q).wrapping_sub(ts(p)), 160 * (j - i) as u32, "timestamp {i} -> {j}");
    }
    // The receiver plays the comfort noise as silence: no concealment of the
    // last tone frame, nothing counted as refused, and the tone afterwards.
    assert_eq!(heard_in_silence, 0, "samples above 100 heard during the silence");
    assert_eq!(b.rejects().unknown_payload_type, 0);
    let level = goertzel_amplitude(&heard, kind.sample_rate(), 440.0);
    assert!(level > 4000.0, "the tone after the silence: {level}");
    // Nothing counted lost: comfort noise fills its place in the sequence.
    assert_eq!(b.stats().loss_percent, 0.0);
    assert!(b.stats().packets_received + 1 >= sent.len() as u64, "{:?}", b.stats());
}

/// An Opus peer that asked for DTX (`usedtx=1`) gets silence as 200 ms of
/// silent frames, then the frame's table-of-contents byte alone every 400 ms;
/// it plays that as silence, counts nothing lost, and the tone after it comes
/// with the marker bit.
#[test]
fn silence_goes_out_as_opus_dtx_to_a_peer_that_asked_for_it() {
    let kind = CodecKind::Opus;
    let t0 = Instant::now();
    let mut a = Leg::new(LegConfig { send_dtx: true, ..config(kind, B, None) }, t0).expect("a");
    let mut b = Leg::new(config(kind, A, None), t0).expect("leg b");
    let (mut scratch, mut buf, mut pcm) = ([0u8; 1500], [0u8; 1500], vec![0i16; 960]);
    let silent = |i: usize| (50..200).contains(&i);
    let (mut sent, mut tocs) = (Vec::new(), Vec::new());
    let (mut heard, mut heard_in_silence) = (Vec::new(), 0usize);
    let mut encoder = kind.new_codec();
    for i in 0..250 {
        let now = t0 + Duration::from_millis(20 * i as u64);
        let payload_len = encoder.encode(&frame_of(kind, i, silent(i)), &mut scratch).expect("enc");
        if let Some((_, len)) =
            a.write_mix(&scratch[..payload_len], !silent(i), silent(i), &mut buf).expect("send")
        {
            let packet = buf[..len].to_vec();
            b.handle_datagram(now, addr(A), &packet, false);
            if len == 13 {
                tocs.push((i, scratch[0]));
            }
            sent.push((i, packet));
        }
        if let Some(n) = b.pull_frame(now, &mut pcm).expect("pull") {
            if (70..200).contains(&i) {
                heard_in_silence += pcm[..n].iter().filter(|s| s.unsigned_abs() > 100).count();
            }
            if i >= 220 {
                heard.extend_from_slice(&pcm[..n]);
            }
        }
    }
    let dtx: Vec<usize> = tocs.iter().map(|(i, _)| *i).collect();
    assert_eq!(dtx, vec![60, 80, 100, 120, 140, 160, 180], "DTX packets at");
    let whole: Vec<usize> =
        sent.iter().map(|(i, _)| *i).filter(|i| silent(*i) && !dtx.contains(i)).collect();
    assert_eq!(whole, (50..60).collect::<Vec<_>>(), "silent frames sent whole first");
    assert_eq!(sent.len(), 100 + 10 + dtx.len(), "nothing else went out in the silence");
    for (i, packet) in &sent {
        if let Some((_, toc)) = tocs.iter().find(|(j, _)| j == i) {
            assert_eq!(packet[12..], [*toc], "the silent frame's table of contents alone");
            assert_eq!(packet[1] & 0x7f, kind.payload_type(), "on the audio payload type");
        }
        assert_eq!(packet[1] & 0x80 != 0, *i == 0 || *i == 200, "marker on packet {i}");
    }
    let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    for pair in sent.windows(2) {
        let ((i, p), (j, q)) = (&pair[0], &pair[1]);
        assert_eq!(seq(q), seq(p).wrapping_add(1), "sequence {i} -> {j}");
        assert_eq!(ts(q).wrapping_sub(ts(p)), 960 * (j - i) as u32, "timestamp {i} -> {j}");
    }
    assert_eq!(heard_in_silence, 0, "samples above 100 heard during the silence");
    let level = goertzel_amplitude(&heard, kind.sample_rate(), 440.0);
    assert!(level > 4000.0, "the tone after the silence: {level}");
    assert_eq!(b.stats().loss_percent, 0.0);
    assert_eq!(b.rejects().unknown_payload_type, 0);
}

#[test]
fn without_comfort_noise_agreed_silence_goes_out_every_frame() {
    let kind = CodecKind::Pcmu;
    let t0 = Instant::now();
    let mut a = Leg::new(config(kind, B, None), t0).expect("leg");
    let mut buf = [0u8; 1500];
    let silence = [0xffu8; 160];
    let sent = (0..100)
        .filter(|_| a.write_mix(&silence, false, true, &mut buf).expect("send").is_some())
        .count();
    assert_eq!(sent, 100);
    // A peer's comfort noise is a payload type we did not agree to: refused.
    let mut b = Leg::new(config(kind, A, None), t0).expect("leg");
    let cn = [0x80, 13, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7, 127];
    b.handle_datagram(t0, addr(A), &cn, false);
    assert_eq!(b.rejects().unknown_payload_type, 1);
}
