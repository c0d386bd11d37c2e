//! Reserved and reservationless conferences and their reservations, with the
//! rules every interface shares: reservations are half-open intervals
//! `[start, end)` that may not overlap (touching ones do not), durations are
//! whole quarter hours, estimated sizes stay within the customer's limit, a
//! reservation that started in the past counts as past exactly as if the time
//! had gone by. Which list a conference is on (active, possible, upcoming,
//! expired, canceled) is the domain's rule, `rules::schedule::lists`.

use super::{Kind, Ops, OpsError, OpsResult, ReservationRule, Scope};
use crate::live::Event;
use crate::model::{CallStatus, Conference, ConferenceStatus, Customer, Reservation};
use crate::rules::schedule::{Lists, lists, reservation_state};
use crate::time::Time;

/// Reservations are booked in whole quarter hours.
pub const DURATION_STEP_MINUTES: i64 = 15;
/// The longest reservation: a week.
pub const MAX_DURATION_MINUTES: i64 = 7 * 24 * 60;

/// One reservation asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationRequest {
    pub start: Time,
    /// Minutes, rounded up to the next quarter hour.
    pub duration_minutes: i64,
    pub estimated_callers: i64,
}

/// Changes to a reservation; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReservationChange {
    pub start: Option<Time>,
    pub duration_minutes: Option<i64>,
    pub estimated_callers: Option<i64>,
}

/// `minutes` rounded up to the next quarter hour, if it is a usable duration.
pub fn round_duration(minutes: i64) -> OpsResult<i64> {
    if !(1..=MAX_DURATION_MINUTES).contains(&minutes) {
        return Err(OpsError::invalid("duration", format!("1 to {MAX_DURATION_MINUTES} minutes")));
    }
    Ok((minutes + DURATION_STEP_MINUTES - 1) / DURATION_STEP_MINUTES * DURATION_STEP_MINUTES)
}

/// Whether `new` (half-open) collides with `other`: its start inside it, or
/// running into it from before.
fn collision(start: Time, end: Time, other: &Reservation) -> Option<ReservationRule> {
    let other_end = other.end_time();
    let start_inside = other.start_time <= start && other_end.is_none_or(|e| start < e);
    if start_inside {
        return Some(ReservationRule::StartOverlaps);
    }
    if start < other.start_time && other.start_time < end {
        return Some(ReservationRule::RunsIntoAnother);
    }
    None
}

impl Ops {
    fn check_estimate(&self, customer: &Customer, estimated: i64) -> OpsResult<()> {
        if estimated < 1 || estimated > self.caller_limit(customer) {
            return Err(OpsError::Reservation(ReservationRule::EstimateOutOfRange));
        }
        Ok(())
    }

    /// A reservation with its state as the clock says (one that started in
    /// the past is as far along as if the time had gone by).
    fn reservation_at(
        conference_uid: &str,
        request: &ReservationRequest,
        now: Time,
    ) -> Reservation {
        let mut r = Reservation::new(conference_uid, request.start, request.duration_minutes);
        r.estimated_callers = request.estimated_callers;
        r.state = reservation_state(&r, now, 0);
        r
    }

    /// Creates a reservationless conference (callers may enter any time) with
    /// its one open-ended reservation, which holds its estimated size.
    pub async fn create_reservationless(
        &self,
        scope: &Scope,
        mut conference: Conference,
        estimated_callers: i64,
    ) -> OpsResult<(Conference, Reservation)> {
        let customer = self.customer_of(scope, &conference).await?;
        self.check_estimate(&customer, estimated_callers)?;
        conference.reserved = false;
        let conference = self.create_conference(scope, conference).await?;
        let mut reservation = Reservation::open_ended(&conference.uid, conference.created_at);
        reservation.estimated_callers = estimated_callers;
        self.store.insert(&reservation).await?;
        Ok((conference, reservation))
    }

