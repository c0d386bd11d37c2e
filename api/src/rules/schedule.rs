//! Status over time. A conference's status (MaestroConference SCHED / ACTIVE /
//! IDLE / CLOSED / CANCEL) and each reservation's state (Aculab RESERVED /
//! HOLDING / ACTIVE / COMPLETED) follow from stored times, the clock and whether a
//! call is live. They are recomputed, never accumulated, so a restart in the
//! middle of a schedule lands in the right state.

use crate::Time;
use crate::model::{Conference, ConferenceStatus, Reservation, ReservationState};

/// Who is in a conference, as far as its state is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presence {
    /// Callers connected.
    pub members: usize,
    /// The conference has a leader role (a moderator PIN) and no leader is in.
    pub leader_missing: bool,
}

impl From<usize> for Presence {
    /// `members` callers in a conference without a leader role.
    fn from(members: usize) -> Self {
        Self { members, leader_missing: false }
    }
}

/// A reservation's state at `now` with these callers in the conference:
/// RESERVED before its start, COMPLETED from its end, and in between HOLDING
/// (callers wait for the conference to fill) until two or more callers are in,
/// the leader among them when the conference has one, then ACTIVE.
pub fn reservation_state(
    r: &Reservation,
    now: Time,
    present: impl Into<Presence>,
) -> ReservationState {
    let present = present.into();
    if now < r.start_time {
        ReservationState::Reserved
    } else if r.is_past(now) {
        ReservationState::Completed
    } else if present.members >= 2 && !present.leader_missing {
        ReservationState::Active
    } else {
        ReservationState::Holding
    }
}

/// A conference's status at `now`. `live`: a call session is in progress;
/// `had_calls`: one ever was.
///
/// - CANCEL is final.
/// - ACTIVE while a call session is live.
/// - Reserved conferences: SCHED before the first reservation starts, CLOSED
///   once the last one has ended, IDLE in between.
/// - Reservationless ones: CLOSED after a scheduled end, IDLE after a first
///   call, SCHED before it.
pub fn conference_status(
    c: &Conference,
    reservations: &[Reservation],
    now: Time,
    live: bool,
    had_calls: bool,
) -> ConferenceStatus {
    if c.status == ConferenceStatus::Cancel {
        return ConferenceStatus::Cancel;
    }
    if live {
        return ConferenceStatus::Active;
    }
    if c.reserved {
        let first = reservations.iter().map(|r| r.start_time).min();
        // An open-ended reservation (none should belong to a reserved
        // conference) never lets it close.
        let last = reservations.iter().map(Reservation::end_time).max_by(|a, b| match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (Some(a), Some(b)) => a.cmp(b),
        });
        return match (first, last) {
            (Some(first), _) if now < first => ConferenceStatus::Sched,
            (_, Some(Some(last))) if now >= last => ConferenceStatus::Closed,
            (Some(_), Some(_)) => ConferenceStatus::Idle,
            // A reserved conference whose reservations were all removed.
            _ => ConferenceStatus::Closed,
        };
    }
    if c.scheduled_end.is_some_and(|end| now >= end) {
        ConferenceStatus::Closed
    } else if had_calls {
        ConferenceStatus::Idle
    } else {
        ConferenceStatus::Sched
    }
}

/// Which of MaestroConference's lists a conference is on at `now`
/// (getActiveConference, getUpcomingConference, ...). Exactly one is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lists {
    /// A call session is in progress.
    pub active: bool,
    /// Callers may start a call now: a reservation runs (reserved), or it is
    /// between its scheduled start and end (reservationless).
    pub possible: bool,
    /// Not yet possible, but will be: a reservation to come, or a scheduled
    /// start to come.
    pub upcoming: bool,
    /// Over: every reservation past (or none left), or past its scheduled end.
    pub expired: bool,
    pub canceled: bool,
}

