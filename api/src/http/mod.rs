//! The HTTP server: one router over the operations layer for every HTTP
//! interface, and its own accept loop so that slow or idle clients are cut off
//! (a header that never ends, a keep-alive connection that never asks again).
//!
//! - [`health`]: `/healthz` and `/metrics`.
//! - [`params`] and [`envelope`]: what the MaestroConference-style facades
//!   share: parameters from query, form or JSON, and the `{code,message,value}`
//!   answer in JSON or XML.
//! - [`openapi`]: `/openapi.json`, generated from the facades' function tables.
//! - `/_access/*`: [`crate::access`].
//! - `/_conference/*` and its event streams: [`crate::conductor`].
//! - `/conference_*` (Aculab-style web services): [`crate::aculab`].
//! - `/api/v1/*` (the PBX conference REST resource): [`crate::rest`].
//! - Unknown paths answer 404 with a JSON error body.

pub mod envelope;
pub mod functions;
pub mod health;
pub mod openapi;
pub mod params;
pub mod test_clock;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::ops::Ops;

/// How long a client may take to send a request's headers, and how long a
/// keep-alive connection may wait between requests, before it is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The client's address, which the accept loop puts on every request it
/// serves; `None` for a request that did not come through it (a router driven
/// directly). Counted against wrong credentials ([`Ops::guarded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub Option<IpAddr>);

impl Peer {
    /// The peer of a request's parts.
    pub fn of(parts: &axum::http::request::Parts) -> Self {
        parts.extensions.get::<Peer>().copied().unwrap_or(Peer(None))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer::of(parts))
    }
}

/// Says when to come back (the longest a lockout lasts) on a 429, the
/// answer of the interfaces with HTTP statuses to a locked-out address.
pub fn retry_after_lockout(response: &mut Response) {
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        let secs = crate::control::guard::LOCKOUT.as_secs();
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
    }
}

/// The HTTP router over the operations layer (the same [`Ops`] TCP 4011 uses);
/// `hub` carries the Conductor's events to its WebSocket and SSE subscribers.
pub fn router(ops: Ops, hub: crate::conductor::events::Hub) -> Router {
    health::router()
        .merge(crate::access::router())
        .merge(crate::conductor::router().layer(axum::Extension(hub)))
        .merge(crate::aculab::router())
        .merge(crate::rest::router())
        .route("/openapi.json", axum::routing::get(openapi::document))
        .merge(if crate::time::Time::test_clock_enabled() {
            test_clock::router()
        } else {
            Router::new()
        })
        .fallback(not_found)
        .with_state(ops)
}

/// A future that completes when `shutdown` turns true.
fn shutdown_of(
    shutdown: &watch::Receiver<bool>,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut shutdown = shutdown.clone();
    Box::pin(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
}

/// Any path no interface serves.
async fn not_found(uri: Uri) -> Response {
    let body = serde_json::json!({
        "error": "not found",
        "message": format!("no such path: {}", uri.path()),
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// Decides whether a new connection from an address is served: `None` closes
/// it at once; what it returns is kept for as long as the connection lives (a
/// place in a per-address count, say).
pub type Admit = Arc<dyn Fn(SocketAddr) -> Option<Box<dyn Send>> + Send + Sync>;

/// Serves `router` on `listener` until `shutdown` turns true, then lets
/// requests in flight finish (the caller bounds how long it waits). With
/// `tls`, every connection is HTTPS (the handshake must finish within
/// [`HEADER_READ_TIMEOUT`], like a request's headers). Each connection is
/// first let in or closed by `admit`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    admit: Admit,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let stopped_rx = shutdown.clone();
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    // Connections in flight: each holds a sender; all gone means all done.
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        let Some(admitted) = admit(peer) else { continue };
        let (builder, router, tls) = (builder.clone(), router.clone(), tls.clone());
        let (alive, stop) = (alive.clone(), shutdown_of(&stopped_rx));
        tokio::spawn(async move {
            let _alive = alive;
            let _admitted = admitted;
            let Some(tls) = tls else {
                return serve_connection(&builder, stream, router, stop, peer).await;
            };
            match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(&builder, stream, router, stop, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "https: handshake failed"),
                Err(_) => tracing::debug!(%peer, "https: handshake timed out"),
            }
        });
    }
    drop(listener);
    drop(alive);
    let _ = all_done.recv().await;
    Ok(())
}

/// Serves one connection's requests until the client leaves or `stop` fires.
async fn serve_connection<S>(
    builder: &hyper::server::conn::http1::Builder,
    stream: S,
    router: Router,
    mut stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    peer: std::net::SocketAddr,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let with_peer = Peer(Some(peer.ip()));
    let router = tower::ServiceExt::map_request(
        router,
        move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(with_peer);
            request
        },
    );
    let service = TowerToHyperService::new(router);
    // With upgrades: the Conductor's event WebSocket.
    let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = &mut stop => {
            // Finish the request in flight, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "http: connection ended");
    }
}
