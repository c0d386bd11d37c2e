//! The store against a real SQLite file: migrations, a round trip of every entity
//! through a closed and reopened database, the rules the schema enforces, and the
//! secrets it keeps hashed.

use tutti_api::model::*;
use tutti_api::{Store, StoreError, Time};

struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("tutti.db").display());
        Self { _dir: dir, url }
    }

    async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    /// Closes `store` and opens the file again, so reads come from disk.
    async fn reopen(&self, store: Store) -> Store {
        store.close().await;
        self.open().await
    }
}

fn at(text: &str) -> Time {
    text.parse().expect("valid time")
}

async fn schema(store: &Store) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(store.pool())
    .await
    .expect("schema")
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_again_without_change() {
    let db = Db::new();
    let store = db.open().await;
    let first = schema(&store).await;
    assert!(first.iter().any(|(name, _)| name == "conferences"));
    store.migrate().await.expect("second run is a no-op");
    let store = db.reopen(store).await;
    assert_eq!(schema(&store).await, first, "schema changed on re-run");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .expect("migration table");
    // Each migration file applied exactly once.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations directory")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql")))
        .count();
    assert_eq!(applied, i64::try_from(files).expect("count"));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
    // Each connection's page cache is bounded (256 KiB), so memory does not grow
    // with the file.
    let cache: i64 =
        sqlx::query_scalar("PRAGMA cache_size").fetch_one(store.pool()).await.expect("cache size");
    assert_eq!(cache, -256);
}

fn full_customer() -> Customer {
    Customer {
        uid: "cust-1".into(),
        name: "Acme, \"Inc\"".into(),
        status: CustomerStatus::Hold,
        did: Some("+441234567890".into()),
        recording: true,
        greenroom: true,
        background_music: true,
        place_call: false,
        contact_emails: "a@example.com,b@example.com".into(),
        affiliate_code: "AFF".into(),
        reminder: true,
        pre_call: "pre".into(),
        post_call: "post".into(),
        banner: "banner".into(),
        caller_interface: "ci".into(),
        reg_comment: "rc".into(),
        created_at: at("2026-01-02T03:04:05.006Z"),
        max_callers: Some(250),
    }
}

fn full_conference(customer: &Customer) -> Conference {
    Conference {
        uid: "conf-1".into(),
        customer_uid: customer.uid.clone(),
        name: "Board ünïcode ☎".into(),
        dial_in_number: Some("4001".into()),
        company: "Acme".into(),
        organiser: "Ann".into(),
        status: ConferenceStatus::Idle,
        scheduled_start: Some(at("2026-12-01T09:00:00Z")),
        scheduled_end: Some(at("2026-12-01T10:00:00Z")),
        reserved: true,
        max_members: Some(40),
        default_max_members: Some(100),
        participant_pin: Some("1234".into()),
        moderator_pin: Some("9876".into()),
        security_token: "0123456789abcdef0123456789abcdef".into(),
        recording: true,
        greenroom: true,
        background_music: true,
        beep_on_entry: false,
        mute_non_moderator: true,
        announce_caller_name: true,
        entry_notifications: false,
        locked: true,
        large_call: true,
        place_call: false,
        enter_sound: None,
        music_on_hold_sound: None,
        contact_email: "c@example.com".into(),
        register_text: "reg".into(),
        notes: "notes".into(),
        data: "{\"gui\":1}".into(),
        custom: "custom".into(),
        reminder: true,
        pre_call: "p1".into(),
        post_call: "p2".into(),
        banner: "b".into(),
        caller_interface: "ci".into(),
        reg_comment: "rc".into(),
        created_at: at("2026-01-02T03:04:05Z"),
        updated_at: at("2026-01-03T03:04:05Z"),
    }
}

