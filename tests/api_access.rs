//! The Conference Management API (`/_access`) over real HTTP against the real
//! binary: every function in JSON and in XML (XML parsed, never compared as
//! text), every numbered error code, authentication, bad parameters, the
//! reservation rules at their boundaries, PIN uniqueness, hostile text, and the
//! document's PHP sample flow ending in a real SIP call that dials the
//! customer's DID, keys the PIN and is heard in the room.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::http::{Answer, get, post, post_json, request};
use support::phone::{Phones, level, press, talk};
use support::{Server, run};
use tutti_api::http::envelope::Node;

/// How an answer was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Xml => "xml",
        }
    }
}

/// A value read from either rendering.
#[derive(Debug, Clone)]
enum Item {
    Json(serde_json::Value),
    Xml(Node),
}

impl Item {
    /// A scalar field as text (`true`, `12`, ...); empty when absent or null.
    fn text(&self, name: &str) -> String {
        match self {
            Item::Json(v) => match &v[name] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            },
            Item::Xml(n) => n.text_of(name).to_owned(),
        }
    }

    /// A list field's items (repeated elements in XML).
    fn list(&self, name: &str) -> Vec<Item> {
        match self {
            Item::Json(v) => v[name]
                .as_array()
                .map(|a| a.iter().cloned().map(Item::Json).collect())
                .unwrap_or_default(),
            Item::Xml(n) => n.all(name).cloned().map(Item::Xml).collect(),
        }
    }

    /// A list of plain values (UIDs).
    fn texts(&self, name: &str) -> Vec<String> {
        self.list(name)
            .into_iter()
            .map(|i| match i {
                Item::Json(serde_json::Value::String(s)) => s,
                Item::Json(v) => v.to_string(),
                Item::Xml(n) => n.text,
            })
            .collect()
    }

    fn child(&self, name: &str) -> Item {
        match self {
            Item::Json(v) => Item::Json(v[name].clone()),
            Item::Xml(n) => Item::Xml(n.child(name).cloned().unwrap_or_default()),
        }
    }
}

/// An envelope read from either rendering.
#[derive(Debug)]
struct Reply {
    code: i64,
    message: String,
    value: Item,
    raw: Answer,
}

impl Reply {
    fn parse(answer: Answer, format: Format) -> Reply {
        match format {
            Format::Json => {
                let v = answer.json();
                let code = v["code"].as_str().unwrap_or_else(|| panic!("code as text: {v}"));
                Reply {
                    code: code.parse().expect("numeric code"),
                    message: v["message"].as_str().expect("message").to_owned(),
                    value: Item::Json(v["value"].clone()),
                    raw: answer,
                }
            }
            Format::Xml => {
                let root = answer.xml();
                assert_eq!(root.name, "document", "{}", answer.body);
                Reply {
                    code: root.text_of("code").parse().expect("numeric code"),
                    message: root.text_of("message").to_owned(),
                    value: Item::Xml(root.child("value").cloned().unwrap_or_default()),
                    raw: answer,
                }
            }
        }
    }

    /// The value of a successful answer.
    fn ok(self) -> Item {
        assert_eq!(self.code, 0, "{}: {}", self.message, self.raw.body);
        self.value
    }

    /// A top-level list's items (`<value><item>...` in XML).
    fn items(self, item: &str) -> Vec<Item> {
        match self.ok() {
            Item::Json(serde_json::Value::Array(a)) => a.into_iter().map(Item::Json).collect(),
            Item::Json(other) => panic!("not a list: {other}"),
            Item::Xml(n) => n.all(item).cloned().map(Item::Xml).collect(),
        }
    }

    fn expect_code(&self, code: i64) {
        assert_eq!(self.code, code, "{}: {}", self.message, self.raw.body);
        assert_eq!(self.raw.status, 200, "enveloped answers are HTTP 200");
    }
}

/// The server and one customer's credentials.
struct Api {
    server: Server,
    client: Client,
    _dir: tempfile::TempDir,
}

