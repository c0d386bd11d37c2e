//! The tokio shell of the control protocol: accepts connections up to a limit,
//! feeds each one's bytes to its [`LineDecoder`] and [`Session`], writes answers,
//! and forwards bus events to logged-in connections. No protocol logic here.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::codec::LineDecoder;
use super::error::ControlError;
use super::events::render;
use super::session::Session;
use crate::live::Event;
use crate::ops::Ops;

/// Connections served at once; one more is told so and closed. Each costs a task
/// and a few kilobytes, so the bound is about misbehaving clients, not memory.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may stay without logging in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
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

/// Serves the control protocol on `listener` until `shutdown` turns true (or its
/// sender is dropped), then closes every connection and returns.
pub async fn serve(
    listener: TcpListener,
    ctx: Ops,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let ctx = Arc::new(ctx);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "control: connection refused, too many connections");
                    refuse(&stream);
                    continue;
                };
                let ctx = ctx.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    tracing::debug!(%peer, "control: connected");
                    match connection(stream, &ctx, shutdown).await {
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

/// Tells a connection over the limit why it is closed. The socket is new, so its
/// send buffer is empty and a non-blocking write goes through.
fn refuse(stream: &TcpStream) {
    let line = format!("{}\r\n", ControlError::TooManyConnections.to_line());
    let _ = stream.try_write(line.as_bytes());
}

async fn connection(
    stream: TcpStream,
    ctx: &Ops,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut decoder = LineDecoder::default();
    let mut session = Session::default();
    let mut events: Option<broadcast::Receiver<Arc<Event>>> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    let login_deadline = Instant::now() + LOGIN_TIMEOUT;
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        while let Some(line) = decoder.poll_line() {
            let outcome = session.handle_line(ctx, line).await;
            if let Some(delay) = outcome.delay {
                sleep(delay).await;
            }
            write_lines(&mut writer, &outcome.lines).await?;
            if session.is_logged_in() && events.is_none() {
                events = Some(ctx.events.subscribe());
            }
            if outcome.close {
                return close(reader, writer).await;
            }
        }
        tokio::select! {
            () = &mut stopped => return Ok(()),
            () = sleep_until(login_deadline), if !session.is_logged_in() => {
                write_lines(&mut writer, &[ControlError::LoginTimeout.to_line()]).await?;
                return close(reader, writer).await;
            }
            read = reader.read(&mut buf) => {
                let n = read?;
                if n == 0 {
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
async fn close(mut reader: OwnedReadHalf, mut writer: OwnedWriteHalf) -> io::Result<()> {
    writer.shutdown().await?;
    let mut sink = [0u8; 512];
    let drain = async { while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = timeout(CLOSE_LINGER, drain).await;
    Ok(())
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
async fn write_lines(writer: &mut OwnedWriteHalf, lines: &[String]) -> io::Result<()> {
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
