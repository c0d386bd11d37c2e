//! The PBX conference REST resource (`/api/v1`, docs/api-rest.md) over real
//! HTTP against the real binary: Bearer keys and customers kept apart, rooms
//! created, read, listed, changed, replaced and deleted with every default and
//! refusal of the contract, sounds uploaded in each accepted WAV encoding (and
//! the files that must be refused), live members with real SIP callers (mute,
//! unmute and kick checked as audio and as a BYE), the keypad on a REST room,
//! invitations answered by SIPp, a room's own sounds heard, and recordings
//! checked as audio. Audio is checked with a Goertzel filter, a distinct tone
//! per caller.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::http::{form, id_of};
use support::phone::{MUSIC_NOTES, Phone, Phones, level, music_level, press, talk, until_level};
use support::{Server, cli_json};
use tutti_media::tone::goertzel_amplitude;
use tutti_sip::ua::{HangupReason, UaEvent};

const V1: &str = "/api/v1";
/// The entry beep's two notes (tutti_media::tone::ENTRY_BEEP_HZ).
const BEEP_NOTES: [f64; 2] = [660.0, 880.0];
/// How long polls of the API wait for a state to show.
const POLL: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// HTTP

/// An answer, its body as bytes (sound and recording files are binary).
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text()))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `Transfer-Encoding: chunked` body, joined.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = find(data, b"\r\n") {
        let line = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
        data = &data[end + 2..];
        if size == 0 {
            break;
        }
        let chunk = data.get(..size).unwrap_or_else(|| panic!("chunk of {size} cut short"));
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// One HTTP/1.1 request on its own connection. The body is written from
/// another thread while the answer is read, so an early answer (413) is
/// seen even when the server stops reading.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream.set_write_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &body {
        Some((content_type, bytes)) => head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        )),
        None if !matches!(method, "GET" | "DELETE" | "HEAD") => {
            head.push_str("Content-Length: 0\r\n")
        }
        None => {}
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    let writer = body.map(|(_, bytes)| {
        let mut out = stream.try_clone().expect("clone stream");
        std::thread::spawn(move || {
            let _ = out.write_all(&bytes);
        })
    });
    let mut raw = Vec::new();
    // Whatever arrived before an error (a reset after an early answer) counts.
    let _ = stream.read_to_end(&mut raw);
    drop(stream);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let end = find(&raw, b"\r\n\r\n").unwrap_or_else(|| {
        panic!("{method} {path}: no header end in {:?}", String::from_utf8_lossy(&raw))
    });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(&raw[end + 4..]) } else { raw[end + 4..].to_vec() };
    Reply { status, headers, body }
}

/// The API as one customer (or nobody) calls it; cheap to clone into blocking tasks.
#[derive(Clone)]
struct Api {
    addr: SocketAddr,
    /// The whole `Authorization` header value.
    auth: Option<String>,
}

impl Api {
    fn with_auth(&self, auth: Option<&str>) -> Api {
        Api { addr: self.addr, auth: auth.map(str::to_owned) }
    }

    /// A request to `/api/v1<path>`.
    fn call(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
        let headers: Vec<(&str, &str)> =
            self.auth.as_deref().map(|a| vec![("Authorization", a)]).unwrap_or_default();
        send(self.addr, method, &format!("{V1}{path}"), &headers, body)
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }

    fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None)
    }

    /// A request with a JSON body given as text (malformed on purpose, or large).
    fn text(&self, method: &str, path: &str, text: &str) -> Reply {
        self.call(method, path, Some(("application/json", text.as_bytes().to_vec())))
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> Reply {
        self.text(method, path, &body.to_string())
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        self.json("POST", path, body)
    }

    fn patch(&self, path: &str, body: &Value) -> Reply {
        self.json("PATCH", path, body)
    }

    fn put(&self, path: &str, body: &Value) -> Reply {
        self.json("PUT", path, body)
    }

    /// Runs blocking requests off the async runtime.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Api) -> T + Send + 'static) -> T {
        let api = self.clone();
        tokio::task::spawn_blocking(move || f(&api)).await.expect("request task")
    }

    async fn get_async(&self, path: &str) -> Reply {
        let path = path.to_owned();
        self.run(move |a| a.get(&path)).await
    }

    /// A POST without a body (mute, unmute, kick).
    async fn post_async(&self, path: &str) -> Reply {
        let path = path.to_owned();
        self.run(move |a| a.call("POST", &path, None)).await
    }

    async fn json_async(&self, method: &'static str, path: &str, body: Value) -> Reply {
        let path = path.to_owned();
        self.run(move |a| a.json(method, &path, &body)).await
    }

    /// Uploads a WAV as a raw `audio/wav` body named `name`.
    fn upload_raw(&self, name: &str, content_type: &str, bytes: Vec<u8>) -> Reply {
        self.call(
            "POST",
            &format!("/sounds?{}", form(&[("name", name)])),
            Some((content_type, bytes)),
        )
    }

    /// Uploads a WAV as `multipart/form-data`: the `file` part, then a `name`
    /// part when given (as `curl -F file=@... -F name=...` does).
    fn upload_multipart(&self, name: Option<&str>, filename: &str, bytes: &[u8]) -> Reply {
        const BOUNDARY: &str = "----tutti-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"{filename}\"\r\nContent-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
        if let Some(name) = name {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; \
                     name=\"name\"\r\n\r\n{name}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        self.call("POST", "/sounds", Some((&content_type, body)))
    }
}

/// The JSON error of a refusal: its status, `{"error": ...}` and, when given,
/// the field it names.
#[track_caller]
fn refused(reply: &Reply, status: u16, field: Option<&str>, what: &str) -> Value {
    refused_with(reply, &[status], field, what)
}

#[track_caller]
fn refused_with(reply: &Reply, statuses: &[u16], field: Option<&str>, what: &str) -> Value {
    assert!(
        statuses.contains(&reply.status),
        "{what}: expected {statuses:?}, got {}: {}",
        reply.status,
        reply.text()
    );
    assert!(
        reply.header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "{what}: the error is not JSON: {:?} {}",
        reply.headers,
        reply.text()
    );
    let error = reply.json();
    assert!(
        error["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: no error text in {error}"
    );
    if let Some(field) = field {
        assert_eq!(error["field"], field, "{what}: the field to blame in {error}");
    }
    error
}

/// The items of a list answer, checking its envelope.
#[track_caller]
fn items(list: &Value) -> Vec<Value> {
    assert!(
        list["total"].is_u64() && list["limit"].is_u64() && list["offset"].is_u64(),
        "not a list envelope: {list}"
    );
    list["items"].as_array().unwrap_or_else(|| panic!("no items in {list}")).clone()
}

/// Every field of `a` and `b` the same but those in `except`.
#[track_caller]
fn same_except(a: &Value, b: &Value, except: &[&str]) {
    let (a, b) = (a.as_object().expect("object"), b.as_object().expect("object"));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        if !except.contains(&key.as_str()) {
            assert_eq!(a.get(key), b.get(key), "{key} changed: {a:?} -> {b:?}");
        }
    }
}

/// A new room's fields: `number` and the contract's defaults.
fn defaults(number: &str) -> Value {
    json!({
        "number": number,
        "name": "",
        "announce_caller_name": false,
        "enter_sound": null,
        "max_members": null,
        "pin": null,
        "moderator_pin": null,
        "mute_non_moderator": false,
        "music_on_hold_sound": null,
        "record_enabled": false,
        "locked": false,
        "entry_notifications": true,
        "members": 0,
    })
}

/// `expected`'s fields (and those only) checked in `room`, plus the read-only
/// id and times.
#[track_caller]
fn has_fields(room: &Value, expected: &Value) {
    for (key, value) in expected.as_object().expect("object") {
        assert_eq!(room.get(key), Some(value), "{key} in {room}");
    }
    assert!(room["id"].as_str().is_some_and(|s| !s.is_empty()), "a string id: {room}");
    for time in ["created_at", "updated_at"] {
        let t = room[time].as_str().unwrap_or_else(|| panic!("{time} in {room}"));
        assert!(t.contains('T') && (t.ends_with('Z') || t.ends_with("+00:00")), "{time}: {t}");
    }
}

/// `base` with `changes` over it.
fn merged(base: &Value, changes: &Value) -> Value {
    let mut out = base.clone();
    for (k, v) in changes.as_object().expect("object") {
        out[k] = v.clone();
    }
    out
}

// ---------------------------------------------------------------------------
// The server and its customers

/// A server and the default customer's API.
struct Rest {
    server: Server,
    dir: tempfile::TempDir,
    api: Api,
    sip: SocketAddr,
    default_uid: String,
}

impl Rest {
    fn start(extra: &[&str]) -> Rest {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::start(dir.path(), extra);
        let sip = server.logged_addr("SIP listening", "udp");
        // The default customer (the server made it on its first start) gets a key.
        let shown = cli_json(dir.path(), &["customer", "show-default"]);
        let uid = shown["uid"].as_str().expect("uid").to_owned();
        let rotated = cli_json(dir.path(), &["customer", "rotate-key", &uid]);
        let key = rotated["api_key"].as_str().expect("api_key");
        let api = Api { addr: server.http, auth: Some(format!("Bearer {key}")) };
        Rest { server, dir, api, sip, default_uid: uid }
    }