/// The lists a conference is on at `now`; `live`: a call session is in progress.
/// A reservation that started in the past counts as past exactly as if the time
/// had gone by.
pub fn lists(c: &Conference, reservations: &[Reservation], now: Time, live: bool) -> Lists {
    if c.status == ConferenceStatus::Cancel {
        return Lists { canceled: true, ..Lists::default() };
    }
    if live {
        return Lists { active: true, ..Lists::default() };
    }
    let (possible, upcoming) = if c.reserved {
        let running = reservations.iter().any(|r| r.runs_at(now));
        let future = reservations.iter().any(|r| r.start_time > now);
        (running, !running && future)
    } else {
        let ended = c.scheduled_end.is_some_and(|end| end <= now);
        let not_yet = c.scheduled_start.is_some_and(|start| start > now);
        (!ended && !not_yet, !ended && not_yet)
    };
    Lists { possible, upcoming, expired: !possible && !upcoming, ..Lists::default() }
}

/// The first instant after `now` at which a status above can change by time
/// alone: a reservation start or end, or the scheduled end. The scheduler sleeps
/// until then (or until a call starts or ends).
pub fn next_change(c: &Conference, reservations: &[Reservation], now: Time) -> Option<Time> {
    reservations
        .iter()
        .flat_map(|r| [Some(r.start_time), r.end_time()])
        .flatten()
        .chain(c.scheduled_end)
        .filter(|t| *t > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(l: Lists) -> &'static str {
        match l {
            Lists { active: true, .. } => "active",
            Lists { possible: true, .. } => "possible",
            Lists { upcoming: true, .. } => "upcoming",
            Lists { expired: true, .. } => "expired",
            Lists { canceled: true, .. } => "canceled",
            _ => "none",
        }
    }

    #[test]
    fn every_conference_is_on_exactly_one_list() {
        let (mut c, rs) = reserved();
        let at_ = |t: &str| at(t);
        assert_eq!(on(lists(&c, &rs, at_("2026-05-01T09:00:00Z"), false)), "upcoming");
        assert_eq!(on(lists(&c, &rs, at_("2026-05-01T10:00:00Z"), false)), "possible");
        assert_eq!(on(lists(&c, &rs, at_("2026-05-01T10:30:00Z"), true)), "active");
        assert_eq!(on(lists(&c, &rs, at_("2026-05-01T11:00:00Z"), false)), "upcoming", "the 8th");
        assert_eq!(on(lists(&c, &rs, at_("2026-05-08T10:30:00Z"), false)), "expired");
        assert_eq!(on(lists(&c, &[], at_("2026-05-01T09:00:00Z"), false)), "expired");
        // Reservationless: possible until its scheduled end.
        c.reserved = false;
        assert_eq!(on(lists(&c, &[], at_("2026-05-01T09:00:00Z"), false)), "possible");
        c.scheduled_start = Some(at_("2026-05-02T09:00:00Z"));
        c.scheduled_end = Some(at_("2026-05-02T10:00:00Z"));
        assert_eq!(on(lists(&c, &[], at_("2026-05-01T09:00:00Z"), false)), "upcoming");
        assert_eq!(on(lists(&c, &[], at_("2026-05-02T09:30:00Z"), false)), "possible");
        assert_eq!(on(lists(&c, &[], at_("2026-05-02T10:00:00Z"), false)), "expired");
        c.status = ConferenceStatus::Cancel;
        assert_eq!(on(lists(&c, &[], at_("2026-05-02T09:30:00Z"), true)), "canceled");
        // An open-ended reservation never expires.
        let (mut r, open) = reserved();
        r.reserved = true;
        let endless = [Reservation::open_ended(&r.uid, at_("2026-01-01T00:00:00Z"))];
        assert_eq!(on(lists(&r, &endless, at_("2030-01-01T00:00:00Z"), false)), "possible");
        assert_eq!(open.len(), 2);
    }
    use crate::model::Customer;

    fn at(s: &str) -> Time {
        s.parse().expect("valid time")
    }

    fn reserved() -> (Conference, Vec<Reservation>) {
        let mut c = Conference::new(&Customer::new("Acme"), "Board");
        c.reserved = true;
        let rs = vec![
            Reservation::new(&c.uid, at("2026-05-01T10:00:00Z"), 60),
            Reservation::new(&c.uid, at("2026-05-08T10:00:00Z"), 30),
        ];
        (c, rs)
    }

    #[test]
    fn reservation_states_follow_the_clock_and_the_room() {
        let (_, rs) = reserved();
        let r = &rs[0];
        assert_eq!(reservation_state(r, at("2026-05-01T09:59:59Z"), 5), ReservationState::Reserved);
        assert_eq!(reservation_state(r, at("2026-05-01T10:00:00Z"), 0), ReservationState::Holding);
        assert_eq!(reservation_state(r, at("2026-05-01T10:05:00Z"), 1), ReservationState::Holding);
        assert_eq!(reservation_state(r, at("2026-05-01T10:05:00Z"), 2), ReservationState::Active);
        let no_leader = Presence { members: 3, leader_missing: true };
        assert_eq!(
            reservation_state(r, at("2026-05-01T10:05:00Z"), no_leader),
            ReservationState::Holding,
            "a conference with a leader waits for it"
        );
        assert_eq!(
            reservation_state(r, at("2026-05-01T11:00:00Z"), 9),
            ReservationState::Completed
        );
    }

    #[test]
    fn reserved_conference_status_over_its_schedule() {
        let (c, rs) = reserved();
        let status = |t: &str, live| conference_status(&c, &rs, at(t), live, false);
        assert_eq!(status("2026-04-30T00:00:00Z", false), ConferenceStatus::Sched);
        assert_eq!(status("2026-05-01T10:30:00Z", true), ConferenceStatus::Active);
        assert_eq!(status("2026-05-01T10:30:00Z", false), ConferenceStatus::Idle);
        assert_eq!(status("2026-05-03T00:00:00Z", false), ConferenceStatus::Idle);
        assert_eq!(status("2026-05-08T10:30:00Z", false), ConferenceStatus::Closed);
        assert_eq!(
            conference_status(&c, &[], at("2026-05-01T10:30:00Z"), false, false),
            ConferenceStatus::Closed
        );
    }

    #[test]
    fn reservationless_and_cancelled_conferences() {
        let mut c = Conference::new(&Customer::new("Acme"), "Open");
        let now = at("2026-05-01T10:00:00Z");
        assert_eq!(conference_status(&c, &[], now, false, false), ConferenceStatus::Sched);
        assert_eq!(conference_status(&c, &[], now, true, true), ConferenceStatus::Active);
        assert_eq!(conference_status(&c, &[], now, false, true), ConferenceStatus::Idle);
        c.scheduled_end = Some(at("2026-05-01T09:00:00Z"));
        assert_eq!(conference_status(&c, &[], now, false, true), ConferenceStatus::Closed);
        c.status = ConferenceStatus::Cancel;
        assert_eq!(conference_status(&c, &[], now, true, true), ConferenceStatus::Cancel);
    }

    #[test]
    fn next_change_is_the_next_boundary() {
        let (c, rs) = reserved();
        assert_eq!(
            next_change(&c, &rs, at("2026-04-01T00:00:00Z")),
            Some(at("2026-05-01T10:00:00Z"))
        );
        assert_eq!(
            next_change(&c, &rs, at("2026-05-01T10:00:00Z")),
            Some(at("2026-05-01T11:00:00Z"))
        );
        assert_eq!(
            next_change(&c, &rs, at("2026-05-02T00:00:00Z")),
            Some(at("2026-05-08T10:00:00Z"))
        );
        assert_eq!(next_change(&c, &rs, at("2026-05-08T10:30:00Z")), None);
    }
}
