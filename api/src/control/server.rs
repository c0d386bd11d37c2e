//! The tokio shell of the control protocol: accepts connections up to a limit
//! (over TLS when configured), feeds each one's bytes to its [`LineDecoder`] and
//! [`Session`], asks the [`LoginGuard`] before a LOGIN is checked, writes answers,
//! and forwards bus events to logged-in connections. No protocol logic here.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;

use super::codec::LineDecoder;
use super::error::ControlError;
use super::events::render;
use super::guard::{self, Attempt, Failure, GuardLimits, LoginGuard};
use super::session::{Outcome, Session};
use crate::live::Event;
use crate::ops::Ops;

/// Connections served at once; one more is told so and closed. Each costs a task
/// and a few kilobytes, so the bound is about misbehaving clients, not memory.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections at once that have not logged in (yet). The rest of
/// [`MAX_CONNECTIONS`] is kept for logged-in sessions, so that idle connections
/// that never log in cannot lock the operators out; 16 is far more than clients
/// logging in at the same moment need.
pub const MAX_UNAUTHENTICATED: usize = 16;
/// Of [`MAX_UNAUTHENTICATED`], the places one client address may hold, so
/// that one address alone cannot take them all.
pub const MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 4;
/// How long a connection may stay without logging in. A client logs in right after
/// connecting; three wrong passwords with their delays still fit.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write may wait for a client that does not read; then it is dropped
/// rather than holding its events forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read at a time; with the decoder's limit this bounds a connection's buffer.
const READ_CHUNK: usize = 4096;
/// How long a connection being closed by the server still takes (and discards)
/// input, so that its last answer is not lost to a reset.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The limits a control server works with; [`Default`] gives the constants above
/// and those of [`guard`]. Tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`MAX_UNAUTHENTICATED`].
    pub max_unauthenticated: usize,
    /// See [`MAX_UNAUTHENTICATED_PER_ADDRESS`].
    pub max_unauthenticated_per_address: usize,
    /// How long a connection may stay without logging in (10 s).
    pub login_timeout: Duration,
    /// Failed LOGINs per client address and the lockout.
    pub login_guard: GuardLimits,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: MAX_CONNECTIONS,
            max_unauthenticated: MAX_UNAUTHENTICATED,
            max_unauthenticated_per_address: MAX_UNAUTHENTICATED_PER_ADDRESS,
            login_timeout: LOGIN_TIMEOUT,
            login_guard: GuardLimits::default(),
        }
    }
}

/// Serves the control protocol on `listener` until `shutdown` turns true (or its
/// sender is dropped), then closes every connection and returns. With `tls`,
/// every connection is TLS: the handshake counts against the login timeout.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Ops,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    serve_with(listener, tls, ctx, shutdown, ServeLimits::default()).await
}

/// [`serve`] with other limits.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Ops,
    shutdown: watch::Receiver<bool>,
    limits: ServeLimits,
) -> io::Result<()> {
    let ctx = Arc::new(ctx);
    let guard = Arc::new(Mutex::new(LoginGuard::new(limits.login_guard)));
    let all = Arc::new(Semaphore::new(limits.max_connections));
    let unauthenticated = Arc::new(Semaphore::new(limits.max_unauthenticated));
    let mut per_address: HashMap<IpAddr, Arc<Semaphore>> = HashMap::new();
    let mut connections = JoinSet::new();
    let mut stop = shutdown.clone();
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "control: accept failed");
                        sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(permit) = all.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "control: connection refused, too many connections");
                    refuse(&stream, tls.is_some());
                    continue;
                };
                // Addresses whose places are all free again are forgotten.
                let share = limits.max_unauthenticated_per_address;
                per_address.retain(|_, places| places.available_permits() < share);
                let address = per_address
                    .entry(peer.ip())
                    .or_insert_with(|| Arc::new(Semaphore::new(share)))
                    .clone();
                let Ok(own) = address.try_acquire_owned() else {
                    tracing::warn!(
                        %peer,
                        "control: connection refused, too many connections not logged in from this address"
                    );
                    refuse(&stream, tls.is_some());
                    continue;
                };
                let Ok(shared) = unauthenticated.clone().try_acquire_owned() else {
                    tracing::warn!(
                        %peer,
                        "control: connection refused, too many connections not logged in"
                    );
                    refuse(&stream, tls.is_some());
                    continue;
                };
                let login_slot = LoginSlot { _shared: shared, _own: own };
                let shell = Shell {
                    ctx: ctx.clone(),
                    guard: guard.clone(),
                    peer,
                    login_timeout: limits.login_timeout,
                };
                let (shutdown, tls) = (shutdown.clone(), tls.clone());
                connections.spawn(async move {
                    tracing::debug!(%peer, "control: connected");
                    match start(stream, tls, &shell, login_slot, shutdown).await {
                        Ok(()) => tracing::debug!(%peer, "control: disconnected"),
                        Err(e) => tracing::debug!(%peer, error = %e, "control: connection ended"),
                    }
                    drop(permit);
                });
            }
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "control: connection task failed");
                }
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A connection's place among those waiting to log in: one of all of them and
/// one of its address's share; both are given back at login or close.
struct LoginSlot {
    _shared: OwnedSemaphorePermit,
    _own: OwnedSemaphorePermit,
}