/// Where the API is and who calls it.
#[derive(Clone)]
struct Client {
    addr: SocketAddr,
    uid: String,
    key: String,
}

impl std::ops::Deref for Api {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

const COMMANDS: &[&str] = &[
    "updateCustomer",
    "createConferenceReservationless",
    "createConferenceReserved",
    "addConferenceReservation",
    "addPerson",
    "updatePerson",
    "removePerson",
    "updateConferenceReservation",
    "removeConferenceReservation",
    "cancelConference",
    "updateConference",
    "updateCustomValue",
];

impl Api {
    fn start(extra: &[&str]) -> Api {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["--control-password", "secret"];
        args.extend_from_slice(extra);
        let server = Server::start(dir.path(), &args);
        let (uid, key) = Api::customer(dir.path(), &["--name", "Acme", "--did", "5550100"]);
        Api { client: Client { addr: server.http, uid, key }, server, _dir: dir }
    }

    /// Creates a customer with the command line; its UID and key.
    fn customer(dir: &std::path::Path, args: &[&str]) -> (String, String) {
        let mut all = vec!["customer", "create"];
        all.extend_from_slice(args);
        let out = run(dir, &all);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (v["uid"].as_str().expect("uid").into(), v["api_key"].as_str().expect("key").into())
    }
}

impl Client {
    /// Calls `function` as this customer, by POST for commands and GET otherwise.
    fn call(&self, function: &str, format: Format, params: &[(&str, &str)]) -> Reply {
        self.call_as(&self.uid, &self.key, function, format, params)
    }

