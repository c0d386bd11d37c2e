//! The Conductor API (`/_conference`) over real HTTP against the real binary,
//! with real SIP callers: each command is checked twice, by the event every
//! subscriber gets (WebSocket in JSON and XML, the XMLSocket port, Server-Sent
//! Events; XML parsed, never compared as text) and by what the callers hear
//! (distinct tones, measured with a Goertzel filter).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use support::http::{Answer, get, post, request};
use support::phone::{Phone, Phones, press, talk, until_level};
use support::{Server, open_store, run, tone_wav};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tutti_api::http::envelope::{Node, parse_xml};

/// How long an event may take to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

const ANN: f64 = 440.0;
const BOB: f64 = 620.0;
const PAT: f64 = 1000.0;

// ---------------------------------------------------------------------------
// A conference with persons, and the HTTP calls made to it.

/// A running server with one customer's conference and its persons.
struct Room {
    server: Server,
    addr: SocketAddr,
    sip: SocketAddr,
    customer: String,
    conference: String,
    token: String,
    /// Each person's name and PIN, in the order given.
    pins: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Room {
    /// Starts a server and creates, over `/_access`, a conference with these
    /// persons (name, role).
    async fn start(
        extra: &'static [&'static str],
        persons: &'static [(&'static str, &'static str)],
    ) -> Room {
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().expect("temp dir");
            let server = Server::start(dir.path(), extra);
            let out =
                run(dir.path(), &["customer", "create", "--name", "Acme", "--did", "5550100"]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let v: Value = serde_json::from_slice(&out.stdout).expect("json");
            let customer = v["uid"].as_str().expect("uid").to_owned();
            let key = v["api_key"].as_str().expect("key").to_owned();
            let addr = server.http;
            let auth = [("customer", customer.as_str()), ("key", key.as_str()), ("type", "json")];
            fn with<'a>(
                auth: &[(&'a str, &'a str)],
                extra: &[(&'a str, &'a str)],
            ) -> Vec<(&'a str, &'a str)> {
                let mut p = auth.to_vec();
                p.extend_from_slice(extra);
                p
            }
            let conference = post(
                addr,
                "/_access/createConferenceReservationless",
                &with(&auth, &[("name", "Standup"), ("estimatedCallers", "20")]),
            )
            .json();
            assert_eq!(conference["code"], "0", "{conference}");
            let uid = conference["value"]["UID"].as_str().expect("uid").to_owned();
            let token = conference["value"]["securityToken"].as_str().expect("token").to_owned();
            let mut pins = Vec::new();
            for (name, role) in persons {
                let person = post(
                    addr,
                    "/_access/addPerson",
                    &with(&auth, &[("conference", &uid), ("name", name), ("role", role)]),
                )
                .json();
                assert_eq!(person["code"], "0", "{person}");
                pins.push((
                    (*name).to_owned(),
                    person["value"]["PIN"].as_str().expect("PIN").to_owned(),
                ));
            }
            let sip = server.logged_addr("SIP listening", "udp");
            Room { server, addr, sip, customer, conference: uid, token, pins, dir }
        })
        .await
        .expect("room set up")
    }

    /// Where a person dials: the DID with the PIN.
    fn target(&self, name: &str) -> String {
        let pin = &self.pins.iter().find(|(n, _)| n == name).expect("person").1;
        format!("sip:5550100*{pin}@{}", self.sip)
    }

    /// A GET or POST of `/_conference/<function>` with the token.
    async fn conductor(
        &self,
        function: &str,
        method: &'static str,
        pairs: &[(&str, &str)],
    ) -> Answer {
        let mut all: Vec<(String, String)> = vec![("securityToken".into(), self.token.clone())];
        all.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let (addr, path) = (self.addr, format!("/_conference/{function}"));
        tokio::task::spawn_blocking(move || {
            let pairs: Vec<(&str, &str)> =
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if method == "GET" { get(addr, &path, &pairs) } else { post(addr, &path, &pairs) }
        })
        .await
        .expect("request")
    }

    /// An information request answered in JSON: its value.
    async fn info(&self, function: &str, pairs: &[(&str, &str)]) -> Value {
        let mut all = pairs.to_vec();
        all.push(("type", "json"));
        let answer = self.conductor(function, "GET", &all).await;
        let v = answer.json();
        assert_eq!(v["code"], "0", "{function}: {}", answer.body);
        v["value"].clone()
    }

    /// A command: its plain-text answer.
    async fn command(&self, function: &str, pairs: &[(&str, &str)]) -> String {
        let answer = self.conductor(function, "POST", pairs).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(
            answer.header("content-type").is_some_and(|t| t.starts_with("text/plain")),
            "{:?}",
            answer.headers
        );
        answer.body
    }

    /// A command that must be accepted.
    async fn ok(&self, function: &str, pairs: &[(&str, &str)]) {
        let answer = self.command(function, pairs).await;
        assert_eq!(answer, "TRUE", "{function} {pairs:?}");
    }

    /// The running call's UID, once someone has dialled in.
    async fn call_uid(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let conference =
                self.info("getConference", &[("conferenceUID", &self.conference)]).await;
            if let Some(uid) = conference["mainCallUID"].as_str() {
                return uid.to_owned();
            }
            assert!(Instant::now() < deadline, "no call: {conference}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The call's callers by name (UIDs), once `count` of them are in.
    async fn callers(&self, call: &str, count: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let data = self.info("getCallData", &[("callUID", call)]).await;
            let callers: Vec<(String, String)> = data["callers"]
                .as_array()
                .expect("callers")
                .iter()
                .filter(|c| c["active"] == true)
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_owned(),
                        c["UID"].as_str().expect("uid").to_owned(),
                    )
                })
                .collect();
            if callers.len() >= count {
                return callers;
            }
            assert!(Instant::now() < deadline, "callers: {data}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn uid_of<'a>(callers: &'a [(String, String)], name: &str) -> &'a str {
    &callers.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} in {callers:?}")).1
}

