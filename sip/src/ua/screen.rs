//! A screen in front of rsipstack's UDP transport: rsipstack silently drops datagrams
//! it cannot parse, so requests that are malformed (400), use an unknown method (501)
//! or are too large (513) are answered here, from the raw header lines, when they carry
//! enough (Via, From, To, Call-ID, CSeq) to be answered, and dropped otherwise.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use rsipstack::sip::SipMessage;
use rsipstack::sip::prelude::HeadersExt;

/// What to do with one received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the stack.
    Pass,
    /// Answer it with these bytes (a complete SIP response) and drop it.
    Reply(Vec<u8>),
    /// Drop it silently (a broken response, or a request we cannot answer).
    Drop,
}

/// Methods rsipstack parses; any other method token gets 501.
const KNOWN_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// Screens one datagram of `len` bytes (`datagram` may be truncated when the
/// datagram was larger than the receive buffer: `truncated` says so).
pub fn screen(datagram: &[u8], truncated: bool, max_size: usize) -> Verdict {
    if datagram.iter().all(u8::is_ascii_whitespace) {
        // Keepalives (CRLF) are the transport's business.
        return Verdict::Pass;
    }
    if truncated || datagram.len() > max_size {
        return reply_from_raw(datagram, 513, "Message Too Large");
    }
    match SipMessage::try_from(datagram) {
        Ok(SipMessage::Request(req)) => {
            let complete = req.via_header().is_ok()
                && req.from_header().is_ok()
                && req.to_header().is_ok()
                && req.call_id_header().is_ok()
                && req
                    .cseq_header()
                    .ok()
                    .and_then(|c| Some((c.seq().ok()?, c.method().ok()?)))
                    .is_some_and(|(_, method)| method == req.method);
            if complete { Verdict::Pass } else { reply_from_raw(datagram, 400, "Bad Request") }
        }
        Ok(SipMessage::Response(_)) => Verdict::Pass,
        Err(_) => {
            let method = request_method(datagram);
            match method {
                Some(m) if KNOWN_METHODS.contains(&m) => {
                    reply_from_raw(datagram, 400, "Bad Request")
                }
                Some(_) => reply_from_raw(datagram, 501, "Not Implemented"),
                None => Verdict::Drop,
            }
        }
    }
}

/// The method token of a request line `METHOD uri SIP/2.0`, or `None` for a
/// response or garbage.
fn request_method(datagram: &[u8]) -> Option<&str> {
    let line_end = datagram.iter().position(|&b| b == b'\n').unwrap_or(datagram.len());
    let line = std::str::from_utf8(&datagram[..line_end]).ok()?.trim_end();
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let _uri = parts.next()?;
    let version = parts.next()?;
    let is_token = !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    (is_token && version.eq_ignore_ascii_case("SIP/2.0") && parts.next().is_none())
        .then_some(method)
}

/// Builds a response from the raw header lines of a request that did not parse.
/// ACK is never answered (RFC 3261 section 17.2.1); without the headers a response
/// needs, nothing is sent.
fn reply_from_raw(datagram: &[u8], status: u16, reason: &str) -> Verdict {
    let Some(method) = request_method(datagram) else {
        return Verdict::Drop;
    };
    if method == "ACK" {
        return Verdict::Drop;
    }
    let text = String::from_utf8_lossy(datagram);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let (mut vias, mut from, mut to, mut call_id, mut cseq) = (Vec::new(), None, None, None, None);
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => vias.push(value),
            "from" | "f" => from = Some(value),
            "to" | "t" => to = Some(value),
            "call-id" | "i" => call_id = Some(value),
            "cseq" => cseq = Some(value),
            _ => {}
        }
    }
    let (Some(from), Some(to), Some(call_id), Some(cseq)) = (from, to, call_id, cseq) else {
        return Verdict::Drop;
    };
    if vias.is_empty() {
        return Verdict::Drop;
    }
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for via in vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    out.push_str(&format!("From: {from}\r\n"));
    if to.to_ascii_lowercase().contains(";tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag={}\r\n", rsipstack::transaction::make_tag()));
    }
    out.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {cseq}\r\n"));
    if status == 501 || status == 405 {
        out.push_str(&format!("Allow: {}\r\n", super::ALLOW));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Verdict::Reply(out.into_bytes())
}