    /// Creates a reserved conference (callers enter only during a reservation)
    /// with the valid ones of `requests`; the others are skipped and reported
    /// by index. Refused when none is valid.
    pub async fn create_reserved(
        &self,
        scope: &Scope,
        mut conference: Conference,
        requests: &[ReservationRequest],
    ) -> OpsResult<(Conference, Vec<Reservation>, Vec<(usize, OpsError)>)> {
        let customer = self.customer_of(scope, &conference).await?;
        let now = Time::now();
        let mut accepted: Vec<Reservation> = Vec::new();
        let mut skipped = Vec::new();
        for (index, request) in requests.iter().enumerate() {
            let checked =
                self.check_estimate(&customer, request.estimated_callers).and_then(|()| {
                    let duration = round_duration(request.duration_minutes)?;
                    let request = ReservationRequest { duration_minutes: duration, ..*request };
                    let end = request.start.plus_minutes(duration);
                    match accepted.iter().find_map(|r| collision(request.start, end, r)) {
                        Some(rule) => Err(OpsError::Reservation(rule)),
                        None => Ok(request),
                    }
                });
            match checked {
                Ok(request) => accepted.push(Self::reservation_at("", &request, now)),
                Err(e) => skipped.push((index, e)),
            }
        }
        if accepted.is_empty() {
            return Err(OpsError::Reservation(ReservationRule::NoneValid));
        }
        conference.reserved = true;
        let conference = self.create_conference(scope, conference).await?;
        for reservation in &mut accepted {
            reservation.conference_uid = conference.uid.clone();
            self.store.insert(&*reservation).await?;
        }
        accepted.sort_by_key(|r| r.start_time);
        self.schedule_changed(&conference);
        Ok((conference, accepted, skipped))
    }

    /// The customer that owns `conference` (which the requester creates).
    async fn customer_of(&self, scope: &Scope, conference: &Conference) -> OpsResult<Customer> {
        if !scope.sees(&conference.customer_uid) {
            return Err(OpsError::NotFound(Kind::Customer));
        }
        self.store
            .find::<Customer>(&conference.customer_uid)
            .await?
            .ok_or(OpsError::NotFound(Kind::Customer))
    }

    /// The reservation, if the requester owns its conference.
    pub async fn reservation(
        &self,
        scope: &Scope,
        uid: &str,
    ) -> OpsResult<(Reservation, Conference)> {
        let reservation = self
            .store
            .find::<Reservation>(uid)
            .await?
            .ok_or(OpsError::NotFound(Kind::Reservation))?;
        let conference = self
            .conference(scope, &reservation.conference_uid)
            .await
            .map_err(|_| OpsError::NotFound(Kind::Reservation))?;
        Ok((reservation, conference))
    }

    /// Adds a reservation to a reserved conference.
    pub async fn add_reservation(
        &self,
        scope: &Scope,
        conference_uid: &str,
        request: ReservationRequest,
    ) -> OpsResult<Reservation> {
        let conference = self.conference(scope, conference_uid).await?;
        if !conference.reserved {
            return Err(OpsError::Reservation(ReservationRule::Reservationless));
        }
        if conference.status == ConferenceStatus::Cancel {
            return Err(OpsError::Ended(Kind::Conference));
        }
        let customer = self.customer_of(scope, &conference).await?;
        self.check_estimate(&customer, request.estimated_callers)?;
        let duration = round_duration(request.duration_minutes)?;
        let request = ReservationRequest { duration_minutes: duration, ..request };
        let end = request.start.plus_minutes(duration);
        let existing = self.store.reservations_of(&conference.uid).await?;
        if let Some(rule) = existing.iter().find_map(|r| collision(request.start, end, r)) {
            return Err(OpsError::Reservation(rule));
        }
        let reservation = Self::reservation_at(&conference.uid, &request, Time::now());
        self.store.insert(&reservation).await?;
        self.schedule_changed(&conference);
        Ok(reservation)
    }

    /// Changes a reservation's start, duration or estimated size. A
    /// reservationless conference's reservation takes only a new size.
    pub async fn update_reservation(
        &self,
        scope: &Scope,
        uid: &str,
        change: ReservationChange,
    ) -> OpsResult<Reservation> {
        let (mut reservation, conference) = self.reservation(scope, uid).await?;
        let moves = change.start.is_some() || change.duration_minutes.is_some();
        if moves && (!conference.reserved || reservation.duration_minutes.is_none()) {
            return Err(OpsError::Reservation(ReservationRule::Reservationless));
        }
        if let Some(estimated) = change.estimated_callers {
            let customer = self.customer_of(scope, &conference).await?;
            self.check_estimate(&customer, estimated)?;
            reservation.estimated_callers = estimated;
        }
        if moves {
            let start = change.start.unwrap_or(reservation.start_time);
            let duration = match change.duration_minutes {
                Some(minutes) => round_duration(minutes)?,
                None => reservation.duration_minutes.unwrap_or(DURATION_STEP_MINUTES),
            };
            let end = start.plus_minutes(duration);
            let others = self.store.reservations_of(&conference.uid).await?;
            let collides = others
                .iter()
                .filter(|r| r.uid != reservation.uid)
                .find_map(|r| collision(start, end, r));
            if let Some(rule) = collides {
                return Err(OpsError::Reservation(rule));
            }
            reservation.start_time = start;
            reservation.duration_minutes = Some(duration);
            reservation.state = reservation_state(&reservation, Time::now(), 0);
        }
        self.store.update(&reservation).await?;
        self.schedule_changed(&conference);
        Ok(reservation)
    }

