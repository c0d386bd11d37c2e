//! Shared helpers for end-to-end tests: start the real `tutti` binary on
//! ephemeral loopback ports with its own data directory, talk HTTP to it, and
//! make sure it is gone when the test ends.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod http;
pub mod impair;
pub mod phone;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// The value of a `/metrics` sample line `name` (with its labels), if present.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub const BIN: &str = env!("CARGO_BIN_EXE_tutti");
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// RTP ports a test server gets: 32 calls' worth.
const RTP_RANGE_LEN: u16 = 64;

/// The start of a range of `len` UDP ports free on loopback now, picked at
/// random below the kernel's ephemeral range so parallel tests rarely meet.
pub fn free_udp_range(len: u16) -> u16 {
    use rand::RngExt;
    for _ in 0..100 {
        let base = rand::rng().random_range(10_000u16..30_000) & !1;
        let free = (base..base + len)
            .all(|p| std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free UDP port range on loopback");
}

/// A `tutti` command with no TUTTI_* variables inherited from the caller's
/// environment, so tests see only what they set.
pub fn tutti() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TUTTI_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `tutti ARGS` to completion with a data directory.
pub fn run(data_dir: &Path, args: &[&str]) -> Output {
    tutti().arg("--data-dir").arg(data_dir).args(args).output().expect("run tutti")
}

/// Runs `tutti ARGS` and parses the JSON it prints.
pub fn cli_json(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = run(data_dir, args);
    assert!(out.status.success(), "tutti {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("tutti prints JSON")
}

/// A new API key for the default customer (the first start made it).
pub fn default_api_key(data_dir: &Path) -> String {
    let shown = cli_json(data_dir, &["customer", "show-default"]);
    let uid = shown["uid"].as_str().expect("uid");
    let rotated = cli_json(data_dir, &["customer", "rotate-key", uid]);
    rotated["api_key"].as_str().expect("api_key").to_owned()
}

/// A running server. Killed on drop if the test did not stop it.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    pub stderr_seen: Vec<String>,
}

impl Server {
    /// Starts the server on ephemeral loopback ports and waits until HTTP listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        // A test that needs more ports than the default range gives its own.
        let rtp_ports = if extra.contains(&"--rtp-ports") {
            Vec::new()
        } else {
            let rtp = free_udp_range(RTP_RANGE_LEN);
            vec!["--rtp-ports".to_owned(), format!("{}-{}", rtp, rtp + RTP_RANGE_LEN - 1)]
        };
        let mut child = tutti()
            .args(["--data-dir"])
            .arg(data_dir)
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--sip-listen", "127.0.0.1:0"])
            .args(["--control-listen", "127.0.0.1:0"])
            .args(["--events-listen", "127.0.0.1:0"])
            .args(&rtp_ports)
            .args(["--timezone", "UTC"])
            .args(extra)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tutti");
        let stdout = lines_of(child.stdout.take().expect("piped stdout"));
        let stderr = lines_of(child.stderr.take().expect("piped stderr"));
        let mut server = Server {
            child,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        };
        let line = server.wait_for_log("HTTP listening", START_TIMEOUT);
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_else(|| panic!("no addr= in {line:?}"));
        server.http = addr.parse().expect("socket address");
        server
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `key=ADDR` address logged on a line containing `needle` (seen before
    /// the server was ready).
    pub fn logged_addr(&self, needle: &str, key: &str) -> SocketAddr {
        let prefix = format!("{key}=");
        self.stderr_seen
            .iter()
            .filter(|l| l.contains(needle))
            .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(&prefix)))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!("no {key}= on a {needle:?} line in:\n{}", self.stderr_seen.join("\n"))
            })
    }

    /// Everything the server logged so far, for failure messages.
    pub fn logs(&mut self) -> String {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push(line);
        }
        self.stderr_seen.join("\n")
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?} within {timeout:?}; saw:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Everything the server printed on standard output, read after it exited
    /// (so nothing still in the pipe is missed).
    pub fn stdout_after_exit(&mut self) -> String {
        assert!(
            matches!(self.child.try_wait(), Ok(Some(_))),
            "stop the server before reading all its output"
        );
        let mut out = String::new();
        while let Ok(line) = self.stdout.recv_timeout(STOP_TIMEOUT) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path)
    }

    /// Sends `signal` (e.g. "TERM") and waits for the process to exit.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tutti did not exit within {STOP_TIMEOUT:?} of SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn lines_of(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A minimal HTTP/1.1 GET; returns the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (status, body.to_owned())
}

/// The server's database, opened beside it (SQLite WAL: both may write).
pub async fn open_store(dir: &Path) -> tutti_api::Store {
    tutti_api::Store::open(&format!("sqlite://{}", dir.join("tutti.db").display()))
        .await
        .expect("store")
}

/// Writes `<dir>/sounds/<name>`: a 16 kHz WAV of a `freq` tone lasting `ms`.
pub fn tone_wav(dir: &Path, name: &str, freq: f64, ms: usize) {
    let sounds = dir.join("sounds");
    std::fs::create_dir_all(&sounds).expect("sounds dir");
    let samples: Vec<i16> = (0..16 * ms)
        .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * freq * n as f64 / 16_000.0).sin()) as i16)
        .collect();
    let mut writer =
        tutti_media::wav::WavWriter::create(&sounds.join(name), 16_000).expect("create wav");
    writer.write(&samples).expect("write wav");
    writer.finish().expect("finish wav");
}
