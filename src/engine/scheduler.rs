//! The scheduler task: keeps every stored conference status and reservation
//! state equal to what `schedule.rs` computes from the stored times, the clock
//! and the live calls. It recomputes, never accumulates, so a restart lands in
//! the right state with one pass at start-up.
//!
//! It runs a full pass at start, at each time boundary (a reservation starting or
//! ending, a scheduled end), and every [`SAFETY_PASS`] in case the wall clock
//! jumped. Its own status changes go out as `Event::ConferenceStatus`. Between
//! those it recomputes only the conferences the event bus says
//! changed (created, modified, a call or a caller came or went), gathered over
//! [`DEBOUNCE`] so a burst of callers costs one pass, not one per caller.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tutti_api::live::Event;
use tutti_api::model::{Conference, ConferenceStatus};
use tutti_api::{Store, Time};

use super::core::Engine;
use tutti_api::model::Role;
use tutti_api::rules::schedule::{Presence, conference_status, next_change, reservation_state};

/// Changes arriving within this window are applied together.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A full pass at least this often, whatever the boundaries say.
const SAFETY_PASS: Duration = Duration::from_secs(300);
/// Wake a little after a boundary, so `now >= boundary` holds for sure.
const BOUNDARY_MARGIN: Duration = Duration::from_millis(20);

/// What to recompute next.
enum Work {
    All,
    Some(HashSet<String>),
}

impl Engine {
    /// Starts the scheduler. Its first pass runs at once; [`Engine::shutdown`]
    /// stops it, before the store closes.
    pub fn start_scheduler(&self) {
        let task = tokio::spawn(self.clone().scheduler());
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(task.abort_handle());
    }

