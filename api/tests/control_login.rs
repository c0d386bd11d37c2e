//! Who may log in to TCP 4011, over real TCP connections to a server on a loopback
//! port with a real SQLite store: failed LOGINs counted per client address across
//! connections and the lockout, the login timeout, and the share of connections
//! kept for logged-in sessions. The call engine is not needed here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tutti_api::Store;
use tutti_api::control::guard::{GuardLimits, LOCKED_OUT, MAX_FAILURES};
use tutti_api::control::{MAX_CONNECTIONS, MAX_UNAUTHENTICATED, ServeLimits, serve, serve_with};
use tutti_api::live::{
    CallUpdate, CallerUpdate, DialRequest, EventBus, LiveControl, LiveFuture, PlayRequest, Target,
};
use tutti_api::model::Customer;
use tutti_api::ops::{Ops, OpsError, OpsSettings};

const PASSWORD: &str = "right";
/// How long a test waits for a line that should come.
const PATIENCE: Duration = Duration::from_secs(5);
const INVALID: &str = r#"LOGIN,ERROR,"Invalid password""#;
const TOO_MANY: &str = r#"ERROR,"Too many connections""#;

/// The answer to a LOGIN from a locked-out address.
fn locked_out() -> String {
    format!("LOGIN,ERROR,\"{LOCKED_OUT}\"")
}

/// A call engine that is not there: no test here reaches it.
struct NoEngine;

fn unavailable<'a, T: Send + 'a>() -> LiveFuture<'a, T> {
    Box::pin(std::future::ready(Err(OpsError::Unavailable { incident: 0 })))
}

impl LiveControl for NoEngine {
    fn update_caller(&self, _: String, _: CallerUpdate) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn drop_caller(&self, _: String) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn move_caller(&self, _: String, _: String) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn conference_changed(&self, _: String) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn play(&self, _: PlayRequest) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn stop_playback(&self, _: Target) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn dial(&self, _: DialRequest) -> LiveFuture<'_, String> {
        unavailable()
    }
    fn start_recording(&self, _: String, _: Option<String>) -> LiveFuture<'_, String> {
        unavailable()
    }
    fn stop_recording(&self, _: String) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn close_call(&self, _: String) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn update_call(&self, _: String, _: CallUpdate) -> LiveFuture<'_, ()> {
        unavailable()
    }
    fn set_breakout_private(&self, _: String, _: bool) -> LiveFuture<'_, ()> {
        unavailable()
    }
}

/// The one place that knows how a control context is built.
async fn context(dir: &std::path::Path) -> Ops {
    let url = format!("sqlite://{}", dir.join("tutti.db").display());
    let store = Store::open(&url).await.expect("open store");
    store.create_customer(&Customer::new("default")).await.expect("customer");
    store.set_control_password(PASSWORD).await.expect("password");
    Ops::new(
        store,
        Arc::new(NoEngine),
        EventBus::new(),
        OpsSettings {
            sounds_dir: dir.join("sounds"),
            recordings_dir: dir.join("recordings"),
            timezone: jiff::tz::TimeZone::UTC,
            control_customer: None,
            max_calls: 500,
            started: Instant::now(),
            version: "test",
            events_port: 0,
            sound_quota_bytes: tutti_api::ops::DEFAULT_SOUND_QUOTA_BYTES,
            http_auth_failures: 0,
        },
    )
}

/// A control server on a loopback port, stopped when dropped.
struct Server {
    _dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    _stop: watch::Sender<bool>,
}

impl Server {
    async fn start_with(limits: Option<ServeLimits>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = context(dir.path()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = watch::channel(false);
        match limits {
            Some(limits) => tokio::spawn(serve_with(listener, None, ctx, stopped, limits)),
            None => tokio::spawn(serve(listener, None, ctx, stopped)),
        };
        Self { _dir: dir, addr, _stop: stop }
    }

    async fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (read, write) = stream.into_split();
        Client { lines: BufReader::new(read), write }
    }

    async fn login(&self) -> Client {
        let mut client = self.connect().await;
        assert_eq!(client.ask(&format!("LOGIN,{PASSWORD}")).await, "LOGIN,OK");
        client
    }
}