    fn call_as(
        &self,
        uid: &str,
        key: &str,
        function: &str,
        format: Format,
        params: &[(&str, &str)],
    ) -> Reply {
        let mut all = vec![("customer", uid), ("key", key), ("type", format.name())];
        all.extend_from_slice(params);
        let path = format!("/_access/{function}");
        let answer = if COMMANDS.contains(&function) {
            post(self.addr, &path, &all)
        } else {
            get(self.addr, &path, &all)
        };
        Reply::parse(answer, format)
    }
}

#[test]
fn every_function_answers_in_json_and_in_xml() {
    let api = Api::start(&[]);
    for format in [Format::Json, Format::Xml] {
        let f = format;
        let customer = api.call("getCustomer", f, &[]).ok();
        assert_eq!(customer.text("UID"), api.uid);
        assert_eq!(customer.text("DID"), "5550100");
        let updated = api.call("updateCustomer", f, &[("field", "greenroom"), ("value", "1")]).ok();
        assert_eq!(updated.text("greenroom"), "true");
        let updated = api
            .call("updateCustomer", f, &[("field", "contactEmail"), ("value", "ops@example.com")])
            .ok();
        assert_eq!(updated.text("contactEmails"), "ops@example.com");

        // Reservationless: one open-ended reservation holding its size.
        let open = api
            .call(
                "createConferenceReservationless",
                f,
                &[("name", "Open"), ("estimatedCallers", "20"), ("recording", "true")],
            )
            .ok();
        let open_uid = open.text("UID");
        assert_eq!(
            (open.text("reserved"), open.text("recording")),
            ("false".into(), "true".into())
        );
        assert_eq!(open.text("greenroom"), "true", "the customer's default");
        assert_eq!(open.text("securityToken").len(), 32);
        let data = api.call("getConferenceData", f, &[("conferenceUID", &open_uid)]).ok();
        let reservations = data.list("reservations");
        assert_eq!(reservations.len(), 1);
        assert_eq!(reservations[0].text("estimateCaller"), "20");
        assert_eq!(reservations[0].text("endTime"), "", "open-ended");
        assert_eq!(data.child("customer").text("UID"), api.uid);
        assert!(!data.list("setting").is_empty());

        // Reserved, with two reservations; the first lasts 50 minutes, rounded up.
        let reserved = api
            .call(
                "createConferenceReserved",
                f,
                &[
                    ("name", "Board"),
                    ("reservationCount", "2"),
                    ("estimatedCallers1", "10"),
                    ("startDate1", "2030.01.01 10:00:00"),
                    ("duration1", "50"),
                    ("estimatedCallers2", "12"),
                    ("startDate2", "2030-01-02T10:00:00Z"),
                    ("duration2", "30"),
                ],
            )
            .ok();
        let board = reserved.text("UID");
        assert_eq!(reserved.text("reserved"), "true");
        assert_eq!(reserved.text("scheduledStartTime"), "2030.01.01 10:00:00");
        assert_eq!(reserved.text("scheduledEndTime"), "2030.01.02 10:30:00");
        let uids = reserved.texts("reservations");
        assert_eq!(uids.len(), 2);
        let first = api.call("getConferenceReservation", f, &[("reservationUID", &uids[0])]).ok();
        assert_eq!(
            (first.text("duration"), first.text("endTime")),
            ("60".into(), "2030.01.01 11:00:00".into())
        );

        let added = api
            .call(
                "addConferenceReservation",
                f,
                &[
                    ("conference", &board),
                    ("estimatedCallers", "5"),
                    ("startDate", "2030.01.03 09:00:00"),
                    ("duration", "1"),
                ],
            )
            .ok();
        assert_eq!(added.text("duration"), "15");
        let changed = api
            .call(
                "updateConferenceReservation",
                f,
                &[
                    ("reservationUID", &added.text("UID")),
                    ("estimatedCallers", "7"),
                    ("duration", "20"),
                ],
            )
            .ok();
        assert_eq!(
            (changed.text("estimateCaller"), changed.text("duration")),
            ("7".into(), "30".into())
        );
        let removed = api
            .call("removeConferenceReservation", f, &[("reservationUID", &added.text("UID"))])
            .ok();
        assert_eq!(removed.text("UID"), added.text("UID"));

        // Persons.
        let person = api
            .call(
                "addPerson",
                f,
                &[
                    ("conference", &board),
                    ("role", "presenter"),
                    ("name", "Ann"),
                    ("email", "ann@example.com"),
                ],
            )
            .ok();
        assert_eq!(person.text("PIN").len(), 6);
        assert_eq!(person.text("role"), "PRESENTER");
        let person_uid = person.text("UID");
        let renamed = api
            .call(
                "updatePerson",
                f,
                &[("person", &person_uid), ("field", "name"), ("value", "Anne")],
            )
            .ok();
        assert_eq!(renamed.text("name"), "Anne");
        let data = api.call("getConferenceData", f, &[("conferenceUID", &board)]).ok();
        assert_eq!(data.list("persons")[0].text("name"), "Anne");
        let plain = api.call("getConference", f, &[("conferenceUID", &board)]).ok();
        assert_eq!(plain.texts("persons"), vec![person_uid.clone()]);

        // Settings and custom values.
        let notes = api
            .call(
                "updateConference",
                f,
                &[("conference", &board), ("field", "notes"), ("value", "agenda")],
            )
            .ok();
        assert_eq!(notes.text("notes"), "agenda");
        let custom = api
            .call(
                "updateCustomValue",
                f,
                &[
                    ("objectType", "conference"),
                    ("objectUID", &board),
                    ("customKey", "RESELLER_INFO_TEXT"),
                    ("customValue", "Help"),
                ],
            )
            .items("custom");
        assert_eq!(
            (custom[0].text("key"), custom[0].text("value")),
            ("RESELLER_INFO_TEXT".into(), "Help".into())
        );
        let shown = api.call("getConference", f, &[("conferenceUID", &board)]).ok();
        assert_eq!(shown.list("custom")[0].text("value"), "Help");

        // The lists: the reservationless one may start now, the reserved one is to come.
        let possible: Vec<String> = api
            .call("getPossibleConference", f, &[])
            .items("conference")
            .iter()
            .map(|c| c.text("UID"))
            .collect();
        assert!(possible.contains(&open_uid) && !possible.contains(&board), "{possible:?}");
        let upcoming: Vec<String> = api
            .call("getUpcomingConference", f, &[])
            .items("conference")
            .iter()
            .map(|c| c.text("UID"))
            .collect();
        assert!(upcoming.contains(&board), "{upcoming:?}");
        assert!(api.call("getActiveConference", f, &[]).items("conference").is_empty());
        let removed =
            api.call("removePerson", f, &[("conference", &board), ("person", &person_uid)]).ok();
        assert_eq!(removed.text("UID"), person_uid);
        let cancelled = api.call("cancelConference", f, &[("conference", &board)]).ok();
        assert_eq!(cancelled.text("status"), "CANCEL");
        let canceled: Vec<String> = api
            .call("getCanceledConference", f, &[])
            .items("conference")
            .iter()
            .map(|c| c.text("UID"))
            .collect();
        assert!(canceled.contains(&board));
        assert!(
            api.call("getExpiredConference", f, &[])
                .items("conference")
                .iter()
                .all(|c| c.text("UID") != board)
        );
    }
    // The answer says which rendering it is.
    let json = api.call("getCustomer", Format::Json, &[]).raw;
    assert!(json.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    let xml = api.call("getCustomer", Format::Xml, &[]).raw;
    assert!(xml.header("content-type").is_some_and(|t| t.starts_with("application/xml")));
    let upper = api.call_as(&api.uid, &api.key, "getCustomer", Format::Json, &[("type", "JSON")]);
    assert_eq!(upper.code, 0);
}

#[test]
fn every_numbered_error_code() {
    let api = Api::start(&[]);
    let f = Format::Json;
    let board = api
        .call(
            "createConferenceReserved",
            f,
            &[
                ("reservationCount", "1"),
                ("estimatedCallers1", "10"),
                ("startDate1", "2030.01.01 10:00:00"),
                ("duration1", "60"),
            ],
        )
        .ok()
        .text("UID");
    let open = api.call("createConferenceReservationless", f, &[("estimatedCallers", "5")]).ok();
    let open_uid = open.text("UID");
    let open_reservation = open.texts("reservations")[0].clone();
    let add = |start: &str, minutes: &str, size: &str, conf: &str| {
        api.call(
            "addConferenceReservation",
            f,
            &[
                ("conference", conf),
                ("estimatedCallers", size),
                ("startDate", start),
                ("duration", minutes),
            ],
        )
    };
    // createConferenceReserved: 1, none valid.
    api.call(
        "createConferenceReserved",
        f,
        &[
            ("reservationCount", "1"),
            ("estimatedCallers1", "0"),
            ("startDate1", "2030.01.01 10:00:00"),
            ("duration1", "60"),
        ],
    )
    .expect_code(1);
    api.call(
        "createConferenceReserved",
        f,
        &[("reservationCount", "2"), ("estimatedCallers1", "3")],
    )
    .expect_code(1);
    // addConferenceReservation: 1 start inside, 2 runs into, 3 size, 4 reservationless.
    add("2030.01.01 10:59:59", "15", "5", &board).expect_code(1);
    add("2030.01.01 09:30:00", "31", "5", &board).expect_code(2);
    add("2030.01.02 09:00:00", "15", "0", &board).expect_code(3);
    add("2030.01.02 09:00:00", "15", "100000", &board).expect_code(3);
    add("2030.01.02 09:00:00", "15", "5", &open_uid).expect_code(4);
    // Touching reservations do not overlap.
    add("2030.01.01 11:00:00", "15", "5", &board).ok();
    add("2030.01.01 09:00:00", "60", "5", &board).ok();
    // updateConferenceReservation: 1, 2, 3, 4.
    let later = add("2030.01.05 10:00:00", "60", "5", &board).ok().text("UID");
    let update = |params: &[(&str, &str)]| {
        let mut all = vec![("reservationUID", later.as_str())];
        all.extend_from_slice(params);
        api.call("updateConferenceReservation", f, &all)
    };
    update(&[("startDate", "2030.01.01 10:30:00")]).expect_code(1);
    update(&[("startDate", "2030.01.01 08:00:00"), ("duration", "61")]).expect_code(2);
    update(&[("estimatedCallers", "0")]).expect_code(3);
    api.call(
        "updateConferenceReservation",
        f,
        &[("reservationUID", &open_reservation), ("duration", "30")],
    )
    .expect_code(4);
    // removeConferenceReservation: 1 reservationless, 2 last, 3 past, 4 running.
    api.call("removeConferenceReservation", f, &[("reservationUID", &open_reservation)])
        .expect_code(1);
    let single = api
        .call(
            "createConferenceReserved",
            f,
            &[
                ("reservationCount", "1"),
                ("estimatedCallers1", "10"),
                ("startDate1", "2031.01.01 10:00:00"),
                ("duration1", "60"),
            ],
        )
        .ok();
    api.call(
        "removeConferenceReservation",
        f,
        &[("reservationUID", &single.texts("reservations")[0])],
    )
    .expect_code(2);
    let past = add("2020.01.01 10:00:00", "15", "5", &board).ok().text("UID");
    api.call("removeConferenceReservation", f, &[("reservationUID", &past)]).expect_code(3);
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let start = (now.timestamp() - jiff::SignedDuration::from_mins(5))
        .strftime("%Y.%m.%d %H:%M:%S")
        .to_string();
    let running = add(&start, "60", "5", &board).ok().text("UID");
    api.call("removeConferenceReservation", f, &[("reservationUID", &running)]).expect_code(4);
    // cancelConference: 1 unknown or already cancelled.
    api.call("cancelConference", f, &[("conference", "no-such")]).expect_code(1);
    api.call("cancelConference", f, &[("conference", &single.text("UID"))]).ok();
    api.call("cancelConference", f, &[("conference", &single.text("UID"))]).expect_code(1);
    // updateConference: 1 unknown conference, 2 unknown field.
    api.call(
        "updateConference",
        f,
        &[("conference", "no-such"), ("field", "notes"), ("value", "x")],
    )
    .expect_code(1);
    api.call("updateConference", f, &[("conference", &board), ("field", "colour"), ("value", "x")])
        .expect_code(2);
    // createConferenceReservationless: 3, the size.
    api.call("createConferenceReservationless", f, &[("estimatedCallers", "0")]).expect_code(3);
}

#[test]
fn authentication_and_transport() {
    let api = Api::start(&[]);
    let f = Format::Json;
    let other_dir = &api.server.data_dir;
    let (other_uid, other_key) = Api::customer(other_dir, &["--name", "Other"]);
    // Missing, wrong, and another customer's key.
    let missing = Reply::parse(get(api.addr, "/_access/getCustomer", &[("type", "json")]), f);
    missing.expect_code(-2);
    assert!(missing.message.contains("customer"), "{}", missing.message);
    api.call_as(&api.uid, "wrong", "getCustomer", f, &[]).expect_code(-1);
    api.call_as(&api.uid, &other_key, "getCustomer", f, &[]).expect_code(-1);
    api.call_as(&other_uid, &other_key, "getCustomer", f, &[]).ok();
    // Another customer's conference answers as an unknown one.
    let mine = api
        .call("createConferenceReservationless", f, &[("estimatedCallers", "5")])
        .ok()
        .text("UID");
    let theirs =
        api.call_as(&other_uid, &other_key, "getConference", f, &[("conferenceUID", &mine)]);
    let unknown =
        api.call_as(&other_uid, &other_key, "getConference", f, &[("conferenceUID", "no-such")]);
    theirs.expect_code(-2);
    assert_eq!(theirs.message, unknown.message);
    api.call_as(&other_uid, &other_key, "cancelConference", f, &[("conference", &mine)])
        .expect_code(1);
    assert_eq!(
        api.call("getConference", f, &[("conferenceUID", &mine)]).ok().text("status"),
        "SCHED"
    );

    // Unknown functions are 404, names match exactly.
    let unknown = request(
        api.addr,
        "GET",
        &format!("/_access/getcustomer?customer={}&key={}", api.uid, api.key),
        None,
    );
    assert_eq!(unknown.status, 404);
    let root = unknown.xml();
    assert_eq!(root.text_of("code"), "-1");
    assert!(root.text_of("message").contains("getcustomer"));
    // A command by GET is refused; parameters in a JSON body work.
    let by_get = get(
        api.addr,
        "/_access/addPerson",
        &[("customer", &api.uid), ("key", &api.key), ("type", "json")],
    );
    assert_eq!(by_get.status, 405);
    let by_json = post_json(
        api.addr,
        "/_access/addPerson",
        &serde_json::json!({"customer": api.uid, "key": api.key, "type": "json", "conference": mine, "role": "PARTICIPANT"}),
    );
    assert_eq!(Reply::parse(by_json, f).ok().text("PIN").len(), 6);
    // Query parameters on a POST count too.
    let path = format!("/_access/addPerson?customer={}&key={}&type=json", api.uid, api.key);
    let mixed = request(
        api.addr,
        "POST",
        &path,
        Some((
            "application/x-www-form-urlencoded",
            format!("conference={mine}&role=OPERATOR").as_bytes(),
        )),
    );
    assert_eq!(Reply::parse(mixed, f).ok().text("role"), "OPERATOR");
    // A body over 1 MiB is 413.
    let big = vec![b'a'; 1024 * 1024 + 10];
    let too_big = request(
        api.addr,
        "POST",
        "/_access/addPerson",
        Some(("application/x-www-form-urlencoded", &big)),
    );
    assert_eq!(too_big.status, 413);
    assert_eq!(too_big.xml().text_of("code"), "-2");
    // OpenAPI describes every function.
    let doc = request(api.addr, "GET", "/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    for function in [
        "getCustomer",
        "getConferenceData",
        "addPerson",
        "updateCustomValue",
        "createConferenceReserved",
    ] {
        assert!(doc["paths"].get(format!("/_access/{function}")).is_some(), "{function}");
    }
}

#[test]
fn bad_parameters_are_named_with_minus_two() {
    let api = Api::start(&[]);
    let f = Format::Json;
    let conf = api
        .call("createConferenceReservationless", f, &[("estimatedCallers", "5")])
        .ok()
        .text("UID");
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("createConferenceReservationless", &[("estimatedCallers", "ten")], "estimatedCallers"),
        ("createConferenceReservationless", &[], "estimatedCallers"),
        (
            "createConferenceReservationless",
            &[("estimatedCallers", "5"), ("recording", "maybe")],
            "recording",
        ),
        (
            "addConferenceReservation",
            &[
                ("conference", &conf),
                ("estimatedCallers", "5"),
                ("startDate", "yesterday"),
                ("duration", "15"),
            ],
            "startDate",
        ),
        (
            "addConferenceReservation",
            &[
                ("conference", &conf),
                ("estimatedCallers", "5"),
                ("startDate", "2030.02.30 10:00:00"),
                ("duration", "15"),
            ],
            "startDate",
        ),
        ("addPerson", &[("conference", &conf), ("role", "KING")], "role"),
        ("addPerson", &[("conference", &conf), ("role", "MODERATOR")], "role"),
        ("addPerson", &[("conference", "no-such"), ("role", "PARTICIPANT")], "conference"),
        ("updateCustomer", &[("field", "colour"), ("value", "x")], "field"),
        ("updateCustomer", &[("field", "recording"), ("value", "perhaps")], "value"),
        (
            "updateCustomValue",
            &[("objectType", "planet"), ("objectUID", &conf), ("customKey", "k")],
            "objectType",
        ),
        (
            "updateCustomValue",
            &[("objectType", "person"), ("objectUID", "no-such"), ("customKey", "k")],
            "objectUID",
        ),
        ("getConference", &[("conferenceUID", "")], "conferenceUID"),
        ("getConferenceReservation", &[], "reservationUID"),
        ("createConferenceReserved", &[("reservationCount", "0")], "reservationCount"),
    ];
    for (function, params, named) in cases {
        let reply = api.call(function, f, params);
        reply.expect_code(-2);
        assert!(
            reply.message.starts_with(named),
            "{function}: {:?} should name {named}",
            reply.message
        );
    }
    let bad_type = Reply::parse(
        get(
            api.addr,
            "/_access/getCustomer",
            &[("customer", &api.uid), ("key", &api.key), ("type", "html")],
        ),
        Format::Xml,
    );
    bad_type.expect_code(-2);
}

#[test]
fn hostile_text_is_stored_and_returned_intact() {
    let api = Api::start(&[]);
    let hostile = "Robert'); DROP TABLE persons;-- <b>&amp;</b> \"quoted\" Ünïcödé 会议 \u{1F600}";
    for f in [Format::Json, Format::Xml] {
        let conf = api
            .call(
                "createConferenceReservationless",
                f,
                &[("estimatedCallers", "5"), ("name", hostile)],
            )
            .ok();
        assert_eq!(conf.text("name"), hostile);
        let person = api
            .call(
                "addPerson",
                f,
                &[
                    ("conference", &conf.text("UID")),
                    ("role", "PARTICIPANT"),
                    ("name", hostile),
                    ("notes", hostile),
                ],
            )
            .ok();
        assert_eq!(
            (person.text("name"), person.text("notes")),
            (hostile.to_owned(), hostile.to_owned())
        );
        let data = api.call("getConferenceData", f, &[("conferenceUID", &conf.text("UID"))]).ok();
        assert_eq!(data.list("persons")[0].text("notes"), hostile);
    }
    // A control character cannot be carried by XML: it is replaced, and the document still parses.
    let conf = api
        .call(
            "createConferenceReservationless",
            Format::Xml,
            &[("estimatedCallers", "5"), ("name", "a\u{1}b")],
        )
        .ok();
    assert_eq!(conf.text("name"), "a\u{FFFD}b");
    let json =
        api.call("getConference", Format::Json, &[("conferenceUID", &conf.text("UID"))]).ok();
    assert_eq!(json.text("name"), "a\u{1}b", "stored intact");
}

#[test]
fn pins_stay_unique_over_ten_thousand_persons() {
    let server = Api::start(&[]);
    let api = server.client.clone();
    let conf = api
        .call("createConferenceReservationless", Format::Json, &[("estimatedCallers", "5")])
        .ok()
        .text("UID");
    let pins = std::sync::Mutex::new(std::collections::HashSet::new());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..1250 {
                    let person = api
                        .call(
                            "addPerson",
                            Format::Json,
                            &[("conference", &conf), ("role", "PARTICIPANT")],
                        )
                        .ok();
                    let pin = person.text("PIN");
                    assert!(pin.len() == 6 && pin.chars().all(|c| c.is_ascii_digit()), "{pin}");
                    assert!(pins.lock().expect("lock").insert(pin), "a PIN was given twice");
                }
            });
        }
    });
    assert_eq!(pins.lock().expect("lock").len(), 10_000);
}