// ---------------------------------------------------------------------------
// Event subscribers on the three transports.

/// One event's target, from either rendering.
#[derive(Debug, Clone)]
enum Target {
    Json(Value),
    Xml(Node),
}

impl Target {
    /// A field as text (`true`, `3`, ...); empty when absent or null.
    fn text(&self, name: &str) -> String {
        match self {
            Target::Json(v) => match &v[name] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            },
            Target::Xml(n) => n.text_of(name).to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
struct Ev {
    source: String,
    name: String,
    target: Target,
}

fn parse_json_event(text: &str) -> Ev {
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("event not JSON ({e}): {text}"));
    Ev {
        source: v["source"].as_str().expect("source").to_owned(),
        name: v["name"].as_str().expect("name").to_owned(),
        target: Target::Json(v["target"].clone()),
    }
}

fn parse_xml_event(text: &str) -> Ev {
    let node = parse_xml(text).unwrap_or_else(|e| panic!("event not XML ({e}): {text}"));
    assert_eq!(node.name, "event", "{text}");
    Ev {
        source: node.text_of("source").to_owned(),
        name: node.text_of("name").to_owned(),
        target: Target::Xml(node.child("target").cloned().expect("target")),
    }
}

/// A subscriber: events arrive from a background task; `None` when the stream ended.
struct Events {
    rx: mpsc::UnboundedReceiver<Option<Ev>>,
    held: Vec<Ev>,
    ended: bool,
    what: &'static str,
}

impl Events {
    fn new(what: &'static str) -> (Self, mpsc::UnboundedSender<Option<Ev>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { rx, held: Vec::new(), ended: false, what }, tx)
    }

    async fn websocket(addr: SocketAddr, call: &str, token: &str, format: &str) -> Events {
        let url = format!(
            "ws://{addr}/_conference/events?callUID={call}&securityToken={token}&type={format}"
        );
        let (mut socket, response) =
            tokio_tungstenite::connect_async(url).await.expect("WebSocket");
        assert_eq!(response.status(), 101);
        let xml = format == "xml";
        let (events, tx) = Events::new(if xml { "websocket xml" } else { "websocket json" });
        tokio::spawn(async move {
            while let Some(message) = socket.next().await {
                match message {
                    Ok(tokio_tungstenite::tungstenite::Message::Text(text)) => {
                        let ev = if xml { parse_xml_event(&text) } else { parse_json_event(&text) };
                        let _ = tx.send(Some(ev));
                    }
                    Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = tx.send(None);
            let _ = socket.close(None).await;
        });
        events
    }

    /// The XMLSocket port: subscribe, wait for `<subscribed>`, then events.
    async fn xmlsocket(port: u16, call: &str, token: &str) -> Events {
        let mut stream =
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("socketXML");
        let subscribe = format!("<subscribe callUID=\"{call}\" securityToken=\"{token}\"/>\0");
        stream.write_all(subscribe.as_bytes()).await.expect("subscribe");
        let mut reader = tokio::io::BufReader::new(stream);
        let first = read_document(&mut reader).await.expect("an answer");
        let ack = parse_xml(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
        assert_eq!(ack.name, "subscribed", "{first}");
        assert_eq!(ack.text_of("callUID"), call);
        let (events, tx) = Events::new("xmlsocket");
        tokio::spawn(async move {
            while let Some(document) = read_document(&mut reader).await {
                let _ = tx.send(Some(parse_xml_event(&document)));
            }
            let _ = tx.send(None);
        });
        events
    }

    /// Server-Sent Events, read over HTTP/1.0 (a body that ends with the connection).
    async fn sse(addr: SocketAddr, call: &str, token: &str) -> Events {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("SSE");
        let request = format!(
            "GET /_conference/events/sse?callUID={call}&securityToken={token}&type=json HTTP/1.0\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut reader = tokio::io::BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).await.expect("status");
        assert!(status.contains(" 200 "), "{status}");
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.expect("header");
            if line.trim().is_empty() {
                break;
            }
            if line.to_ascii_lowercase().starts_with("content-type:") {
                content_type = line;
            }
        }
        assert!(content_type.contains("text/event-stream"), "{content_type}");
        let (events, tx) = Events::new("sse");
        tokio::spawn(async move {
            let mut data = String::new();
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(rest) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                } else if line.is_empty() && !data.is_empty() {
                    let _ = tx.send(Some(parse_json_event(&data)));
                    data.clear();
                }
            }
            let _ = tx.send(None);
        });
        events
    }

    /// The next event `source`/`name` whose target satisfies `wanted`; others
    /// are kept for later expectations.
    async fn expect(
        &mut self,
        source: &str,
        name: &str,
        wanted: impl Fn(&Target) -> bool,
    ) -> Target {
        if let Some(i) =
            self.held.iter().position(|e| e.source == source && e.name == name && wanted(&e.target))
        {
            return self.held.remove(i).target;
        }
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            match next {
                Ok(Some(Some(e))) if e.source == source && e.name == name && wanted(&e.target) => {
                    return e.target;
                }
                Ok(Some(Some(e))) => self.held.push(e),
                Ok(Some(None)) | Ok(None) => {
                    self.ended = true;
                    panic!(
                        "{}: stream ended before {source} {name}; got {:#?}",
                        self.what, self.held
                    )
                }
                Err(_) => panic!("{}: no {source} {name} in time; got {:#?}", self.what, self.held),
            }
        }
    }

