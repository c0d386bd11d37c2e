//! The SIP user agent: rsipstack's transports, transactions and dialogs behind a small
//! engine-facing API. [`SipUa::start`] binds UDP and TCP and returns a stream of
//! [`UaEvent`]s; the engine answers calls, places calls and hangs up through it.
//!
//! Shape: one task routes new server transactions (out-of-dialog requests are answered
//! here; a new INVITE becomes a call; in-dialog requests go to their dialog), and one
//! task per call owns its dialog, its media state and its session timer. The engine
//! talks to a call task over a command channel, never to rsipstack.

mod call;
pub mod dtmf_info;
pub mod events;
mod fixes;
pub mod flood;
mod headers;
mod inbound;
mod outbound;
pub mod refusal;
pub mod screen;
pub mod streams;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::tls::{TlsConfig, TlsListenerConnection};
use rsipstack::transport::udp::UdpConnection;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, warn};

pub use events::{CallControl, CallId, CallProgress, HangupReason, IncomingCall, UaEvent};
pub use outbound::PlaceCall;

use crate::sdp::{MediaPolicy, SdpError};
use crate::session_timer::TimerConfig;
use events::CallCommand;
use fixes::{ByCallId, Fixups};
use refusal::{Refusal, RefusalLog};

/// Methods we implement, for Allow.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";
/// Bodies we understand, for Accept.
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";
/// Extensions we support, for Supported (and against Require).
pub const SUPPORTED: &str = "timer";

/// rsipstack's UDP receive buffer; larger datagrams arrive truncated.
const UDP_BUFFER: usize = 8192;
/// Capacity of the event channel to the engine; call tasks wait when it is full.
const EVENT_QUEUE: usize = 1024;
/// Capacity of each call's command channel.
const COMMAND_QUEUE: usize = 16;
/// How long shutdown waits for BYE transactions to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Attempts at finding a port free for both UDP and TCP when binding port 0.
const BIND_ATTEMPTS: usize = 20;

/// Errors of the user agent API.
#[derive(Debug, thiserror::Error)]
pub enum UaError {
    /// A socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// rsipstack refused something (an internal error, not the peer's).
    #[error("SIP stack: {0}")]
    Stack(String),
    /// The call has ended (or never existed).
    #[error("{0} has ended")]
    CallGone(CallId),
    /// A call target that is neither a SIP URI nor a dialable number.
    #[error("invalid call target {0:?}")]
    InvalidTarget(String),
    /// A number was dialled but no outbound proxy is configured.
    #[error("dialling a number needs an outbound proxy")]
    NoOutboundProxy,
    /// The SDP offer could not be answered (the call was rejected with
    /// [`SdpError::sip_status`]).
    #[error("offer/answer failed: {0}")]
    Sdp(#[from] SdpError),
    /// The command does not fit the call's state (answering an answered call, ...).
    #[error("{0} cannot do that in its current state")]
    WrongState(CallId),
    /// The UA is at `max_calls`.
    #[error("too many calls")]
    TooManyCalls,
}

impl From<rsipstack::Error> for UaError {
    fn from(e: rsipstack::Error) -> Self {
        UaError::Stack(e.to_string())
    }
}

/// Settings of the user agent.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Where to listen, for UDP and TCP on the same port. Port 0 picks a free one.
    pub listen: SocketAddr,
    /// The address media is received on, for the engine's [`crate::sdp::LocalMedia`].
    pub media_address: IpAddr,
    /// Where numbers are dialled: a SIP URI or `host:port`
    /// (`sip:pbx.example.com:5060;transport=tcp`).
    pub outbound_proxy: Option<String>,
    /// Digest user name for outbound calls.
    pub outbound_username: Option<String>,
    /// Digest password for outbound calls.
    pub outbound_password: Option<String>,
    /// Concurrent calls (both directions) beyond which INVITEs get 503.
    pub max_calls: usize,
    /// How long an outbound call may ring before we CANCEL it.
    pub ring_timeout: Duration,
    /// How long an incoming call may wait for the engine's answer before it gets 480
    /// (so a call the engine forgets cannot hold a slot for ever).
    pub answer_timeout: Duration,
    /// The User-Agent (and Server) header.
    pub user_agent: String,
    /// Codec and SRTP policy for offer/answer.
    pub media_policy: MediaPolicy,
    /// Session timers (RFC 4028).
    pub session_timer: TimerConfig,
    /// Largest UDP message accepted; larger requests get 513 (at most 8191).
    pub max_message_size: usize,
    /// RFC 3261 T1 (500 ms); 64*T1 bounds transactions and the wait for an ACK.
    pub t1: Duration,
    /// Retry-After (seconds) in the 503 sent when over `max_calls`.
    pub retry_after_secs: u32,
    /// New INVITEs per second accepted from one source address over UDP
    /// (bursts of twice that); more get 503 with Retry-After. Other requests
    /// outside a dialog (OPTIONS, REGISTER, ...) may come four times as often;
    /// more are dropped unanswered. 0: no limit.
    pub invite_rate: u32,
    /// SIP over TLS, beside UDP and TCP.
    pub tls: Option<SipTls>,
    /// What one source may hold on the TCP and TLS listeners.
    pub stream_limits: streams::StreamLimits,
}

