//! Reading and writing the headers the user agent cares about (Require/Supported,
//! session timers, capabilities), over rsipstack's message types.

use rsipstack::sip::{Header, Request, Response};

use crate::session_timer::{self, SessionExpires, TimerRequest, TimerResponse};

use super::{ACCEPT, ALLOW, SUPPORTED};

/// Every value of the headers called `name` (or its compact form), split at commas.
pub(crate) fn values<'a>(headers: impl IntoIterator<Item = &'a Header>, name: &str) -> Vec<String> {
    let compact = match name.to_ascii_lowercase().as_str() {
        "supported" => Some("k"),
        "session-expires" => Some("x"),
        "content-type" => Some("c"),
        _ => None,
    };
    headers
        .into_iter()
        .filter(|h| {
            let n = h.name();
            n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
        })
        .flat_map(|h| h.value().split(',').map(|v| v.trim().to_owned()).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The first value of a header, whole (no comma split).
pub(crate) fn first<'a>(
    headers: impl IntoIterator<Item = &'a Header>,
    name: &str,
) -> Option<String> {
    headers
        .into_iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value().trim().to_owned())
}

/// The option tags in `Require` that we do not support (RFC 3261 section 8.2.2.3).
pub(crate) fn unsupported_requires(req: &Request) -> Vec<String> {
    values(req.headers.iter(), "Require")
        .into_iter()
        .filter(|tag| !SUPPORTED.split(',').any(|s| s.trim().eq_ignore_ascii_case(tag)))
        .collect()
}

/// The session-timer headers of a request. A malformed Session-Expires or Min-SE is
/// an error (the caller answers 400).
pub(crate) fn timer_request(req: &Request) -> Result<TimerRequest, session_timer::TimerError> {
    let supports_timer = values(req.headers.iter(), "Supported")
        .iter()
        .chain(values(req.headers.iter(), "Require").iter())
        .any(|t| t.eq_ignore_ascii_case("timer"));
    let session_expires = match first(req.headers.iter(), "Session-Expires")
        .or_else(|| first(req.headers.iter(), "x"))
    {
        Some(v) => Some(SessionExpires::parse(&v)?),
        None => None,
    };
    let min_se = match first(req.headers.iter(), "Min-SE") {
        Some(v) => Some(session_timer::parse_min_se(&v)?),
        None => None,
    };
    Ok(TimerRequest { supports_timer, session_expires, min_se })
}

/// The Session-Expires of a 2xx, if present and well formed.
pub(crate) fn response_session_expires(resp: &Response) -> Option<SessionExpires> {
    first(resp.headers.iter(), "Session-Expires")
        .or_else(|| first(resp.headers.iter(), "x"))
        .and_then(|v| SessionExpires::parse(&v).ok())
}

/// Headers for a UAS 2xx that carries a session-timer agreement.
pub(crate) fn timer_response_headers(response: Option<&TimerResponse>) -> Vec<Header> {
    let Some(response) = response else {
        return Vec::new();
    };
    let mut headers = vec![Header::SessionExpires(response.session_expires.to_string().into())];
    if response.require_timer {
        headers.push(Header::Require("timer".into()));
    }
    headers
}

/// Headers for a request we send that asks for session timers (RFC 4028 section 7).
pub(crate) fn timer_request_headers(request: &TimerRequest) -> Vec<Header> {
    let mut headers = Vec::new();
    if let Some(se) = request.session_expires {
        headers.push(Header::SessionExpires(se.to_string().into()));
    }
    if let Some(min_se) = request.min_se {
        headers.push(Header::MinSE(min_se.to_string().into()));
    }
    headers
}

/// Allow, Accept and Supported: what OPTIONS answers and what our 2xx advertise.
pub(crate) fn capabilities() -> Vec<Header> {
    vec![
        Header::Allow(ALLOW.into()),
        Header::Accept(ACCEPT.into()),
        Header::Supported(SUPPORTED.into()),
    ]
}

/// `Content-Type: application/sdp`.
pub(crate) fn content_type_sdp() -> Header {
    Header::ContentType("application/sdp".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_timer::Refresher;
    use rsipstack::sip::SipMessage;

    fn request(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c@d\r\n\
             CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match SipMessage::try_from(text.as_bytes()) {
            Ok(SipMessage::Request(req)) => req,
            other => panic!("test request does not parse: {other:?}"),
        }
    }

    #[test]
    fn require_lists_what_we_lack() {
        assert!(unsupported_requires(&request("")).is_empty());
        assert!(unsupported_requires(&request("Require: timer\r\n")).is_empty());
        assert_eq!(unsupported_requires(&request("Require: timer, 100rel\r\n")), ["100rel"]);
    }

    #[test]
    fn timer_headers_are_read_in_full_and_compact_form() {
        let t = timer_request(&request(
            "Supported: timer\r\nSession-Expires: 600;refresher=uas\r\nMin-SE: 120\r\n",
        ));
        let t = t.unwrap_or_default();
        assert!(t.supports_timer);
        assert_eq!(
            t.session_expires.map(|s| (s.interval, s.refresher)),
            Some((600, Some(Refresher::Uas)))
        );
        assert_eq!(t.min_se, Some(120));
        let compact = timer_request(&request("k: timer\r\nx: 300\r\n")).unwrap_or_default();
        assert!(compact.supports_timer);
        assert_eq!(compact.session_expires.map(|s| s.interval), Some(300));
        assert!(timer_request(&request("Session-Expires: soon\r\n")).is_err());
        assert!(!timer_request(&request("")).unwrap_or_default().supports_timer);
    }
}
