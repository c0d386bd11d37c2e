//! The engine's `LiveControl` as the MaestroConference facades will drive it:
//! breakout groups, the green room, recording one caller. The engine runs in
//! this process with a real SQLite store and SIP user agent on loopback, and
//! phones call it over SIP and RTP. Audio is checked with a Goertzel filter.

mod support;

use std::net::SocketAddr;

use support::phone::{LOOPBACK, MUSIC_NOTES, Phone, Phones, level, music_level, talk};
use tutti::engine::core::{Engine, EngineConfig};
use tutti_api::Store;
use tutti_api::live::{CallUpdate, CallerUpdate, Event, EventBus, LiveControl};
use tutti_api::model::{Breakout, Conference, Customer, Person, Role};
use tutti_api::ops::{Conflict, Kind, OpsError};
use tutti_sip::ua::{SipConfig, SipUa};

const TONES: [f64; 4] = [440.0, 1000.0, 1300.0, 1700.0];

/// Talks in 0.5 s rounds until everyone hears exactly what `hears` says
/// (listener, tone index) -> bool, for at most 5 s; returns the last matrix.
async fn until_matrix(
    phones: &mut [Phone],
    hears: impl Fn(usize, usize) -> bool,
) -> Result<(), Vec<Vec<f64>>> {
    let mut matrix = Vec::new();
    for _ in 0..10 {
        talk(phones, 25).await;
        // The tones of the phones present.
        let tones = &TONES[..phones.len()];
        matrix = phones.iter().map(|p| tones.iter().map(|t| level(p, *t)).collect()).collect();
        let right = matrix.iter().enumerate().all(|(l, row): (usize, &Vec<f64>)| {
            row.iter().enumerate().all(|(t, v)| {
                if l == t {
                    *v < 100.0
                } else if hears(l, t) {
                    *v > 500.0
                } else {
                    *v < 100.0
                }
            })
        });
        if right {
            return Ok(());
        }
    }
    Err(matrix)
}

/// How loud the music on hold is in what `phone` heard last, by its notes from
/// 196 to 294 Hz (one or more in each chord). Its 329, 349 and 392 Hz are left
/// out: a 440 Hz test tone leaks into a Goertzel filter 48 Hz away enough to
/// read as music.
fn music(phone: &Phone) -> f64 {
    music_level(phone, &MUSIC_NOTES[..5])
}

/// The call engine in this process, on a real store and SIP stack.
async fn start_engine(
    store: &Store,
    events: &EventBus,
    dir: &std::path::Path,
) -> (Engine, SocketAddr) {
    start_engine_with_quota(store, events, dir, u64::MAX).await
}

/// [`start_engine`] with a recording quota of `quota` bytes per customer.
async fn start_engine_with_quota(
    store: &Store,
    events: &EventBus,
    dir: &std::path::Path,
    quota: u64,
) -> (Engine, SocketAddr) {
    let (ua, ua_events) = SipUa::start(SipConfig::new(SocketAddr::new(LOOPBACK, 0), LOOPBACK))
        .await
        .expect("server UA");
    let sip = ua.udp_addr();
    let rtp = support::free_udp_range(16);
    let engine = Engine::start(
        EngineConfig {
            media_address: LOOPBACK,
            rtp_ports: (rtp, rtp + 15),
            sounds_dir: dir.join("sounds"),
            recordings_dir: dir.join("recordings"),
            recording_quota_bytes: quota,
            recording_min_free_bytes: 0,
            tts_dir: dir.join("tts"),
            silence: None,
            default_music_on_hold: true,
        },
        store.clone(),
        events.clone(),
        ua,
        ua_events,
    )
    .expect("engine");
    (engine, sip)
}

/// One phone per target, sending TONES in order; the `Phones` must outlive them.
async fn dial_all(targets: &[String]) -> (Vec<Phone>, Phones) {
    let mut line = Phones::new().await;
    let mut phones = Vec::new();
    for (i, (target, tone)) in targets.iter().zip(TONES).enumerate() {
        phones.push(line.dial(target, i as u64 + 1, tone).await);
    }
    (phones, line)
}