/// A SIP over TLS listener (RFC 3261 section 26.2, `transport=tls`).
#[derive(Clone)]
pub struct SipTls {
    /// Where to listen. Port 0 picks a free one ([`SipUa::tls_addr`] says which).
    pub listen: SocketAddr,
    /// The certificate and key, ready for the handshakes.
    pub config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for SipTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipTls").field("listen", &self.listen).finish_non_exhaustive()
    }
}

/// The transport a request came over or a dialog uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Udp,
    Tcp,
    Tls,
}

impl Link {
    /// The transport of the connection a request arrived on.
    pub(crate) fn of(connection: Option<&rsipstack::transport::SipConnection>) -> Link {
        use rsipstack::transport::SipConnection;
        match connection {
            Some(SipConnection::Tls(_) | SipConnection::TlsListener(_)) => Link::Tls,
            Some(c) if c.is_reliable() => Link::Tcp,
            _ => Link::Udp,
        }
    }
}

impl SipConfig {
    /// Defaults for a server listening on `listen` with media on `media_address`.
    pub fn new(listen: SocketAddr, media_address: IpAddr) -> Self {
        SipConfig {
            listen,
            media_address,
            outbound_proxy: None,
            outbound_username: None,
            outbound_password: None,
            max_calls: 500,
            ring_timeout: Duration::from_secs(60),
            answer_timeout: Duration::from_secs(120),
            user_agent: format!("tutti/{}", env!("CARGO_PKG_VERSION")),
            media_policy: MediaPolicy::default(),
            session_timer: TimerConfig::default(),
            max_message_size: UDP_BUFFER - 1,
            t1: Duration::from_millis(500),
            retry_after_secs: 30,
            invite_rate: 50,
            tls: None,
            stream_limits: streams::StreamLimits::default(),
        }
    }
}

/// State shared by the router and the call tasks.
pub(crate) struct Shared {
    pub(crate) config: SipConfig,
    pub(crate) dialogs: Arc<DialogLayer>,
    pub(crate) events: mpsc::Sender<UaEvent>,
    calls: Mutex<HashMap<CallId, CallControl>>,
    next_call: AtomicU64,
    pub(crate) tags: ByCallId,
    pub(crate) redirects: ByCallId,
    pub(crate) udp_addr: SocketAddr,
    pub(crate) tcp_addr: SocketAddr,
    pub(crate) tls_addr: Option<SocketAddr>,
    /// The address written into Contact and From: the listen address, or when that is
    /// a wildcard, the media address (or rsipstack's pick of an interface).
    advertised: IpAddr,
    /// Our `host:port` as the warn-agent of Warning headers.
    pub(crate) warn_agent: String,
    /// Where refused requests are logged (shared with the UDP screen).
    pub(crate) refusals: Arc<RefusalLog>,
    /// The flood limits per source address, shared with the UDP screen, which
    /// applies them to datagrams; requests over TCP and TLS are checked in
    /// [`handle_transaction`].
    invites: Arc<flood::SourceLimiter>,
    others: Arc<flood::SourceLimiter>,
    cancel: CancellationToken,
}

