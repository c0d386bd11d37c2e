//! A screen in front of rsipstack's UDP transport. rsipstack silently drops datagrams
//! it cannot parse and takes some it should not (a body shorter than its
//! Content-Length), so requests that are malformed (400), use an unknown method (501)
//! or SIP version (505) or are too large (513) are refused here, from the raw bytes,
//! with a reason phrase and a Warning that name the problem.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Request, SipMessage};

use super::refusal::{Refusal, RefusalLog, warning_value};

/// What to do with one received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the stack.
    Pass,
    /// A request refused here. `response` is the complete SIP response to send back,
    /// or `None` when it cannot be answered (an ACK, or no Via to answer to).
    Refuse {
        /// What is wrong.
        refusal: Refusal,
        /// The method of the request line, for the log.
        method: String,
        /// The response bytes.
        response: Option<Vec<u8>>,
    },
    /// Drop it silently: not a request (a broken response, or garbage).
    Ignore,
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

/// The screen's settings.
#[derive(Debug, Clone)]
pub struct Screen {
    /// Largest datagram accepted; larger requests get 513.
    pub max_size: usize,
    /// Our `host:port`, the warn-agent of Warning headers.
    pub agent: String,
}

/// The start line of a request, as far as it could be read.
#[derive(Debug, Clone, Copy)]
struct RequestLine<'a> {
    method: &'a str,
    uri: &'a str,
    version: &'a str,
}

/// What is wrong with a datagram, if anything.
enum Diagnosis {
    Fine,
    Refuse(Refusal),
    Ignore,
}

impl Screen {
    /// Screens one datagram (`truncated` when it was larger than the receive
    /// buffer and `datagram` holds only its start).
    pub fn check(&self, datagram: &[u8], truncated: bool) -> Verdict {
        if datagram.iter().all(u8::is_ascii_whitespace) {
            // Keepalives (CRLF) are the transport's business.
            return Verdict::Pass;
        }
        let line = request_line(datagram);
        let refusal = match self.diagnose(datagram, truncated, line) {
            Diagnosis::Fine => return Verdict::Pass,
            Diagnosis::Ignore => return Verdict::Ignore,
            Diagnosis::Refuse(refusal) => refusal,
        };
        let Some(line) = line else {
            return Verdict::Ignore;
        };
        // ACK is never answered (RFC 3261 section 17.2.1).
        let response = if line.method.eq_ignore_ascii_case("ACK") {
            None
        } else {
            reply_from_raw(datagram, &refusal, &self.agent)
        };
        Verdict::Refuse { refusal, method: line.method.to_owned(), response }
    }

    fn diagnose(&self, datagram: &[u8], truncated: bool, line: Option<RequestLine>) -> Diagnosis {
        let Some(line) = line else {
            // A response: rsipstack matches it to a transaction or drops it. One whose
            // body is shorter than its Content-Length is discarded (RFC 3261 18.3).
            return match SipMessage::try_from(datagram) {
                Ok(SipMessage::Response(_)) if !truncated && datagram.len() <= self.max_size => {
                    match content_length_problem(datagram) {
                        Some(_) => Diagnosis::Ignore,
                        None => Diagnosis::Fine,
                    }
                }
                _ => Diagnosis::Ignore,
            };
        };
        if truncated || datagram.len() > self.max_size {
            let size = if truncated {
                format!("more than {} bytes", datagram.len())
            } else {
                format!("{} bytes", datagram.len())
            };
            return Diagnosis::Refuse(Refusal::new(
                513,
                "Message Too Large",
                format!("the message has {size}; at most {} are accepted over UDP", self.max_size),
            ));
        }
        if line.version != "SIP/2.0" {
            return Diagnosis::Refuse(Refusal::new(
                505,
                "Version Not Supported",
                format!("SIP version {} is not supported; use SIP/2.0", line.version),
            ));
        }
        if !KNOWN_METHODS.contains(&line.method) {
            return Diagnosis::Refuse(Refusal::new(
                501,
                "Not Implemented",
                format!("method {} is not implemented", line.method),
            ));
        }
        match SipMessage::try_from(datagram) {
            Ok(SipMessage::Request(req)) => match request_problem(&req, datagram) {
                Some(refusal) => Diagnosis::Refuse(refusal),
                None => Diagnosis::Fine,
            },
            Ok(SipMessage::Response(_)) => Diagnosis::Ignore,
            Err(e) => Diagnosis::Refuse(parse_problem(datagram, line, &e)),
        }
    }
}