struct Client {
    lines: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Client {
    /// Sends a line; a connection the server has closed shows in what comes back.
    async fn send(&mut self, line: &str) {
        let _ = self.write.write_all(format!("{line}\r\n").as_bytes()).await;
    }

    /// The next line, or `None` once the server has closed the connection.
    async fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(PATIENCE, self.lines.read_line(&mut line))
            .await
            .expect("a line or the close in time")
            .unwrap_or(0);
        (n > 0).then(|| line.trim_end_matches("\r\n").to_owned())
    }

    async fn recv(&mut self) -> String {
        self.next().await.expect("a line before the close")
    }

    async fn ask(&mut self, line: &str) -> String {
        self.send(line).await;
        self.recv().await
    }

    async fn expect_closed(&mut self) {
        assert_eq!(self.next().await, None, "the server closes the connection");
    }
}

/// The brief's attack: 20 parallel connections each trying three wrong passwords
/// got 60 answers in 4.3 s. Now the address gets exactly `MAX_FAILURES` checks
/// across all connections; every other LOGIN is refused at once.
#[tokio::test]
async fn parallel_guessing_from_one_address_gets_five_tries() {
    let limits = ServeLimits {
        max_unauthenticated: MAX_CONNECTIONS,
        max_unauthenticated_per_address: MAX_CONNECTIONS,
        ..ServeLimits::default()
    };
    let server = Arc::new(Server::start_with(Some(limits)).await);
    // Logged in before the attack: not disturbed by it.
    let mut operator = server.login().await;

    let mut guessers = tokio::task::JoinSet::new();
    for n in 0..20 {
        let server = server.clone();
        guessers.spawn(async move {
            let mut client = server.connect().await;
            let mut answers = Vec::new();
            for guess in 0..3 {
                client.send(&format!("LOGIN,guess-{n}-{guess}")).await;
                match client.next().await {
                    Some(answer) => answers.push(answer),
                    None => break,
                }
            }
            answers
        });
    }
    let answers = guessers.join_all().await;
    let invalid = answers.iter().flatten().filter(|a| *a == INVALID).count();
    assert_eq!(invalid, MAX_FAILURES, "{answers:#?}");
    for connection in &answers {
        // Every guesser was answered; a refusal closed its connection.
        let (last, before) = connection.split_last().expect("an answer");
        assert!(before.iter().all(|a| a == INVALID), "{answers:#?}");
        assert!(*last == INVALID || *last == locked_out(), "{answers:#?}");
    }

    // The right password does not help while the lockout runs, and is refused
    // without the failure delay.
    let mut late = server.connect().await;
    let asked = Instant::now();
    assert_eq!(late.ask(&format!("LOGIN,{PASSWORD}")).await, locked_out());
    assert!(asked.elapsed() < Duration::from_millis(500), "{:?}", asked.elapsed());
    late.expect_closed().await;

    assert_eq!(operator.ask("KEEPALIVE").await, "KEEPALIVE,OK");
}

