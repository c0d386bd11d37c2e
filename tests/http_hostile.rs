//! Hostile HTTP clients against the real binary: every path and method the
//! OpenAPI document lists, asked with no credentials and with wrong ones,
//! answers a refusal and gives away none of a customer's data; oversized
//! headers are refused; path traversal in ids finds nothing; SQL and XML
//! metacharacters in a name are stored and rendered as text.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::http::{Answer, request_from, request_with};
use support::{Server, run};

struct Site {
    server: Server,
    _dir: tempfile::TempDir,
    http: SocketAddr,
    uid: String,
    key: String,
}

fn start(args: &[&str]) -> Site {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), args);
    let http = server.logged_addr("HTTP listening", "addr");
    let shown: Value =
        serde_json::from_slice(&run(dir.path(), &["customer", "show-default"]).stdout)
            .expect("show-default JSON");
    let uid = shown["uid"].as_str().expect("uid").to_owned();
    let rotated: Value =
        serde_json::from_slice(&run(dir.path(), &["customer", "rotate-key", &uid]).stdout)
            .expect("rotate-key JSON");
    let key = rotated["api_key"].as_str().expect("api_key").to_owned();
    Site { server, _dir: dir, http, uid, key }
}

impl Site {
    fn rest(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        let auth = format!("Bearer {}", self.key);
        let text = body.map(Value::to_string);
        request_with(
            self.http,
            method,
            &format!("/api/v1{path}"),
            &[("Authorization", &auth)],
            text.as_deref().map(|t| ("application/json", t.as_bytes())),
        )
    }
}

/// One request, written and read raw: the server may close before it has
/// read everything.
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// (The lockout after wrong credentials, tested below, is off here: this
/// sends many.)
#[test]
fn every_documented_endpoint_refuses_missing_and_wrong_credentials() {
    let site = start(&["--http-auth-failures", "0"]);
    // Something worth hiding.
    let room = site.rest(
        "POST",
        "/conferences",
        Some(&json!({"number": "4242", "name": "SecretRoom42", "pin": "987654"})),
    );
    assert_eq!(room.status, 201, "{}", room.body);
    let room_id = room.json()["id"].as_str().expect("id").to_owned();
    let secrets = [site.key.as_str(), "SecretRoom42", "987654", "4242"];

    let doc = request_with(site.http, "GET", "/openapi.json", &[], None).json();
    let paths = doc["paths"].as_object().expect("paths");
    let wrong_basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong", site.uid));
    let mut asked = 0;
    for (path, item) in paths {
        if matches!(path.as_str(), "/healthz" | "/metrics" | "/openapi.json") {
            continue;
        }
        let concrete = path.replace("{id}", &room_id).replace("{member}", "m1");
        for method in item.as_object().expect("methods").keys() {
            for wrong in [false, true] {
                let mut headers: Vec<(&str, String)> = Vec::new();
                let mut params = vec![("conferenceUID", room_id.clone()), ("callUID", "c1".into())];
                if wrong {
                    headers.push(("Authorization", "Bearer not-a-key".into()));
                    if path.starts_with("/conference_") {
                        headers[0] = ("Authorization", format!("Basic {wrong_basic}"));
                    }
                    params.push(("customer", site.uid.clone()));
                    params.push(("key", "not-a-key".into()));
                    params.push(("securityToken", "0123456789abcdef0123456789abcdef".into()));
                }
                let query = support::http::form(
                    &params.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
                );
                let target = format!("{concrete}?{query}");
                let body = match method.as_str() {
                    "get" | "delete" => None,
                    _ if path.starts_with("/api/v1") => Some(json!({"number": "1"}).to_string()),
                    _ => Some(query.clone()),
                };
                let content_type = if path.starts_with("/api/v1") {
                    "application/json"
                } else {
                    "application/x-www-form-urlencoded"
                };
                let header_refs: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                let answer = request_with(
                    site.http,
                    &method.to_ascii_uppercase(),
                    &target,
                    &header_refs,
                    body.as_deref().map(|b| (content_type, b.as_bytes())),
                );
                asked += 1;
                let what = format!(
                    "{} {target} (wrong credentials: {wrong})",
                    method.to_ascii_uppercase()
                );
                for secret in secrets {
                    assert!(
                        !answer.body.contains(secret),
                        "{what} gave away {secret:?}: {}",
                        answer.body
                    );
                }
                let refused = match path.as_str() {
                    p if p.starts_with("/api/v1") => answer.status == 401,
                    p if p.starts_with("/conference_") => answer.status == 401,
                    p if p.starts_with("/_conference/events") => {
                        matches!(answer.status, 400 | 403)
                    }
                    // The MaestroConference-style APIs answer an envelope with
                    // an error code, or a Conductor command's FALSE.
                    _ => {
                        answer.status >= 400
                            || answer.body.starts_with("FALSE")
                            || answer.body.contains("<code>-")
                            || answer.body.contains("\"code\":\"-")
                    }
                };
                assert!(refused, "{what} was not refused: {} {}", answer.status, answer.body);
            }
        }
    }
    assert!(asked > 100, "only {asked} requests: is /openapi.json complete?");
}

