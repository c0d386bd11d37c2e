//! The SIPp scenarios of scripts/sipp/ against the real `tutti` binary (needs
//! `sipp`, Debian package sip-tester): calls into a conference created over TCP
//! 4011, with RTP, DTMF, hold, late offer, TCP, CANCEL, malformed requests and a
//! lost ACK; and calls tutti places (CALLUSER) answered, refused or left ringing
//! by SIPp as UAS. Each scenario's success is SIPp's exit code 0; what tutti's
//! engine did is checked on the 4011 event stream.
//!
//! The scenarios are the same files sip/tests runs against an in-process user
//! agent; here the engine behind the UA is the real one, which answers a known
//! conference number at once (no 180) and refuses unknown numbers with 404.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Server;

/// How long any single 4011 answer or event may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// SIPp ends itself after `-timeout 20s`; this is the backstop.
const SIPP_DEADLINE: Duration = Duration::from_secs(40);
/// SIPp's own -timeout for a scenario (it exits with an error after it).
const SIPP_TIMEOUT: Duration = Duration::from_secs(20);

/// A logged-in TCP 4011 client that keeps every event line it has read.
struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Event lines not yet taken by [`Control::event`].
    events: Vec<String>,
    /// Every line read, for failure messages.
    transcript: Vec<String>,
}

impl Control {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect 4011");
        stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        let mut control = Self {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            events: Vec::new(),
            transcript: Vec::new(),
        };
        assert_eq!(control.command("LOGIN,secret", "LOGIN"), Ok("LOGIN,OK".into()));
        control
    }

    /// The next line, or None when nothing came by `deadline`.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        let mut line = String::new();
        loop {
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) if line.ends_with('\n') => {
                    let line = line.trim_end().to_owned();
                    self.transcript.push(line.clone());
                    return Some(line);
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return None;
                    }
                }
                Err(e) => panic!("4011 read failed: {e}"),
            }
        }
    }

    /// Sends a one-line command; returns its answer (`<CMD>,OK...` as Ok, an
    /// error line as Err). Event lines read meanwhile are kept.
    fn command(&mut self, command: &str, name: &str) -> Result<String, String> {
        write!(self.writer, "{command}\r\n").expect("write 4011");
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let Some(line) = self.line(deadline) else {
                return Err(format!("no answer to {command}"));
            };
            if line.starts_with("ERROR,") || line.starts_with(&format!("{name},ERROR")) {
                return Err(line);
            }
            if line == format!("{name},OK") || line.starts_with(&format!("{name},OK,")) {
                return Ok(line);
            }
            self.events.push(line);
        }
    }

    /// The first event line starting with `prefix` (taken from those already
    /// read, or waited for), or None after [`EVENT_TIMEOUT`].
    fn event(&mut self, prefix: &str) -> Option<String> {
        if let Some(i) = self.events.iter().position(|l| l.starts_with(prefix)) {
            return Some(self.events.remove(i));
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let line = self.line(deadline)?;
            if line.starts_with(prefix) {
                return Some(line);
            }
            self.events.push(line);
        }
    }

    /// Reads for `wait` and returns every event line not yet taken.
    fn drain(&mut self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        while let Some(line) = self.line(deadline) {
            self.events.push(line);
        }
        std::mem::take(&mut self.events)
    }
}