    /// Waits for the end of the stream.
    async fn expect_end(&mut self) {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        while !self.ended {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Some(e))) => self.held.push(e),
                Ok(Some(None)) | Ok(None) => self.ended = true,
                Err(_) => panic!("{}: the stream did not end", self.what),
            }
        }
    }

    /// Events `source`/`name` that arrive within `wait` (and those held).
    async fn count(&mut self, source: &str, name: &str, wait: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Some(e))) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.held.push(e);
        }
        let n = self.held.iter().filter(|e| e.source == source && e.name == name).count();
        self.held.retain(|e| !(e.source == source && e.name == name));
        n
    }
}

/// One zero-terminated XMLSocket document.
async fn read_document(reader: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> Option<String> {
    let mut bytes = Vec::new();
    let n = reader.read_until(0, &mut bytes).await.ok()?;
    if n == 0 || bytes.last() != Some(&0) {
        return None;
    }
    bytes.pop();
    Some(String::from_utf8(bytes).expect("UTF-8"))
}

/// Sends silence until `phone`'s call is hung up by the server (a BYE).
async fn until_hung_up(line: &mut Phones, phones: &mut [Phone], count: usize) {
    let mut hung_up = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while hung_up < count {
        assert!(Instant::now() < deadline, "{hung_up} of {count} calls hung up");
        talk(phones, 5).await;
        while let Ok(event) = line.events.try_recv() {
            if let tutti_sip::ua::UaEvent::Hangup { reason, .. } = event {
                assert_eq!(reason, tutti_sip::ua::HangupReason::RemoteBye);
                hung_up += 1;
            }
        }
    }
}

/// Checks what one phone hears of each tone: `true` heard, `false` not.
async fn hears(phones: &mut [Phone], listener: usize, expected: &[(f64, bool)]) {
    for (tone, heard) in expected {
        let got = until_level(phones, listener, *tone, *heard).await;
        if *heard {
            assert!(got > 500.0, "phone {listener} does not hear {tone} Hz ({got:.0})");
        } else {
            assert!(got < 100.0, "phone {listener} still hears {tone} Hz ({got:.0})");
        }
    }
}

// ---------------------------------------------------------------------------

/// Ann and Bob (participants) and Pat (presenter) in a call, each sending
/// their tone: the room, their phones, the call's UID, the callers by name.
async fn three_in_a_call(
    extra: &'static [&'static str],
) -> (Room, Phones, Vec<Phone>, String, Vec<(String, String)>) {
    let room =
        Room::start(extra, &[("Ann", "PARTICIPANT"), ("Bob", "PARTICIPANT"), ("Pat", "PRESENTER")])
            .await;
    let mut line = Phones::new().await;
    let phones = vec![
        line.dial(&room.target("Ann"), 1, ANN).await,
        line.dial(&room.target("Bob"), 2, BOB).await,
        line.dial(&room.target("Pat"), 3, PAT).await,
    ];
    let call = room.call_uid().await;
    let callers = room.callers(&call, 3).await;
    (room, line, phones, call, callers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_change_what_is_heard_and_every_client_sees_them() {
    let (room, mut line, mut phones, call, callers) =
        three_in_a_call(&["--rtp-timeout", "30"]).await;
    let (ann, bob, pat) =
        (uid_of(&callers, "Ann"), uid_of(&callers, "Bob"), uid_of(&callers, "Pat"));
    hears(&mut phones, 1, &[(ANN, true), (PAT, true)]).await;
    hears(&mut phones, 0, &[(BOB, true), (PAT, true)]).await;

    // Two clients, in JSON and in XML, see every change.
    let mut json = Events::websocket(room.addr, &call, &room.token, "json").await;
    let mut xml = Events::websocket(room.addr, &call, &room.token, "xml").await;

    // mute: Ann is not heard; the event says so on both streams.
    room.ok(
        "updateCaller",
        &[("callUID", &call), ("UID", ann), ("field", "mute"), ("value", "true")],
    )
    .await;
    for events in [&mut json, &mut xml] {
        let target = events.expect("CALLER", "MUTE", |t| t.text("UID") == ann).await;
        assert_eq!(target.text("mute"), "true");
    }
    hears(&mut phones, 1, &[(ANN, false), (PAT, true)]).await;
    room.ok(
        "updateCaller",
        &[("callUID", &call), ("UID", ann), ("field", "mute"), ("value", "false")],
    )
    .await;
    json.expect("CALLER", "MUTE", |t| t.text("UID") == ann && t.text("mute") == "false").await;
    hears(&mut phones, 1, &[(ANN, true)]).await;

    // mike: without one, Ann is not heard in the main room.
    room.ok("updateCaller", &[("callUID", &call), ("UID", ann), ("field", "mike"), ("value", "0")])
        .await;
    xml.expect("CALLER", "MIKE", |t| t.text("UID") == ann && t.text("mic") == "false").await;
    hears(&mut phones, 1, &[(ANN, false), (PAT, true)]).await;
    room.ok("updateCaller", &[("callUID", &call), ("UID", ann), ("field", "mike"), ("value", "1")])
        .await;
    json.expect("CALLER", "MIKE", |t| t.text("UID") == ann && t.text("mic") == "true").await;

    // deaf: Bob hears nobody, and is still heard.
    room.ok(
        "updateCaller",
        &[("callUID", &call), ("UID", bob), ("field", "deaf"), ("value", "true")],
    )
    .await;
    json.expect("CALLER", "DEAF", |t| t.text("UID") == bob && t.text("deaf") == "true").await;
    hears(&mut phones, 1, &[(ANN, false), (PAT, false)]).await;
    hears(&mut phones, 0, &[(BOB, true)]).await;
    room.ok(
        "updateCaller",
        &[("callUID", &call), ("UID", bob), ("field", "deaf"), ("value", "false")],
    )
    .await;
    hears(&mut phones, 1, &[(ANN, true)]).await;

    // Volume: 4 steps of 3 dB down is a quarter of the level (-12 dB), on
    // what a caller says (volume_in) and on what one hears (volume_out).
    phones[1].tone = 0.0;
    phones[2].tone = 0.0;
    let reference = until_level(&mut phones, 1, ANN, true).await;
    for (uid, field) in [(ann, "volume_in"), (bob, "volume_out")] {
        let set =
            |value| [("callUID", call.as_str()), ("UID", uid), ("field", field), ("value", value)];
        room.ok("updateCaller", &set("-4")).await;
        json.expect("CALLER", "UPDATE", |t| t.text("UID") == uid && t.text(field) == "-4").await;
        talk(&mut phones, 25).await;
        let quieter = until_level(&mut phones, 1, ANN, true).await;
        let ratio = quieter / reference;
        assert!(
            (0.17..0.36).contains(&ratio),
            "{field} -4: {quieter:.0} / {reference:.0} = {ratio:.2}"
        );
        room.ok("updateCaller", &set("0")).await;
    }
    phones[1].tone = BOB;
    phones[2].tone = PAT;

    // A list with a stranger: FALSE names it, the others are changed.
    let list = format!("{ann},no-such-caller,{bob}");
    let answer = room
        .command(
            "updateCaller",
            &[("callUID", &call), ("UID", &list), ("field", "mute"), ("value", "true")],
        )
        .await;
    assert!(answer.starts_with("FALSE,") && answer.contains("no-such-caller"), "{answer}");
    assert!(!answer.contains(ann) && !answer.contains(bob), "only the failure is named: {answer}");
    for uid in [ann, bob] {
        xml.expect("CALLER", "MUTE", |t| t.text("UID") == uid && t.text("mute") == "true").await;
        let caller = room.info("getCaller", &[("callUID", &call), ("UID", uid)]).await;
        assert_eq!(caller["mute"], true, "{caller}");
    }
    hears(&mut phones, 2, &[(ANN, false), (BOB, false)]).await;

    // updateActiveCaller with a role: only the participants change.
    room.ok(
        "updateActiveCaller",
        &[("callUID", &call), ("field", "mute"), ("value", "false"), ("role", "PARTICIPANT")],
    )
    .await;
    for uid in [ann, bob] {
        json.expect("CALLER", "MUTE", |t| t.text("UID") == uid && t.text("mute") == "false").await;
    }
    hears(&mut phones, 2, &[(ANN, true), (BOB, true)]).await;
    room.ok("updateActiveCaller", &[("callUID", &call), ("field", "data"), ("value", "seen")])
        .await;
    for uid in [ann, bob, pat] {
        json.expect("CALLER", "UPDATE", |t| t.text("UID") == uid && t.text("data") == "seen").await;
    }

    // Notes: `notes` replaces, `note` appends on a new line.
    room.ok("updateCall", &[("callUID", &call), ("field", "notes"), ("value", "first")]).await;
    room.ok("updateCall", &[("callUID", &call), ("field", "note"), ("value", "second")]).await;
    json.expect("CALL", "UPDATE", |t| t.text("notes") == "first\nsecond").await;
    xml.expect("CALL", "UPDATE", |t| t.text("notes") == "first\nsecond").await;

    // playTone: an Audio clip of the conference plays to the room.
    tone_wav(room.dir.path(), "chime.wav", 1400.0, 3000);
    let sound = open_store(room.dir.path())
        .await
        .add_sound(Some(&room.customer), "Chime", "chime.wav")
        .await
        .expect("sound");
    let conference = room.info("getConference", &[("conferenceUID", &room.conference)]).await;
    let audio = conference["audio"].as_array().expect("audio");
    assert!(
        audio
            .iter()
            .any(|a| a["UID"].as_str() == Some(sound.id.to_string().as_str())
                && a["Name"] == "Chime"),
        "{conference}"
    );
    room.ok("playTone", &[("callUID", &call), ("tone", &sound.id.to_string())]).await;
    hears(&mut phones, 0, &[(1400.0, true)]).await;

    // The rooms' ticks are timed (/metrics).
    let addr = room.addr;
    let metrics =
        tokio::task::spawn_blocking(move || get(addr, "/metrics", &[])).await.expect("metrics");
    let value = |name: &str| -> f64 {
        metrics
            .body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(-1.0)
    };
    assert!(value("tutti_mixer_tick_lateness_seconds_count") > 100.0, "{}", metrics.body);
    assert!(value("tutti_mixer_ticks_skipped_total") >= 0.0, "{}", metrics.body);

    // dropCaller: Bob is hung up and shown inactive.
    room.ok("dropCaller", &[("callUID", &call), ("UID", bob)]).await;
    json.expect("CALLER", "UPDATE", |t| t.text("UID") == bob && t.text("active") == "false").await;
    let bob_phone = phones.remove(1);
    let mut gone = vec![bob_phone];
    until_hung_up(&mut line, &mut gone, 1).await;

    // closeCall: everyone is hung up, the call is CLOSED, the streams end.
    room.ok("closeCall", &[("callUID", &call)]).await;
    until_hung_up(&mut line, &mut phones, 2).await;
    json.expect("CALL", "UPDATE", |t| t.text("status") == "CLOSED").await;
    xml.expect("CALL", "UPDATE", |t| t.text("status") == "CLOSED").await;
    json.expect_end().await;
    let closed = room.info("getCall", &[("callUID", &call)]).await;
    assert_eq!(closed["status"], "CLOSED", "{closed}");
    assert!(closed["actualEndTime"].is_string(), "{closed}");
    assert_eq!(
        room.command("dropCaller", &[("callUID", &call), ("UID", ann)]).await.split(',').next(),
        Some("FALSE"),
        "a closed call's callers are gone"
    );
    drop(room);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakouts_hands_tags_and_talking_over_the_xml_socket() {
    let (room, _line, mut phones, call, callers) =
        three_in_a_call(&["--control-password", "secret"]).await;
    let (ann, bob) = (uid_of(&callers, "Ann").to_owned(), uid_of(&callers, "Bob").to_owned());
    let (ann, bob) = (ann.as_str(), bob.as_str());

    // The Call advertises the XMLSocket port; Flash asks for a policy first.
    let call_object = room.info("getCall", &[("callUID", &call)]).await;
    let port = u16::try_from(call_object["socketXML"].as_u64().expect("socketXML")).expect("port");
    assert!(port > 0);
    {
        let mut stream =
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        stream.write_all(b"<policy-file-request/>\0").await.expect("ask");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("policy");
        assert_eq!(answer.pop(), Some(0));
        let policy = parse_xml(std::str::from_utf8(&answer).expect("utf-8")).expect("policy XML");
        assert_eq!(policy.name, "cross-domain-policy");
    }
    {
        // A wrong token: an error document, then the connection closes.
        let mut stream =
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let subscribe = format!("<subscribe callUID=\"{call}\" securityToken=\"wrong\"/>\0");
        stream.write_all(subscribe.as_bytes()).await.expect("subscribe");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("answer");
        assert_eq!(answer.pop(), Some(0));
        let error = parse_xml(std::str::from_utf8(&answer).expect("utf-8")).expect("error XML");
        assert_eq!((error.name.as_str(), error.text_of("code")), ("error", "-1"));
    }
    let mut events = Events::xmlsocket(port, &call, &room.token).await;

    // TALKING events follow the mixer while the call's talking switch is on.
    for phone in phones.iter_mut() {
        phone.tone = 0.0;
    }
    talk(&mut phones, 50).await;
    phones[0].tone = ANN;
    talk(&mut phones, 25).await;
    let talking = events
        .expect("CALLER", "TALKING", |t| t.text("UID") == ann && t.text("talking") == "true")
        .await;
    assert_eq!(talking.text("active"), "true");
    phones[1].tone = BOB;
    phones[2].tone = PAT;

    // A private breakout: Ann and Bob hear each other, not the presenter.
    room.ok(
        "createBreakout",
        &[
            ("callUID", &call),
            ("callers", &format!("{ann},{bob}")),
            ("breakoutUID", "TEAM"),
            ("name", "Team"),
            ("private", "true"),
        ],
    )
    .await;
    let created = events.expect("CALL", "NEWBREAKOUT", |t| t.text("UID") == "TEAM").await;
    assert_eq!((created.text("name"), created.text("private")), ("Team".into(), "true".into()));
    events.expect("CONFERENCE", "NEWBREAKOUT", |t| t.text("UID") == "TEAM").await;
    for uid in [ann, bob] {
        events
            .expect("CALLER", "BREAKOUT", |t| t.text("UID") == uid && t.text("breakout") == "TEAM")
            .await;
    }
    hears(&mut phones, 0, &[(BOB, true), (PAT, false)]).await;
    hears(&mut phones, 2, &[(ANN, false), (BOB, false)]).await;
    let breakout = room.info("getBreakout", &[("callUID", &call), ("UID", "TEAM")]).await;
    let mut members: Vec<&str> =
        breakout["callers"].as_array().expect("callers").iter().filter_map(Value::as_str).collect();
    members.sort_unstable();
    let mut expected = vec![ann, bob];
    expected.sort_unstable();
    assert_eq!(members, expected);

    // Not private: the group hears the main room's presenter again.
    room.ok(
        "updateBreakout",
        &[("callUID", &call), ("UID", "TEAM"), ("field", "private"), ("value", "false")],
    )
    .await;
    events
        .expect("BREAKOUT", "UPDATE", |t| t.text("UID") == "TEAM" && t.text("private") == "false")
        .await;
    hears(&mut phones, 0, &[(PAT, true), (BOB, true)]).await;

    // `callers` toggles: Bob, in the group, leaves it.
    room.ok(
        "updateBreakout",
        &[("callUID", &call), ("UID", "TEAM"), ("field", "callers"), ("value", bob)],
    )
    .await;
    events
        .expect("CALLER", "BREAKOUT", |t| t.text("UID") == bob && t.text("breakout").is_empty())
        .await;
    // Back in the main room, Bob no longer hears the group.
    hears(&mut phones, 1, &[(ANN, false), (PAT, true)]).await;
    let team = room.info("getBreakout", &[("callUID", &call), ("UID", "TEAM")]).await;
    assert_eq!(team["callers"], serde_json::json!([ann]));

    // A change from another interface raises the same event: TCP 4011.
    let control = room.server.logged_addr("control protocol listening", "addr");
    let command = format!("MUTEUSER,{bob},1");
    let answer = tokio::task::spawn_blocking(move || {
        support::phone::Control::connect(control, "secret").command(&command, "MUTEUSER")
    })
    .await
    .expect("4011");
    assert_eq!(answer, ["MUTEUSER,OK"]);
    events.expect("CALLER", "MUTE", |t| t.text("UID") == bob && t.text("mute") == "true").await;

    // The multi form, with a stranger in the second group.
    let answer = room
        .command(
            "createBreakout",
            &[
                ("callUID", &call),
                ("count", "2"),
                ("callers1", bob),
                ("breakoutUID1", "B1"),
                ("callers2", &format!("{ann},ghost")),
                ("breakoutUID2", "B2"),
                ("name2", "Two"),
            ],
        )
        .await;
    assert!(answer.starts_with("FALSE,") && answer.contains("ghost"), "{answer}");
    events.expect("CALL", "NEWBREAKOUT", |t| t.text("UID") == "B1").await;
    events
        .expect("CALL", "NEWBREAKOUT", |t| t.text("UID") == "B2" && t.text("name") == "Two")
        .await;
    events
        .expect("CALLER", "BREAKOUT", |t| t.text("UID") == ann && t.text("breakout") == "B2")
        .await;
    // The same breakout UID twice is refused.
    let again = room
        .command("createBreakout", &[("callUID", &call), ("callers", ""), ("breakoutUID", "B1")])
        .await;
    assert!(again.starts_with("FALSE,"), "{again}");

    // *7 raises Ann's hand; attention is 0-5.
    press(&mut phones, 0, "*7").await;
    let hand = events.expect("CALLER", "ATTENTION", |t| t.text("UID") == ann).await;
    assert_ne!(hand.text("attention"), "0");
    room.ok(
        "updateCaller",
        &[("callUID", &call), ("UID", ann), ("field", "attention"), ("value", "0")],
    )
    .await;
    events
        .expect("CALLER", "ATTENTION", |t| t.text("UID") == ann && t.text("attention") == "0")
        .await;
    for bad in ["6", "-1", "maybe"] {
        let answer = room
            .command(
                "updateCaller",
                &[("callUID", &call), ("UID", ann), ("field", "attention"), ("value", bad)],
            )
            .await;
        assert!(answer.starts_with("FALSE,value"), "{bad}: {answer}");
    }

    // Tags: a new call tag, related to a caller, renamed.
    room.ok("createCallTag", &[("callUID", &call), ("value", "VIP")]).await;
    let tag = events.expect("TAG", "UPDATE", |t| t.text("value") == "VIP").await;
    let tag_id = tag.text("ID");
    room.ok(
        "updateCallerTag",
        &[("callUID", &call), ("callerUID", ann), ("callTagID", &tag_id), ("action", "add")],
    )
    .await;
    room.ok("updateCallTag", &[("callUID", &call), ("callTagID", &tag_id), ("value", "VIP guest")])
        .await;
    events
        .expect("TAG", "UPDATE", |t| t.text("ID") == tag_id && t.text("value") == "VIP guest")
        .await;
    let data = room.info("getCall", &[("callUID", &call)]).await;
    assert!(
        data["tags"].as_array().expect("tags").iter().any(|t| t["value"] == "VIP guest"),
        "{data}"
    );

    // Custom values of this call's own objects only.
    room.ok(
        "updateCustomValue",
        &[
            ("callUID", &call),
            ("objectType", "caller"),
            ("objectUID", ann),
            ("customKey", "seat"),
            ("customValue", "12"),
        ],
    )
    .await;
    let caller = room.info("getCaller", &[("callUID", &call), ("UID", ann)]).await;
    assert_eq!(caller["custom"], serde_json::json!([{"key": "seat", "value": "12"}]));
    let refused = room
        .command(
            "updateCustomValue",
            &[
                ("callUID", &call),
                ("objectType", "customer"),
                ("objectUID", &room.customer),
                ("customKey", "k"),
                ("customValue", "v"),
            ],
        )
        .await;
    assert!(refused.starts_with("FALSE,"), "{refused}");

    // Talking events stop when the call's switch is off.
    room.ok("updateCall", &[("callUID", &call), ("field", "talking"), ("value", "false")]).await;
    events.expect("CALL", "UPDATE", |t| t.text("talking") == "false").await;
    talk(&mut phones, 5).await;
    events.count("CALLER", "TALKING", Duration::from_millis(300)).await;
    for round in 0..4 {
        for (i, phone) in phones.iter_mut().enumerate() {
            phone.tone = if (round + i) % 2 == 0 { 0.0 } else { [ANN, BOB, PAT][i] };
        }
        talk(&mut phones, 50).await;
    }
    assert_eq!(events.count("CALLER", "TALKING", Duration::from_millis(200)).await, 0);
    drop(room);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_call_dials_a_sipp_callee_and_close_call_hangs_up_over_sse() {
    // SIPp answers and echoes the RTP it receives: Ann hearing her own tone
    // back proves the callee joined, hears the room and is heard by it.
    let sipp_port = support::free_udp_range(1);
    let media_port = support::free_udp_range(4);
    let room = Room::start(&[], &[("Ann", "PARTICIPANT")]).await;
    let mut sipp = std::process::Command::new("sipp")
        .arg("-sf")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sipp/uas_answer.xml"))
        .args(["-i", "127.0.0.1", "-p", &sipp_port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media_port.to_string(), "-rtp_echo"])
        .args(["-nostdin", "-m", "1", "-timeout", "60s"])
        .current_dir(room.dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp runs (apt-get install sip-tester)");
    let mut line = Phones::new().await;
    let mut phones = vec![line.dial(&room.target("Ann"), 1, 0.0).await];
    let call = room.call_uid().await;
    let mut events = Events::sse(room.addr, &call, &room.token).await;

    let number = format!("sip:callee@127.0.0.1:{sipp_port}");
    room.ok(
        "placeCall",
        &[("callUID", &call), ("number", &number), ("role", "PRESENTER"), ("name", "Dana")],
    )
    .await;
    let joined = events.expect("CALL", "NEWCALLER", |t| t.text("name") == "Dana").await;
    assert_eq!(
        (joined.text("role"), joined.text("direction")),
        ("PRESENTER".into(), "OUTBOUND".into())
    );
    phones[0].tone = ANN;
    let echoed = until_level(&mut phones, 0, ANN, true).await;
    assert!(echoed > 500.0, "the callee did not join or hear the room ({echoed:.0})");

    // A bad number and a bad role are refused before anything is dialled.
    let refused = room
        .command(
            "placeCall",
            &[("callUID", &call), ("number", "not a number"), ("role", "PARTICIPANT")],
        )
        .await;
    assert!(refused.starts_with("FALSE,number"), "{refused}");
    let refused = room
        .command("placeCall", &[("callUID", &call), ("number", "5551234"), ("role", "KING")])
        .await;
    assert!(refused.starts_with("FALSE,role"), "{refused}");

    room.ok("closeCall", &[("callUID", &call)]).await;
    until_hung_up(&mut line, &mut phones, 1).await;
    events.expect("CALL", "UPDATE", |t| t.text("status") == "CLOSED").await;
    events.expect_end().await;
    // SIPp's scenario ends with the BYE it received.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = sipp.try_wait().expect("sipp") {
            break status;
        }
        assert!(Instant::now() < deadline, "SIPp got no BYE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "SIPp: {status}");
    let closed = room.info("getCall", &[("callUID", &call)]).await;
    assert_eq!(closed["status"], "CLOSED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn information_requests_answer_in_both_formats_and_bad_input_is_refused() {
    let room = Room::start(&[], &[("Ann", "PARTICIPANT")]).await;
    let other = Room::start(&[], &[("Zed", "PARTICIPANT")]).await;
    let mut line = Phones::new().await;
    let _ann = line.dial(&room.target("Ann"), 1, ANN).await;
    let call = room.call_uid().await;
    let ann = room.callers(&call, 1).await[0].1.clone();
    room.ok("createBreakout", &[("callUID", &call), ("callers", &ann), ("breakoutUID", "G1")])
        .await;

    // Every information request, in JSON and in XML (parsed).
    type Request<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let requests: [Request; 7] = [
        (
            "getBreakout",
            vec![("callUID", &call), ("UID", "G1")],
            &["UID", "callers", "private", "assistedGroup"],
        ),
        (
            "getCaller",
            vec![("callUID", &call), ("UID", &ann)],
            &["UID", "ANI", "PIN", "mic", "volume_in", "energy"],
        ),
        (
            "getConference",
            vec![("conferenceUID", &room.conference)],
            &["UID", "mainCallUID", "calls", "placeCall"],
        ),
        (
            "getConferenceData",
            vec![("conferenceUID", &room.conference)],
            &["UID", "persons", "customer"],
        ),
        (
            "getCall",
            vec![("callUID", &call)],
            &["UID", "socketXML", "callers", "breakouts", "currentTime", "talking"],
        ),
        ("getCallData", vec![("callUID", &call)], &["UID", "callers", "breakouts", "settings"]),
        ("getCustomer", vec![("conferenceUID", &room.conference)], &["UID", "name", "placeCall"]),
    ];
    for (function, params, fields) in &requests {
        let mut with_json = params.clone();
        with_json.push(("type", "json"));
        let json = room.conductor(function, "GET", &with_json).await.json();
        assert_eq!(json["code"], "0", "{function}: {json}");
        let xml = room.conductor(function, "GET", params).await.xml();
        assert_eq!((xml.name.as_str(), xml.text_of("code")), ("document", "0"), "{function}");
        let value = xml.child("value").expect("value");
        for field in *fields {
            assert!(json["value"].get(*field).is_some(), "{function} JSON lacks {field}: {json}");
            assert!(
                value.child(field).is_some()
                    || json["value"][*field].as_array().is_some_and(Vec::is_empty),
                "{function} XML lacks {field}"
            );
        }
    }
    let data = room.info("getCallData", &[("callUID", &call)]).await;
    assert_eq!(data["breakouts"][0]["callers"], serde_json::json!([ann]), "{data}");

    // Tokens: another conference's token opens nothing.
    let stolen = room.conductor("getCall", "GET", &[("callUID", &call), ("type", "json")]).await;
    assert_eq!(stolen.json()["code"], "0");
    let wrong = tokio::task::spawn_blocking({
        let (addr, call, token) = (room.addr, call.clone(), other.token.clone());
        move || {
            let info = get(
                addr,
                "/_conference/getCall",
                &[("callUID", &call), ("securityToken", &token), ("type", "json")],
            );
            let command = post(
                addr,
                "/_conference/dropCaller",
                &[("callUID", &call), ("securityToken", &token), ("UID", "x")],
            );
            (info, command)
        }
    })
    .await
    .expect("requests");
    assert_eq!(wrong.0.json()["code"], "-1", "{}", wrong.0.body);
    assert_eq!(wrong.0.json()["value"], "", "no data");
    assert!(wrong.1.body.starts_with("FALSE,"), "{}", wrong.1.body);
    // A caller of another call answers as an unknown one.
    let other_call = {
        let mut zed = Phones::new().await;
        let _zed = zed.dial(&other.target("Zed"), 9, 0.0).await;
        let other_call = other.call_uid().await;
        let zed_uid = other.callers(&other_call, 1).await[0].1.clone();
        let answer = room
            .command(
                "updateCaller",
                &[("callUID", &call), ("UID", &zed_uid), ("field", "mute"), ("value", "true")],
            )
            .await;
        assert!(answer.starts_with("FALSE,UID"), "{answer}");
        let zed_info =
            other.info("getCaller", &[("callUID", &other_call), ("UID", &zed_uid)]).await;
        assert_eq!(zed_info["mute"], false, "nothing changed");
        let answer = room
            .conductor(
                "getCaller",
                "GET",
                &[("callUID", &call), ("UID", &zed_uid), ("type", "json")],
            )
            .await;
        assert_eq!(answer.json()["code"], "-2", "{}", answer.body);
        other_call
    };
    assert_ne!(other_call, call);

    // Malformed values, unknown fields and roles: FALSE, nothing changed.
    let bad: &[&[(&str, &str)]] = &[
        &[("field", "mute"), ("value", "perhaps")],
        &[("field", "volume_in"), ("value", "5")],
        &[("field", "volume_out"), ("value", "-9")],
        &[("field", "role"), ("value", "KING")],
        &[("field", "colour"), ("value", "red")],
        &[("field", "energy"), ("value", "x")],
    ];
    for pairs in bad {
        let mut all = vec![("callUID", call.as_str()), ("UID", ann.as_str())];
        all.extend_from_slice(pairs);
        let answer = room.command("updateCaller", &all).await;
        assert!(answer.starts_with("FALSE,"), "{pairs:?}: {answer}");
    }
    let caller = room.info("getCaller", &[("callUID", &call), ("UID", &ann)]).await;
    assert_eq!(
        (caller["mute"].clone(), caller["volume_in"].clone(), caller["role"].clone()),
        (false.into(), 0.into(), "PARTICIPANT".into())
    );
    for (function, pairs) in [
        ("updateCall", vec![("field", "talking"), ("value", "sometimes")]),
        ("updateCall", vec![("field", "nothing"), ("value", "x")]),
        ("updateBreakout", vec![("UID", "G1"), ("field", "private"), ("value", "2")]),
        ("updateBreakout", vec![("UID", "nope"), ("field", "name"), ("value", "x")]),
        (
            "updateCallSetting",
            vec![("role", "PARTICIPANT"), ("setting", "loud"), ("value", "true")],
        ),
        ("updateCallSetting", vec![("role", "OPERATOR"), ("setting", "mute"), ("value", "true")]),
        ("createBreakout", vec![("count", "0")]),
        ("createBreakout", vec![("count", "2"), ("callers1", "")]),
        ("playTone", vec![("tone", "99999")]),
        ("updateCallTag", vec![("callTagID", "12345"), ("value", "x")]),
    ] {
        let mut all = vec![("callUID", call.as_str())];
        all.extend_from_slice(&pairs);
        let answer = room.command(function, &all).await;
        assert!(answer.starts_with("FALSE,"), "{function} {pairs:?}: {answer}");
    }
    // Settings: the conference's, and this call's only.
    room.ok(
        "updateConferenceSetting",
        &[
            ("conferenceUID", &room.conference),
            ("role", "PARTICIPANT"),
            ("setting", "mute"),
            ("value", "true"),
        ],
    )
    .await;
    room.ok(
        "updateCallSetting",
        &[("callUID", &call), ("role", "PRESENTER"), ("setting", "deaf"), ("value", "true")],
    )
    .await;
    let conference = room.info("getConference", &[("conferenceUID", &room.conference)]).await;
    assert!(
        conference["setting"]
            .as_array()
            .expect("setting")
            .iter()
            .any(|s| s["role"] == "PARTICIPANT" && s["mute"] == true),
        "{conference}"
    );
    let settings = room.info("getCall", &[("callUID", &call)]).await;
    assert!(
        settings["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .any(|s| s["role"] == "PRESENTER" && s["deaf"] == true),
        "{settings}"
    );

    // Commands by GET, unknown functions, missing tokens.
    let by_get = room.conductor("dropCaller", "GET", &[("callUID", &call), ("UID", &ann)]).await;
    assert!(by_get.body.starts_with("FALSE,"), "{}", by_get.body);
    let unknown = room.conductor("getEverything", "GET", &[("callUID", &call)]).await;
    assert_eq!(unknown.status, 404);
    let missing = tokio::task::spawn_blocking({
        let (addr, call) = (room.addr, call.clone());
        move || post(addr, "/_conference/closeCall", &[("callUID", &call)])
    })
    .await
    .expect("request");
    assert!(missing.body.starts_with("FALSE,securityToken"), "{}", missing.body);
    let still = room.info("getCall", &[("callUID", &call)]).await;
    assert_eq!(still["status"], "ACTIVE");

    // The event endpoints refuse a wrong token before streaming anything.
    let (addr, call2) = (room.addr, call.clone());
    let (ws, sse) = tokio::task::spawn_blocking(move || {
        let ws = request(
            addr,
            "GET",
            &format!("/_conference/events?callUID={call2}&securityToken=wrong&type=json"),
            None,
        );
        let sse = request(
            addr,
            "GET",
            &format!("/_conference/events/sse?callUID={call2}&securityToken=wrong"),
            None,
        );
        (ws, sse)
    })
    .await
    .expect("requests");
    assert_eq!(ws.status, 403, "{}", ws.body);
    assert_eq!(ws.json()["code"], "-1");
    assert_eq!(sse.status, 403, "{}", sse.body);
    assert_eq!(sse.xml().text_of("code"), "-1");
    let refused = tokio_tungstenite::connect_async(format!(
        "ws://{}/_conference/events?callUID={call}&securityToken=wrong",
        room.addr
    ))
    .await;
    assert!(refused.is_err(), "no WebSocket with a wrong token");

    // The OpenAPI document describes every Conductor function and the streams.
    let openapi = tokio::task::spawn_blocking(move || get(addr, "/openapi.json", &[]).json())
        .await
        .expect("openapi");
    for path in [
        "/_conference/getCallData",
        "/_conference/updateCaller",
        "/_conference/events",
        "/_conference/events/sse",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path}");
    }
    drop(other);
    drop(room);
}
