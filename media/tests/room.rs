//! A room over real loopback sockets: three phones, each sending its own tone
//! through its own leg into a room task, each checking with a Goertzel filter
//! what it hears. Everyone hears the others and never themselves; a muted member
//! is heard by nobody; a prompt to one member reaches only that member; the
//! recording holds the room mix; a finished prompt is reported.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tutti_media::codec::{Codec, CodecKind};
use tutti_media::io::{LegIo, LegNotice};
use tutti_media::leg::{Leg, LegConfig};
use tutti_media::mixer::MixerConfig;
use tutti_media::ports::PortPool;
use tutti_media::record::RecordLimits;
use tutti_media::room::{MemberChange, PlayTarget, RoomEvent, RoomHandle, SplitPolicy};
use tutti_media::tone::goertzel_amplitude;
use tutti_media::wav::{Player, Prompt};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TONES: [f64; 3] = [440.0, 1000.0, 1700.0];
const PROMPT_TONE: f64 = 2300.0;

fn sine(freq: f64, amplitude: f64, rate: u32, start: usize, len: usize) -> Vec<i16> {
    (start..start + len)
        .map(|n| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin())
                as i16
        })
        .collect()
}

/// A phone: its own leg, talking to a server-side leg that joins the room.
struct Phone {
    leg: LegIo,
    codec: Box<dyn Codec>,
    tone: f64,
    heard: Vec<i16>,
}

/// Runs all phones for `frames` ticks; each sends its tone (silence when
/// `silent`) and records what it hears.
async fn talk(phones: &mut [Phone], frames: usize, silent: &[bool]) {
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let (mut payload, mut packet, mut pcm) = ([0u8; 160], [0u8; 1500], [0i16; 960]);
    for phone in phones.iter_mut() {
        phone.heard.clear();
    }
    for i in 0..frames {
        ticks.tick().await;
        for (p, phone) in phones.iter_mut().enumerate() {
            let amplitude = if silent[p] { 0.0 } else { 6000.0 };
            let frame = sine(phone.tone, amplitude, 8000, i * 160, 160);
            let n = phone.codec.encode(&frame, &mut payload).expect("encode");
            phone.leg.send_audio(&payload[..n], !silent[p], &mut packet).expect("send");
            if let Some(n) = phone.leg.pull_frame(Instant::now(), &mut pcm).expect("pull") {
                phone.heard.extend_from_slice(&pcm[..n]);
            }
        }
    }
}

/// The level of `freq` in the second half of what a phone heard (the first
/// half covers jitter buffers filling and talking detection starting).
fn level(phone: &Phone, freq: f64) -> f64 {
    let tail = &phone.heard[phone.heard.len() / 2..];
    goertzel_amplitude(tail, 8000, freq)
}

/// A phone whose server-side leg (key `key`, `codec`) joins `room`; the phone
/// itself speaks PCMU.
async fn join_phone(
    room: &RoomHandle,
    pool: &PortPool,
    notices: &mpsc::Sender<LegNotice>,
    key: u64,
    tone: f64,
    codec: CodecKind,
) -> Phone {
    let phone_sockets = pool.bind(LOOPBACK, true).await.expect("phone ports");
    let server_sockets = pool.bind(LOOPBACK, true).await.expect("server ports");
    let phone_addr = SocketAddr::new(LOOPBACK, phone_sockets.rtp_port());
    let server_addr = SocketAddr::new(LOOPBACK, server_sockets.rtp_port());
    let now = Instant::now();
    let server_config = LegConfig { codec, ..common::pcmu_leg(phone_addr) };
    let server = Leg::new(server_config, now).expect("server leg");
    room.join(LegIo::spawn(key, server, server_sockets, notices.clone())).await.expect("join");
    let phone_leg = Leg::new(common::pcmu_leg(server_addr), now).expect("phone leg");
    Phone {
        leg: LegIo::spawn(100 + key, phone_leg, phone_sockets, notices.clone()),
        codec: CodecKind::Pcmu.new_codec(),
        tone,
        heard: Vec::new(),
    }
}

