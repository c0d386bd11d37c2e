//! The whole chain, as a user sees it: a conference created over TCP 4011, three
//! phones dialling the real `tutti` binary over SIP on loopback, each sending its
//! own tone over RTP. Each phone decodes what it receives and a Goertzel filter
//! says who it hears: everyone hears the others and never themselves; after
//! MUTEUSER nobody hears the muted phone. The 4011 client sees NEWUSER for each
//! phone and DELUSER as they hang up; the store keeps the session and callers.
//!
//! The phones are built from tutti's own SIP user agent and media legs, so the
//! test drives real SIP (INVITE, 200, ACK, BYE) and real RTP end to end.

mod support;

use std::time::Duration;

use support::http::{id_of, rest};
use support::phone::{
    Control, Phones, desk_phones, level, packets_in_a_second, press, talk, until_level,
};
use support::{Server, metric};

const TONES: [f64; 3] = [440.0, 1000.0, 1700.0];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phones_hear_each_other_through_the_server_and_mute_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");

    let mut control = tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(
            control.command("NEWCONF,4001,\"Acme, Ltd\",Ann,10,,,,", "NEWCONF"),
            ["NEWCONF,OK"]
        );
        control
    })
    .await
    .expect("4011 setup");
    let created = control.event("NEWCONF,");
    let conf_guid = created.split(',').nth(1).expect("conf guid").to_owned();

    // Three phones dial in.
    let mut line = Phones::new().await;
    let target = format!("sip:4001@{sip}");
    let mut phones = Vec::new();
    for (i, tone) in TONES.iter().enumerate() {
        phones.push(line.dial(&target, i as u64 + 1, *tone).await);
    }

    // 1. Everyone hears the other two and not themselves. Listened to in 1 s
    // rounds until that holds (at most six), so a loaded machine's scheduling
    // hiccup is not taken for a mixing fault; the matrix is reported if it never
    // does.
    let mut matrix = Vec::new();
    for _ in 0..6 {
        talk(&mut phones, 50).await;
        matrix =
            phones.iter().map(|phone| TONES.map(|tone| level(phone, tone))).collect::<Vec<_>>();
        let right = matrix.iter().enumerate().all(|(p, row)| {
            row.iter()
                .enumerate()
                .all(|(t, heard)| if t == p { *heard < 100.0 } else { *heard > 500.0 })
        });
        if right {
            break;
        }
    }
    for (p, row) in matrix.iter().enumerate() {
        for (t, heard) in row.iter().enumerate() {
            let tone = TONES[t];
            if t == p {
                assert!(
                    *heard < 100.0,
                    "phone {p} hears itself ({tone} Hz at {heard:.0}): {matrix:.0?}"
                );
            } else {
                assert!(
                    *heard > 500.0,
                    "phone {p} does not hear {tone} Hz ({heard:.0}): {matrix:.0?}"
                );
            }
        }
    }

    // 2. The control client saw them arrive, lists them, and mutes phone 1.
    let (mut control, users) = tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            control.event(&format!("NEWUSER,{conf_guid},"));
        }
        let users = control.command(&format!("LISTUSER,{conf_guid}"), "LISTUSER");
        (control, users)
    })
    .await
    .expect("4011 list");
    assert_eq!(users.len(), 4, "three users and LISTUSER,OK: {users:?}");
    let phone1 = users.iter().find(|l| l.contains("phone1")).expect("phone1 listed");
    let call_guid = phone1.split(',').nth(2).expect("call guid").to_owned();
    let mut control = tokio::task::spawn_blocking(move || {
        assert_eq!(
            control.command(&format!("MUTEUSER,{call_guid},1"), "MUTEUSER"),
            ["MUTEUSER,OK"]
        );
        control
    })
    .await
    .expect("4011 mute");
    talk(&mut phones, 75).await;
    for (p, phone) in phones.iter().enumerate().skip(1) {
        let muted = level(phone, TONES[0]);
        assert!(muted < 100.0, "phone {p} still hears the muted phone ({muted:.0})");
        assert!(level(phone, TONES[3 - p]) > 500.0, "phone {p} lost the other speaker");
    }

    // 3. Hanging up: DELUSER for each, then the server stops cleanly.
    line.ua.shutdown().await;
    drop(phones);
    let control = tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            control.event("DELUSER,");
        }
        control
    })
    .await
    .expect("4011 deluser");
    drop(control);
    assert_eq!(server.stop_with("TERM").code(), Some(0));

    // The store kept the session and its three callers, all ended.
    let store =
        tutti_api::Store::open(&format!("sqlite://{}", dir.path().join("tutti.db").display()))
            .await
            .expect("open store");
    let conference = store.conference_by_number("4001").await.expect("lookup").expect("conference");
    let calls = store.calls_of(&conference.uid).await.expect("calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].status, tutti_api::model::CallStatus::Closed);
    let callers = store.callers_of(&calls[0].uid).await.expect("callers");
    assert_eq!(callers.len(), 3);
    assert!(callers.iter().all(|c| !c.active && c.end_time.is_some()), "{callers:?}");
    assert!(callers.iter().any(|c| c.ani == "phone1" && c.mute), "the mute was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderator_keys_mute_the_room_and_lock_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server =
        Server::start(dir.path(), &["--control-password", "secret", "--log", "info,tutti=debug"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    let control = tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        let answer = control.command("NEWCONF,4002,Acme,Ann,10,,,,1234", "NEWCONF");
        assert_eq!(answer, ["NEWCONF,OK"]);
        control
    })
    .await
    .expect("4011 setup");
    // The moderator PIN is not part of TCP 4011's NEWCONF: set it in the store,
    // as the PBX API will.
    let store =
        tutti_api::Store::open(&format!("sqlite://{}", dir.path().join("tutti.db").display()))
            .await
            .expect("store");
    let mut conference =
        store.conference_by_number("4002").await.expect("lookup").expect("conference");
    conference.moderator_pin = Some("9999".into());
    store.update(&conference).await.expect("moderator pin");

    let mut line = Phones::new().await;
    assert!(
        line.try_dial(&format!("sip:4002*1111@{sip}"), 9).await.is_err(),
        "a wrong PIN is refused"
    );
    let moderator = line.dial(&format!("sip:4002*9999@{sip}"), 1, 440.0).await;
    let participant = line.dial(&format!("sip:4002*1234@{sip}"), 2, 1000.0).await;
    let mut phones = vec![moderator, participant];
    let level0 = until_level(&mut phones, 0, 1000.0, true).await;
    assert!(level0 > 500.0, "the moderator hears the participant ({level0:.0})");

    // A participant may not mute the room.
    press(&mut phones, 1, "*91").await;
    talk(&mut phones, 60).await;
    assert!(level(&phones[0], 1000.0) > 500.0, "*91 from a participant does nothing");

    // *91 from the moderator mutes the participant, *90 unmutes.
    press(&mut phones, 0, "*91").await;
    let muted = until_level(&mut phones, 0, 1000.0, false).await;
    assert!(muted < 100.0, "*91 did not mute the participant ({muted:.0}):\n{}", server.logs());
    assert!(level(&phones[1], 440.0) > 500.0, "the moderator still speaks");
    press(&mut phones, 0, "*90").await;
    let unmuted = until_level(&mut phones, 0, 1000.0, true).await;
    assert!(
        unmuted > 500.0,
        "*90 did not unmute the participant ({unmuted:.0}):\n{}",
        server.logs()
    );

    // *8 asks the moderator for the number to invite (spoken prompt); * cancels.
    for phone in phones.iter_mut() {
        phone.tone = 0.0;
    }
    press(&mut phones, 0, "*8").await;
    talk(&mut phones, 50).await;
    let prompt = tutti_media::tone::rms(&phones[0].heard);
    assert!(prompt > 300.0, "no invite prompt heard after *8 (RMS {prompt:.0})");
    // The prompt (3.4 s) still plays to the moderator in the second half of the
    // window; by then the codec tail of the tones that just stopped has died
    // away, so the participant must hear silence.
    let other = {
        let heard = &phones[1].heard;
        tutti_media::tone::rms(&heard[heard.len() / 2..])
    };
    assert!(
        other < 100.0,
        "the prompt is for the caller only (RMS {other:.0}, caller {prompt:.0})"
    );
    press(&mut phones, 0, "*").await;

    // *92 locks: the next caller is refused, moderators included.
    press(&mut phones, 0, "*92").await;
    // The lock is announced to 4011 clients as MODCONF: wait for it.
    let control = tokio::task::spawn_blocking(move || {
        let mut control = control;
        control.event("MODCONF,");
        control
    })
    .await
    .expect("MODCONF after *92");
    let refused = line.try_dial(&format!("sip:4002*9999@{sip}"), 3).await;
    assert!(refused.is_err(), "a locked conference refuses callers");

    // The control client saw every digit.
    let digits = tokio::task::spawn_blocking(move || {
        let mut control = control;
        (0..15).map(|_| control.event("DIGIT,")).collect::<Vec<_>>()
    })
    .await
    .expect("digits");
    let pressed: String = digits.iter().filter_map(|l| l.rsplit(',').next()).collect();
    assert_eq!(pressed, "*91*91*90*8**92");
    line.ua.shutdown().await;
    assert_eq!(server.stop_with("TERM").code(), Some(0));
}

/// Dialling a PIN-protected conference without the PIN: the call is answered
/// and a spoken prompt asks for it; a wrong PIN does not open the door, the
/// right one does (NEWUSER). Three wrong PINs end in goodbye and a BYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_entry_by_keypad() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    let control = tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(control.command("NEWCONF,4005,Acme,Ann,10,,,,2468", "NEWCONF"), ["NEWCONF,OK"]);
        control
    })
    .await
    .expect("4011 setup");
    let mut line = Phones::new().await;

    // Answered without a PIN, and the prompt speaks.
    let mut caller = vec![line.dial(&format!("sip:4005@{sip}"), 1, 0.0).await];
    talk(&mut caller, 75).await;
    let spoken = tutti_media::tone::rms(&caller[0].heard);
    assert!(spoken > 300.0, "no prompt heard (RMS {spoken:.0}):\n{}", server.logs());

    // A wrong PIN, then the right one: only then does the caller join.
    press(&mut caller, 0, "1111#").await;
    talk(&mut caller, 25).await;
    let (control, listed) = tokio::task::spawn_blocking(move || {
        let mut control = control;
        let created = control.event("NEWCONF,");
        let guid = created.split(',').nth(1).expect("guid").to_owned();
        let listed = control.command(&format!("LISTUSER,{guid}"), "LISTUSER");
        (control, listed)
    })
    .await
    .expect("LISTUSER");
    assert_eq!(listed, ["LISTUSER,OK"], "a wrong PIN must not let the caller in");
    press(&mut caller, 0, "2468#").await;
    let joined = tokio::task::spawn_blocking(move || {
        let mut control = control;
        control.event("NEWUSER,")
    })
    .await
    .expect("NEWUSER");
    assert!(joined.contains("phone1"), "{joined}");

    // Three wrong PINs: goodbye, then the server hangs up.
    let mut stranger = vec![line.dial(&format!("sip:4005@{sip}"), 2, 0.0).await];
    press(&mut stranger, 0, "0#0#0#").await;
    let hung_up = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            talk(&mut stranger, 5).await;
            while let Ok(event) = line.events.try_recv() {
                if let tutti_sip::ua::UaEvent::Hangup { reason, .. } = event {
                    return reason;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no BYE after three wrong PINs:\n{}", server.logs()));
    assert_eq!(hung_up, tutti_sip::ua::HangupReason::RemoteBye);
    line.ua.shutdown().await;
    assert_eq!(server.stop_with("TERM").code(), Some(0));
}

/// SIPp, killed if still running when dropped.
struct SippGuard(std::process::Child);

impl Drop for SippGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star8_invites_a_sipp_callee_who_then_hears_the_room() {
    // SIPp answers the invitation and echoes the RTP it receives: the caller
    // hearing its own tone back proves the callee joined, hears the room and
    // is heard by it.
    let sipp_port = support::free_udp_range(1);
    let media_port = support::free_udp_range(4);
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy = format!("127.0.0.1:{sipp_port}");
    let mut server =
        Server::start(dir.path(), &["--control-password", "secret", "--outbound-proxy", &proxy]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    let sipp = std::process::Command::new("sipp")
        .arg("-sf")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sipp/uas_answer.xml"))
        .args(["-i", "127.0.0.1", "-p", &sipp_port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media_port.to_string(), "-rtp_echo"])
        .args(["-nostdin", "-m", "1", "-timeout", "30s"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp runs (apt-get install sip-tester)");
    let _sipp = SippGuard(sipp);
    let _control = tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(control.command("NEWCONF,4003,Acme,Ann,10,,,,", "NEWCONF"), ["NEWCONF,OK"]);
        control
    })
    .await
    .expect("4011 setup");

    let mut line = Phones::new().await;
    let mut phones = vec![line.dial(&format!("sip:4003@{sip}"), 1, 0.0).await];
    talk(&mut phones, 10).await;
    press(&mut phones, 0, "*8").await;
    // The invite prompt plays; type the number over it.
    press(&mut phones, 0, "5551234#").await;
    phones[0].tone = 440.0;
    let echoed = until_level(&mut phones, 0, 440.0, true).await;
    assert!(
        echoed > 500.0,
        "the invited callee did not join or hear the room ({echoed:.0}):\n{}",
        server.logs()
    );
}

/// PIN guessing across calls: one caller (one source address and caller ID)
/// that dials ten wrong PINs is refused with 403 even with the right PIN for
/// the lockout, and the lockout is logged; another caller from the same
/// address (a SIP proxy's other users) still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_guessing_across_calls_locks_that_caller_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    let _control = tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(control.command("NEWCONF,4006,Acme,Ann,10,,,,2468", "NEWCONF"), ["NEWCONF,OK"]);
        control
    })
    .await
    .expect("4011 setup");
    let mut line = Phones::new().await;
    // The guesser is always phone7 (its From user): ten wrong PINs, each a 403.
    for guess in 0..10 {
        let refused = line.try_dial(&format!("sip:4006*{guess:04}@{sip}"), 7).await;
        assert_eq!(refused.err().as_deref(), Some("403"), "guess {guess}");
    }
    // Now even the right PIN is refused, before any PIN is checked.
    let locked = line.try_dial(&format!("sip:4006*2468@{sip}"), 7).await;
    assert_eq!(locked.err().as_deref(), Some("403"), "the guesser is locked out");
    server.wait_for_log("PIN guessing: locked out", Duration::from_secs(5));
    server.wait_for_log("call refused: locked out for guessing PINs", Duration::from_secs(5));
    // Another caller from the same address is not.
    let mut others = vec![line.dial(&format!("sip:4006*2468@{sip}"), 8, 440.0).await];
    talk(&mut others, 10).await;
    line.ua.shutdown().await;
    assert_eq!(server.stop_with("TERM").code(), Some(0));
}