/// A server with conference 4001 created over 4011, and a SIPp runner.
struct Rig {
    server: Server,
    control: Control,
    conf_guid: String,
    /// tutti's SIP UDP and TCP addresses.
    udp: SocketAddr,
    tcp: SocketAddr,
    /// SIPp's working directory and logs.
    dir: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Rig {
    fn start() -> Rig {
        Rig::start_with(&[])
    }

    /// A rig whose server also gets `extra` options.
    fn start_with(extra: &[&str]) -> Rig {
        let data = tempfile::tempdir().expect("temp dir");
        let mut args = vec![
            "--control-password",
            "secret",
            "--ring-timeout",
            "2",
            "--log",
            "info,tutti=debug",
        ];
        args.extend_from_slice(extra);
        let server = Server::start(data.path(), &args);
        let udp = server.logged_addr("SIP listening", "udp");
        let tcp = server.logged_addr("SIP listening", "tcp");
        let mut control =
            Control::connect(server.logged_addr("control protocol listening", "addr"));
        assert_eq!(
            control.command("NEWCONF,4001,Acme,Ann,10,,,,", "NEWCONF"),
            Ok("NEWCONF,OK".into())
        );
        let created = control.event("NEWCONF,").expect("NEWCONF event");
        let conf_guid = created.split(',').nth(1).expect("conf guid").to_owned();
        Rig {
            server,
            control,
            conf_guid,
            udp,
            tcp,
            dir: tempfile::tempdir().expect("temp dir"),
            data,
        }
    }

    /// Fails the test with everything worth reading: SIPp's logs, the 4011
    /// transcript and the server's log.
    fn fail(&mut self, what: &str) -> ! {
        let mut report = format!("{what}\n");
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "log")) {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                report.push_str(&format!("--- {} ---\n{text}\n", file.display()));
            }
        }
        report.push_str(&format!(
            "--- 4011 transcript ---\n{}\n--- server log ---\n{}",
            self.control.transcript.join("\n"),
            self.server.logs()
        ));
        panic!("{report}");
    }

    fn event(&mut self, prefix: &str) -> String {
        match self.control.event(prefix) {
            Some(line) => line,
            None => self.fail(&format!("no 4011 event starting {prefix:?}")),
        }
    }

    fn command(&mut self, command: &str, name: &str) -> String {
        match self.control.command(command, name) {
            Ok(line) => line,
            Err(e) => self.fail(&format!("{command}: {e}")),
        }
    }

    /// Starts SIPp with `scenario` from scripts/sipp/ (`remote` None: as UAS).
    fn spawn_sipp(&self, scenario: &str, remote: Option<SocketAddr>, args: &[&str]) -> Sipp {
        self.spawn_sipp_for(scenario, remote, args, SIPP_TIMEOUT)
    }

    /// As [`Rig::spawn_sipp`], for a scenario that may take up to `limit`.
    fn spawn_sipp_for(
        &self,
        scenario: &str,
        remote: Option<SocketAddr>,
        args: &[&str],
        limit: Duration,
    ) -> Sipp {
        let errors = self.dir.path().join(format!("{scenario}.errors.log"));
        let messages = self.dir.path().join(format!("{scenario}.messages.log"));
        let media = support::free_udp_range(4).to_string();
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenario_path(scenario))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", &media])
            .args(["-nostdin", "-m", "1", "-timeout", &format!("{}s", limit.as_secs())])
            .arg("-timeout_error")
            .args(["-trace_err", "-error_file"])
            .arg(&errors)
            .args(["-trace_msg", "-message_file"])
            .arg(&messages)
            .args(args);
        if !args.contains(&"-p") {
            cmd.args(["-p", &free_port(args.contains(&"t1")).to_string()]);
        }
        if let Some(remote) = remote {
            cmd.arg(remote.to_string());
        }
        let child = cmd
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp runs (apt-get install sip-tester)");
        Sipp {
            child,
            scenario: scenario.to_owned(),
            deadline: limit + SIPP_DEADLINE - SIPP_TIMEOUT,
        }
    }

    /// Waits for SIPp and fails the test unless it exited 0.
    fn expect_success(&mut self, mut sipp: Sipp) {
        let (code, stderr) = sipp.wait();
        if code != Some(0) {
            self.fail(&format!("sipp {} exited {code:?}: {stderr}", sipp.scenario));
        }
    }

    /// Runs a UAC scenario against tutti's UDP address and expects success.
    fn uac(&mut self, scenario: &str, args: &[&str]) {
        let sipp = self.spawn_sipp(scenario, Some(self.udp), args);
        self.expect_success(sipp);
    }

    /// The -trace_msg log of `scenario`.
    fn messages(&self, scenario: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{scenario}.messages.log")))
            .unwrap_or_default()
    }

    /// Waits for a caller to join conference 4001; returns its call-guid.
    fn joined(&mut self) -> String {
        let prefix = format!("NEWUSER,{},", self.conf_guid);
        let line = self.event(&prefix);
        line.split(',').nth(2).expect("call guid").to_owned()
    }

    /// Waits for `call_guid` to leave conference 4001.
    fn left(&mut self, call_guid: &str) {
        let prefix = format!("DELUSER,{},{call_guid},", self.conf_guid);
        self.event(&prefix);
    }
}