/// A real store in `dir` with one customer (`did`, if any) and the conference
/// `make` builds for it.
async fn store_with(
    dir: &std::path::Path,
    did: Option<&str>,
    make: impl FnOnce(&Customer) -> Conference,
) -> (Store, Conference) {
    let store =
        Store::open(&format!("sqlite://{}", dir.join("tutti.db").display())).await.expect("store");
    let mut customer = Customer::new("Acme");
    customer.did = did.map(str::to_owned);
    store.create_customer(&customer).await.expect("customer");
    let conference = make(&customer);
    store.create_conference(&conference).await.expect("conference");
    (store, conference)
}

/// A conference reached by dialling `number`.
fn numbered(customer: &Customer, name: &str, number: &str) -> Conference {
    Conference { dial_in_number: Some(number.into()), ..Conference::new(customer, name) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakout_groups_hear_each_other_apart_from_the_main_room() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, conference) =
        store_with(dir.path(), None, |c| numbered(c, "Workshop", "4301")).await;

    let events = EventBus::new();
    let (engine, sip) = start_engine(&store, &events, dir.path()).await;
    let targets = vec![format!("sip:4301@{sip}"); 4];
    let (mut phones, _ua) = dial_all(&targets).await;
    until_matrix(&mut phones, |_, _| true).await.expect("everyone hears everyone");

    // Phones 3 and 4 go into a breakout of this call.
    let call = store.calls_of(&conference.uid).await.expect("calls").remove(0);
    let callers = store.callers_of(&call.uid).await.expect("callers");
    let uid_of = |ani: &str| callers.iter().find(|c| c.ani == ani).expect("caller").uid.clone();
    let mut group = Breakout::new(&call.uid, "Table 1");
    store.insert(&group).await.expect("breakout");
    for ani in ["phone3", "phone4"] {
        engine
            .update_caller(uid_of(ani), CallerUpdate::Breakout(Some(group.uid.clone())))
            .await
            .expect("into the breakout");
    }
    let stored = store.get::<tutti_api::model::Caller>(&uid_of("phone3")).await.expect("caller");
    assert_eq!(stored.breakout_uid.as_deref(), Some(group.uid.as_str()));
    // The group hears itself and the main room; the main room does not hear it.
    until_matrix(&mut phones, |l, t| l >= 2 || t < 2)
        .await
        .unwrap_or_else(|m| panic!("open breakout: {m:.0?}"));

    // Made private (as the operations layer does, through the engine) while the
    // event bus is saturated: a command that rode on the bus was once lost by a
    // lagging watcher. The main room is gone too.
    let _lagging = events.subscribe();
    for _ in 0..tutti_api::live::EVENT_BACKLOG * 2 {
        events.publish(Event::Digit {
            conference_uid: conference.uid.clone(),
            call_uid: call.uid.clone(),
            caller_uid: "flood".into(),
            digit: '0',
        });
    }
    engine.set_breakout_private(group.uid.clone(), true).await.expect("private");
    group.private = true;
    assert_eq!(store.get::<Breakout>(&group.uid).await.expect("stored"), group);
    until_matrix(&mut phones, |l, t| (l < 2) == (t < 2))
        .await
        .unwrap_or_else(|m| panic!("private breakout: {m:.0?}"));

    // A breakout of another call is refused; back to the main room for everyone.
    let stranger = Breakout::new("no-such-call", "Elsewhere");
    let refused =
        engine.update_caller(uid_of("phone1"), CallerUpdate::Breakout(Some(stranger.uid))).await;
    assert_eq!(refused, Err(OpsError::NotFound(Kind::Breakout)));
    for ani in ["phone3", "phone4"] {
        engine.update_caller(uid_of(ani), CallerUpdate::Breakout(None)).await.expect("back");
    }
    until_matrix(&mut phones, |_, _| true)
        .await
        .unwrap_or_else(|m| panic!("back in the main room: {m:.0?}"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_green_room_keeps_presenters_apart_until_the_call_goes_live() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, conference) = store_with(dir.path(), Some("5550100"), |c| Conference {
        greenroom: true,
        ..Conference::new(c, "Launch")
    })
    .await;
    for (pin, role) in
        [("1111", Role::Presenter), ("2222", Role::Assistant), ("3333", Role::Participant)]
    {
        store.insert(&Person::new(&conference, pin, role)).await.expect("person");
    }
    let events = EventBus::new();
    let (engine, sip) = start_engine(&store, &events, dir.path()).await;
    let targets: Vec<String> =
        ["1111", "2222", "3333"].iter().map(|pin| format!("sip:5550100*{pin}@{sip}")).collect();
    let (mut phones, _line) = dial_all(&targets).await;

    // Presenter and assistant (0, 1) talk in the green room; the participant
    // (2) does not hear them, and waits with music on hold.
    until_matrix(&mut phones, |l, t| (l < 2) == (t < 2))
        .await
        .unwrap_or_else(|m| panic!("green room: {m:.0?}"));
    let waiting = music(&phones[2]);
    assert!(waiting > 300.0, "the waiting participant hears no music ({waiting:.0})");
    assert!(music(&phones[0]) < 100.0, "the green room hears the music");

    // The call goes live (as MaestroConference's updateCall greenroom=false
    // does, through the engine): one room, no music.
    let call = store.calls_of(&conference.uid).await.expect("calls").remove(0);
    engine.update_call(call.uid.clone(), CallUpdate::GreenRoom(false)).await.expect("live");
    assert!(!store.calls_of(&conference.uid).await.expect("calls")[0].greenroom);
    until_matrix(&mut phones, |_, _| true).await.unwrap_or_else(|m| panic!("live: {m:.0?}"));
    assert!(music(&phones[2]) < 100.0, "the music goes on after the call went live");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_is_recorded_with_what_it_says_and_hears() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, conference) =
        store_with(dir.path(), None, |c| numbered(c, "Interview", "4601")).await;
    let events = EventBus::new();
    let (engine, sip) = start_engine(&store, &events, dir.path()).await;
    let targets = vec![format!("sip:4601@{sip}"); 3];
    let (mut phones, _line) = dial_all(&targets).await;
    until_matrix(&mut phones, |_, _| true).await.expect("everyone hears everyone");

    let call = store.calls_of(&conference.uid).await.expect("calls").remove(0);
    let callers = store.callers_of(&call.uid).await.expect("callers");
    let uid_of = |ani: &str| callers.iter().find(|c| c.ani == ani).expect("caller").uid.clone();

    // Phone 1 is recorded while phone 3 is muted: its recording has its own
    // voice (440) and phone 2 (1000), not phone 3.
    engine.update_caller(uid_of("phone3"), CallerUpdate::Mute(true)).await.expect("mute");
    let recording_uid = engine
        .start_recording(conference.uid.clone(), Some(uid_of("phone1")))
        .await
        .expect("record phone 1");
    assert!(
        engine.start_recording(conference.uid.clone(), Some(uid_of("phone1"))).await.is_err(),
        "one recording per caller at a time"
    );
    talk(&mut phones, 100).await;
    engine.stop_recording(recording_uid.clone()).await.expect("stop");
    let recording: tutti_api::model::Recording = store.get(&recording_uid).await.expect("stored");
    assert_eq!(recording.caller_uid.as_deref(), Some(uid_of("phone1").as_str()));
    assert!(recording.ended_at.is_some());
    let audio = tutti_media::wav::read(&dir.path().join("recordings").join(&recording.file_name))
        .expect("recording file");
    let middle = &audio.samples[audio.samples.len() / 4..audio.samples.len() * 3 / 4];
    let at = |f| tutti_media::tone::goertzel_amplitude(middle, audio.sample_rate, f);
    assert!(at(440.0) > 500.0 && at(1000.0) > 500.0, "{:.0} {:.0}", at(440.0), at(1000.0));
    assert!(at(1300.0) < 60.0, "the muted caller was recorded ({:.0})", at(1300.0));

    // A recorded caller who hangs up ends its recording.
    let second = engine
        .start_recording(conference.uid.clone(), Some(uid_of("phone2")))
        .await
        .expect("record phone 2");
    talk(&mut phones, 25).await;
    engine.drop_caller(uid_of("phone2")).await.expect("drop");
    let mut ended = false;
    for _ in 0..50 {
        let r: tutti_api::model::Recording = store.get(&second).await.expect("stored");
        if r.ended_at.is_some() {
            ended = true;
            let file = dir.path().join("recordings").join(&r.file_name);
            let audio = tutti_media::wav::read(&file).expect("a finished WAV");
            assert!(audio.samples.len() >= 8000 / 4, "{} samples", audio.samples.len());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ended, "the recording of a caller who left was not ended");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_running_at_once_stop_at_their_customer_s_quota_together() {
    const QUOTA: u64 = 512 * 1024;
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, conference) = store_with(dir.path(), None, |c| numbered(c, "Quota", "4611")).await;
    let events = EventBus::new();
    let (engine, sip) = start_engine_with_quota(&store, &events, dir.path(), QUOTA).await;
    let targets = vec![format!("sip:4611@{sip}"); 3];
    let (mut phones, _line) = dial_all(&targets).await;
    until_matrix(&mut phones, |_, _| true).await.expect("everyone hears everyone");
    let call = store.calls_of(&conference.uid).await.expect("calls").remove(0);
    let callers = store.callers_of(&call.uid).await.expect("callers");
    let uid_of = |ani: &str| callers.iter().find(|c| c.ani == ani).expect("caller").uid.clone();

    // The room and two of its callers recorded at once: each may start, the
    // quota having room for each alone, but together they stop at it.
    let room = engine.start_recording(conference.uid.clone(), None).await.expect("the room");
    let mut started = vec![room];
    for phone in ["phone1", "phone2"] {
        let uid = engine.start_recording(conference.uid.clone(), Some(uid_of(phone))).await;
        started.push(uid.expect("a caller"));
    }
    let mut ended = Vec::new();
    for _ in 0..20 {
        talk(&mut phones, 25).await;
        ended.clear();
        for uid in &started {
            let r: tutti_api::model::Recording = store.get(uid).await.expect("stored");
            if r.ended_at.is_some() {
                ended.push(r);
            }
        }
        if ended.len() == started.len() {
            break;
        }
    }
    assert_eq!(ended.len(), started.len(), "every recording ended at the quota");
    let sizes: Vec<u64> = ended
        .iter()
        .map(|r| std::fs::metadata(dir.path().join("recordings").join(&r.file_name)))
        .map(|m| m.expect("the recording's file").len())
        .collect();
    let total: u64 = sizes.iter().sum();
    assert!(total <= QUOTA, "{sizes:?}: {total} bytes together, over the {QUOTA}-byte quota");
    // Each stops within one frame (at most 48 kHz: 1920 bytes) of it.
    assert!(total + 3 * 1920 >= QUOTA, "{sizes:?}: stopped early, at {total} bytes");
    for recording in &ended {
        let file = dir.path().join("recordings").join(&recording.file_name);
        tutti_media::wav::read(&file).expect("a whole WAV file");
    }
    // The calls go on, and no room is left for another recording.
    until_matrix(&mut phones, |_, _| true).await.expect("the calls go on");
    let refused = engine.start_recording(conference.uid.clone(), None).await;
    assert!(
        matches!(refused, Err(OpsError::Conflict(Conflict::RecordingQuota { .. }))),
        "{refused:?}"
    );
    engine.shutdown().await;
}

/// A stored recording deleted while others of its customer run gives its
/// bytes back to the budget they share: two recordings start together, the
/// first stops and is deleted, and the second runs on to the whole quota
/// rather than what the two had left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_deleted_while_others_run_gives_its_bytes_back() {
    const QUOTA: u64 = 512 * 1024;
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, conference) = store_with(dir.path(), None, |c| numbered(c, "Budget", "4612")).await;
    let events = EventBus::new();
    let (engine, sip) = start_engine_with_quota(&store, &events, dir.path(), QUOTA).await;
    let targets = vec![format!("sip:4612@{sip}"); 2];
    let (mut phones, _line) = dial_all(&targets).await;
    until_matrix(&mut phones, |_, _| true).await.expect("both hear each other");
    let recordings = dir.path().join("recordings");
    let first = engine.start_recording(conference.uid.clone(), None).await.expect("the room");
    let call = store.calls_of(&conference.uid).await.expect("calls").remove(0);
    let caller = store.callers_of(&call.uid).await.expect("callers").remove(0).uid;
    let second =
        engine.start_recording(conference.uid.clone(), Some(caller)).await.expect("a caller");
    talk(&mut phones, 50).await;
    engine.stop_recording(first.clone()).await.expect("stop the first");
    let stopped = async || {
        for _ in 0..50 {
            let r: tutti_api::model::Recording = store.get(&first).await.expect("stored");
            if r.ended_at.is_some() {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the first recording never ended");
    };
    let first_file = recordings.join(stopped().await.file_name);
    let freed = std::fs::metadata(&first_file).expect("the first file").len();
    assert!(freed > 64 * 1024, "the first took a good part of the quota: {freed}");
    std::fs::remove_file(&first_file).expect("delete");
    engine.recording_bytes_freed(&conference.customer_uid, freed);

    let mut ended = None;
    for _ in 0..20 {
        talk(&mut phones, 25).await;
        let r: tutti_api::model::Recording = store.get(&second).await.expect("stored");
        if r.ended_at.is_some() {
            ended = Some(r);
            break;
        }
    }
    let ended = ended.expect("the second recording ended at the quota");
    let size = std::fs::metadata(recordings.join(&ended.file_name)).expect("file").len();
    // It had QUOTA less the first's bytes; given them back, it reached the
    // quota (within a frame at 48 kHz) by itself.
    assert!(size <= QUOTA && size + 1920 >= QUOTA, "stopped at {size} of {QUOTA} bytes");
    engine.shutdown().await;
}

/// Talking events carry the call and the caller, follow the call's talking
/// switch, and each caller's energy level reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talking_events_follow_the_calls_switch_and_energy_is_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, conference) = store_with(dir.path(), None, |c| numbered(c, "Panel", "4701")).await;
    let events = EventBus::new();
    let (engine, sip) = start_engine(&store, &events, dir.path()).await;
    let targets = vec![format!("sip:4701@{sip}"); 2];
    let (mut phones, _line) = dial_all(&targets).await;
    let mut bus = events.subscribe();

    // Talk, fall silent, talk: talking starts and stops, for this call.
    let tones: Vec<f64> = phones.iter().map(|p| p.tone).collect();
    let talk_and_pause = async |phones: &mut Vec<Phone>| {
        talk(phones, 75).await;
        phones.iter_mut().for_each(|p| p.tone = 0.0);
        talk(phones, 75).await;
        phones.iter_mut().zip(&tones).for_each(|(p, t)| p.tone = *t);
    };
    talk_and_pause(&mut phones).await;
    // Read once both callers are in: two callers arriving at once may both
    // start a session, and the one that lost deletes its own.
    let call = store.calls_of(&conference.uid).await.expect("calls").remove(0);
    let mut seen = Vec::new();
    while let Ok(event) = bus.try_recv() {
        if let Event::Talking { conference_uid, call_uid, caller_uid, talking } = &*event {
            assert_eq!((conference_uid, call_uid), (&conference.uid, &call.uid));
            seen.push((caller_uid.clone(), *talking));
        }
    }
    let callers = store.callers_of(&call.uid).await.expect("callers");
    for caller in &callers {
        assert!(seen.contains(&(caller.uid.clone(), true)), "{} started: {seen:?}", caller.ani);
        assert!(seen.contains(&(caller.uid.clone(), false)), "{} stopped: {seen:?}", caller.ani);
    }
    // Each talker's energy is stored within the writer's period.
    let mut stored = Vec::new();
    for _ in 0..30 {
        stored = store.callers_of(&call.uid).await.expect("callers");
        if stored.iter().all(|c| c.energy > 0) {
            break;
        }
        talk(&mut phones, 5).await;
    }
    assert!(stored.iter().all(|c| c.energy > 0), "energy not stored: {stored:?}");

    // Switched off for this call: no talking events, whatever is said.
    engine.update_call(call.uid.clone(), CallUpdate::TalkingEvents(false)).await.expect("off");
    assert!(!store.get::<tutti_api::model::Call>(&call.uid).await.expect("call").talking);
    while bus.try_recv().is_ok() {}
    talk_and_pause(&mut phones).await;
    while let Ok(event) = bus.try_recv() {
        assert!(!matches!(&*event, Event::Talking { .. }), "talking event while off: {event:?}");
    }
    engine.shutdown().await;
}
