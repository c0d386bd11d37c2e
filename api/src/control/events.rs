//! Bus events rendered as TCP 4011 event lines. Only the events the protocol
//! document defines are sent; every other event renders as nothing.

use jiff::tz::TimeZone;

use super::codec::{quoted, token};
use super::schedule::format_schedule;
use crate::live::{Event, PlaybackMedia, PlaybackState, Target};
use crate::model::{Caller, Conference};

/// The event line for `event`, without its CR LF, or `None` when the protocol has
/// no such event.
pub fn render(event: &Event, tz: &TimeZone) -> Option<String> {
    Some(match event {
        Event::ConferenceCreated { conference } => conference_summary("NEWCONF", conference),
        Event::ConferenceDeleted { conference } => conference_summary("DELCONF", conference),
        Event::ConferenceModified { conference } => {
            format!("MODCONF,{}", conference_config(conference, tz))
        }
        Event::CallerJoined { conference_uid, caller } => {
            user_line("NEWUSER", conference_uid, caller)
        }
        Event::CallerLeft { conference_uid, caller } => {
            user_line("DELUSER", conference_uid, caller)
        }
        Event::Outbound { caller_uid, progress, .. } => {
            format!("CALLUSER,{},{}", token(caller_uid), progress.as_str())
        }
        Event::Digit { conference_uid, caller_uid, digit, .. } => {
            format!(
                "DIGIT,{},{},{}",
                token(conference_uid),
                token(caller_uid),
                token(&digit.to_string())
            )
        }
        Event::Playback { target, media, state, .. } => playback(target, media, *state),
        _ => return None,
    })
}

/// `<conf-guid>,<conf-cn>,<conf-company>`, after the event name.
fn conference_summary(name: &str, conference: &Conference) -> String {
    format!(
        "{name},{},{},{}",
        token(&conference.uid),
        token(conference.dial_in_number.as_deref().unwrap_or_default()),
        quoted(&conference.company)
    )
}

/// `<conf-guid>,<cn>,<company>,<organiser>,<maxusers>,<date>,<start>,<end>,<pin>`,
/// as GETCONF answers and MODCONF reports.
pub fn conference_config(conference: &Conference, tz: &TimeZone) -> String {
    let (date, start, end) =
        format_schedule(conference.scheduled_start, conference.scheduled_end, tz);
    format!(
        "{},{},{},{},{},{date},{start},{end},{}",
        token(&conference.uid),
        token(conference.dial_in_number.as_deref().unwrap_or_default()),
        quoted(&conference.company),
        quoted(&conference.organiser),
        conference.member_limit().unwrap_or(0),
        token(conference.participant_pin.as_deref().unwrap_or_default()),
    )
}

/// `<conf-guid>,<call-guid>,<tel-num>,<name>,<listen-only>` after the name, as
/// LISTUSER answers and NEWUSER/DELUSER report.
pub fn user_line(name: &str, conference_uid: &str, caller: &Caller) -> String {
    format!(
        "{name},{},{},{},{},{}",
        token(conference_uid),
        token(&caller.uid),
        quoted(&caller.ani),
        quoted(&caller.name),
        u8::from(caller.listen_only)
    )
}