#[tokio::test]
async fn every_entity_round_trips_through_the_file() {
    let db = Db::new();
    let store = db.open().await;

    let mut customer = full_customer();
    let key = store.create_customer(&customer).await.expect("customer");
    let sound =
        store.add_sound(Some(&customer.uid), "Welcome", "welcome.wav").await.expect("sound");
    let hold = store.add_sound(None, "Hold", "hold.wav").await.expect("shared sound");
    let mut conference = full_conference(&customer);
    conference.enter_sound = Some(sound.id);
    conference.music_on_hold_sound = Some(hold.id);
    store.create_conference(&conference).await.expect("conference");
    let presenter = RoleFlags { role: Role::Presenter, mike: true, mute: true, deaf: false };
    store.set_conference_role_settings(&conference.uid, presenter).await.expect("role flags");

    let mut reservation = Reservation::new(&conference.uid, at("2026-12-01T09:00:00Z"), 45);
    reservation.estimated_callers = 120;
    reservation.divert = Some("EarlyAnnouncement".into());
    reservation.state = ReservationState::Holding;
    store.insert(&reservation).await.expect("reservation");

    let tag = store.add_conference_tag(&conference.uid, "vip").await.expect("tag");
    let other_tag = store.add_conference_tag(&conference.uid, "press").await.expect("tag");

    let mut person = Person::new(&conference, "482910", Role::Presenter);
    person.name = "Pat".into();
    person.email = "pat@example.com".into();
    person.ani = "+15550001".into();
    person.notes = "n".into();
    person.custom1 = "c1".into();
    person.custom2 = "c2".into();
    store.insert(&person).await.expect("person");
    store.set_person_tags(&person.uid, &[tag.id, other_tag.id]).await.expect("person tags");

    let mut call = Call::new(&conference, at("2026-12-01T09:01:00Z"));
    call.notes = "call notes".into();
    call.data = "d".into();
    call.custom = "c".into();
    call.talking = false;
    call.entryway = true;
    call.link = "https://example.com".into();
    call.message = "hello".into();
    call.feedback = "f".into();
    call.enable_feedback = true;
    call.enable_broadcast = true;
    store.start_call(&call).await.expect("call");
    let call_tag = store.add_call_tag(&call.uid, "vip", Some(tag.id)).await.expect("call tag");

    let mut breakout = Breakout::new(&call.uid, "Sales");
    breakout.private = true;
    breakout.attention = true;
    breakout.attention_time = Some(at("2026-12-01T09:05:00Z"));
    breakout.last_assisted_time = Some(at("2026-12-01T09:06:00Z"));
    breakout.data = "bd".into();
    store.insert(&breakout).await.expect("breakout");

    let mut caller =
        Caller::new(&call.uid, Direction::Outbound, Role::Presenter, at("2026-12-01T09:02:00Z"));
    caller.person_uid = Some(person.uid.clone());
    caller.name = "Pat".into();
    caller.ani = "+15550001".into();
    caller.did = "4001".into();
    caller.pin = "482910".into();
    caller.breakout_uid = Some(breakout.uid.clone());
    caller.breakout_time = Some(at("2026-12-01T09:03:00Z"));
    caller.mike = false;
    caller.mute = true;
    caller.deaf = true;
    caller.dtmf_allowed = false;
    caller.listen_only = true;
    caller.tag = "t".into();
    caller.attention = 5;
    caller.attention_time = Some(at("2026-12-01T09:04:00Z"));
    caller.data = "cd".into();
    caller.notes = "cn".into();
    caller.custom1 = "x".into();
    caller.custom2 = "y".into();
    caller.volume_in = -2;
    caller.volume_out = 3;
    caller.energy = 250;
    caller.end_time = Some(at("2026-12-01T09:30:00Z"));
    caller.active = false;
    store.insert(&caller).await.expect("caller");
    store.set_caller_tag(&caller.uid, call_tag.id, true).await.expect("caller tag");

    let recording = Recording {
        uid: "rec-1".into(),
        conference_uid: conference.uid.clone(),
        call_uid: Some(call.uid.clone()),
        caller_uid: Some(caller.uid.clone()),
        file_name: "conf-1/2026-12-01T09-01-00.wav".into(),
        started_at: at("2026-12-01T09:01:00Z"),
        ended_at: Some(at("2026-12-01T09:31:00Z")),
    };
    store.insert(&recording).await.expect("recording");
    for (kind, uid) in [
        (ObjectType::Customer, &customer.uid),
        (ObjectType::Conference, &conference.uid),
        (ObjectType::Call, &call.uid),
        (ObjectType::Caller, &caller.uid),
        (ObjectType::Person, &person.uid),
    ] {
        store
            .set_custom_value(kind, uid, "RESELLER_INFO_TEXT", kind.as_str())
            .await
            .expect("custom");
    }

    // Everything comes back from disk exactly as written.
    let store = db.reopen(store).await;
    assert_eq!(store.get::<Customer>(&customer.uid).await.expect("customer"), customer);
    assert!(store.authenticate_customer(&customer.uid, &key).await.expect("auth").is_some());
    assert_eq!(store.get::<Conference>(&conference.uid).await.expect("conference"), conference);
    let flags = store.conference_role_settings(&conference.uid).await.expect("flags");
    assert_eq!(flags.len(), Role::ALL.len());
    assert_eq!(flags[1], presenter);
    assert_eq!(flags[0], RoleFlags::default_for(Role::Participant));
    assert_eq!(store.get::<Reservation>(&reservation.uid).await.expect("reservation"), reservation);
    assert_eq!(
        store.reservation_by_token(&reservation.token).await.expect("by token"),
        Some(reservation.clone())
    );
    assert_eq!(
        store.conference_tags(&conference.uid).await.expect("tags"),
        vec![tag.clone(), other_tag.clone()]
    );
    assert_eq!(store.get::<Person>(&person.uid).await.expect("person"), person);
    assert_eq!(
        store.person_tags(&person.uid).await.expect("person tags"),
        vec![tag.clone(), other_tag.clone()]
    );
    assert_eq!(store.get::<Call>(&call.uid).await.expect("call"), call);
    let call_flags = store.call_role_settings(&call.uid).await.expect("call flags");
    assert_eq!(call_flags, flags, "a call starts with its conference's role settings");
    assert_eq!(store.call_tags(&call.uid).await.expect("call tags"), vec![call_tag.clone()]);
    assert_eq!(store.get::<Breakout>(&breakout.uid).await.expect("breakout"), breakout);
    assert_eq!(store.get::<Caller>(&caller.uid).await.expect("caller"), caller);
    assert_eq!(store.caller_tags(&caller.uid).await.expect("caller tags"), vec![call_tag.clone()]);
    assert_eq!(store.get::<Recording>(&recording.uid).await.expect("recording"), recording);
    assert_eq!(store.sound(sound.id).await.expect("sound"), sound);
    assert_eq!(
        store.sounds_for(&customer.uid).await.expect("sounds"),
        vec![sound.clone(), hold.clone()]
    );
    assert_eq!(
        store.custom_values(ObjectType::Caller, &caller.uid).await.expect("custom"),
        vec![("RESELLER_INFO_TEXT".to_owned(), "caller".to_owned())]
    );

    // Every field can change, and the change is what comes back.
    customer.name = "Acme Ltd".into();
    customer.status = CustomerStatus::Active;
    customer.did = None;
    customer.place_call = true;
    store.update(&customer).await.expect("update customer");
    conference.status = ConferenceStatus::Active;
    conference.dial_in_number = Some("4002".into());
    conference.max_members = None;
    conference.moderator_pin = None;
    conference.enter_sound = None;
    conference.locked = false;
    store.update_conference(&conference).await.expect("update conference");
    let mut caller2 = caller.clone();
    caller2.breakout_uid = None;
    caller2.mute = false;
    caller2.attention = 0;
    caller2.volume_in = 4;
    store.update(&caller2).await.expect("update caller");
    let store = db.reopen(store).await;
    assert_eq!(store.get::<Customer>(&customer.uid).await.expect("customer"), customer);
    assert_eq!(store.get::<Conference>(&conference.uid).await.expect("conference"), conference);
    assert_eq!(store.get::<Caller>(&caller.uid).await.expect("caller"), caller2);
    assert_eq!(
        store.conference_by_number("4002").await.expect("lookup").map(|c| c.uid),
        Some(conference.uid.clone())
    );
    assert_eq!(store.conference_by_number("4001").await.expect("lookup"), None);
    assert_eq!(
        store.conference_by_token(&conference.security_token).await.expect("token").map(|c| c.uid),
        Some(conference.uid.clone())
    );
    assert_eq!(store.calls_of(&conference.uid).await.expect("calls"), vec![call.clone()]);
    assert_eq!(store.callers_of(&call.uid).await.expect("callers"), vec![caller2.clone()]);
    assert_eq!(store.breakouts_of(&call.uid).await.expect("breakouts"), vec![breakout.clone()]);
    assert_eq!(store.persons_of(&conference.uid).await.expect("persons"), vec![person.clone()]);
    assert_eq!(
        store.recordings_of(&conference.uid).await.expect("recordings"),
        vec![recording.clone()]
    );

    // Deleting the conference takes what belongs to it, custom values included.
    store.delete::<Conference>(&conference.uid).await.expect("delete");
    assert!(store.find::<Person>(&person.uid).await.expect("find").is_none());
    assert!(store.find::<Caller>(&caller.uid).await.expect("find").is_none());
    assert!(
        store.custom_values(ObjectType::Conference, &conference.uid).await.expect("cv").is_empty()
    );
    assert!(store.custom_values(ObjectType::Caller, &caller.uid).await.expect("cv").is_empty());
    assert_eq!(
        store.custom_values(ObjectType::Customer, &customer.uid).await.expect("cv").len(),
        1
    );
    assert!(matches!(
        store.delete::<Conference>(&conference.uid).await,
        Err(StoreError::NotFound("conferences"))
    ));
}