/// A UDP socket that screens what it receives before rsipstack sees it.
pub(crate) struct ScreenedSocket {
    pub(crate) socket: tokio::net::UdpSocket,
    pub(crate) max_size: usize,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl ScreenedSocket {
    async fn recv_screened(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = self.socket.recv_from(buf).await?;
            // tokio truncates a datagram larger than the buffer to its length.
            let truncated = len == buf.len();
            match screen(&buf[..len], truncated, self.max_size) {
                Verdict::Pass => return Ok((len, from)),
                Verdict::Reply(bytes) => {
                    tracing::debug!(%from, len, "answering a request the stack cannot take");
                    if let Err(e) = self.socket.send_to(&bytes, from).await {
                        tracing::debug!(%from, error = %e, "screen reply failed");
                    }
                }
                Verdict::Drop => tracing::debug!(%from, len, "dropped an unusable datagram"),
            }
        }
    }
}

// Written out rather than with #[async_trait] to spare a dependency: this is what the
// macro expands to for rsipstack's trait.
impl rsipstack::platform::net::UdpSocket for ScreenedSocket {
    fn recv_from<'life0, 'life1, 'async_trait>(
        &'life0 self,
        buf: &'life1 mut [u8],
    ) -> BoxFuture<'async_trait, rsipstack::Result<(usize, SocketAddr)>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.recv_screened(buf))
    }

    fn send_to<'life0, 'life1, 'async_trait>(
        &'life0 self,
        buf: &'life1 [u8],
        addr: SocketAddr,
    ) -> BoxFuture<'async_trait, rsipstack::Result<usize>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { Ok(self.socket.send_to(buf, addr).await?) })
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADERS: &str = "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\n\
        Call-ID: x@y\r\nCSeq: 1 INVITE\r\n";

    fn text(v: Verdict) -> String {
        match v {
            Verdict::Reply(b) => String::from_utf8(b).unwrap_or_default(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn well_formed_request_passes() {
        let msg = format!(
            "INVITE sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(screen(msg.as_bytes(), false, 4096), Verdict::Pass);
        assert_eq!(screen(b"\r\n\r\n", false, 4096), Verdict::Pass);
    }

    #[test]
    fn unknown_method_gets_501_with_allow() {
        let msg = format!("FOO sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        let reply = text(screen(msg.as_bytes(), false, 4096));
        assert!(reply.starts_with("SIP/2.0 501 "), "{reply}");
        assert!(reply.contains("Allow: INVITE"), "{reply}");
        assert!(reply.contains("Call-ID: x@y\r\n"), "{reply}");
        assert!(reply.contains("To: <sip:b@127.0.0.1>;tag="), "{reply}");
    }

    #[test]
    fn oversized_request_gets_513_and_garbage_is_dropped() {
        let msg = format!("INVITE sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        assert!(text(screen(msg.as_bytes(), false, 64)).starts_with("SIP/2.0 513 "));
        assert!(text(screen(msg.as_bytes(), true, 4096)).starts_with("SIP/2.0 513 "));
        assert_eq!(screen(b"\x00\x01garbage", false, 4096), Verdict::Drop);
        assert_eq!(screen(b"SIP/2.0 200 OK\r\nbroken", false, 4096), Verdict::Drop);
    }

    #[test]
    fn request_without_answerable_headers_is_dropped() {
        let msg = "INVITE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n";
        assert_eq!(screen(msg.as_bytes(), false, 4096), Verdict::Drop);
    }

    #[test]
    fn cseq_method_mismatch_gets_400() {
        let msg = format!("BYE sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        assert!(text(screen(msg.as_bytes(), false, 4096)).starts_with("SIP/2.0 400 "));
    }

    /// Deterministic mutation of a real INVITE: bytes flipped, cut, duplicated. The
    /// screen (and rsipstack's parser under it) must never panic.
    #[test]
    fn mutated_messages_never_panic() {
        let base = format!(
            "INVITE sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Contact: <sip:a@127.0.0.1>\r\n\
             Content-Type: application/sdp\r\nContent-Length: 20\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0"
        );
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut msg = base.clone().into_bytes();
            for _ in 0..(next() % 8 + 1) {
                let at = (next() as usize) % msg.len().max(1);
                match next() % 4 {
                    0 => msg[at] = next() as u8,
                    1 => msg.truncate(at),
                    2 => msg.insert(at, b"\r\n:;<>\"\0 "[(next() % 9) as usize]),
                    _ => {
                        let tail = msg[at..].to_vec();
                        msg.extend_from_slice(&tail);
                    }
                }
                if msg.is_empty() {
                    break;
                }
            }
            let _ = screen(&msg, false, 4096);
        }
    }

    #[test]
    fn ack_is_never_answered() {
        let msg = format!("ACK sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        assert_eq!(screen(msg.as_bytes(), true, 4096), Verdict::Drop);
    }
}