/// PLAYWAV/PLAYWAVALL/PLAYTTS/PLAYTTSALL, PLAYING or DONE. For the ALL forms the
/// GUID is the conference's, the target the command named.
fn playback(target: &Target, media: &PlaybackMedia, state: PlaybackState) -> String {
    let (uid, all) = match target {
        Target::Caller(uid) => (uid, ""),
        Target::Conference(uid) => (uid, "ALL"),
    };
    let uid = token(uid);
    match (media, state) {
        (PlaybackMedia::File(file), PlaybackState::Playing) => {
            format!("PLAYWAV{all},PLAYING,{uid},{}", quoted(file))
        }
        (PlaybackMedia::File(_), PlaybackState::Done) => format!("PLAYWAV{all},DONE,{uid}"),
        (PlaybackMedia::Tts, PlaybackState::Playing) => format!("PLAYTTS{all},PLAYING,{uid}"),
        (PlaybackMedia::Tts, PlaybackState::Done) => format!("PLAYTTS{all},DONE,{uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::OutboundProgress;
    use crate::model::{Customer, Direction, Role};
    use crate::time::Time;

    fn conference() -> Conference {
        let mut c = Conference::new(&Customer::new("x"), "n");
        c.uid = "conf-1".into();
        c.dial_in_number = Some("1234".into());
        c.company = "Acme, \"the\" Co".into();
        c.organiser = "Bob".into();
        c.max_members = Some(20);
        c.participant_pin = Some("999".into());
        c.scheduled_start = Some("2026-07-01T09:00:00Z".parse().expect("time"));
        c.scheduled_end = Some("2026-07-01T10:30:00Z".parse().expect("time"));
        c
    }

    fn caller() -> Caller {
        let mut c = Caller::new("call-1", Direction::Inbound, Role::Participant, Time::now());
        c.uid = "user-1".into();
        c.ani = "+441234".into();
        c.name = "Smith, Jo".into();
        c.listen_only = true;
        c
    }

    fn utc(event: Event) -> Option<String> {
        render(&event, &TimeZone::UTC)
    }

    #[test]
    fn conference_events() {
        assert_eq!(
            utc(Event::ConferenceCreated { conference: conference() }).as_deref(),
            Some(r#"NEWCONF,conf-1,1234,"Acme, ""the"" Co""#)
        );
        assert_eq!(
            utc(Event::ConferenceDeleted { conference: conference() }).as_deref(),
            Some(r#"DELCONF,conf-1,1234,"Acme, ""the"" Co""#)
        );
        let london = TimeZone::get("Europe/London").expect("tzdb");
        assert_eq!(
            render(&Event::ConferenceModified { conference: conference() }, &london).as_deref(),
            Some(r#"MODCONF,conf-1,1234,"Acme, ""the"" Co","Bob",20,01/07/2026,10:00,11:30,999"#)
        );
        // A status the schedule moved changes no MODCONF field: nothing to send.
        assert_eq!(utc(Event::ConferenceStatus { conference: conference() }), None);
    }

    #[test]
    fn an_unscheduled_unlimited_conference_without_pin_has_empty_fields() {
        let mut c = conference();
        c.dial_in_number = None;
        c.max_members = None;
        c.participant_pin = None;
        c.scheduled_start = None;
        c.scheduled_end = None;
        assert_eq!(
            utc(Event::ConferenceModified { conference: c }).as_deref(),
            Some(r#"MODCONF,conf-1,,"Acme, ""the"" Co","Bob",0,,,,"#)
        );
    }

    #[test]
    fn user_events() {
        assert_eq!(
            utc(Event::CallerJoined { conference_uid: "conf-1".into(), caller: caller() })
                .as_deref(),
            Some(r#"NEWUSER,conf-1,user-1,"+441234","Smith, Jo",1"#)
        );
        assert_eq!(
            utc(Event::CallerLeft { conference_uid: "conf-1".into(), caller: caller() }).as_deref(),
            Some(r#"DELUSER,conf-1,user-1,"+441234","Smith, Jo",1"#)
        );
    }

    #[test]
    fn outbound_progress_and_digits() {
        let progress = |progress| Event::Outbound {
            conference_uid: "conf-1".into(),
            call_uid: None,
            caller_uid: "user-1".into(),
            progress,
        };
        assert_eq!(
            utc(progress(OutboundProgress::Ringing)).as_deref(),
            Some("CALLUSER,user-1,Ringing")
        );
        assert_eq!(utc(progress(OutboundProgress::Busy)).as_deref(), Some("CALLUSER,user-1,Busy"));
        let digit = |digit| Event::Digit {
            conference_uid: "conf-1".into(),
            call_uid: "call-1".into(),
            caller_uid: "user-1".into(),
            digit,
        };
        assert_eq!(utc(digit('5')).as_deref(), Some("DIGIT,conf-1,user-1,5"));
        assert_eq!(utc(digit('#')).as_deref(), Some("DIGIT,conf-1,user-1,#"));
        assert_eq!(utc(digit(',')).as_deref(), Some(r#"DIGIT,conf-1,user-1,",""#));
    }

    #[test]
    fn playback_events() {
        let play = |target, media, state| {
            let (conference_uid, call_uid) = ("conf-1".into(), "call-1".into());
            utc(Event::Playback { conference_uid, call_uid, target, media, state })
        };
        let user = || Target::Caller("user-1".into());
        let room = || Target::Conference("conf-1".into());
        let file = || PlaybackMedia::File("hello.wav".into());
        use PlaybackState::{Done, Playing};
        assert_eq!(
            play(user(), file(), Playing).as_deref(),
            Some(r#"PLAYWAV,PLAYING,user-1,"hello.wav""#)
        );
        assert_eq!(play(user(), file(), Done).as_deref(), Some("PLAYWAV,DONE,user-1"));
        assert_eq!(
            play(room(), file(), Playing).as_deref(),
            Some(r#"PLAYWAVALL,PLAYING,conf-1,"hello.wav""#)
        );
        assert_eq!(play(room(), file(), Done).as_deref(), Some("PLAYWAVALL,DONE,conf-1"));
        assert_eq!(
            play(user(), PlaybackMedia::Tts, Playing).as_deref(),
            Some("PLAYTTS,PLAYING,user-1")
        );
        assert_eq!(play(user(), PlaybackMedia::Tts, Done).as_deref(), Some("PLAYTTS,DONE,user-1"));
        assert_eq!(
            play(room(), PlaybackMedia::Tts, Playing).as_deref(),
            Some("PLAYTTSALL,PLAYING,conf-1")
        );
        assert_eq!(
            play(room(), PlaybackMedia::Tts, Done).as_deref(),
            Some("PLAYTTSALL,DONE,conf-1")
        );
    }

    #[test]
    fn events_outside_the_protocol_render_as_nothing() {
        let talking = Event::Talking {
            conference_uid: "c".into(),
            call_uid: "k".into(),
            caller_uid: "u".into(),
            talking: true,
        };
        assert_eq!(utc(talking), None);
        let muted = Event::CallerUpdated {
            conference_uid: "c".into(),
            caller: caller(),
            field: crate::live::CallerField::Mute,
        };
        assert_eq!(utc(muted), None);
    }
}
