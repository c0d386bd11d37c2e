//! Crash safety against the real binary and a real SQLite file:
//!
//! - `kill -9` with 50 callers in a room (46 SIPp callers streaming RTP and 4
//!   of the project's phones) while a client keeps creating rooms over the
//!   REST API: the database passes `PRAGMA integrity_check`, every room whose
//!   creation was answered 201 is there after the restart, every caller and
//!   call session the crash left open is closed with an end time, and callers
//!   dialling again get in and hear each other.
//! - A database locked by another process for longer than the busy timeout:
//!   API writes are refused with 503 and a reason, the live call goes on (as
//!   audio), and writes work again once the lock is gone.
//! - A full disk (the data directory on a small tmpfs, filled up; needs root
//!   to mount, skipped with a note otherwise): API writes are refused with 503
//!   and a reason once SQLite cannot grow its files, the live call goes on,
//!   nothing answered 201 is lost, nothing refused is stored, the file passes
//!   `integrity_check`, and writes work again once space is freed.
//! - A recording on a nearly full disk (root, as above) stops at
//!   `--recording-min-free-mib` while the call and the database go on.
//! - A read-only database (a read-only bind mount of the data directory; root
//!   only, skipped otherwise): the start stops with a line naming the file and
//!   the reason, the file is unchanged, and a start once it is writable again
//!   finds everything.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use support::Server;
use support::http::{id_of, rest};
use support::phone::{Phones, level, talk};