    async fn start_async(extra: Vec<String>) -> Rest {
        tokio::task::spawn_blocking(move || {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            Rest::start(&extra)
        })
        .await
        .expect("start")
    }

    /// A new customer's API.
    fn customer(&self, name: &str) -> Api {
        let made = cli_json(self.dir.path(), &["customer", "create", "--name", name]);
        let key = made["api_key"].as_str().expect("api_key");
        self.api.with_auth(Some(&format!("Bearer {key}")))
    }

    /// Creates a room; its JSON.
    fn room(&self, body: Value) -> Value {
        let created = self.api.post("/conferences", &body);
        assert_eq!(created.status, 201, "{body}: {}", created.text());
        created.json()
    }
}

// ---------------------------------------------------------------------------
// WAV files

/// `ms` of a sine at `freq`, peak `amplitude`.
fn sine(freq: f64, rate: u32, ms: u32, amplitude: f64) -> Vec<i16> {
    let n = (u64::from(rate) * u64::from(ms) / 1000) as usize;
    (0..n)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                as i16
        })
        .collect()
}

fn pcm16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// G.711 µ-law of one sample.
fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// A RIFF/WAVE file: a `fmt ` chunk (16 bytes for PCM, 18 with an empty
/// extension otherwise) and a `data` chunk.
fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block_align = channels * bits / 8;
    let fmt_len: u32 = if tag == 1 { 16 } else { 18 };
    let pad = data.len() % 2;
    let mut out = Vec::with_capacity(data.len() + 64);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(4 + 8 + fmt_len + 8 + (data.len() + pad) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&fmt_len.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    if fmt_len == 18 {
        out.extend_from_slice(&0u16.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if pad == 1 {
        out.push(0);
    }
    out
}

/// A 16-bit PCM mono WAV of a tone.
fn tone_wav(freq: f64, rate: u32, ms: u32) -> Vec<u8> {
    wav(1, 1, rate, 16, &pcm16(&sine(freq, rate, ms, 8000.0)))
}

/// A WAV file as read back.
struct Wav {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: Vec<u8>,
}

impl Wav {
    fn samples(&self) -> Vec<i16> {
        assert_eq!(self.bits, 16);
        self.data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
    }
}

#[track_caller]
fn parse_wav(bytes: &[u8]) -> Wav {
    assert!(
        bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "not RIFF/WAVE: {:?}",
        &bytes[..bytes.len().min(16)]
    );
    let u16_at = |p: usize| u16::from_le_bytes([bytes[p], bytes[p + 1]]);
    let u32_at =
        |p: usize| u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]);
    let mut pos = 12;
    let mut format = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let start = pos + 8;
        let end = start.saturating_add(size).min(bytes.len());
        if id == b"fmt " {
            assert!(size >= 16, "fmt chunk of {size} bytes");
            format =
                Some((u16_at(start), u16_at(start + 2), u32_at(start + 4), u16_at(start + 14)));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format.expect("fmt before data");
            return Wav { tag, channels, rate, bits, data: bytes[start..end].to_vec() };
        }
        pos = start.saturating_add(size + size % 2);
    }
    panic!("no data chunk")
}

// ---------------------------------------------------------------------------
// Phones

/// The loudest `freq` is in any 120 ms window of what `phone` heard.
fn peak_in_windows(phone: &Phone, freq: f64) -> f64 {
    let rate = phone.codec.sample_rate() as usize;
    let window = rate * 120 / 1000;
    let step = rate / 50;
    (0..phone.heard.len().saturating_sub(window))
        .step_by(step)
        .map(|start| goertzel_amplitude(&phone.heard[start..start + window], rate as u32, freq))
        .fold(0.0, f64::max)
}

/// How loud the bundled music on hold is in what `phone` heard last.
fn music(phone: &Phone) -> f64 {
    music_level(phone, &MUSIC_NOTES)
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

/// GETs `path` until `check` accepts its JSON (at most [`POLL`]); the phones
/// keep talking meanwhile so their calls stay alive and heard.
async fn until_json(
    api: &Api,
    path: &str,
    phones: &mut [Phone],
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + POLL;
    loop {
        let reply = api.get_async(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let value = reply.json();
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: {path} never showed it; last {value}");
        if phones.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            talk(phones, 5).await;
        }
    }
}

/// Talks until `line` has seen `count` calls hung up by the server (BYE).
async fn until_byes(line: &mut Phones, phones: &mut [Phone], count: usize, what: &str) {
    let deadline = Instant::now() + POLL;
    let mut byes = 0;
    while byes < count {
        assert!(Instant::now() < deadline, "{what}: {byes} of {count} BYEs");
        if phones.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            talk(phones, 5).await;
        }
        while let Ok(event) = line.events.try_recv() {
            if let UaEvent::Hangup { reason, .. } = event {
                assert_eq!(reason, HangupReason::RemoteBye, "{what}");
                byes += 1;
            }
        }
    }
}

/// No call of `line` has been hung up.
#[track_caller]
fn no_hangup(line: &mut Phones, what: &str) {
    while let Ok(event) = line.events.try_recv() {
        assert!(!matches!(event, UaEvent::Hangup { .. }), "{what}: {event:?}");
    }
}

/// The member listed with `number` (the SIP From user).
#[track_caller]
fn member<'a>(members: &'a [Value], number: &str) -> &'a Value {
    members
        .iter()
        .find(|m| m["number"] == number)
        .unwrap_or_else(|| panic!("{number} not among {members:?}"))
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

// ---------------------------------------------------------------------------
// 1. Authentication and customers

#[test]
fn bearer_keys_are_required_and_customers_see_only_their_own() {
    let rest = Rest::start(&[]);
    let api = &rest.api;

    // No key, another scheme, a wrong key, an empty one: 401, a Bearer
    // challenge, a JSON error.
    let basic = "Basic dXNlcjpwYXNz";
    for auth in [None, Some(basic), Some("Bearer wrong-key"), Some("Bearer "), Some("bearer")] {
        for (method, path) in [("GET", "/conferences"), ("GET", "/sounds"), ("GET", "/recordings")]
        {
            let answer = api.with_auth(auth).call(method, path, None);
            refused(&answer, 401, None, &format!("{auth:?} {method} {path}"));
            let challenge = answer.header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{auth:?}: WWW-Authenticate {challenge:?}");
        }
        let created = api.with_auth(auth).post("/conferences", &json!({"number": "4001"}));
        refused(&created, 401, None, &format!("{auth:?} POST"));
    }
    assert_eq!(items(&api.get("/conferences").json()).len(), 0, "nothing was created");

    // The first customer's room and sound.
    let room = rest.room(json!({"number": "4100", "name": "Board"}));
    let id = id_of(&room["id"]);
    let sound = api.upload_raw("Chime", "audio/wav", tone_wav(1000.0, 8000, 500));
    assert_eq!(sound.status, 201, "{}", sound.text());
    let sound_id = sound.json()["id"].as_i64().expect("integer id");

    // A second customer sees none of it and changes nothing.
    let other = rest.customer("Other");
    let theirs = other.get("/conferences");
    assert_eq!(theirs.status, 200, "{}", theirs.text());
    let theirs = theirs.json();
    assert_eq!((items(&theirs).len(), theirs["total"].as_u64()), (0, Some(0)), "{theirs}");
    let room_path = format!("/conferences/{id}");
    let answers = [
        ("GET room", other.get(&room_path)),
        ("PATCH room", other.patch(&room_path, &json!({"name": "Mine"}))),
        ("PUT room", other.put(&room_path, &json!({"number": "4100", "name": "Mine"}))),
        ("DELETE room", other.delete(&room_path)),
        ("GET members", other.get(&format!("{room_path}/members"))),
        ("invite", other.post(&format!("{room_path}/invite"), &json!({"number": "5551234"}))),
        ("mute", other.call("POST", &format!("{room_path}/members/x/mute"), None)),
        ("kick", other.call("POST", &format!("{room_path}/members/x/kick"), None)),
        ("GET sound", other.get(&format!("/sounds/{sound_id}"))),
        ("GET sound file", other.get(&format!("/sounds/{sound_id}/file"))),
        ("DELETE sound", other.delete(&format!("/sounds/{sound_id}"))),
    ];
    for (what, answer) in &answers {
        refused(answer, 404, None, &format!("another customer's {what}"));
    }
    let their_sounds = other.get("/sounds").json();
    assert!(
        !items(&their_sounds).iter().any(|s| s["id"] == sound_id),
        "another customer's sound is listed: {their_sounds}"
    );
    // Nor may it use the sound; numbers are unique on the whole server.
    let borrowed = other.post("/conferences", &json!({"number": "4200", "enter_sound": sound_id}));
    refused(&borrowed, 422, Some("enter_sound"), "another customer's sound as enter_sound");
    let borrowed =
        other.post("/conferences", &json!({"number": "4201", "music_on_hold_sound": sound_id}));
    refused(&borrowed, 422, Some("music_on_hold_sound"), "another's sound as music on hold");
    refused(&other.post("/conferences", &json!({"number": "4100"})), 409, None, "taken number");
    let recordings = other.get(&format!("/recordings?conference_id={id}"));
    assert!(
        recordings.status == 404
            || (recordings.status == 200 && items(&recordings.json()).is_empty()),
        "another customer's recordings: {} {}",
        recordings.status,
        recordings.text()
    );
    // Its own room works, and the first customer does not see it.
    let own = other.post("/conferences", &json!({"number": "4300"}));
    assert_eq!(own.status, 201, "{}", own.text());
    let own_id = id_of(&own.json()["id"]);
    refused(&api.get(&format!("/conferences/{own_id}")), 404, None, "the other way round");
    // Nothing of the first customer's changed.
    assert_eq!(api.get(&room_path).json(), room);
    assert_eq!(api.get(&format!("/sounds/{sound_id}")).status, 200);
    let mine = api.get("/conferences").json();
    assert_eq!(items(&mine).len(), 1, "{mine}");

    // A rotated key replaces the old one at once.
    let rotated = cli_json(rest.dir.path(), &["customer", "rotate-key", &rest.default_uid]);
    let fresh =
        api.with_auth(Some(&format!("Bearer {}", rotated["api_key"].as_str().expect("key"))));
    refused(&api.get("/conferences"), 401, None, "the key before rotation");
    assert_eq!(fresh.get(&room_path).json(), room);
    drop(rest);
}

