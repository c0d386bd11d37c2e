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

use super::refusal::LogBudget;

/// How long a connection may stay silent before rsipstack closes it. Phones
/// over TCP send a CRLF keep-alive (RFC 5626) every 30 s or so, or re-register.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);

/// Default for [`StreamLimits::per_source`]: a SIP trunk or a PBX keeps one or
/// a few connections; a test tool opening one per call (SIPp's `-t tn`) fits
/// well under this with the call limits it is given.
pub const DEFAULT_PER_SOURCE: u32 = 64;

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
    /// How long a TLS client has to finish its handshake.
    pub handshake: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits { per_source: DEFAULT_PER_SOURCE, handshake: DEFAULT_HANDSHAKE }
    }
}

/// The connections each source address holds on a listener (or several that
/// share a limit), each counted from accept until its [`Slot`] is dropped.
/// The HTTP listener uses it too.
#[derive(Debug)]
pub struct SourceCounts {
    limit: u32,
    held: Mutex<HashMap<IpAddr, u32>>,
    log: Mutex<LogBudget>,
}

/// One connection's place in its source's count, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<SourceCounts>,
    source: IpAddr,
}

impl SourceCounts {
    /// At most `limit` connections per source address; 0: no limit.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(SourceCounts {
            limit,
            held: Mutex::new(HashMap::new()),
            log: Mutex::new(LogBudget::default()),
        })
    }

    /// A slot for one more connection from `source`, or `None` at its limit.
    pub fn take(self: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(source).or_insert(0);
        if self.limit > 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot { counts: self.clone(), source })
    }

    /// Connections `source` holds now.
    #[cfg(test)]
    fn held(&self, source: IpAddr) -> u32 {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).get(&source).copied().unwrap_or(0)
    }

    /// Logs (at most 20 lines a minute) that `peer` was refused a connection
    /// to `listener` (`sip-tcp`, `http`, ...).
    pub fn refused(&self, peer: SocketAddr, listener: &str) {
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
        let Some(slot) = acceptor.counts.take(peer.ip()) else {
            acceptor.counts.refused(peer, name);
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

    #[test]
    fn a_source_holds_at_most_its_limit_and_gets_slots_back() {
        let counts = SourceCounts::new(2);
        let a = IpAddr::from([192, 0, 2, 1]);
        let b = IpAddr::from([192, 0, 2, 2]);
        let first = counts.take(a).expect("first");
        let second = counts.take(a).expect("second");
        assert!(counts.take(a).is_none(), "a third from the same source is refused");
        let other = counts.take(b).expect("another source is not affected");
        drop(first);
        assert_eq!(counts.held(a), 1);
        let again = counts.take(a).expect("a slot given back can be taken again");
        drop((second, again, other));
        assert_eq!(counts.held(a), 0);
        assert!(counts.held.lock().unwrap().is_empty(), "no entry is kept for a source that left");
    }

    #[test]
    fn zero_means_no_limit() {
        let counts = SourceCounts::new(0);
        let a = IpAddr::from([192, 0, 2, 1]);
        let slots: Vec<_> = (0..1000).map(|_| counts.take(a).expect("unlimited")).collect();
        assert_eq!(counts.held(a), 1000);
        drop(slots);
        assert_eq!(counts.held(a), 0);
    }
}
