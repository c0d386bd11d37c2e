//! Status over time. A conference's status (MaestroConference SCHED / ACTIVE /
//! IDLE / CLOSED / CANCEL) and each reservation's state (Aculab RESERVED /
//! HOLDING / ACTIVE / COMPLETED) follow from stored times, the clock and whether a
//! call is live. They are recomputed, never accumulated, so a restart in the
//! middle of a schedule lands in the right state.

use crate::Time;
use crate::model::{Conference, ConferenceStatus, Reservation, ReservationState};

/// A reservation's state at `now` with `members` callers in the conference:
/// RESERVED before its start, COMPLETED from its end, and in between HOLDING
/// (callers wait for the conference to fill) until two or more callers are in,
/// then ACTIVE.
pub fn reservation_state(r: &Reservation, now: Time, members: usize) -> ReservationState {
    if now < r.start_time {
        ReservationState::Reserved
    } else if now >= r.end_time() {
        ReservationState::Completed
    } else if members >= 2 {
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
        let last = reservations.iter().map(Reservation::end_time).max();
        return match (first, last) {
            (Some(first), _) if now < first => ConferenceStatus::Sched,
            (_, Some(last)) if now >= last => ConferenceStatus::Closed,
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

/// The first instant after `now` at which a status above can change by time
/// alone: a reservation start or end, or the scheduled end. The scheduler sleeps
/// until then (or until a call starts or ends).
pub fn next_change(c: &Conference, reservations: &[Reservation], now: Time) -> Option<Time> {
    reservations
        .iter()
        .flat_map(|r| [r.start_time, r.end_time()])
        .chain(c.scheduled_end)
        .filter(|t| *t > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
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