// ---------------------------------------------------------------------------
// 2. Conferences

#[test]
fn conferences_are_created_listed_changed_replaced_deleted_and_checked() {
    let rest = Rest::start(&[]);
    let api = &rest.api;

    // POST with only a number: 201, Location, every default.
    let created = api.post("/conferences", &json!({"number": "4100"}));
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(created.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let room = created.json();
    has_fields(&room, &defaults("4100"));
    let id = id_of(&room["id"]);
    let path = format!("/conferences/{id}");
    assert_eq!(created.header("location"), Some(format!("{V1}{path}").as_str()));
    let got = api.get(&path);
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json(), room, "GET answers what POST did");

    // Lists: oldest first, limit and offset.
    rest.room(json!({"number": "4101"}));
    rest.room(json!({"number": "4102"}));
    let all = api.get("/conferences").json();
    let numbers = |list: &Value| -> Vec<String> {
        items(list).iter().map(|r| r["number"].as_str().expect("number").to_owned()).collect()
    };
    assert_eq!(numbers(&all), ["4100", "4101", "4102"], "{all}");
    assert_eq!((&all["total"], &all["limit"], &all["offset"]), (&json!(3), &json!(100), &json!(0)));
    let page = api.get("/conferences?limit=2&offset=1").json();
    assert_eq!(numbers(&page), ["4101", "4102"], "{page}");
    assert_eq!(
        (&page["total"], &page["limit"], &page["offset"]),
        (&json!(3), &json!(2), &json!(1))
    );
    let beyond = api.get("/conferences?offset=5").json();
    assert_eq!((items(&beyond).len(), &beyond["total"]), (0, &json!(3)), "{beyond}");

    // PATCH changes only the fields given.
    let patched = api.patch(&path, &json!({"name": "Sales", "pin": "1234"}));
    assert_eq!(patched.status, 200, "{}", patched.text());
    let patched = patched.json();
    assert_eq!((&patched["name"], &patched["pin"]), (&json!("Sales"), &json!("1234")));
    same_except(&room, &patched, &["name", "pin", "updated_at"]);
    let again = api.patch(&path, &json!({"max_members": 20, "moderator_pin": "9876"}));
    assert_eq!(again.status, 200, "{}", again.text());
    let again = again.json();
    assert_eq!((&again["max_members"], &again["moderator_pin"]), (&json!(20), &json!("9876")));
    same_except(&patched, &again, &["max_members", "moderator_pin", "updated_at"]);
    assert_eq!(api.get(&path).json(), again);
    // The PIN cannot go while the moderator PIN stays.
    let orphan = api.patch(&path, &json!({"pin": null}));
    let error = refused_with(&orphan, &[422], None, "pin removed under a moderator PIN");
    assert!(error["field"] == "pin" || error["field"] == "moderator_pin", "{error}");
    // A refused PATCH changes nothing.
    refused(&api.patch(&path, &json!({"max_members": 0})), 422, Some("max_members"), "PATCH 0");
    assert_eq!(api.get(&path).json(), again, "a refused PATCH changed the room");
    // Another room's number is taken.
    refused(&api.patch(&path, &json!({"number": "4101"})), 409, None, "PATCH to a taken number");

    // PUT replaces: what is not given returns to its default.
    let put = api.put(&path, &json!({"number": "4100", "max_members": 5}));
    assert_eq!(put.status, 200, "{}", put.text());
    let put = put.json();
    has_fields(&put, &merged(&defaults("4100"), &json!({"max_members": 5})));
    assert_eq!(put["id"], room["id"]);
    assert_eq!(put["created_at"], room["created_at"]);
    refused(&api.put(&path, &json!({"name": "No number"})), 422, Some("number"), "PUT, no number");

    // A GET's answer can be PUT back as it is.
    let full = json!({
        "name": "All set", "announce_caller_name": true, "max_members": 42, "pin": "1111",
        "moderator_pin": "2222", "mute_non_moderator": true, "record_enabled": true,
    });
    let set = api.patch(&path, &full);
    assert_eq!(set.status, 200, "{}", set.text());
    let current = api.get(&path).json();
    has_fields(&current, &merged(&defaults("4100"), &full));
    let back = api.put(&path, &current);
    assert_eq!(back.status, 200, "PUT of a GET answer: {}", back.text());
    same_except(&current, &back.json(), &["updated_at"]);
    // Read-only fields may be sent as they are, not changed.
    assert_eq!(api.patch(&path, &json!({"locked": false, "members": 0})).status, 200);
    for (field, value) in [
        ("locked", json!(true)),
        ("entry_notifications", json!(false)),
        ("members", json!(3)),
        ("id", json!("someone-else")),
        ("created_at", json!("2020-01-01T00:00:00Z")),
    ] {
        let body = json!({ field: value });
        refused(&api.patch(&path, &body), 422, Some(field), &format!("PATCH read-only {body}"));
        let mut whole = current.clone();
        whole[field] = value.clone();
        refused(&api.put(&path, &whole), 422, Some(field), &format!("PUT read-only {field}"));
    }
    same_except(&current, &api.get(&path).json(), &["updated_at"]);

    // Refusals of POST; none creates anything.
    let post = |body: &str| api.text("POST", "/conferences", body);
    refused(&post("{\"number\": "), 400, None, "malformed JSON");
    refused(&post("not json"), 400, None, "not JSON");
    refused(&post("[{\"number\": \"4200\"}]"), 400, None, "an array");
    refused(&post("\"4200\""), 400, None, "a string");
    let field_errors: [(Value, &str); 20] = [
        (json!({"number": "4200", "colour": "red"}), "colour"),
        (json!({"number": "4200", "max_members": "ten"}), "max_members"),
        (json!({"number": "4200", "max_members": 0}), "max_members"),
        (json!({"number": "4200", "max_members": -1}), "max_members"),
        (json!({"number": "4200", "max_members": 10_001}), "max_members"),
        (json!({"number": "4200", "max_members": 2.5}), "max_members"),
        (json!({"number": "4200", "announce_caller_name": "yes"}), "announce_caller_name"),
        (json!({"number": "4200", "pin": 1234}), "pin"),
        (json!({"number": "4200", "pin": "12a4"}), "pin"),
        (json!({"number": "4200", "pin": "1".repeat(33)}), "pin"),
        (json!({"number": "4200", "moderator_pin": "9876"}), "moderator_pin"),
        (json!({"number": "4200", "enter_sound": 999_999}), "enter_sound"),
        (json!({"number": "4200", "music_on_hold_sound": 999_999}), "music_on_hold_sound"),
        (json!({"number": "4200", "name": "n".repeat(4097)}), "name"),
        (json!({"name": "No number"}), "number"),
        (json!({"number": 4200}), "number"),
        (json!({"number": "../4200"}), "number"),
        (json!({"number": ""}), "number"),
        (json!({"number": "42 00"}), "number"),
        (json!({"number": "4".repeat(48)}), "number"),
    ];
    for (body, field) in &field_errors {
        refused(&api.post("/conferences", body), 422, Some(field), &body.to_string());
    }
    let same = api
        .post("/conferences", &json!({"number": "4200", "pin": "1234", "moderator_pin": "1234"}));
    refused(&same, 422, None, "moderator PIN equal to the PIN");
    refused(&api.post("/conferences", &json!({"number": "4101"})), 409, None, "number taken");
    // The edges that are allowed.
    let edges = rest.room(json!({
        "number": format!("+4-_{}", "9".repeat(43)), "max_members": 10_000,
        "pin": "1".repeat(32), "name": "n".repeat(4096),
    }));
    assert_eq!(edges["max_members"], 10_000);
    let big = format!("{{\"number\": \"4300\", \"name\": \"{}\"}}", "x".repeat(70 * 1024));
    refused(&post(&big), 413, None, "a body over 64 KiB");
    let listed = api.get("/conferences").json();
    assert_eq!(listed["total"], 4, "only the rooms created: {listed}");

    // Malformed query parameters, unknown ids, methods not served.
    for query in ["limit=0", "limit=abc", "limit=1001", "offset=-1", "offset=x"] {
        let answer = api.get(&format!("/conferences?{query}"));
        refused_with(&answer, &[400, 422], None, query);
    }
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some("{}")),
        ("PUT", Some("{\"number\": \"4999\"}")),
        ("DELETE", None),
    ] {
        let answer = match body {
            Some(text) => api.text(method, "/conferences/no-such-room", text),
            None => api.call(method, "/conferences/no-such-room", None),
        };
        refused(&answer, 404, None, &format!("{method} of an unknown room"));
    }
    refused(&api.get("/no-such-path"), 404, None, "an unknown path");
    for (method, path) in [
        ("DELETE", "/conferences".to_owned()),
        ("PATCH", "/conferences".to_owned()),
        ("PUT", "/conferences".to_owned()),
        ("POST", path.clone()),
    ] {
        let answer = api.text(method, &path, "{}");
        assert_eq!(answer.status, 405, "{method} {path}: {}", answer.text());
    }

    // DELETE: 204, then gone; the number is free again.
    let deleted = api.delete(&path);
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    refused(&api.get(&path), 404, None, "a deleted room");
    refused(&api.delete(&path), 404, None, "deleted twice");
    let reborn = rest.room(json!({"number": "4100"}));
    assert_ne!(reborn["id"], room["id"]);
    has_fields(&reborn, &defaults("4100"));
    drop(rest);
}

