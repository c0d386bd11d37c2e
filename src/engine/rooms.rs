//! Moving live callers: into a breakout group of their call and back, and from
//! one conference into another (TCP 4011 MOVEUSER). The leg never leaves the
//! process: it is handed from room to room, so the caller hears no gap beyond a
//! tick and keeps its SIP dialog, its caller UID and its settings.

use tokio::sync::broadcast::error::RecvError;
use tutti_api::Time;
use tutti_api::live::{CallerField, Event, LiveError};
use tutti_api::model::{Breakout, Call, Conference, Role};
use tutti_media::io::LegKey;
use tutti_media::mixer::{BreakoutId, VolumeStep};
use tutti_media::room::MemberChange;

use super::core::{Engine, State, entered};

/// The room's number for the green room: a private group no breakout uses.
const GREEN_ROOM: BreakoutId = BreakoutId(u32::MAX);

/// Who waits in the green room while it is on: the people running the call.
fn green_room_role(role: Role) -> bool {
    matches!(role, Role::Presenter | Role::Assistant | Role::Operator)
}

impl Engine {
    /// Puts a caller into one of its call's breakout groups (`Some`) or back
    /// into the main room (`None`).
    pub(super) async fn set_breakout(
        &self,
        caller_uid: &str,
        breakout_uid: Option<String>,
    ) -> Result<(), LiveError> {
        let (call_uid, conference_uid, leg, room) = {
            let state = self.state();
            let live = state.callers.get(caller_uid).ok_or(LiveError::NotFound("caller"))?;
            let conf =
                state.conferences.get(&live.conference_uid).ok_or(LiveError::NotFound("call"))?;
            (live.caller.call_uid.clone(), live.conference_uid.clone(), live.leg, conf.room.clone())
        };
        let group = match &breakout_uid {
            Some(uid) => {
                let breakout = self
                    .inner
                    .store
                    .find::<Breakout>(uid)
                    .await
                    .map_err(|e| LiveError::Unavailable(e.to_string()))?
                    .ok_or(LiveError::NotFound("breakout"))?;
                if breakout.call_uid != call_uid {
                    return Err(LiveError::Invalid("the breakout belongs to another call".into()));
                }
                let id =
                    self.breakout_id(&conference_uid, uid).ok_or(LiveError::NotFound("call"))?;
                room.breakout_private(id, breakout.private)
                    .await
                    .map_err(|e| LiveError::Unavailable(e.to_string()))?;
                Some(id)
            }
            None => None,
        };
        room.change(leg, MemberChange::Breakout(group))
            .await
            .map_err(|e| LiveError::Unavailable(e.to_string()))?;
        if let Some(live) = self.state().callers.get_mut(caller_uid) {
            // An explicit move takes the caller out of the green room.
            live.green = false;
        }
        let moved = self
            .set_caller(caller_uid, CallerField::Breakout, move |c| {
                c.breakout_uid = breakout_uid;
                c.breakout_time = Some(Time::now());
            })
            .await;
        self.update_music_on_hold(&conference_uid);
        moved.map(drop).ok_or(LiveError::NotFound("caller"))
    }

    /// Whether a caller of `role` joining conference `conference_uid` waits in
    /// the green room; if so, queues its member's move there. Called with the
    /// table locked, as [`Engine::apply_green_room`] decides under the same
    /// lock, so a joiner cannot miss the call going live.
    /// MaestroConference's green room lets presenters, assistants and operators
    /// talk among themselves before the call goes live: they hear only each
    /// other, and the main room does not hear them.
    pub(super) fn enter_green_room(
        state: &State,
        conference_uid: &str,
        leg: LegKey,
        role: Role,
    ) -> bool {
        let Some(conf) = state.conferences.get(conference_uid) else { return false };
        if !(conf.green_room && green_room_role(role)) {
            return false;
        }
        let queued = conf
            .room
            .try_breakout_private(GREEN_ROOM, true)
            .and_then(|()| conf.room.try_change(leg, MemberChange::Breakout(Some(GREEN_ROOM))));
        queued.is_ok()
    }

