//! Whether a caller may enter a conference now, and if not, the real reason.
//! The call engine answers a refusal with a SIP status (or a prompt), the
//! operations layer with its typed error; both decide here.

use crate::Time;
use crate::model::{Conference, ConferenceStatus, Reservation};
use crate::ops::OpsError;

/// The verdict for one caller about to enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// As many members as `max_members` allows are in.
    Full,
    /// Reserved, and no reservation runs now; the next one (if any) may name
    /// where early callers are sent.
    NotStarted {
        divert: Option<String>,
    },
    /// A reservationless conference past its scheduled end, a reserved one with
    /// no reservation left, or one closed for good.
    Ended,
    /// Cancelled (MaestroConference CANCEL).
    Cancelled,
    /// Locked (PBX `*92`).
    Locked,
}

impl Admission {
    /// The refusal as the operations layer's error; `None` for [`Admission::Admit`].
    pub fn refusal(&self) -> Option<OpsError> {
        Some(match self {
            Admission::Admit => return None,
            Admission::Full => OpsError::Full,
            Admission::NotStarted { .. } => OpsError::NotStarted,
            Admission::Ended | Admission::Cancelled => {
                OpsError::Ended(crate::ops::Kind::Conference)
            }
            Admission::Locked => OpsError::Locked,
        })
    }

    /// The SIP status that turns a caller away: 486 Busy Here when full or not
    /// started (302 to the divert target, when there is one), 480 when ended or
    /// cancelled, 403 when locked.
    pub fn sip_status(&self) -> Option<u16> {
        match self {
            Admission::Admit => None,
            Admission::Full | Admission::NotStarted { divert: None } => Some(486),
            Admission::NotStarted { divert: Some(_) } => Some(302),
            Admission::Ended | Admission::Cancelled => Some(480),
            Admission::Locked => Some(403),
        }
    }
}

/// Decides whether a caller may join `conference` at `now`, given its
/// reservations and how many members are in it (or hold a seat).
pub fn admit(
    conference: &Conference,
    reservations: &[Reservation],
    now: Time,
    members: usize,
) -> Admission {
    match conference.status {
        ConferenceStatus::Cancel => return Admission::Cancelled,
        ConferenceStatus::Closed if !conference.reserved => return Admission::Ended,
        _ => {}
    }
    if conference.reserved {
        if let Some(turned_away) = reservation_gate(reservations, now) {
            return turned_away;
        }
    } else if conference.scheduled_end.is_some_and(|end| now >= end) {
        return Admission::Ended;
    }
    if conference.locked {
        return Admission::Locked;
    }
    if conference
        .member_limit()
        .is_some_and(|max| i64::try_from(members).unwrap_or(i64::MAX) >= max)
    {
        return Admission::Full;
    }
    Admission::Admit
}

/// For a reserved conference: `None` while a reservation is running, otherwise
/// how an early or late caller is turned away.
fn reservation_gate(reservations: &[Reservation], now: Time) -> Option<Admission> {
    if reservations.iter().any(|r| r.runs_at(now)) {
        return None;
    }
    // The next reservation decides an early caller's fate (its divert, if any).
    match reservations.iter().filter(|r| r.start_time > now).min_by_key(|r| r.start_time) {
        Some(next) => Some(Admission::NotStarted {
            divert: next.divert.clone().filter(|target| !target.is_empty()),
        }),
        None => Some(Admission::Ended),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Customer;

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
    fn reservationless_conference_admits_until_full() {
        let mut c = conference();
        let now = at("2026-05-01T10:00:00Z");
        assert_eq!(admit(&c, &[], now, 0), Admission::Admit);
        c.max_members = Some(2);
        assert_eq!(admit(&c, &[], now, 1), Admission::Admit);
        assert_eq!(admit(&c, &[], now, 2), Admission::Full);
        assert_eq!(Admission::Full.sip_status(), Some(486));
        assert_eq!(Admission::Full.refusal(), Some(OpsError::Full));
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
        assert_eq!(admit(&c, &[], now, 0), Admission::Cancelled);
        assert_eq!(Admission::Cancelled.sip_status(), Some(480));
        let mut c = conference();
        c.scheduled_end = Some(at("2026-05-01T09:00:00Z"));
        assert_eq!(admit(&c, &[], now, 0), Admission::Ended);
        assert_eq!(Admission::Ended.sip_status(), Some(480));
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
        let early = Admission::NotStarted { divert: Some("EarlyAnnouncement".into()) };
        assert_eq!(verdict("2026-05-01T09:59:59Z"), early);
        assert_eq!(early.sip_status(), Some(302));
        assert_eq!(verdict("2026-05-01T10:00:00Z"), Admission::Admit);
        assert_eq!(verdict("2026-05-01T10:29:59Z"), Admission::Admit);
        let between = verdict("2026-05-01T10:30:00Z");
        assert_eq!(between, Admission::NotStarted { divert: None }, "next one has no divert");
        assert_eq!(between.sip_status(), Some(486));
        assert_eq!(between.refusal(), Some(OpsError::NotStarted), "not started, not full");
        assert_eq!(verdict("2026-05-02T10:15:00Z"), Admission::Admit);
        assert_eq!(verdict("2026-05-02T10:30:00Z"), Admission::Ended, "all completed");
        assert_eq!(admit(&c, &[], at("2026-05-01T10:00:00Z"), 0), Admission::Ended);
    }

    #[test]
    fn a_locked_reserved_conference_is_locked_only_while_running() {
        let mut c = conference();
        c.reserved = true;
        c.locked = true;
        let rs = [reservation("2026-05-01T10:00:00Z", 30, None)];
        let early = admit(&c, &rs, at("2026-05-01T09:00:00Z"), 0);
        assert_eq!(early, Admission::NotStarted { divert: None });
        assert_eq!(admit(&c, &rs, at("2026-05-01T10:10:00Z"), 0), Admission::Locked);
    }
}