#[tokio::test]
async fn schema_rules_become_typed_errors() {
    let db = Db::new();
    let store = db.open().await;
    let mut acme = Customer::new("Acme");
    acme.did = Some("5000".into());
    store.create_customer(&acme).await.expect("acme");
    let mut globex = Customer::new("Globex");
    globex.created_at = acme.created_at.plus_minutes(1);
    store.create_customer(&globex).await.expect("globex");

    // The default customer is the one made as such (issue 17: not simply the
    // oldest, which a `customer create` before the first start would make).
    assert!(matches!(store.default_customer().await, Err(StoreError::NotFound(_))));
    let (default, key) = store.ensure_default_customer().await.expect("default");
    assert!(key.is_some(), "made now, with its key");
    assert_eq!(store.default_customer().await.expect("default").uid, default.uid);
    let (again, key) = store.ensure_default_customer().await.expect("default");
    assert_eq!((again.uid, key), (default.uid, None), "made once");
    let mut conf = Conference::new(&acme, "A");
    conf.dial_in_number = Some("5000".into());
    assert!(
        matches!(store.create_conference(&conf).await, Err(StoreError::Conflict(_))),
        "a dial-in number may not be a customer DID"
    );
    conf.dial_in_number = Some("100".into());
    store.create_conference(&conf).await.expect("conference");
    let mut twin = Conference::new(&acme, "B");
    twin.dial_in_number = Some("100".into());
    match store.create_conference(&twin).await {
        Err(StoreError::Conflict(cols)) => assert_eq!(cols, "conferences.dial_in_number"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // PINs are unique within a customer, not across customers.
    store.insert(&Person::new(&conf, "111111", Role::Participant)).await.expect("person");
    assert!(matches!(
        store.insert(&Person::new(&conf, "111111", Role::Presenter)).await,
        Err(StoreError::Conflict(_))
    ));
    let globex_conf = Conference::new(&globex, "G");
    store.create_conference(&globex_conf).await.expect("globex conference");
    store
        .insert(&Person::new(&globex_conf, "111111", Role::Participant))
        .await
        .expect("same PIN, other customer");
    let pin = store.unused_person_pin(&acme.uid, 6).await.expect("free pin");
    assert!(store.person_by_pin(&acme.uid, &pin).await.expect("lookup").is_none());
    assert_eq!(
        store.person_by_pin(&acme.uid, "111111").await.expect("lookup").map(|p| p.role),
        Some(Role::Participant)
    );

    // References to missing objects and values out of range are refused.
    let orphan = Call::new(&Conference::new(&acme, "never stored"), Time::now());
    assert!(matches!(store.start_call(&orphan).await, Err(StoreError::Invalid(_))));
    let call = Call::new(&conf, Time::now());
    store.start_call(&call).await.expect("call");
    let mut caller = Caller::new(&call.uid, Direction::Inbound, Role::Participant, Time::now());
    caller.attention = 6;
    assert!(matches!(store.insert(&caller).await, Err(StoreError::Invalid(_))));
    let other_conf_tag = store.add_conference_tag(&globex_conf.uid, "x").await.expect("tag");
    let person = store.person_by_pin(&acme.uid, "111111").await.expect("lookup").expect("person");
    assert!(matches!(
        store.set_person_tags(&person.uid, &[other_conf_tag.id]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.set_custom_value(ObjectType::Call, "no-such-call", "k", "v").await,
        Err(StoreError::NotFound("call"))
    ));
    assert!(matches!(
        store.update(&Customer::new("ghost")).await,
        Err(StoreError::NotFound("customers"))
    ));
}

#[tokio::test]
async fn api_keys_and_control_password_are_kept_hashed() {
    let db = Db::new();
    let store = db.open().await;
    let customer = Customer::new("Acme");
    let key = store.create_customer(&customer).await.expect("customer");
    let stored: String = sqlx::query_scalar("SELECT api_key_hash FROM customers")
        .fetch_one(store.pool())
        .await
        .expect("hash");
    assert!(!stored.contains(&key), "the key itself is never stored");
    assert!(store.authenticate_customer(&customer.uid, &key).await.expect("auth").is_some());
    assert!(store.authenticate_customer(&customer.uid, "wrong").await.expect("auth").is_none());
    assert!(store.authenticate_customer("no-such", &key).await.expect("auth").is_none());

    let new_key = store.rotate_api_key(&customer.uid).await.expect("rotate");
    assert_ne!(new_key, key);
    assert!(store.authenticate_customer(&customer.uid, &key).await.expect("auth").is_none());
    assert!(store.authenticate_customer(&customer.uid, &new_key).await.expect("auth").is_some());
    assert!(matches!(store.rotate_api_key("no-such").await, Err(StoreError::NotFound(_))));

    assert!(!store.has_control_password().await.expect("query"));
    assert!(
        !store.verify_control_password("").await.expect("verify"),
        "no password set: nothing verifies"
    );
    store.set_control_password("open sesame").await.expect("set");
    let store = db.reopen(store).await;
    assert!(store.verify_control_password("open sesame").await.expect("verify"));
    assert!(!store.verify_control_password("open sesame!").await.expect("verify"));
    let dump: Vec<String> = sqlx::query_scalar("SELECT value FROM server_settings")
        .fetch_all(store.pool())
        .await
        .expect("settings");
    assert!(dump.iter().all(|v| !v.contains("open sesame")));
}

#[tokio::test]
async fn stale_live_sessions_are_closed_on_restart() {
    let db = Db::new();
    let store = db.open().await;
    let customer = Customer::new("Acme");
    store.create_customer(&customer).await.expect("customer");
    let mut conf = Conference::new(&customer, "Live");
    conf.status = ConferenceStatus::Active;
    store.create_conference(&conf).await.expect("conference");
    let call = Call::new(&conf, at("2026-05-01T10:00:00Z"));
    store.start_call(&call).await.expect("call");
    for _ in 0..3 {
        let caller = Caller::new(
            &call.uid,
            Direction::Inbound,
            Role::Participant,
            at("2026-05-01T10:00:01Z"),
        );
        store.insert(&caller).await.expect("caller");
    }
    let counts = store.counts().await.expect("counts");
    assert_eq!((counts.active_calls, counts.active_callers), (1, 3));

    let now = at("2026-05-01T11:00:00Z");
    assert_eq!(store.close_stale_sessions(now).await.expect("close"), 3);
    let call = store.get::<Call>(&call.uid).await.expect("call");
    assert_eq!((call.status, call.actual_end), (CallStatus::Closed, Some(now)));
    assert!(
        store
            .callers_of(&call.uid)
            .await
            .expect("callers")
            .iter()
            .all(|c| !c.active && c.end_time == Some(now))
    );
    assert_eq!(
        store.get::<Conference>(&conf.uid).await.expect("conf").status,
        ConferenceStatus::Idle
    );
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        (counts.customers, counts.conferences, counts.active_calls, counts.active_callers),
        (1, 1, 0, 0)
    );
}

#[tokio::test]
async fn status_moves_touch_only_the_status_and_only_from_the_expected_one() {
    let db = Db::new();
    let store = db.open().await;
    let customer = Customer::new("Acme");
    store.create_customer(&customer).await.expect("customer");
    let conference = Conference::new(&customer, "Board");
    store.create_conference(&conference).await.expect("conference");
    let reservation = Reservation::new(&conference.uid, Time::now(), 30);
    store.insert(&reservation).await.expect("reservation");

    // A setting changed by an API after the scheduler read the conference...
    let mut locked = conference.clone();
    locked.locked = true;
    store.update(&locked).await.expect("lock");
    // ...survives the scheduler's status move.
    let at = Time::now();
    let moved = store
        .set_conference_status(
            &conference.uid,
            Some(ConferenceStatus::Sched),
            ConferenceStatus::Idle,
            at,
        )
        .await
        .expect("move");
    assert!(moved);
    let now: Conference = store.get(&conference.uid).await.expect("get");
    assert_eq!((now.status, now.locked), (ConferenceStatus::Idle, true));
    // From a status it no longer has: nothing happens.
    let stale = store
        .set_conference_status(
            &conference.uid,
            Some(ConferenceStatus::Sched),
            ConferenceStatus::Closed,
            at,
        )
        .await
        .expect("stale move");
    assert!(!stale);
    // CANCEL is final for "any status" moves.
    store
        .set_conference_status(
            &conference.uid,
            Some(ConferenceStatus::Idle),
            ConferenceStatus::Cancel,
            at,
        )
        .await
        .expect("cancel");
    let reopened = store
        .set_conference_status(&conference.uid, None, ConferenceStatus::Active, at)
        .await
        .expect("any");
    assert!(!reopened, "a cancelled conference was made active");
    assert_eq!(
        store.get::<Conference>(&conference.uid).await.expect("get").status,
        ConferenceStatus::Cancel
    );

    let held = store
        .set_reservation_state(
            &reservation.uid,
            ReservationState::Reserved,
            ReservationState::Holding,
        )
        .await
        .expect("hold");
    assert!(held);
    let again = store
        .set_reservation_state(
            &reservation.uid,
            ReservationState::Reserved,
            ReservationState::Active,
        )
        .await
        .expect("stale");
    assert!(!again);
    let stored: Reservation = store.get(&reservation.uid).await.expect("get");
    assert_eq!(stored.state, ReservationState::Holding);
}