/// Tells a connection over the limit why it is closed. The socket is new, so its
/// send buffer is empty and a non-blocking write goes through. A TLS client
/// could not read a plain line: it sees the connection close (and the log says
/// why), since a handshake per refused connection is what a flood wants.
fn refuse(stream: &TcpStream, tls: bool) {
    if tls {
        return;
    }
    let line = format!("{}\r\n", ControlError::TooManyConnections.to_line());
    let _ = stream.try_write(line.as_bytes());
}

/// Runs one accepted connection: plain, or after its TLS handshake, which must
/// finish before the login deadline (a client that never completes it holds its
/// place no longer than one that never logs in).
async fn start(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shell: &Shell,
    login_slot: LoginSlot,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let login_deadline = Instant::now() + shell.login_timeout;
    let Some(tls) = tls else {
        return connection(stream, shell, login_slot, login_deadline, shutdown).await;
    };
    let mut stop = shutdown.clone();
    let handshake = tokio::select! {
        done = timeout_at(login_deadline, tls.accept(stream)) => done,
        _ = stop.wait_for(|stop| *stop) => return Ok(()),
    };
    match handshake {
        Ok(Ok(stream)) => connection(stream, shell, login_slot, login_deadline, shutdown).await,
        Ok(Err(e)) => {
            tracing::debug!(peer = %shell.peer, error = %e, "control: TLS handshake failed");
            Ok(())
        }
        Err(_) => {
            tracing::debug!(peer = %shell.peer, "control: TLS handshake timed out");
            Ok(())
        }
    }
}

/// What one connection shares with the server.
struct Shell {
    ctx: Arc<Ops>,
    guard: Arc<Mutex<LoginGuard>>,
    peer: SocketAddr,
    login_timeout: Duration,
}

impl Shell {
    /// Asks the guard, which is never held across an await.
    fn ask_guard<T>(&self, ask: impl FnOnce(&mut LoginGuard, std::time::Instant) -> T) -> T {
        let mut guard = self.guard.lock().unwrap_or_else(PoisonError::into_inner);
        ask(&mut guard, std::time::Instant::now())
    }

    /// Tells the guard how a LOGIN it allowed ended, and logs a failure with the
    /// client's address (one line per failure, for fail2ban and the like).
    fn login_checked(&self, outcome: &mut Outcome) {
        let ip = self.peer.ip();
        match outcome.login_verified {
            Some(true) => self.ask_guard(|guard, now| guard.succeeded(now, ip)),
            Some(false) => {
                let failure = self.ask_guard(|guard, now| guard.failed(now, ip));
                let failures = match failure {
                    Failure::Counted { failures } | Failure::LockoutStarted { failures, .. } => {
                        Some(failures)
                    }
                    Failure::LockedOut => None,
                };
                let port = self.peer.port();
                tracing::warn!(peer = %ip, port, failures, "control: LOGIN failed");
                if let Failure::LockoutStarted { failures, lockout } = failure {
                    tracing::warn!(
                        peer = %ip,
                        failures,
                        lockout_secs = lockout.as_secs(),
                        "control: too many failed LOGINs, address locked out"
                    );
                }
                // Its next LOGIN would be refused anyway.
                if !matches!(failure, Failure::Counted { .. }) {
                    outcome.close = true;
                }
            }
            // The password could not be checked (the store failed): the attempt
            // stays counted, without a lockout of its own.
            None => {}
        }
    }
}

