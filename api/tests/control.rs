//! The TCP 4011 control server over real TCP connections, with a real SQLite file
//! store and a recording stand-in for the call engine that publishes the events
//! the engine would. End-to-end tests with real SIP calls live in the workspace's
//! tests/ once the call engine exists.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tutti_api::control::{MAX_CONNECTIONS, serve};
use tutti_api::live::*;
use tutti_api::model::{Call, Caller, Conference, Customer, Direction, Role};
use tutti_api::ops::{Kind, Ops, OpsError, OpsSettings};
use tutti_api::{Store, Time};

const PASSWORD: &str = "s3cret, really";
/// How long a test waits for a line that should come.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a test listens to be sure a line does not come.
const QUIET: Duration = Duration::from_millis(300);

/// The call engine's stand-in: remembers every request, knows the callers the
/// test registers, and publishes the events a real engine would.
struct FakeLive {
    bus: EventBus,
    calls: Mutex<Vec<String>>,
    callers: Mutex<HashSet<String>>,
}

impl FakeLive {
    fn record(&self, call: String) {
        self.calls.lock().expect("lock").push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }

    fn knows(&self, caller: &str) -> LiveResult<()> {
        if self.callers.lock().expect("lock").contains(caller) {
            Ok(())
        } else {
            Err(OpsError::NotFound(Kind::Caller))
        }
    }
}

fn ready<'a, T: Send + 'a>(result: LiveResult<T>) -> LiveFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl LiveControl for FakeLive {
    fn update_caller(&self, caller_uid: String, update: CallerUpdate) -> LiveFuture<'_, ()> {
        self.record(format!("update_caller {caller_uid} {update:?}"));
        ready(self.knows(&caller_uid))
    }

    fn drop_caller(&self, caller_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("drop_caller {caller_uid}"));
        ready(self.knows(&caller_uid))
    }

    fn move_caller(&self, caller_uid: String, conference_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("move_caller {caller_uid} {conference_uid}"));
        ready(self.knows(&caller_uid))
    }

    fn conference_changed(&self, conference_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("conference_changed {conference_uid}"));
        ready(Ok(()))
    }

    fn play(&self, request: PlayRequest) -> LiveFuture<'_, ()> {
        self.record(format!("play {request:?}"));
        if let Target::Caller(uid) = &request.target
            && let Err(e) = self.knows(uid)
        {
            return ready(Err(e));
        }
        let media = match &request.media {
            Media::File { name, .. } => PlaybackMedia::File(name.clone()),
            Media::Tts(_) => PlaybackMedia::Tts,
        };
        self.bus.publish(Event::Playback {
            conference_uid: String::new(),
            call_uid: String::new(),
            target: request.target,
            media,
            state: PlaybackState::Playing,
        });
        ready(Ok(()))
    }

    fn stop_playback(&self, target: Target) -> LiveFuture<'_, ()> {
        self.record(format!("stop_playback {target:?}"));
        match &target {
            Target::Caller(uid) => ready(self.knows(uid)),
            Target::Conference(_) => ready(Ok(())),
        }
    }

    fn dial(&self, request: DialRequest) -> LiveFuture<'_, String> {
        self.record(format!(
            "dial {} {} {:?}",
            request.conference_uid, request.number, request.remote_command
        ));
        let uid = format!("out-{}", self.calls().len());
        self.callers.lock().expect("lock").insert(uid.clone());
        if request.records_conference() {
            // The engine starts the conference's one recording itself.
            self.record(format!("start_recording {} None", request.conference_uid));
        }
        self.bus.publish(Event::Outbound {
            conference_uid: request.conference_uid,
            call_uid: None,
            caller_uid: uid.clone(),
            progress: OutboundProgress::Presenting,
        });
        ready(Ok(uid))
    }

    fn start_recording(
        &self,
        conference_uid: String,
        caller_uid: Option<String>,
    ) -> LiveFuture<'_, String> {
        self.record(format!("start_recording {conference_uid} {caller_uid:?}"));
        ready(Ok("rec-1".into()))
    }

    fn stop_recording(&self, recording_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("stop_recording {recording_uid}"));
        ready(Ok(()))
    }

    fn close_call(&self, call_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("close_call {call_uid}"));
        ready(Ok(()))
    }

    fn update_call(&self, call_uid: String, update: CallUpdate) -> LiveFuture<'_, ()> {
        self.record(format!("update_call {call_uid} {update:?}"));
        ready(Ok(()))
    }

    fn set_breakout_private(&self, breakout_uid: String, private: bool) -> LiveFuture<'_, ()> {
        self.record(format!("set_breakout_private {breakout_uid} {private}"));
        ready(Ok(()))
    }
}

