//! Test-only harness: a `SipUa` on 127.0.0.1:0 with a small engine loop that answers,
//! rejects, rings and hangs up by the dialled number, records every event, and runs
//! SIPp scenarios from scripts/sipp/ against it.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tutti_sip::sdp::{LocalMedia, MediaDirection};
use tutti_sip::ua::{CallId, SipConfig, SipUa, UaEvent};

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What the test engine does with an incoming call, by request-URI user.
/// - `answer...`: 180 then 200 with an SDP answer.
/// - `hangup...`: answer, then BYE from us after 300 ms.
/// - `ring...`: 180 only (the caller cancels).
/// - `busy`: 486; `nobody`: 404; `moved`: 302 to sip:elsewhere@192.0.2.1.
fn plan(user: &str) -> &'static str {
    for p in ["answer", "hangup", "ring", "busy", "nobody", "moved"] {
        if user.starts_with(p) {
            return p;
        }
    }
    "answer"
}

/// One recorded event, in a form tests can compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Incoming { call: CallId, user: String, late_offer: bool },
    Answered(CallId),
    Progress(CallId, String),
    Dtmf(CallId, char),
    Media(CallId, MediaDirection),
    Hangup(CallId, String),
}

pub struct Harness {
    pub ua: SipUa,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub dir: tempfile::TempDir,
}

pub fn local_media(port: u16) -> LocalMedia {
    LocalMedia {
        address: LOOPBACK,
        rtp_port: port,
        session_id: 4242,
        session_version: 1,
        direction: MediaDirection::SendRecv,
    }
}

pub fn config() -> SipConfig {
    SipConfig::new(SocketAddr::new(LOOPBACK, 0), LOOPBACK)
}

impl Harness {
    pub async fn start(config: SipConfig) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("tutti_sip=debug,rsipstack=info")
            .with_test_writer()
            .try_init();
        let (ua, events) = SipUa::start(config).await.expect("UA starts on 127.0.0.1:0");
        let seen = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(engine(ua.clone(), events, seen.clone()));
        Harness { ua, seen, dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `pred` holds for the recorded events (at most 10 s).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Seen]) -> bool) {
        for _ in 0..500 {
            if pred(&self.seen()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}; events: {:#?}", self.seen());
    }

    /// Runs `sipp` with `scenario` (a file in scripts/sipp/) against the UA; returns
    /// its exit code after printing the error log when it failed.
    pub async fn sipp(&self, scenario: &str, args: &[&str]) -> i32 {
        let target = self.ua.udp_addr().to_string();
        self.sipp_to(scenario, &target, args).await
    }

    /// Runs `sipp` with explicit remote (or none, for `-sn`/UAS runs: pass "").
    pub async fn sipp_to(&self, scenario: &str, remote: &str, args: &[&str]) -> i32 {
        let path = scenario_path(scenario);
        let errors = self.dir.path().join(format!("{scenario}.errors.log"));
        let messages = self.dir.path().join(format!("{scenario}.messages.log"));
        // A port of our choosing can be taken between the probe and SIPp's
        // bind (other tests run at once); that is retried, nothing else is.
        let ours = !args.contains(&"-p");
        let mut attempt = 0;
        let (code, stderr) = loop {
            attempt += 1;
            let mut cmd = tokio::process::Command::new("sipp");
            cmd.arg("-sf")
                .arg(&path)
                .args([
                    "-i",
                    "127.0.0.1",
                    "-mi",
                    "127.0.0.1",
                    "-nostdin",
                    "-timeout",
                    "20s",
                    "-timeout_error",
                ])
                .args(["-trace_err", "-error_file"])
                .arg(&errors)
                .args(["-trace_msg", "-message_file"])
                .arg(&messages)
                .args(args)
                .args(if ours { vec!["-p".to_owned(), free_port().to_string()] } else { vec![] })
                .current_dir(self.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            if !remote.is_empty() {
                cmd.arg(remote);
            }
            let out = cmd.output().await.expect("sipp runs (apt-get install sip-tester)");
            let code = out.status.code().unwrap_or(-1);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if ours && attempt < 3 && code != 0 && stderr.contains("Unable to bind main socket") {
                eprintln!("sipp {scenario}: its port was taken meanwhile; again on another");
                continue;
            }
            break (code, stderr);
        };
        if code != 0 || std::env::var_os("SIPP_SHOW").is_some() {
            eprintln!("sipp {scenario} exited {code}: {stderr}");
            for file in [&errors, &messages] {
                if let Ok(text) = std::fs::read_to_string(file) {
                    eprintln!("--- {} ---\n{text}", file.display());
                }
            }
            eprintln!("events: {:#?}", self.seen());
        }
        code
    }
}

impl Harness {
    /// The `-trace_msg` log of the last run of `scenario`.
    pub fn messages(&self, scenario: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{scenario}.messages.log")))
            .unwrap_or_default()
    }
}

pub fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/sipp").join(name)
}

/// A UDP port free right now (for SIPp in UAS mode, whose port we must know).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind((LOOPBACK, 0)).expect("bind");
    s.local_addr().expect("addr").port()
}

/// A loopback port free for both UDP and TCP just now (SIPp binds its main
/// socket on `-p` with the transport of `-t`).
pub fn free_port() -> u16 {
    loop {
        let port = free_udp_port();
        if std::net::TcpListener::bind((LOOPBACK, port)).is_ok() {
            return port;
        }
    }
}

fn record(seen: &Arc<Mutex<Vec<Seen>>>, s: Seen) {
    if let Ok(mut v) = seen.lock() {
        v.push(s);
    }
}

/// The test engine.
async fn engine(ua: SipUa, mut events: mpsc::Receiver<UaEvent>, seen: Arc<Mutex<Vec<Seen>>>) {
    while let Some(event) = events.recv().await {
        match event {
            UaEvent::IncomingCall(call) => {
                record(
                    &seen,
                    Seen::Incoming {
                        call: call.call,
                        user: call.request_user.clone(),
                        late_offer: call.offer.is_none(),
                    },
                );
                let ua = ua.clone();
                tokio::spawn(async move {
                    match plan(&call.request_user) {
                        "busy" => drop(call.reject(486).await),
                        "nobody" => drop(call.reject(404).await),
                        "moved" => drop(call.redirect("sip:elsewhere@192.0.2.1").await),
                        "ring" => drop(call.ringing().await),
                        p => {
                            call.ringing().await.ok();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            call.answer(local_media(40000)).await.ok();
                            if p == "hangup" {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                ua.hangup(call.call).await.ok();
                            }
                        }
                    }
                });
            }
            UaEvent::Answered { call } => record(&seen, Seen::Answered(call)),
            UaEvent::Progress { call, state } => {
                record(&seen, Seen::Progress(call, format!("{state:?}")));
            }
            UaEvent::Dtmf { call, digit } => record(&seen, Seen::Dtmf(call, digit)),
            UaEvent::MediaChanged { call, negotiated } => {
                record(&seen, Seen::Media(call, negotiated.direction));
            }
            UaEvent::Hangup { call, reason } => {
                record(&seen, Seen::Hangup(call, format!("{reason:?}")))
            }
        }
    }
}