struct Sipp {
    child: Child,
    scenario: String,
    /// How long to wait for it to exit before killing it.
    deadline: Duration,
}

impl Sipp {
    /// SIPp's exit code (None if it had to be killed) and its standard error.
    fn wait(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + self.deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for sipp") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        (status.and_then(|s| s.code()), stderr)
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sipp").join(name)
}

/// A loopback port free right now (UDP, or TCP for `-t t1`).
fn free_port(tcp: bool) -> u16 {
    if tcp {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    } else {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    }
}

// ---------------------------------------------------------------------------
// Calls into a conference (SIPp as UAC).

#[test]
fn uac_call_with_rtp_into_a_conference() {
    const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";
    assert!(Path::new(PCAP).exists(), "{PCAP} missing (apt-get install sip-tester)");
    let mut rig = Rig::start();
    rig.uac("uac_call_rtp.xml", &["-s", "4001"]);
    let call = rig.joined();
    rig.left(&call);
}

#[test]
fn call_hung_up_by_the_server_through_dropuser() {
    let mut rig = Rig::start();
    let sipp = rig.spawn_sipp("uac_server_hangup.xml", Some(rig.udp), &["-s", "4001"]);
    let call = rig.joined();
    rig.command(&format!("DROPUSER,{call}"), "DROPUSER");
    rig.expect_success(sipp);
    rig.left(&call);
}

#[test]
fn session_timer_refreshed_by_tutti_on_the_wire() {
    // RFC 4028 with the minimum interval: 90 s, refreshed by tutti after 45 s.
    // The scenario sends no RTP for longer than the default --rtp-timeout.
    let mut rig = Rig::start_with(&["--rtp-timeout", "0"]);
    let sipp = rig.spawn_sipp_for(
        "uac_session_timer.xml",
        Some(rig.udp),
        &["-s", "4001"],
        Duration::from_secs(75),
    );
    let call = rig.joined();
    rig.expect_success(sipp);
    rig.left(&call);
}

#[test]
fn late_offer() {
    let mut rig = Rig::start();
    rig.uac("uac_late_offer.xml", &["-s", "4001"]);
    let call = rig.joined();
    rig.left(&call);
}

#[test]
fn reinvite_hold_and_resume() {
    let mut rig = Rig::start();
    rig.uac("uac_reinvite_hold.xml", &["-s", "4001"]);
    let call = rig.joined();
    rig.left(&call);
}

#[test]
fn info_dtmf_reaches_the_4011_stream() {
    let mut rig = Rig::start();
    rig.uac("uac_info_dtmf.xml", &["-s", "4001"]);
    let call = rig.joined();
    let prefix = format!("DIGIT,{},{call},", rig.conf_guid);
    let first = rig.event(&prefix);
    let second = rig.event(&prefix);
    assert_eq!([first, second], [format!("{prefix}1"), format!("{prefix}#")]);
    rig.left(&call);
}

#[test]
fn options_keepalive() {
    let mut rig = Rig::start();
    rig.uac("options.xml", &["-s", "4001"]);
}

#[test]
fn tcp_call() {
    let mut rig = Rig::start();
    let sipp = rig.spawn_sipp("uac_call.xml", Some(rig.tcp), &["-t", "t1", "-s", "4001"]);
    rig.expect_success(sipp);
    let call = rig.joined();
    rig.left(&call);
}

#[test]
fn malformed_invite_gets_400() {
    let mut rig = Rig::start();
    rig.uac("uac_malformed.xml", &["-s", "4001"]);
    let events = rig.control.drain(Duration::from_millis(300));
    assert!(events.iter().all(|e| !e.starts_with("NEWUSER,")), "{events:?}");
}

#[test]
fn lost_ack_makes_the_server_retransmit_its_200() {
    let mut rig = Rig::start();
    rig.uac("uac_lost_ack.xml", &["-s", "4001"]);
    let log = rig.messages("uac_lost_ack.xml");
    let invite_200s = log
        .split("-----------------------------------------------")
        .filter(|m| {
            m.contains("received") && m.contains("SIP/2.0 200 OK") && m.contains("INVITE\r\n")
        })
        .count();
    // At 0 s, then 0.5 s and 1.5 s (T1, 2*T1) before the ACK at 1.7 s.
    if invite_200s < 3 {
        rig.fail(&format!("the 200 was sent {invite_200s} times, not retransmitted"));
    }
    let call = rig.joined();
    rig.left(&call);
}

// ---------------------------------------------------------------------------
// Calls tutti places (CALLUSER), SIPp as UAS.

impl Rig {
    /// Starts SIPp as UAS with `scenario` on a free port and asks tutti over
    /// 4011 to call it into conference 4001; returns SIPp and the user-guid.
    fn call_user(&mut self, scenario: &str) -> (Sipp, String) {
        let port = free_port(false);
        let sipp = self.spawn_sipp(scenario, None, &["-p", &port.to_string()]);
        // SIPp needs a moment to bind before the INVITE arrives.
        std::thread::sleep(Duration::from_millis(300));
        let conf = self.conf_guid.clone();
        let answer =
            self.command(&format!("CALLUSER,{conf},sip:callee@127.0.0.1:{port}"), "CALLUSER");
        let user = answer.rsplit(',').next().expect("user guid").to_owned();
        assert_eq!(answer, format!("CALLUSER,OK,{conf},{user}"));
        (sipp, user)
    }