/// An INVITE flood from one address (a raw UDP socket on the same loopback
/// address as the phones) is answered 503 with Retry-After beyond the
/// address's rate, and logged, while the call already up goes on: the two
/// phones in it still hear each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_flood_over_udp_and_tcp_gets_503_while_the_live_call_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server =
        Server::start(dir.path(), &["--control-password", "secret", "--invite-rate", "2"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    let _control = tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(control.command("NEWCONF,4007,Acme,Ann,10,,,,", "NEWCONF"), ["NEWCONF,OK"]);
        control
    })
    .await
    .expect("4011 setup");
    let mut line = Phones::new().await;
    let mut phones = vec![
        line.dial(&format!("sip:4007@{sip}"), 1, TONES[0]).await,
        line.dial(&format!("sip:4007@{sip}"), 2, TONES[1]).await,
    ];
    assert!(until_level(&mut phones, 0, TONES[1], true).await > 500.0, "the call is up");

    // Thirty new INVITEs at once from one socket: at most the burst gets past.
    let flood = tokio::task::spawn_blocking(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let local = socket.local_addr().expect("addr");
        for n in 0..30 {
            let invite = format!(
                "INVITE sip:9999@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKflood{n};rport\r\n\
                 From: <sip:flood@127.0.0.1>;tag=f{n}\r\nTo: <sip:9999@127.0.0.1>\r\nCall-ID: flood{n}@test\r\n\
                 CSeq: 1 INVITE\r\nContact: <sip:flood@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            socket.send_to(invite.as_bytes(), sip).expect("send");
        }
        let mut answers = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        answers
    });
    // The call goes on meanwhile.
    talk(&mut phones, 50).await;
    let answers = flood.await.expect("flood");
    let busy: Vec<&String> = answers.iter().filter(|a| a.starts_with("SIP/2.0 503 ")).collect();
    assert!(busy.len() >= 20, "{} of 30 got 503: {answers:?}", busy.len());
    assert!(busy.iter().all(|a| a.contains("\r\nRetry-After: 5\r\n")), "{busy:?}");
    server.wait_for_log("INVITE flood", Duration::from_secs(5));

    // The same over one TCP connection: the limit is the source's, whatever
    // the transport, and a stream gets a 503 for each (nothing is dropped).
    let flood = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(sip).expect("connect over TCP");
        let local = stream.local_addr().expect("addr");
        let mut invites = String::new();
        for n in 0..30 {
            invites.push_str(&format!(
                "INVITE sip:9999@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcpflood{n}\r\n\
                 From: <sip:flood@127.0.0.1>;tag=t{n}\r\nTo: <sip:9999@127.0.0.1>\r\nCall-ID: tcpflood{n}@test\r\n\
                 CSeq: 1 INVITE\r\nContact: <sip:flood@{local};transport=tcp>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ));
        }
        stream.write_all(invites.as_bytes()).expect("send");
        stream.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
        let mut answers = Vec::new();
        let mut buf = [0u8; 16384];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            answers.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answers).into_owned()
    });
    talk(&mut phones, 50).await;
    let answers = flood.await.expect("TCP flood");
    let busy: Vec<&str> = answers.split("SIP/2.0 ").filter(|a| a.starts_with("503 ")).collect();
    assert!(busy.len() >= 20, "{} of 30 got 503 over TCP: {answers}", busy.len());
    assert!(busy.iter().all(|a| a.contains("\r\nRetry-After: 5\r\n")), "{busy:?}");

    // Both phones still hear each other.
    assert!(until_level(&mut phones, 0, TONES[1], true).await > 500.0, "phone 1 hears phone 2");
    assert!(until_level(&mut phones, 1, TONES[0], true).await > 500.0, "phone 2 hears phone 1");
    line.ua.shutdown().await;
    assert_eq!(server.stop_with("TERM").code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_options_and_register_flood_is_dropped_beyond_the_rate_while_the_call_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    // --invite-rate 2: other out-of-dialog requests 8 a second, bursts of 16.
    let mut server =
        Server::start(dir.path(), &["--control-password", "secret", "--invite-rate", "2"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    let _control = tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(control.command("NEWCONF,4008,Acme,Ann,10,,,,", "NEWCONF"), ["NEWCONF,OK"]);
        control
    })
    .await
    .expect("4011 setup");
    let mut line = Phones::new().await;
    let mut phones = vec![
        line.dial(&format!("sip:4008@{sip}"), 1, TONES[0]).await,
        line.dial(&format!("sip:4008@{sip}"), 2, TONES[1]).await,
    ];
    assert!(until_level(&mut phones, 0, TONES[1], true).await > 500.0, "the call is up");

    // 400 OPTIONS and REGISTERs at once from one socket.
    let flood = tokio::task::spawn_blocking(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let local = socket.local_addr().expect("addr");
        let started = std::time::Instant::now();
        for n in 0..400 {
            let method = if n % 2 == 0 { "OPTIONS" } else { "REGISTER" };
            let request = format!(
                "{method} sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKopt{n};rport\r\n\
                 From: <sip:flood@127.0.0.1>;tag=f{n}\r\nTo: <sip:flood@127.0.0.1>\r\nCall-ID: opt{n}@test\r\n\
                 CSeq: 1 {method}\r\nContact: <sip:flood@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            socket.send_to(request.as_bytes(), sip).expect("send");
        }
        let sent_in = started.elapsed();
        let mut answers = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        (answers, sent_in)
    });
    talk(&mut phones, 50).await;
    let (answers, sent_in) = flood.await.expect("flood");
    // The burst (16) and the rate over the sending time get through; the
    // rest is dropped unanswered.
    let allowed = 16.0 + 8.0 * (sent_in.as_secs_f64() + 0.6);
    assert!(!answers.is_empty(), "the first requests are answered");
    assert!(
        (answers.len() as f64) <= allowed,
        "{} of 400 answered (at most {allowed:.0}): {answers:?}",
        answers.len()
    );
    assert!(answers.iter().any(|a| a.starts_with("SIP/2.0 200 ")), "OPTIONS answered 200");
    server.wait_for_log("request flood", Duration::from_secs(5));
    // The call's own requests are inside its dialog and never limited.
    assert!(until_level(&mut phones, 0, TONES[1], true).await > 500.0, "phone 1 hears phone 2");
    assert!(until_level(&mut phones, 1, TONES[0], true).await > 500.0, "phone 2 hears phone 1");
    line.ua.shutdown().await;
    assert_eq!(server.stop_with("TERM").code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_from_a_foreign_address_is_dropped_unheard_and_counted_and_members_show_quality() {
    const FOREIGN: f64 = 2300.0;
    let dir = tempfile::tempdir().expect("temp dir");
    let rtp = support::free_udp_range(64);
    let rtp_ports = format!("{rtp}-{}", rtp + 63);
    let server = Server::start(dir.path(), &["--rtp-ports", &rtp_ports]);
    let sip = server.logged_addr("SIP listening", "udp");
    let http = server.http;
    let key = tokio::task::block_in_place(|| support::default_api_key(dir.path()));
    let room = tokio::task::block_in_place(|| {
        rest(http, &key, "POST", "/conferences", Some(&serde_json::json!({"number": "4009"})))
    });
    assert_eq!(room.status, 201, "{}", room.body);
    let members = format!("/conferences/{}/members", id_of(&room.json()["id"]));
    let mut line = Phones::new().await;
    let mut phones = vec![
        line.dial(&format!("sip:4009@{sip}"), 1, TONES[0]).await,
        line.dial(&format!("sip:4009@{sip}"), 2, TONES[1]).await,
    ];
    assert!(until_level(&mut phones, 0, TONES[1], true).await > 500.0, "the call is up");
    let (_, before) = tokio::task::block_in_place(|| server.get("/metrics"));
    let foreign = "tutti_rtp_dropped_total{reason=\"foreign_source\"}";
    assert_eq!(metric(&before, foreign), Some(0.0), "{before}");
    let legs: f64 = ["PCMU", "PCMA", "G722", "opus"]
        .iter()
        .filter_map(|c| metric(&before, &format!("tutti_media_legs{{codec=\"{c}\"}}")))
        .sum();
    assert_eq!(legs, 2.0, "two legs alive: {before}");

    // Someone else sends a loud tone, as well-formed RTP for the codec in use,
    // to every port of the range while the phones talk.
    let mut codec = phones[0].leg.codec().new_codec();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let pt = phones[0].leg.payload_type();
    let mut frame = vec![0i16; codec.samples_per_frame()];
    let mut payload = [0u8; 1500];
    let rate = f64::from(codec.sample_rate());
    let mut sent = 0;
    for round in 0..25u16 {
        let len = frame.len();
        for (n, sample) in frame.iter_mut().enumerate() {
            let t = (usize::from(round) * len + n) as f64 / rate;
            *sample = (20_000.0 * (2.0 * std::f64::consts::PI * FOREIGN * t).sin()) as i16;
        }
        let len = codec.encode(&frame, &mut payload).expect("encode");
        let mut packet = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
        packet[2..4].copy_from_slice(&round.to_be_bytes());
        let ts = u32::from(round) * frame.len() as u32;
        packet[4..8].copy_from_slice(&ts.to_be_bytes());
        packet.extend_from_slice(&payload[..len]);
        for port in (rtp..rtp + 64).step_by(2) {
            socket.send_to(&packet, ("127.0.0.1", port)).expect("send");
            sent += 1;
        }
        talk(&mut phones, 1).await;
    }
    talk(&mut phones, 25).await;
    for phone in &phones {
        let heard = level(phone, FOREIGN);
        assert!(heard < 100.0, "a phone hears the foreign tone at {heard:.0} ({sent} sent)");
    }
    assert!(until_level(&mut phones, 0, TONES[1], true).await > 500.0, "the call goes on");
    let (_, after) = tokio::task::block_in_place(|| server.get("/metrics"));
    let dropped = metric(&after, foreign).expect("foreign_source counter");
    assert!(dropped >= 50.0, "each latched leg dropped the 25 foreign packets: {dropped}");
    for counter in ["tutti_rtp_received_packets_total", "tutti_rtp_sent_packets_total"] {
        assert!(metric(&after, counter).is_some_and(|v| v > 100.0), "{counter}: {after}");
    }

    // The REST members list shows each caller's quality as tutti receives it.
    let listed = tokio::task::block_in_place(|| rest(http, &key, "GET", &members, None));
    let items = listed.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2, "{items:?}");
    for item in &items {
        let quality = &item["quality"];
        assert!(quality["packets_received"].as_u64().is_some_and(|n| n > 50), "{item}");
        assert!(quality["loss_percent"].as_f64().is_some_and(|l| l < 1.0), "{item}");
        assert!(quality["mos"].as_f64().is_some_and(|m| m > 4.0), "{item}");
    }

    // While the two calls are up, /metrics shows what is held for them; once
    // the phones hang up, every one of those gauges is back to zero (what the
    // soak checks after 9,000 calls; it also waits for the BYEs' transactions,
    // which UDP keeps for 32 s after they finish).
    let held = [
        "tutti_sip_calls",
        "tutti_sip_dialogs",
        "tutti_engine_calls",
        "tutti_live_callers",
        "tutti_sip_waiting_ack",
    ];
    for name in &held[..4] {
        assert_eq!(metric(&after, name), Some(2.0), "{name} with two calls up: {after}");
    }
    line.ua.shutdown().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, now) = tokio::task::block_in_place(|| server.get("/metrics"));
        let left: Vec<_> = held
            .iter()
            .filter(|name| metric(&now, name) != Some(0.0))
            .map(|name| format!("{name}={:?}", metric(&now, name)))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still held after the hang-ups: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The listening load generator (`tutti-callers`, scripts/load/) against the
/// real binary: 30 callers in 6 rooms, two talkers per room. Every caller's
/// checks hold as audio: each hears its room's talkers and not itself,
/// nothing is lost, every click is found in what the others receive; and the
/// timing figures it exists for (lateness against the 20 ms grid, the
/// click's delay, jitter) are measured. Their limits belong to the benchmark
/// runs in docs/performance.md, not to a debug build sharing the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listening_load_generator_hears_every_room_right() {
    listening_callers("pcmu", 30, &[]).await;
}

