//! Conference policies as callers meet them, against the real binary over SIP
//! and RTP on loopback: music on hold for a caller alone, the entry beep heard
//! by the others, a full conference turning the next caller away, and a
//! reserved conference's schedule (early callers refused, statuses kept right
//! across a restart). Audio is checked with a Goertzel filter.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::phone::{
    Control, MUSIC_NOTES, Phone, Phones, desk_phones, level, music_level, packets_in_a_second, talk,
};
use support::{Server, open_store, tone_wav};
use tutti_api::Time;
use tutti_api::model::{Conference, ConferenceStatus, Reservation, ReservationState};
use tutti_media::tone::goertzel_amplitude;

/// The entry beep's two notes (tutti_media::tone::ENTRY_BEEP_HZ).
const BEEP_NOTES: [f64; 2] = [660.0, 880.0];

/// How loud the music on hold is in the second half of what `phone` heard.
fn music(phone: &Phone) -> f64 {
    music_level(phone, &MUSIC_NOTES)
}

/// The loudest a note is in any 120 ms window of what `phone` heard.
fn peak_in_windows(phone: &Phone, freq: f64) -> f64 {
    let rate = phone.codec.sample_rate() as usize;
    let window = rate * 120 / 1000;
    let step = rate / 50;
    (0..phone.heard.len().saturating_sub(window))
        .step_by(step)
        .map(|start| goertzel_amplitude(&phone.heard[start..start + window], rate as u32, freq))
        .fold(0.0, f64::max)
}

/// Creates a conference over TCP 4011 and returns the logged-in client.
async fn new_conference(server: &Server, fields: &str) -> Control {
    let addr = server.logged_addr("control protocol listening", "addr");
    let fields = fields.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(addr, "secret");
        assert_eq!(control.command(&format!("NEWCONF,{fields}"), "NEWCONF"), ["NEWCONF,OK"]);
        control.event("NEWCONF,");
        control
    })
    .await
    .expect("4011 setup")
}

