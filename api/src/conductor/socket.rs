//! The `socketXML` port a Call advertises (`--events-listen`): the Flash
//! XMLSocket convention of the document's era. Every document, both ways, ends
//! with a zero byte.
//!
//! - The client's first document is `<subscribe callUID="..."
//!   securityToken="..."/>`. The server answers
//!   `<subscribed><callUID>...</callUID></subscribed>` and then sends each of
//!   the call's events as `<event>...</event>`.
//! - `<policy-file-request/>` gets a cross-domain policy allowing this port,
//!   and the connection closes (what Flash players ask first).
//! - Anything else, or a wrong token, gets
//!   `<error><code>..</code><message>..</message></error>` (the codes of the
//!   envelope: -1 the token, -2 a parameter) and the connection closes.
//!
//! A subscriber that falls behind or stops reading is dropped as on the other
//! transports ([`super::events`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use quick_xml::events::Event as XmlEvent;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::events::{End, Hub, SEND_TIMEOUT};
use crate::access::AccessError;
use crate::http::envelope::{Format, escape};
use crate::http::params::Params;
use crate::ops::Ops;

/// The longest first document accepted.
const MAX_REQUEST: usize = 4096;
/// How long a client may take to send its first document.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are refused with an error document.
pub const MAX_CONNECTIONS: usize = 2000;

/// What the client's first document asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Policy,
    /// The subscription's attributes (callUID, securityToken, type).
    Subscribe(Vec<(String, String)>),
}

/// Reads the client's first document (without its zero byte).
pub fn parse_request(text: &str) -> Result<Request, String> {
    let mut reader = quick_xml::Reader::from_str(text.trim());
    loop {
        match reader.read_event() {
            Ok(XmlEvent::Decl(_) | XmlEvent::Comment(_) | XmlEvent::Text(_)) => continue,
            Ok(XmlEvent::Empty(e) | XmlEvent::Start(e)) => {
                return match e.name().as_ref() {
                    "policy-file-request" => Ok(Request::Policy),
                    "subscribe" => {
                        let mut attributes = Vec::new();
                        for attribute in e.attributes() {
                            let attribute = attribute.map_err(|e| format!("bad attribute: {e}"))?;
                            let key = attribute.key.as_ref().to_owned();
                            let value = attribute
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .map_err(|e| format!("bad attribute value: {e}"))?
                                .into_owned();
                            attributes.push((key, value));
                        }
                        Ok(Request::Subscribe(attributes))
                    }
                    other => Err(format!(
                        "expected <subscribe callUID=\"..\" securityToken=\"..\"/>, not <{}>",
                        other
                    )),
                };
            }
            Ok(XmlEvent::Eof) => return Err("empty request".into()),
            Ok(_) => return Err("expected <subscribe callUID=\"..\" securityToken=\"..\"/>".into()),
            Err(e) => return Err(format!("not XML: {e}")),
        }
    }
}

