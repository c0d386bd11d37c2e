//! Conferences booked by name for one reservation: the Aculab web services'
//! model. The name is the number callers dial (`sip:<name>@tutti`), unique on
//! the server; the reservation (its token names it) holds the start, the
//! duration, the size and where early callers are diverted. Its rules:
//!
//! - a name of 1 to 47 letters or digits; 40 to 350 participants;
//! - a start rounded down to the minute, given at least 5 minutes and at most
//!   24 hours ahead; 15 to 480 minutes;
//! - extended only (by 15 to 60 minutes), only while RESERVED, HOLDING or
//!   ACTIVE, not within its last 5 minutes, never past 480 minutes in all;
//! - removed only while RESERVED and not within 5 minutes of its start;
//! - participants changed or ejected only while ACTIVE.
//!
//! States follow `rules::schedule::reservation_state` with who is connected
//! now (the leader counted when the conference has one). Conferences made
//! elsewhere without a reservation are shown as unreserved ones of 40.

use std::ops::RangeInclusive;

use super::{Conflict, Kind, Ops, OpsError, OpsResult, Scope};
use crate::live::CallerUpdate;
use crate::model::{CallStatus, Caller, Conference, Reservation, ReservationState, Role};
use crate::rules::schedule::{Presence, reservation_state};
use crate::time::Time;

/// A conference name's length.
pub const NAME_LEN: RangeInclusive<usize> = 1..=47;
/// The participants a booking may be made for.
pub const PARTICIPANTS: RangeInclusive<i64> = 40..=350;
/// How far ahead a start may be, in minutes.
pub const LEAD_MINUTES: RangeInclusive<i64> = 5..=24 * 60;
/// A booking's duration, in minutes.
pub const DURATION_MINUTES: RangeInclusive<i64> = 15..=480;
/// One extension, in minutes.
pub const EXTENSION_MINUTES: RangeInclusive<i64> = 15..=60;
/// The size shown for a conference without a reservation (Aculab's
/// unreserved small conference).
pub const UNRESERVED_PARTICIPANTS: i64 = 40;
/// Minutes before its start (remove) or end (extend) when a booking is frozen.
const FROZEN_MINUTES: i64 = 5;

/// A booking asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub name: String,
    pub max_participants: i64,
    /// As given; rounded down to the minute when stored.
    pub start: Time,
    pub duration_minutes: i64,
    pub divert: Option<String>,
}

/// How a request names a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named<'a> {
    Name(&'a str),
    Token(&'a str),
}

/// A conference as the bookings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Booked {
    pub conference: Conference,
    /// Its reservation, when it was booked (or has one of fixed length).
    pub reservation: Option<Reservation>,
    pub state: ReservationState,
    pub max_participants: i64,
}

fn rounded_down(t: Time) -> Time {
    let ms = t.unix_millis();
    Time::from_unix_millis(ms - ms.rem_euclid(60_000)).unwrap_or(t)
}

fn invalid(field: &'static str, reason: impl Into<String>) -> OpsError {
    OpsError::invalid(field, reason.into())
}

/// Checks a booking's own values against the clock.
pub fn check_booking(b: &Booking, now: Time) -> OpsResult<()> {
    if !NAME_LEN.contains(&b.name.len()) || !b.name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid("conference_name", "1 to 47 letters or digits"));
    }
    if !PARTICIPANTS.contains(&b.max_participants) {
        return Err(invalid("max_participants", "must be between 40 and 350"));
    }
    let ahead_ms = b.start.unix_millis() - now.unix_millis();
    if ahead_ms < LEAD_MINUTES.start() * 60_000 {
        return Err(invalid("start_time", "must be at least 5 minutes in the future"));
    }
    if ahead_ms > LEAD_MINUTES.end() * 60_000 {
        return Err(invalid("start_time", "must be no more than 24 hours in the future"));
    }
    if !DURATION_MINUTES.contains(&b.duration_minutes) {
        return Err(invalid("duration", "must be between 15 and 480 minutes"));
    }
    if let Some(divert) = &b.divert
        && (divert.is_empty()
            || divert.len() > 128
            || divert.chars().any(|c| c.is_control() || c.is_whitespace() || "@<>;\"".contains(c)))
    {
        return Err(invalid(
            "divert",
            "a service name: up to 128 characters, no spaces, @, <, >, ; or \"",
        ));
    }
    Ok(())
}