/// The document's PHP sample: addPerson with type=json, read value.PIN. Then the
/// person dials the customer's DID and keys the PIN (RFC 4733); a second
/// person dials in with the PIN in the URI; they hear each other; after they
/// hang up the call is in getCallData with both callers linked to their persons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_php_sample_flow_ends_in_a_call_by_did_and_pin() {
    let api =
        tokio::task::spawn_blocking(|| Api::start(&["--rtp-timeout", "2"])).await.expect("start");
    let sip = api.server.logged_addr("SIP listening", "udp");
    let setup = {
        let (addr, uid, key) = (api.addr, api.uid.clone(), api.key.clone());
        tokio::task::spawn_blocking(move || {
            let base = |extra: &[(&'static str, String)]| {
                let mut p: Vec<(&str, String)> =
                    vec![("customer", uid.clone()), ("key", key.clone()), ("type", "json".into())];
                p.extend(extra.iter().cloned());
                p
            };
            fn pairs<'a>(p: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
                p.iter().map(|(k, v)| (*k, v.as_str())).collect()
            }
            let conf = post(
                addr,
                "/_access/createConferenceReservationless",
                &pairs(&base(&[("name", "Sample".into()), ("estimatedCallers", "10".into())])),
            )
            .json();
            let conf_uid = conf["value"]["UID"].as_str().expect("uid").to_owned();
            let mut people = Vec::new();
            for (name, role) in [("Ann", "PARTICIPANT"), ("Bob", "PRESENTER")] {
                let answer = post(
                    addr,
                    "/_access/addPerson",
                    &pairs(&base(&[
                        ("conference", conf_uid.clone()),
                        ("role", role.into()),
                        ("name", name.into()),
                        ("email", format!("{name}@example.com")),
                        ("notes", format!("{name}'s notes")),
                    ])),
                )
                .json();
                // As the PHP sample reads it.
                assert_eq!(answer["code"], "0");
                people.push((
                    answer["value"]["UID"].as_str().expect("uid").to_owned(),
                    answer["value"]["PIN"].as_str().expect("PIN").to_owned(),
                ));
            }
            (conf_uid, people)
        })
        .await
        .expect("setup")
    };
    let (conf_uid, people) = setup;
    let mut line = Phones::new().await;
    // Ann dials the DID and keys her PIN; Bob gives his in the URI.
    let mut phones = vec![line.dial(&format!("sip:5550100@{sip}"), 1, 440.0).await];
    tokio::time::sleep(Duration::from_millis(800)).await;
    press(&mut phones, 0, &format!("{}#", people[0].1)).await;
    phones.push(line.dial(&format!("sip:5550100*{}@{sip}", people[1].1), 2, 1000.0).await);
    let mut heard = (0.0, 0.0);
    for _ in 0..20 {
        talk(&mut phones, 25).await;
        heard = (level(&phones[0], 1000.0), level(&phones[1], 440.0));
        if heard.0 > 500.0 && heard.1 > 500.0 {
            break;
        }
    }
    assert!(heard.0 > 500.0 && heard.1 > 500.0, "they do not hear each other: {heard:?}");
    // The phones vanish; with --rtp-timeout 2 the server ends their calls.
    drop(phones);
    drop(line);
    let (addr, uid, key) = (api.addr, api.uid.clone(), api.key.clone());
    let data = tokio::task::spawn_blocking(move || {
        let call = |function: &str, extra: &[(&str, &str)]| {
            let mut p = vec![("customer", uid.as_str()), ("key", key.as_str()), ("type", "json")];
            p.extend_from_slice(extra);
            get(addr, &format!("/_access/{function}"), &p).json()
        };
        let conference = call("getConferenceData", &[("conferenceUID", &conf_uid)]);
        let call_uid = conference["value"]["calls"][0].as_str().expect("a call").to_owned();
        assert_eq!(conference["value"]["persons"].as_array().map(Vec::len), Some(2));
        // An active call is the Conductor's: refused until it ends.
        let mut data = serde_json::Value::Null;
        for _ in 0..200 {
            data = call("getCallData", &[("conferenceUID", &conf_uid), ("callUID", &call_uid)]);
            if data["code"] == "0" {
                break;
            }
            assert_eq!(data["code"], "-1", "{data}");
            std::thread::sleep(Duration::from_millis(100));
        }
        data
    });
    let data = data.await.expect("call data");
    assert_eq!(data["code"], "0", "{data}");
    let callers = data["value"]["callers"].as_array().expect("callers");
    assert_eq!(callers.len(), 2);
    for (caller, (person_uid, pin)) in callers.iter().zip(&people) {
        assert_eq!(caller["personUID"].as_str(), Some(person_uid.as_str()));
        assert_eq!(caller["PIN"].as_str(), Some(pin.as_str()));
        assert_eq!(caller["active"], false);
    }
    assert_eq!(callers[0]["name"], "Ann");
    assert_eq!(callers[0]["notes"], "Ann's notes");
    assert_eq!(callers[1]["role"], "PRESENTER");
}