    fn progress(&mut self, user: &str, state: &str) {
        let line = self.event(&format!("CALLUSER,{user},"));
        if line != format!("CALLUSER,{user},{state}") {
            self.fail(&format!("expected {state}, got {line:?}"));
        }
    }
}

#[test]
fn placed_call_answered_by_sipp() {
    let mut rig = Rig::start();
    let (sipp, user) = rig.call_user("uas_answer.xml");
    rig.progress(&user, "Presenting");
    rig.progress(&user, "Ringing");
    rig.progress(&user, "Connected");
    let joined = rig.joined();
    assert_eq!(joined, user);
    rig.command(&format!("DROPUSER,{user}"), "DROPUSER");
    rig.expect_success(sipp);
    rig.left(&user);
}

#[test]
fn placed_call_to_a_busy_callee() {
    let mut rig = Rig::start();
    let (sipp, user) = rig.call_user("uas_busy.xml");
    rig.progress(&user, "Presenting");
    rig.progress(&user, "Busy");
    rig.expect_success(sipp);
}

#[test]
fn unanswered_placed_call_fails_after_the_ring_timeout() {
    let mut rig = Rig::start();
    let (sipp, user) = rig.call_user("uas_noanswer.xml");
    let start = Instant::now();
    rig.progress(&user, "Presenting");
    rig.progress(&user, "Ringing");
    rig.progress(&user, "Failed");
    let rang = start.elapsed();
    assert!(rang >= Duration::from_millis(1500), "gave up after {rang:?}, not 2 s");
    rig.expect_success(sipp);
}

/// CANCEL before the answer. The engine answers a conference number within
/// milliseconds and never sends 180, so uac_cancel.xml (which cancels once it
/// hears 180) cannot run against tutti: it fails with "unexpected 200 while
/// expecting 180". uac_cancel_at_once.xml cancels as soon as the 100 Trying
/// arrives, while the engine is still looking the number up (store lookups,
/// an RTP port, the SDP answer), and requires 200 to the CANCEL and 487 to the
/// INVITE. What this proves: tutti's UA cancels an INVITE the engine has not
/// answered yet, on the wire, in the real binary. What it does not: the exact
/// 180-then-CANCEL flow (sip/tests proves that against the in-process UA), and it
/// relies on the CANCEL (sent about a millisecond after the 100) beating the
/// engine's answer; an engine that answered within a millisecond would fail it
/// with a 200 to the INVITE where the 200 to the CANCEL is expected. That race
/// is legitimate SIP (the CANCEL and the 200 cross; SIPp then sends ACK and BYE)
/// and is lost about once in thirty runs on a loaded machine, so a run that
/// lost it, and only that, is retried.
#[test]
fn cancel_before_answer() {
    let mut rig = Rig::start();
    for attempt in 1..=3 {
        let mut sipp = rig.spawn_sipp("uac_cancel_at_once.xml", Some(rig.udp), &["-s", "4001"]);
        let (code, stderr) = sipp.wait();
        if code == Some(0) {
            return;
        }
        let errors =
            std::fs::read_to_string(rig.dir.path().join("uac_cancel_at_once.xml.errors.log"))
                .unwrap_or_default();
        // Lost race, either way SIPp reports it: tutti's 200 came before the
        // CANCEL left, or even before the 100 (rsipstack's dialog task sends
        // it, and a quick answer on a loaded machine can overtake it).
        let answered_first = errors.contains("looking in ' 1 INVITE', with regexp 'CANCEL'")
            || [&errors, &stderr].iter().any(|log| {
                log.contains("while expecting '100'") && log.contains("received 'SIP/2.0 200")
            });
        if !answered_first || attempt == 3 {
            rig.fail(&format!("sipp uac_cancel_at_once.xml exited {code:?}: {stderr}"));
        }
        std::fs::remove_file(rig.dir.path().join("uac_cancel_at_once.xml.errors.log")).ok();
        // SIPp answered the unexpected 200 with a BYE and no ACK: that call never
        // confirms, so it never joins. Let it end before the next try.
        let events = rig.control.drain(Duration::from_millis(300));
        let joined = events.iter().filter(|e| e.starts_with("NEWUSER,")).count();
        let left = events.iter().filter(|e| e.starts_with("DELUSER,")).count();
        if joined != left {
            rig.fail(&format!("a caller joined and stayed: {events:?}"));
        }
    }
}

/// A cancelled call must never join the conference. It once could: the UA sent
/// the 487, yet `CallControl::answer` returned the negotiated stream (the 200
/// queued for a transaction the CANCEL had already ended never left), and the
/// engine joined a caller that was never connected: NEWUSER then DELUSER, and
/// a Caller row in the store. The engine now joins only on the ACK. Ten
/// cancelled calls against one server. A call whose INVITE was answered before
/// the CANCEL arrived (the legitimate race described at `cancel_before_answer`)
/// does join, and leaves when SIPp hangs up.
#[test]
fn cancelled_call_never_joins_the_conference() {
    let mut rig = Rig::start();
    for _ in 0..10 {
        let mut sipp = rig.spawn_sipp("uac_cancel_at_once.xml", Some(rig.udp), &["-s", "4001"]);
        let (code, stderr) = sipp.wait();
        let errors_path = rig.dir.path().join("uac_cancel_at_once.xml.errors.log");
        let errors = std::fs::read_to_string(&errors_path).unwrap_or_default();
        std::fs::remove_file(&errors_path).ok();
        let answered_first = errors.contains("looking in ' 1 INVITE', with regexp 'CANCEL'");
        if code != Some(0) && !answered_first {
            rig.fail(&format!("sipp uac_cancel_at_once.xml exited {code:?}: {stderr}"));
        }
        let events = rig.control.drain(Duration::from_millis(300));
        let joined = events.iter().filter(|e| e.starts_with("NEWUSER,")).count();
        let left = events.iter().filter(|e| e.starts_with("DELUSER,")).count();
        if code == Some(0) && joined > 0 {
            rig.fail(&format!("a cancelled call joined the conference: {events:?}"));
        }
        // Lost race: SIPp got the 200 and hung up with a BYE (without an ACK, so
        // the call never confirms and normally never joins); if it did join, it
        // must have left again.
        if joined != left {
            rig.fail(&format!("a caller joined and stayed: {events:?}"));
        }
    }
}

// ---------------------------------------------------------------------------
// Rules that live once, in the operations layer and the engine.

impl Rig {
    /// Runs `work` against the server's own database file (WAL: a second
    /// connection beside the running server).
    fn with_store<T>(&self, work: impl AsyncFnOnce(&tutti_api::Store) -> T) -> T {
        let url = format!("sqlite://{}", self.data.path().join("tutti.db").display());
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = tutti_api::Store::open(&url).await.expect("store");
            let out = work(&store).await;
            store.close().await;
            out
        })
    }

    /// The WAV files under the data directory's recordings/.
    fn recording_files(&self) -> Vec<PathBuf> {
        let dir = self.data.path().join("recordings");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "wav"));
        files
    }
}