async fn connection<S>(
    stream: S,
    shell: &Shell,
    login_slot: LoginSlot,
    login_deadline: Instant,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ctx = &*shell.ctx;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut decoder = LineDecoder::default();
    let mut session = Session::default();
    let mut login_slot = Some(login_slot);
    let mut events: Option<broadcast::Receiver<Arc<Event>>> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        while let Some(line) = decoder.poll_line() {
            let guarded = !session.is_logged_in() && matches!(&line, Ok(l) if guard::is_login(l));
            if guarded
                && shell.ask_guard(|guard, now| guard.attempt(now, shell.peer.ip()))
                    == Attempt::Refused
            {
                tracing::debug!(peer = %shell.peer, "control: LOGIN refused, address locked out");
                drop(login_slot.take());
                write_lines(&mut writer, &[guard::locked_out_line()]).await?;
                return close(reader, writer).await;
            }
            let mut outcome = session.handle_line(ctx, line).await;
            if guarded {
                shell.login_checked(&mut outcome);
            }
            if session.is_logged_in() && events.is_none() {
                events = Some(ctx.events.subscribe());
                // A logged-in session no longer takes one of the few places kept
                // for connections that are logging in; given back before LOGIN,OK
                // so that the client's next connection finds it free.
                drop(login_slot.take());
            }
            if let Some(delay) = outcome.delay {
                sleep(delay).await;
            }
            write_lines(&mut writer, &outcome.lines).await?;
            if outcome.close {
                return close(reader, writer).await;
            }
            // What the command caused (its NEWCONF, ...) follows its answer,
            // before the next command's.
            write_ready_events(&mut writer, &mut events, ctx).await?;
        }
        tokio::select! {
            () = &mut stopped => return Ok(()),
            () = sleep_until(login_deadline), if !session.is_logged_in() => {
                // The place is free before the client can see the connection
                // close (closing lingers to read what it still sends).
                drop(login_slot.take());
                write_lines(&mut writer, &[ControlError::LoginTimeout.to_line()]).await?;
                return close(reader, writer).await;
            }
            read = reader.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    // The client is done sending; what is already due still goes out.
                    write_ready_events(&mut writer, &mut events, ctx).await?;
                    return Ok(());
                }
                decoder.handle_bytes(&buf[..n]);
            }
            event = next_event(&mut events) => match event {
                Ok(event) => {
                    if let Some(line) = render(&event, &ctx.settings.timezone) {
                        write_lines(&mut writer, &[line]).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "control: a slow client missed events");
                }
                Err(broadcast::error::RecvError::Closed) => events = None,
            },
        }
    }
}

/// Closes a connection from the server's side: sends FIN, then reads and drops
/// what the client still sends for a moment. Closing with unread input would
/// send a reset, and the client could lose the answer it has not read yet.
async fn close(
    mut reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    writer.shutdown().await?;
    let mut sink = [0u8; 512];
    let drain = async { while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = timeout(CLOSE_LINGER, drain).await;
    Ok(())
}

/// Writes the events already waiting for this session, without waiting for more.
async fn write_ready_events(
    writer: &mut (impl AsyncWrite + Unpin),
    events: &mut Option<broadcast::Receiver<Arc<Event>>>,
    ctx: &Ops,
) -> io::Result<()> {
    let Some(receiver) = events else { return Ok(()) };
    let mut lines = Vec::new();
    loop {
        match receiver.try_recv() {
            Ok(event) => lines.extend(render(&event, &ctx.settings.timezone)),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                tracing::warn!(missed, "control: a slow client missed events");
            }
            Err(_) => break,
        }
    }
    write_lines(writer, &lines).await
}

/// The next bus event, or never when not subscribed.
async fn next_event(
    events: &mut Option<broadcast::Receiver<Arc<Event>>>,
) -> Result<Arc<Event>, broadcast::error::RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes lines, each ended by CR LF, in one write.
async fn write_lines(writer: &mut (impl AsyncWrite + Unpin), lines: &[String]) -> io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
    for line in lines {
        out.push_str(line);
        out.push_str("\r\n");
    }
    match timeout(WRITE_TIMEOUT, writer.write_all(out.as_bytes())).await {
        Ok(written) => written,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client does not read")),
    }
}
