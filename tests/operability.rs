//! What a new operator meets first, against the real binary: a failed start
//! prints no secrets, one grep finds every first-start secret, the owner of
//! TCP 4011 conferences is explicit, the command line refuses what it cannot
//! use and says which variable is wrong, and HTTP cuts off clients that never
//! finish a request and answers unknown paths in JSON.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::phone::Control;
use support::{Server, run, tutti};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// The first-start lines a server printed (after it stopped).
fn first_start_lines(server: &mut Server) -> Vec<String> {
    server
        .stdout_after_exit()
        .lines()
        .filter(|l| l.starts_with("tutti first start:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_failed_start_prints_no_secrets_and_the_next_start_prints_them_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The SIP port is taken: the start fails before any secret exists.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = tutti()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--sip-listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"])
        .args(["--events-listen", "127.0.0.1:0"])
        .args(["--timezone", "UTC", "serve"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.is_empty(), "a failed start printed: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start SIP"));
    drop(taken);

    let mut server = Server::start(dir.path(), &[]);
    assert_eq!(server.stop_with("TERM").code(), Some(0));
    let lines = first_start_lines(&mut server);
    for secret in ["customer UID:", "API key:", "control password:"] {
        assert!(lines.iter().any(|l| l.contains(secret)), "{secret} missing from {lines:?}");
    }
    // The UID printed is the default customer's.
    let shown =
        json(&String::from_utf8_lossy(&run(dir.path(), &["customer", "show-default"]).stdout));
    let uid = shown["uid"].as_str().expect("uid");
    assert!(lines.iter().any(|l| l.ends_with(uid)), "{lines:?} vs {shown}");
}

