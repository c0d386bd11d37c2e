//! The dial plan: what the user part of a request URI means and whether a caller
//! may enter. Pure functions over stored objects and the time; the engine looks
//! the objects up and carries out the decision (SIP status, prompt, join).
//!
//! - `<number>` is a conference's dial-in number (TCP 4011 `cn`, PBX number,
//!   Aculab `conference_name`) or a customer's DID (MaestroConference: the PIN then
//!   picks the person, and thereby the conference and role).
//! - `<number>*<pin>` supplies the PIN in the URI, for trunks and test tools.

use tutti_api::Time;
use tutti_api::model::{Conference, ConferenceStatus, Reservation, Role};

/// A request URI's user part, split into the number dialled and a PIN given with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialled {
    pub number: String,
    pub pin: Option<String>,
}

/// The longest user part we look at; longer ones cannot be a number of ours.
const MAX_USER_PART: usize = 128;

/// Splits `4001*1234` into number `4001` and PIN `1234`. Visual separators that
/// phones and trunks add (`-`, `.`, spaces, `(`, `)`) are dropped from the number;
/// a leading `+` is kept, as DIDs are stored in E.164. Returns `None` for an empty
/// or oversized user part.
pub fn parse_user_part(user: &str) -> Option<Dialled> {
    let user = percent_decode(user.trim())?;
    if user.is_empty() || user.len() > MAX_USER_PART {
        return None;
    }
    let (number, pin) = match user.split_once('*') {
        Some((number, pin)) => (number, Some(pin)),
        None => (user.as_str(), None),
    };
    let number: String =
        number.chars().filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')')).collect();
    if number.is_empty() {
        return None;
    }
    let pin = pin.map(|p| p.trim_end_matches('#').to_owned()).filter(|p| !p.is_empty());
    Some(Dialled { number, pin })
}

/// RFC 3261 allows escaped characters in the user part (`%2A` for `*`).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a caller may enter a conference now, and if not, how to turn them away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Reserved and not started, or full: 486 Busy Here.
    Busy,
    /// Reserved, not started, with a divert target: 302 to it.
    Divert(String),
    /// Cancelled, or completed with no reservation left: 480.
    Unavailable,
    /// Locked (PBX `*92`): an announcement, then 403.
    Locked,
}

impl Admission {
    /// The SIP status that turns the caller away, if any.
    pub fn sip_status(&self) -> Option<u16> {
        match self {
            Admission::Admit => None,
            Admission::Busy => Some(486),
            Admission::Divert(_) => Some(302),
            Admission::Unavailable => Some(480),
            Admission::Locked => Some(403),
        }
    }
}

/// Decides whether a caller may join `conference` at `now`, given its
/// reservations and how many members are in it.
pub fn admit(
    conference: &Conference,
    reservations: &[Reservation],
    now: Time,
    members: usize,
) -> Admission {
    match conference.status {
        ConferenceStatus::Cancel => return Admission::Unavailable,
        ConferenceStatus::Closed if !conference.reserved => return Admission::Unavailable,
        _ => {}
    }
    if conference.reserved {
        if let Some(turned_away) = reservation_gate(reservations, now) {
            return turned_away;
        }
    } else if conference.scheduled_end.is_some_and(|end| now >= end) {
        return Admission::Unavailable;
    }
    if conference.locked {
        return Admission::Locked;
    }
    if conference.max_members.is_some_and(|max| members as i64 >= max) {
        return Admission::Busy;
    }
    Admission::Admit
}

/// For a reserved conference: `None` while a reservation is running, otherwise
/// how an early or late caller is turned away.
fn reservation_gate(reservations: &[Reservation], now: Time) -> Option<Admission> {
    if reservations.iter().any(|r| r.start_time <= now && now < r.end_time()) {
        return None;
    }
    // The next reservation decides an early caller's fate (its divert, if any).
    match reservations.iter().filter(|r| r.start_time > now).min_by_key(|r| r.start_time) {
        Some(next) => Some(match &next.divert {
            Some(target) if !target.is_empty() => Admission::Divert(target.clone()),
            _ => Admission::Busy,
        }),
        None => Some(Admission::Unavailable),
    }
}

/// What a PIN typed into a conference's own number gives: the participant PIN
/// makes a participant, the moderator PIN a moderator. `None`: wrong PIN.
pub fn role_for_pin(conference: &Conference, pin: &str) -> Option<Role> {
    let matches =
        |stored: &Option<String>| stored.as_deref().is_some_and(|s| !s.is_empty() && s == pin);
    if matches(&conference.moderator_pin) {
        Some(Role::Moderator)
    } else if matches(&conference.participant_pin) {
        Some(Role::Participant)
    } else {
        None
    }
}

