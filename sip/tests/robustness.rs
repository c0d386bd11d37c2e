//! What the UA answers to requests it cannot or will not take, over raw UDP: unknown
//! methods (501), unknown Require (420), over max_calls (503 with Retry-After),
//! oversized messages (513), malformed requests (400 naming the problem in the reason
//! phrase and a Warning), methods we do not allow (405), stray in-dialog requests
//! (481), and that garbage is dropped without harm.

mod common;

use std::time::Duration;

use common::{Harness, config};
use tokio::net::UdpSocket;

const INVITE_SDP: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";

fn request(
    method: &str,
    branch: &str,
    local: std::net::SocketAddr,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:answer@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         From: <sip:t@127.0.0.1>;tag=t{branch}\r\nTo: <sip:answer@127.0.0.1>\r\n\
         Call-ID: {branch}@test\r\nCSeq: 1 {method}\r\nContact: <sip:t@{local}>\r\n\
         Max-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `msg` and returns the first final (non-1xx) response, if one comes.
async fn exchange(h: &Harness, msg: &str) -> Option<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    sock.send_to(msg.as_bytes(), h.ua.udp_addr()).await.ok()?;
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return Some(text);
        }
    }
}

/// The parts of a response a person reads: status, reason phrase, Warning.
#[derive(Debug)]
struct Answer {
    status: u16,
    reason: String,
    warning: Option<String>,
}

fn answer(text: &str) -> Answer {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("SIP/2.0"), "{text}");
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let reason = parts.next().unwrap_or_default().to_owned();
    let warning = lines
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Warning:").map(|v| v.trim().to_owned()));
    Answer { status, reason, warning }
}

/// Sends `msg` and checks the answer's status, reason phrase and that its Warning is
/// `399 <our address> "<text containing warning>"`.
async fn expect_refusal(h: &Harness, msg: &str, status: u16, reason: &str, warning: &str) {
    let resp = exchange(h, msg).await.unwrap_or_default();
    let got = answer(&resp);
    assert_eq!((got.status, got.reason.as_str()), (status, reason), "{resp}");
    let agent = h.ua.udp_addr().to_string();
    let text = got.warning.as_deref().unwrap_or_default();
    let quoted = text
        .strip_prefix(&format!("399 {agent} \""))
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("Warning 399 from {agent} in {resp}"));
    assert!(quoted.contains(warning), "{warning:?} not in {quoted:?}");
}

async fn socket_and_addr() -> std::net::SocketAddr {
    "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!())
}

#[tokio::test]
async fn unknown_method_gets_501() {
    let h = Harness::start(config()).await;
    let msg = request("FROBNICATE", "a1", socket_and_addr().await, "", "");
    let warning = "method FROBNICATE is not implemented";
    expect_refusal(&h, &msg, 501, "Not Implemented", warning).await;
}

#[tokio::test]
async fn unknown_require_gets_420_with_unsupported() {
    let h = Harness::start(config()).await;
    let msg = request(
        "INVITE",
        "a2",
        socket_and_addr().await,
        "Require: 100rel, foo\r\nContent-Type: application/sdp\r\n",
        INVITE_SDP,
    );
    let resp = exchange(&h, &msg).await.unwrap_or_default();
    assert!(resp.starts_with("SIP/2.0 420"), "{resp}");
    assert!(resp.contains("Unsupported: 100rel, foo"), "{resp}");
    assert!(resp.contains("what tutti lacks: 100rel, foo\"\r\n"), "{resp}");
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn over_max_calls_gets_503_with_retry_after() {
    let mut cfg = config();
    cfg.max_calls = 0;
    let h = Harness::start(cfg).await;
    let msg = request(
        "INVITE",
        "a3",
        socket_and_addr().await,
        "Content-Type: application/sdp\r\n",
        INVITE_SDP,
    );
    let resp = exchange(&h, &msg).await.unwrap_or_default();
    assert!(resp.starts_with("SIP/2.0 503"), "{resp}");
    assert!(resp.contains("Retry-After: 30"), "{resp}");
}

#[tokio::test]
async fn oversized_request_gets_513() {
    let mut cfg = config();
    cfg.max_message_size = 1024;
    let h = Harness::start(cfg).await;
    let padding = format!("X-Padding: {}\r\n", "p".repeat(2000));
    let msg = request("OPTIONS", "a4", socket_and_addr().await, &padding, "");
    expect_refusal(&h, &msg, 513, "Message Too Large", "at most 1024 are accepted").await;
}

/// RFC 3261 section 18.3: over UDP, a Content-Length larger than the body means the
/// message was cut short, and it gets 400; rsipstack alone took the short body.
#[tokio::test]
async fn truncated_body_gets_400_and_never_reaches_the_engine() {
    let h = Harness::start(config()).await;
    // What is left of the body is still a valid offer: without the check the call
    // was answered 200.
    let declared = INVITE_SDP.len() + 40;
    let msg = request(
        "INVITE",
        "c1",
        socket_and_addr().await,
        "Content-Type: application/sdp\r\n",
        INVITE_SDP,
    )
    .replace(
        &format!("Content-Length: {}", INVITE_SDP.len()),
        &format!("Content-Length: {declared}"),
    );
    let warning =
        format!("Content-Length is {declared} but the body has {} bytes", INVITE_SDP.len());
    expect_refusal(&h, &msg, 400, "Body Shorter Than Content Length", &warning).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.seen().is_empty(), "{:?}", h.seen());
}