/// The room's rate follows its members (8 kHz for PCMU phones, 16 kHz once a
/// G.722 phone joins); a recording keeps the rate it started at and goes on
/// through the change, the mix resampled into it, and a prompt playing goes
/// on too, resampled to the room's new rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_recording_and_a_prompt_go_on_when_the_room_s_rate_changes() {
    let pool = common::free_pool(8);
    let (events_tx, _events) = mpsc::channel(64);
    let room = RoomHandle::spawn(MixerConfig::default(), events_tx).expect("room");
    let (notices, _notices_rx) = mpsc::channel(64);
    let mut phones = vec![join_phone(&room, &pool, &notices, 1, 440.0, CodecKind::Pcmu).await];
    let dir = tempfile::tempdir().expect("temp dir");
    room.record(dir.path().to_owned(), "rates".into(), RecordLimits::NONE).await.expect("record");
    let prompt =
        Prompt::from_samples(sine(PROMPT_TONE, 6000.0, 8000, 0, 8000), 8000).expect("prompt");
    let looping = Box::new(Player::new(prompt, true));
    room.play(1, PlayTarget::Member(1), looping).await.expect("play");
    talk(&mut phones, 50, &[false]).await;
    assert!(level(&phones[0], PROMPT_TONE) > 600.0, "the prompt at 8 kHz");
    // A wideband member: the room mixes at 16 kHz from now on. (Its phone
    // sends nothing; the server leg's codec is what sets the rate.)
    let _wideband = join_phone(&room, &pool, &notices, 2, 1000.0, CodecKind::G722).await;
    talk(&mut phones, 100, &[false]).await;
    let heard = level(&phones[0], PROMPT_TONE);
    assert!(heard > 600.0, "the prompt goes on in the 16 kHz room ({heard:.0})");
    let recording = room.stop_recording().await.expect("still recording after the change");
    let audio = tutti_media::wav::read(&recording.path).expect("a whole WAV file");
    assert_eq!(audio.sample_rate, 8000, "the file keeps its rate");
    assert!(audio.samples.len() >= 140 * 160, "both halves recorded: {}", audio.samples.len());
    // The last second was mixed at 16 kHz and resampled: the tone is there.
    let tail = &audio.samples[audio.samples.len() - 8000..];
    let heard = goertzel_amplitude(tail, 8000, 440.0);
    assert!(heard > 600.0, "the talker is in the resampled part ({heard:.0})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_hears_the_others_mute_silences_prompts_and_recordings_work() {
    let pool = common::free_pool(16);
    let (events_tx, mut events) = mpsc::channel(64);
    let room = RoomHandle::spawn(MixerConfig::default(), events_tx).expect("room");
    let (notices, _notices_rx) = mpsc::channel(64);
    let mut phones = Vec::new();
    for (i, tone) in TONES.iter().enumerate() {
        phones.push(join_phone(&room, &pool, &notices, i as u64 + 1, *tone, CodecKind::Pcmu).await);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = room
        .record(dir.path().to_owned(), "room".into(), RecordLimits::NONE)
        .await
        .expect("record");
    let member_recording = room
        .record_member(2, dir.path().to_owned(), "member2".into(), RecordLimits::NONE)
        .await
        .expect("record member");

    // 1. Everyone talks: each hears the other two tones and not its own.
    talk(&mut phones, 75, &[false, false, false]).await;
    for (p, phone) in phones.iter().enumerate() {
        for (t, tone) in TONES.iter().enumerate() {
            let heard = level(phone, *tone);
            if t == p {
                assert!(heard < 60.0, "phone {p} hears itself ({tone} Hz at {heard:.0})");
            } else {
                assert!(heard > 600.0, "phone {p} does not hear {tone} Hz ({heard:.0})");
            }
        }
    }
    let talking: Vec<RoomEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    for key in 1..=3 {
        assert!(talking.contains(&RoomEvent::Talking { key, talking: true }), "{talking:?}");
    }

    // 2. Phone 0 is muted: nobody hears 440 Hz any more.
    room.change(1, MemberChange::Mute(true)).await.expect("mute");
    talk(&mut phones, 50, &[false, false, false]).await;
    for (p, phone) in phones.iter().enumerate().skip(1) {
        assert!(level(phone, TONES[0]) < 60.0, "phone {p} still hears the muted member");
        assert!(level(phone, TONES[3 - p]) > 600.0, "phone {p} lost the other speaker");
    }

    // 2b. Phone 1 (member 2) is muted too: its own recording keeps what it
    // hears and leaves its voice out, as the room does.
    room.change(2, MemberChange::Mute(true)).await.expect("mute");
    talk(&mut phones, 50, &[false, false, false]).await;
    room.change(2, MemberChange::Mute(false)).await.expect("unmute");
    let member = room.stop_recording_member(2).await.expect("stop member recording");
    assert_eq!(member.path, member_recording);
    assert!(
        matches!(
            room.stop_recording_member(2).await,
            Err(tutti_media::room::RoomError::NotRecording)
        ),
        "a second stop finds nothing to stop"
    );
    let audio = tutti_media::wav::read(&member_recording).expect("read member recording");
    assert_eq!(audio.sample_rate, 8000, "recorded at the member's codec rate");
    let frames =
        |from: usize, to: usize| &audio.samples[from * 160..(to * 160).min(audio.samples.len())];
    // Part 1 (ticks 0-75): its voice and both others.
    for tone in TONES {
        let heard = goertzel_amplitude(frames(25, 70), 8000, tone);
        assert!(heard > 600.0, "member recording lacks {tone} Hz in part 1 ({heard:.0})");
    }
    // Part 2b (ticks 125-175): only phone 2's 1700 Hz.
    let muted = frames(135, 170);
    assert!(goertzel_amplitude(muted, 8000, 1700.0) > 600.0, "member recording lost what it hears");
    for tone in [440.0, 1000.0] {
        let heard = goertzel_amplitude(muted, 8000, tone);
        assert!(heard < 60.0, "member recording has {tone} Hz while muted ({heard:.0})");
    }

    // 3. A prompt to phone 2 only, while nobody talks.
    let prompt =
        Prompt::from_samples(sine(PROMPT_TONE, 6000.0, 8000, 0, 8000 * 2), 8000).expect("prompt");
    room.play(7, PlayTarget::Member(3), Box::new(Player::new(prompt, false))).await.expect("play");
    talk(&mut phones, 50, &[true, true, true]).await;
    assert!(level(&phones[2], PROMPT_TONE) > 600.0, "the target hears its prompt");
    assert!(level(&phones[0], PROMPT_TONE) < 60.0, "others do not");
    assert!(level(&phones[1], PROMPT_TONE) < 60.0, "others do not");
    room.stop(PlayTarget::Member(3)).await.expect("stop");
    let done = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(RoomEvent::PlaybackDone { id, target }) = events.recv().await {
                return (id, target);
            }
        }
    })
    .await
    .expect("done reported");
    assert_eq!(done, (7, PlayTarget::Member(3)));

    // 4. The recording holds the room: all three tones from part 1.
    let recorded = room.stop_recording().await.expect("stop recording");
    assert_eq!(recorded.path, recording);
    assert!(recorded.duration_ms >= 3000, "{recorded:?}");
    let audio = tutti_media::wav::read(&recording).expect("read recording");
    let part1 = &audio.samples[audio.samples.len() / 8..audio.samples.len() * 3 / 8];
    for tone in TONES {
        let heard = goertzel_amplitude(part1, audio.sample_rate, tone);
        assert!(heard > 600.0, "recording lacks {tone} Hz ({heard:.0})");
    }
    let gone = room.leave(2).await.expect("leave");
    assert_eq!(gone.map(|leg| leg.key()), Some(2));
    assert!(room.leave(2).await.expect("leave").is_none());
}