impl Ops {
    /// Books a conference: a reserved conference dialled by its name, with one
    /// reservation holding the start, duration, size and divert.
    pub async fn book(
        &self,
        scope: &Scope,
        booking: Booking,
    ) -> OpsResult<(Conference, Reservation)> {
        let now = Time::now();
        check_booking(&booking, now)?;
        if self.store.conference_by_number(&booking.name).await?.is_some() {
            return Err(invalid("conference_name", "already in use"));
        }
        let mut conference = self.new_conference(scope, &booking.name).await?;
        conference.dial_in_number = Some(booking.name.clone());
        conference.reserved = true;
        conference.max_members = Some(booking.max_participants);
        let mut reservation = Reservation::new(
            &conference.uid,
            rounded_down(booking.start),
            booking.duration_minutes,
        );
        reservation.estimated_callers = booking.max_participants;
        reservation.divert = booking.divert;
        reservation.state = reservation_state(&reservation, now, 0);
        let conference = self.create_conference(scope, conference).await.map_err(|e| match e {
            OpsError::Conflict(Conflict::NumberInUse) => {
                invalid("conference_name", "already in use")
            }
            other => other,
        })?;
        self.store.insert(&reservation).await?;
        self.events
            .publish(crate::live::Event::ConferenceModified { conference: conference.clone() });
        tracing::info!(conference = %conference.uid, name = %booking.name, start = %reservation.start_time, "conference booked");
        Ok((conference, reservation))
    }

    /// A conference the requester owns, by name or by its reservation's token.
    pub async fn booked(&self, scope: &Scope, named: Named<'_>) -> OpsResult<Booked> {
        let (conference, reservation) = match named {
            Named::Name(name) => {
                let conference = self
                    .store
                    .conference_by_number(name)
                    .await?
                    .filter(|c| scope.sees(&c.customer_uid))
                    .ok_or(OpsError::NotFound(Kind::Conference))?;
                (conference, None)
            }
            Named::Token(token) => {
                let reservation = self
                    .store
                    .reservation_by_token(token)
                    .await?
                    .ok_or(OpsError::NotFound(Kind::Reservation))?;
                let conference = self
                    .conference(scope, &reservation.conference_uid)
                    .await
                    .map_err(|_| OpsError::NotFound(Kind::Reservation))?;
                (conference, Some(reservation))
            }
        };
        self.booked_view(conference, reservation).await
    }

    /// A conference with the reservation that concerns it now (the one given,
    /// or its running, next or last one of fixed length) and its state.
    async fn booked_view(
        &self,
        conference: Conference,
        reservation: Option<Reservation>,
    ) -> OpsResult<Booked> {
        let now = Time::now();
        let reservation = match reservation {
            Some(r) => Some(r),
            None if conference.reserved => {
                let all: Vec<Reservation> = self
                    .store
                    .reservations_of(&conference.uid)
                    .await?
                    .into_iter()
                    .filter(|r| r.duration_minutes.is_some())
                    .collect();
                let running = all.iter().find(|r| r.runs_at(now)).cloned();
                let next = all.iter().filter(|r| r.start_time > now).min_by_key(|r| r.start_time);
                let last = all.iter().max_by_key(|r| r.start_time);
                running.or_else(|| next.cloned()).or_else(|| last.cloned())
            }
            None => None,
        };
        let present = self.presence(&conference).await?;
        let state = match &reservation {
            Some(r) => reservation_state(r, now, present),
            // Unreserved: holding until two are in.
            None if present.members >= 2 && !present.leader_missing => ReservationState::Active,
            None => ReservationState::Holding,
        };
        let max_participants = match &reservation {
            Some(r) => conference.member_limit().unwrap_or(r.estimated_callers),
            None => conference.member_limit().unwrap_or(UNRESERVED_PARTICIPANTS),
        };
        Ok(Booked { conference, reservation, state, max_participants })
    }