/// A running control server on a loopback port, with its store and stand-in.
struct Server {
    _dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    store: Store,
    live: Arc<FakeLive>,
    bus: EventBus,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Self {
        Self::start_in(jiff::tz::TimeZone::UTC).await
    }

    async fn start_in(timezone: jiff::tz::TimeZone) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("tutti.db").display());
        let store = Store::open(&url).await.expect("open store");
        store.create_customer(&Customer::new("default")).await.expect("customer");
        store.set_control_password(PASSWORD).await.expect("password");
        let sounds_dir: PathBuf = dir.path().join("sounds");
        std::fs::create_dir_all(&sounds_dir).expect("sounds dir");
        std::fs::write(sounds_dir.join("hello.wav"), b"RIFF....WAVE").expect("wav");
        std::fs::write(dir.path().join("secret.wav"), b"RIFF....WAVE").expect("wav");
        let bus = EventBus::new();
        let live = Arc::new(FakeLive {
            bus: bus.clone(),
            calls: Mutex::default(),
            callers: Mutex::default(),
        });
        let ctx = Ops::new(
            store.clone(),
            live.clone(),
            bus.clone(),
            OpsSettings {
                sounds_dir,
                recordings_dir: dir.path().join("recordings"),
                timezone,
                control_customer: None,
                max_calls: 500,
                started: Instant::now(),
                version: "test",
                events_port: 0,
                sound_quota_bytes: tutti_api::ops::DEFAULT_SOUND_QUOTA_BYTES,
                http_auth_failures: 0,
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, None, ctx, stopped));
        Self { _dir: dir, addr, store, live, bus, stop, task }
    }

    async fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (read, write) = stream.into_split();
        Client { lines: BufReader::new(read), write }
    }

    async fn login(&self) -> Client {
        let mut client = self.connect().await;
        client.send(&format!("LOGIN,\"{PASSWORD}\"")).await;
        client.expect("LOGIN,OK").await;
        client
    }

    /// A live call session of `conference` with a connected caller.
    async fn add_caller(&self, conference: &Conference, name: &str, ani: &str) -> Caller {
        let calls = self.store.calls_of(&conference.uid).await.expect("calls");
        let call = match calls.into_iter().next() {
            Some(call) => call,
            None => {
                let call = Call::new(conference, Time::now());
                self.store.start_call(&call).await.expect("start call");
                call
            }
        };
        let mut caller = Caller::new(&call.uid, Direction::Inbound, Role::Participant, Time::now());
        caller.name = name.into();
        caller.ani = ani.into();
        self.store.insert(&caller).await.expect("caller");
        self.live.callers.lock().expect("lock").insert(caller.uid.clone());
        caller
    }

    async fn conference(&self, cn: &str) -> Conference {
        self.store.conference_by_number(cn).await.expect("query").expect("stored")
    }
}

struct Client {
    lines: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Client {
    async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.expect("write");
    }