/// POSTs a room and returns the status, or `None` when the server is gone
/// (connection refused or reset mid-request: the crash).
fn try_create_room(addr: SocketAddr, key: &str, number: &str) -> Option<(u16, Value)> {
    let body = json!({"number": number, "name": format!("Room {number}")}).to_string();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!(
        "POST /api/v1/conferences HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

async fn sqlite(dir: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", dir.join("tutti.db").display());
    sqlx::SqliteConnection::connect(&url).await.expect("open the database")
}

async fn count(db: &mut sqlx::SqliteConnection, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.expect(sql)
}

/// Talks until every phone hears every other phone's tone, for at most 6 s;
/// returns the levels heard (listener, tone) of the last round.
async fn all_hear_each_other(phones: &mut [support::phone::Phone]) -> Vec<Vec<f64>> {
    let tones: Vec<f64> = phones.iter().map(|p| p.tone).collect();
    let mut matrix = Vec::new();
    for _ in 0..6 {
        talk(phones, 50).await;
        matrix = phones
            .iter()
            .map(|p| tones.iter().map(|t| level(p, *t)).collect::<Vec<_>>())
            .collect::<Vec<_>>();
        let right = matrix.iter().enumerate().all(|(listener, row)| {
            row.iter().enumerate().all(|(talker, l)| listener == talker || *l > 500.0)
        });
        if right {
            break;
        }
    }
    matrix
}

fn heard_by_all(matrix: &[Vec<f64>]) -> bool {
    matrix.iter().enumerate().all(|(listener, row)| {
        row.iter().enumerate().all(|(talker, l)| listener == talker || *l > 500.0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_call_loses_no_committed_write_and_the_restart_closes_what_was_open() {
    const SIPP_CALLERS: usize = 46;
    const TONES: [f64; 4] = [440.0, 1000.0, 1700.0, 2300.0];
    let dir = tempfile::tempdir().expect("temp dir");
    let rtp = support::free_udp_range(160);
    let rtp_ports = format!("{rtp}-{}", rtp + 159);
    let mut server = Server::start(dir.path(), &["--rtp-ports", &rtp_ports]);
    let sip = server.logged_addr("SIP listening", "udp");
    let key = tokio::task::block_in_place(|| support::default_api_key(dir.path()));
    let room = tokio::task::block_in_place(|| {
        rest(server.http, &key, "POST", "/conferences", Some(&json!({"number": "4700"})))
    });
    assert_eq!(room.status, 201, "{}", room.body);
    let room_id = id_of(&room.json()["id"]);
    let members = format!("/conferences/{room_id}/members");

    // 46 SIPp callers that stay, streaming a tone, and four phones.
    let mut sipp = std::process::Command::new("sipp")
        .arg("-sf")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sipp/uac_stay.xml"))
        .args(["-i", "127.0.0.1", "-p", &support::free_udp_range(1).to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &support::free_udp_range(2).to_string()])
        .args(["-s", "4700", "-nostdin", "-r", "25", "-m", &SIPP_CALLERS.to_string()])
        .args(["-l", &SIPP_CALLERS.to_string(), "-timeout", "120s"])
        .arg(sip.to_string())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sipp"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp runs (apt-get install sip-tester)");
    let mut line = Phones::new().await;
    let target = format!("sip:4700@{sip}");
    let mut phones = Vec::new();
    for (i, tone) in TONES.iter().enumerate() {
        phones.push(line.dial(&target, i as u64 + 1, *tone).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = tokio::task::block_in_place(|| rest(server.http, &key, "GET", &members, None));
        let n = listed.json()["total"].as_u64().unwrap_or(0);
        if n == (SIPP_CALLERS + TONES.len()) as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} of 50 callers joined");
        talk(&mut phones, 10).await;
    }
    let matrix = all_hear_each_other(&mut phones).await;
    assert!(heard_by_all(&matrix), "before the crash: {matrix:.0?}");

    // A client creating rooms as fast as it can; what was answered 201 is committed.
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let writer = {
        let (stop, committed, key, addr) =
            (stop.clone(), committed.clone(), key.clone(), server.http);
        std::thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let number = format!("{}", 60_000 + i);
                match try_create_room(addr, &key, &number) {
                    Some((201, body)) => {
                        committed.lock().expect("lock").push((number, id_of(&body["id"])))
                    }
                    Some((status, body)) => panic!("creating a room: {status} {body}"),
                    None => break,
                }
            }
        })
    };
    while committed.lock().expect("lock").len() < 20 {
        talk(&mut phones, 5).await;
    }
    let status = tokio::task::block_in_place(|| server.stop_with("KILL"));
    assert!(!status.success(), "killed: {status}");
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let _ = sipp.kill();
    let _ = sipp.wait();
    drop(phones);
    let committed = committed.lock().expect("lock").clone();

    // The file as the crash left it: intact, with the callers still open.
    let mut db = sqlite(dir.path()).await;
    let check: String =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut db).await.expect("check");
    assert_eq!(check, "ok");
    let open = count(&mut db, "SELECT COUNT(*) FROM callers WHERE active = 1").await;
    assert_eq!(open, 50, "the crash left the 50 callers open");
    db.close().await.expect("close");

    // The restart closes them, and every committed room is there.
    let mut server = Server::start(dir.path(), &["--rtp-ports", &rtp_ports]);
    let logs = server.logs();
    assert!(
        logs.contains("closed call sessions left open by an earlier run callers=50"),
        "the restart says what it closed: {logs}"
    );
    let mut db = sqlite(dir.path()).await;
    let still_open =
        count(&mut db, "SELECT COUNT(*) FROM callers WHERE active = 1 OR end_time IS NULL").await;
    assert_eq!(still_open, 0, "every caller closed with an end time");
    let restarted =
        count(&mut db, "SELECT COUNT(*) FROM callers WHERE end_reason = 'server-restart'").await;
    assert_eq!(restarted, 50);
    let open_calls =
        count(&mut db, "SELECT COUNT(*) FROM calls WHERE status = 'ACTIVE' OR actual_end IS NULL")
            .await;
    assert_eq!(open_calls, 0, "the call session is closed with an end time");
    db.close().await.expect("close");
    let (http, key2) = (server.http, key.clone());
    let missing: Vec<String> = tokio::task::block_in_place(|| {
        committed
            .iter()
            .filter(|(number, id)| {
                let got = rest(http, &key2, "GET", &format!("/conferences/{id}"), None);
                got.status != 200 || got.json()["number"] != number.as_str()
            })
            .map(|(number, _)| number.clone())
            .collect()
    });
    assert!(missing.is_empty(), "rooms answered 201 but lost: {missing:?} of {}", committed.len());

    // Callers dialling again get in and hear each other.
    let sip = server.logged_addr("SIP listening", "udp");
    let target = format!("sip:4700@{sip}");
    let mut again = Phones::new().await;
    let mut phones = Vec::new();
    for (i, tone) in TONES[..2].iter().enumerate() {
        phones.push(again.dial(&target, i as u64 + 11, *tone).await);
    }
    let matrix = all_hear_each_other(&mut phones).await;
    assert!(heard_by_all(&matrix), "after the restart: {matrix:.0?}");
}

/// A server on `data_dir` with a room numbered `number` and two phones in it
/// that hear each other.
struct Talking {
    server: Server,
    key: String,
    /// Keeps the phones' SIP user agent up.
    line: Phones,
    phones: Vec<support::phone::Phone>,
}

async fn two_phones_talking(data_dir: &Path, number: &str) -> Talking {
    two_phones_talking_in(data_dir, &[], json!({"number": number})).await
}

/// [`two_phones_talking`] with server arguments and the room's REST body.
async fn two_phones_talking_in(data_dir: &Path, args: &[&str], room: Value) -> Talking {
    let server = Server::start(data_dir, args);
    let sip = server.logged_addr("SIP listening", "udp");
    let key = tokio::task::block_in_place(|| support::default_api_key(data_dir));
    let number = room["number"].as_str().expect("a number").to_owned();
    let created = tokio::task::block_in_place(|| {
        rest(server.http, &key, "POST", "/conferences", Some(&room))
    });
    assert_eq!(created.status, 201, "{}", created.body);
    let mut line = Phones::new().await;
    let target = format!("sip:{number}@{sip}");
    let mut phones = vec![line.dial(&target, 1, 440.0).await, line.dial(&target, 2, 1000.0).await];
    assert!(heard_by_all(&all_hear_each_other(&mut phones).await));
    Talking { server, key, line, phones }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_refuses_api_writes_clearly_while_the_call_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Talking { server, key, line: _line, mut phones } =
        two_phones_talking(dir.path(), "4800").await;
    let http = server.http;

    // Another process takes the write lock and keeps it for 8 s (the store
    // waits 5 s for a lock).
    let mut locker = sqlite(dir.path()).await;
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut locker).await.expect("lock");
    let started = Instant::now();
    let attempt = tokio::task::spawn_blocking(move || {
        let answer = rest(http, &key, "POST", "/conferences", Some(&json!({"number": "4801"})));
        (answer, key)
    });
    // The call goes on meanwhile.
    let matrix = all_hear_each_other(&mut phones).await;
    assert!(heard_by_all(&matrix), "during the lock: {matrix:.0?}");
    let (refused, key) = attempt.await.expect("request");
    assert_eq!(refused.status, 503, "{}", refused.body);
    let message = refused.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("unavailable") && message.contains("retry"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(8), "refused before the lock went");
    while started.elapsed() < Duration::from_secs(8) {
        talk(&mut phones, 25).await;
    }
    sqlx::query("ROLLBACK").execute(&mut locker).await.expect("unlock");
    locker.close().await.expect("close");

    // Nothing half-written: the refused room is not there; a new write works.
    let listed = tokio::task::block_in_place(|| rest(http, &key, "GET", "/conferences", None));
    let rooms = listed.json()["items"].as_array().expect("items").clone();
    assert!(!rooms.iter().any(|r| r["number"] == "4801"), "a refused room was stored: {rooms:?}");
    let retried = tokio::task::block_in_place(|| {
        rest(http, &key, "POST", "/conferences", Some(&json!({"number": "4801"})))
    });
    assert_eq!(retried.status, 201, "{}", retried.body);
    let matrix = all_hear_each_other(&mut phones).await;
    assert!(heard_by_all(&matrix), "after the lock: {matrix:.0?}");
}

