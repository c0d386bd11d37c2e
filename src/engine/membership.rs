//! Membership: admitting a caller (a seat held until it joins), opening a
//! conference's live session, joining and leaving, closing the session after
//! the last caller, and changing a live caller. The engine writes only a
//! caller's live fields; the descriptive ones belong to the operations layer.

use tutti_api::live::{CallerField, Event};
use tutti_api::model::{Call, Caller, Conference, ConferenceStatus, EndReason, Role, RoleFlags};
use tutti_api::ops::{Kind, OpsError};
use tutti_api::rules::Admission;
use tutti_api::{Time, model::Recording};
use tutti_media::io::LegIo;
use tutti_media::room::{MemberChange, PlayTarget, RoomHandle};
use tutti_media::wav::Prompt as Audio;
use tutti_sip::ua::CallControl;
use tutti_sip::ua::HangupReason;

use super::core::{CallInput, CallerIo, ConferenceIo, Engine};
use super::keypad::{Keypad, KeypadConfig};
use super::registry::{LiveCaller, LiveConference};

/// Why a call was not joined.
pub(super) enum Refusal {
    /// A SIP status that is not about the conference's rules: 404 (no such
    /// number), 403 (wrong PIN), 500 and 503 (our own failures).
    Status(u16),
    /// The conference's rules turned the caller away.
    Admission(Admission),
    /// Refused after it was answered (PIN entry failed, the conference refused
    /// the DID caller): hang up.
    HangUp,
    /// The call ended or failed on the way; nothing more to send.
    Gone,
}

impl Refusal {
    /// The refusal as an operation error, for a caller moved or dialled in by
    /// an interface: its real reason.
    pub(super) fn into_ops_error(self) -> OpsError {
        match self {
            Refusal::Admission(admission) => {
                admission.refusal().unwrap_or(OpsError::Ended(Kind::Conference))
            }
            Refusal::Status(status) => {
                OpsError::internal("conference unavailable", format!("SIP status {status}"))
            }
            Refusal::HangUp | Refusal::Gone => OpsError::NotFound(Kind::Caller),
        }
    }
}

/// A place in a conference kept for an admitted caller until it joins; given
/// back when dropped.
pub(super) struct Seat {
    engine: Engine,
    /// `None` once released or used.
    conference_uid: Option<String>,
}

impl Seat {
    /// The seat becomes a member's place: nothing to give back.
    pub(super) fn used(mut self) -> bool {
        self.conference_uid.take().is_some()
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(uid) = self.conference_uid.take() {
            self.engine.state().live.release_seat(&uid);
        }
    }
}

impl Engine {
    /// Whether `conference` admits one more caller now. An admitted caller
    /// holds a [`Seat`] until it joins (or gives up), so callers answered or
    /// dialled at the same moment cannot overfill the conference.
    pub(super) async fn admission(&self, conference: &Conference) -> Result<Seat, Refusal> {
        let reservations =
            self.inner.store.reservations_of(&conference.uid).await.map_err(|e| {
                tracing::error!(error = %e, "admission: reservations unreadable");
                Refusal::Status(500)
            })?;
        self.state()
            .live
            .admit(conference, &reservations, Time::now())
            .map_err(Refusal::Admission)?;
        Ok(Seat { engine: self.clone(), conference_uid: Some(conference.uid.clone()) })
    }

    /// Joins a connected leg to a conference as `caller` (whose call_uid is set
    /// here): starts the conference's room and call session if it had none,
    /// applies the role's entry settings, stores the caller and announces it.
    /// The caller's `seat`, if it holds one, becomes its place in the room.
    pub(super) async fn join(
        &self,
        conference: &Conference,
        mut caller: Caller,
        leg: LegIo,
        control: CallControl,
        seat: Option<Seat>,
        spoken_name: Option<Audio>,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let (room, call_uid) = self.open_conference(conference).await?;
        caller.call_uid = call_uid;
        let io = CallerIo { leg_handle: leg.handle(), control, name: spoken_name };
        match self.join_opened(conference, caller, &room, leg, io, seat).await {
            Ok(uid) => {
                if conference.recording {
                    self.record_automatically(&conference.uid).await;
                }
                Ok(uid)
            }
            Err(e) => {
                self.abandon(&conference.uid).await;
                Err(e)
            }
        }
    }