    /// The next line, without its CR LF.
    async fn recv(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(PATIENCE, self.lines.read_line(&mut line))
            .await
            .expect("a line in time")
            .expect("read");
        assert!(n > 0, "connection closed while waiting for a line");
        assert!(line.ends_with("\r\n"), "CR LF line end: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    async fn expect(&mut self, want: &str) {
        assert_eq!(self.recv().await, want);
    }

    /// Sends a command and returns its answer line.
    async fn ask(&mut self, line: &str) -> String {
        self.send(line).await;
        self.recv().await
    }

    /// Asserts that nothing arrives for a while.
    async fn expect_silence(&mut self) {
        let mut line = String::new();
        if let Ok(read) = tokio::time::timeout(QUIET, self.lines.read_line(&mut line)).await {
            panic!("expected silence, got {read:?}: {line:?}");
        }
    }

    /// Asserts that the server closes the connection.
    async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(PATIENCE, self.lines.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        assert_eq!(n, 0, "unexpected bytes before close: {:?}", String::from_utf8_lossy(&rest));
    }
}

/// The `<conf-guid>` of a `NEWCONF,<conf-guid>,<cn>,<company>` event line.
fn guid_of(event: &str) -> String {
    let mut fields = event.split(',');
    assert_eq!(fields.next(), Some("NEWCONF"), "{event}");
    fields.next().expect("guid").to_owned()
}

#[tokio::test]
async fn wrong_passwords_are_answered_slowly_and_the_third_closes() {
    let server = Server::start().await;
    let mut client = server.connect().await;
    for _ in 0..2 {
        let sent = Instant::now();
        assert_eq!(client.ask("LOGIN,wrong").await, r#"LOGIN,ERROR,"Invalid password""#);
        let waited = sent.elapsed();
        assert!(waited >= Duration::from_millis(900), "answered after {waited:?}");
    }
    // The third failure closes the connection; what follows it is not answered,
    // and the last answer still arrives.
    client.send_raw(b"LOGIN,wrong\r\nKEEPALIVE\r\n").await;
    client.expect(r#"LOGIN,ERROR,"Invalid password""#).await;
    client.expect_closed().await;
    // Other connections are not affected.
    let mut other = server.login().await;
    assert_eq!(other.ask("KEEPALIVE").await, "KEEPALIVE,OK");
}

#[tokio::test]
async fn before_login_only_login_and_keepalive_work() {
    let server = Server::start().await;
    let mut client = server.connect().await;
    assert_eq!(client.ask("LISTCONF").await, r#"ERROR,"Not logged in""#);
    assert_eq!(client.ask("GETCONF,x").await, r#"ERROR,"Not logged in""#);
    assert_eq!(client.ask("LIST").await, r#"ERROR,"Not logged in""#);
    assert_eq!(client.ask("KEEPALIVE,ping").await, "KEEPALIVE,OK,ping");
    assert_eq!(client.ask("LOGIN").await, r#"LOGIN,ERROR,"Syntax error""#);
    assert_eq!(client.ask(&format!("login,\"{PASSWORD}\"")).await, "LOGIN,OK");
    assert_eq!(client.ask("LISTCONF").await, "LISTCONF,OK");
}

#[tokio::test]
async fn unknown_commands_and_syntax_errors() {
    let server = Server::start().await;
    let mut client = server.login().await;
    assert_eq!(client.ask("LIST").await, r#"ERROR,"Unknown command",LIST"#);
    assert_eq!(client.ask("LISTUSER").await, r#"LISTUSER,ERROR,"Syntax error""#);
    assert_eq!(client.ask("LISTUSER,a,b").await, r#"LISTUSER,ERROR,"Syntax error""#);
    assert_eq!(client.ask("PLAYTTS,u,\"open").await, r#"PLAYTTS,ERROR,"Syntax error""#);
    assert_eq!(client.ask("MUTEUSER,u,maybe").await, r#"MUTEUSER,ERROR,"Invalid mute value""#);
    assert_eq!(
        client.ask("LISTUSER,no-such-conference").await,
        r#"LISTUSER,ERROR,"Conference not found""#
    );
    // Blank lines are not answered; the next command is.
    client.send("").await;
    assert_eq!(client.ask("KEEPALIVE,\"a, b\"").await, r#"KEEPALIVE,OK,"a, b""#);
}

#[tokio::test]
async fn lines_may_end_in_lf_arrive_in_pieces_and_be_too_long() {
    let server = Server::start().await;
    let mut client = server.login().await;
    client.send_raw(b"KEEPALIVE,one\nKEEPA").await;
    client.expect("KEEPALIVE,OK,one").await;
    client.send_raw(b"LIVE,two\r").await;
    client.expect_silence().await;
    client.send_raw(b"\n").await;
    client.expect("KEEPALIVE,OK,two").await;
    client.send_raw(&vec![b'x'; 10_000]).await;
    client.expect(r#"ERROR,"Line too long""#).await;
    client.send_raw(b"still the long line\r\nKEEPALIVE,three\r\n").await;
    client.expect("KEEPALIVE,OK,three").await;
}

#[tokio::test]
async fn conference_lifecycle_with_events_to_logged_in_clients_only() {
    let server = Server::start().await;
    let mut a = server.login().await;
    let mut b = server.login().await;
    let mut outsider = server.connect().await;

    a.send("NEWCONF,1234,“Acme, Ltd”,\"Bob \"\"B\"\" Smith\",10,01/07/2026,10:00,11:30,4321").await;
    a.expect("NEWCONF,OK").await;
    let event = a.recv().await;
    assert!(event.ends_with(r#",1234,"Acme, Ltd""#), "{event}");
    assert_eq!(b.recv().await, event);
    let guid = guid_of(&event);
    assert_eq!(server.conference("1234").await.uid, guid);

    a.send(&format!("GETCONF,{guid}")).await;
    a.expect(&format!(
        r#"GETCONF,{guid},1234,"Acme, Ltd","Bob ""B"" Smith",10,01/07/2026,10:00,11:30,4321"#
    ))
    .await;
    a.expect("GETCONF,OK").await;

    a.send("LISTCONF").await;
    a.expect(&format!(r#"LISTCONF,{guid},1234,"Acme, Ltd",0"#)).await;
    a.expect("LISTCONF,OK").await;

    assert_eq!(
        a.ask("NEWCONF,1234,Other,,,,,,").await,
        r#"NEWCONF,ERROR,"Conference number already in use""#
    );

    a.send(&format!("MODCONF,{guid},5678,Acme,Carol,0,2026-12-24,09:00:00,,")).await;
    a.expect("MODCONF,OK").await;
    let modified = format!(r#"MODCONF,{guid},5678,"Acme","Carol",0,24/12/2026,09:00,,"#);
    a.expect(&modified).await;
    b.expect(&modified).await;
    assert!(server.live.calls().contains(&format!("conference_changed {guid}")));
    let stored = server.conference("5678").await;
    assert_eq!(stored.max_members, None);
    assert_eq!(stored.participant_pin, None);
    assert_eq!(stored.scheduled_end, None);

    assert_eq!(a.ask(&format!("DELCONF,{guid}")).await, "DELCONF,OK");
    let deleted = format!(r#"DELCONF,{guid},5678,"Acme""#);
    a.expect(&deleted).await;
    b.expect(&deleted).await;
    assert_eq!(a.ask(&format!("GETCONF,{guid}")).await, r#"GETCONF,ERROR,"Conference not found""#);
    assert_eq!(a.ask(&format!("DELCONF,{guid}")).await, r#"DELCONF,ERROR,"Conference not found""#);

    outsider.expect_silence().await;
    b.expect_silence().await;
}

/// Creates a conference through `client` and returns its GUID.
async fn new_conference(client: &mut Client, fields: &str) -> String {
    client.send(&format!("NEWCONF,{fields}")).await;
    client.expect("NEWCONF,OK").await;
    guid_of(&client.recv().await)
}

#[tokio::test]
async fn listuser_lists_the_connected_callers_and_listconf_counts_them() {
    let server = Server::start().await;
    let mut client = server.login().await;
    let guid = new_conference(&mut client, "100,Acme,Bob,,,,,").await;
    let conference = server.conference("100").await;
    let jo = server.add_caller(&conference, "Smith, Jo", "+441234567").await;
    let gone = server.add_caller(&conference, "Gone", "999").await;
    let mut left = gone.clone();
    left.active = false;
    server.store.update(&left).await.expect("caller left");
    let mut quiet = server.add_caller(&conference, "Quiet", "555").await;
    quiet.listen_only = true;
    server.store.update(&quiet).await.expect("listen only");

    client.send(&format!("LISTUSER,{guid}")).await;
    client.expect(&format!(r#"LISTUSER,{guid},{},"+441234567","Smith, Jo",0"#, jo.uid)).await;
    client.expect(&format!(r#"LISTUSER,{guid},{},"555","Quiet",1"#, quiet.uid)).await;
    client.expect("LISTUSER,OK").await;

    client.send("LISTCONF").await;
    client.expect(&format!(r#"LISTCONF,{guid},100,"Acme",2"#)).await;
    client.expect("LISTCONF,OK").await;

    assert_eq!(client.ask(&format!("MUTEALL,{guid},on")).await, "MUTEALL,OK");
    assert_eq!(client.ask(&format!("DTMFALL,{guid},false")).await, "DTMFALL,OK");
    let calls = server.live.calls();
    for caller in [&jo, &quiet] {
        assert!(calls.contains(&format!("update_caller {} Mute(true)", caller.uid)), "{calls:?}");
        assert!(calls.contains(&format!("update_caller {} DtmfAllowed(false)", caller.uid)));
    }
    assert!(!calls.iter().any(|c| c.contains(&gone.uid)), "a caller who left is not touched");

    // DELCONF ends the live call first.
    assert_eq!(client.ask(&format!("DELCONF,{guid}")).await, "DELCONF,OK");
    assert!(server.live.calls().iter().any(|c| c.starts_with("close_call ")));
}

#[tokio::test]
async fn caller_commands_reach_the_call_engine() {
    let server = Server::start().await;
    let mut client = server.login().await;
    let guid = new_conference(&mut client, "200,Acme,Bob,,,,,").await;
    let conference = server.conference("200").await;
    let jo = server.add_caller(&conference, "Jo", "1").await;
    let u = &jo.uid;

    assert_eq!(client.ask("MUTEUSER,nobody,1").await, r#"MUTEUSER,ERROR,"User not found""#);
    assert_eq!(client.ask(&format!("MUTEUSER,{u},1")).await, "MUTEUSER,OK");
    assert_eq!(client.ask(&format!("DTMFUSER,{u},off")).await, "DTMFUSER,OK");
    assert_eq!(client.ask(&format!("STOPWAV,{u}")).await, "STOPWAV,OK");
    assert_eq!(client.ask(&format!("STOPWAVALL,{guid}")).await, "STOPWAVALL,OK");
    assert_eq!(
        client.ask(&format!("MOVEUSER,{u},nowhere")).await,
        r#"MOVEUSER,ERROR,"Conference not found""#
    );
    assert_eq!(client.ask(&format!("MOVEUSER,{u},{guid}")).await, "MOVEUSER,OK");
    assert_eq!(client.ask(&format!("DROPUSER,{u}")).await, "DROPUSER,OK");
    assert_eq!(client.ask("DROPUSER,nobody").await, r#"DROPUSER,ERROR,"User not found""#);
    let calls = server.live.calls();
    for want in [
        format!("update_caller {u} Mute(true)"),
        format!("update_caller {u} DtmfAllowed(false)"),
        format!("stop_playback Caller(\"{u}\")"),
        format!("stop_playback Conference(\"{guid}\")"),
        format!("move_caller {u} {guid}"),
        format!("drop_caller {u}"),
    ] {
        assert!(calls.contains(&want), "{want} in {calls:?}");
    }

    client.send(&format!("PLAYTTS,{u},\"Hello, Jo\"")).await;
    client.expect("PLAYTTS,OK").await;
    client.expect(&format!("PLAYTTS,PLAYING,{u}")).await;
    client.send(&format!("PLAYTTSALL,{guid},Welcome")).await;
    client.expect("PLAYTTSALL,OK").await;
    client.expect(&format!("PLAYTTSALL,PLAYING,{guid}")).await;

    assert_eq!(client.ask(&format!("CONFBEEP,{guid},0")).await, "CONFBEEP,OK");
    assert!(client.recv().await.starts_with(&format!("MODCONF,{guid},200,")));
    assert!(!server.conference("200").await.beep_on_entry);
}

#[tokio::test]
async fn playwav_finds_files_in_the_sounds_directory_only() {
    let server = Server::start().await;
    let mut client = server.login().await;
    let guid = new_conference(&mut client, "300,Acme,Bob,,,,,").await;
    let jo = server.add_caller(&server.conference("300").await, "Jo", "1").await;
    let u = &jo.uid;

    for name in ["../secret.wav", "/etc/passwd", "a/../../secret.wav", "\"..\\secret.wav\""] {
        assert_eq!(
            client.ask(&format!("PLAYWAV,{u},{name},0")).await,
            r#"PLAYWAV,ERROR,"Invalid wav-file""#,
            "{name}"
        );
    }
    assert_eq!(
        client.ask(&format!("PLAYWAV,{u},missing.wav,0")).await,
        r#"PLAYWAV,ERROR,"File not found""#
    );
    assert_eq!(client.ask("PLAYWAV,nobody,hello.wav,0").await, r#"PLAYWAV,ERROR,"User not found""#);
    assert!(!server.live.calls().iter().any(|c| c.contains("secret")));

    client.send(&format!("PLAYWAV,{u},hello.wav,1")).await;
    client.expect("PLAYWAV,OK").await;
    client.expect(&format!(r#"PLAYWAV,PLAYING,{u},"hello.wav""#)).await;
    client.send(&format!("PLAYWAVALL,{guid},hello,true")).await;
    client.expect("PLAYWAVALL,OK").await;
    client.expect(&format!(r#"PLAYWAVALL,PLAYING,{guid},"hello.wav""#)).await;
    let played: Vec<String> =
        server.live.calls().into_iter().filter(|c| c.starts_with("play ")).collect();
    assert_eq!(played.len(), 3, "{played:?}");
    assert!(played[1].contains(&format!("Caller(\"{u}\")")), "{played:?}");
    assert!(played[1].contains("looped: true") && played[1].contains("sounds/hello.wav"));
}

#[tokio::test]
async fn calluser_answers_with_the_new_callers_guid() {
    let server = Server::start().await;
    let mut client = server.login().await;
    let guid = new_conference(&mut client, "400,Acme,Bob,2,,,,").await;

    client.send(&format!("CALLUSER,{guid},01234567890")).await;
    let answer = client.recv().await;
    let prefix = format!("CALLUSER,OK,{guid},");
    let user = answer.strip_prefix(&prefix).unwrap_or_else(|| panic!("{answer}")).to_owned();
    client.expect(&format!("CALLUSER,{user},Presenting")).await;

    client.send(&format!("CALLUSER,{guid},sip:bob@example.com,!LeaveRecording")).await;
    assert!(client.recv().await.starts_with(&prefix));
    assert!(client.recv().await.ends_with(",Presenting"));
    let calls = server.live.calls();
    assert!(calls.contains(&format!("dial {guid} 01234567890 None")), "{calls:?}");
    assert!(calls.contains(&format!("dial {guid} sip:bob@example.com Some(\"!LeaveRecording\")")));
    assert!(calls.contains(&format!("start_recording {guid} None")));
    assert_eq!(calls.iter().filter(|c| c.starts_with("start_recording")).count(), 1);

    assert_eq!(
        client.ask("CALLUSER,nowhere,123").await,
        r#"CALLUSER,ERROR,"Conference not found""#
    );
    // Two connected callers fill a conference of two.
    let conference = server.conference("400").await;
    server.add_caller(&conference, "A", "1").await;
    server.add_caller(&conference, "B", "2").await;
    assert_eq!(
        client.ask(&format!("CALLUSER,{guid},123")).await,
        r#"CALLUSER,ERROR,"Conference full""#
    );
}

#[tokio::test]
async fn engine_events_reach_every_logged_in_client() {
    let server = Server::start().await;
    let mut a = server.login().await;
    let mut b = server.login().await;
    let mut outsider = server.connect().await;
    let mut caller = Caller::new("call-1", Direction::Inbound, Role::Participant, Time::now());
    caller.uid = "user-1".into();
    caller.ani = "0123".into();
    caller.name = "Jo".into();

    server
        .bus
        .publish(Event::CallerJoined { conference_uid: "conf-1".into(), caller: caller.clone() });
    server.bus.publish(Event::Talking {
        conference_uid: "conf-1".into(),
        call_uid: "call-1".into(),
        caller_uid: "user-1".into(),
        talking: true,
    });
    server.bus.publish(Event::Digit {
        conference_uid: "conf-1".into(),
        call_uid: "call-1".into(),
        caller_uid: "user-1".into(),
        digit: '5',
    });
    server.bus.publish(Event::Outbound {
        conference_uid: "conf-1".into(),
        call_uid: Some("call-1".into()),
        caller_uid: "user-2".into(),
        progress: OutboundProgress::Connected,
    });
    server.bus.publish(Event::Playback {
        conference_uid: "conf-1".into(),
        call_uid: "call-1".into(),
        target: Target::Caller("user-1".into()),
        media: PlaybackMedia::File("hello.wav".into()),
        state: PlaybackState::Done,
    });
    server.bus.publish(Event::CallerLeft { conference_uid: "conf-1".into(), caller });
    for client in [&mut a, &mut b] {
        client.expect(r#"NEWUSER,conf-1,user-1,"0123","Jo",0"#).await;
        client.expect("DIGIT,conf-1,user-1,5").await;
        client.expect("CALLUSER,user-2,Connected").await;
        client.expect("PLAYWAV,DONE,user-1").await;
        client.expect(r#"DELUSER,conf-1,user-1,"0123","Jo",0"#).await;
    }
    outsider.expect_silence().await;

    // Logging in starts the events from then on; nothing earlier is replayed.
    outsider.send(&format!("LOGIN,\"{PASSWORD}\"")).await;
    outsider.expect("LOGIN,OK").await;
    server.bus.publish(Event::Digit {
        conference_uid: "conf-1".into(),
        call_uid: "call-1".into(),
        caller_uid: "user-1".into(),
        digit: '#',
    });
    outsider.expect("DIGIT,conf-1,user-1,#").await;
    a.expect("DIGIT,conf-1,user-1,#").await;
}

#[tokio::test]
async fn dates_are_read_and_written_in_the_servers_time_zone() {
    let zone = jiff::tz::TimeZone::get("America/New_York").expect("tzdb");
    let server = Server::start_in(zone).await;
    let mut client = server.login().await;
    let guid = new_conference(&mut client, "500,Acme,Bob,,2026-07-01,10:00,23:30:00,").await;
    let stored = server.conference("500").await;
    // New York is UTC-4 in July.
    assert_eq!(
        stored.scheduled_start.map(|t| t.to_string()).as_deref(),
        Some("2026-07-01T14:00:00.000Z")
    );
    assert_eq!(
        stored.scheduled_end.map(|t| t.to_string()).as_deref(),
        Some("2026-07-02T03:30:00.000Z")
    );
    client.send(&format!("GETCONF,{guid}")).await;
    client.expect(&format!(r#"GETCONF,{guid},500,"Acme","Bob",0,01/07/2026,10:00,23:30,"#)).await;
    client.expect("GETCONF,OK").await;

    assert_eq!(
        client.ask("NEWCONF,501,A,B,,31/02/2026,,,").await,
        r#"NEWCONF,ERROR,"Invalid date""#
    );
    assert_eq!(
        client.ask("NEWCONF,501,A,B,,,10:00,,").await,
        r#"NEWCONF,ERROR,"Start or end time without a date""#
    );
    assert_eq!(
        client.ask("NEWCONF,501,A,B,,01/01/2027,9.30,,").await,
        r#"NEWCONF,ERROR,"Invalid start time""#
    );
    // A conference keeps its own number; another conference's is refused.
    let other = new_conference(&mut client, "502,Other,,,,,,").await;
    assert_eq!(
        client.ask(&format!("MODCONF,{other},500,Other,,,,,,")).await,
        r#"MODCONF,ERROR,"Conference number already in use""#
    );
    assert_eq!(client.ask(&format!("MODCONF,{guid},500,Acme,Bob,,,,,")).await, "MODCONF,OK");
    client.expect(&format!(r#"MODCONF,{guid},500,"Acme","Bob",0,,,,"#)).await;
    assert_eq!(server.conference("500").await.scheduled_start, None, "unscheduled again");
}

#[tokio::test]
async fn connections_over_the_limit_are_refused() {
    let server = Server::start().await;
    let mut open = Vec::new();
    // Logged in: only a share of the places is for connections that have not
    // logged in yet (tests/control_login.rs).
    for _ in 0..MAX_CONNECTIONS {
        let mut client = server.login().await;
        assert_eq!(client.ask("KEEPALIVE").await, "KEEPALIVE,OK");
        open.push(client);
    }
    let mut extra = server.connect().await;
    extra.expect(r#"ERROR,"Too many connections""#).await;
    extra.expect_closed().await;
    drop(open.pop());
    // The freed place is taken by the next connection, once the server has seen
    // the close.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut next = server.connect().await;
    assert_eq!(next.ask("KEEPALIVE").await, "KEEPALIVE,OK");
}

#[tokio::test]
async fn shutdown_closes_connections_and_returns() {
    let server = Server::start().await;
    let mut client = server.login().await;
    server.stop.send(true).expect("server listening");
    client.expect_closed().await;
    let result = tokio::time::timeout(PATIENCE, server.task).await.expect("in time");
    result.expect("no panic").expect("no error");
}