/// G.711 callers with voice activity detection: the silent ones send a
/// comfort-noise packet every 500 ms instead of silence every 20 ms; tutti
/// takes them as silence and the rooms sound the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listening_load_generator_with_vad_hears_every_room_right() {
    listening_callers("pcmu", 18, &["--comfort-noise", "--vad"]).await;
}

/// The same over Opus (decoded by tutti, mixed at the room's rate, encoded
/// again), with fewer callers: an unoptimised Opus costs much more. The
/// silent callers are in DTX, as tutti's SDP asks (`usedtx=1`): a
/// TOC-only packet every 400 ms. (The test phones of the other tests send
/// Opus every 20 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listening_load_generator_hears_every_opus_room_right() {
    listening_callers("opus", 12, &["--opus-dtx"]).await;
}

/// `calls` callers of `codec` in 6 rooms, two talkers in each; `extra`
/// arguments for the load generator.
async fn listening_callers(codec: &str, calls: usize, extra: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        for number in 4101..=4106 {
            let answer = control.command(&format!("NEWCONF,{number},Load,Load,0,,,,"), "NEWCONF");
            assert_eq!(answer, ["NEWCONF,OK"]);
        }
    })
    .await
    .expect("rooms");

    let json = dir.path().join("callers.json");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tutti-callers"))
        .args(["--target", &format!("sip:{{number}}@{sip}"), "--numbers", "4101-4106"])
        .args(["--calls", &calls.to_string(), "--codec", codec, "--talkers", "2", "--rate", "30"])
        .args(["--settle", "2", "--hold", "5"])
        .args(extra)
        .arg("--json")
        .arg(&json)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("tutti-callers finished in time")
        .expect("tutti-callers ran");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!("no results ({e}); stderr: {}", String::from_utf8_lossy(&output.stderr))
    });
    let r: serde_json::Value = serde_json::from_str(&text).expect("results are JSON");
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {r}"));
    assert_eq!(
        (n("up"), n("failed"), n("ended_early"), n("not_hung_up")),
        (calls as f64, 0.0, 0.0, 0.0),
        "{r}"
    );
    assert_eq!(n("decode_errors"), 0.0, "{r}");
    // 4 seconds of listening at least: in each of the 6 rooms, 2 talkers are
    // heard by everyone else in it, and each talker is checked for its own tone.
    let others = calls as f64 / 6.0 - 1.0;
    assert!(n("heard_checks") >= 6.0 * 2.0 * others * 3.0, "{r}");
    assert_eq!(n("heard_pct"), 100.0, "{r}");
    // A talker's tone arrives at about 4000; a window in which some of its
    // packets came late to tutti (the suite runs beside other tests) and were
    // concealed weakens it: 1837 was seen. Twice the heard limit (500) still
    // tells a talker from leakage.
    assert!(n("weakest_heard") > 1000.0, "{r}");
    assert!(n("self_checks") >= 12.0 * 3.0, "{r}");
    assert_eq!((n("self_heard"), n("own_clicks_heard")), (0.0, 0.0), "{r}");
    assert!(n("loudest_self") < 100.0, "{r}");
    assert!(n("lost_pct") <= 1.0, "{r}");
    assert!(n("pps_per_call") > 45.0 && n("pps_per_call") < 55.0, "{r}");
    assert!(
        n("clicks_found") >= 0.9 * n("clicks_expected")
            && n("clicks_expected") >= 6.0 * others * 4.0,
        "{r}"
    );
    for measured in
        ["lateness_ms_p50", "lateness_ms_p99", "click_ms_p50", "click_ms_p99", "jitter_ms_p50"]
    {
        assert!(n(measured) >= 0.0, "{measured}: {r}");
    }
    // The click cannot come back before it was sent, nor take a second.
    assert!(n("click_ms_p50") > 0.0 && n("click_ms_max") < 1000.0, "{r}");
    assert!(output.status.success(), "{r}");
    if extra.contains(&"--vad") {
        let (_, text) = tokio::task::block_in_place(|| server.get("/metrics"));
        let cn = metric(&text, "tutti_rtp_comfort_noise_received_total").expect("the counter");
        // 6 silent callers (one a room), 2 packets a second each, for 5 s at least.
        assert!(cn >= 50.0, "comfort-noise packets received: {cn}");
    }
    assert!(server.stop_with("TERM").success());
}