/// Talks in 0.5 s rounds until `check` holds, for at most 5 s.
async fn talk_until(phones: &mut [Phone], check: impl Fn(&[Phone]) -> bool) -> bool {
    for _ in 0..10 {
        talk(phones, 25).await;
        if check(phones) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_caller_hears_music_on_hold_and_the_room_hears_the_entry_beep() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control = new_conference(&server, "4101,Acme,Ann,10,,,,").await;
    let target = format!("sip:4101@{sip}");
    let mut ua = Phones::new().await;

    // Alone: music on hold.
    let mut phones = vec![ua.dial(&target, 1, 1700.0).await];
    let heard = talk_until(&mut phones, |p| music(&p[0]) > 300.0).await;
    assert!(
        heard,
        "no music on hold for a lone caller ({:.0}):\n{}",
        music(&phones[0]),
        server.logs()
    );

    // A second caller joins while the first listens: the first hears the entry
    // beep, then the newcomer instead of the music.
    let (second, ()) = tokio::join!(ua.dial(&target, 2, 1000.0), talk(&mut phones, 150));
    let beep = BEEP_NOTES.map(|f| peak_in_windows(&phones[0], f));
    assert!(
        beep.iter().all(|b| *b > 800.0),
        "the entry beep was not heard by the caller already in ({beep:.0?})"
    );
    phones.push(second);
    let together = talk_until(&mut phones, |p| {
        level(&p[0], 1000.0) > 500.0 && music(&p[0]) < 100.0 && music(&p[1]) < 100.0
    })
    .await;
    assert!(
        together,
        "with two in the room the music stops and they hear each other: first hears {:.0} \
         (music {:.0}), second hears {:.0} (music {:.0})",
        level(&phones[0], 1000.0),
        music(&phones[0]),
        level(&phones[1], 1700.0),
        music(&phones[1]),
    );

    // The second caller is dropped: the first is alone again and the music returns.
    let conf_guid = {
        let store = open_store(dir.path()).await;
        store.conference_by_number("4101").await.expect("lookup").expect("conference").uid
    };
    let (control, first_guid) = tokio::task::spawn_blocking(move || {
        let mut control = control;
        let first = control.call_guid(&conf_guid, "phone1");
        let second = control.call_guid(&conf_guid, "phone2");
        assert_eq!(control.command(&format!("DROPUSER,{second}"), "DROPUSER"), ["DROPUSER,OK"]);
        (control, first)
    })
    .await
    .expect("4011 drop");
    phones.truncate(1);
    let back = talk_until(&mut phones, |p| music(&p[0]) > 300.0).await;
    assert!(back, "the music did not come back for the caller left alone");
    assert!(level(&phones[0], 1000.0) < 100.0, "the dropped caller is still heard");

    // STOPWAV to the lone caller stops what plays to it, the music included;
    // the caller is still alone, so the music starts again.
    tokio::task::spawn_blocking(move || {
        let mut control = control;
        let answer = control.command(&format!("STOPWAV,{first_guid}"), "STOPWAV");
        assert_eq!(answer, ["STOPWAV,OK"]);
    })
    .await
    .expect("4011 stop");
    talk(&mut phones, 25).await;
    let again = talk_until(&mut phones, |p| music(&p[0]) > 300.0).await;
    assert!(again, "the music did not resume after STOPWAV:\n{}", server.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_conference_turns_the_next_caller_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let _control = new_conference(&server, "4102,Acme,Ann,2,,,,").await;
    let target = format!("sip:4102@{sip}");
    let mut ua = Phones::new().await;
    let mut phones = vec![ua.dial(&target, 1, 440.0).await, ua.dial(&target, 2, 1000.0).await];
    assert_eq!(ua.try_dial(&target, 3).await, Err("busy".into()), "a third caller gets 486");
    // The two inside are unaffected.
    let fine =
        talk_until(&mut phones, |p| level(&p[0], 1000.0) > 500.0 && level(&p[1], 440.0) > 500.0)
            .await;
    assert!(fine, "the members stopped hearing each other:\n{}", server.logs());
}

/// The conference's status and its reservations' states, as stored now.
async fn stored(dir: &Path, number: &str) -> (ConferenceStatus, Vec<ReservationState>) {
    let store = open_store(dir).await;
    let conference = store.conference_by_number(number).await.expect("lookup").expect("conference");
    let reservations = store.reservations_of(&conference.uid).await.expect("reservations");
    let states = reservations.iter().map(|r| r.state).collect();
    store.close().await;
    (conference.status, states)
}

/// Waits (at most `within`) until the stored statuses are `want`.
async fn until_stored(
    server: &mut Server,
    number: &str,
    want: (ConferenceStatus, Vec<ReservationState>),
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let now = stored(&server.data_dir, number).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "conference {number}: stored {now:?}, expected {want:?}:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn in_ms(ms: i64) -> Time {
    Time::from_unix_millis(Time::now().unix_millis() + ms).expect("time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_conference_follows_its_schedule_across_restarts() {
    use ConferenceStatus as C;
    use ReservationState as R;
    let dir = tempfile::tempdir().expect("temp dir");
    // A first run creates the database and the default customer.
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    assert!(server.stop_with("TERM").success());

    // While the server is down: one reserved conference starting in a few
    // seconds, and one whose only reservation ended while nobody watched (its
    // stored states are stale, as a crash would leave them).
    let store = open_store(dir.path()).await;
    let customer = store.default_customer().await.expect("customer");
    let mut soon = Conference::new(&customer, "Board");
    soon.reserved = true;
    soon.dial_in_number = Some("5001".into());
    store.create_conference(&soon).await.expect("conference");
    let start = in_ms(6000);
    store.insert(&Reservation::new(&soon.uid, start, 1)).await.expect("reservation");
    let mut over = Conference::new(&customer, "Yesterday");
    over.reserved = true;
    over.dial_in_number = Some("5002".into());
    over.status = C::Active;
    store.create_conference(&over).await.expect("conference");
    let mut past = Reservation::new(&over.uid, in_ms(-3 * 60_000), 1);
    past.state = R::Active;
    store.insert(&past).await.expect("reservation");
    store.close().await;

    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let wait = Duration::from_secs(5);
    until_stored(&mut server, "5002", (C::Closed, vec![R::Completed]), wait).await;
    until_stored(&mut server, "5001", (C::Sched, vec![R::Reserved]), wait).await;

    // Early callers are turned away (486); the finished conference says 480.
    let mut ua = Phones::new().await;
    assert_eq!(ua.try_dial(&format!("sip:5001@{sip}"), 1).await, Err("busy".into()));
    assert_eq!(ua.try_dial(&format!("sip:5002@{sip}"), 2).await, Err("480".into()));

    // The reservation starts: the scheduler wakes for it, callers get in.
    let until_start = start.unix_millis() - Time::now().unix_millis();
    tokio::time::sleep(Duration::from_millis(until_start.max(0) as u64)).await;
    until_stored(&mut server, "5001", (C::Idle, vec![R::Holding]), wait).await;
    let target = format!("sip:5001@{sip}");
    let mut phones = vec![ua.dial(&target, 3, 440.0).await];
    until_stored(&mut server, "5001", (C::Active, vec![R::Holding]), wait).await;
    phones.push(ua.dial(&target, 4, 1000.0).await);
    until_stored(&mut server, "5001", (C::Active, vec![R::Active]), wait).await;
    let talking = talk_until(&mut phones, |p| level(&p[0], 1000.0) > 500.0).await;
    assert!(talking, "the reserved conference's callers hear each other");

    // Restarted in the middle of the reservation: the calls ended with the old
    // process, the conference is between calls and still open to callers.
    assert!(server.stop_with("TERM").success());
    drop(phones);
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    until_stored(&mut server, "5001", (C::Idle, vec![R::Holding]), wait).await;
    until_stored(&mut server, "5002", (C::Closed, vec![R::Completed]), wait).await;
    let _again = ua.dial(&format!("sip:5001@{sip}"), 5, 440.0).await;
    until_stored(&mut server, "5001", (C::Active, vec![R::Holding]), wait).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moveuser_takes_a_caller_into_another_conference() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let mut control = new_conference(&server, "4201,Acme,Ann,10,,,,").await;
    control = tokio::task::spawn_blocking(move || {
        assert_eq!(control.command("NEWCONF,4202,Acme,Bob,10,,,,", "NEWCONF"), ["NEWCONF,OK"]);
        control.event("NEWCONF,");
        control
    })
    .await
    .expect("4011");
    let (main, side) = {
        let store = open_store(dir.path()).await;
        let uid = |c: Option<Conference>| c.expect("conference").uid;
        (
            uid(store.conference_by_number("4201").await.expect("lookup")),
            uid(store.conference_by_number("4202").await.expect("lookup")),
        )
    };
    let mut ua = Phones::new().await;
    let mut phones = vec![
        ua.dial(&format!("sip:4201@{sip}"), 1, 440.0).await,
        ua.dial(&format!("sip:4201@{sip}"), 2, 1000.0).await,
        ua.dial(&format!("sip:4202@{sip}"), 3, 1700.0).await,
    ];
    let apart = talk_until(&mut phones, |p| {
        level(&p[0], 1000.0) > 500.0 && level(&p[2], 1000.0) < 100.0 && level(&p[0], 1700.0) < 100.0
    })
    .await;
    assert!(apart, "two conferences, two mixes:\n{}", server.logs());

    // Phone 2 moves to the other conference, keeping its call GUID.
    let (main_c, side_c) = (main, side);
    let events = tokio::task::spawn_blocking(move || {
        let guid = control.call_guid(&main_c, "phone2");
        assert_eq!(
            control.command(&format!("MOVEUSER,{guid},{side_c}"), "MOVEUSER"),
            ["MOVEUSER,OK"]
        );
        let events = [
            control.event(&format!("DELUSER,{main_c},{guid},")),
            control.event(&format!("NEWUSER,{side_c},{guid},")),
        ];
        let listed = control.command(&format!("LISTUSER,{side_c}"), "LISTUSER");
        assert!(
            listed.iter().any(|l| l.contains(&guid)),
            "LISTUSER of the new conference: {listed:?}"
        );
        let listed = control.command(&format!("LISTUSER,{main_c}"), "LISTUSER");
        assert!(
            !listed.iter().any(|l| l.contains(&guid)),
            "LISTUSER of the old conference: {listed:?}"
        );
        assert_eq!(
            control.command(&format!("MOVEUSER,nobody,{side_c}"), "MOVEUSER"),
            ["MOVEUSER,ERROR,\"User not found\""]
        );
        events
    })
    .await
    .expect("4011 move");
    assert!(events.iter().all(|e| e.contains("\"phone2\",\"Phone 2\"")), "{events:?}");

    let moved = talk_until(&mut phones, |p| {
        level(&p[2], 1000.0) > 500.0
            && level(&p[1], 1700.0) > 500.0
            && level(&p[0], 1000.0) < 100.0
            && level(&p[1], 440.0) < 100.0
    })
    .await;
    assert!(
        moved,
        "after the move phone 2 talks with phone 3 only: 1 hears 2 at {:.0}, 3 hears 2 at {:.0}, \
         2 hears 3 at {:.0} and 1 at {:.0}:\n{}",
        level(&phones[0], 1000.0),
        level(&phones[2], 1000.0),
        level(&phones[1], 1700.0),
        level(&phones[1], 440.0),
        server.logs()
    );
    // Phone 1 is alone now: music on hold.
    let music = talk_until(&mut phones, |p| music(&p[0]) > 300.0).await;
    assert!(music, "the caller left alone by the move gets music on hold");
}

/// Sets each phone's tone (0 = silence) and talks for `frames` ticks.
async fn talk_with(phones: &mut [Phone], tones: &[f64], frames: usize) {
    for (phone, tone) in phones.iter_mut().zip(tones) {
        phone.tone = *tone;
    }
    talk(phones, frames).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_names_are_recorded_and_announced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control = new_conference(&server, "4401,Acme,Ann,10,,,,").await;
    // announce_caller_name is a PBX conference property: set in the store, as
    // the PBX API does.
    let conf_guid = {
        let store = open_store(dir.path()).await;
        let mut conference =
            store.conference_by_number("4401").await.expect("lookup").expect("conference");
        conference.announce_caller_name = true;
        store.update(&conference).await.expect("announce names");
        conference.uid
    };
    let target = format!("sip:4401@{sip}");
    let mut ua = Phones::new().await;

    // Each caller hears "please say your name after the tone" (2.1 s), then has
    // 2.5 s from just after the cue to say it. The names are tones: 1000 Hz for
    // the first caller, 1700 Hz for the second; both are silent once inside.
    let mut phones = vec![ua.dial(&target, 1, 0.0).await];
    talk_with(&mut phones, &[0.0], 110).await;
    let prompt = tutti_media::tone::rms(&phones[0].heard);
    assert!(prompt > 300.0, "no 'say your name' prompt (RMS {prompt:.0})");
    talk_with(&mut phones, &[1000.0], 120).await;
    talk_with(&mut phones, &[0.0], 150).await;
    let own = peak_in_windows(&phones[0], 1000.0);
    assert!(own > 500.0, "the first caller's name was not announced on entry ({own:.0})");

    phones.push(ua.dial(&target, 2, 0.0).await);
    talk_with(&mut phones, &[0.0, 0.0], 120).await;
    talk_with(&mut phones, &[0.0, 1700.0], 120).await;
    let early = peak_in_windows(&phones[0], 1700.0);
    assert!(early < 100.0, "the room heard the second caller before it entered ({early:.0})");
    talk_with(&mut phones, &[0.0, 0.0], 150).await;
    let joined = peak_in_windows(&phones[0], 1700.0);
    assert!(
        joined > 500.0,
        "the second caller's name was not announced to the first ({joined:.0}):\n{}",
        server.logs()
    );

    // The second caller is dropped: "<name> has left the conference".
    tokio::task::spawn_blocking(move || {
        let mut control = control;
        let call_guid = control.call_guid(&conf_guid, "phone2");
        assert_eq!(control.command(&format!("DROPUSER,{call_guid}"), "DROPUSER"), ["DROPUSER,OK"]);
    })
    .await
    .expect("4011 drop");
    phones.truncate(1);
    talk_with(&mut phones, &[0.0], 150).await;
    let left = peak_in_windows(&phones[0], 1700.0);
    assert!(left > 500.0, "the departure was not announced ({left:.0})");
    // Names are kept in memory only.
    let names = std::fs::read_dir(dir.path().join("recordings/names")).expect("names dir");
    assert_eq!(names.count(), 0, "recorded names left on disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_plays_its_own_enter_sound_and_music_on_hold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let _control = new_conference(&server, "4501,Acme,Ann,10,,,,").await;
    // The PBX API uploads sounds and names them by id; done here in the store.
    tone_wav(dir.path(), "hold.wav", 1200.0, 2000);
    tone_wav(dir.path(), "enter.wav", 1300.0, 400);
    {
        let store = open_store(dir.path()).await;
        let hold = store.add_sound(None, "Hold", "hold.wav").await.expect("sound");
        let enter = store.add_sound(None, "Enter", "enter.wav").await.expect("sound");
        let mut conference =
            store.conference_by_number("4501").await.expect("lookup").expect("conference");
        conference.music_on_hold_sound = Some(hold.id);
        conference.enter_sound = Some(enter.id);
        store.update(&conference).await.expect("sounds");
    }
    let target = format!("sip:4501@{sip}");
    let mut ua = Phones::new().await;
    let mut phones = vec![ua.dial(&target, 1, 0.0).await];
    let held = talk_until(&mut phones, |p| level(&p[0], 1200.0) > 500.0).await;
    assert!(
        held,
        "the conference's own music on hold ({:.0}):\n{}",
        level(&phones[0], 1200.0),
        server.logs()
    );
    assert!(music(&phones[0]) < 100.0, "the default music plays as well");

    let (second, ()) = tokio::join!(ua.dial(&target, 2, 0.0), talk(&mut phones, 100));
    drop(second);
    let enter = peak_in_windows(&phones[0], 1300.0);
    let beep = BEEP_NOTES.map(|f| peak_in_windows(&phones[0], f));
    assert!(enter > 800.0, "the enter sound was not heard ({enter:.0})");
    // The beep would be about 5000; the hold tone leaks a little into the window.
    assert!(beep.iter().all(|b| *b < 400.0), "the beep played instead ({beep:.0?})");
}

/// A bare SIP UDP client for what the test phones do not do: take early media.
/// Sends an INVITE offering PCMU to `media`'s port and returns every SIP
/// message it receives until a final response, the PCM decoded from the RTP
/// that arrived meanwhile, and sends the ACK for the final response.
fn invite_collecting_early_media(server: SocketAddr, user: &str) -> (Vec<String>, Vec<i16>) {
    use std::net::UdpSocket;
    let sip = UdpSocket::bind("127.0.0.1:0").expect("sip socket");
    let media = UdpSocket::bind("127.0.0.1:0").expect("media socket");
    let (sip_port, media_port) =
        (sip.local_addr().expect("addr").port(), media.local_addr().expect("addr").port());
    sip.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
    media.set_read_timeout(Some(Duration::from_millis(5))).expect("timeout");
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    );
    let head = |method: &str, cseq: &str, to_tag: &str| {
        format!(
            "{method} sip:{user}@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bKearly{user};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:early@127.0.0.1:{sip_port}>;tag=early\r\n\
             To: <sip:{user}@{server}>{to_tag}\r\n\
             Call-ID: early-{user}@127.0.0.1\r\n\
             CSeq: {cseq}\r\n\
             Contact: <sip:early@127.0.0.1:{sip_port}>\r\n"
        )
    };
    let invite = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        head("INVITE", "1 INVITE", ""),
        sdp.len()
    );
    sip.send_to(invite.as_bytes(), server).expect("send INVITE");
    let mut codec = tutti_media::codec::CodecKind::Pcmu.new_codec();
    let (mut messages, mut pcm, mut buf, mut frame) =
        (Vec::new(), Vec::new(), [0u8; 4096], [0i16; 960]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok((n, _)) = sip.recv_from(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status: u16 =
                message.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            messages.push(message.clone());
            if status >= 200 {
                let to_tag = message
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                    .and_then(|l| l.find(";tag=").map(|i| l[i..].trim().to_owned()))
                    .unwrap_or_default();
                let ack = format!("{}Content-Length: 0\r\n\r\n", head("ACK", "1 ACK", &to_tag));
                sip.send_to(ack.as_bytes(), server).expect("send ACK");
                break;
            }
        }
        while let Ok(n) = media.recv(&mut buf) {
            if n > 12 && buf[1] & 0x7f == 0 {
                let samples = codec.decode(&buf[12..n], &mut frame).expect("PCMU");
                pcm.extend_from_slice(&frame[..samples]);
            }
        }
    }
    (messages, pcm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_conference_says_so_in_early_media_then_refuses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let _control = new_conference(&server, "4701,Acme,Ann,10,,,,").await;
    {
        let store = open_store(dir.path()).await;
        let mut conference =
            store.conference_by_number("4701").await.expect("lookup").expect("conference");
        conference.locked = true;
        store.update(&conference).await.expect("lock");
    }
    let (messages, pcm) =
        tokio::task::spawn_blocking(move || invite_collecting_early_media(sip, "4701"))
            .await
            .expect("raw UAC");
    let statuses: Vec<&str> = messages.iter().filter_map(|m| m.split_whitespace().nth(1)).collect();
    assert!(statuses.contains(&"183"), "no 183: {statuses:?}\n{}", server.logs());
    assert_eq!(statuses.last(), Some(&"403"), "{statuses:?}");
    let progress = messages.iter().find(|m| m.contains(" 183 ")).expect("183");
    assert!(progress.contains("m=audio "), "183 without SDP:\n{progress}");
    // locked.wav lasts about 2 s: most of it must have arrived, and be speech.
    assert!(pcm.len() > 8000, "only {} samples of early media", pcm.len());
    let rms = tutti_media::tone::rms(&pcm);
    assert!(rms > 300.0, "the announcement is silent (RMS {rms:.0})");
}

/// `--music-on-hold off`: a caller alone hears silence, which a desk phone
/// that takes comfort noise gets as a couple of packets a second, not music
/// every 20 ms; a conference with its own music on hold still plays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_default_music_a_lone_caller_hears_silence_unless_the_conference_has_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--control-password", "secret", "--music-on-hold", "off"];
    let mut server = Server::start(dir.path(), &args);
    let sip = server.logged_addr("SIP listening", "udp");
    let _plain = new_conference(&server, "4601,Acme,Ann,10,,,,").await;
    let _own = new_conference(&server, "4602,Acme,Bob,10,,,,").await;
    tone_wav(dir.path(), "hold.wav", 1200.0, 2000);
    {
        let store = open_store(dir.path()).await;
        let hold = store.add_sound(None, "Hold", "hold.wav").await.expect("sound");
        let mut conference =
            store.conference_by_number("4602").await.expect("lookup").expect("conference");
        conference.music_on_hold_sound = Some(hold.id);
        store.update(&conference).await.expect("sound");
    }
    let mut desk = Phones::with_policy(desk_phones()).await;
    let mut phones = vec![desk.dial(&format!("sip:4601@{sip}"), 1, 0.0).await];
    talk(&mut phones, 50).await;
    let mut quiet = u64::MAX;
    for _ in 0..10 {
        quiet = packets_in_a_second(&mut phones, 0).await;
        if quiet <= 3 {
            break;
        }
    }
    assert!((1..=3).contains(&quiet), "a lone caller got {quiet} packets in a second");
    assert!(music(&phones[0]) < 100.0, "the default music played ({:.0})", music(&phones[0]));

    // The conference's own music plays all the same.
    let mut ua = Phones::new().await;
    let mut own = vec![ua.dial(&format!("sip:4602@{sip}"), 1, 0.0).await];
    let held = talk_until(&mut own, |p| level(&p[0], 1200.0) > 500.0).await;
    assert!(held, "the conference's own music ({:.0}):\n{}", level(&own[0], 1200.0), server.logs());

    // Someone joins the first: the two hear each other.
    phones.push(desk.dial(&format!("sip:4601@{sip}"), 2, 1000.0).await);
    let heard = talk_until(&mut phones, |p| level(&p[0], 1000.0) > 500.0).await;
    assert!(heard, "the newcomer is heard ({:.0})", level(&phones[0], 1000.0));
    assert!(music(&phones[0]) < 100.0, "music after the join ({:.0})", music(&phones[0]));
}