#[test]
fn the_owner_of_4011_conferences_is_explicit() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A customer made before the first start does not become the owner.
    let acme = json(&String::from_utf8_lossy(
        &run(dir.path(), &["customer", "create", "--name", "Acme"]).stdout,
    ));
    let acme_uid = acme["uid"].as_str().expect("uid").to_owned();
    let owner_of = |args: &[&str], cn: &str| -> String {
        let mut extra = vec!["--control-password", "secret"];
        extra.extend_from_slice(args);
        let mut server = Server::start(dir.path(), &extra);
        let mut control =
            Control::connect(server.logged_addr("control protocol listening", "addr"), "secret");
        assert_eq!(
            control.command(&format!("NEWCONF,{cn},Room,Org,,,,,"), "NEWCONF"),
            ["NEWCONF,OK"]
        );
        assert_eq!(server.stop_with("TERM").code(), Some(0));
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let url = format!("sqlite://{}", dir.path().join("tutti.db").display());
            let store = tutti_api::Store::open(&url).await.expect("store");
            let conf = store.conference_by_number(cn).await.expect("query").expect("stored");
            store.close().await;
            conf.customer_uid
        })
    };
    let default = owner_of(&[], "4001");
    assert_ne!(default, acme_uid, "Acme silently owns 4011 conferences");
    let shown =
        json(&String::from_utf8_lossy(&run(dir.path(), &["customer", "show-default"]).stdout));
    assert_eq!(shown["uid"].as_str(), Some(default.as_str()));
    assert_eq!(shown["name"].as_str(), Some("default"));
    assert_eq!(owner_of(&["--control-customer", &acme_uid], "4002"), acme_uid);

    let out = tutti()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--control-listen", "127.0.0.1:0", "--timezone", "UTC"])
        .args(["--events-listen", "127.0.0.1:0"])
        .args(["--control-customer", "nobody", "serve"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--control-customer"));
}

#[test]
fn the_command_line_refuses_what_it_cannot_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A mistyped data directory is not quietly created.
    let typo = dir.path().join("typo");
    let out = run(&typo, &["customer", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(!typo.exists(), "the mistyped directory was created");
    // Names: not empty, not another customer's (case ignored).
    assert!(!run(dir.path(), &["customer", "create", "--name", "  "]).status.success());
    assert!(run(dir.path(), &["customer", "create", "--name", "Acme"]).status.success());
    let dup = run(dir.path(), &["customer", "create", "--name", " acme "]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("exists already"));
    // A DID on create, changed by update; the key order is as documented.
    let out = run(dir.path(), &["customer", "create", "--name", "Beta", "--did", "+15550100"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let uid = json(&text)["uid"].as_str().expect("uid").to_owned();
    let [u, n, d, k] =
        ["\"uid\"", "\"name\"", "\"did\"", "\"api_key\""].map(|key| text.find(key).expect(key));
    assert!(u < n && n < d && d < k, "{text}");
    let out = run(dir.path(), &["customer", "update", &uid, "--did", "+15550199"]);
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout))["did"], "+15550199");
    // Zero limits are refused, not bent.
    let out = tutti().args(["--max-calls", "0", "config"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-calls must be at least 1"));
    // A bad value in the environment names the variable; empty means unset.
    let out = tutti().env("TUTTI_HTTP_LISTEN", "bogus").arg("config").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TUTTI_HTTP_LISTEN"));
    let out = tutti()
        .env("TUTTI_HTTP_LISTEN", "")
        .env("TUTTI_MAX_CALLS", "")
        .env("TUTTI_MEDIA_ADDRESS", "")
        .arg("config")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let settings: toml::Table = String::from_utf8_lossy(&out.stdout).parse().expect("TOML");
    assert_eq!(settings["http-listen"].as_str(), Some("127.0.0.1:8080"));
    assert_eq!(settings["max-calls"].as_integer(), Some(500));
    assert_eq!(settings["media-nice"].as_integer(), Some(-10));
    // A nice value is a number from -20 to 19, negative ones included.
    let out = tutti().args(["--media-nice", "-20", "config"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tutti().args(["--media-nice", "20", "config"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--media-nice must be from -20 to 19"));
}

/// Each thread of a running process, by name, with its nice value.
fn thread_nice(pid: u32) -> Vec<(String, i64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc task list");
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?.trim().to_owned();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // After the name's closing parenthesis the fields start at the 3rd;
            // the nice value is the 19th.
            let rest = &stat[stat.rfind(')')? + 1..];
            let nice = rest.split_whitespace().nth(16)?.parse().ok()?;
            Some((name, nice))
        })
        .collect()
}

/// Whether this process may lower nice values (CAP_SYS_NICE, bit 23).
fn may_raise_priority() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 23) != 0)
}

#[test]
fn the_media_threads_and_only_they_take_the_nice_value_asked_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--media-nice", "-7"]);
    let granted = may_raise_priority();
    // Without the right the server runs all the same, and says why.
    let said = if granted { "media threads run at nice -7" } else { "needs CAP_SYS_NICE" };
    if !server.stderr_seen.iter().any(|line| line.contains(said)) {
        server.wait_for_log(said, Duration::from_secs(10));
    }
    // The log line comes from the first media thread to start; the others
    // may still be starting (each sets its own value), so read until they
    // all have theirs or 5 s pass.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (threads, base, want) = loop {
        let threads = thread_nice(server.pid());
        // The main thread has the process's nice value, as the test runner gave it.
        let base = threads.iter().find(|(name, _)| name == "tutti").expect("main thread").1;
        let want = if granted { -7 } else { base };
        let mut media = threads.iter().filter(|(name, _)| name == "tutti-media").peekable();
        let settled = media.peek().is_some() && media.all(|(_, nice)| *nice == want);
        if settled || Instant::now() > deadline {
            break (threads, base, want);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let media: Vec<_> = threads.iter().filter(|(name, _)| name == "tutti-media").collect();
    assert!(!media.is_empty(), "no media threads: {threads:?}");
    assert!(media.iter().all(|(_, nice)| *nice == want), "{threads:?}");
    // SIP, HTTP, the database: the rest keep the process's priority.
    let others = threads.iter().filter(|(name, _)| name != "tutti-media");
    assert!(others.clone().all(|(_, nice)| *nice == base), "{threads:?}");
}

#[test]
fn control_password_reset_prints_a_new_password_that_logs_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]);
    let control = server.logged_addr("control protocol listening", "addr");
    let out = run(dir.path(), &["control-password", "reset"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let password = text.trim().rsplit(' ').next().expect("password").to_owned();
    assert!(text.starts_with("tutti first start: control password:"), "{text}");
    let mut client = Control::connect(control, &password);
    client.command("KEEPALIVE", "KEEPALIVE");
    assert_eq!(server.stop_with("TERM").code(), Some(0));
}

/// Reads until the server closes the connection; returns what it sent and when.
fn until_closed(mut stream: TcpStream, deadline: Duration) -> (String, Duration) {
    let start = Instant::now();
    stream.set_read_timeout(Some(deadline)).expect("timeout");
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[test]
fn http_cuts_off_unfinished_and_idle_clients_and_answers_404_in_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &[]);
    let addr: SocketAddr = server.http;

    let (status, body) = server.get("/no/such/path");
    assert_eq!(status, 404);
    let error = json(&body);
    assert_eq!(error["error"], "not found");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("/no/such/path")), "{error}");

    // A header block that never ends, and a connection that never asks.
    let mut unfinished = TcpStream::connect(addr).expect("connect");
    unfinished.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").expect("write");
    let idle = TcpStream::connect(addr).expect("connect");
    let waiting = std::thread::spawn(move || until_closed(idle, Duration::from_secs(30)));
    let (_, took) = until_closed(unfinished, Duration::from_secs(30));
    assert!(took < Duration::from_secs(15), "an unfinished header held {took:?}");
    let (_, took) = waiting.join().expect("idle client");
    assert!(took < Duration::from_secs(15), "an idle connection held {took:?}");
}