/// `!LeaveRecording` was once handled by the 4011 facade and by the engine, and
/// the room silently replaced the first recorder with the second: two rows, a
/// truncated file. Now the engine alone starts it, once the callee is in.
#[test]
fn leave_recording_into_a_live_conference_makes_one_recording() {
    let mut rig = Rig::start();
    let caller = rig.spawn_sipp("uac_server_hangup.xml", Some(rig.udp), &["-s", "4001"]);
    let first = rig.joined();

    let port = free_port(false);
    let callee = rig.spawn_sipp("uas_answer.xml", None, &["-p", &port.to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    let conf = rig.conf_guid.clone();
    let answer = rig.command(
        &format!("CALLUSER,{conf},sip:callee@127.0.0.1:{port},!LeaveRecording"),
        "CALLUSER",
    );
    let user = answer.rsplit(',').next().expect("user guid").to_owned();
    rig.progress(&user, "Presenting");
    rig.progress(&user, "Ringing");
    rig.progress(&user, "Connected");
    assert_eq!(rig.joined(), user);

    // The recording starts just after the join; give a second one time to show.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while rig.recording_files().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let files = rig.recording_files();
    if files.len() != 1 {
        rig.fail(&format!("expected one recording file, found {files:?}"));
    }
    rig.command(&format!("DROPUSER,{user}"), "DROPUSER");
    rig.command(&format!("DROPUSER,{first}"), "DROPUSER");
    rig.expect_success(callee);
    rig.expect_success(caller);
    let rows = rig.with_store(async |store| {
        let conference = store.conference_by_number("4001").await.expect("query").expect("stored");
        store.recordings_of(&conference.uid).await.expect("recordings")
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].ended_at.is_some(), "the recording ended with the call");
    let audio = tutti_media::wav::read(&files[0]).expect("a finished WAV");
    assert!(!audio.samples.is_empty());
}

/// The engine once kept a copy of each caller row and wrote all of it back at
/// every change and at hang-up, reverting what an interface had written.
#[test]
fn caller_fields_written_by_an_interface_survive_a_mute_and_the_hang_up() {
    let mut rig = Rig::start();
    let sipp = rig.spawn_sipp("uac_server_hangup.xml", Some(rig.udp), &["-s", "4001"]);
    let call = rig.joined();
    let notes = "called about <billing> & \"refunds\"; 'quoted'";
    let details = tutti_api::store::CallerDetails {
        tag: Some("vip".into()),
        notes: Some(notes.into()),
        custom1: Some("ünïcode".into()),
        ..Default::default()
    };
    rig.with_store(async |store| {
        store.update_caller_details(&call, &details).await.expect("details written");
    });
    rig.command(&format!("MUTEUSER,{call},1"), "MUTEUSER");
    rig.command(&format!("DROPUSER,{call}"), "DROPUSER");
    rig.left(&call);
    rig.expect_success(sipp);
    let stored: tutti_api::model::Caller =
        rig.with_store(async |store| store.get(&call).await.expect("caller"));
    assert!(stored.mute, "the mute was stored");
    assert!(!stored.active && stored.end_time.is_some(), "the hang-up was stored");
    assert_eq!((stored.tag.as_str(), stored.notes.as_str()), ("vip", notes));
    assert_eq!(stored.custom1, "ünïcode");
}

/// A refusal before a reserved conference's start was reported as "full".
#[test]
fn a_reserved_conference_before_its_start_has_not_started() {
    let mut rig = Rig::start();
    let later = rig.with_store(async |store| {
        let owner = store.default_customer().await.expect("customer");
        let conference = tutti_api::model::Conference {
            dial_in_number: Some("4002".into()),
            reserved: true,
            max_members: Some(10),
            ..tutti_api::model::Conference::new(&owner, "Later")
        };
        store.create_conference(&conference).await.expect("conference");
        let start = tutti_api::Time::now().plus_minutes(60);
        let reservation = tutti_api::model::Reservation::new(&conference.uid, start, 30);
        store.insert(&reservation).await.expect("reservation");
        conference.uid
    });
    let answer = rig.control.command(&format!("CALLUSER,{later},123"), "CALLUSER");
    assert_eq!(answer, Err(r#"CALLUSER,ERROR,"Conference has not started""#.to_owned()));

    // A live caller moved there is refused for the same reason.
    let sipp = rig.spawn_sipp("uac_server_hangup.xml", Some(rig.udp), &["-s", "4001"]);
    let call = rig.joined();
    let answer = rig.control.command(&format!("MOVEUSER,{call},{later}"), "MOVEUSER");
    assert_eq!(answer, Err(r#"MOVEUSER,ERROR,"Conference has not started""#.to_owned()));
    rig.command(&format!("DROPUSER,{call}"), "DROPUSER");
    rig.expect_success(sipp);
}

/// A caller whose phone vanished (no BYE, no RTP) and is then dropped leaves
/// the lists and the events at once; the BYE nobody answers finishes later.
#[test]
fn dropping_a_caller_whose_phone_vanished_is_immediate() {
    let mut rig = Rig::start();
    let mut sipp = rig.spawn_sipp("uac_server_hangup.xml", Some(rig.udp), &["-s", "4001"]);
    let call = rig.joined();
    // The phone vanishes: killed, it sends nothing more.
    let _ = sipp.child.kill();
    let _ = sipp.child.wait();
    let started = Instant::now();
    rig.command(&format!("DROPUSER,{call}"), "DROPUSER");
    rig.left(&call);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "DELUSER came {took:?} after DROPUSER");
    let conf = rig.conf_guid.clone();
    rig.command(&format!("LISTUSER,{conf}"), "LISTUSER");
    let listed: Vec<&String> =
        rig.control.events.iter().filter(|l| l.starts_with("LISTUSER,")).collect();
    assert!(listed.is_empty(), "the dropped caller is still listed: {listed:?}");
}

/// A phone that vanishes (no BYE, no RTP, no RTCP) is hung up after
/// `--rtp-timeout`, leaves the events and lists, and its end is stored with
/// the reason. SIPp sends no RTP at all, so the silence starts at the answer.
#[test]
fn a_vanished_phone_is_hung_up_after_the_rtp_timeout() {
    let mut rig = Rig::start_with(&["--rtp-timeout", "2"]);
    let mut sipp = rig.spawn_sipp("uac_server_hangup.xml", Some(rig.udp), &["-s", "4001"]);
    let call = rig.joined();
    let joined = Instant::now();
    let _ = sipp.child.kill();
    let _ = sipp.child.wait();
    rig.left(&call);
    let took = joined.elapsed();
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(8)).contains(&took),
        "left {took:?} after joining, with a 2 s timeout"
    );
    let stored: tutti_api::model::Caller =
        rig.with_store(async |store| store.get(&call).await.expect("caller"));
    assert_eq!(stored.end_reason, Some(tutti_api::model::EndReason::RtpTimeout));
    assert!(!stored.active && stored.end_time.is_some());
}

/// A server stopped while a caller's phone is dead ends promptly, stores the
/// caller's end, and the next start finds nothing left open.
#[test]
fn a_shutdown_with_a_dead_caller_is_prompt_and_leaves_nothing_open() {
    let mut rig = Rig::start();
    let mut sipp = rig.spawn_sipp("uac_server_hangup.xml", Some(rig.udp), &["-s", "4001"]);
    let call = rig.joined();
    let _ = sipp.child.kill();
    let _ = sipp.child.wait();
    let stopping = Instant::now();
    let status = rig.server.stop_with("TERM");
    let took = stopping.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    let logs = rig.server.logs();
    assert!(!logs.contains("still ending"), "{logs}");
    let stored: tutti_api::model::Caller =
        rig.with_store(async |store| store.get(&call).await.expect("caller"));
    assert_eq!(stored.end_reason, Some(tutti_api::model::EndReason::Shutdown));
    // The next start has nothing to close.
    let mut again = Server::start(rig.data.path(), &["--control-password", "secret"]);
    again.wait_for_log("ready", Duration::from_secs(10));
    let logs = again.logs();
    assert!(!logs.contains("left open"), "{logs}");
}