/// Why a request rsipstack parsed must not reach it: a header every request needs
/// is missing or unreadable (rsipstack would drop it unanswered or answer it
/// regardless), or the body is shorter than its Content-Length.
fn request_problem(req: &Request, datagram: &[u8]) -> Option<Refusal> {
    let missing = |name: &str| {
        Refusal::new(400, missing_reason(name), format!("the request has no {name} header"))
    };
    match req.via_header() {
        Err(_) => return Some(missing("Via")),
        Ok(via) => {
            if let Err(e) = via.typed() {
                return Some(Refusal::new(400, "Bad Request", format!("unreadable Via: {e}")));
            }
        }
    }
    if req.from_header().is_err() {
        return Some(missing("From"));
    }
    if req.to_header().is_err() {
        return Some(missing("To"));
    }
    if req.call_id_header().is_err() {
        return Some(missing("Call-ID"));
    }
    let Ok(cseq) = req.cseq_header() else {
        return Some(missing("CSeq"));
    };
    let (Ok(_), Ok(cseq_method)) = (cseq.seq(), cseq.method()) else {
        return Some(Refusal::new(
            400,
            "Bad Command Sequence",
            format!("CSeq '{}' is not a number and a method", cseq.value()),
        ));
    };
    if cseq_method != req.method {
        return Some(Refusal::new(
            400,
            "Method Mismatch",
            format!("CSeq method {cseq_method} does not match the request method {}", req.method),
        ));
    }
    content_length_problem(datagram)
}

/// The reason phrase for a missing header.
fn missing_reason(name: &str) -> &'static str {
    match name {
        "Via" => "Missing Via",
        "From" => "Missing From",
        "To" => "Missing To",
        "Call-ID" => "Missing Call-ID",
        _ => "Missing CSeq",
    }
}

/// A Content-Length that is not a number, that disagrees with another one, or that
/// is larger than the body: on UDP that means the message was cut short, and RFC
/// 3261 section 18.3 says to answer 400 (rsipstack would take the short body).
fn content_length_problem(datagram: &[u8]) -> Option<Refusal> {
    let head_end = datagram.windows(4).position(|w| w == b"\r\n\r\n")?;
    let body = datagram.len() - (head_end + 4);
    let head = String::from_utf8_lossy(&datagram[..head_end]);
    let mut declared: Option<usize> = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("l") {
            continue;
        }
        let value = value.trim();
        let Some(length) = value.parse::<usize>().ok().filter(|_| !value.starts_with('+')) else {
            return Some(Refusal::new(
                400,
                "Bad Body Length",
                format!("Content-Length '{value}' is not a number"),
            ));
        };
        if declared.is_some_and(|d| d != length) {
            return Some(Refusal::new(
                400,
                "Bad Body Length",
                "two Content-Length headers disagree",
            ));
        }
        declared = Some(length);
    }
    let declared = declared?;
    (declared > body).then(|| {
        Refusal::new(
            400,
            "Body Shorter Than Content Length",
            format!(
                "Content-Length is {declared} but the body has {body} bytes \
                 (was the message cut short?)"
            ),
        )
    })
}

/// Why rsipstack could not parse a request with a readable request line.
fn parse_problem(datagram: &[u8], line: RequestLine, error: &rsipstack::sip::Error) -> Refusal {
    if !datagram.windows(4).any(|w| w == b"\r\n\r\n") {
        return Refusal::new(
            400,
            "Missing Empty Line",
            "the headers do not end with an empty line (CR LF CR LF)",
        );
    }
    if rsipstack::sip::Uri::try_from(line.uri).is_err() {
        return Refusal::new(
            400,
            "Bad Request-URI",
            format!("the Request-URI '{}' cannot be read", line.uri),
        );
    }
    Refusal::new(400, "Bad Request", format!("the request cannot be read: {error}"))
}