    /// Who is connected to a conference now.
    async fn presence(&self, conference: &Conference) -> OpsResult<Presence> {
        let callers = self.connected(conference).await?;
        let leaders = callers.iter().filter(|c| c.role == Role::Moderator).count();
        Ok(Presence {
            members: callers.len(),
            leader_missing: conference.moderator_pin.is_some() && leaders == 0,
        })
    }

    /// The callers connected to a conference's running call.
    async fn connected(&self, conference: &Conference) -> OpsResult<Vec<Caller>> {
        let mut connected = Vec::new();
        for call in self.store.calls_of(&conference.uid).await? {
            if call.status == CallStatus::Active {
                let callers = self.store.callers_of(&call.uid).await?;
                connected.extend(callers.into_iter().filter(|c| c.active));
            }
        }
        Ok(connected)
    }

    /// Every conference of the requester, as the bookings show them.
    pub async fn bookings(&self, scope: &Scope) -> OpsResult<Vec<Booked>> {
        let mut out = Vec::new();
        for conference in self.conferences(scope).await? {
            if conference.status == crate::model::ConferenceStatus::Cancel {
                continue;
            }
            out.push(self.booked_view(conference, None).await?);
        }
        Ok(out)
    }

    /// Extends a booking's reservation by `minutes`.
    pub async fn extend_booking(
        &self,
        scope: &Scope,
        token: &str,
        minutes: i64,
    ) -> OpsResult<Reservation> {
        if !EXTENSION_MINUTES.contains(&minutes) {
            return Err(invalid("duration", "must be between 15 and 60 minutes"));
        }
        let booked = self.booked(scope, Named::Token(token)).await?;
        let mut reservation = booked.reservation.ok_or(OpsError::NotFound(Kind::Reservation))?;
        let Some(current) = reservation.duration_minutes else {
            return Err(OpsError::NotAllowed("the conference has no reservation of fixed length"));
        };
        if booked.state == ReservationState::Completed {
            return Err(invalid("reservation_token", "the conference has COMPLETED"));
        }
        let now = Time::now();
        let end = reservation.start_time.plus_minutes(current);
        if end.unix_millis() - now.unix_millis() <= FROZEN_MINUTES * 60_000 {
            return Err(invalid(
                "reservation_token",
                "the conference finishes within five minutes",
            ));
        }
        let total = current + minutes;
        if total > *DURATION_MINUTES.end() {
            return Err(invalid(
                "duration",
                format!("{current} + {minutes} minutes would pass 480 minutes in all"),
            ));
        }
        let end = reservation.start_time.plus_minutes(total);
        let others = self.store.reservations_of(&reservation.conference_uid).await?;
        if others.iter().any(|r| {
            r.uid != reservation.uid && r.start_time > reservation.start_time && r.start_time < end
        }) {
            return Err(OpsError::Reservation(super::ReservationRule::RunsIntoAnother));
        }
        reservation.duration_minutes = Some(total);
        self.store.update(&reservation).await?;
        self.events
            .publish(crate::live::Event::ConferenceModified { conference: booked.conference });
        Ok(reservation)
    }

    /// Removes a booking that has not started and is not about to.
    pub async fn cancel_booking(&self, scope: &Scope, token: &str) -> OpsResult<()> {
        let booked = self.booked(scope, Named::Token(token)).await?;
        let reservation = booked.reservation.ok_or(OpsError::NotFound(Kind::Reservation))?;
        if booked.state != ReservationState::Reserved {
            return Err(invalid(
                "reservation_token",
                format!("the conference is {}; only a RESERVED one can be removed", booked.state),
            ));
        }
        let now = Time::now();
        if reservation.start_time.unix_millis() - now.unix_millis() <= FROZEN_MINUTES * 60_000 {
            return Err(invalid("reservation_token", "the conference starts within five minutes"));
        }
        self.store.delete::<Reservation>(&reservation.uid).await?;
        let others = self.store.reservations_of(&booked.conference.uid).await?;
        if others.is_empty() {
            // Booked here: the conference goes with its reservation, and its
            // name is free again.
            self.delete_conference(scope, &booked.conference.uid).await?;
        } else {
            self.events
                .publish(crate::live::Event::ConferenceModified { conference: booked.conference });
        }
        Ok(())
    }

