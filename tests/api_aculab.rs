//! The Aculab-style conference web services (`/conference_*`) over real HTTP
//! against the real binary: every endpoint, each of the document's boundaries,
//! both time formats, the 401 cases, the states over time, and a booked
//! conference with real SIP callers (486 and 302 before the start, ACTIVE with
//! two, mute checked as audio, keypad off, eject, COMPLETED at the end).
//!
//! Time: the server runs with `--test-clock`, and the tests set its wall clock
//! (`POST /_test/clock`), stopped, so "4:59 ahead" is exact and a reservation an
//! hour ahead starts when the test says. SIP and media timers are monotonic and
//! unaffected.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use support::http::{Answer, form, request_with};
use support::phone::{Control, Phones, press, talk, until_level};
use support::{Server, run};

/// The wall clock the tests start from.
const T0: &str = "2026-06-20T10:00:00Z";

struct Aculab {
    server: Server,
    client: Client,
    dir: tempfile::TempDir,
}

/// Where the services are and who calls them (cheap to clone into blocking tasks).
#[derive(Clone)]
struct Client {
    addr: SocketAddr,
    /// `Basic ...` for the customer.
    auth: String,
}

impl std::ops::Deref for Aculab {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Aculab {
    fn start(extra: &[&str]) -> Aculab {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["--test-clock"];
        args.extend_from_slice(extra);
        let server = Server::start(dir.path(), &args);
        let out = run(dir.path(), &["customer", "create", "--name", "Acme"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        let uid = v["uid"].as_str().expect("uid");
        let key = v["api_key"].as_str().expect("key");
        // The document's username form: a cloud id, a slash, the user.
        let auth = basic(&format!("1-2-0/{uid}"), key);
        let addr = server.http;
        let aculab = Aculab { server, client: Client { addr, auth }, dir };
        aculab.clock(&[("at", T0), ("frozen", "true")]);
        aculab
    }
}

impl Client {
    /// Sets the server's wall clock.
    fn clock(&self, pairs: &[(&str, &str)]) {
        let body = form(pairs);
        let answer = request_with(
            self.addr,
            "POST",
            "/_test/clock",
            &[],
            Some(("application/x-www-form-urlencoded", body.as_bytes())),
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    /// Moves the stopped clock on by `seconds`.
    fn advance(&self, seconds: i64) {
        self.clock(&[("advance", &seconds.to_string()), ("frozen", "true")]);
    }

    /// A GET with the customer's credentials.
    fn get(&self, service: &str, pairs: &[(&str, &str)]) -> Answer {
        self.get_as(&self.auth, service, pairs)
    }

    fn get_as(&self, auth: &str, service: &str, pairs: &[(&str, &str)]) -> Answer {
        let path = format!("/{service}?{}", form(pairs));
        request_with(self.addr, "GET", &path, &[("Authorization", auth)], None)
    }

    /// A POST with a form body.
    fn post(&self, service: &str, pairs: &[(&str, &str)]) -> Answer {
        let body = form(pairs);
        request_with(
            self.addr,
            "POST",
            &format!("/{service}"),
            &[("Authorization", &self.auth)],
            Some(("application/x-www-form-urlencoded", body.as_bytes())),
        )
    }

    /// Books a conference; its token.
    fn book(&self, name: &str, start: &str, duration: &str, extra: &[(&str, &str)]) -> String {
        let mut pairs = vec![
            ("conference_name", name),
            ("max_participants", "40"),
            ("start_time", start),
            ("duration", duration),
        ];
        pairs.extend_from_slice(extra);
        let answer = self.post("conference_reservation_create", &pairs);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["reservation_token"].as_str().expect("token").to_owned()
    }

    /// The conference list's entry for `name`.
    fn listed(&self, name: &str) -> Value {
        let list = self.get("conference_list", &[]).json();
        let all = list.as_array().unwrap_or_else(|| panic!("a bare array: {list}"));
        all.iter()
            .find(|c| c["conference_name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {list}"))
    }
}

/// A 400 whose error names `param`.
fn refused(answer: &Answer, param: &str) {
    assert_eq!(answer.status, 400, "{param}: {}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let error = answer.json()["error"].as_str().expect("error text").to_owned();
    assert!(error.starts_with(param), "{param}: {error}");
}

#[test]
fn every_boundary_time_format_and_credential_rule() {
    let a = Aculab::start(&[]);
    let create = |pairs: &[(&str, &str)]| a.get("conference_reservation_create", pairs);
    let with =
        |name: &'static str, max: &'static str, start: &'static str, duration: &'static str| {
            vec![
                ("conference_name", name),
                ("max_participants", max),
                ("start_time", start),
                ("duration", duration),
            ]
        };

    // Start: 5 minutes to 24 hours ahead (the clock stands at 10:00:00).
    refused(&create(&with("Early", "40", "2026-06-20_10:04:59", "15")), "start_time");
    assert_eq!(create(&with("Five", "40", "2026-06-20_10:05:00", "15")).status, 200);
    assert_eq!(create(&with("Day", "40", "2026-06-21_10:00:00", "15")).status, 200);
    refused(&create(&with("DayPlus", "40", "2026-06-21_10:00:01", "15")), "start_time");
    refused(&create(&with("DayPlus", "40", "2026-06-21-10-01", "15")), "start_time");
    // Both formats; seconds are rounded down.
    assert_eq!(create(&with("Short", "40", "2026-06-20-11-30", "15")).status, 200);
    assert_eq!(create(&with("Secs", "40", "2026-06-20_11:45:59", "15")).status, 200);
    let secs = a.listed("Secs");
    assert_eq!(
        (secs["start_time"].as_str(), secs["start_datetime"].as_str()),
        (Some("2026-06-20-11-45"), Some("2026-06-20_11:45:00"))
    );
    for bad in ["2026-13-01_10:00:00", "2026-12-01 10:00", "", "2026-06-20T11:00:00Z", "tomorrow"] {
        refused(&create(&with("Bad", "40", bad, "15")), "start_time");
    }
    // Participants 40-350, duration 15-480.
    refused(&create(&with("P39", "39", "2026-06-20_12:00:00", "15")), "max_participants");
    assert_eq!(create(&with("P40", "40", "2026-06-20_12:00:00", "15")).status, 200);
    assert_eq!(create(&with("P350", "350", "2026-06-20_12:00:00", "15")).status, 200);
    refused(&create(&with("P351", "351", "2026-06-20_12:00:00", "15")), "max_participants");
    refused(&create(&with("Px", "forty", "2026-06-20_12:00:00", "15")), "max_participants");
    refused(&create(&with("D14", "40", "2026-06-20_12:00:00", "14")), "duration");
    assert_eq!(create(&with("D15", "40", "2026-06-20_13:00:00", "15")).status, 200);
    assert_eq!(create(&with("D480", "40", "2026-06-20_13:00:00", "480")).status, 200);
    refused(&create(&with("D481", "40", "2026-06-20_13:00:00", "481")), "duration");
    // Names: 1-47 letters or digits, unique on the server.
    let long = "N".repeat(47);
    let too_long = "N".repeat(48);
    let post = a.post(
        "conference_reservation_create",
        &[
            ("conference_name", &long),
            ("max_participants", "40"),
            ("start_time", "2026-06-20_12:00:00"),
            ("duration", "15"),
            ("extra", "ignored"),
        ],
    );
    assert_eq!(post.status, 200, "POST works too, extra parameters ignored: {}", post.body);
    for name in [too_long.as_str(), "two words", "dash-ed", ""] {
        refused(
            &create(&[
                ("conference_name", name),
                ("max_participants", "40"),
                ("start_time", "2026-06-20_12:00:00"),
                ("duration", "15"),
            ]),
            "conference_name",
        );
    }
    refused(&create(&with("Five", "40", "2026-06-20_12:00:00", "15")), "conference_name");
    refused(&create(&[("max_participants", "40")]), "conference_name");

    // The list: reserved ones with every field, divert when given.
    a.book("Divert", "2026-06-20_14:00:00", "30", &[("divert", "EarlyAnnouncement")]);
    let listed = a.listed("Divert");
    assert_eq!(listed["max_participants"], 40);
    assert_eq!(listed["duration"], 30);
    assert_eq!(listed["divert"], "EarlyAnnouncement");
    assert_eq!(listed["status"], "RESERVED");
    assert!(listed["reservation_token"].as_str().is_some_and(|t| !t.is_empty()));

    // Extension: 15-60 minutes, 480 in all.
    let token = a.book("Extend", "2026-06-20_15:00:00", "450", &[]);
    let modify = |minutes: &str| {
        a.get(
            "conference_reservation_modify",
            &[("reservation_token", &token), ("duration", minutes)],
        )
    };
    refused(&modify("14"), "duration");
    refused(&modify("61"), "duration");
    assert_eq!(modify("15").json(), serde_json::json!({"extended": true}));
    assert_eq!(a.listed("Extend")["duration"], 465);
    refused(&modify("16"), "duration");
    assert_eq!(modify("15").json()["extended"], true);
    assert_eq!(a.listed("Extend")["duration"], 480);
    let token60 = a.book("Sixty", "2026-06-20_16:00:00", "30", &[]);
    assert_eq!(
        a.get(
            "conference_reservation_modify",
            &[("reservation_token", &token60), ("duration", "60")]
        )
        .status,
        200
    );
    assert_eq!(a.listed("Sixty")["duration"], 90);
    let unknown = a
        .get("conference_reservation_modify", &[("reservation_token", "nope"), ("duration", "15")]);
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // Removal: RESERVED and not within 5 minutes of the start.
    let gone = a.book("Gone", "2026-06-20_10:30:00", "15", &[]);
    assert_eq!(
        a.get("conference_reservation_remove", &[("reservation_token", &gone)]).json(),
        serde_json::json!({"removed": true})
    );
    assert!(!a.get("conference_list", &[]).body.contains("\"Gone\""));
    // Its name is free again.
    a.book("Gone", "2026-06-20_10:30:00", "15", &[]);
    let soon = a.book("Soon", "2026-06-20_10:06:00", "15", &[]);
    a.advance(61);
    refused(
        &a.get("conference_reservation_remove", &[("reservation_token", &soon)]),
        "reservation_token",
    );
    assert_eq!(
        a.get("conference_reservation_remove", &[("reservation_token", "nope")]).status,
        404
    );

    // States over time: RESERVED, HOLDING from the start, COMPLETED at the end;
    // a running one may be extended, not removed; none in its last 5 minutes.
    assert_eq!(a.listed("Soon")["status"], "RESERVED");
    a.advance(5 * 60);
    assert_eq!(a.listed("Soon")["status"], "HOLDING");
    refused(
        &a.get("conference_reservation_remove", &[("reservation_token", &soon)]),
        "reservation_token",
    );
    assert_eq!(
        a.get("conference_reservation_modify", &[("reservation_token", &soon), ("duration", "15")])
            .status,
        200
    );
    a.advance(25 * 60);
    // 10:31:01, 4:59 before its end (10:36).
    refused(
        &a.get(
            "conference_reservation_modify",
            &[("reservation_token", &soon), ("duration", "15")],
        ),
        "reservation_token",
    );
    a.advance(5 * 60);
    assert_eq!(a.listed("Soon")["status"], "COMPLETED");
    refused(
        &a.get(
            "conference_reservation_modify",
            &[("reservation_token", &soon), ("duration", "15")],
        ),
        "reservation_token",
    );
    let completed = a.get("conference_participant_list", &[("reservation_token", &soon)]).json();
    assert_eq!(completed, serde_json::json!({"status": "COMPLETED", "participants": []}));

    // Credentials: none, wrong, malformed; another customer sees nothing.
    for auth in ["", "Basic !!!", "Bearer x"] {
        let answer = if auth.is_empty() {
            request_with(a.addr, "GET", "/conference_list", &[], None)
        } else {
            a.get_as(auth, "conference_list", &[])
        };
        assert_eq!(answer.status, 401, "{auth:?}: {}", answer.body);
        assert_eq!(answer.header("www-authenticate"), Some("Basic realm=\"tutti\""));
        assert!(answer.json()["error"].is_string());
    }
    let out = run(a.dir.path(), &["customer", "create", "--name", "Other"]);
    let other: Value = serde_json::from_slice(&out.stdout).expect("json");
    let wrong = basic(other["uid"].as_str().expect("uid"), "not-the-key");
    assert_eq!(a.get_as(&wrong, "conference_list", &[]).status, 401);
    let them = basic(other["uid"].as_str().expect("uid"), other["api_key"].as_str().expect("key"));
    assert_eq!(a.get_as(&them, "conference_list", &[]).json(), serde_json::json!([]));
    assert_eq!(
        a.get_as(&them, "conference_participant_list", &[("conference_name", "Divert")]).status,
        404
    );
    assert_eq!(
        a.get_as(&them, "conference_reservation_remove", &[("reservation_token", &token60)]).status,
        404
    );
    assert_eq!(a.listed("Sixty")["duration"], 90, "nothing changed");

    // The OpenAPI document describes the services.
    let openapi = request_with(a.addr, "GET", "/openapi.json", &[], None).json();
    assert!(openapi["paths"]["/conference_reservation_create"]["post"].is_object());
    assert!(openapi["paths"]["/conference_participant_eject"]["get"].is_object());
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booked_conference_with_real_callers() {
    let a = tokio::task::spawn_blocking(|| Aculab::start(&["--control-password", "secret"]))
        .await
        .expect("start");
    let sip = a.server.logged_addr("SIP listening", "udp");
    let client = a.client.clone();
    let blocking = |f: Box<dyn FnOnce(&Client) -> Answer + Send>| {
        let a = client.clone();
        async move { tokio::task::spawn_blocking(move || f(&a)).await.expect("request") }
    };
    // An hour ahead, 15 minutes; one with a divert.
    let (token, _) = {
        let a2 = a.client.clone();
        tokio::task::spawn_blocking(move || {
            let t = a2.book("Board", "2026-06-20_11:00:00", "15", &[]);
            let d =
                a2.book("Later", "2026-06-20_11:00:00", "15", &[("divert", "EarlyAnnouncement")]);
            (t, d)
        })
        .await
        .expect("book")
    };

    // Too early: 486, or a 302 to the divert service.
    let mut line = Phones::new().await;
    let early = line.try_dial(&format!("sip:Board@{sip}"), 9).await;
    assert_eq!(early, Err("busy".to_owned()));
    let sipp = std::process::Command::new("sipp")
        .arg("-sf")
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts/sipp/uac_expect_302.xml"),
        )
        .args(["-i", "127.0.0.1", "-p", &support::free_udp_range(1).to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &support::free_udp_range(2).to_string()])
        .args(["-s", "Later", "-nostdin", "-m", "1", "-timeout", "20s", "-timeout_error"])
        .arg(sip.to_string())
        .current_dir(a.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sipp runs (apt-get install sip-tester)");
    assert!(sipp.success(), "no 302 to sip:EarlyAnnouncement@...: {sipp}");

    // The start: the first caller holds, the second makes it ACTIVE.
    blocking(Box::new(|a| {
        a.clock(&[("at", "2026-06-20T11:00:00Z"), ("frozen", "true")]);
        Answer { status: 200, headers: vec![], body: String::new() }
    }))
    .await;
    let mut phones = vec![line.dial(&format!("sip:Board@{sip}"), 1, 440.0).await];
    let state = |a: &Client| a.get("conference_participant_list", &[("conference_name", "Board")]);
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = blocking(Box::new(state)).await.json();
        if listed["participants"].as_array().is_some_and(|p| p.len() == 1) {
            break;
        }
        talk(&mut phones, 5).await;
    }
    assert_eq!(listed["status"], "HOLDING", "{listed}");
    // Not ACTIVE yet: options cannot be set.
    let id0 = listed["participants"][0]["participant_id"].as_str().expect("id").to_owned();
    let not_yet = {
        let id0 = id0.clone();
        blocking(Box::new(move |a| {
            a.get(
                "conference_participant_set_options",
                &[("conference_name", "Board"), ("participant_id", &id0), ("muted", "true")],
            )
        }))
        .await
    };
    assert_eq!(not_yet.status, 409, "{}", not_yet.body);
    phones.push(line.dial(&format!("sip:Board@{sip}"), 2, 1000.0).await);
    for _ in 0..50 {
        listed = blocking(Box::new(state)).await.json();
        if listed["status"] == "ACTIVE" {
            break;
        }
        talk(&mut phones, 5).await;
    }
    assert_eq!(listed["status"], "ACTIVE", "{listed}");
    let participants = listed["participants"].as_array().expect("participants").clone();
    assert_eq!(participants.len(), 2);
    for p in &participants {
        assert_eq!(
            (p["muted"].clone(), p["dtmf_enabled"].clone()),
            (false.into(), true.into()),
            "{p}"
        );
    }
    let id1 = participants
        .iter()
        .map(|p| p["participant_id"].as_str().expect("id"))
        .find(|id| *id != id0)
        .expect("second")
        .to_owned();
    let by_token = blocking(Box::new({
        let token = token.clone();
        move |a| a.get("conference_participant_list", &[("reservation_token", &token)])
    }))
    .await
    .json();
    assert_eq!(by_token["participants"].as_array().map(Vec::len), Some(2), "by token too");
    assert_eq!(a.listed("Board")["status"], "ACTIVE");
    let heard = until_level(&mut phones, 1, 440.0, true).await;
    assert!(heard > 500.0, "the second caller hears the first ({heard:.0})");

    // Mute the first: not heard; keypad off: its `1` no longer changes anything.
    let set = {
        let id0 = id0.clone();
        blocking(Box::new(move |a| {
            a.post(
                "conference_participant_set_options",
                &[
                    ("conference_name", "Board"),
                    ("participant_id", &id0),
                    ("muted", "true"),
                    ("dtmf_enabled", "false"),
                ],
            )
        }))
        .await
    };
    assert_eq!(set.json(), serde_json::json!({"options_set": true}));
    let muted = until_level(&mut phones, 1, 440.0, false).await;
    assert!(muted < 100.0, "a muted participant is not heard ({muted:.0})");
    let listed = blocking(Box::new(state)).await.json();
    let first = listed["participants"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["participant_id"] == id0.as_str())
        .cloned()
        .expect("first");
    assert_eq!(
        (first["muted"].clone(), first["dtmf_enabled"].clone()),
        (true.into(), false.into())
    );
    // With the keypad on, `1` would toggle the mute (the keypad's rule); off, nothing.
    press(&mut phones, 0, "1").await;
    let still = until_level(&mut phones, 1, 440.0, false).await;
    assert!(still < 100.0, "the keypad is off: `1` did not unmute ({still:.0})");
    // The same change through TCP 4011 shows here.
    let control = a.server.logged_addr("control protocol listening", "addr");
    let id0c = id0.clone();
    let answer = tokio::task::spawn_blocking(move || {
        Control::connect(control, "secret").command(&format!("MUTEUSER,{id0c},0"), "MUTEUSER")
    })
    .await
    .expect("4011");
    assert_eq!(answer, ["MUTEUSER,OK"]);
    let heard = until_level(&mut phones, 1, 440.0, true).await;
    assert!(heard > 500.0, "unmuted over 4011 ({heard:.0})");
    assert!(blocking(Box::new(state)).await.body.contains("\"muted\":false"));

    // Eject the second: a BYE.
    let ejected = {
        let id1 = id1.clone();
        blocking(Box::new(move |a| {
            a.get(
                "conference_participant_eject",
                &[("reservation_token", &token), ("participant_id", &id1)],
            )
        }))
        .await
    };
    assert_eq!(ejected.json(), serde_json::json!({"ejected": true}));
    let unknown = blocking(Box::new(|a| {
        a.get(
            "conference_participant_eject",
            &[("conference_name", "Board"), ("participant_id", "nobody")],
        )
    }))
    .await;
    assert_eq!(unknown.status, 409, "one caller left: not ACTIVE any more: {}", unknown.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut byes = 0;
    while byes < 1 {
        assert!(Instant::now() < deadline, "no BYE for the ejected caller");
        talk(&mut phones, 5).await;
        while let Ok(event) = line.events.try_recv() {
            if let tutti_sip::ua::UaEvent::Hangup { reason, .. } = event {
                assert_eq!(reason, tutti_sip::ua::HangupReason::RemoteBye);
                byes += 1;
            }
        }
    }
    // The end of the reservation: everyone is hung up, COMPLETED.
    blocking(Box::new(|a| {
        a.clock(&[("at", "2026-06-20T11:15:00Z"), ("frozen", "true")]);
        Answer { status: 200, headers: vec![], body: String::new() }
    }))
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while byes < 2 {
        assert!(Instant::now() < deadline, "no BYE at the reservation's end");
        talk(&mut phones, 5).await;
        while let Ok(event) = line.events.try_recv() {
            if let tutti_sip::ua::UaEvent::Hangup { .. } = event {
                byes += 1;
            }
        }
    }
    let listed = blocking(Box::new(state)).await.json();
    assert_eq!(listed, serde_json::json!({"status": "COMPLETED", "participants": []}));
    let late = line.try_dial(&format!("sip:Board@{sip}"), 7).await;
    assert!(late.is_err(), "no caller after the end");
}

#[test]
fn unreserved_conferences_are_listed_with_their_size_and_no_reservation() {
    let a = Aculab::start(&["--control-password", "secret"]);
    // TCP 4011 conferences belong to the default customer: use its key.
    let shown = run(a.dir.path(), &["customer", "show-default"]);
    let default: Value = serde_json::from_slice(&shown.stdout).expect("json");
    let uid = default["uid"].as_str().expect("uid").to_owned();
    let rotated = run(a.dir.path(), &["customer", "rotate-key", &uid]);
    let key: Value = serde_json::from_slice(&rotated.stdout).expect("json");
    let auth = basic(&uid, key["api_key"].as_str().expect("key"));
    let control = a.server.logged_addr("control protocol listening", "addr");
    let mut session = Control::connect(control, "secret");
    assert_eq!(session.command("NEWCONF,4040,Open,Ann,40,,,,", "NEWCONF"), ["NEWCONF,OK"]);
    let list = a.get_as(&auth, "conference_list", &[]).json();
    assert_eq!(
        list,
        serde_json::json!([{"conference_name": "4040", "max_participants": 40, "status": "HOLDING"}])
    );
    let participants =
        a.get_as(&auth, "conference_participant_list", &[("conference_name", "4040")]).json();
    assert_eq!(participants, serde_json::json!({"status": "HOLDING", "participants": []}));
    drop(a);
}