/// Each malformed request is answered with a reason phrase and a Warning that say
/// what is wrong: from the UDP screen (the stack cannot take them) and from the UA.
#[tokio::test]
async fn malformed_requests_say_what_is_wrong() {
    let h = Harness::start(config()).await;
    let local = socket_and_addr().await;
    let sdp = "Content-Type: application/sdp\r\n";
    let invite = |branch: &str| request("INVITE", branch, local, sdp, INVITE_SDP);
    let options = |branch: &str| request("OPTIONS", branch, local, "", "");
    let cases = [
        (
            invite("d1").replace("Call-ID: d1@test\r\n", ""),
            (400, "Missing Call-ID", "the request has no Call-ID header"),
        ),
        (
            options("d2").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
            (400, "Method Mismatch", "CSeq method INVITE does not match"),
        ),
        (
            options("d3").replace("Content-Length: 0", "Content-Length: zero"),
            (400, "Bad Body Length", "Content-Length 'zero' is not a number"),
        ),
        (
            options("d4")
                .replace("OPTIONS sip:answer@127.0.0.1 SIP/2.0", "OPTIONS sip:a@b SIP/3.0"),
            (505, "Version Not Supported", "SIP version SIP/3.0 is not supported"),
        ),
        (
            options("d5").replace("sip:answer@127.0.0.1 ", "sip:answer@127.0.0.1:70000 "),
            (400, "Bad Request-URI", "cannot be read"),
        ),
        (
            invite("d6").replace(&format!("Contact: <sip:t@{local}>\r\n"), ""),
            (400, "Missing Contact", "an INVITE needs a Contact header"),
        ),
        (
            request("INVITE", "d7", local, &format!("{sdp}Session-Expires: soon\r\n"), INVITE_SDP),
            (400, "Bad Session Timer", "malformed Session-Expires"),
        ),
        (
            request("INVITE", "d8", local, sdp, "v=0\r\nthis is not SDP\r\n"),
            (400, "Malformed SDP", "malformed SDP"),
        ),
        (
            request("INVITE", "d9", local, "Content-Type: text/plain\r\n", "hello"),
            (415, "Unsupported Media Type", "a body of type text/plain is not supported"),
        ),
    ];
    for (msg, (status, reason, warning)) in cases {
        expect_refusal(&h, &msg, status, reason, warning).await;
    }
    assert!(h.seen().is_empty(), "{:?}", h.seen());
}

#[tokio::test]
async fn register_gets_405_and_stray_bye_gets_481() {
    let h = Harness::start(config()).await;
    let resp = exchange(&h, &request("REGISTER", "a5", socket_and_addr().await, "", ""))
        .await
        .unwrap_or_default();
    assert!(resp.starts_with("SIP/2.0 405"), "{resp}");
    assert!(resp.contains("Allow: INVITE"), "{resp}");
    let bye = request("BYE", "a6", socket_and_addr().await, "", "")
        .replace("To: <sip:answer@127.0.0.1>", "To: <sip:answer@127.0.0.1>;tag=nope");
    let resp = exchange(&h, &bye).await.unwrap_or_default();
    assert!(resp.starts_with("SIP/2.0 481"), "{resp}");
}

#[tokio::test]
async fn offer_without_common_codec_gets_488() {
    let h = Harness::start(config()).await;
    let sdp = INVITE_SDP.replace("RTP/AVP 0", "RTP/AVP 18\r\na=rtpmap:18 G729/8000");
    let msg =
        request("INVITE", "a7", socket_and_addr().await, "Content-Type: application/sdp\r\n", &sdp);
    expect_refusal(&h, &msg, 488, "Not Acceptable Here", "no common codec").await;
    // Refused before the engine hears of it.
    assert!(h.seen().is_empty(), "{:?}", h.seen());
}

#[tokio::test]
async fn garbage_is_dropped_and_the_ua_still_answers() {
    let h = Harness::start(config()).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for junk in [
        &b"\x00\x01\x02"[..],
        b"SIP/2.0 200",
        b"INVITE",
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        &[0xffu8; 9000],
    ] {
        sock.send_to(junk, h.ua.udp_addr()).await.expect("send");
    }
    let resp = exchange(&h, &request("OPTIONS", "a8", socket_and_addr().await, "", ""))
        .await
        .unwrap_or_default();
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
}

#[tokio::test]
async fn engine_rejects_and_redirects() {
    let h = Harness::start(config()).await;
    let invite = |user: &str, branch: &str| {
        request(
            "INVITE",
            branch,
            "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!()),
            "Content-Type: application/sdp\r\n",
            INVITE_SDP,
        )
        .replace("sip:answer@", &format!("sip:{user}@"))
    };
    let resp = exchange(&h, &invite("nobody", "b1")).await.unwrap_or_default();
    assert!(resp.starts_with("SIP/2.0 404"), "{resp}");
    let resp = exchange(&h, &invite("moved", "b2")).await.unwrap_or_default();
    assert!(resp.starts_with("SIP/2.0 302"), "{resp}");
    assert!(resp.contains("Contact: <sip:elsewhere@192.0.2.1>"), "{resp}");
    h.wait_for("both ended", |s| {
        s.iter().filter(|e| matches!(e, common::Seen::Hangup(..))).count() == 2
    })
    .await;
}