    /// The rest of [`Engine::join`], once the conference is open and counts the
    /// caller as pending. Fails only before the caller becomes a member.
    async fn join_opened(
        &self,
        conference: &Conference,
        mut caller: Caller,
        room: &RoomHandle,
        leg: LegIo,
        io: CallerIo,
        seat: Option<Seat>,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let store = &self.inner.store;
        let flags = store
            .call_role_settings(&caller.call_uid)
            .await?
            .into_iter()
            .find(|f| f.role == caller.role)
            .unwrap_or(RoleFlags::default_for(caller.role));
        caller.mike = flags.mike;
        caller.deaf = flags.deaf;
        caller.mute =
            flags.mute || (conference.mute_non_moderator && caller.role != Role::Moderator);
        store.insert(&caller).await?;
        let key = leg.key();
        room.join(leg).await?;
        for change in [
            MemberChange::Mute(caller.mute),
            MemberChange::Deaf(caller.deaf),
            MemberChange::Mike(caller.mike),
        ] {
            if let Err(e) = room.change(key, change).await {
                tracing::warn!(error = %e, leg = key, "entry setting not applied");
            }
        }
        let caller_uid = caller.uid.clone();
        let spoken_name = io.name.clone();
        {
            let mut state = self.state();
            // Decided under the same lock as the call going live, so a joiner
            // cannot miss it.
            let green = state.live.joins_green_room(&conference.uid, caller.role)
                && Engine::queue_green_room(room, key);
            let held_seat = seat.is_some_and(Seat::used);
            let live = LiveCaller {
                caller: caller.clone(),
                conference_uid: conference.uid.clone(),
                leg: key,
                green,
                recording: None,
                talking: false,
                io,
            };
            state.live.enter(&caller_uid, live, held_seat);
            if let Some(entry) = state.legs.get_mut(&key) {
                entry.1 = Some(caller_uid.clone());
            }
        }
        self.update_music_on_hold(&conference.uid);
        // Read again: `*94` may have turned notifications off since the caller
        // was admitted (PIN and name entry take a while).
        let now = store.find::<Conference>(&conference.uid).await.ok().flatten();
        let settings = now.as_ref().unwrap_or(conference);
        if settings.entry_notifications {
            let mut sound_ms = 0;
            if settings.beep_on_entry {
                let (sound, ms) = self.entry_sound(settings).await;
                sound_ms = ms;
                self.play_internal(room, PlayTarget::Room, sound).await;
            }
            if let Some(name) = spoken_name.as_ref().filter(|_| settings.announce_caller_name) {
                self.announce(room, name, true, sound_ms).await;
            }
        }
        tracing::info!(conference = %conference.uid, caller = %caller_uid, role = %caller.role, "caller joined");
        self.inner
            .events
            .publish(Event::CallerJoined { conference_uid: conference.uid.clone(), caller });
        Ok(caller_uid)
    }

    /// The conference's room and call session, started if it has none. The
    /// caller counts as pending until it enters or [`Engine::abandon`]s.
    pub(super) async fn open_conference(
        &self,
        conference: &Conference,
    ) -> Result<(RoomHandle, String), Box<dyn std::error::Error + Send + Sync>> {
        if let Some((io, call_uid)) = self.state().live.open_existing(&conference.uid) {
            return Ok((io.room, call_uid));
        }
        // One opener at a time; whoever waited finds the session already open.
        let _opening = self.inner.opening.lock().await;
        if let Some((io, call_uid)) = self.state().live.open_existing(&conference.uid) {
            return Ok((io.room, call_uid));
        }
        let store = &self.inner.store;
        let call = Call::new(conference, Time::now());
        store.start_call(&call).await?;
        let room = self.new_room()?;
        let music_on_hold = self.music_on_hold(conference).await;
        // Status only: settings changed meanwhile (a lock) are kept; CANCEL stays.
        store
            .set_conference_status(&conference.uid, None, ConferenceStatus::Active, Time::now())
            .await?;
        // Under `opening` nobody else can have opened it; kept as a safeguard.
        let session = LiveConference::new(
            ConferenceIo { room, music_on_hold, music_sound: conference.music_on_hold_sound },
            call.uid.clone(),
            call.greenroom,
            call.talking,
        );
        let (io, call_uid, won) = self.state().live.open(&conference.uid, session);
        if won {
            self.inner.events.publish(Event::CallStarted {
                conference_uid: conference.uid.clone(),
                call_uid: call.uid.clone(),
            });
        } else {
            let _ = store.delete::<Call>(&call.uid).await;
        }
        Ok((io.room, call_uid))
    }