#[test]
fn oversized_headers_traversal_and_metacharacters() {
    let site = start(&[]);
    // A header far beyond any sane size: refused, never served.
    let huge = format!(
        "GET /api/v1/conferences HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Pad: {}\r\n\r\n",
        site.key,
        "a".repeat(2 * 1024 * 1024)
    );
    let answer = raw(site.http, huge.as_bytes());
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "an oversized header was served: {}",
        answer.lines().next().unwrap_or_default()
    );
    // The server still serves afterwards.
    assert_eq!(site.rest("GET", "/conferences", None).status, 200);

    // Path traversal in ids: nothing is found, nothing outside is read.
    for id in ["..%2F..%2F..%2Fetc%2Fpasswd", "..", "%2e%2e", "1%00", "-1", "99999999999999999999"]
    {
        for path in [
            format!("/sounds/{id}/file"),
            format!("/recordings/{id}/file"),
            format!("/conferences/{id}"),
        ] {
            let answer = site.rest("GET", &path, None);
            assert!(
                matches!(answer.status, 400 | 404),
                "{path}: {} {}",
                answer.status,
                answer.body
            );
            assert!(!answer.body.contains("root:"), "{path} read a system file");
        }
    }

    // SQL and XML metacharacters are only text.
    let name = "Robert'); DROP TABLE conferences;-- <b>&amp;</b> \"quoted\" ]]>";
    let made = site.rest("POST", "/conferences", Some(&json!({"number": "4343", "name": name})));
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(site.rest("GET", &format!("/conferences/{id}"), None).json()["name"], name);
    assert_eq!(
        site.rest("GET", "/conferences", None).json()["total"],
        1,
        "the table is still there"
    );
    // The same conference through /_access, as XML: it parses, and the name
    // comes back as written.
    let access = support::http::get(
        site.http,
        "/_access/getConference",
        &[("customer", &site.uid), ("key", &site.key), ("conferenceUID", &id)],
    );
    assert_eq!(access.status, 200, "{}", access.body);
    let xml = access.xml();
    fn find<'a>(node: &'a tutti_api::http::envelope::Node, name: &str) -> Option<&'a str> {
        if node.name == name {
            return Some(node.text.as_str());
        }
        node.children.iter().find_map(|c| find(c, name))
    }
    assert_eq!(find(&xml, "name"), Some(name), "{}", access.body);
}

/// Slowloris: clients that send a request's headers a byte at a time, and
/// ones that connect and send nothing, are cut off after the 10 s header
/// timeout, while other clients are served throughout.
#[test]
fn slow_and_silent_clients_are_cut_off_while_others_are_served() {
    let site = start(&[]);
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(site.http).expect("connect");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").expect("start");
            s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
            s
        })
        .collect();
    let silent: Vec<TcpStream> =
        (0..50).map(|_| TcpStream::connect(site.http).expect("connect")).collect();
    let started = std::time::Instant::now();
    let mut closed_at = None;
    while started.elapsed() < Duration::from_secs(20) {
        // A header line a second keeps each slow client "busy".
        let mut open = 0;
        for s in &mut slow {
            if s.write_all(b"X-Slow: 1\r\n").is_ok() {
                let mut byte = [0u8; 1];
                match s.read(&mut byte) {
                    Ok(0) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => open += 1,
                    _ => {}
                }
            }
        }
        // Others are served meanwhile.
        let answer = request_with(site.http, "GET", "/healthz", &[], None);
        assert_eq!(answer.status, 200, "served while 100 clients dawdle");
        if open == 0 {
            closed_at = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let closed_at = closed_at.expect("the slow clients were cut off within 20 s");
    assert!(closed_at >= Duration::from_secs(9), "not before the timeout: {closed_at:?}");
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut rest = Vec::new();
        let gone = match s.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(gone, "a silent client is still connected after {:?}", started.elapsed());
    }
}

/// The status line of `GET /healthz` sent from the loopback address `from`.
fn healthz_from(from: [u8; 4], http: SocketAddr) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((from, 0))).expect("bind the source address");
        let mut stream = socket.connect(http).await.expect("connect");
        let request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned()
    })
}

/// One address holds at most `--http-connections-per-source` connections:
/// one more is closed as it is accepted (and logged), while another address
/// is served, and a place given back is taken again.
#[test]
fn one_address_holds_at_most_its_connections_while_others_are_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--http-connections-per-source", "3"]);
    let http = server.http;
    let mut held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(http).expect("c")).collect();
    let mut fourth = TcpStream::connect(http).expect("the kernel accepts");
    fourth.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut byte = [0u8; 1];
    let closed = match fourth.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "a fourth connection from the same address is closed");
    server.wait_for_log("too many connections from this address", Duration::from_secs(5));
    let other = healthz_from([127, 0, 0, 2], http);
    assert!(other.starts_with("HTTP/1.1 200"), "another address is served: {other:?}");

    // A connection that ends gives its place back.
    drop(held.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let again = healthz_from([127, 0, 0, 1], http);
        if again.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the place never came back: {again:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held);
}

