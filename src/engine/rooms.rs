//! Moving live callers: into a breakout group of their call and back, and from
//! one conference into another (TCP 4011 MOVEUSER); breakout groups made
//! private or open; a call's green room and talking events switched. The leg
//! never leaves the process: it is handed from room to room, so the caller
//! hears no gap beyond a tick and keeps its SIP dialog, its caller UID and its
//! settings.

use tutti_api::Time;
use tutti_api::live::{CallUpdate, CallerField, Event};
use tutti_api::model::{Breakout, Conference};
use tutti_api::ops::{Kind, OpsError, OpsResult};
use tutti_api::store::CallFlag;
use tutti_media::io::LegKey;
use tutti_media::mixer::VolumeStep;
use tutti_media::room::{MemberChange, RoomHandle};

use super::core::Engine;
use super::registry::GREEN_ROOM;

fn room_failed(e: tutti_media::room::RoomError) -> OpsError {
    OpsError::internal("room command failed", e)
}

impl Engine {
    /// Puts a caller into one of its call's breakout groups (`Some`) or back
    /// into the main room (`None`).
    pub(super) async fn set_breakout(
        &self,
        caller_uid: &str,
        breakout_uid: Option<String>,
    ) -> OpsResult<()> {
        let (call_uid, conference_uid, leg, room) = {
            let state = self.state();
            let live =
                state.live.callers.get(caller_uid).ok_or(OpsError::NotFound(Kind::Caller))?;
            let conf = state
                .live
                .conferences
                .get(&live.conference_uid)
                .ok_or(OpsError::NotFound(Kind::Call))?;
            (
                live.caller.call_uid.clone(),
                live.conference_uid.clone(),
                live.leg,
                conf.io.room.clone(),
            )
        };
        let group = match &breakout_uid {
            Some(uid) => {
                let breakout = self
                    .inner
                    .store
                    .find::<Breakout>(uid)
                    .await?
                    .ok_or(OpsError::NotFound(Kind::Breakout))?;
                if breakout.call_uid != call_uid {
                    return Err(OpsError::invalid("breakout", "belongs to another call"));
                }
                let id = self
                    .state()
                    .live
                    .breakout_id(&conference_uid, uid)
                    .ok_or(OpsError::NotFound(Kind::Call))?;
                room.breakout_private(id, breakout.private).await.map_err(room_failed)?;
                Some(id)
            }
            None => None,
        };
        room.change(leg, MemberChange::Breakout(group)).await.map_err(room_failed)?;
        if let Some(live) = self.state().live.callers.get_mut(caller_uid) {
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
        moved.map(drop).ok_or(OpsError::NotFound(Kind::Caller))
    }

    /// Makes a breakout group private (it does not hear the main room) or open:
    /// stored, applied to its live room, announced.
    pub(super) async fn breakout_private(
        &self,
        breakout_uid: &str,
        private: bool,
    ) -> OpsResult<()> {
        let store = &self.inner.store;
        let mut breakout = store
            .find::<Breakout>(breakout_uid)
            .await?
            .ok_or(OpsError::NotFound(Kind::Breakout))?;
        store.set_breakout_private(breakout_uid, private).await?;
        breakout.private = private;
        let live = {
            let mut state = self.state();
            let conference = state.live.conference_of_call(&breakout.call_uid).map(str::to_owned);
            conference.map(|uid| {
                let id = state.live.breakout_id(&uid, breakout_uid);
                let room = state.live.conferences.get(&uid).map(|c| c.io.room.clone());
                (uid, id.zip(room))
            })
        };
        let conference_uid = match live {
            Some((uid, Some((id, room)))) => {
                room.breakout_private(id, private).await.map_err(room_failed)?;
                uid
            }
            Some((uid, None)) => uid,
            // The call has ended: the flag is stored, nothing is live.
            None => store
                .owner_of_call(&breakout.call_uid)
                .await?
                .map(|o| o.conference_uid)
                .unwrap_or_default(),
        };
        self.inner.events.publish(Event::BreakoutUpdated { conference_uid, breakout });
        Ok(())
    }

    /// Changes a live call's green room or talking events: stored, applied,
    /// announced.
    pub(super) async fn call_update(&self, call_uid: String, update: CallUpdate) -> OpsResult<()> {
        let conference_uid = self
            .state()
            .live
            .conference_of_call(&call_uid)
            .map(str::to_owned)
            .ok_or(OpsError::NotFound(Kind::Call))?;
        let (flag, on) = match update {
            CallUpdate::GreenRoom(on) => (CallFlag::GreenRoom, on),
            CallUpdate::TalkingEvents(on) => (CallFlag::Talking, on),
        };
        self.inner.store.set_call_flag(&call_uid, flag, on).await?;
        match update {
            CallUpdate::GreenRoom(on) => self.apply_green_room(&call_uid, on),
            CallUpdate::TalkingEvents(on) => {
                if let Some(conf) = self.state().live.conferences.get_mut(&conference_uid) {
                    conf.talking_events = on;
                }
            }
        }
        self.inner.events.publish(Event::CallUpdated {
            conference_uid,
            call_uid,
            field: update.field().into(),
        });
        Ok(())
    }

    /// Queues a joining member's move into the green room (a private group
    /// only the people running the call hear). `false` when the room is gone.
    pub(super) fn queue_green_room(room: &RoomHandle, leg: LegKey) -> bool {
        room.try_breakout_private(GREEN_ROOM, true)
            .and_then(|()| room.try_change(leg, MemberChange::Breakout(Some(GREEN_ROOM))))
            .is_ok()
    }

    /// Applies a call's green-room flag to the callers in it: off sends
    /// everyone waiting there to the main room (the call goes live); on sends
    /// the presenters, assistants and operators of the main room there. Decided
    /// under the same lock as joiners decide, so none misses the change.
    fn apply_green_room(&self, call_uid: &str, on: bool) {
        let conference_uid = {
            let mut state = self.state();
            let Some((conference_uid, moved)) = state.live.set_green_room(call_uid, on) else {
                return;
            };
            let Some(room) = state.live.conferences.get(&conference_uid).map(|c| c.io.room.clone())
            else {
                return;
            };
            if on {
                let _ = room.try_breakout_private(GREEN_ROOM, true);
            }
            let group = on.then_some(GREEN_ROOM);
            for leg in &moved {
                if let Err(e) = room.try_change(*leg, MemberChange::Breakout(group)) {
                    tracing::warn!(error = %e, leg, "green room move not queued");
                }
            }
            tracing::info!(call = %call_uid, on, moved = moved.len(), "green room");
            conference_uid
        };
        self.update_music_on_hold(&conference_uid);
    }

    /// Moves a live caller into another conference: out of its room and call
    /// session, into the other's (started if it has none), with the same caller
    /// UID, dialog and settings. The destination's admission rules apply (locked,
    /// full, outside its reservation). A breakout group and the green room are
    /// left behind, and a recording of the caller ends with the old room.
    pub(super) async fn relocate(&self, caller_uid: &str, conference_uid: &str) -> OpsResult<()> {
        let target: Conference = self
            .inner
            .store
            .find(conference_uid)
            .await?
            .ok_or(OpsError::NotFound(Kind::Conference))?;
        let (from_uid, from_room, leg, recorded) = {
            let state = self.state();
            let live =
                state.live.callers.get(caller_uid).ok_or(OpsError::NotFound(Kind::Caller))?;
            let room = state.live.conferences.get(&live.conference_uid).map(|c| c.io.room.clone());
            (live.conference_uid.clone(), room, live.leg, live.recording.is_some())
        };
        if from_uid == target.uid {
            return Ok(());
        }
        let from_room = from_room.ok_or(OpsError::NotFound(Kind::Call))?;
        let seat = self.admission(&target).await.map_err(|r| r.into_ops_error())?;
        // From here the caller is pending in the target: every failure gives that back.
        let (room, call_uid) = self
            .open_conference(&target)
            .await
            .map_err(|e| OpsError::internal("conference not opened", e))?;
        if recorded {
            // The caller's file is closed before its end is stored.
            let _ = from_room.stop_recording_member(leg).await;
        }
        let leg_io = match from_room.leave(leg).await {
            Ok(Some(leg_io)) => leg_io,
            Ok(None) | Err(_) => {
                self.abandon(&target.uid).await;
                return Err(OpsError::NotFound(Kind::Caller));
            }
        };

        // One step in the table: out of the old conference, a member of the new.
        let held_seat = seat.used();
        let moved = self.state().live.relocate(caller_uid, &target.uid, &call_uid, held_seat);
        let Some((left, recording, from_empty)) = moved else {
            // Hung up on the way: its task has ended and counted it out.
            self.abandon(&target.uid).await;
            return Err(OpsError::NotFound(Kind::Caller));
        };
        self.update_music_on_hold(&from_uid);
        if let Some(recording_uid) = recording {
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
            let control = self.state().live.callers.get(caller_uid).map(|c| c.io.control.clone());
            if let Some(control) = control {
                let _ = control.hangup().await;
            }
            return Err(room_failed(e));
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
        let caller = self.state().live.callers.get(caller_uid).map(|c| c.caller.clone());
        let Some(caller) = caller else {
            // Hung up while joining: its task already left the table (and tried
            // to take the leg out of this room before it was in).
            let _ = room.leave(leg).await;
            return Err(OpsError::NotFound(Kind::Caller));
        };
        self.update_music_on_hold(&target.uid);
        let caller = self.store_live_fields(caller).await;
        tracing::info!(caller = %caller_uid, from = %from_uid, to = %target.uid, "caller moved");
        self.inner
            .events
            .publish(Event::CallerJoined { conference_uid: target.uid.clone(), caller });
        Ok(())
    }
}