/// Serves the XMLSocket port until `stop` turns true; with `tls`, every
/// connection is TLS (its handshake counts against the 10 s the first
/// document may take).
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ops: Ops,
    hub: Hub,
    mut stop: watch::Receiver<bool>,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let open = Arc::new(AtomicUsize::new(0));
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "events socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        let count = open.fetch_add(1, Ordering::Relaxed) + 1;
        let (ops, hub, open, tls) = (ops.clone(), hub.clone(), open.clone(), tls.clone());
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let served = match tls {
                // Over the limit a TLS client is closed without a document:
                // no handshake is spent on it.
                Some(_) if count > MAX_CONNECTIONS => {
                    tracing::warn!(%peer, "events socket: too many connections; closed");
                    Ok(())
                }
                Some(acceptor) => {
                    match tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, &ops, &hub, peer, port, started).await,
                        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                        Err(_) => Err("no TLS handshake within 10 s".to_owned()),
                    }
                }
                None if count > MAX_CONNECTIONS => {
                    tracing::warn!(%peer, "events socket: too many connections; refused");
                    let _ = refuse(stream, -1, "too many connections; retry later").await;
                    Ok(())
                }
                None => connection(stream, &ops, &hub, peer, port, started).await,
            };
            if let Err(reason) = served {
                tracing::info!(%peer, reason, "events socket: connection ended");
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn error_document(code: i64, message: &str) -> String {
    format!("<error><code>{code}</code><message>{}</message></error>\0", escape(message))
}

async fn refuse<S: AsyncWrite + Unpin>(
    mut stream: S,
    code: i64,
    message: &str,
) -> std::io::Result<()> {
    let document = error_document(code, message);
    tokio::time::timeout(SEND_TIMEOUT, stream.write_all(document.as_bytes())).await??;
    stream.shutdown().await
}

/// One client: its request, then (subscribed) the call's events. The first
/// document must have come within [`REQUEST_TIMEOUT`] of `started`.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    ops: &Ops,
    hub: &Hub,
    peer: std::net::SocketAddr,
    port: u16,
    started: tokio::time::Instant,
) -> Result<(), String> {
    let mut request = Vec::new();
    let read = tokio::time::timeout_at(started + REQUEST_TIMEOUT, async {
        let mut byte = [0_u8; 512];
        loop {
            let n = stream.read(&mut byte).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(false);
            }
            request.extend_from_slice(&byte[..n]);
            if request.contains(&0) || request.len() > MAX_REQUEST {
                return Ok(true);
            }
        }
    })
    .await;
    match read {
        Err(_) => {
            let _ = refuse(stream, -2, "no request within 10 s").await;
            return Err("no request".into());
        }
        Ok(Err(e)) => return Err(format!("read failed: {e}")),
        Ok(Ok(false)) => return Ok(()),
        Ok(Ok(true)) => {}
    }
    let end = request.iter().position(|b| *b == 0).unwrap_or(request.len());
    if end > MAX_REQUEST {
        let _ = refuse(stream, -2, "request too long").await;
        return Err("request too long".into());
    }
    let text = String::from_utf8_lossy(&request[..end]).into_owned();
    let attributes = match parse_request(&text) {
        Ok(Request::Policy) => {
            let policy = format!(
                "<?xml version=\"1.0\"?><cross-domain-policy>\
                 <allow-access-from domain=\"*\" to-ports=\"{port}\"/></cross-domain-policy>\0"
            );
            let _ = stream.write_all(policy.as_bytes()).await;
            let _ = stream.shutdown().await;
            return Ok(());
        }
        Ok(Request::Subscribe(attributes)) => attributes,
        Err(reason) => {
            let _ = refuse(stream, -2, &reason).await;
            return Err(reason);
        }
    };
    // Events here are always XML; a `type` attribute is ignored.
    let pairs = attributes.iter().filter(|(k, _)| k != "type");
    let params = Params::from_pairs(pairs.map(|(k, v)| (k.as_str(), v.as_str())));
    let (mut subscription, _) =
        match super::events::open(ops, hub, crate::http::Peer(Some(peer.ip())), &params).await {
            Ok(opened) => opened,
            Err(AccessError { code, message }) => {
                let _ = refuse(stream, code, &message).await;
                return Err(format!("refused: {message}"));
            }
        };
    let call = subscription.call_uid.clone();
    let ack = format!("<subscribed><callUID>{}</callUID></subscribed>\0", escape(&call));
    send(&mut stream, ack.as_bytes()).await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut scratch = [0_u8; 256];
    loop {
        tokio::select! {
            next = subscription.next() => match next {
                Ok(event) => {
                    let mut bytes = Vec::with_capacity(event.xml.len() + 1);
                    bytes.extend_from_slice(event.text(Format::Xml).as_bytes());
                    bytes.push(0);
                    match tokio::time::timeout(SEND_TIMEOUT, writer.write_all(&bytes)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(format!("send failed: {e}")),
                        Err(_) => {
                            hub.count_dropped();
                            return Err(format!("did not accept an event within {SEND_TIMEOUT:?}"));
                        }
                    }
                }
                Err(End::Closed) => {
                    let _ = writer.shutdown().await;
                    return Ok(());
                }
                Err(End::Lagged(n)) => {
                    hub.count_dropped();
                    let document =
                        error_document(-1, "fell behind; reconnect and resync with getCallData");
                    let _ = tokio::time::timeout(SEND_TIMEOUT, writer.write_all(document.as_bytes())).await;
                    return Err(format!("fell {n} events behind"));
                }
            },
            // The client says nothing more; its closing ends the subscription.
            read = reader.read(&mut scratch) => match read {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(format!("read failed: {e}")),
            },
        }
    }
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(SEND_TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("send failed: {e}")),
        Err(_) => Err("send timed out".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_from_their_xml() {
        assert_eq!(parse_request("<policy-file-request/>"), Ok(Request::Policy));
        assert_eq!(
            parse_request(
                "<?xml version=\"1.0\"?>\n<subscribe callUID=\"c&amp;1\" securityToken='t'/>"
            ),
            Ok(Request::Subscribe(vec![
                ("callUID".into(), "c&1".into()),
                ("securityToken".into(), "t".into())
            ]))
        );
        for bad in
            ["", "hello", "<other/>", "<subscribe callUID=\"x/>", "<subscribe a=\"&bogus;\"/>"]
        {
            assert!(parse_request(bad).is_err(), "{bad:?}");
        }
    }
}