/// A tmpfs of `size` mounted on a new temporary directory, unmounted when
/// dropped; `None` when this process may not mount (not root).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tutti-test"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros into `name` until the disk is full.
    fn fill(&self, name: &str) {
        let mut file = std::fs::File::create(self.dir.path().join(name)).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_api_writes_clearly_keeps_the_call_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount("16m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let Talking { mut server, key, line: _line, mut phones } =
        two_phones_talking(disk.path(), "4900").await;
    let http = server.http;

    disk.fill("filler");
    // SQLite reuses the space its write-ahead log already has, so the first
    // writes may still fit: write until one is refused.
    let attempts = tokio::task::spawn_blocking(move || {
        let mut stored = Vec::new();
        for n in 0..400 {
            let number = format!("{}", 5000 + n);
            let answer = rest(http, &key, "POST", "/conferences", Some(&json!({"number": number})));
            if answer.status == 201 {
                stored.push(number);
                continue;
            }
            return (stored, Some((number, answer)), key);
        }
        (stored, None, key)
    });
    let matrix = all_hear_each_other(&mut phones).await;
    assert!(heard_by_all(&matrix), "with the disk full: {matrix:.0?}");
    let (stored, refused, key) = attempts.await.expect("requests");
    let (refused_number, refused) = refused.expect("a write refused with the disk full");
    eprintln!("disk full: {} rooms stored, then {}", stored.len(), refused.body);
    assert_eq!(refused.status, 503, "{}", refused.body);
    let message = refused.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("unavailable") && message.contains("retry"), "{message}");
    assert!(!message.contains("disk") && !message.contains("sqlite"), "no internals: {message}");
    // The log says what happened, under the incident number the client got.
    let logged = server.wait_for_log("disk is full", Duration::from_secs(5));
    let incident =
        message.split_whitespace().nth(3).unwrap_or_default().trim_end_matches([')', ';']);
    assert!(logged.contains(&format!("incident={incident}")), "{logged} / {message}");
    let health = tokio::task::block_in_place(|| support::http::get(http, "/healthz", &[]));
    assert_eq!(health.status, 200, "{}", health.body);
    let matrix = all_hear_each_other(&mut phones).await;
    assert!(heard_by_all(&matrix), "after the refusal: {matrix:.0?}");

    std::fs::remove_file(disk.path().join("filler")).expect("free the space");
    let retried = tokio::task::block_in_place(|| {
        rest(http, &key, "POST", "/conferences", Some(&json!({"number": refused_number})))
    });
    assert_eq!(retried.status, 201, "{}", retried.body);
    let listed =
        tokio::task::block_in_place(|| rest(http, &key, "GET", "/conferences?limit=1000", None));
    let numbers: Vec<String> = listed.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["number"].as_str().map(str::to_owned))
        .collect();
    for number in &stored {
        assert!(numbers.contains(number), "room {number} answered 201 but lost: {numbers:?}");
    }
    let twice = numbers.iter().filter(|n| **n == refused_number).count();
    assert_eq!(twice, 1, "the refused room stored once, by the retry: {numbers:?}");
    let matrix = all_hear_each_other(&mut phones).await;
    assert!(heard_by_all(&matrix), "after the space came back: {matrix:.0?}");
    drop(phones);
    drop(server);
    let mut db = sqlite(disk.path()).await;
    let check: String =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut db).await.expect("check");
    assert_eq!(check, "ok");
    db.close().await.expect("close");
}