/// Failures on different connections add up, one after the other too; the lockout
/// ends by itself, and a success in between does not reset the count.
#[tokio::test]
async fn failures_add_up_across_connections_and_the_lockout_ends() {
    // Longer than the one-second delay of a failed LOGIN's answer.
    let lockout = Duration::from_millis(1500);
    let guard = GuardLimits { max_failures: 3, lockout, ..GuardLimits::default() };
    let limits = ServeLimits { login_guard: guard, ..ServeLimits::default() };
    let server = Server::start_with(Some(limits)).await;

    let mut first = server.connect().await;
    assert_eq!(first.ask("LOGIN,wrong").await, INVALID);
    assert_eq!(first.ask("LOGIN,wrong").await, INVALID);
    // A success from the same address leaves the two failures counted.
    drop(server.login().await);
    let mut second = server.connect().await;
    let third_failure = Instant::now();
    assert_eq!(second.ask("LOGIN,wrong").await, INVALID);
    // That was the third: the lockout started and the connection is closed.
    second.expect_closed().await;
    assert_eq!(first.ask(&format!("LOGIN,{PASSWORD}")).await, locked_out());
    first.expect_closed().await;

    // The lockout started once the password was checked, a little after this.
    tokio::time::sleep_until((third_failure + lockout).into()).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut after = server.connect().await;
        let answer = after.ask(&format!("LOGIN,{PASSWORD}")).await;
        if answer == "LOGIN,OK" {
            break;
        }
        assert_eq!(answer, locked_out());
        assert!(Instant::now() < deadline, "the lockout did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_connection_that_does_not_log_in_in_time_is_closed() {
    assert_eq!(ServeLimits::default().login_timeout, Duration::from_secs(10));
    let timeout = Duration::from_millis(400);
    let limits = ServeLimits { login_timeout: timeout, ..ServeLimits::default() };
    let server = Server::start_with(Some(limits)).await;
    let connected = Instant::now();
    let mut idle = server.connect().await;
    // KEEPALIVE does not extend the time to log in.
    assert_eq!(idle.ask("KEEPALIVE").await, "KEEPALIVE,OK");
    assert_eq!(idle.recv().await, r#"ERROR,"Login timeout""#);
    let waited = connected.elapsed();
    assert!(waited >= timeout && waited < timeout * 4, "closed after {waited:?}");
    idle.expect_closed().await;
    // A logged-in connection stays past the timeout.
    let mut operator = server.login().await;
    tokio::time::sleep(timeout + Duration::from_millis(200)).await;
    assert_eq!(operator.ask("KEEPALIVE").await, "KEEPALIVE,OK");
}

/// The places idle connections cannot take are there for logged-in sessions, up
/// to the overall limit.
#[tokio::test]
async fn logged_in_sessions_use_the_places_idle_ones_cannot() {
    let limits =
        ServeLimits { max_connections: 6, max_unauthenticated: 2, ..ServeLimits::default() };
    let server = Server::start_with(Some(limits)).await;
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(server.login().await);
    }
    let mut extra = server.connect().await;
    assert_eq!(extra.recv().await, TOO_MANY);
    extra.expect_closed().await;
    for session in &mut sessions {
        assert_eq!(session.ask("KEEPALIVE").await, "KEEPALIVE,OK");
    }
}

/// Connections that never log in hold at most `MAX_UNAUTHENTICATED` places; the
/// one beyond is refused while logged-in sessions still fit, and logging in frees
/// a connection's place among them.
#[tokio::test]
async fn idle_connections_cannot_take_every_place() {
    // All from one address here: its share is the whole of them.
    let limits = ServeLimits {
        max_unauthenticated_per_address: MAX_UNAUTHENTICATED,
        ..ServeLimits::default()
    };
    let server = Server::start_with(Some(limits)).await;
    let mut idle = Vec::new();
    for _ in 1..MAX_UNAUTHENTICATED {
        let mut client = server.connect().await;
        assert_eq!(client.ask("KEEPALIVE").await, "KEEPALIVE,OK");
        idle.push(client);
    }
    // One place left for a connection that is not logged in: this one takes it, logs
    // in, and so gives it back.
    let mut operator = server.login().await;
    let mut last = server.connect().await;
    assert_eq!(last.ask("KEEPALIVE").await, "KEEPALIVE,OK");
    idle.push(last);

    let mut extra = server.connect().await;
    assert_eq!(extra.recv().await, TOO_MANY);
    extra.expect_closed().await;
    assert_eq!(operator.ask("KEEPALIVE").await, "KEEPALIVE,OK");

    // Once an idle connection goes, its place is free again (after the server has
    // seen the close).
    drop(idle.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut next = server.connect().await;
        // A refusal comes at once; read it before writing, which could meet a reset.
        let quiet = Duration::from_millis(200);
        match tokio::time::timeout(quiet, next.next()).await {
            Err(_) => {
                assert_eq!(next.ask("KEEPALIVE").await, "KEEPALIVE,OK");
                break;
            }
            Ok(refused) => {
                assert_eq!(refused.as_deref(), Some(TOO_MANY));
                assert!(Instant::now() < deadline, "the place was not freed");
            }
        }
    }
}