/// One address opens at most `--http-connection-rate` connections a second
/// (bursts of twice that): the next are closed as they are accepted (and
/// logged) while another address is served, and the address is served again
/// once its bucket refills.
#[test]
fn one_address_opens_at_most_its_rate_of_connections_while_others_are_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--http-connection-rate", "2"]);
    let http = server.http;
    let answers: Vec<String> = (0..10).map(|_| healthz_from([127, 0, 0, 1], http)).collect();
    let served = answers.iter().filter(|a| a.starts_with("HTTP/1.1 200")).count();
    // A burst of 4, and at most one more if the ten took over half a second.
    assert!((4..=5).contains(&served), "served {served} of 10: {answers:?}");
    assert!(answers[..4].iter().all(|a| a.starts_with("HTTP/1.1 200")), "{answers:?}");
    assert!(answers.iter().all(|a| a.is_empty() || a.starts_with("HTTP/1.1 200")), "{answers:?}");
    server.wait_for_log("connection flood", Duration::from_secs(5));
    let other = healthz_from([127, 0, 0, 2], http);
    assert!(other.starts_with("HTTP/1.1 200"), "another address is served: {other:?}");

    // Two tokens a second: the address is served again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if healthz_from([127, 0, 0, 1], http).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the address was never served again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wrong credentials from one address, on any of the HTTP interfaces, lock
/// that address out of all of them (`--http-auth-failures`): its right key is
/// then refused unchecked, in each interface's own way, while another address
/// is served; the lockout is logged. Missing credentials do not count.
#[test]
fn wrong_credentials_from_one_address_lock_it_out_of_every_http_interface() {
    let mut site = start(&["--http-auth-failures", "4"]);
    let guesser = [127, 0, 0, 3];
    let (http, uid) = (site.http, site.uid.clone());
    let from = |who: [u8; 4], method: &str, path: &str, headers: &[(&str, &str)]| {
        request_from(who, http, method, path, headers, None)
    };
    let basic = |key: &str| {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{uid}:{key}"));
        format!("Basic {pair}")
    };
    let access = |key: &str| format!("/_access/getCustomer?customer={uid}&key={key}&type=json");
    let wrong = "x".repeat(32);

    // Missing credentials: refused, not counted.
    for _ in 0..5 {
        assert_eq!(from(guesser, "GET", "/api/v1/conferences", &[]).status, 401);
    }
    // One wrong credential on each interface: four.
    let bearer = format!("Bearer {wrong}");
    let rest = from(guesser, "GET", "/api/v1/conferences", &[("Authorization", &bearer)]);
    assert_eq!(rest.status, 401, "{}", rest.body);
    let aculab = from(guesser, "GET", "/conference_list", &[("Authorization", &basic(&wrong))]);
    assert_eq!(aculab.status, 401, "{}", aculab.body);
    let envelope = from(guesser, "GET", &access(&wrong), &[]).json();
    assert_eq!(envelope["code"], "-1", "{envelope}");
    let token = "/_conference/getCall?securityToken=wrong&callUID=C1&type=json";
    let conductor = from(guesser, "GET", token, &[]).json();
    assert_eq!(conductor["code"], "-1", "{conductor}");
    site.server.wait_for_log("address locked out", Duration::from_secs(5));

    // Now the right key from that address is refused unchecked, everywhere.
    let bearer = format!("Bearer {}", site.key);
    let rest = from(guesser, "GET", "/api/v1/conferences", &[("Authorization", &bearer)]);
    assert_eq!(rest.status, 429, "{}", rest.body);
    assert_eq!(rest.header("retry-after"), Some("300"));
    assert!(rest.json()["error"].as_str().is_some_and(|e| e.contains("too many")), "{}", rest.body);
    let right = basic(&site.key);
    let aculab = from(guesser, "GET", "/conference_list", &[("Authorization", &right)]);
    assert_eq!(aculab.status, 429, "{}", aculab.body);
    let envelope = from(guesser, "GET", &access(&site.key), &[]).json();
    assert_eq!(envelope["code"], "-1", "{envelope}");
    let message = envelope["message"].as_str().unwrap_or_default();
    assert!(message.contains("too many failed authentications"), "{envelope}");

    // Another address is served as before.
    let other = from([127, 0, 0, 4], "GET", "/api/v1/conferences", &[("Authorization", &bearer)]);
    assert_eq!(other.status, 200, "{}", other.body);
    let envelope = from([127, 0, 0, 4], "GET", &access(&site.key), &[]).json();
    assert_eq!(envelope["code"], "0", "{envelope}");

    // /metrics counts them: 4 wrong, 1 lockout, 3 refused.
    let metrics = request_with(http, "GET", "/metrics", &[], None).body;
    for (name, want) in [
        ("tutti_http_auth_failures_total", 4.0),
        ("tutti_http_auth_lockouts_total", 1.0),
        ("tutti_http_auth_refused_total", 3.0),
    ] {
        assert_eq!(support::metric(&metrics, name), Some(want), "{name}");
    }
}