/// Whether callers to this conference's number must type a PIN.
pub fn needs_pin(conference: &Conference) -> bool {
    [&conference.participant_pin, &conference.moderator_pin]
        .iter()
        .any(|pin| pin.as_deref().is_some_and(|p| !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_api::model::Customer;

    fn at(s: &str) -> Time {
        s.parse().expect("valid time")
    }

    fn conference() -> Conference {
        Conference::new(&Customer::new("Acme"), "Weekly")
    }

    fn reservation(start: &str, minutes: i64, divert: Option<&str>) -> Reservation {
        let mut r = Reservation::new("conf", at(start), minutes);
        r.divert = divert.map(str::to_owned);
        r
    }

    #[test]
    fn user_parts() {
        let d = |number: &str, pin: Option<&str>| {
            Some(Dialled { number: number.into(), pin: pin.map(str::to_owned) })
        };
        assert_eq!(parse_user_part("4001"), d("4001", None));
        assert_eq!(parse_user_part("4001*1234"), d("4001", Some("1234")));
        assert_eq!(parse_user_part("4001*1234#"), d("4001", Some("1234")));
        assert_eq!(parse_user_part("4001%2A99"), d("4001", Some("99")));
        assert_eq!(parse_user_part("+44 (20) 7946-0000"), d("+442079460000", None));
        assert_eq!(parse_user_part("4001*"), d("4001", None));
        assert_eq!(parse_user_part("MyConferenceRoom"), d("MyConferenceRoom", None));
        for bad in ["", "  ", "*1234", "%zz", "%4", &"9".repeat(200)] {
            assert_eq!(parse_user_part(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reservationless_conference_admits_until_full() {
        let mut c = conference();
        let now = at("2026-05-01T10:00:00Z");
        assert_eq!(admit(&c, &[], now, 0), Admission::Admit);
        c.max_members = Some(2);
        assert_eq!(admit(&c, &[], now, 1), Admission::Admit);
        assert_eq!(admit(&c, &[], now, 2), Admission::Busy);
        assert_eq!(Admission::Busy.sip_status(), Some(486));
    }

    #[test]
    fn locked_cancelled_and_ended_conferences_turn_callers_away() {
        let now = at("2026-05-01T10:00:00Z");
        let mut c = conference();
        c.locked = true;
        assert_eq!(admit(&c, &[], now, 0), Admission::Locked);
        assert_eq!(Admission::Locked.sip_status(), Some(403));
        let mut c = conference();
        c.status = ConferenceStatus::Cancel;
        assert_eq!(admit(&c, &[], now, 0), Admission::Unavailable);
        assert_eq!(Admission::Unavailable.sip_status(), Some(480));
        let mut c = conference();
        c.scheduled_end = Some(at("2026-05-01T09:00:00Z"));
        assert_eq!(admit(&c, &[], now, 0), Admission::Unavailable);
    }

    #[test]
    fn reserved_conference_admits_only_during_a_reservation() {
        let mut c = conference();
        c.reserved = true;
        let rs = [
            reservation("2026-05-01T10:00:00Z", 30, Some("EarlyAnnouncement")),
            reservation("2026-05-02T10:00:00Z", 30, None),
        ];
        let verdict = |t: &str| admit(&c, &rs, at(t), 0);
        assert_eq!(verdict("2026-05-01T09:59:59Z"), Admission::Divert("EarlyAnnouncement".into()));
        assert_eq!(verdict("2026-05-01T10:00:00Z"), Admission::Admit);
        assert_eq!(verdict("2026-05-01T10:29:59Z"), Admission::Admit);
        assert_eq!(verdict("2026-05-01T10:30:00Z"), Admission::Busy, "next one has no divert");
        assert_eq!(verdict("2026-05-02T10:15:00Z"), Admission::Admit);
        assert_eq!(verdict("2026-05-02T10:30:00Z"), Admission::Unavailable, "all completed");
        assert_eq!(admit(&c, &[], at("2026-05-01T10:00:00Z"), 0), Admission::Unavailable);
    }

    #[test]
    fn a_locked_reserved_conference_is_locked_only_while_running() {
        let mut c = conference();
        c.reserved = true;
        c.locked = true;
        let rs = [reservation("2026-05-01T10:00:00Z", 30, None)];
        assert_eq!(admit(&c, &rs, at("2026-05-01T09:00:00Z"), 0), Admission::Busy);
        assert_eq!(admit(&c, &rs, at("2026-05-01T10:10:00Z"), 0), Admission::Locked);
    }

    #[test]
    fn pins_pick_roles() {
        let mut c = conference();
        assert!(!needs_pin(&c));
        assert_eq!(role_for_pin(&c, ""), None);
        c.participant_pin = Some("1234".into());
        c.moderator_pin = Some("9999".into());
        assert!(needs_pin(&c));
        assert_eq!(role_for_pin(&c, "1234"), Some(Role::Participant));
        assert_eq!(role_for_pin(&c, "9999"), Some(Role::Moderator));
        assert_eq!(role_for_pin(&c, "12345"), None);
        assert_eq!(role_for_pin(&c, ""), None);
        c.participant_pin = Some(String::new());
        assert_eq!(role_for_pin(&c, ""), None, "an empty stored PIN never matches");
    }
}