/// A SIP request the server cannot take gets a 400 that says why, and a log
/// line: a UDP INVITE whose Content-Length is larger than its body (RFC 3261
/// 18.3), against the real binary.
#[test]
fn a_bad_sip_request_gets_a_400_that_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]);
    let sip = server.logged_addr("SIP listening", "udp");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let local = socket.local_addr().expect("addr");
    let body = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:4001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKtrunc;rport\r\n\
         From: <sip:t@127.0.0.1>;tag=t1\r\nTo: <sip:4001@127.0.0.1>\r\nCall-ID: trunc@test\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:t@{local}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len() + 40
    );
    socket.send_to(invite.as_bytes(), sip).expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).expect("an answer");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 400 "), "{text}");
    let status_line = text.lines().next().unwrap_or_default();
    assert!(status_line.len() > "SIP/2.0 400 ".len() + 3, "a reason phrase: {status_line}");
    let warning = text.lines().find(|l| l.to_ascii_lowercase().starts_with("warning:"));
    assert!(warning.is_some_and(|w| w.contains("399") && w.contains("Content-Length")), "{text}");
    server.wait_for_log("Content-Length", Duration::from_secs(5));
}

/// Wrong LOGINs are counted per address across connections: twenty parallel
/// guessers get at most five passwords checked between them, and each failure
/// is logged with the address.
#[test]
fn login_guessing_is_limited_per_address_across_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "right"]);
    let control = server.logged_addr("control protocol listening", "addr");
    let answers: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..20)
            .map(|i| {
                scope.spawn(move || {
                    let Ok(mut stream) = TcpStream::connect(control) else { return Vec::new() };
                    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
                    let _ = stream.write_all(
                        format!("LOGIN,wrong{i}\r\nLOGIN,wrong{i}b\r\nLOGIN,wrong{i}c\r\n")
                            .as_bytes(),
                    );
                    let mut text = String::new();
                    let _ = stream.read_to_string(&mut text);
                    text.lines().map(str::to_owned).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    let checked = answers.iter().filter(|l| l.contains("Invalid password")).count();
    let refused = answers.iter().filter(|l| l.contains("Too many failed logins")).count();
    assert!(checked <= 5, "{checked} passwords were checked: {answers:?}");
    assert!(refused >= 1, "{answers:?}");
    assert!(
        server.logs().contains("LOGIN failed peer=127.0.0.1"),
        "failures are logged with the address"
    );
}

/// Connects to `to` from the loopback address `from`, as a blocking stream.
fn connect_from(from: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(std::net::SocketAddr::from((from, 0))).expect("bind the source address");
        socket.connect(to).await.expect("connect")
    });
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}

/// What the server says to a connection within 5 s, up to its close.
fn said_to(mut stream: TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// Connections that never log in cannot lock operators out: only a share of
/// the places may wait for a login, one address may take only four of them,
/// and each waits at most 10 s.
#[test]
fn idle_connections_that_never_log_in_cannot_lock_operators_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &["--control-password", "right"]);
    let control = server.logged_addr("control protocol listening", "addr");
    // An operator logged in before the flood keeps its session.
    let mut operator = Control::connect(control, "right");
    // One address holds four places; its fifth connection is refused, while
    // another address still logs in.
    let mut idle: Vec<TcpStream> = (0..4).map(|_| connect_from([127, 0, 0, 2], control)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let fifth = said_to(connect_from([127, 0, 0, 2], control));
    assert!(fifth.contains("Too many connections"), "a fifth from one address: {fifth:?}");
    Control::connect(control, "right").command("KEEPALIVE", "KEEPALIVE");
    // Sixteen waiting from four addresses fill every place: the next is refused.
    for from in 3..6 {
        idle.extend((0..4).map(|_| connect_from([127, 0, 0, from], control)));
    }
    std::thread::sleep(Duration::from_millis(300));
    let extra = said_to(connect_from([127, 0, 0, 6], control));
    assert!(extra.contains("Too many connections"), "the 17th waiting connection: {extra:?}");
    operator.command("KEEPALIVE", "KEEPALIVE");
    // Within the login timeout the idle ones are closed, and a new login works.
    let started = Instant::now();
    for mut stream in idle {
        stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        assert!(text.contains("Login timeout"), "{text:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(12), "{:?}", started.elapsed());
    let mut again = Control::connect(control, "right");
    again.command("KEEPALIVE", "KEEPALIVE");
}