/// The request line `METHOD uri SIP/x.y`, or `None` for a response or garbage.
fn request_line(datagram: &[u8]) -> Option<RequestLine<'_>> {
    let line_end = datagram.iter().position(|&b| b == b'\n').unwrap_or(datagram.len());
    let line = std::str::from_utf8(&datagram[..line_end]).ok()?.trim_end();
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    let is_token = !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    let is_version = version.get(..4).is_some_and(|v| v.eq_ignore_ascii_case("SIP/"));
    (is_token && is_version && !uri.is_empty() && parts.next().is_none()).then_some(RequestLine {
        method,
        uri,
        version,
    })
}

/// Builds a response from the raw header lines of a refused request: its Vias,
/// From, To (with a tag), Call-ID and CSeq as far as they are present, and a
/// Warning. Without a Via there is nowhere to answer to, and nothing is sent.
fn reply_from_raw(datagram: &[u8], refusal: &Refusal, agent: &str) -> Option<Vec<u8>> {
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
    if vias.is_empty() {
        return None;
    }
    let mut out = format!("SIP/2.0 {} {}\r\n", refusal.status, refusal.reason);
    for via in vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    if let Some(from) = from {
        out.push_str(&format!("From: {from}\r\n"));
    }
    match to {
        Some(to) if to.to_ascii_lowercase().contains(";tag=") => {
            out.push_str(&format!("To: {to}\r\n"));
        }
        Some(to) => {
            out.push_str(&format!("To: {to};tag={}\r\n", rsipstack::transaction::make_tag()));
        }
        None => {}
    }
    if let Some(call_id) = call_id {
        out.push_str(&format!("Call-ID: {call_id}\r\n"));
    }
    if let Some(cseq) = cseq {
        out.push_str(&format!("CSeq: {cseq}\r\n"));
    }
    if refusal.status == 501 || refusal.status == 405 {
        out.push_str(&format!("Allow: {}\r\n", super::ALLOW));
    }
    // The Warning comes last: SIPp (and other simple parsers) find a header by
    // searching for its name, and the Warning's text may name one.
    out.push_str("Content-Length: 0\r\n");
    out.push_str(&format!("Warning: {}\r\n\r\n", warning_value(agent, &refusal.detail)));
    Some(out.into_bytes())
}

/// A UDP socket that screens what it receives before rsipstack sees it.
pub(crate) struct ScreenedSocket {
    pub(crate) socket: tokio::net::UdpSocket,
    pub(crate) screen: Screen,
    pub(crate) log: Arc<RefusalLog>,
    /// New INVITEs per source (src/ua/flood.rs), shared with the stream
    /// transports' check in `handle_transaction`.
    pub(crate) invites: Arc<super::flood::SourceLimiter>,
    /// Other requests outside a dialog per source, shared likewise.
    pub(crate) others: Arc<super::flood::SourceLimiter>,
    /// Told at every read: the first says rsipstack's endpoint is serving.
    pub(crate) serving: Arc<tokio::sync::Notify>,
}

/// Retry-After (seconds) in the 503 to a source over its INVITE rate.
pub(crate) const FLOOD_RETRY_AFTER: u32 = 5;

/// What a datagram is, for the flood limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// An INVITE whose To has no tag: a new call.
    NewCall,
    /// Another request outside a dialog (OPTIONS, REGISTER, SUBSCRIBE, ...).
    /// CANCEL and ACK belong to an INVITE transaction and are never limited.
    OutOfDialog,
    /// A response, or a request inside a dialog.
    Other,
}