    async fn scheduler(self) {
        let mut events = self.inner.events.subscribe();
        let mut work = Work::All;
        let mut deadline = tokio::time::Instant::now();
        loop {
            let boundary = match &work {
                Work::All => {
                    let boundary = self.schedule_all().await;
                    deadline = tokio::time::Instant::now() + SAFETY_PASS;
                    boundary
                }
                Work::Some(uids) => {
                    let mut boundary = None;
                    for uid in uids {
                        boundary = earliest(boundary, self.schedule_one(uid).await);
                    }
                    boundary
                }
            };
            // A boundary found now may come before the one already waited for.
            if let Some(at) = boundary {
                deadline = deadline.min(tokio::time::Instant::now() + until(at) + BOUNDARY_MARGIN);
            }
            work = loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break Work::All,
                    first = events.recv() => {
                        if matches!(first, Err(RecvError::Closed)) {
                            return;
                        }
                        let mut uids = HashSet::new();
                        let mut all = !note(&first, &mut uids);
                        if !all && uids.is_empty() {
                            // Talking, digits, playbacks: nothing the schedule follows.
                            continue;
                        }
                        // Gather the rest of a burst.
                        let gather = tokio::time::sleep(DEBOUNCE);
                        tokio::pin!(gather);
                        loop {
                            tokio::select! {
                                () = &mut gather => break,
                                more = events.recv() => all |= !note(&more, &mut uids),
                            }
                        }
                        break if all { Work::All } else { Work::Some(uids) };
                    }
                }
            };
        }
    }

    /// Recomputes every conference; returns the earliest coming boundary.
    async fn schedule_all(&self) -> Option<Time> {
        let conferences = match self.inner.store.list_conferences(None).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "scheduler: cannot list conferences");
                return None;
            }
        };
        let mut next = None;
        for conference in conferences {
            next = earliest(next, self.schedule_conference(conference).await);
        }
        next
    }

    async fn schedule_one(&self, uid: &str) -> Option<Time> {
        match self.inner.store.find::<Conference>(uid).await {
            Ok(Some(conference)) => self.schedule_conference(conference).await,
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, conference = %uid, "scheduler: lookup failed");
                None
            }
        }
    }

    /// Brings one conference and its reservations up to date; returns its next
    /// boundary.
    async fn schedule_conference(&self, mut conference: Conference) -> Option<Time> {
        let store: &Store = &self.inner.store;
        let reservations = match store.reservations_of(&conference.uid).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, conference = %conference.uid, "scheduler: reservations unreadable");
                return None;
            }
        };
        let (live, members, leaders, call_uid) = {
            let state = self.state();
            match state.live.conferences.get(&conference.uid) {
                Some(c) => {
                    let leaders = state
                        .live
                        .callers
                        .values()
                        .filter(|m| m.conference_uid == conference.uid)
                        .filter(|m| m.caller.role == Role::Moderator)
                        .count();
                    (true, c.members, leaders, Some(c.call_uid.clone()))
                }
                None => (false, 0, 0, None),
            }
        };
        let present = Presence {
            members,
            leader_missing: conference.moderator_pin.is_some() && leaders == 0,
        };
        let had_calls = live
            || conference.status == ConferenceStatus::Idle
            || store.calls_of(&conference.uid).await.is_ok_and(|calls| !calls.is_empty());
        let now = Time::now();
        for reservation in &reservations {
            let state = reservation_state(reservation, now, present);
            if state != reservation.state {
                tracing::info!(reservation = %reservation.uid, from = %reservation.state, to = %state, "reservation state");
                // Only the state column, and only from what was read: a change
                // made through an API meanwhile is kept (the next pass sees it).
                if let Err(e) =
                    store.set_reservation_state(&reservation.uid, reservation.state, state).await
                {
                    tracing::error!(error = %e, "scheduler: reservation state not stored");
                }
            }
        }
        // A reserved conference's call ends with its reservation: everyone is
        // hung up when none runs any more (a reservation that follows at once
        // keeps the call going).
        if let Some(call_uid) = call_uid.filter(|_| conference.reserved)
            && !reservations.is_empty()
            && !reservations.iter().any(|r| r.runs_at(now))
        {
            tracing::info!(conference = %conference.uid, call = %call_uid, "the reservation ended: hanging up");
            if let Err(e) = tutti_api::live::LiveControl::close_call(self, call_uid).await {
                tracing::warn!(error = %e, conference = %conference.uid, "the call did not end with its reservation");
            }
        }
        let status = conference_status(&conference, &reservations, now, live, had_calls);
        if status != conference.status {
            tracing::info!(conference = %conference.uid, from = %conference.status, to = %status, "conference status");
            match store
                .set_conference_status(&conference.uid, Some(conference.status), status, now)
                .await
            {
                Ok(true) => {
                    conference.status = status;
                    conference.updated_at = now;
                    self.inner
                        .events
                        .publish(Event::ConferenceStatus { conference: conference.clone() });
                }
                // Changed meanwhile; the change's own event brings it back here.
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "scheduler: conference status not stored"),
            }
        }
        next_change(&conference, &reservations, now)
    }
}

/// Adds the conference an event concerns to `uids`; `false` when the whole
/// table must be recomputed (events were missed, or the bus closed).
fn note(event: &Result<std::sync::Arc<Event>, RecvError>, uids: &mut HashSet<String>) -> bool {
    let event = match event {
        Ok(event) => event,
        Err(RecvError::Lagged(_) | RecvError::Closed) => return false,
    };
    match &**event {
        Event::ClockChanged => return false,
        Event::ConferenceCreated { conference } | Event::ConferenceModified { conference } => {
            uids.insert(conference.uid.clone());
        }
        Event::CallStarted { conference_uid, .. }
        | Event::CallEnded { conference_uid, .. }
        | Event::CallerJoined { conference_uid, .. }
        | Event::CallerLeft { conference_uid, .. } => {
            uids.insert(conference_uid.clone());
        }
        _ => {}
    }
    true
}

fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How long until `at`, zero if it has passed.
fn until(at: Time) -> Duration {
    let ms = at.unix_millis() - Time::now().unix_millis();
    Duration::from_millis(ms.max(0) as u64)
}
