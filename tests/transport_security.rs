//! Transport security against the real binary: SIP over TLS carries a real
//! call (INVITE, 200 with a TLS Contact, ACK, BYE over one TLS connection)
//! whose audio is checked with a Goertzel filter; `--srtp required` refuses a
//! plain RTP offer with 488 while SRTP phones hear each other; the HTTP
//! interfaces answer over HTTPS and not in plain text; TCP 4011 over TLS logs
//! in, sees its events and mutes a live caller, and does not answer in plain
//! text. Certificates are made
//! for each test with `openssl` (a self-signed one for 127.0.0.1).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use support::Server;
use support::phone::{Control, LOOPBACK, Phone, Phones, level, talk, until_level};
use tutti_media::leg::Leg;
use tutti_sip::sdp::{self, LocalMedia, MediaDirection, MediaPolicy, SrtpPolicy};

/// A test CA (`ca.pem`, what clients trust) and a certificate it signed for
/// 127.0.0.1 with its key (PKCS#8), in `dir`: (ca, cert, key).
fn certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let made = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl is installed");
        assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=tutti test CA"];
    ca.extend(ec.iter().chain(&["-keyout", "ca-key.pem", "-out", "ca.pem"]));
    openssl(&ca);
    let mut leaf = vec!["req", "-subj", "/CN=localhost"];
    leaf.extend(ec.iter().chain(&["-keyout", "key.pem", "-out", "leaf.csr"]));
    openssl(&leaf);
    std::fs::write(
        path("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    (path("ca.pem"), path("cert.pem"), path("key.pem"))
}

/// A TLS client that trusts only `cert`.
fn connector(cert: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(c.expect("cert")).expect("trusted");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(cert: &Path, addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let name = ServerName::IpAddress(addr.ip().into());
    connector(cert).connect(name, tcp).await.expect("TLS handshake with tutti's certificate")
}

/// Everything the peer sends until it closes (or 5 s pass).
async fn read_all<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_interfaces_answer_over_https_and_not_in_plain_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certificate(dir.path());
    let (cert_arg, key_arg) = (cert.to_str().expect("path"), key.to_str().expect("path"));
    let mut server =
        Server::start(dir.path(), &["--http-tls-cert", cert_arg, "--http-tls-key", key_arg]);
    let addr = server.http;

    let mut tls = tls_connect(&ca, addr).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let answer = read_all(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // An API over HTTPS: the OpenAPI document and an authenticated refusal.
    let mut tls = tls_connect(&ca, addr).await;
    tls.write_all(
        b"GET /api/v1/conferences HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer nope\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("request");
    let answer = read_all(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let answer = read_all(&mut plain).await;
    assert!(!answer.contains("HTTP/1.1 200"), "plain HTTP answered: {answer}");

    // A client that never starts its handshake does not hold up the others
    // (it is cut off after 10 s, like a request whose headers never end).
    let _idle = TcpStream::connect(addr).await.expect("connect");
    let mut tls = tls_connect(&ca, addr).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    assert!(read_all(&mut tls).await.starts_with("HTTP/1.1 200"));
    assert!(server.logs().contains("https=true"), "the log says HTTPS is on");
}

/// A TCP 4011 client over TLS: a command's answer is its `<CMD>,OK` or error
/// line (with a listing's lines before it); other lines are events, kept.
struct TlsControl {
    lines: tokio::io::Lines<
        BufReader<tokio::io::ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>>,
    >,
    writer: tokio::io::WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>,
    events: Vec<String>,
}

impl TlsControl {
    async fn connect(ca: &Path, addr: SocketAddr) -> Self {
        let (read, writer) = tokio::io::split(tls_connect(ca, addr).await);
        Self { lines: BufReader::new(read).lines(), writer, events: Vec::new() }
    }

    async fn line(&mut self) -> String {
        let next = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line()).await;
        next.expect("an answer in time").expect("read").expect("connection open")
    }

    async fn command(&mut self, command: &str, name: &str) -> Vec<String> {
        self.writer.write_all(format!("{command}\r\n").as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        loop {
            let line = self.line().await;
            if line.starts_with(&format!("{name},OK")) || line.starts_with(&format!("{name},ERROR"))
            {
                answer.push(line);
                return answer;
            }
            if name == "LISTUSER" && line.starts_with("LISTUSER,") {
                answer.push(line);
            } else {
                self.events.push(line);
            }
        }
    }

    /// The event starting with `prefix`, already read or the next such line.
    async fn event(&mut self, prefix: &str) -> String {
        loop {
            if let Some(i) = self.events.iter().position(|l| l.starts_with(prefix)) {
                return self.events.remove(i);
            }
            let line = self.line().await;
            self.events.push(line);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_protocol_over_tls_mutes_a_live_caller_and_is_silent_in_plain_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certificate(dir.path());
    let (cert_arg, key_arg) = (cert.to_str().expect("path"), key.to_str().expect("path"));
    let mut server = Server::start(
        dir.path(),
        &[
            "--control-password",
            "secret",
            "--control-tls-cert",
            cert_arg,
            "--control-tls-key",
            key_arg,
        ],
    );
    let addr = server.logged_addr("control protocol listening", "addr");
    assert!(server.logs().contains("tls=true"), "the log says 4011 is over TLS");
    let sip = server.logged_addr("SIP listening", "udp");

    // A client that connects and never starts its handshake holds up no one.
    let _idle = TcpStream::connect(addr).await.expect("connect");
    let mut control = TlsControl::connect(&ca, addr).await;
    assert_eq!(control.command("LOGIN,secret", "LOGIN").await, ["LOGIN,OK"]);
    assert_eq!(control.command("NEWCONF,4003,TLS,Ann,10,,,,", "NEWCONF").await, ["NEWCONF,OK"]);
    let created = control.event("NEWCONF,").await;
    let conference = created.split(',').nth(1).expect("conference GUID").to_owned();

    let target = format!("sip:4003@{sip}");
    let (mut first, mut second) = (Phones::new().await, Phones::new().await);
    let mut phones =
        vec![first.dial(&target, 1, 440.0).await, second.dial(&target, 2, 1000.0).await];
    // Both joins reach the TLS client as events.
    for _ in 0..2 {
        let joined = control.event("NEWUSER,").await;
        assert!(joined.contains(&conference), "{joined}");
    }
    let heard = until_level(&mut phones, 1, 440.0, true).await;
    assert!(heard > 500.0, "the second phone hears the first ({heard:.0})");

    let users = control.command(&format!("LISTUSER,{conference}"), "LISTUSER").await;
    let line = users.iter().find(|l| l.contains("phone1")).expect("phone1 listed");
    let uid = line.split(',').nth(2).expect("caller GUID").to_owned();
    assert_eq!(control.command(&format!("MUTEUSER,{uid},1"), "MUTEUSER").await, ["MUTEUSER,OK"]);
    let muted = until_level(&mut phones, 1, 440.0, false).await;
    assert!(muted < 100.0, "muted over TLS, the first phone is not heard ({muted:.0})");
    assert!(level(&phones[0], 1000.0) > 500.0, "the muted phone still hears the other");

    // Plain text to the TLS port: no LOGIN answer, and the password was not accepted.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain.write_all(b"LOGIN,secret\r\nLISTCONF\r\n").await.expect("write");
    let answer = read_all(&mut plain).await;
    assert!(!answer.contains("LOGIN,OK") && !answer.contains("LISTCONF"), "{answer}");
}

#[test]
fn a_bad_certificate_or_half_a_tls_setting_stops_the_start_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let garbage = garbage.to_str().expect("path");
    let out = support::run(
        dir.path(),
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--sip-listen",
            "127.0.0.1:0",
            "--control-listen",
            "127.0.0.1:0",
            "--events-listen",
            "127.0.0.1:0",
            "--http-tls-cert",
            garbage,
            "--http-tls-key",
            garbage,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("garbage.pem") && err.contains("no certificate"), "{err}");

    let out = support::run(dir.path(), &["--sip-tls-listen", "127.0.0.1:0", "config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--sip-tls-cert") && err.contains("go together"), "{err}");

    let out = support::run(dir.path(), &["--control-tls-cert", garbage, "config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--control-tls-key") && err.contains("go together"), "{err}");

    let out = support::run(dir.path(), &["--events-tls-key", garbage, "config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--events-tls-key") && err.contains("go together"), "{err}");

    let out = support::run(dir.path(), &["--srtp", "sometimes", "config"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("required"));

    let out = support::run(dir.path(), &["--comfort-noise", "maybe", "config"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("on or off"));
}

/// One SIP message read from a stream transport: start line, headers, body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads SIP messages off a stream, framed by Content-Length (RFC 3261 18.3).
struct SipReader {
    buffer: Vec<u8>,
}

impl SipReader {
    async fn next<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> Message {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
                let start = lines.next().unwrap_or_default().to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length") || n == "l")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if self.buffer.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&self.buffer[end + 4..end + 4 + length])
                        .into_owned();
                    self.buffer.drain(..end + 4 + length);
                    return Message { start, headers, body };
                }
            }
            let mut chunk = [0u8; 4096];
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, stream.read(&mut chunk))
                .await
                .expect("a SIP message in time")
                .expect("read");
            assert!(n > 0, "tutti closed the TLS connection");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next final response (provisional ones are skipped).
    async fn final_response<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> Message {
        loop {
            let message = self.next(stream).await;
            if message.start.starts_with("SIP/2.0 1") {
                continue;
            }
            assert!(message.start.starts_with("SIP/2.0 "), "a response: {}", message.start);
            return message;
        }
    }
}

/// The server with SIP over TLS on a free port, and that port's address.
fn sip_tls_server(dir: &Path, cert: &Path, key: &Path, extra: &[&str]) -> (Server, SocketAddr) {
    let (cert, key) = (cert.to_str().expect("path"), key.to_str().expect("path"));
    let mut args = vec!["--sip-tls-listen", "127.0.0.1:0", "--sip-tls-cert", cert];
    args.extend(["--sip-tls-key", key]);
    args.extend(extra);
    let server = Server::start(dir, &args);
    let tls_addr = server.logged_addr("SIP over TLS listening", "addr");
    (server, tls_addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_sip_tls_is_heard_and_ends_with_a_bye_on_the_same_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certificate(dir.path());
    let (mut server, tls_addr) =
        sip_tls_server(dir.path(), &cert, &key, &["--control-password", "secret"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(control.command("NEWCONF,4001,TLS,Ann,10,,,,", "NEWCONF"), ["NEWCONF,OK"]);
    })
    .await
    .expect("4011 setup");

    // A phone over UDP, and one whose signalling goes over TLS.
    let mut line = Phones::new().await;
    let udp_phone = line.dial(&format!("sip:4001@{sip}"), 1, 440.0).await;

    let mut tls = tls_connect(&ca, tls_addr).await;
    let local_port = tls.get_ref().0.local_addr().expect("local addr").port();
    let sockets = line.pool.bind(LOOPBACK, false).await.expect("rtp ports");
    let local = LocalMedia {
        address: LOOPBACK,
        rtp_port: sockets.rtp_port(),
        session_id: 7,
        session_version: 1,
        direction: MediaDirection::SendRecv,
    };
    let offer = sdp::offer(&MediaPolicy::default(), &local);
    let offer_text = offer.sdp.to_string();
    let dialog = "From: <sip:tlsphone@127.0.0.1>;tag=tls-1\r\nCall-ID: tls-call@test\r\nMax-Forwards: 70\r\n";
    let via = |branch: &str| {
        format!("Via: SIP/2.0/TLS 127.0.0.1:{local_port};branch=z9hG4bK-{branch};rport\r\n")
    };
    let invite = format!(
        "INVITE sip:4001@{tls_addr};transport=tls SIP/2.0\r\n{}{dialog}To: <sip:4001@{tls_addr}>\r\nCSeq: 1 INVITE\r\nContact: <sip:tlsphone@127.0.0.1:{local_port};transport=tls>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer_text}",
        via("inv"),
        offer_text.len()
    );
    tls.write_all(invite.as_bytes()).await.expect("INVITE");
    let mut reader = SipReader { buffer: Vec::new() };
    let ok = reader.final_response(&mut tls).await;
    assert!(ok.start.starts_with("SIP/2.0 200"), "{}", ok.start);
    let contact = ok.header("Contact").expect("Contact in the 200");
    let tls_contact = format!("{tls_addr};transport=tls");
    assert!(contact.to_ascii_lowercase().contains(&tls_contact), "a TLS Contact: {contact}");
    assert!(ok.header("Via").is_some_and(|v| v.contains("SIP/2.0/TLS")), "the TLS Via is echoed");
    let to = ok.header("To").expect("To").to_owned();
    let target = contact.trim_start_matches('<').split('>').next().expect("uri").to_owned();
    let ack = format!(
        "ACK {target} SIP/2.0\r\n{}{dialog}To: {to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        via("ack")
    );
    tls.write_all(ack.as_bytes()).await.expect("ACK");

    let negotiated = sdp::apply_answer_str(&offer.pending, &ok.body).expect("the answer fits");
    let config = tutti::engine::media::leg_config(&negotiated, "tls@test".into());
    let leg = Leg::new(config, Instant::now()).expect("leg");
    let leg = tutti_media::io::LegIo::spawn(2, leg, sockets, line.notices.clone());
    let codec = leg.codec().new_codec();
    let tls_phone = Phone { leg, codec, tone: 1000.0, heard: Vec::new() };

    let mut phones = vec![udp_phone, tls_phone];
    let mut levels = [0.0; 2];
    for _ in 0..6 {
        talk(&mut phones, 50).await;
        levels = [level(&phones[0], 1000.0), level(&phones[1], 440.0)];
        if levels.iter().all(|l| *l > 500.0) {
            break;
        }
    }
    assert!(levels[0] > 500.0, "the UDP phone hears the TLS caller: {levels:.0?}");
    assert!(levels[1] > 500.0, "the TLS caller hears the UDP phone: {levels:.0?}");
    assert!(level(&phones[1], 1000.0) < 100.0, "the TLS caller does not hear itself");

    let bye = format!(
        "BYE {target} SIP/2.0\r\n{}{dialog}To: {to}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        via("bye")
    );
    tls.write_all(bye.as_bytes()).await.expect("BYE");
    let done = reader.final_response(&mut tls).await;
    assert!(done.start.starts_with("SIP/2.0 200"), "{}", done.start);
    assert!(done.header("CSeq").is_some_and(|c| c.ends_with("BYE")));
    server.wait_for_log("caller left", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_required_refuses_plain_rtp_with_488_and_srtp_phones_hear_each_other() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &["--control-password", "secret", "--srtp", "required"]);
    let sip = server.logged_addr("SIP listening", "udp");
    let control_addr = server.logged_addr("control protocol listening", "addr");
    tokio::task::spawn_blocking(move || {
        let mut control = Control::connect(control_addr, "secret");
        assert_eq!(control.command("NEWCONF,4002,SRTP,Ann,10,,,,", "NEWCONF"), ["NEWCONF,OK"]);
    })
    .await
    .expect("4011 setup");
    let target = format!("sip:4002@{sip}");

    let mut plain = Phones::with_srtp(SrtpPolicy::Disabled).await;
    let refused = plain.try_dial(&target, 9).await;
    assert_eq!(refused.as_ref().err().map(String::as_str), Some("488"), "plain RTP is refused");

    let (mut first, mut second) = (
        Phones::with_srtp(SrtpPolicy::Required).await,
        Phones::with_srtp(SrtpPolicy::Required).await,
    );
    let mut phones =
        vec![first.dial(&target, 1, 440.0).await, second.dial(&target, 2, 1000.0).await];
    let mut levels = [0.0; 2];
    for _ in 0..6 {
        talk(&mut phones, 50).await;
        levels = [level(&phones[0], 1000.0), level(&phones[1], 440.0)];
        if levels.iter().all(|l| *l > 500.0) {
            break;
        }
    }
    assert!(levels.iter().all(|l| *l > 500.0), "SRTP phones hear each other: {levels:.0?}");
}

/// Sends an OPTIONS over a stream and returns the status line of the answer.
async fn options_status<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    transport: &str,
    server: SocketAddr,
    branch: &str,
) -> String {
    let local = "127.0.0.1:5999";
    let request = format!(
        "OPTIONS sip:{server};transport={transport} SIP/2.0\r\nVia: SIP/2.0/{} {local};branch=z9hG4bK-{branch};rport\r\nFrom: <sip:probe@127.0.0.1>;tag={branch}\r\nTo: <sip:{server}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        transport.to_ascii_uppercase()
    );
    stream.write_all(request.as_bytes()).await.expect("OPTIONS");
    SipReader { buffer: Vec::new() }.final_response(stream).await.start
}

/// Whether the server closes `stream` within `within` (end of stream or a reset).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(within, stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_stream_connections_are_limited_per_source_and_a_silent_tls_client_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certificate(dir.path());
    // The key as SEC1 (`BEGIN EC PRIVATE KEY`), which SIP over TLS takes too.
    let sec1 = dir.path().join("key-sec1.pem");
    let converted = std::process::Command::new("openssl")
        .args(["ec", "-in"])
        .args([&key, Path::new("-out"), &sec1])
        .output()
        .expect("openssl");
    assert!(converted.status.success(), "{}", String::from_utf8_lossy(&converted.stderr));
    assert!(std::fs::read_to_string(&sec1).expect("key").contains("BEGIN EC PRIVATE KEY"));
    let (mut server, tls_addr) =
        sip_tls_server(dir.path(), &cert, &sec1, &["--sip-connections-per-source", "2"]);
    let tcp_addr = server.logged_addr("SIP listening", "tcp");

    // A client that opens a TLS connection and never starts the handshake: it
    // holds one of its address's two places, and only until the deadline.
    let mut silent = TcpStream::connect(tls_addr).await.expect("connect");
    let opened = Instant::now();
    let mut first = TcpStream::connect(tcp_addr).await.expect("connect");
    let status = options_status(&mut first, "tcp", tcp_addr, "limit-1").await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");

    // A third connection from the same address is closed as it is accepted.
    let mut third = TcpStream::connect(tcp_addr).await.expect("the kernel accepts");
    assert!(closed_by_server(&mut third, Duration::from_secs(5)).await, "over the limit");
    server.wait_for_log("too many connections from this address", Duration::from_secs(5));
    assert!(
        !closed_by_server(&mut first, Duration::from_millis(200)).await,
        "the connections within the limit stay"
    );

    // The silent one goes at the handshake deadline (10 s), not before.
    assert!(closed_by_server(&mut silent, Duration::from_secs(20)).await, "dropped");
    let held = opened.elapsed();
    assert!(held >= Duration::from_secs(9), "closed after {held:?}, before the deadline");
    server.wait_for_log("TLS handshake timed out", Duration::from_secs(5));

    // Its place is free again: a new connection is served, here one that
    // completes its handshake.
    let mut again = tls_connect(&ca, tls_addr).await;
    let status = options_status(&mut again, "tls", tls_addr, "limit-2").await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
    let status = options_status(&mut first, "tcp", tcp_addr, "limit-3").await;
    assert!(status.starts_with("SIP/2.0 200"), "the first connection still works: {status}");
    // rsipstack never bound the listeners itself (they are tutti's).
    let logs = server.logs();
    assert!(!logs.contains("Failed to serve listener"), "{logs}");
}

/// `--sip-connection-rate 1`: one source may open two connections at once
/// (TCP and TLS draw on one bucket), the next is closed as it is accepted,
/// before any handshake, while the connections it has go on; a second later
/// it may open one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sip_connections_beyond_their_rate_are_closed_as_they_are_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certificate(dir.path());
    let (mut server, tls_addr) =
        sip_tls_server(dir.path(), &cert, &key, &["--sip-connection-rate", "1"]);
    let tcp_addr = server.logged_addr("SIP listening", "tcp");

    let mut tcp = TcpStream::connect(tcp_addr).await.expect("connect");
    let status = options_status(&mut tcp, "tcp", tcp_addr, "rate-1").await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
    let mut tls = tls_connect(&ca, tls_addr).await;
    let status = options_status(&mut tls, "tls", tls_addr, "rate-2").await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");

    let mut third = TcpStream::connect(tls_addr).await.expect("the kernel accepts");
    assert!(closed_by_server(&mut third, Duration::from_secs(5)).await, "over the rate");
    server.wait_for_log("connection flood", Duration::from_secs(5));
    let status = options_status(&mut tcp, "tcp", tcp_addr, "rate-3").await;
    assert!(status.starts_with("SIP/2.0 200"), "the connections it has go on: {status}");

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        assert!(Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut next = TcpStream::connect(tcp_addr).await.expect("connect");
        if !closed_by_server(&mut next, Duration::from_millis(300)).await {
            break next;
        }
    };
    let status = options_status(&mut again, "tcp", tcp_addr, "rate-4").await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
}

/// The documents (each ended by a zero byte) `stream` sends until it closes.
async fn xmlsocket_documents<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<String> {
    let text = read_all(stream).await;
    text.split('\0').filter(|d| !d.is_empty()).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xmlsocket_events_port_speaks_tls_when_given_a_certificate() {
    use tutti_api::http::envelope::parse_xml;
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certificate(dir.path());
    let (cert_arg, key_arg) = (cert.to_str().expect("path"), key.to_str().expect("path"));
    let mut server =
        Server::start(dir.path(), &["--events-tls-cert", cert_arg, "--events-tls-key", key_arg]);
    let line = server.wait_for_log("XMLSocket events listening", Duration::from_secs(5));
    assert!(line.contains("tls=true"), "{line}");
    let addr = server.logged_addr("XMLSocket events listening", "addr");

    // A client that connects and never starts its handshake holds up no one.
    let _idle = TcpStream::connect(addr).await.expect("connect");
    // Over TLS: the policy a Flash client asks first, then a subscription
    // with a wrong token, refused with the envelope's code.
    let mut tls = tls_connect(&ca, addr).await;
    tls.write_all(b"<policy-file-request/>\0").await.expect("write");
    let documents = xmlsocket_documents(&mut tls).await;
    let policy = parse_xml(documents.first().expect("a policy")).expect("XML");
    assert_eq!(policy.name, "cross-domain-policy", "{documents:?}");
    assert!(policy.child("allow-access-from").is_some(), "{documents:?}");

    let mut tls = tls_connect(&ca, addr).await;
    tls.write_all(b"<subscribe callUID=\"nope\" securityToken=\"wrong\"/>\0").await.expect("write");
    let documents = xmlsocket_documents(&mut tls).await;
    let error = parse_xml(documents.first().expect("an answer")).expect("XML");
    assert_eq!(error.name, "error", "{documents:?}");
    let code = error.child("code").map(|c| c.text.clone()).unwrap_or_default();
    assert!(code == "-1" || code == "-2", "{documents:?}");

    // Plain text to the TLS port gets no document.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain.write_all(b"<policy-file-request/>\0").await.expect("write");
    let answer = read_all(&mut plain).await;
    assert!(!answer.contains("cross-domain-policy"), "{answer}");
}
