//! The SIP over TCP and TLS listeners: tutti accepts stream connections itself
//! and hands each one to rsipstack, which reads and writes it from then on.
//!
//! rsipstack's own listeners accept whatever comes: a peer may open as many
//! connections as the file-descriptor limit allows, and its TLS listener waits
//! for a handshake without a deadline, so a client that connects and says
//! nothing holds a task and a descriptor until TCP gives up. Here:
//!
//! - each source address may hold [`StreamLimits::per_source`] connections at
//!   once (counted from accept until rsipstack retires the connection); one
//!   more is closed at once, and the log says so (rate-limited);
//! - each source address may open [`StreamLimits::rate`] connections a second
//!   (in bursts of twice that); one more is closed as it is accepted, before
//!   any TLS handshake, so a flood of handshakes from one address costs
//!   little;
//! - a TLS handshake must finish within [`StreamLimits::handshake`];
//! - a connection that then sends nothing is closed by rsipstack's idle
//!   timeout ([`IDLE_TIMEOUT`]).
//!
//! rsipstack still has to know the listeners' addresses (the Via and Contact of
//! requests sent over TCP or TLS name them), so they are registered with its
//! transport layer as well, but only after the endpoint has started the
//! listeners it had: `serve_listens` serves the list it held at start, and
//! registering later keeps rsipstack from binding these ports itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsipstack::platform::CancellationToken;
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::tls::TlsConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::flood::SourceLimiter;
use super::refusal::LogBudget;

/// How long a connection may stay silent before rsipstack closes it. Phones
/// over TCP send a CRLF keep-alive (RFC 5626) every 30 s or so, or re-register.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);

/// Default for [`StreamLimits::per_source`]: a SIP trunk or a PBX keeps one or
/// a few connections; a test tool opening one per call (SIPp's `-t tn`) fits
/// well under this with the call limits it is given.
pub const DEFAULT_PER_SOURCE: u32 = 64;

/// Default for [`StreamLimits::rate`]: one connection per call at the default
/// INVITE rate (a test tool opening a connection per call, as SIPp's `-t tn`
/// does, stays under it at the call rates the INVITE limit lets through).
pub const DEFAULT_RATE: u32 = 50;

/// Default for [`StreamLimits::handshake`]: the same as the HTTPS listener's.
pub const DEFAULT_HANDSHAKE: Duration = Duration::from_secs(10);

/// Wait after a failed `accept` (out of descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one source may hold on the stream listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// TCP and TLS connections one source address may hold at once (the two
    /// transports counted together); 0: no limit.
    pub per_source: u32,
    /// New TCP and TLS connections one source address may open a second, in
    /// bursts of twice that; 0: no limit.
    pub rate: u32,
    /// How long a TLS client has to finish its handshake.
    pub handshake: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            per_source: DEFAULT_PER_SOURCE,
            rate: DEFAULT_RATE,
            handshake: DEFAULT_HANDSHAKE,
        }
    }
}

/// The connections each source address holds on a listener (or several that
/// share a limit), each counted from accept until its [`Slot`] is dropped,
/// and how fast each address opens them. The HTTP listener uses it too.
#[derive(Debug)]
pub struct SourceCounts {
    limit: u32,
    held: Mutex<HashMap<IpAddr, u32>>,
    log: Mutex<LogBudget>,
    /// New connections a second per address (a token bucket each).
    opened: SourceLimiter,
}

/// One connection's place in its source's count, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<SourceCounts>,
    source: IpAddr,
}

impl SourceCounts {
    /// At most `limit` connections held and `rate` opened a second (bursts
    /// of twice that) per source address; 0: no limit.
    pub fn new(limit: u32, rate: u32) -> Arc<Self> {
        Arc::new(SourceCounts {
            limit,
            held: Mutex::new(HashMap::new()),
            log: Mutex::new(LogBudget::default()),
            opened: SourceLimiter::new(
                rate,
                "connection flood: new connections from this address closed as accepted",
            ),
        })
    }

    /// A slot for one more connection from `peer` to `listener` (`sip-tcp`,
    /// `http`, ...), or `None`, logged, when its address holds its limit
    /// already or opens connections faster than its rate.
    pub fn take(self: &Arc<Self>, peer: SocketAddr, listener: &str) -> Option<Slot> {
        self.take_at(peer, listener, Instant::now())
    }

    fn take_at(self: &Arc<Self>, peer: SocketAddr, listener: &str, now: Instant) -> Option<Slot> {
        let source = peer.ip();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.get(&source).copied().unwrap_or(0);
        if self.limit > 0 && count >= self.limit {
            drop(held);
            self.refused(peer, listener);
            return None;
        }
        // Logged by the limiter, once a second per address.
        if !self.opened.allow(source, now) {
            return None;
        }
        *held.entry(source).or_insert(0) += 1;
        Some(Slot { counts: self.clone(), source })
    }

    /// Connections `source` holds now.
    #[cfg(test)]
    fn held(&self, source: IpAddr) -> u32 {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).get(&source).copied().unwrap_or(0)
    }

    /// Logs (at most 20 lines a minute) that `peer` was refused a connection
    /// to `listener` for holding its limit.
    fn refused(&self, peer: SocketAddr, listener: &str) {
        let admitted = self.log.lock().unwrap_or_else(|e| e.into_inner()).admit(Instant::now());
        if let Some(suppressed) = admitted {
            tracing::info!(
                %peer,
                listener,
                limit = self.limit,
                suppressed = (suppressed > 0).then_some(suppressed),
                "connection refused: too many connections from this address"
            );
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.source);
            }
        }
    }
}

