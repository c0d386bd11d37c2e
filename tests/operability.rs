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
