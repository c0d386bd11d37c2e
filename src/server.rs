//! The server's life cycle: prepare the data directory and database, create the
//! first customer and control password on an empty database, serve until SIGINT or
//! SIGTERM, then stop taking work, finish what is in flight and close the database.

use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tutti_api::conductor::events::Hub;
use tutti_api::conductor::socket;
use tutti_api::control;
use tutti_api::http::router;
use tutti_api::live::EventBus;
use tutti_api::model::Customer;
use tutti_api::ops::{Ops, OpsSettings};
use tutti_api::{Store, Time, secret};
use tutti_sip::ua::streams::SourceCounts;
use tutti_sip::ua::{SipConfig, SipTls, SipUa};

use crate::config::Settings;
use crate::engine::core::{Engine, EngineConfig};
use crate::{BoxError, open_store};

/// How long in-flight HTTP requests may take to finish after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(settings: Settings) -> Result<(), BoxError> {
    let started = Instant::now();
    // Installed before anything else, so a stop signal during start-up is seen
    // rather than killing the process with the default action.
    let stop = StopSignals::install()?;
    for dir in [settings.sounds_dir(), settings.recordings_dir(), settings.tts_dir()] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Certificates are read before anything listens: a bad one stops the start.
    let sip_tls = match &settings.sip_tls {
        Some(tls) => Some((tls.listen, crate::tls::load(&tls.cert, &tls.key)?)),
        None => None,
    };
    let http_tls =
        settings.http_tls.as_ref().map(|f| crate::tls::load(&f.cert, &f.key)).transpose()?;
    let control_tls =
        settings.control_tls.as_ref().map(|f| crate::tls::load(&f.cert, &f.key)).transpose()?;
    let events_tls =
        settings.events_tls.as_ref().map(|f| crate::tls::load(&f.cert, &f.key)).transpose()?;
    let store = open_store(&settings).await?;
    // The first write of a start: a read-only database fails here.
    let closed = store.close_stale_sessions(Time::now()).await.map_err(|e| {
        format!(
            "cannot write database {}: {e}{}",
            settings.database,
            crate::writable_hint(&settings)
        )
    })?;
    if closed > 0 {
        tracing::warn!(callers = closed, "closed call sessions left open by an earlier run");
    }

    // Every listener is bound before anything is created or printed: a start
    // that fails (a port in use) must not print secrets it then forgets.
    let mut sip = SipConfig::new(settings.sip_listen, settings.media_address);
    sip.outbound_proxy = settings.outbound_proxy.clone();
    sip.outbound_username = settings.outbound_username.clone();
    sip.outbound_password = settings.outbound_password.clone();
    sip.max_calls = settings.max_calls;
    sip.invite_rate = settings.invite_rate;
    sip.ring_timeout = settings.ring_timeout;
    sip.media_policy.srtp = settings.srtp.policy();
    sip.media_policy.comfort_noise = settings.comfort_noise.is_on();
    sip.stream_limits.per_source = settings.sip_connections_per_source;
    sip.stream_limits.rate = settings.sip_connection_rate;
    sip.tls = sip_tls.map(|(listen, certified)| SipTls { listen, config: certified.config });
    let (ua, ua_events) = SipUa::start(sip)
        .await
        .map_err(|e| format!("cannot start SIP on {}: {e}", settings.sip_listen))?;
    tracing::info!(udp = %ua.udp_addr(), tcp = %ua.tcp_addr(), media = %settings.media_address, srtp = %settings.srtp, "SIP listening");
    if let Some(tls) = ua.tls_addr() {
        tracing::info!(addr = %tls, "SIP over TLS listening");
    }
    let control_listener = TcpListener::bind(settings.control_listen)
        .await
        .map_err(|e| format!("cannot listen for TCP 4011 on {}: {e}", settings.control_listen))?;
    let control_addr = control_listener.local_addr()?;
    let http = TcpListener::bind(settings.http_listen)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {}: {e}", settings.http_listen))?;
    let http_addr = http.local_addr()?;
    let events_socket = TcpListener::bind(settings.events_listen).await.map_err(|e| {
        format!("cannot listen for the XMLSocket events on {}: {e}", settings.events_listen)
    })?;
    let events_addr = events_socket.local_addr()?;
    // Over TLS its password no longer travels in plain text; the warning stays
    // for a listener anyone can reach without it.
    if control_tls.is_none() {
        warn_if_exposed("TCP 4011", control_addr);
    }
    warn_if_exposed("HTTP", http_addr);

    let control_customer = first_start(&store, &settings).await?;
    if settings.test_clock {
        tutti_api::Time::enable_test_clock();
        tracing::warn!(
            "test clock on: POST /_test/clock moves the wall clock; never use this in production"
        );
    }

    // Before any room: the start-up log says whether the priority was granted.
    tutti_media::room::start_media_threads(settings.media_nice);
    let events = EventBus::new();
    let engine = Engine::start(
        EngineConfig {
            media_address: settings.media_address,
            rtp_ports: (settings.rtp_ports.low, settings.rtp_ports.high),
            sounds_dir: settings.sounds_dir(),
            recordings_dir: settings.recordings_dir(),
            recording_quota_bytes: settings.recording_quota_mib.saturating_mul(1024 * 1024),
            recording_min_free_bytes: settings.recording_min_free_mib.saturating_mul(1024 * 1024),
            tts_dir: settings.tts_dir(),
            silence: settings.silence_limits(),
            default_music_on_hold: settings.music_on_hold.is_on(),
        },
        store.clone(),
        events.clone(),
        ua,
        ua_events,
    )?;
    engine.start_scheduler();

    let timezone = match &settings.timezone {
        Some(name) => jiff::tz::TimeZone::get(name)?,
        None => jiff::tz::TimeZone::system(),
    };
    // One operations layer for every interface.
    let ops = Ops::new(
        store.clone(),
        Arc::new(engine.clone()),
        events.clone(),
        OpsSettings {
            sounds_dir: settings.sounds_dir(),
            recordings_dir: settings.recordings_dir(),
            timezone,
            control_customer: Some(control_customer),
            max_calls: settings.max_calls,
            started,
            version: env!("CARGO_PKG_VERSION"),
            events_port: events_addr.port(),
            sound_quota_bytes: settings.sound_quota_mib.saturating_mul(1024 * 1024),
            http_auth_failures: settings.http_auth_failures,
        },
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    tracing::info!(addr = %control_addr, tls = control_tls.is_some(), "control protocol listening");
    let control_tls =
        control_tls.map(|certified| tokio_rustls::TlsAcceptor::from(certified.config));
    let control_task =
        tokio::spawn(control::serve(control_listener, control_tls, ops.clone(), stop_rx.clone()));
    tracing::info!(addr = %http_addr, https = http_tls.is_some(), "HTTP listening");
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        database = %settings.database,
        timezone = settings.timezone.as_deref().unwrap_or("system local"),
        "tutti {} ready",
        env!("CARGO_PKG_VERSION")
    );

    // The Conductor's events, for its WebSocket, SSE and XMLSocket subscribers.
    let hub = Hub::start(ops.clone());
    tracing::info!(addr = %events_addr, tls = events_tls.is_some(), "XMLSocket events listening");
    let events_tls = events_tls.map(|certified| tokio_rustls::TlsAcceptor::from(certified.config));
    tokio::spawn(socket::serve(
        events_socket,
        events_tls,
        ops.clone(),
        hub.clone(),
        stop_rx.clone(),
    ));
    let http_tls = http_tls.map(|certified| tokio_rustls::TlsAcceptor::from(certified.config));
    let http_counts =
        SourceCounts::new(settings.http_connections_per_source, settings.http_connection_rate);
    let admit: tutti_api::http::Admit = Arc::new(move |peer| {
        http_counts.take(peer, "http").map(|slot| Box::new(slot) as Box<dyn Send>)
    });
    let http_task = tokio::spawn(tutti_api::http::serve(
        http,
        http_tls,
        router(ops, hub.clone()),
        admit,
        stop_rx.clone(),
    ));

    let signal = stop.recv().await;
    tracing::info!(signal, "stopping: no new work is accepted");
    let _ = stop_tx.send(true);
    // Event streams end, so their connections do not hold the HTTP drain.
    hub.close();
    // Live calls get a BYE; their tasks record the callers' end in the store.
    engine.shutdown().await;
    if tokio::time::timeout(DRAIN_TIMEOUT, control_task).await.is_err() {
        tracing::warn!("control connections still open after {DRAIN_TIMEOUT:?}; closing");
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, http_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "HTTP server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "HTTP task panicked"),
        Err(_) => tracing::warn!("HTTP requests still running after {DRAIN_TIMEOUT:?}; closing"),
    }
    drop(stop_rx);
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Says loudly that a control listener is reachable from other machines: TCP
/// 4011 sends its password in plain text and HTTP serves `/metrics` to anyone.
fn warn_if_exposed(what: &str, addr: std::net::SocketAddr) {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "{what} listens beyond this machine; firewall it or use a private address");
    }
}