    /// A caller's life in its conference: digits through the keypad map, media
    /// changes, until hang-up or silence; says why it ended.
    pub(super) async fn in_conference(
        &self,
        caller_uid: &str,
        inputs: &mut tokio::sync::mpsc::Receiver<CallInput>,
    ) -> EndReason {
        let mut keypad = Keypad::new(KeypadConfig::default());
        loop {
            let deadline = keypad.poll_timeout();
            let input = tokio::select! {
                input = inputs.recv() => input,
                () = super::core::sleep_until_option(deadline) => {
                    if let Some(action) = keypad.handle_timeout(std::time::Instant::now()) {
                        self.key_action(caller_uid, action).await;
                    }
                    continue;
                }
            };
            match input {
                None => return EndReason::Hangup,
                Some(CallInput::Hangup(reason)) => {
                    tracing::info!(caller = %caller_uid, ?reason, "hang-up");
                    return end_reason(&reason);
                }
                Some(CallInput::Silent { held, for_ms }) => {
                    tracing::info!(caller = %caller_uid, held, silent_ms = for_ms, "no media from the phone: hanging up");
                    return EndReason::RtpTimeout;
                }
                Some(CallInput::Digit(digit)) => {
                    let Some(standing) = self.digit(caller_uid, digit).await else { continue };
                    if let Some(action) =
                        keypad.handle_digit(std::time::Instant::now(), digit, standing)
                    {
                        self.key_action(caller_uid, action).await;
                    }
                }
                Some(CallInput::MediaChanged(negotiated)) => {
                    self.media_changed(caller_uid, &negotiated);
                }
                Some(CallInput::Progress(_) | CallInput::Answered) => {}
            }
        }
    }

    /// A caller leaves: out of the room, stored as ended (with `reason`),
    /// announced; the last one out closes the call session. Does nothing for a
    /// caller already gone, so a caller dropped by an interface (gone at once)
    /// and its call task (when the BYE is done) may both call it.
    pub(super) async fn leave(&self, caller_uid: &str, reason: EndReason) {
        let left = {
            let mut state = self.state();
            let Some(left) = state.live.leave(caller_uid) else { return };
            state.legs.remove(&left.caller.leg);
            state.energy.remove(caller_uid);
            left
        };
        let live = left.caller;
        let quality = super::media::quality(&live.io.leg_handle);
        if let Some(io) = &left.room {
            if live.recording.is_some() {
                // The file is closed before its end is stored, so whoever reads
                // the stored end finds the whole file.
                let _ = io.room.stop_recording_member(live.leg).await;
            }
            let _ = io.room.leave(live.leg).await;
            if let Some(name) = live.io.name.as_ref().filter(|_| !left.last) {
                let settings = self.inner.store.find::<Conference>(&live.conference_uid).await;
                if let Ok(Some(c)) = settings
                    && c.announce_caller_name
                    && c.entry_notifications
                {
                    self.announce(&io.room, name, false, 0).await;
                }
            }
        }
        self.update_music_on_hold(&live.conference_uid);
        if let Some(recording_uid) = &live.recording {
            self.recording_ended(recording_uid).await;
        }
        let mut caller = live.caller;
        caller.active = false;
        caller.end_time = Some(Time::now());
        caller.end_reason = Some(reason);
        let caller = self.store_live_fields(caller).await;
        tracing::info!(
            conference = %live.conference_uid,
            caller = %caller_uid,
            %reason,
            packets = quality.packets_received,
            loss_percent = quality.loss_percent,
            jitter_ms = quality.jitter_ms,
            rtt_ms = quality.rtt_ms,
            mos = quality.mos,
            "caller left"
        );
        self.inner
            .events
            .publish(Event::CallerLeft { conference_uid: live.conference_uid.clone(), caller });
        if left.last {
            self.close_session(&live.conference_uid).await;
        }
    }

    /// Writes a caller's live fields and returns the stored row as it is now
    /// (with the descriptive fields an interface wrote), for the event.
    pub(super) async fn store_live_fields(&self, caller: Caller) -> Caller {
        let store = &self.inner.store;
        if let Err(e) = store.update_caller_live(&caller).await {
            tracing::error!(error = %e, caller = %caller.uid, "caller change not stored");
            return caller;
        }
        match store.find::<Caller>(&caller.uid).await {
            Ok(Some(stored)) => stored,
            _ => caller,
        }
    }