/// A big room's tick reads and sends its members on several threads at once
/// (here every tick, so that five phones are "big"): the
/// mix is the same, everyone hears the others and not itself, a muted member
/// is heard by nobody, and a member's recording holds what it said and heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_split_over_threads_mixes_as_one_thread_does() {
    const FIVE: [f64; 5] = [440.0, 1000.0, 1700.0, 2300.0, 2900.0];
    let pool = common::free_pool(24);
    let (events_tx, _events) = mpsc::channel(256);
    let room = RoomHandle::spawn_splitting(MixerConfig::default(), events_tx, SplitPolicy::ALWAYS)
        .expect("room");
    let (notices, _notices_rx) = mpsc::channel(64);
    let mut phones = Vec::new();
    for (i, tone) in FIVE.iter().enumerate() {
        phones.push(join_phone(&room, &pool, &notices, i as u64 + 1, *tone, CodecKind::Pcmu).await);
    }
    let split_before = tutti_media::timing::SPLIT_TICKS.load(std::sync::atomic::Ordering::Relaxed);
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = room
        .record_member(5, dir.path().to_owned(), "member5".into(), RecordLimits::NONE)
        .await
        .expect("record member");

    talk(&mut phones, 75, &[false; 5]).await;
    for (p, phone) in phones.iter().enumerate() {
        for (t, tone) in FIVE.iter().enumerate() {
            let heard = level(phone, *tone);
            if t == p {
                assert!(heard < 60.0, "phone {p} hears itself ({tone} Hz at {heard:.0})");
            } else {
                assert!(heard > 600.0, "phone {p} does not hear {tone} Hz ({heard:.0})");
            }
        }
    }

    room.change(2, MemberChange::Mute(true)).await.expect("mute");
    talk(&mut phones, 50, &[false; 5]).await;
    for (p, phone) in phones.iter().enumerate().filter(|(p, _)| *p != 1) {
        assert!(level(phone, FIVE[1]) < 60.0, "phone {p} still hears the muted member");
        for t in (0..5).filter(|&t| t != 1 && t != p) {
            assert!(level(phone, FIVE[t]) > 600.0, "phone {p} lost {} Hz", FIVE[t]);
        }
    }

    let recorded = room.stop_recording_member(5).await.expect("stop member recording");
    assert_eq!(recorded.path, recording);
    let audio = tutti_media::wav::read(&recording).expect("read member recording");
    let first = &audio.samples[25 * 160..70 * 160];
    for tone in FIVE {
        let heard = goertzel_amplitude(first, 8000, tone);
        assert!(heard > 600.0, "member recording lacks {tone} Hz ({heard:.0})");
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        let split = tutti_media::timing::SPLIT_TICKS.load(std::sync::atomic::Ordering::Relaxed);
        assert!(split - split_before >= 100, "the ticks were split: {}", split - split_before);
    }
}