impl Shared {
    /// Registers a new call unless at `max_calls`; returns its control handle and
    /// the command receiver for its task.
    pub(crate) fn new_call(&self) -> Option<(CallControl, mpsc::Receiver<CallCommand>)> {
        let mut calls = self.calls.lock().ok()?;
        if calls.len() >= self.config.max_calls {
            return None;
        }
        let id = CallId(self.next_call.fetch_add(1, Ordering::Relaxed) + 1);
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let control = CallControl { id, commands };
        calls.insert(id, control.clone());
        Some((control, rx))
    }

    /// Forgets a call whose task has ended.
    pub(crate) fn end_call(&self, id: CallId) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.remove(&id);
        }
    }

    fn control(&self, id: CallId) -> Option<CallControl> {
        self.calls.lock().ok()?.get(&id).cloned()
    }

    /// Sends an event to the engine; a gone engine is not the call's problem.
    pub(crate) async fn emit(&self, event: UaEvent) {
        if self.events.send(event).await.is_err() {
            debug!("engine event receiver dropped");
        }
    }

    /// Our own address on `link`, as peers should reach it.
    pub(crate) fn advertised_addr(&self, link: Link) -> SocketAddr {
        let port = match (link, self.tls_addr) {
            (Link::Udp, _) => self.udp_addr.port(),
            (Link::Tls, Some(tls)) => tls.port(),
            (Link::Tcp | Link::Tls, _) => self.tcp_addr.port(),
        };
        SocketAddr::new(self.advertised, port)
    }

    /// Our Contact for a dialog on `link`.
    pub(crate) fn contact(&self, user: Option<&str>, link: Link) -> rsipstack::sip::Uri {
        let addr = self.advertised_addr(link);
        let user = user.filter(|u| !u.is_empty()).map(|u| format!("{u}@")).unwrap_or_default();
        let transport = match link {
            Link::Udp => "",
            Link::Tcp => ";transport=tcp",
            Link::Tls => ";transport=tls",
        };
        let text = format!("sip:{user}{}{transport}", host_port(addr));
        rsipstack::sip::Uri::try_from(text.as_str()).unwrap_or_default()
    }
}

/// `ip:port`, with brackets for IPv6.
pub(crate) fn host_port(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// A snapshot of what the user agent and rsipstack hold ([`SipUa::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipStats {
    /// Calls in progress, both directions.
    pub calls: usize,
    /// Dialogs in rsipstack's dialog layer.
    pub dialogs: usize,
    /// Transactions running in rsipstack's endpoint.
    pub transactions: usize,
    /// Finished transactions kept to answer retransmissions.
    pub finished_transactions: usize,
    /// 2xx answers waiting for their ACK.
    pub waiting_ack: usize,
}

/// The running user agent. Cheap to clone; every clone drives the same UA.
#[derive(Clone)]
pub struct SipUa {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SipUa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipUa")
            .field("udp", &self.shared.udp_addr)
            .field("tcp", &self.shared.tcp_addr)
            .finish_non_exhaustive()
    }
}