    /// A pending caller gave up before becoming a member (join failed, hung up
    /// mid-move): the session closes if that left it empty.
    pub(super) async fn abandon(&self, conference_uid: &str) {
        self.state().live.abandon(conference_uid);
        self.close_session(conference_uid).await;
    }

    /// Ends a conference's live call session once nobody is left.
    pub(super) async fn close_session(&self, conference_uid: &str) {
        let Some(live) = self.state().live.close_if_empty(conference_uid) else { return };
        if live.recording.is_some() {
            // The room's file is closed before its end is stored.
            let _ = live.io.room.stop_recording().await;
        }
        let store = &self.inner.store;
        // The room ends with its last caller, and with it any recording.
        for recording in store.recordings_of(conference_uid).await.unwrap_or_default() {
            if recording.ended_at.is_none() {
                self.recording_ended(&recording.uid).await;
            }
        }
        let now = Time::now();
        // Only the status and the end: fields an interface wrote stay.
        if let Err(e) = store.end_call(&live.call_uid, now).await {
            tracing::error!(error = %e, call = %live.call_uid, "the call's end not stored");
        }
        let idle = store.set_conference_status(
            conference_uid,
            Some(ConferenceStatus::Active),
            ConferenceStatus::Idle,
            now,
        );
        if let Err(e) = idle.await {
            tracing::error!(error = %e, conference = %conference_uid, "status after the call not stored");
        }
        self.inner.events.publish(Event::CallEnded {
            conference_uid: conference_uid.to_owned(),
            call_uid: live.call_uid,
        });
    }

    /// Changes a live caller: the room applies what affects audio, the store
    /// keeps the live fields, the bus announces it.
    pub(super) async fn set_caller(
        &self,
        caller_uid: &str,
        field: CallerField,
        change: impl FnOnce(&mut Caller),
    ) -> Option<Caller> {
        let (caller, conference_uid, leg, room) = {
            let mut state = self.state();
            let live = state.live.callers.get_mut(caller_uid)?;
            change(&mut live.caller);
            let snapshot = (live.caller.clone(), live.conference_uid.clone(), live.leg);
            let room = state.live.conferences.get(&snapshot.1).map(|c| c.io.room.clone());
            (snapshot.0, snapshot.1, snapshot.2, room)
        };
        if let Some(room) = room {
            let change = match field {
                CallerField::Mute => Some(MemberChange::Mute(caller.mute)),
                CallerField::Deaf => Some(MemberChange::Deaf(caller.deaf)),
                CallerField::Mike => Some(MemberChange::Mike(caller.mike)),
                CallerField::ListenOnly => Some(MemberChange::ListenOnly(caller.listen_only)),
                _ => None,
            };
            if let Some(change) = change
                && let Err(e) = room.change(leg, change).await
            {
                tracing::warn!(error = %e, caller = %caller_uid, "room change failed");
            }
        }
        let caller = self.store_live_fields(caller).await;
        self.inner.events.publish(Event::CallerUpdated {
            conference_uid,
            caller: caller.clone(),
            field,
        });
        Some(caller)
    }

    /// Stores and announces the end of a recording the room already finished.
    pub(super) async fn recording_ended(&self, recording_uid: &str) {
        {
            let mut state = self.state();
            for conf in state.live.conferences.values_mut() {
                if conf.recording.as_deref() == Some(recording_uid) {
                    conf.recording = None;
                }
            }
        }
        let store = &self.inner.store;
        let Ok(Some(mut recording)) = store.find::<Recording>(recording_uid).await else {
            return;
        };
        if recording.ended_at.is_some() {
            return;
        }
        recording.ended_at = Some(Time::now());
        match store.update(&recording).await {
            Ok(()) => self.inner.events.publish(Event::RecordingStopped { recording }),
            Err(e) => tracing::error!(error = %e, "recording end not stored"),
        }
    }
}

/// What the signalling's end of a call means for the caller's record.
fn end_reason(reason: &HangupReason) -> EndReason {
    match reason {
        HangupReason::RemoteBye | HangupReason::Cancelled | HangupReason::NotConnected => {
            EndReason::Hangup
        }
        HangupReason::SessionExpired => EndReason::SessionExpired,
        HangupReason::AckTimeout => EndReason::NoAck,
        HangupReason::Local | HangupReason::Rejected(_) => EndReason::Dropped,
        HangupReason::Error(_) => EndReason::Error,
    }
}