/// Starts a server with `args`, makes conference 4020 over TCP 4011 and
/// returns its SIP target.
async fn conference_4020(dir: &std::path::Path, args: &[&str]) -> (Server, String) {
    let mut all = vec!["--control-password", "secret"];
    all.extend_from_slice(args);
    let server = Server::start(dir, &all);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(control.command("NEWCONF,4020,Quiet,Ann,10,,,,", "NEWCONF"), ["NEWCONF,OK"]);
    })
    .await
    .expect("4011 setup");
    (server, format!("sip:4020@{sip}"))
}

/// Two silent callers on `line` (a tone of 0 Hz; a lone caller would hear
/// music on hold) hear digital silence, which goes out as a few packets a
/// second (comfort noise or DTX) that their phones count as received,
/// refuse none of and lose nothing of. A talker joins: they hear it at once,
/// at 50 packets a second, while the talker, who hears only silence, gets the
/// few; `/metrics` counts them.
async fn silence_goes_out_sparsely_until_someone_talks(
    server: &Server,
    line: &mut Phones,
    target: &str,
) -> Vec<support::phone::Phone> {
    let mut phones = vec![line.dial(target, 1, 0.0).await, line.dial(target, 2, 0.0).await];
    let mut quiet = u64::MAX;
    for _ in 0..10 {
        quiet = packets_in_a_second(&mut phones, 0).await;
        if quiet <= 3 {
            break;
        }
    }
    assert!(quiet <= 3, "a caller hearing silence got {quiet} packets in a second");
    let (stats, _, rejects) = phones[0].leg.stats();
    assert_eq!(rejects.unknown_payload_type, 0, "{rejects:?}");
    assert_eq!(stats.loss_percent, 0.0, "{stats:?}");

    phones.push(line.dial(target, 3, 440.0).await);
    let heard = until_level(&mut phones, 0, 440.0, true).await;
    assert!(heard > 500.0, "the talker who joined is heard: {heard:.0}");
    let busy = packets_in_a_second(&mut phones, 1).await;
    assert!((45..=55).contains(&busy), "{busy} packets in a second of speech");
    let talker = packets_in_a_second(&mut phones, 2).await;
    assert!(talker <= 3, "the talker, hearing silence, got {talker} packets");
    let (_, text) = tokio::task::block_in_place(|| server.get("/metrics"));
    let sent = metric(&text, "tutti_rtp_comfort_noise_sent_total").expect("the counter");
    assert!(sent >= 4.0, "comfort-noise or DTX packets sent: {sent}");
    phones
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_who_hear_silence_get_comfort_noise_and_then_the_room_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, target) = conference_4020(dir.path(), &[]).await;
    // Desk phones: G.711 with CN/8000 beside it (the test phones' default
    // puts Opus first, which takes no CN).
    let mut line = Phones::with_policy(desk_phones()).await;
    let phones = silence_goes_out_sparsely_until_someone_talks(&server, &mut line, &target).await;
    line.ua.shutdown().await;
    drop(phones);
    drop(server);

    // Switched off, silence goes out as audio: a packet every 20 ms.
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, target) = conference_4020(dir.path(), &["--comfort-noise", "off"]).await;
    let mut line = Phones::with_policy(desk_phones()).await;
    let mut phones = vec![line.dial(&target, 1, 0.0).await, line.dial(&target, 2, 0.0).await];
    talk(&mut phones, 25).await;
    let quiet = packets_in_a_second(&mut phones, 0).await;
    assert!((45..=55).contains(&quiet), "without comfort noise: {quiet} packets in a second");
    line.ua.shutdown().await;
    drop(server);
}

/// The same for Opus phones, which ask for DTX (`usedtx=1`, as the test
/// phones' SDP does): silence goes out as 200 ms of silent frames, then a
/// table-of-contents-only packet every 400 ms, which the phones play as
/// silence without a decode error or a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_callers_who_hear_silence_get_dtx_and_then_the_room_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, target) = conference_4020(dir.path(), &[]).await;
    let mut line = Phones::new().await;
    let phones = silence_goes_out_sparsely_until_someone_talks(&server, &mut line, &target).await;
    assert_eq!(phones[0].leg.codec(), tutti_media::codec::CodecKind::Opus);
    line.ua.shutdown().await;
}