impl SipUa {
    /// Binds UDP and TCP on `config.listen`, starts the stack, and returns the UA and
    /// the engine's event stream.
    pub async fn start(config: SipConfig) -> Result<(SipUa, mpsc::Receiver<UaEvent>), UaError> {
        let (udp_socket, tcp_listener) = bind_udp_and_tcp_port(config.listen)?;
        let udp_addr = udp_socket
            .local_addr()
            .map_err(|source| UaError::Bind { addr: config.listen, source })?;
        let tcp_addr = SocketAddr::new(config.listen.ip(), udp_addr.port());
        let tls_listener = match &config.tls {
            Some(tls) => Some(bind_tcp(tls.listen)?),
            None => None,
        };
        let tls_addr = tls_listener.as_ref().map(|(_, addr)| *addr);

        let advertised = if !config.listen.ip().is_unspecified() {
            config.listen.ip()
        } else if !config.media_address.is_unspecified() {
            config.media_address
        } else {
            rsipstack::transport::SipConnection::resolve_bind_address(udp_addr).ip()
        };
        // The warn-agent names this server in Warning headers (RFC 3261 20.43).
        let warn_agent = host_port(SocketAddr::new(advertised, udp_addr.port()));
        let refusals = Arc::new(RefusalLog::default());
        let invites = Arc::new(flood::SourceLimiter::invites(config.invite_rate));
        let others = Arc::new(flood::SourceLimiter::other_requests(config.invite_rate));

        let cancel = CancellationToken::new();
        let udp_serving = Arc::new(tokio::sync::Notify::new());
        let screened = screen::ScreenedSocket {
            socket: udp_socket,
            screen: screen::Screen {
                max_size: config.max_message_size.min(UDP_BUFFER - 1),
                agent: warn_agent.clone(),
            },
            log: refusals.clone(),
            invites: invites.clone(),
            others: others.clone(),
            serving: udp_serving.clone(),
        };
        let udp = UdpConnection::from_socket(Arc::new(screened), None, Some(cancel.child_token()))
            .await?;
        let transport = TransportLayer::new(cancel.clone());
        transport.set_stream_idle_timeout(streams::IDLE_TIMEOUT);
        // Only UDP is rsipstack's to serve; the stream listeners are ours
        // (streams.rs) and are registered once the endpoint has started.
        transport.add_transport(udp.into());

        let tags = ByCallId::default();
        let redirects = ByCallId::default();
        let option = EndpointOption {
            t1: config.t1,
            t1x64: config.t1 * 64,
            callid_suffix: Some("tutti".into()),
            ..Default::default()
        };
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .with_user_agent(&config.user_agent)
            .with_option(option)
            .with_inspector(Box::new(Fixups { tags: tags.clone(), redirects: redirects.clone() }))
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let inner = endpoint.inner.clone();
        let dialogs = Arc::new(DialogLayer::new(inner.clone()));
        let (events, events_rx) = mpsc::channel(EVENT_QUEUE);

        let shared = Arc::new(Shared {
            config,
            dialogs,
            events,
            calls: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(0),
            tags,
            redirects,
            udp_addr,
            tcp_addr,
            tls_addr,
            advertised,
            warn_agent,
            refusals,
            invites,
            others,
            cancel: cancel.clone(),
        });

        let endpoint = inner.clone();
        tokio::spawn(async move {
            if let Err(e) = inner.serve().await {
                warn!(error = %e, "SIP endpoint stopped");
            }
        });
        tokio::spawn(route_incoming(shared.clone(), incoming));

        // The endpoint serves the listeners it knew when it started; the UDP
        // socket's first read means that list has been taken. From then on
        // the stream listeners can be named to rsipstack (for Via and Contact)
        // without it binding their ports.
        if tokio::time::timeout(Duration::from_secs(5), udp_serving.notified()).await.is_err() {
            warn!("the SIP endpoint did not start reading UDP within 5 s");
        }
        let limits = shared.config.stream_limits;
        let counts = streams::SourceCounts::new(limits.per_source, limits.rate);
        let tcp_listen = TcpListenerConnection::new(tcp_addr, None).await?;
        let mut listeners = vec![(tcp_listener, tcp_listen.get_addr().clone(), None)];
        endpoint.transport_layer.add_transport(tcp_listen.into());
        if let (Some((listener, addr)), Some(tls)) = (tls_listener, &shared.config.tls) {
            let tls_listen = TlsListenerConnection::new(addr, None, TlsConfig::default()).await?;
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
            listeners.push((listener, tls_listen.get_addr().clone(), Some(acceptor)));
            endpoint.transport_layer.add_transport(tls_listen.into());
        }
        debug!(listeners = ?endpoint.transport_layer.get_listen_addrs(), "SIP listeners named to rsipstack");
        for (listener, local, tls) in listeners {
            let acceptor = streams::Acceptor {
                local,
                counts: counts.clone(),
                limits: shared.config.stream_limits,
                cancel: cancel.child_token(),
                tls,
            };
            tokio::spawn(streams::serve(listener, acceptor, endpoint.clone()));
        }
        info!(%udp_addr, %tcp_addr, ?tls_addr, "SIP user agent listening");
        Ok((SipUa { shared }, events_rx))
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.shared.udp_addr
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.shared.tcp_addr
    }