    /// Removes a future reservation of a reserved conference that has others.
    pub async fn remove_reservation(&self, scope: &Scope, uid: &str) -> OpsResult<Reservation> {
        let (reservation, conference) = self.reservation(scope, uid).await?;
        let now = Time::now();
        if !conference.reserved || reservation.duration_minutes.is_none() {
            return Err(OpsError::Reservation(ReservationRule::Reservationless));
        }
        if reservation.is_past(now) {
            return Err(OpsError::Reservation(ReservationRule::Past));
        }
        if reservation.runs_at(now) {
            return Err(OpsError::Reservation(ReservationRule::Running));
        }
        if self.store.reservations_of(&conference.uid).await?.len() <= 1 {
            return Err(OpsError::Reservation(ReservationRule::LastOne));
        }
        self.store.delete::<Reservation>(&reservation.uid).await?;
        self.schedule_changed(&conference);
        Ok(reservation)
    }

    /// Cancels a conference for good: nobody may enter any more, and callers
    /// in a call now are hung up.
    pub async fn cancel_conference(&self, scope: &Scope, uid: &str) -> OpsResult<Conference> {
        let conference = self.conference(scope, uid).await?;
        if conference.status == ConferenceStatus::Cancel {
            return Err(OpsError::Ended(Kind::Conference));
        }
        let cancelled = self
            .modify_conference(scope, uid, |c| {
                c.status = ConferenceStatus::Cancel;
                Ok(())
            })
            .await?;
        for call in self.store.calls_of(uid).await? {
            if call.status == CallStatus::Active {
                match self.live.close_call(call.uid.clone()).await {
                    Ok(()) | Err(OpsError::NotFound(_)) => {}
                    Err(e) => tracing::warn!(error = %e, call = %call.uid, "call not closed"),
                }
            }
        }
        Ok(cancelled)
    }

    /// The requester's conferences with the list each is on now.
    pub async fn conference_lists(&self, scope: &Scope) -> OpsResult<Vec<(Conference, Lists)>> {
        let now = Time::now();
        let live = self.member_counts(scope).await?;
        let mut out = Vec::new();
        for conference in self.conferences(scope).await? {
            let reservations = self.store.reservations_of(&conference.uid).await?;
            let is_live = conference.status == ConferenceStatus::Active
                || live.get(&conference.uid).is_some_and(|n| *n > 0);
            let on = lists(&conference, &reservations, now, is_live);
            out.push((conference, on));
        }
        Ok(out)
    }