    /// Applies a call's green-room flag to the callers in it: off sends
    /// everyone waiting there to the main room (the call goes live); on sends
    /// the presenters, assistants and operators of the main room there.
    async fn apply_green_room(&self, call_uid: &str) {
        let Ok(Some(call)) = self.inner.store.find::<Call>(call_uid).await else { return };
        let (conference_uid, moved) = {
            let mut guard = self.state();
            let state = &mut *guard;
            let Some((conference_uid, conf)) =
                state.conferences.iter_mut().find(|(_, c)| c.call_uid == call_uid)
            else {
                return;
            };
            conf.green_room = call.greenroom;
            let room = conf.room.clone();
            let conference_uid = conference_uid.clone();
            if call.greenroom {
                let _ = room.try_breakout_private(GREEN_ROOM, true);
            }
            let group = call.greenroom.then_some(GREEN_ROOM);
            let mut moved = 0;
            for live in state.callers.values_mut().filter(|c| c.caller.call_uid == call_uid) {
                let goes = if call.greenroom {
                    !live.green
                        && live.caller.breakout_uid.is_none()
                        && green_room_role(live.caller.role)
                } else {
                    live.green
                };
                if goes && room.try_change(live.leg, MemberChange::Breakout(group)).is_ok() {
                    live.green = call.greenroom;
                    moved += 1;
                }
            }
            (conference_uid, moved)
        };
        self.update_music_on_hold(&conference_uid);
        tracing::info!(call = %call_uid, on = call.greenroom, moved, "green room");
    }

    /// The room's number for a breakout of a live conference, given on first use.
    fn breakout_id(&self, conference_uid: &str, breakout_uid: &str) -> Option<BreakoutId> {
        let mut state = self.state();
        let conf = state.conferences.get_mut(conference_uid)?;
        let next = BreakoutId(conf.breakouts.len() as u32 + 1);
        Some(*conf.breakouts.entry(breakout_uid.to_owned()).or_insert(next))
    }