    /// The bound TLS address, when SIP over TLS is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.shared.tls_addr
    }

    /// The configuration in force.
    pub fn config(&self) -> &SipConfig {
        &self.shared.config
    }

    /// Calls in progress (both directions).
    pub fn active_calls(&self) -> usize {
        self.shared.calls.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Dialogs rsipstack still holds: 0 when idle (for metrics and leak tests).
    pub fn dialogs(&self) -> usize {
        self.shared.dialogs.len()
    }

    /// What the stack holds right now, for `/metrics`: each figure returns to
    /// its idle value (0, or the transactions still lingering for
    /// retransmissions) once calls have ended.
    pub fn stats(&self) -> SipStats {
        let endpoint = self.shared.dialogs.endpoint.get_stats();
        SipStats {
            calls: self.active_calls(),
            dialogs: self.dialogs(),
            transactions: endpoint.running_transactions,
            finished_transactions: endpoint.finished_transactions,
            waiting_ack: endpoint.waiting_ack,
        }
    }

    /// Places a call. Progress arrives as [`UaEvent::Progress`], the negotiated
    /// media as [`UaEvent::MediaChanged`], the end as [`UaEvent::Hangup`].
    pub async fn place_call(&self, call: PlaceCall) -> Result<CallId, UaError> {
        outbound::place(self.shared.clone(), call).await
    }

    /// The control handle of a call in progress.
    pub fn call(&self, id: CallId) -> Option<CallControl> {
        self.shared.control(id)
    }

    /// Hangs up a call: BYE when confirmed, CANCEL while ringing out, 480 before we
    /// answered.
    pub async fn hangup(&self, id: CallId) -> Result<(), UaError> {
        self.shared.control(id).ok_or(UaError::CallGone(id))?.hangup().await
    }

    /// Hangs up every call (BYE to each confirmed dialog), waits briefly for them to
    /// end, then stops the stack.
    pub async fn shutdown(&self) {
        let controls: Vec<CallControl> =
            self.shared.calls.lock().map(|c| c.values().cloned().collect()).unwrap_or_default();
        for control in &controls {
            control.hangup().await.ok();
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.active_calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.cancel.cancel();
    }
}

/// Binds the UDP socket and a TCP listener on the same port. With port 0 the
/// kernel picks the UDP port, which may be taken for TCP: then try another.
fn bind_udp_and_tcp_port(
    listen: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), UaError> {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = std::net::UdpSocket::bind(listen)
            .map_err(|source| UaError::Bind { addr: listen, source })?;
        let port =
            udp.local_addr().map_err(|source| UaError::Bind { addr: listen, source })?.port();
        match bind_tcp(SocketAddr::new(listen.ip(), port)) {
            Ok((tcp, _)) => {
                udp.set_nonblocking(true)
                    .map_err(|source| UaError::Bind { addr: listen, source })?;
                let udp = tokio::net::UdpSocket::from_std(udp)
                    .map_err(|source| UaError::Bind { addr: listen, source })?;
                return Ok((udp, tcp));
            }
            Err(UaError::Bind { source, .. }) if listen.port() == 0 => last_error = Some(source),
            Err(e) => return Err(e),
        }
    }
    Err(UaError::Bind {
        addr: listen,
        source: last_error.unwrap_or_else(|| std::io::Error::other("no free port")),
    })
}

/// A TCP listener at `listen` (port 0: any free port) and the address it got.
fn bind_tcp(listen: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), UaError> {
    let bind = || {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok((tokio::net::TcpListener::from_std(listener)?, addr))
    };
    bind().map_err(|source| UaError::Bind { addr: listen, source })
}

/// Routes each new server transaction to its handler, each in its own task so one
/// slow dialog cannot hold up the others.
async fn route_incoming(shared: Arc<Shared>, mut incoming: TransactionReceiver) {
    while let Some(tx) = incoming.recv().await {
        let span = tracing::info_span!(
            "sip",
            call_id = %tx.original.call_id_header().map(|c| c.value().to_owned()).unwrap_or_default(),
            method = %tx.original.method,
        );
        tokio::spawn(handle_transaction(shared.clone(), tx).instrument(span));
    }
}