    /// The callers connected to a conference, with its state.
    pub async fn participants(
        &self,
        scope: &Scope,
        named: Named<'_>,
    ) -> OpsResult<(ReservationState, Vec<Caller>)> {
        let booked = self.booked(scope, named).await?;
        let callers = self.connected(&booked.conference).await?;
        Ok((booked.state, callers))
    }

    /// A connected participant of an ACTIVE conference.
    async fn active_participant(
        &self,
        scope: &Scope,
        named: Named<'_>,
        participant: &str,
    ) -> OpsResult<Caller> {
        let booked = self.booked(scope, named).await?;
        if booked.state != ReservationState::Active {
            return Err(OpsError::NotAllowed("the conference is not ACTIVE"));
        }
        self.connected(&booked.conference)
            .await?
            .into_iter()
            .find(|c| c.uid == participant)
            .ok_or(OpsError::NotFound(Kind::Caller))
    }

    /// Mutes or unmutes a participant, and enables or disables its keypad.
    pub async fn set_participant_options(
        &self,
        scope: &Scope,
        named: Named<'_>,
        participant: &str,
        muted: Option<bool>,
        dtmf_enabled: Option<bool>,
    ) -> OpsResult<()> {
        let caller = self.active_participant(scope, named, participant).await?;
        if let Some(muted) = muted {
            self.live.update_caller(caller.uid.clone(), CallerUpdate::Mute(muted)).await?;
        }
        if let Some(enabled) = dtmf_enabled {
            self.live.update_caller(caller.uid, CallerUpdate::DtmfAllowed(enabled)).await?;
        }
        Ok(())
    }

    /// Hangs a participant up.
    pub async fn eject_participant(
        &self,
        scope: &Scope,
        named: Named<'_>,
        participant: &str,
    ) -> OpsResult<()> {
        let caller = self.active_participant(scope, named, participant).await?;
        self.live.drop_caller(caller.uid).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Time {
        s.parse().expect("time")
    }

    fn booking(start: &str) -> Booking {
        Booking {
            name: "Room1".into(),
            max_participants: 40,
            start: at(start),
            duration_minutes: 15,
            divert: None,
        }
    }

    #[test]
    fn bookings_keep_the_documents_boundaries() {
        let now = at("2026-06-20T10:00:00Z");
        let ok = |b: &Booking| check_booking(b, now);
        assert!(ok(&booking("2026-06-20T10:05:00Z")).is_ok(), "5:00 ahead");
        assert!(ok(&booking("2026-06-20T10:04:59Z")).is_err(), "4:59 ahead");
        assert!(ok(&booking("2026-06-21T10:00:00Z")).is_ok(), "24:00 ahead");
        assert!(ok(&booking("2026-06-21T10:00:01Z")).is_err(), "24:00:01 ahead");
        for (n, good) in [(39, false), (40, true), (350, true), (351, false)] {
            let b = Booking { max_participants: n, ..booking("2026-06-20T11:00:00Z") };
            assert_eq!(ok(&b).is_ok(), good, "{n} participants");
        }
        for (m, good) in [(14, false), (15, true), (480, true), (481, false)] {
            let b = Booking { duration_minutes: m, ..booking("2026-06-20T11:00:00Z") };
            assert_eq!(ok(&b).is_ok(), good, "{m} minutes");
        }
        let long = "a".repeat(47);
        for (name, good) in
            [("", false), ("A1", true), (long.as_str(), true), ("a b", false), ("x-y", false)]
        {
            let b = Booking { name: name.into(), ..booking("2026-06-20T11:00:00Z") };
            assert_eq!(ok(&b).is_ok(), good, "{name:?}");
        }
        let b = Booking { name: "a".repeat(48), ..booking("2026-06-20T11:00:00Z") };
        assert!(ok(&b).is_err(), "48 characters");
        assert_eq!(rounded_down(at("2026-06-20T10:07:59.999Z")), at("2026-06-20T10:07:00Z"));
    }
}