/// Makes sure the default customer exists and, without a stored control
/// password and none configured, generates one. New secrets are printed once,
/// on standard output, each line starting with `tutti first start:` (so one
/// grep finds them all), and are never logged. Returns the customer that owns
/// TCP 4011 conferences: `--control-customer`, or the default one.
async fn first_start(store: &Store, settings: &Settings) -> Result<String, BoxError> {
    let (default, key) = store.ensure_default_customer().await?;
    if let Some(key) = key {
        println!(
            "{FIRST_START} created the default customer (`tutti customer rotate-key UID` issues a new key)"
        );
        println!("{FIRST_START} customer UID: {}", default.uid);
        println!("{FIRST_START} API key: {key}");
    }
    match &settings.control_password {
        Some(password) if !store.verify_control_password(password).await? => {
            store.set_control_password(password).await?;
            tracing::info!("control password set from configuration");
        }
        None if !store.has_control_password().await? => {
            let password = secret::new_password();
            store.set_control_password(&password).await?;
            println!(
                "{FIRST_START} generated the TCP 4011 control password (`tutti control-password reset` makes a new one)"
            );
            println!("{FIRST_START} control password: {password}");
        }
        Some(_) | None => {}
    }
    match &settings.control_customer {
        Some(uid) => match store.find::<Customer>(uid).await? {
            Some(customer) => Ok(customer.uid),
            None => Err(format!("--control-customer: no customer with UID {uid:?}").into()),
        },
        None => Ok(default.uid),
    }
}

/// What every line of first-start secrets starts with.
pub const FIRST_START: &str = "tutti first start:";

/// SIGINT and SIGTERM, caught from the moment they are installed.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// Waits for either signal and names it.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