/// A recording stops before it fills the disk: with less than
/// `--recording-min-free-mib` left, the running recording ends (its file
/// whole, its end stored) while the call and the database go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_stops_before_the_disk_fills_and_the_call_goes_on() {
    let Some(disk) = SmallDisk::mount("32m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let args = ["--recording-min-free-mib", "8"];
    let room = json!({"number": "4950", "record_enabled": true});
    let Talking { mut server, key, line: _line, mut phones } =
        two_phones_talking_in(disk.path(), &args, room).await;
    let http = server.http;
    let listing = |key: &str| {
        let listed = rest(http, key, "GET", "/recordings", None);
        listed.json()["items"].as_array().cloned().unwrap_or_default()
    };
    let recordings = tokio::task::block_in_place(|| listing(&key));
    assert_eq!(recordings.len(), 1, "the room is recorded: {recordings:?}");
    assert!(recordings[0]["ended_at"].is_null());

    // Leave 4 MiB free: below the 8 kept free, above what the database needs.
    let free = tutti_media::record::free_bytes(disk.path()).expect("statvfs");
    let mut filler = std::fs::File::create(disk.path().join("filler")).expect("filler");
    let block = vec![0u8; 1024 * 1024];
    for _ in 0..(free / (1024 * 1024)).saturating_sub(4) {
        filler.write_all(&block).expect("fill");
    }
    drop(filler);
    tokio::task::block_in_place(|| {
        server.wait_for_log("recording stopped at its limit", Duration::from_secs(15))
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let ended = loop {
        let recordings = tokio::task::block_in_place(|| listing(&key));
        if recordings.first().is_some_and(|r| !r["ended_at"].is_null()) || Instant::now() > deadline
        {
            break recordings;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!ended[0]["ended_at"].is_null(), "its end is stored: {ended:?}");
    let matrix = all_hear_each_other(&mut phones).await;
    assert!(heard_by_all(&matrix), "the call goes on: {matrix:.0?}");
    let written = tokio::task::block_in_place(|| {
        rest(http, &key, "POST", "/conferences", Some(&json!({"number": "4951"})))
    });
    assert_eq!(written.status, 201, "the database still writes: {}", written.body);
    let files: Vec<_> = std::fs::read_dir(disk.path().join("recordings"))
        .expect("recordings")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .collect();
    assert_eq!(files.len(), 1);
    let audio = tutti_media::wav::read(&files[0].path()).expect("a whole WAV file");
    assert!(!audio.samples.is_empty());
}

/// A read-only view of `dir` (a bind mount remounted read-only) for as long
/// as it lives; `None` when this process may not mount (not root).
struct ReadOnly<'a> {
    dir: &'a Path,
}

impl<'a> ReadOnly<'a> {
    fn mount(dir: &'a Path) -> Option<Self> {
        let run = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !run(&["--bind"]) {
            return None;
        }
        let view = Self { dir };
        // Remounting takes one path; the bind above is undone on drop.
        let ro = std::process::Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ro.then_some(view)
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir).status();
    }
}

/// A database (and data directory) that has become read-only: tutti does
/// not start half-way; it stops at once with a line naming the file and the
/// reason, changes nothing, and starts normally, with everything it had,
/// once the file system is writable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_stops_the_start_with_a_reason_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]);
    let key = tokio::task::block_in_place(|| support::default_api_key(dir.path()));
    let created = tokio::task::block_in_place(|| {
        rest(server.http, &key, "POST", "/conferences", Some(&json!({"number": "4950"})))
    });
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(server.stop_with("TERM").success());
    drop(server);
    let before = std::fs::read(dir.path().join("tutti.db")).expect("database file");

    {
        let Some(_view) = ReadOnly::mount(dir.path()) else {
            eprintln!("skipped: a read-only bind mount needs root");
            return;
        };
        let refused = tokio::task::block_in_place(|| {
            let mut cmd = support::tutti();
            cmd.arg("--data-dir").arg(dir.path());
            for flag in ["--http-listen", "--sip-listen", "--control-listen", "--events-listen"] {
                cmd.args([flag, "127.0.0.1:0"]);
            }
            cmd.arg("serve").output().expect("run tutti")
        });
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "a read-only database must stop the start: {stderr}");
        let line = stderr.lines().find(|l| l.starts_with("tutti: ")).unwrap_or_default();
        assert!(line.contains("tutti.db"), "names the database: {stderr}");
        assert!(
            line.contains("is not writable") && line.contains("Read-only file system"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        eprintln!("refused as expected: {line}");
    }

    assert_eq!(std::fs::read(dir.path().join("tutti.db")).expect("file"), before, "unchanged");
    let mut server = Server::start(dir.path(), &[]);
    let listed =
        tokio::task::block_in_place(|| rest(server.http, &key, "GET", "/conferences", None));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let rooms = listed.json();
    let numbers: Vec<&str> = rooms["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["number"].as_str())
        .collect();
    assert!(numbers.contains(&"4950"), "{numbers:?}");
    assert!(server.stop_with("TERM").success());
    let mut db = sqlite(dir.path()).await;
    let check: String =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut db).await.expect("check");
    assert_eq!(check, "ok");
    db.close().await.expect("close");
}