// ---------------------------------------------------------------------------
// 3. Sounds

/// Checks an upload's answer and returns the sound.
#[track_caller]
fn uploaded(api: &Api, reply: &Reply, names: &[&str], duration_ms: f64) -> Value {
    assert_eq!(reply.status, 201, "{names:?}: {}", reply.text());
    let sound = reply.json();
    let id = sound["id"].as_i64().unwrap_or_else(|| panic!("an integer id: {sound}"));
    assert_eq!(reply.header("location"), Some(format!("{V1}/sounds/{id}").as_str()));
    assert!(names.iter().any(|n| sound["name"] == *n), "name {} not in {names:?}", sound["name"]);
    let duration = sound["duration_ms"].as_f64().unwrap_or_else(|| panic!("duration: {sound}"));
    assert!(
        (duration - duration_ms).abs() <= duration_ms * 0.05,
        "{duration} ms, {duration_ms} written"
    );
    let rate = sound["sample_rate"].as_u64().unwrap_or_else(|| panic!("rate: {sound}"));
    assert!([8000, 16_000, 48_000].contains(&rate), "sample_rate {rate}");
    assert!(sound["size"].as_u64().is_some_and(|s| s > 44), "size: {sound}");
    assert_eq!(sound["shared"], false);
    assert!(sound["created_at"].is_string(), "{sound}");
    let again = api.get(&format!("/sounds/{id}"));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), sound);
    sound
}

/// The sound's file is 16-bit mono PCM at its rate, as long as written, and
/// still the tone written.
#[track_caller]
fn check_file(api: &Api, sound: &Value, freq: f64, duration_ms: f64) {
    let file = api.get(&format!("/sounds/{}/file", sound["id"]));
    assert_eq!(file.status, 200, "{}", file.text());
    let content_type = file.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("audio/"), "Content-Type {content_type:?}");
    let wav = parse_wav(&file.body);
    assert_eq!((wav.tag, wav.channels, wav.bits), (1, 1, 16), "{}: 16-bit mono PCM", sound["name"]);
    assert_eq!(Some(u64::from(wav.rate)), sound["sample_rate"].as_u64());
    let samples = wav.samples();
    let ms = samples.len() as f64 * 1000.0 / f64::from(wav.rate);
    assert!(
        (ms - duration_ms).abs() <= duration_ms * 0.05,
        "{ms} ms in the file, {duration_ms} written"
    );
    let on = goertzel_amplitude(&samples, wav.rate, freq);
    let off = goertzel_amplitude(&samples, wav.rate, freq * 1.37);
    assert!(on > 2000.0 && off < 300.0, "{}: {freq} Hz at {on:.0}, off at {off:.0}", sound["name"]);
}

/// The uploaded WAV files on disk.
fn stored_uploads(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("sounds/uploads"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn sounds_are_uploaded_converted_refused_and_deleted() {
    let rest = Rest::start(&[]);
    let api = &rest.api;

    // 16-bit PCM at 8 kHz, by multipart with a name.
    let pcm = api.upload_multipart(Some("Chime"), "chime.wav", &tone_wav(1000.0, 8000, 1500));
    let chime = uploaded(api, &pcm, &["Chime"], 1500.0);
    check_file(api, &chime, 1000.0, 1500.0);
    // µ-law at 8 kHz, raw.
    let mu: Vec<u8> = sine(600.0, 8000, 2000, 8000.0).into_iter().map(ulaw).collect();
    let mulaw = api.upload_raw("Mu law", "audio/wav", wav(7, 1, 8000, 8, &mu));
    let mulaw = uploaded(api, &mulaw, &["Mu law"], 2000.0);
    check_file(api, &mulaw, 600.0, 2000.0);
    // 16-bit stereo at 44.1 kHz, raw as audio/x-wav.
    let stereo: Vec<i16> =
        sine(800.0, 44_100, 1200, 8000.0).into_iter().flat_map(|s| [s, s]).collect();
    let stereo = api.upload_raw("Stereo", "audio/x-wav", wav(1, 2, 44_100, 16, &pcm16(&stereo)));
    let stereo = uploaded(api, &stereo, &["Stereo"], 1200.0);
    check_file(api, &stereo, 800.0, 1200.0);
    // 8-bit PCM (unsigned), multipart without a name: the file's own name.
    let eight: Vec<u8> = sine(500.0, 8000, 1000, 8000.0)
        .into_iter()
        .map(|s| ((i32::from(s) >> 8) + 128) as u8)
        .collect();
    let eight = api.upload_multipart(None, "eight bit.wav", &wav(1, 1, 8000, 8, &eight));
    let eight = uploaded(api, &eight, &["eight bit.wav", "eight bit"], 1000.0);
    check_file(api, &eight, 500.0, 1000.0);
    let accepted: Vec<Value> =
        [&chime, &mulaw, &stereo, &eight].iter().map(|s| s["id"].clone()).collect();
    assert_eq!(stored_uploads(rest.dir.path()), 4);

    // Refused: each a 422 (or 413, 415) and nothing kept.
    let hello = api.upload_raw("Hello", "audio/wav", b"hello".to_vec());
    refused(&hello, 422, None, "not a WAV");
    let mut cut = tone_wav(1000.0, 8000, 1000);
    cut.truncate(44 + 1000);
    cut[40..44].copy_from_slice(&16_000u32.to_le_bytes());
    refused(&api.upload_raw("Cut", "audio/wav", cut), 422, None, "data chunk past the end");
    let floats: Vec<u8> = sine(1000.0, 8000, 1000, 8000.0)
        .into_iter()
        .flat_map(|s| (f32::from(s) / 32768.0).to_le_bytes())
        .collect();
    let float = api.upload_raw("Float", "audio/wav", wav(3, 1, 8000, 32, &floats));
    refused(&float, 422, None, "IEEE float");
    // 11 minutes of µ-law at 8 kHz: 5.3 MB, under the size limit, over the length one.
    let long = wav(7, 1, 8000, 8, &vec![0xFFu8; 8000 * 660]);
    refused(&api.upload_raw("Long", "audio/wav", long), 422, None, "11 minutes");
    let slow = api.upload_raw("Slow", "audio/wav", tone_wav(500.0, 4000, 1000));
    refused(&slow, 422, None, "a 4 kHz rate");
    let short = || tone_wav(1000.0, 8000, 300);
    let long_name = "n".repeat(101);
    for (what, name) in [
        ("a path as name", "../../etc/passwd"),
        ("name ..", ".."),
        ("name .", "."),
        ("a slash", "a/b"),
        ("a backslash", "a\\b"),
        ("a control character", "a\u{7}b"),
        ("an empty name", ""),
        ("101 characters", long_name.as_str()),
    ] {
        refused(&api.upload_raw(name, "audio/wav", short()), 422, Some("name"), what);
    }
    let path_name = api.upload_multipart(Some("../../etc/passwd"), "x.wav", &short());
    refused(&path_name, 422, Some("name"), "a path as multipart name");
    refused(&api.upload_raw("Text", "text/plain", short()), 415, None, "text/plain");
    let big = wav(1, 1, 8000, 16, &vec![0u8; 10 * 1024 * 1024 + 4096]);
    refused(&api.upload_raw("Big", "audio/wav", big), 413, None, "over 10 MiB");
    let listed = api.get("/sounds").json();
    let own: Vec<Value> = items(&listed)
        .into_iter()
        .filter(|s| s["shared"] == false)
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(own, accepted, "only the accepted sounds, oldest first: {listed}");
    assert_eq!(stored_uploads(rest.dir.path()), 4, "a refused upload left a file");
    assert!(!rest.dir.path().join("etc/passwd").exists());

    // A sound a room uses cannot go; unused, it can.
    let id = chime["id"].as_i64().expect("id");
    let entering = rest.room(json!({"number": "4300", "enter_sound": id}));
    assert_eq!(entering["enter_sound"], id);
    let holding = rest.room(json!({"number": "4301", "music_on_hold_sound": id}));
    let in_use = api.delete(&format!("/sounds/{id}"));
    let error = refused(&in_use, 409, Some("id"), "a sound in use");
    let rooms = error["rooms"].as_array().unwrap_or_else(|| panic!("rooms in {error}"));
    for number in ["4300", "4301"] {
        assert!(rooms.iter().any(|r| r == number), "{number} not in {error}");
    }
    assert_eq!(api.get(&format!("/sounds/{id}")).status, 200, "a refused DELETE removed it");
    let cleared = api
        .patch(&format!("/conferences/{}", id_of(&entering["id"])), &json!({"enter_sound": null}));
    assert_eq!(cleared.status, 200, "{}", cleared.text());
    assert_eq!(cleared.json()["enter_sound"], Value::Null);
    let cleared = api.patch(
        &format!("/conferences/{}", id_of(&holding["id"])),
        &json!({"music_on_hold_sound": null}),
    );
    assert_eq!(cleared.status, 200, "{}", cleared.text());
    let deleted = api.delete(&format!("/sounds/{id}"));
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    refused(&api.get(&format!("/sounds/{id}")), 404, None, "a deleted sound");
    refused(&api.get(&format!("/sounds/{id}/file")), 404, None, "a deleted sound's file");
    refused(&api.delete(&format!("/sounds/{id}")), 404, None, "deleted twice");
    refused(&api.get("/sounds/999999"), 404, None, "an unknown sound");
    assert_eq!(stored_uploads(rest.dir.path()), 3, "the deleted sound's file is gone");
    drop(rest);
}

#[test]
fn a_customer_s_sounds_stop_at_its_quota_and_another_customer_is_not_counted() {
    let rest = Rest::start(&["--sound-quota-mib", "1"]);
    let api = &rest.api;
    // 20 s of 16-bit PCM at 8 kHz: 320 KB as stored, so three fit in 1 MiB.
    let clip = || tone_wav(700.0, 8000, 20_000);
    let mut kept = Vec::new();
    for i in 0..3 {
        let name = format!("Clip {i}");
        kept.push(uploaded(api, &api.upload_raw(&name, "audio/wav", clip()), &[&name], 20_000.0));
    }
    let size = kept[0]["size"].as_u64().expect("size");
    assert!(size * 3 <= 1 << 20 && size * 4 > 1 << 20, "{size} bytes: the test needs 3 to fit");

    let over = api.upload_raw("One too many", "audio/wav", clip());
    let error = refused(&over, 413, None, "the fourth sound");
    assert_eq!(error["quota_bytes"], 1 << 20, "{error}");
    assert_eq!(error["used_bytes"], 3 * size, "{error}");
    assert_eq!(error["size_bytes"], size, "{error}");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("quota")), "{error}");
    // A small one still fits in what is left.
    let short = api.upload_raw("Short", "audio/wav", tone_wav(700.0, 8000, 1000));
    kept.push(uploaded(api, &short, &["Short"], 1000.0));
    assert_eq!(stored_uploads(rest.dir.path()), 4, "the refused upload left a file");
    let listed = items(&api.get("/sounds").json());
    assert_eq!(listed.iter().filter(|s| s["shared"] == false).count(), 4, "{listed:?}");

    // The quota is each customer's own.
    let other = rest.customer("Quota Neighbour");
    let theirs = other.upload_raw("Theirs", "audio/wav", clip());
    uploaded(&other, &theirs, &["Theirs"], 20_000.0);

    // Deleting one makes room again.
    let gone = api.delete(&format!("/sounds/{}", kept[0]["id"]));
    assert_eq!(gone.status, 204, "{}", gone.text());
    let again = api.upload_raw("In its place", "audio/wav", clip());
    uploaded(api, &again, &["In its place"], 20_000.0);
    drop(rest);
}