/// What an accept loop needs besides its listener.
#[derive(Clone)]
pub(crate) struct Acceptor {
    /// The listener's address as rsipstack names it (the Via of what it sends
    /// over these connections).
    pub(crate) local: SipAddr,
    pub(crate) counts: Arc<SourceCounts>,
    pub(crate) limits: StreamLimits,
    pub(crate) cancel: CancellationToken,
    /// `Some` for the TLS listener.
    pub(crate) tls: Option<TlsAcceptor>,
}

/// Accepts connections on `listener` until `acceptor.cancel` fires, handing each
/// to `endpoint`'s transport layer once it is admitted (and, for TLS, its handshake done).
pub(crate) async fn serve(listener: TcpListener, acceptor: Acceptor, endpoint: Arc<EndpointInner>) {
    let name = if acceptor.tls.is_some() { "sip-tls" } else { "sip-tcp" };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, transport = name, "SIP: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = acceptor.cancel.cancelled() => break,
        };
        let Some(slot) = acceptor.counts.take(peer, name) else {
            drop(stream);
            continue;
        };
        let (acceptor, endpoint) = (acceptor.clone(), endpoint.clone());
        tokio::spawn(async move {
            admit(stream, peer, slot, &acceptor, &endpoint.transport_layer).await;
        });
    }
}

/// Turns an accepted stream into an rsipstack connection and keeps `slot` until
/// rsipstack retires it.
async fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    acceptor: &Acceptor,
    transport: &TransportLayer,
) {
    let token = acceptor.cancel.child_token();
    let connection = match &acceptor.tls {
        None => {
            match TcpConnection::from_stream(stream, acceptor.local.clone(), Some(token.clone())) {
                Ok(connection) => SipConnection::Tcp(connection),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "SIP: TCP connection not usable");
                    return;
                }
            }
        }
        Some(tls) => {
            let stream = match tokio::time::timeout(acceptor.limits.handshake, tls.accept(stream))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "SIP: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, timeout = ?acceptor.limits.handshake, "SIP: TLS handshake timed out; connection closed");
                    return;
                }
            };
            let remote = SipAddr {
                r#type: Some(rsipstack::sip::transport::Transport::Tls),
                addr: peer.into(),
            };
            match TlsConnection::from_server_stream(
                stream,
                acceptor.local.clone(),
                remote,
                Some(token.clone()),
            )
            .await
            {
                Ok(connection) => SipConnection::Tls(connection),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "SIP: TLS connection not usable");
                    return;
                }
            }
        }
    };
    tracing::debug!(%peer, local = %acceptor.local, "SIP: stream connection accepted");
    transport.add_connection(connection);
    // rsipstack cancels the connection's token when it retires it (the peer
    // closed, an error, the idle timeout) and the parent's at shutdown.
    token.cancelled().await;
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 5060))
    }

    #[test]
    fn a_source_holds_at_most_its_limit_and_gets_slots_back() {
        let counts = SourceCounts::new(2, 0);
        let (a, b) = (peer(1), peer(2));
        let first = counts.take(a, "t").expect("first");
        let second = counts.take(a, "t").expect("second");
        assert!(counts.take(a, "t").is_none(), "a third from the same source is refused");
        let other = counts.take(b, "t").expect("another source is not affected");
        drop(first);
        assert_eq!(counts.held(a.ip()), 1);
        let again = counts.take(a, "t").expect("a slot given back can be taken again");
        drop((second, again, other));
        assert_eq!(counts.held(a.ip()), 0);
        assert!(counts.held.lock().unwrap().is_empty(), "no entry is kept for a source that left");
    }

    #[test]
    fn zero_means_no_limit() {
        let counts = SourceCounts::new(0, 0);
        let a = peer(1);
        let slots: Vec<_> = (0..1000).map(|_| counts.take(a, "t").expect("unlimited")).collect();
        assert_eq!(counts.held(a.ip()), 1000);
        drop(slots);
        assert_eq!(counts.held(a.ip()), 0);
    }

    #[test]
    fn a_source_opens_at_most_its_rate_and_a_refusal_holds_nothing() {
        let counts = SourceCounts::new(0, 5);
        let (a, b) = (peer(1), peer(2));
        let t0 = Instant::now();
        // Closed at once, as a flood's connections are: a burst of twice the rate.
        let opened = (0..50).filter_map(|_| counts.take_at(a, "t", t0)).count();
        assert_eq!(opened, 10);
        assert_eq!(counts.held(a.ip()), 0, "refused connections hold no place");
        assert!(counts.take_at(b, "t", t0).is_some(), "another source has its own rate");
        let t1 = t0 + Duration::from_secs(1);
        let opened = (0..50).filter_map(|_| counts.take_at(a, "t", t1)).count();
        assert_eq!(opened, 5, "then the rate");
    }

    #[test]
    fn a_source_at_its_limit_uses_up_none_of_its_rate() {
        let counts = SourceCounts::new(1, 1);
        let a = peer(1);
        let t0 = Instant::now();
        let held = counts.take_at(a, "t", t0).expect("first");
        assert!((0..10).all(|_| counts.take_at(a, "t", t0).is_none()), "at the limit");
        drop(held);
        assert!(counts.take_at(a, "t", t0).is_some(), "the burst's second token is still there");
    }
}