fn arrival(datagram: &[u8]) -> Arrival {
    let Some(line) = request_line(datagram) else { return Arrival::Other };
    let method = line.method.to_ascii_uppercase();
    if matches!(method.as_str(), "ACK" | "CANCEL") {
        return Arrival::Other;
    }
    let text = String::from_utf8_lossy(datagram);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let in_dialog = head.lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            matches!(name.trim().to_ascii_lowercase().as_str(), "to" | "t")
                && value.to_ascii_lowercase().contains(";tag=")
        })
    });
    match (in_dialog, method.as_str()) {
        (true, _) => Arrival::Other,
        (false, "INVITE") => Arrival::NewCall,
        (false, _) => Arrival::OutOfDialog,
    }
}

/// Whether `datagram` starts a new call: an INVITE whose To has no tag.
#[cfg(test)]
fn is_new_invite(datagram: &[u8]) -> bool {
    arrival(datagram) == Arrival::NewCall
}

/// The 503 for an INVITE over its source's rate, with Retry-After.
fn flood_reply(datagram: &[u8], agent: &str) -> Option<Vec<u8>> {
    let refusal = Refusal::new(
        503,
        "Service Unavailable",
        "too many new calls from this address; retry later",
    );
    let reply = String::from_utf8(reply_from_raw(datagram, &refusal, agent)?).ok()?;
    let retry = format!("Retry-After: {FLOOD_RETRY_AFTER}\r\nContent-Length: 0\r\n");
    Some(reply.replacen("Content-Length: 0\r\n", &retry, 1).into_bytes())
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl ScreenedSocket {
    async fn recv_screened(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = self.socket.recv_from(buf).await?;
            // tokio truncates a datagram larger than the buffer to its length.
            let truncated = len == buf.len();
            match self.screen.check(&buf[..len], truncated) {
                Verdict::Pass => match arrival(&buf[..len]) {
                    Arrival::NewCall if !self.invites.allow(from.ip(), Instant::now()) => {
                        if let Some(bytes) = flood_reply(&buf[..len], &self.screen.agent)
                            && let Err(e) = self.socket.send_to(&bytes, from).await
                        {
                            tracing::debug!(%from, error = %e, "flood reply failed");
                        }
                    }
                    Arrival::OutOfDialog if !self.others.allow(from.ip(), Instant::now()) => {}
                    _ => return Ok((len, from)),
                },
                Verdict::Refuse { refusal, method, response } => {
                    self.log.log(Some(from), &method, &refusal);
                    if let Some(bytes) = response
                        && let Err(e) = self.socket.send_to(&bytes, from).await
                    {
                        tracing::debug!(%from, error = %e, "screen reply failed");
                    }
                }
                Verdict::Ignore => tracing::debug!(%from, len, "dropped an unusable datagram"),
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
        self.serving.notify_one();
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

    fn screen(max_size: usize) -> Screen {
        Screen { max_size, agent: "192.0.2.1:5060".into() }
    }

    fn check(msg: &str) -> Verdict {
        screen(4096).check(msg.as_bytes(), false)
    }

    /// The response text, or the verdict when there is none.
    fn text(v: Verdict) -> String {
        match v {
            Verdict::Refuse { response: Some(b), .. } => String::from_utf8(b).unwrap_or_default(),
            other => format!("{other:?}"),
        }
    }

    fn invite(headers: &str, body: &str) -> String {
        format!("INVITE sip:b@127.0.0.1 SIP/2.0\r\n{headers}Max-Forwards: 70\r\n{body}")
    }

    #[test]
    fn well_formed_request_passes() {
        assert_eq!(check(&invite(HEADERS, "Content-Length: 0\r\n\r\n")), Verdict::Pass);
        assert_eq!(check("\r\n\r\n"), Verdict::Pass);
        // UDP allows no Content-Length (the body is the rest of the datagram) and a
        // Content-Length smaller than the body (the rest is ignored).
        assert_eq!(check(&invite(HEADERS, "\r\nv=0\r\n")), Verdict::Pass);
        assert_eq!(check(&invite(HEADERS, "Content-Length: 3\r\n\r\nv=0\r\n")), Verdict::Pass);
        assert_eq!(check(&invite(HEADERS, "l: 5\r\n\r\nv=0\r\n")), Verdict::Pass);
    }

    #[test]
    fn unknown_method_gets_501_with_allow_and_warning() {
        let msg = format!("FOO sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        let reply = text(check(&msg));
        assert!(reply.starts_with("SIP/2.0 501 Not Implemented\r\n"), "{reply}");
        assert!(reply.contains("Allow: INVITE"), "{reply}");
        assert!(reply.contains("Call-ID: x@y\r\n"), "{reply}");
        assert!(reply.contains("To: <sip:b@127.0.0.1>;tag="), "{reply}");
        assert!(
            reply.contains("Warning: 399 192.0.2.1:5060 \"method FOO is not implemented\"\r\n"),
            "{reply}"
        );
    }

    #[test]
    fn other_sip_version_gets_505() {
        let msg = format!("OPTIONS sip:b@127.0.0.1 SIP/3.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        let reply = text(check(&msg));
        assert!(reply.starts_with("SIP/2.0 505 Version Not Supported\r\n"), "{reply}");
        assert!(reply.contains("SIP version SIP/3.0 is not supported"), "{reply}");
    }

    #[test]
    fn oversized_request_gets_513_and_garbage_is_ignored() {
        let msg = invite(HEADERS, "Content-Length: 0\r\n\r\n");
        let reply = text(screen(64).check(msg.as_bytes(), false));
        assert!(reply.starts_with("SIP/2.0 513 Message Too Large\r\n"), "{reply}");
        assert!(reply.contains("at most 64 are accepted"), "{reply}");
        let reply = text(screen(4096).check(msg.as_bytes(), true));
        assert!(reply.contains("the message has more than"), "{reply}");
        assert_eq!(check("\x00\x01garbage"), Verdict::Ignore);
        assert_eq!(check("SIP/2.0 200 OK\r\nbroken"), Verdict::Ignore);
    }

    #[test]
    fn missing_headers_are_named() {
        for (header, reason) in [
            ("From: <sip:a@127.0.0.1>;tag=1\r\n", "Missing From"),
            ("To: <sip:b@127.0.0.1>\r\n", "Missing To"),
            ("Call-ID: x@y\r\n", "Missing Call-ID"),
            ("CSeq: 1 INVITE\r\n", "Missing CSeq"),
        ] {
            let msg = invite(&HEADERS.replace(header, ""), "Content-Length: 0\r\n\r\n");
            let reply = text(check(&msg));
            assert!(reply.starts_with(&format!("SIP/2.0 400 {reason}\r\n")), "{reply}");
            assert!(reply.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n"));
        }
    }

    #[test]
    fn request_without_via_is_refused_unanswered() {
        let msg = invite(
            &HEADERS.replace("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n", ""),
            "\r\n",
        );
        match check(&msg) {
            Verdict::Refuse { refusal, method, response: None } => {
                assert_eq!(
                    (refusal.status, refusal.reason, method.as_str()),
                    (400, "Missing Via", "INVITE")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cseq_problems_get_400() {
        let msg = format!("BYE sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        let reply = text(check(&msg));
        assert!(reply.starts_with("SIP/2.0 400 Method Mismatch\r\n"), "{reply}");
        assert!(reply.contains("CSeq method INVITE does not match the request method BYE"));
        let msg = invite(&HEADERS.replace("CSeq: 1 INVITE", "CSeq: abc INVITE"), "\r\n");
        assert!(text(check(&msg)).starts_with("SIP/2.0 400 Bad Command Sequence\r\n"));
    }

    #[test]
    fn content_length_larger_than_body_gets_400() {
        let msg =
            invite(HEADERS, "Content-Type: application/sdp\r\nContent-Length: 50\r\n\r\nv=0\r\n");
        let reply = text(check(&msg));
        assert!(reply.starts_with("SIP/2.0 400 Body Shorter Than Content Length\r\n"), "{reply}");
        assert!(reply.contains("\"Content-Length is 50 but the body has 5 bytes"), "{reply}");
        let compact = invite(HEADERS, "l: 6\r\n\r\nv=0\r\n");
        assert!(text(check(&compact)).starts_with("SIP/2.0 400 Body Shorter"));
        for bad in
            ["Content-Length: ten\r\n", "Content-Length: -1\r\n", "Content-Length: 1\r\nl: 0\r\n"]
        {
            let reply = text(check(&invite(HEADERS, &format!("{bad}\r\n"))));
            assert!(reply.starts_with("SIP/2.0 400 Bad Body Length\r\n"), "{bad}: {reply}");
        }
        // A response cut short is discarded (RFC 3261 section 18.3).
        let response = format!("SIP/2.0 200 OK\r\n{HEADERS}Content-Length: 50\r\n\r\nv=0\r\n");
        assert_eq!(check(&response), Verdict::Ignore);
        let response = format!("SIP/2.0 200 OK\r\n{HEADERS}Content-Length: 5\r\n\r\nv=0\r\n");
        assert_eq!(check(&response), Verdict::Pass);
    }

    #[test]
    fn unreadable_requests_say_why() {
        let no_end = format!("INVITE sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}");
        assert!(text(check(&no_end)).starts_with("SIP/2.0 400 Missing Empty Line\r\n"));
        let bad_uri = invite(HEADERS, "\r\n").replace("sip:b@127.0.0.1 ", "sip:b@127.0.0.1:99999 ");
        let reply = text(check(&bad_uri));
        assert!(reply.starts_with("SIP/2.0 400 Bad Request-URI\r\n"), "{reply}");
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
        let screen = screen(4096);
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
            let _ = screen.check(&msg, false);
        }
    }

    #[test]
    fn ack_is_never_answered() {
        let msg = format!("ACK sip:b@127.0.0.1 SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        assert!(matches!(
            screen(4096).check(msg.as_bytes(), true),
            Verdict::Refuse { response: None, .. }
        ));
    }

    #[test]
    fn only_new_invites_count_and_their_503_says_when_to_retry() {
        let invite =
            format!("INVITE sip:4001@127.0.0.1 SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        assert!(is_new_invite(invite.as_bytes()));
        let reinvite = invite.replace("To: <sip:b@127.0.0.1>", "To: <sip:b@127.0.0.1>;tag=9");
        assert!(!is_new_invite(reinvite.as_bytes()), "in-dialog re-INVITEs are not counted");
        let bye = invite.replacen("INVITE sip", "BYE sip", 1);
        assert!(!is_new_invite(bye.as_bytes()));
        // Outside a dialog: OPTIONS, REGISTER; never CANCEL or ACK (they
        // belong to an INVITE), never a request with a To tag, never a response.
        for (method, expected) in [
            ("OPTIONS", Arrival::OutOfDialog),
            ("REGISTER", Arrival::OutOfDialog),
            ("SUBSCRIBE", Arrival::OutOfDialog),
            ("CANCEL", Arrival::Other),
            ("ACK", Arrival::Other),
        ] {
            let request = invite.replacen("INVITE sip", &format!("{method} sip"), 1);
            assert_eq!(arrival(request.as_bytes()), expected, "{method}");
        }
        let in_dialog = reinvite.replacen("INVITE sip", "OPTIONS sip", 1);
        assert_eq!(arrival(in_dialog.as_bytes()), Arrival::Other);
        assert_eq!(arrival(b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n"), Arrival::Other);
        let reply =
            String::from_utf8(flood_reply(invite.as_bytes(), "127.0.0.1:5060").expect("reply"))
                .expect("text");
        assert!(reply.starts_with("SIP/2.0 503 Service Unavailable\r\n"), "{reply}");
        assert!(reply.contains("\r\nRetry-After: 5\r\n"), "{reply}");
        assert!(reply.contains("\r\nCall-ID: x@y\r\n") && reply.contains(";tag="), "{reply}");
    }
}