async fn handle_transaction(shared: Arc<Shared>, mut tx: Transaction) {
    let method = tx.original.method;
    if method == Method::Ack {
        return;
    }
    if method != Method::Cancel {
        let unsupported = headers::unsupported_requires(&tx.original);
        if !unsupported.is_empty() {
            let unsupported = unsupported.join(", ");
            let header = Header::Unsupported(unsupported.clone().into());
            let detail = format!("Require names what tutti lacks: {unsupported}");
            let refusal = Refusal::new(420, "Bad Extension", detail);
            refuse(&shared, &mut tx, &refusal, vec![header]).await;
            return;
        }
    }
    let to_tag = tx.original.to_header().ok().and_then(|t| t.tag().ok().flatten());
    if to_tag.is_some() {
        match shared.dialogs.match_dialog(&tx) {
            Some(mut dialog) => {
                if let Err(e) = dialog.handle(&mut tx).await {
                    debug!(error = %e, "in-dialog request failed");
                }
            }
            None => reply(&mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await,
        }
        return;
    }
    if over_flood_limit(&shared, &tx) {
        let retry = Header::RetryAfter(screen::FLOOD_RETRY_AFTER.to_string().into());
        let detail = "too many requests from this address; retry later";
        let refusal = Refusal::new(503, "Service Unavailable", detail);
        reply_quietly(&shared, &mut tx, &refusal, vec![retry]).await;
        return;
    }
    match method {
        Method::Invite => inbound::start(shared, tx).await,
        Method::Options => reply(&mut tx, StatusCode::OK, headers::capabilities()).await,
        Method::Register
        | Method::Subscribe
        | Method::Publish
        | Method::Message
        | Method::Refer
        | Method::Notify => {
            reply(&mut tx, StatusCode::MethodNotAllowed, vec![Header::Allow(ALLOW.into())]).await
        }
        _ => reply(&mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await,
    }
}

/// Whether a request outside a dialog that came over TCP or TLS goes over its
/// source's flood limit (UDP datagrams were checked by the screen before
/// rsipstack saw them). A stream cannot drop a request without leaving its
/// transaction waiting, so every refusal here is a 503 with Retry-After.
fn over_flood_limit(shared: &Shared, tx: &Transaction) -> bool {
    let connection = tx.connection.as_ref();
    if Link::of(connection) == Link::Udp || tx.original.method == Method::Cancel {
        return false;
    }
    let Some(source) =
        connection.and_then(|c| c.get_remote_addr()).and_then(|a| a.get_socketaddr().ok())
    else {
        return false;
    };
    let limiter =
        if tx.original.method == Method::Invite { &shared.invites } else { &shared.others };
    !limiter.allow(source.ip(), std::time::Instant::now())
}

/// [`refuse`] without the refusal log's line: the limiter logs a flood once a
/// second itself.
async fn reply_quietly(
    shared: &Shared,
    tx: &mut Transaction,
    refusal: &Refusal,
    mut headers: Vec<Header>,
) {
    headers.push(refusal::warning_header(&shared.warn_agent, &refusal.detail));
    reply(tx, refusal.status_code(), headers).await;
}

/// Refuses a request outside any dialog with a Warning naming the problem, and logs
/// the refusal with the peer's address.
pub(crate) async fn refuse(
    shared: &Shared,
    tx: &mut Transaction,
    refusal: &Refusal,
    mut headers: Vec<Header>,
) {
    let peer = tx
        .connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok());
    shared.refusals.log(peer, &tx.original.method.to_string(), refusal);
    headers.push(refusal::warning_header(&shared.warn_agent, &refusal.detail));
    reply(tx, refusal.status_code(), headers).await;
}

/// Answers a transaction outside any dialog; a failure only means the peer is gone.
pub(crate) async fn reply(tx: &mut Transaction, status: StatusCode, headers: Vec<Header>) {
    if let Err(e) = tx.reply_with(status, headers, None).await {
        debug!(error = %e, "reply failed");
    }
}