    /// Tells the scheduler (and the interfaces) that a conference's schedule
    /// changed.
    fn schedule_changed(&self, conference: &Conference) {
        self.events.publish(Event::ConferenceModified { conference: conference.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{FakeLive, ops_with};

    fn at(s: &str) -> Time {
        s.parse().expect("time")
    }

    fn request(start: &str, minutes: i64) -> ReservationRequest {
        ReservationRequest { start: at(start), duration_minutes: minutes, estimated_callers: 10 }
    }

    async fn reserved(ops: &Ops) -> Conference {
        let conf = ops.new_conference(&Scope::Server, "Board").await.expect("new");
        let (conf, _, _) = ops
            .create_reserved(&Scope::Server, conf, &[request("2030-05-01T10:00:00Z", 60)])
            .await
            .expect("created");
        conf
    }

    #[test]
    fn durations_round_up_to_quarter_hours() {
        assert_eq!(round_duration(1), Ok(15));
        assert_eq!(round_duration(15), Ok(15));
        assert_eq!(round_duration(16), Ok(30));
        assert_eq!(round_duration(60), Ok(60));
        assert!(round_duration(0).is_err());
        assert!(round_duration(-5).is_err());
        assert!(round_duration(MAX_DURATION_MINUTES + 1).is_err());
    }

    #[tokio::test]
    async fn overlaps_are_refused_at_their_exact_boundaries() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let conf = reserved(&ops).await; // 10:00-11:00
        let add = |start: &str, minutes| {
            let ops = ops.clone();
            let uid = conf.uid.clone();
            let req = request(start, minutes);
            async move { ops.add_reservation(&Scope::Server, &uid, req).await }
        };
        let starts_inside = Err(OpsError::Reservation(ReservationRule::StartOverlaps));
        let runs_into = Err(OpsError::Reservation(ReservationRule::RunsIntoAnother));
        assert_eq!(add("2030-05-01T10:00:00Z", 15).await.map(drop), starts_inside);
        assert_eq!(add("2030-05-01T10:59:59Z", 15).await.map(drop), starts_inside);
        assert_eq!(add("2030-05-01T09:00:01Z", 60).await.map(drop), runs_into);
        // Touching intervals do not overlap.
        add("2030-05-01T11:00:00Z", 15).await.expect("right after");
        add("2030-05-01T09:00:00Z", 60).await.expect("right before");
        // A reservation in the past is allowed (an imported history).
        add("2020-01-01T09:00:00Z", 30).await.expect("past");
        let size =
            |n| ReservationRequest { estimated_callers: n, ..request("2031-01-01T09:00:00Z", 30) };
        for n in [0, 501] {
            assert_eq!(
                ops.add_reservation(&Scope::Server, &conf.uid, size(n)).await.map(drop),
                Err(OpsError::Reservation(ReservationRule::EstimateOutOfRange)),
                "{n}"
            );
        }
    }

    #[tokio::test]
    async fn removal_keeps_the_last_past_and_running_reservations() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let conf = reserved(&ops).await;
        let first = ops.store.reservations_of(&conf.uid).await.expect("r")[0].uid.clone();
        assert_eq!(
            ops.remove_reservation(&Scope::Server, &first).await.map(drop),
            Err(OpsError::Reservation(ReservationRule::LastOne))
        );
        let now = Time::now();
        let running = ReservationRequest {
            start: now.plus_minutes(-5),
            duration_minutes: 30,
            estimated_callers: 5,
        };
        let running =
            ops.add_reservation(&Scope::Server, &conf.uid, running).await.expect("running");
        let past = ReservationRequest {
            start: now.plus_minutes(-120),
            duration_minutes: 30,
            estimated_callers: 5,
        };
        let past = ops.add_reservation(&Scope::Server, &conf.uid, past).await.expect("past");
        assert_eq!(
            past.state,
            crate::model::ReservationState::Completed,
            "past as if time went by"
        );
        assert_eq!(
            ops.remove_reservation(&Scope::Server, &running.uid).await.map(drop),
            Err(OpsError::Reservation(ReservationRule::Running))
        );
        assert_eq!(
            ops.remove_reservation(&Scope::Server, &past.uid).await.map(drop),
            Err(OpsError::Reservation(ReservationRule::Past))
        );
        ops.remove_reservation(&Scope::Server, &first).await.expect("a future one goes");
    }

    #[tokio::test]
    async fn a_reservationless_conference_keeps_one_open_ended_reservation() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let conf = ops.new_conference(&Scope::Server, "Open").await.expect("new");
        let (conf, open) =
            ops.create_reservationless(&Scope::Server, conf, 25).await.expect("created");
        assert!(!conf.reserved);
        assert_eq!((open.duration_minutes, open.estimated_callers), (None, 25));
        let resize = ReservationChange { estimated_callers: Some(40), ..Default::default() };
        let resized =
            ops.update_reservation(&Scope::Server, &open.uid, resize).await.expect("size");
        assert_eq!(resized.estimated_callers, 40);
        let moved = ReservationChange { duration_minutes: Some(30), ..Default::default() };
        assert_eq!(
            ops.update_reservation(&Scope::Server, &open.uid, moved).await.map(drop),
            Err(OpsError::Reservation(ReservationRule::Reservationless))
        );
        assert_eq!(
            ops.remove_reservation(&Scope::Server, &open.uid).await.map(drop),
            Err(OpsError::Reservation(ReservationRule::Reservationless))
        );
        assert_eq!(
            ops.add_reservation(&Scope::Server, &conf.uid, request("2030-01-01T10:00:00Z", 30))
                .await
                .map(drop),
            Err(OpsError::Reservation(ReservationRule::Reservationless))
        );
        let lists = ops.conference_lists(&Scope::Server).await.expect("lists");
        assert!(lists.iter().any(|(c, l)| c.uid == conf.uid && l.possible));
    }

    #[tokio::test]
    async fn a_reserved_conference_needs_one_valid_reservation() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let conf = ops.new_conference(&Scope::Server, "Bad").await.expect("new");
        let bad = [
            request("2030-01-01T10:00:00Z", 0),
            ReservationRequest { estimated_callers: 0, ..request("2030-01-02T10:00:00Z", 30) },
        ];
        assert_eq!(
            ops.create_reserved(&Scope::Server, conf.clone(), &bad).await.map(drop),
            Err(OpsError::Reservation(ReservationRule::NoneValid))
        );
        let mixed =
            [bad[0], request("2030-01-03T10:00:00Z", 50), request("2030-01-03T10:30:00Z", 15)];
        let (_, kept, skipped) =
            ops.create_reserved(&Scope::Server, conf, &mixed).await.expect("created");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].duration_minutes, Some(60), "50 minutes round up to an hour");
        assert_eq!(skipped.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2]);
    }
}