    /// Applies breakout changes made through the APIs (a group made private or
    /// public, a call's green room turned on or off) to live rooms.
    pub(super) async fn breakout_watch(self) {
        let mut events = self.inner.events.subscribe();
        loop {
            let breakout = match events.recv().await {
                Ok(event) => match &*event {
                    Event::BreakoutUpdated { conference_uid, breakout } => {
                        Some((conference_uid.clone(), breakout.clone()))
                    }
                    Event::CallUpdated { call_uid, field } if field == "greenroom" => {
                        self.apply_green_room(call_uid).await;
                        None
                    }
                    _ => None,
                },
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "breakout watch fell behind the event bus");
                    None
                }
                Err(RecvError::Closed) => return,
            };
            let Some((conference_uid, breakout)) = breakout else { continue };
            let live = {
                let state = self.state();
                state
                    .conferences
                    .get(&conference_uid)
                    .and_then(|c| c.breakouts.get(&breakout.uid).map(|id| (c.room.clone(), *id)))
            };
            if let Some((room, id)) = live {
                let _ = room.breakout_private(id, breakout.private).await;
            }
        }
    }

    /// Moves a live caller into another conference: out of its room and call
    /// session, into the other's (started if it has none), with the same caller
    /// UID, dialog and settings. The destination's admission rules apply (locked,
    /// full, outside its reservation). A breakout group and the green room are
    /// left behind, and a recording of the caller ends with the old room.
    pub(super) async fn relocate(
        &self,
        caller_uid: &str,
        conference_uid: &str,
    ) -> Result<(), LiveError> {
        let target: Conference = self
            .inner
            .store
            .find(conference_uid)
            .await
            .map_err(|e| LiveError::Unavailable(e.to_string()))?
            .ok_or(LiveError::NotFound("conference"))?;
        let (from_uid, from_room, leg) = {
            let state = self.state();
            let live = state.callers.get(caller_uid).ok_or(LiveError::NotFound("caller"))?;
            let room = state.conferences.get(&live.conference_uid).map(|c| c.room.clone());
            (live.conference_uid.clone(), room, live.leg)
        };
        if from_uid == target.uid {
            return Ok(());
        }
        let from_room = from_room.ok_or(LiveError::NotFound("call"))?;
        let seat = self.admission(&target).await.map_err(|refusal| refusal.as_live_error())?;
        // From here the caller is pending in the target: every failure gives that back.
        let (room, call_uid) = self
            .open_conference(&target)
            .await
            .map_err(|e| LiveError::Unavailable(e.to_string()))?;
        let leg_io = match from_room.leave(leg).await {
            Ok(Some(leg_io)) => leg_io,
            Ok(None) | Err(_) => {
                self.abandon(&target.uid).await;
                return Err(LiveError::NotFound("caller"));
            }
        };

        // One step in the table: out of the old conference, a member of the new.
        let moved = {
            let mut guard = self.state();
            let state = &mut *guard;
            match state.callers.get_mut(caller_uid) {
                None => None,
                Some(live) => {
                    let left = live.caller.clone();
                    live.conference_uid = target.uid.clone();
                    live.caller.call_uid = call_uid.clone();
                    live.caller.breakout_uid = None;
                    live.green = false;
                    let recording = live.recording.take();
                    let from_empty = match state.conferences.get_mut(&from_uid) {
                        Some(conf) if conf.call_uid == left.call_uid => {
                            conf.members = conf.members.saturating_sub(1);
                            conf.members == 0 && conf.pending == 0
                        }
                        _ => false,
                    };
                    entered(state, &target.uid);
                    seat.release(state);
                    Some((left, recording, from_empty))
                }
            }
        };
        let Some((left, recording, from_empty)) = moved else {
            // Hung up on the way: its task has ended and counted it out.
            self.abandon(&target.uid).await;
            return Err(LiveError::NotFound("caller"));
        };
        self.update_music_on_hold(&from_uid);
        if let Some(recording_uid) = recording {
            // The old room finalised the file as the leg left it.
            self.recording_ended(&recording_uid).await;
        }
        let mut gone = left.clone();
        gone.active = false;
        self.inner
            .events
            .publish(Event::CallerLeft { conference_uid: from_uid.clone(), caller: gone });
        if from_empty {
            self.close_session(&from_uid).await;
        }

        // Into the new room, as it was: muted stays muted, volumes stay.
        if let Err(e) = room.join(leg_io).await {
            tracing::error!(error = %e, caller = %caller_uid, "moved caller could not join; hanging up");
            let control = self.state().callers.get(caller_uid).map(|c| c.control.clone());
            if let Some(control) = control {
                let _ = control.hangup().await;
            }
            return Err(LiveError::Unavailable(e.to_string()));
        }
        let changes = [
            MemberChange::Mute(left.mute),
            MemberChange::Deaf(left.deaf),
            MemberChange::Mike(left.mike),
            MemberChange::ListenOnly(left.listen_only),
        ];
        for change in changes {
            let _ = room.change(leg, change).await;
        }
        for (step, inbound) in [(left.volume_in, true), (left.volume_out, false)] {
            if let Ok(step) = VolumeStep::new(step) {
                let change = if inbound {
                    MemberChange::VolumeIn(step)
                } else {
                    MemberChange::VolumeOut(step)
                };
                let _ = room.change(leg, change).await;
            }
        }
        let caller = self.state().callers.get(caller_uid).map(|c| c.caller.clone());
        let Some(caller) = caller else {
            // Hung up while joining: its task already left the table (and tried
            // to take the leg out of this room before it was in).
            let _ = room.leave(leg).await;
            return Err(LiveError::NotFound("caller"));
        };
        self.update_music_on_hold(&target.uid);
        if let Err(e) = self.inner.store.update(&caller).await {
            tracing::error!(error = %e, caller = %caller_uid, "the move was not stored");
        }
        tracing::info!(caller = %caller_uid, from = %from_uid, to = %target.uid, "caller moved");
        self.inner
            .events
            .publish(Event::CallerJoined { conference_uid: target.uid.clone(), caller });
        Ok(())
    }
}
