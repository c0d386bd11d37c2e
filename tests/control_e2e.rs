//! TCP 4011 against the real binary with real calls: two logged-in clients both
//! receive every event, a client that has not logged in receives none; a phone
//! dials in (NEWUSER, LISTUSER), hears a WAV played to it (PLAYWAV PLAYING and
//! DONE, the tone checked with a Goertzel filter), presses a key (DIGIT); the
//! server calls out to a second phone that answers (CALLUSER Presenting, Ringing,
//! Connected, then NEWUSER) and the two hear each other; DROPUSER ends the first
//! call (DELUSER).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::Server;
use support::phone::{Control, LOOPBACK, Phone, Phones, level, talk};
use tutti_media::io::LegIo;
use tutti_media::leg::Leg;
use tutti_sip::sdp::{LocalMedia, MediaDirection};
use tutti_sip::ua::{HangupReason, SipConfig, SipUa, UaEvent};

const PROMPT_TONE: f64 = 2300.0;

/// A one-second 2300 Hz tone as `<sounds>/tone.wav`.
fn write_prompt(sounds: &std::path::Path) {
    std::fs::create_dir_all(sounds).expect("sounds dir");
    let mut wav =
        tutti_media::wav::WavWriter::create(&sounds.join("tone.wav"), 8000).expect("create wav");
    let samples: Vec<i16> = (0..8000)
        .map(|n| {
            (6000.0 * (2.0 * std::f64::consts::PI * PROMPT_TONE * n as f64 / 8000.0).sin()) as i16
        })
        .collect();
    wav.write(&samples).expect("write wav");
    wav.finish().expect("finish wav");
}