#[test]
fn a_zero_sound_quota_refuses_every_upload() {
    let rest = Rest::start(&["--sound-quota-mib", "0"]);
    let reply = rest.api.upload_raw("Any", "audio/wav", tone_wav(700.0, 8000, 300));
    let error = refused(&reply, 413, None, "an upload with no quota");
    assert_eq!(error["quota_bytes"], 0, "{error}");
    assert_eq!(stored_uploads(rest.dir.path()), 0);
    drop(rest);
}

// ---------------------------------------------------------------------------
// 4. Live members

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_members_are_listed_muted_unmuted_and_kicked() {
    let mut rest = Rest::start_async(vec![]).await;
    let api = rest.api.clone();
    let sip = rest.sip;
    let room = api
        .run(|a| {
            a.post(
                "/conferences",
                &json!({"number": "4400", "pin": "1111", "moderator_pin": "2222"}),
            )
        })
        .await;
    assert_eq!(room.status, 201, "{}", room.text());
    let id = id_of(&room.json()["id"]);
    let members_path = format!("/conferences/{id}/members");

    // One line per caller, so a BYE is known to be for that caller.
    let (mut moderator_line, mut participant_line, mut stranger) =
        (Phones::new().await, Phones::new().await, Phones::new().await);
    let wrong = stranger.try_dial(&format!("sip:4400*3333@{sip}"), 9).await;
    assert_eq!(wrong.as_ref().err().map(String::as_str), Some("403"), "a wrong PIN is refused");
    let mut phones = vec![
        moderator_line.dial(&format!("sip:4400*2222@{sip}"), 1, 440.0).await,
        participant_line.dial(&format!("sip:4400*1111@{sip}"), 2, 1000.0).await,
    ];
    let listed = until_json(&api, &members_path, &mut phones, "two members", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    let members = items(&listed);
    for (i, (number, role)) in
        [("phone1", "moderator"), ("phone2", "participant")].iter().enumerate()
    {
        let m = &members[i];
        assert_eq!(
            (&m["number"], &m["role"], &m["muted"]),
            (&json!(number), &json!(role), &json!(false)),
            "{m}"
        );
        assert!(m["name"].is_string() && m["talking"].is_boolean(), "{m}");
        assert!(m["joined_at"].as_str().is_some_and(|t| t.contains('T')), "joined_at: {m}");
    }
    let moderator_id = id_of(&members[0]["id"]);
    let participant_id = id_of(&members[1]["id"]);
    let count = api.get_async(&format!("/conferences/{id}")).await.json();
    assert_eq!(count["members"], 2, "{count}");
    let heard = until_level(&mut phones, 0, 1000.0, true).await;
    assert!(heard > 500.0, "the moderator hears the participant ({heard:.0})");

    // Mute and unmute over REST: heard as audio and listed.
    let action = |member: &str, what: &str| format!("{members_path}/{member}/{what}");
    let muted = api.post_async(&action(&participant_id, "mute")).await;
    assert_eq!(muted.status, 200, "{}", muted.text());
    let muted = muted.json();
    assert_eq!(
        (id_of(&muted["id"]), &muted["muted"]),
        (participant_id.clone(), &json!(true)),
        "{muted}"
    );
    let level0 = until_level(&mut phones, 0, 1000.0, false).await;
    assert!(
        level0 < 100.0,
        "the muted participant is still heard ({level0:.0}):\n{}",
        rest.server.logs()
    );
    let other = until_level(&mut phones, 1, 440.0, true).await;
    assert!(other > 500.0, "the muted participant still hears the moderator ({other:.0})");
    let listed = api.get_async(&members_path).await.json();
    assert_eq!(member(&items(&listed), "phone2")["muted"], true, "{listed}");
    assert_eq!(member(&items(&listed), "phone1")["muted"], false, "{listed}");
    let unmuted = api.post_async(&action(&participant_id, "unmute")).await;
    assert_eq!(unmuted.status, 200, "{}", unmuted.text());
    assert_eq!(unmuted.json()["muted"], false);
    let level0 = until_level(&mut phones, 0, 1000.0, true).await;
    assert!(level0 > 500.0, "the unmuted participant is not heard ({level0:.0})");
    let listed = api.get_async(&members_path).await.json();
    assert_eq!(member(&items(&listed), "phone2")["muted"], false, "{listed}");

    // Talking follows the tone.
    until_json(&api, &members_path, &mut phones, "phone2 talking", |v| {
        v["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|m| m["number"] == "phone2" && m["talking"] == true))
    })
    .await;
    phones[1].tone = 0.0;
    until_json(&api, &members_path, &mut phones, "phone2 silent", |v| {
        v["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|m| m["number"] == "phone2" && m["talking"] == false))
    })
    .await;

    // Unknown members and rooms.
    for what in ["mute", "unmute", "kick"] {
        let answer = api.post_async(&action("nobody", what)).await;
        refused(&answer, 404, None, &format!("{what} of an unknown member"));
    }
    let unknown = api.get_async("/conferences/no-such-room/members").await;
    refused(&unknown, 404, None, "members of an unknown room");

    // Kick: 204, a BYE to that caller only, one member left.
    let kicked = api.post_async(&action(&participant_id, "kick")).await;
    assert_eq!(kicked.status, 204, "{}", kicked.text());
    phones.truncate(1);
    until_byes(&mut participant_line, &mut phones, 1, "the kicked caller").await;
    no_hangup(&mut moderator_line, "the moderator stays");
    let listed = until_json(&api, &members_path, &mut phones, "one member left", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    assert_eq!(id_of(&items(&listed)[0]["id"]), moderator_id);
    let again = api.post_async(&action(&participant_id, "kick")).await;
    refused(&again, 404, None, "the kicked member");

    // Invitations: a bad number is refused; so is a full room, as is a caller.
    let invite = format!("/conferences/{id}/invite");
    let bad = api.json_async("POST", &invite, json!({"number": "not a number"})).await;
    refused(&bad, 422, Some("number"), "an invitation to a bad number");
    let full =
        api.json_async("PATCH", &format!("/conferences/{id}"), json!({"max_members": 1})).await;
    assert_eq!(full.status, 200, "{}", full.text());
    let refused_invite = api.json_async("POST", &invite, json!({"number": "5551234"})).await;
    refused(&refused_invite, 409, None, "an invitation to a full room");
    let late = stranger.try_dial(&format!("sip:4400*1111@{sip}"), 3).await;
    assert!(late.is_err(), "a full room turns callers away");
    no_hangup(&mut moderator_line, "the moderator stays");
}

// ---------------------------------------------------------------------------
// 5. Keypad and invitations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keypad_steers_a_rest_room_and_invitations_reach_a_sipp_callee() {
    // SIPp answers both invitations (one after the other) and echoes the RTP it
    // gets: the moderator hearing its own tone back proves the callee joined.
    let sipp_port = support::free_udp_range(1);
    let media_port = support::free_udp_range(4);
    let proxy = format!("127.0.0.1:{sipp_port}");
    let mut rest = Rest::start_async(vec!["--outbound-proxy".into(), proxy]).await;
    let sipp = std::process::Command::new("sipp")
        .arg("-sf")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sipp/uas_answer.xml"))
        .args(["-i", "127.0.0.1", "-p", &sipp_port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media_port.to_string(), "-rtp_echo"])
        .args(["-nostdin", "-m", "2", "-timeout", "300s"])
        .current_dir(rest.dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp runs (apt-get install sip-tester)");
    let mut sipp = SippGuard(sipp);
    let api = rest.api.clone();
    let sip = rest.sip;
    let body = json!({
        "number": "4500", "pin": "1111", "moderator_pin": "2222", "mute_non_moderator": true,
    });
    let room = api.run(move |a| a.post("/conferences", &body)).await;
    assert_eq!(room.status, 201, "{}", room.text());
    let id = id_of(&room.json()["id"]);
    let room_path = format!("/conferences/{id}");
    let members_path = format!("{room_path}/members");
    let (mut line, mut late) = (Phones::new().await, Phones::new().await);
    let mut phones = vec![
        line.dial(&format!("sip:4500*2222@{sip}"), 1, 440.0).await,
        line.dial(&format!("sip:4500*1111@{sip}"), 2, 1000.0).await,
    ];
    let listed = until_json(&api, &members_path, &mut phones, "two members", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    let members = items(&listed);
    assert_eq!(member(&members, "phone1")["muted"], false, "the moderator enters unmuted");
    assert_eq!(
        member(&members, "phone2")["muted"],
        true,
        "mute_non_moderator: the participant enters muted"
    );
    let mut known: Vec<String> = members.iter().map(|m| id_of(&m["id"])).collect();

    // The participant enters muted and its *1 does nothing.
    let quiet = until_level(&mut phones, 0, 1000.0, false).await;
    assert!(quiet < 100.0, "the participant entered unmuted ({quiet:.0}):\n{}", rest.server.logs());
    let heard = until_level(&mut phones, 1, 440.0, true).await;
    assert!(heard > 500.0, "the participant does not hear the moderator ({heard:.0})");
    press(&mut phones, 1, "*1").await;
    talk(&mut phones, 75).await;
    let still = level(&phones[0], 1000.0);
    assert!(still < 100.0, "*1 from a participant unmuted it ({still:.0})");
    let listed = api.get_async(&members_path).await.json();
    assert_eq!(member(&items(&listed), "phone2")["muted"], true, "{listed}");

    // *90 unmutes everyone, *91 mutes the non-moderators.
    press(&mut phones, 0, "*90").await;
    let unmuted = until_level(&mut phones, 0, 1000.0, true).await;
    assert!(
        unmuted > 500.0,
        "*90 did not unmute the participant ({unmuted:.0}):\n{}",
        rest.server.logs()
    );
    until_json(&api, &members_path, &mut phones, "unmuted by *90", |v| {
        v["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|m| m["number"] == "phone2" && m["muted"] == false))
    })
    .await;
    press(&mut phones, 0, "*91").await;
    let muted = until_level(&mut phones, 0, 1000.0, false).await;
    assert!(muted < 100.0, "*91 did not mute the participant ({muted:.0})");
    let moderator = until_level(&mut phones, 1, 440.0, true).await;
    assert!(moderator > 500.0, "*91 muted the moderator too ({moderator:.0})");
    until_json(&api, &members_path, &mut phones, "muted by *91", |v| {
        v["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|m| m["number"] == "phone2" && m["muted"] == true))
    })
    .await;

    // *92 locks: shown, and even the moderator PIN is refused; so is an invitation.
    press(&mut phones, 0, "*92").await;
    until_json(&api, &room_path, &mut phones, "locked by *92", |v| v["locked"] == true).await;
    let refused_call = late.try_dial(&format!("sip:4500*2222@{sip}"), 3).await;
    assert_eq!(
        refused_call.as_ref().err().map(String::as_str),
        Some("403"),
        "a locked room refuses a moderator with 403"
    );
    let locked =
        api.json_async("POST", &format!("{room_path}/invite"), json!({"number": "5551234"})).await;
    refused(&locked, 409, None, "an invitation to a locked room");
    // *93 unlocks: a new caller gets in.
    press(&mut phones, 0, "*93").await;
    until_json(&api, &room_path, &mut phones, "unlocked by *93", |v| v["locked"] == false).await;
    phones.push(late.dial(&format!("sip:4500*1111@{sip}"), 4, 0.0).await);
    let listed = until_json(&api, &members_path, &mut phones, "three members", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    known.push(id_of(&member(&items(&listed), "phone4")["id"]));
    // *94 and *95: entry notifications off and on.
    press(&mut phones, 0, "*94").await;
    until_json(&api, &room_path, &mut phones, "*94", |v| v["entry_notifications"] == false).await;
    press(&mut phones, 0, "*95").await;
    until_json(&api, &room_path, &mut phones, "*95", |v| v["entry_notifications"] == true).await;

    // *8 invites: the callee joins, is unmuted over REST, and echoes the room.
    press(&mut phones, 0, "*8").await;
    press(&mut phones, 0, "5551234#").await;
    let listed = until_json(&api, &members_path, &mut phones, "the *8 callee", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 4)
    })
    .await;
    let callee = items(&listed)
        .into_iter()
        .find(|m| !known.contains(&id_of(&m["id"])))
        .expect("the invited member");
    assert_eq!(callee["role"], "participant", "{callee}");
    let callee_id = id_of(&callee["id"]);
    let unmute = api.post_async(&format!("{members_path}/{callee_id}/unmute")).await;
    assert_eq!(unmute.status, 200, "{}", unmute.text());
    let echoed = until_level(&mut phones, 0, 440.0, true).await;
    assert!(
        echoed > 500.0,
        "the *8 callee did not join or hear the room ({echoed:.0}):\n{}",
        rest.server.logs()
    );
    let kicked = api.post_async(&format!("{members_path}/{callee_id}/kick")).await;
    assert_eq!(kicked.status, 204, "{}", kicked.text());
    until_json(&api, &members_path, &mut phones, "the *8 callee gone", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    let gone = until_level(&mut phones, 0, 440.0, false).await;
    assert!(gone < 100.0, "the kicked callee still echoes ({gone:.0})");

    // REST invites: 202 with the member id it will have.
    let invited =
        api.json_async("POST", &format!("{room_path}/invite"), json!({"number": "5551234"})).await;
    assert_eq!(invited.status, 202, "{}", invited.text());
    let invited_value = invited.json()["id"].clone();
    let invited_id = id_of(&invited_value);
    let listed = until_json(&api, &members_path, &mut phones, "the REST callee", |v| {
        v["items"].as_array().is_some_and(|i| i.iter().any(|m| m["id"] == invited_value))
    })
    .await;
    let callee =
        items(&listed).into_iter().find(|m| id_of(&m["id"]) == invited_id).expect("callee");
    assert_eq!(callee["role"], "participant", "{callee}");
    let unmute = api.post_async(&format!("{members_path}/{invited_id}/unmute")).await;
    assert_eq!(unmute.status, 200, "{}", unmute.text());
    let echoed = until_level(&mut phones, 0, 440.0, true).await;
    assert!(
        echoed > 500.0,
        "the REST callee did not join or hear the room ({echoed:.0}):\n{}",
        rest.server.logs()
    );

    // Deleting the room hangs everyone up, SIPp's callee included.
    let deleted = api.run(move |a| a.delete(&room_path)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let mut lone = phones.split_off(2);
    until_byes(&mut line, &mut phones, 2, "the room's callers").await;
    until_byes(&mut late, &mut lone, 1, "the late caller").await;
    let deadline = Instant::now() + POLL;
    let status = loop {
        if let Some(status) = sipp.0.try_wait().expect("sipp") {
            break status;
        }
        assert!(Instant::now() < deadline, "SIPp's second callee got no BYE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "SIPp: {status}");
}

// ---------------------------------------------------------------------------
// 6. A room's own sounds

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_room_plays_its_enter_sound_and_music_on_hold() {
    let mut rest = Rest::start_async(vec![]).await;
    let api = rest.api.clone();
    let (enter, hold, room) = api
        .run(|a| {
            let enter = a.upload_raw("Enter", "audio/wav", tone_wav(1500.0, 8000, 400));
            assert_eq!(enter.status, 201, "{}", enter.text());
            let hold = a.upload_multipart(Some("Hold"), "hold.wav", &tone_wav(700.0, 16_000, 2000));
            assert_eq!(hold.status, 201, "{}", hold.text());
            let room = a.post("/conferences", &json!({"number": "4600"}));
            assert_eq!(room.status, 201, "{}", room.text());
            (enter.json()["id"].clone(), hold.json()["id"].clone(), room.json())
        })
        .await;
    let room_path = format!("/conferences/{}", id_of(&room["id"]));
    let set = api
        .json_async("PATCH", &room_path, json!({"enter_sound": enter, "music_on_hold_sound": hold}))
        .await;
    assert_eq!(set.status, 200, "{}", set.text());
    let set = set.json();
    assert_eq!((&set["enter_sound"], &set["music_on_hold_sound"]), (&enter, &hold), "{set}");

    let target = format!("sip:4600@{}", rest.sip);
    let mut ua = Phones::new().await;
    let mut phones = vec![ua.dial(&target, 1, 0.0).await];
    let held = talk_until(&mut phones, |p| level(&p[0], 700.0) > 500.0).await;
    assert!(
        held,
        "the room's own music on hold is not heard ({:.0}):\n{}",
        level(&phones[0], 700.0),
        rest.server.logs()
    );
    assert!(music(&phones[0]) < 100.0, "the bundled music plays as well");

    // A second caller enters while the first listens: the enter sound, not the beep.
    let (second, ()) = tokio::join!(ua.dial(&target, 2, 0.0), talk(&mut phones, 100));
    let entered = peak_in_windows(&phones[0], 1500.0);
    assert!(
        entered > 800.0,
        "the enter sound was not heard ({entered:.0}):\n{}",
        rest.server.logs()
    );
    // The beep would be about 5000; the 700 Hz hold tone leaks a little into 660 Hz.
    let beep = BEEP_NOTES.map(|f| peak_in_windows(&phones[0], f));
    assert!(beep.iter().all(|b| *b < 1500.0), "the beep played instead ({beep:.0?})");
    phones.push(second);
    let together =
        talk_until(&mut phones, |p| level(&p[0], 700.0) < 100.0 && level(&p[1], 700.0) < 100.0)
            .await;
    assert!(together, "the music on hold goes on with two in the room");

    // The second is kicked: the first is alone again and hears the room's music.
    let members =
        until_json(&api, &format!("{room_path}/members"), &mut phones, "two members", |v| {
            v["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    let second_id = id_of(&member(&items(&members), "phone2")["id"]);
    let kicked = api.post_async(&format!("{room_path}/members/{second_id}/kick")).await;
    assert_eq!(kicked.status, 204, "{}", kicked.text());
    phones.truncate(1);
    let again = talk_until(&mut phones, |p| level(&p[0], 700.0) > 500.0).await;
    assert!(again, "the room's music did not come back for the caller left alone");

    // A new music_on_hold_sound takes effect at once: the caller alone hears
    // the bundled music instead of the 700 Hz one.
    let cleared = api.json_async("PATCH", &room_path, json!({"music_on_hold_sound": null})).await;
    assert_eq!(cleared.status, 200, "{}", cleared.text());
    assert_eq!(cleared.json()["music_on_hold_sound"], Value::Null);
    let bundled =
        talk_until(&mut phones, |p| music(&p[0]) > 300.0 && level(&p[0], 700.0) < 100.0).await;
    assert!(
        bundled,
        "the live room kept its old music on hold (700 Hz at {:.0}, bundled at {:.0}):\n{}",
        level(&phones[0], 700.0),
        music(&phones[0]),
        rest.server.logs()
    );
}

// ---------------------------------------------------------------------------
// 7. Recordings

/// A customer's recordings stop at its quota: a recording that reaches it ends
/// by itself while its call goes on, no new one starts once the quota is
/// taken (the log says why), and one starts again once the customer deletes
/// some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_s_recordings_stop_at_its_quota() {
    let mut rest = Rest::start_async(vec!["--recording-quota-mib".into(), "1".into()]).await;
    let api = rest.api.clone();
    let room = api
        .run(|a| a.post("/conferences", &json!({"number": "4710", "record_enabled": true})))
        .await;
    assert_eq!(room.status, 201, "{}", room.text());
    let id = id_of(&room.json()["id"]);
    let listing = format!("/recordings?conference_id={id}");
    let members = format!("/conferences/{id}/members");
    let target = format!("sip:4710@{}", rest.sip);
    let session = |n: u64| {
        let target = target.clone();
        async move {
            let mut line = Phones::new().await;
            let phone = line.dial(&target, n, 440.0).await;
            (line, vec![phone])
        }
    };
    let recordings = rest.dir.path().join("recordings");
    let file_of = |uid: &str| {
        std::fs::read_dir(&recordings)
            .expect("recordings directory")
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().contains(uid))
            .expect("the recording's file")
            .path()
    };
    let hang_up = |line: Phones, phones: Vec<Phone>| {
        let api = api.clone();
        let members = members.clone();
        async move {
            line.ua.shutdown().await;
            drop(phones);
            until_json(&api, &members, &mut [], "the session over", |v| {
                v["items"].as_array().is_some_and(Vec::is_empty)
            })
            .await;
        }
    };

    // Under the quota: recorded.
    let (line, mut phones) = session(1).await;
    until_json(&api, &listing, &mut phones, "the first recording", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    hang_up(line, phones).await;
    let ended = until_json(&api, &listing, &mut [], "the first recording ended", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 1 && !i[0]["ended_at"].is_null())
    })
    .await;
    let first = id_of(&items(&ended)[0]["id"]);
    // A long recording, as far as the quota can tell: 96 KiB short of 1 MiB.
    let room_left = 96 * 1024;
    let grown = std::fs::OpenOptions::new().write(true).open(file_of(&first)).expect("open");
    grown.set_len(1024 * 1024 - room_left).expect("grow");
    drop(grown);

    // The next recording may take the 96 KiB left (6 s of an 8 kHz room, one
    // second at 48 kHz): it ends by itself, and the call goes on. What is then
    // left is too little for another (under 64 KiB).
    let (line, mut phones) = session(2).await;
    let listed = until_json(&api, &listing, &mut phones, "the second recording ended", |v| {
        v["items"]
            .as_array()
            .is_some_and(|i| i.len() == 2 && i.iter().all(|r| !r["ended_at"].is_null()))
    })
    .await;
    tokio::task::block_in_place(|| {
        rest.server.wait_for_log("recording stopped at its limit", Duration::from_secs(5))
    });
    let second = items(&listed)
        .iter()
        .map(|r| id_of(&r["id"]))
        .find(|uid| *uid != first)
        .expect("the second recording");
    let size = std::fs::metadata(file_of(&second)).expect("file").len();
    assert!(size <= room_left, "the file stayed within the quota: {size} bytes");
    // One 20 ms frame at 48 kHz, the most a room records at, is 1920 bytes.
    assert!(size > room_left - 1920, "it stopped at the quota, not before: {size} bytes");
    let present = api.get_async(&members).await.json();
    assert_eq!(items(&present).len(), 1, "the caller is still in the room: {present}");
    let heard = talk_until(&mut phones, |p| level(&p[0], 440.0) < 100.0).await;
    assert!(heard, "the call still carries audio");
    hang_up(line, phones).await;

    // At the quota: the call goes on, unrecorded, and the log says why.
    let (line, mut phones) = session(3).await;
    talk(&mut phones, 25).await;
    tokio::task::block_in_place(|| {
        rest.server.wait_for_log("recording over quota", Duration::from_secs(10))
    });
    let listed = api.get_async(&listing).await;
    assert_eq!(items(&listed.json()).len(), 2, "a recording past the quota: {}", listed.text());
    // Deleting one makes room, for the next session.
    let deleted = api
        .run({
            let path = format!("/recordings/{first}");
            move |a| a.delete(&path)
        })
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    hang_up(line, phones).await;
    let (_line, mut phones) = session(4).await;
    until_json(&api, &listing, &mut phones, "a recording once there is room", |v| {
        v["items"]
            .as_array()
            .is_some_and(|i| i.len() == 2 && i.iter().any(|r| r["ended_at"].is_null()))
    })
    .await;
}

/// Below the free-space floor nothing is recorded: the call goes on and the
/// log says why. (The floor here is larger than any disk.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_recording_starts_on_a_nearly_full_disk() {
    let floor = vec!["--recording-min-free-mib".into(), "1000000000".into()];
    let mut rest = Rest::start_async(floor).await;
    let api = rest.api.clone();
    let body = json!({"number": "4711", "record_enabled": true});
    let room = api.run(move |a| a.post("/conferences", &body)).await;
    assert_eq!(room.status, 201, "{}", room.text());
    let id = id_of(&room.json()["id"]);
    let mut line = Phones::new().await;
    let mut phones = vec![line.dial(&format!("sip:4711@{}", rest.sip), 1, 440.0).await];
    talk(&mut phones, 25).await;
    tokio::task::block_in_place(|| {
        rest.server.wait_for_log("the disk is nearly full", Duration::from_secs(10))
    });
    let listed = api.get_async(&format!("/recordings?conference_id={id}")).await;
    assert!(items(&listed.json()).is_empty(), "nothing recorded: {}", listed.text());
    let members = api.get_async(&format!("/conferences/{id}/members")).await;
    assert_eq!(items(&members.json()).len(), 1, "the call goes on: {}", members.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_room_is_listed_fetched_as_audio_and_deleted() {
    let mut rest = Rest::start_async(vec![]).await;
    let api = rest.api.clone();
    let room = api
        .run(|a| a.post("/conferences", &json!({"number": "4700", "record_enabled": true})))
        .await;
    assert_eq!(room.status, 201, "{}", room.text());
    let room = room.json();
    assert_eq!(room["record_enabled"], true);
    let id = id_of(&room["id"]);
    let room_path = format!("/conferences/{id}");
    let listing = format!("/recordings?conference_id={id}");
    let target = format!("sip:4700@{}", rest.sip);

    // A first session: two callers, 440 and 1000 Hz, then both hang up.
    let mut first = Phones::new().await;
    let mut phones =
        vec![first.dial(&target, 1, 440.0).await, first.dial(&target, 2, 1000.0).await];
    let both =
        talk_until(&mut phones, |p| level(&p[0], 1000.0) > 500.0 && level(&p[1], 440.0) > 500.0)
            .await;
    assert!(both, "the callers do not hear each other:\n{}", rest.server.logs());
    talk(&mut phones, 100).await;
    let open = until_json(&api, &listing, &mut phones, "the open recording", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    assert!(items(&open)[0]["ended_at"].is_null(), "recording, not ended: {open}");
    first.ua.shutdown().await;
    drop(phones);
    let listed = until_json(&api, &listing, &mut [], "the ended recording", |v| {
        v["items"].as_array().is_some_and(|i| i.len() == 1 && !i[0]["ended_at"].is_null())
    })
    .await;
    let recording = items(&listed)[0].clone();
    assert_eq!(id_of(&recording["conference_id"]), id, "{recording}");
    assert_eq!(recording["room"], "4700", "{recording}");
    assert!(
        recording["started_at"].is_string() && recording["ended_at"].is_string(),
        "{recording}"
    );
    let duration =
        recording["duration_ms"].as_u64().unwrap_or_else(|| panic!("duration: {recording}"));
    assert!(duration > 1000, "{recording}");
    assert!(recording["size"].as_u64().is_some_and(|s| s > 44), "{recording}");
    let rec_id = id_of(&recording["id"]);
    let rec_path = format!("/recordings/{rec_id}");
    let one = api.get_async(&rec_path).await;
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json(), recording);

    // The file: 16-bit mono PCM, the room's mix with both tones.
    let file = api.get_async(&format!("{rec_path}/file")).await;
    assert_eq!(file.status, 200, "{}", file.text());
    assert!(
        file.header("content-type").is_some_and(|c| c.starts_with("audio/wav")),
        "{:?}",
        file.headers
    );
    // Listed as ended means the file is closed: what was listed is what comes.
    assert_eq!(Some(file.body.len() as u64), recording["size"].as_u64(), "{recording}");
    let wav = parse_wav(&file.body);
    assert_eq!((wav.tag, wav.channels, wav.bits), (1, 1, 16), "16-bit mono PCM");
    let samples = wav.samples();
    let ms = samples.len() as u64 * 1000 / u64::from(wav.rate);
    assert!(
        ms.abs_diff(duration) <= (duration / 10).max(300),
        "{ms} ms in the file, {duration} listed"
    );
    let window = wav.rate as usize / 5;
    let both = samples
        .chunks_exact(window)
        .map(|w| {
            goertzel_amplitude(w, wav.rate, 440.0).min(goertzel_amplitude(w, wav.rate, 1000.0))
        })
        .fold(0.0, f64::max);
    assert!(both > 500.0, "the recording does not hold both callers ({both:.0})");

    // A second session: its recording runs, and cannot be deleted while it does.
    let mut second = Phones::new().await;
    let mut phones = vec![second.dial(&target, 3, 440.0).await];
    let running = until_json(&api, &listing, &mut phones, "a second recording", |v| {
        v["items"].as_array().is_some_and(|i| i.iter().any(|r| r["ended_at"].is_null()))
    })
    .await;
    let open_id =
        id_of(&items(&running).into_iter().find(|r| r["ended_at"].is_null()).expect("open")["id"]);
    assert_ne!(open_id, rec_id);
    let busy = api
        .run({
            let open_id = open_id.clone();
            move |a| a.delete(&format!("/recordings/{open_id}"))
        })
        .await;
    refused(&busy, 409, None, "deleting a running recording");
    // record_enabled off stops it at once.
    let off = api.json_async("PATCH", &room_path, json!({"record_enabled": false})).await;
    assert_eq!(off.status, 200, "{}", off.text());
    let open_path = format!("/recordings/{open_id}");
    until_json(&api, &open_path, &mut phones, "stopped by record_enabled", |v| {
        !v["ended_at"].is_null()
    })
    .await;

    // Deleting an ended recording: 204, then 404 for it and its file.
    let deleted = api
        .run({
            let rec_path = rec_path.clone();
            move |a| a.delete(&rec_path)
        })
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    refused(&api.get_async(&rec_path).await, 404, None, "a deleted recording");
    let file = api.get_async(&format!("{rec_path}/file")).await;
    refused(&file, 404, None, "a deleted recording's file");
    refused(&api.get_async(&rec_path).await, 404, None, "a deleted recording, deleted again");
    let unknown = api.get_async("/recordings/no-such-recording").await;
    refused(&unknown, 404, None, "an unknown recording");

    // Deleting the room hangs its caller up (BYE, 204) and deletes its
    // recordings with it: their rows and their files.
    let files_of_room = || {
        std::fs::read_dir(rest.dir.path().join("recordings"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&id))
                    .count()
            })
            .unwrap_or(0)
    };
    let gone = api
        .run({
            let room_path = room_path.clone();
            move |a| a.delete(&room_path)
        })
        .await;
    assert_eq!(gone.status, 204, "{}", gone.text());
    until_byes(&mut second, &mut phones, 1, "the deleted room's caller").await;
    refused(&api.get_async(&room_path).await, 404, None, "the deleted room");
    let all = api.get_async("/recordings").await.json();
    assert!(
        !items(&all).iter().any(|r| id_of(&r["id"]) == open_id),
        "docs/api-rest.md: a deleted room's recordings go with it; listed now: {all}"
    );
    refused(&api.get_async(&open_path).await, 404, None, "a deleted room's recording");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while files_of_room() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(files_of_room(), 0, "the deleted room's recording files are gone");
}

// ---------------------------------------------------------------------------
// 8. OpenAPI

#[test]
fn the_openapi_document_describes_the_rest_paths() {
    let rest = Rest::start(&[]);
    let answer = send(rest.api.addr, "GET", "/openapi.json", &[], None);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let openapi = answer.json();
    let paths = &openapi["paths"];
    for (path, methods) in [
        ("/api/v1/conferences", &["get", "post"][..]),
        ("/api/v1/conferences/{id}", &["get", "patch", "put", "delete"][..]),
        ("/api/v1/conferences/{id}/members", &["get"][..]),
        ("/api/v1/sounds", &["get", "post"][..]),
        ("/api/v1/sounds/{id}/file", &["get"][..]),
        ("/api/v1/recordings/{id}/file", &["get"][..]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "no {method} {path} in /openapi.json");
        }
    }
    let tags = &paths["/api/v1/conferences"]["get"]["tags"];
    assert!(
        tags.as_array().is_some_and(|t| t.iter().any(|t| t == "PBX REST (/api/v1)")),
        "tag: {tags}"
    );
    drop(rest);
}