/// Runs a blocking 4011 exchange off the async runtime.
async fn with_control<T: Send + 'static>(
    control: Control,
    f: impl FnOnce(&mut Control) -> T + Send + 'static,
) -> (Control, T) {
    tokio::task::spawn_blocking(move || {
        let mut control = control;
        let out = f(&mut control);
        (control, out)
    })
    .await
    .expect("4011 exchange")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_clients_steer_and_follow_real_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_prompt(&dir.path().join("sounds"));
    let mut server =
        Server::start(dir.path(), &["--control-password", "secret", "--ring-timeout", "10"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");

    // Two clients log in; a third does not.
    let (a, b, stranger) = tokio::task::spawn_blocking(move || {
        let a = Control::connect(control_addr, "secret");
        let b = Control::connect(control_addr, "secret");
        let stranger = std::net::TcpStream::connect(control_addr).expect("connect");
        (a, b, stranger)
    })
    .await
    .expect("connect");
    let (a, created) = with_control(a, |a| {
        assert_eq!(a.command("NEWCONF,4001,\"Acme, Ltd\",Ann,10,,,,", "NEWCONF"), ["NEWCONF,OK"]);
        let unknown = a.command("FROBNICATE,1", "FROBNICATE");
        assert_eq!(unknown, ["ERROR,\"Unknown command\",FROBNICATE"]);
        a.event("NEWCONF,")
    })
    .await;
    let conf_guid = created.split(',').nth(1).expect("guid").to_owned();
    let (b, seen_by_b) = with_control(b, |b| b.event("NEWCONF,")).await;
    assert_eq!(seen_by_b, created, "both clients get the event");

    // A phone dials in: NEWUSER to both clients, LISTUSER shows it.
    let mut line = Phones::new().await;
    let mut phones = vec![line.dial(&format!("sip:4001@{sip}"), 1, 440.0).await];
    let guid = conf_guid.clone();
    let (a, (newuser, users)) = with_control(a, move |a| {
        let newuser = a.event(&format!("NEWUSER,{guid},"));
        let users = a.command(&format!("LISTUSER,{guid}"), "LISTUSER");
        (newuser, users)
    })
    .await;
    let call_guid = newuser.split(',').nth(2).expect("call guid").to_owned();
    assert!(newuser.contains("phone1"), "tel-num is the caller's number: {newuser}");
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(users[0].starts_with(&format!("LISTUSER,{conf_guid},{call_guid},")));
    let (b, _) = with_control(b, |b| b.event("NEWUSER,")).await;

    // PLAYWAV to the phone: PLAYING, the tone is heard, DONE.
    let call = call_guid.clone();
    let (a, answer) =
        with_control(a, move |a| a.command(&format!("PLAYWAV,{call},tone.wav,0"), "PLAYWAV")).await;
    assert_eq!(answer, ["PLAYWAV,OK"]);
    talk(&mut phones, 40).await;
    let heard = level(&phones[0], PROMPT_TONE);
    assert!(heard > 500.0, "the phone hears the WAV ({heard:.0}):\n{}", server.logs());
    let call = call_guid.clone();
    let (a, (playing, done)) = with_control(a, move |a| {
        (a.event(&format!("PLAYWAV,PLAYING,{call},")), a.event(&format!("PLAYWAV,DONE,{call}")))
    })
    .await;
    assert_eq!(playing, format!("PLAYWAV,PLAYING,{call_guid},\"tone.wav\""));
    assert_eq!(done, format!("PLAYWAV,DONE,{call_guid}"));
    let (a, traversal) = with_control(a, {
        let call = call_guid.clone();
        move |a| a.command(&format!("PLAYWAV,{call},../tutti.db,0"), "PLAYWAV")
    })
    .await;
    assert!(traversal[0].starts_with("PLAYWAV,ERROR,"), "no path traversal: {traversal:?}");

    // A key press reaches both clients as DIGIT.
    assert!(
        phones[0].leg.send_digit(tutti_media::dtmf::Digit::from_char('5').expect("digit"), 100)
    );
    talk(&mut phones, 10).await;
    let (a, digit) = with_control(a, |a| a.event("DIGIT,")).await;
    assert_eq!(digit, format!("DIGIT,{conf_guid},{call_guid},5"));
    let (b, digit_b) = with_control(b, |b| b.event("DIGIT,")).await;
    assert_eq!(digit_b, digit);

    // CALLUSER to a second phone that rings, then answers.
    let (callee, mut callee_events) =
        SipUa::start(SipConfig::new(SocketAddr::new(LOOPBACK, 0), LOOPBACK))
            .await
            .expect("callee UA");
    let callee_addr = callee.udp_addr();
    let guid = conf_guid.clone();
    let (a, answer) = with_control(a, move |a| {
        a.command(&format!("CALLUSER,{guid},sip:callee@{callee_addr}"), "CALLUSER")
    })
    .await;
    let answer = answer[0].clone();
    assert!(answer.starts_with(&format!("CALLUSER,OK,{conf_guid},")), "{answer}");
    let user_guid = answer.rsplit(',').next().expect("user guid").to_owned();
    let incoming = match tokio::time::timeout(Duration::from_secs(10), callee_events.recv()).await {
        Ok(Some(UaEvent::IncomingCall(incoming))) => incoming,
        other => panic!("no INVITE at the callee: {other:?}\n{}", server.logs()),
    };
    incoming.ringing().await.expect("180");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sockets = line.pool.bind(LOOPBACK, false).await.expect("callee ports");
    let local = LocalMedia {
        address: LOOPBACK,
        rtp_port: sockets.rtp_port(),
        session_id: 7,
        session_version: 1,
        direction: MediaDirection::SendRecv,
    };
    let negotiated = incoming.answer(local).await.expect("answer").expect("offer answered");
    let config = tutti::engine::media::leg_config(&negotiated, "callee@test".into());
    let leg = LegIo::spawn(
        2,
        Leg::new(config, Instant::now()).expect("leg"),
        sockets,
        line.notices.clone(),
    );
    let codec = leg.codec().new_codec();
    phones.push(Phone { leg, codec, tone: 1000.0, heard: Vec::new() });
    let user = user_guid.clone();
    let (a, progress) = with_control(a, move |a| {
        ["Presenting", "Ringing", "Connected"]
            .map(|state| a.event(&format!("CALLUSER,{user},{state}")))
    })
    .await;
    assert_eq!(progress.len(), 3);
    let guid = conf_guid.clone();
    let (a, joined) = with_control(a, move |a| a.event(&format!("NEWUSER,{guid},"))).await;
    assert!(joined.contains(&user_guid), "the callee joins under the CALLUSER guid: {joined}");

    // The dialled callee and the phone hear each other.
    talk(&mut phones, 60).await;
    let (to_callee, to_phone) = (level(&phones[1], 440.0), level(&phones[0], 1000.0));
    assert!(
        to_callee > 500.0 && to_phone > 500.0,
        "callee hears {to_callee:.0}, phone hears {to_phone:.0}"
    );

    // DROPUSER ends the first call: DELUSER to the clients, BYE to the phone.
    let call = call_guid.clone();
    let (a, dropped) = with_control(a, move |a| {
        let answer = a.command(&format!("DROPUSER,{call}"), "DROPUSER");
        (answer, a.event(&format!("DELUSER,{}", "")))
    })
    .await;
    assert_eq!(dropped.0, ["DROPUSER,OK"]);
    assert!(dropped.1.contains(&call_guid), "{}", dropped.1);
    let bye = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match line.events.recv().await {
                Some(UaEvent::Hangup { reason, .. }) => return reason,
                Some(_) => {}
                None => panic!("UA stopped"),
            }
        }
    })
    .await
    .expect("the phone is hung up");
    assert_eq!(bye, HangupReason::RemoteBye);

    // The client that never logged in was told so, and got no events.
    let stranger_lines = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, BufReader, Write};
        let mut s = stranger;
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        write!(s, "LISTCONF\r\n").expect("write");
        let mut reader = BufReader::new(s);
        let mut lines = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            lines.push(line.trim_end().to_owned());
            line.clear();
        }
        lines
    })
    .await
    .expect("stranger");
    assert_eq!(stranger_lines, ["ERROR,\"Not logged in\""], "no events before LOGIN");

    line.ua.shutdown().await;
    callee.shutdown().await;
    drop((a, b));
    assert_eq!(server.stop_with("TERM").code(), Some(0));
}
