//! The engine's side of `tutti_api::live::LiveControl`: what the facades (TCP
//! 4011 today) may ask of live calls. Each method checks its target, acts on
//! the room and the signalling, and leaves the outcome to events.

use tutti_api::live::{
    CallerField, CallerUpdate, DialRequest, Event, LiveControl, LiveError, LiveFuture, Media,
    PlayRequest, PlaybackMedia, PlaybackState, Target,
};
use tutti_api::model::{Caller, Conference, Direction, Recording};
use tutti_api::{Time, secret};
use tutti_media::mixer::VolumeStep;
use tutti_media::room::{MemberChange, PlayTarget, RoomError, RoomHandle};
use tutti_media::source::FrameSource;
use tutti_media::tts::{Speech, Tts};
use tutti_media::wav::{Player, Prompt};

use super::core::{Engine, LivePlayback};

/// A change to apply to a live caller's record.
type CallerChange = Box<dyn FnOnce(&mut Caller) + Send>;

impl Engine {
    /// The room a target plays in, and where in it.
    fn resolve_target(&self, target: &Target) -> Result<(RoomHandle, PlayTarget), LiveError> {
        let state = self.state();
        match target {
            Target::Caller(uid) => {
                let live = state.callers.get(uid).ok_or(LiveError::NotFound("caller"))?;
                let room = state
                    .conferences
                    .get(&live.conference_uid)
                    .ok_or(LiveError::NotFound("call"))?;
                Ok((room.room.clone(), PlayTarget::Member(live.leg)))
            }
            Target::Conference(uid) => {
                let room = state.conferences.get(uid).ok_or(LiveError::NotFound("call"))?;
                Ok((room.room.clone(), PlayTarget::Room))
            }
        }
    }

    async fn source_for(
        &self,
        media: &Media,
        looped: bool,
    ) -> Result<(Box<dyn FrameSource>, PlaybackMedia), LiveError> {
        match media {
            Media::File(path) => {
                let audio =
                    tutti_media::wav::read(path).map_err(|e| LiveError::Invalid(e.to_string()))?;
                let rate = audio.sample_rate;
                let prompt = Prompt::from_audio(audio, rate)
                    .map_err(|e| LiveError::Invalid(e.to_string()))?;
                let name =
                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                Ok((Box::new(Player::new(prompt, looped)), PlaybackMedia::File(name)))
            }
            Media::Tts(text) => {
                let tts = Tts::new(self.inner.config.tts_dir.clone());
                let prompt = tts
                    .prompt(Speech::new(text.clone()), 16_000)
                    .await
                    .map_err(|e| LiveError::Unavailable(e.to_string()))?;
                Ok((Box::new(Player::new(prompt, looped)), PlaybackMedia::Tts))
            }
        }
    }

    async fn play_request(&self, request: PlayRequest) -> Result<(), LiveError> {
        let (room, target) = self.resolve_target(&request.target)?;
        let (source, label) = self.source_for(&request.media, request.looped).await?;
        let id = self.next_id();
        self.state().playbacks.insert(
            id,
            LivePlayback { target: request.target.clone(), media: label.clone(), reported: true },
        );
        room.play(id, target, source).await.map_err(|e| LiveError::Unavailable(e.to_string()))?;
        self.inner.events.publish(Event::Playback {
            target: request.target,
            media: label,
            state: PlaybackState::Playing,
        });
        Ok(())
    }

    async fn update(&self, caller_uid: String, update: CallerUpdate) -> Result<(), LiveError> {
        let (field, change): (CallerField, CallerChange) = match update {
            CallerUpdate::Mute(on) => (CallerField::Mute, Box::new(move |c| c.mute = on)),
            CallerUpdate::Deaf(on) => (CallerField::Deaf, Box::new(move |c| c.deaf = on)),
            CallerUpdate::Mike(on) => (CallerField::Mike, Box::new(move |c| c.mike = on)),
            CallerUpdate::DtmfAllowed(on) => {
                (CallerField::DtmfAllowed, Box::new(move |c| c.dtmf_allowed = on))
            }
            CallerUpdate::ListenOnly(on) => {
                (CallerField::ListenOnly, Box::new(move |c| c.listen_only = on))
            }
            CallerUpdate::Role(role) => (CallerField::Role, Box::new(move |c| c.role = role)),
            CallerUpdate::Attention(level) => {
                if !(0..=5).contains(&level) {
                    return Err(LiveError::Invalid(format!("attention {level} outside 0..5")));
                }
                (
                    CallerField::Attention,
                    Box::new(move |c| {
                        c.attention = level;
                        c.attention_time = (level > 0).then(Time::now);
                    }),
                )
            }
            CallerUpdate::VolumeIn(step) | CallerUpdate::VolumeOut(step) => {
                let volume =
                    VolumeStep::new(step).map_err(|e| LiveError::Invalid(e.to_string()))?;
                let inbound = matches!(update, CallerUpdate::VolumeIn(_));
                let (room, target) = self.resolve_target(&Target::Caller(caller_uid.clone()))?;
                if let PlayTarget::Member(leg) = target {
                    let change = if inbound {
                        MemberChange::VolumeIn(volume)
                    } else {
                        MemberChange::VolumeOut(volume)
                    };
                    room.change(leg, change)
                        .await
                        .map_err(|e| LiveError::Unavailable(e.to_string()))?;
                }
                (
                    CallerField::Volume,
                    Box::new(
                        move |c| if inbound { c.volume_in = step } else { c.volume_out = step },
                    ),
                )
            }
            CallerUpdate::Breakout(breakout) => {
                return self.set_breakout(&caller_uid, breakout).await;
            }
        };
        self.set_caller(&caller_uid, field, change)
            .await
            .map(|_| ())
            .ok_or(LiveError::NotFound("caller"))
    }

    async fn recording_start(
        &self,
        conference_uid: String,
        caller_uid: Option<String>,
    ) -> Result<String, LiveError> {
        let (room, call_uid, leg) = {
            let state = self.state();
            let live = state.conferences.get(&conference_uid).ok_or(LiveError::NotFound("call"))?;
            let leg = match &caller_uid {
                Some(uid) => {
                    let caller = state.callers.get(uid).ok_or(LiveError::NotFound("caller"))?;
                    if caller.conference_uid != conference_uid {
                        return Err(LiveError::Invalid(
                            "the caller is not in this conference".into(),
                        ));
                    }
                    if caller.recording.is_some() {
                        return Err(LiveError::Refused("the caller is already recorded".into()));
                    }
                    Some(caller.leg)
                }
                None => None,
            };
            (live.room.clone(), live.call_uid.clone(), leg)
        };
        let uid = secret::new_uid();
        let name = match &caller_uid {
            Some(caller) => format!("{conference_uid}-{caller}-{uid}"),
            None => format!("{conference_uid}-{uid}"),
        };
        let dir = self.inner.config.recordings_dir.clone();
        let started = match leg {
            Some(leg) => room.record_member(leg, dir, name.clone()).await,
            None => room.record(dir, name.clone()).await,
        };
        started.map_err(|e| LiveError::Unavailable(e.to_string()))?;
        let recording = Recording {
            uid: uid.clone(),
            conference_uid,
            call_uid: Some(call_uid),
            caller_uid: caller_uid.clone(),
            file_name: format!("{name}.wav"),
            started_at: Time::now(),
            ended_at: None,
        };
        self.inner
            .store
            .insert(&recording)
            .await
            .map_err(|e| LiveError::Unavailable(e.to_string()))?;
        if let Some(caller) = &caller_uid
            && let Some(live) = self.state().callers.get_mut(caller)
        {
            live.recording = Some(uid.clone());
        }
        self.inner.events.publish(Event::RecordingStarted { recording });
        Ok(uid)
    }

    async fn recording_stop(&self, recording_uid: String) -> Result<(), LiveError> {
        let store = &self.inner.store;
        let mut recording: Recording =
            store.get(&recording_uid).await.map_err(|_| LiveError::NotFound("recording"))?;
        if recording.ended_at.is_some() {
            return Err(LiveError::Refused("the recording has already ended".into()));
        }
        let (room, leg) = {
            let state = self.state();
            let room = state
                .conferences
                .get(&recording.conference_uid)
                .map(|c| c.room.clone())
                .ok_or(LiveError::NotFound("call"))?;
            let leg = match &recording.caller_uid {
                Some(caller) => {
                    Some(state.callers.get(caller).ok_or(LiveError::NotFound("caller"))?.leg)
                }
                None => None,
            };
            (room, leg)
        };
        let stopped = match leg {
            Some(leg) => room.stop_recording_member(leg).await,
            None => room.stop_recording().await,
        };
        match stopped {
            Ok(_) => {}
            // The room already ended it (a write error, the member left the room):
            // the file is as complete as it gets; record the end below.
            Err(RoomError::NotRecording | RoomError::UnknownMember(_)) => {
                tracing::info!(recording = %recording_uid, "recording had already ended in the room");
            }
            Err(e) => return Err(LiveError::Unavailable(e.to_string())),
        }
        if let Some(caller) = &recording.caller_uid
            && let Some(live) = self.state().callers.get_mut(caller)
            && live.recording.as_deref() == Some(recording_uid.as_str())
        {
            live.recording = None;
        }
        recording.ended_at = Some(Time::now());
        store.update(&recording).await.map_err(|e| LiveError::Unavailable(e.to_string()))?;
        self.inner.events.publish(Event::RecordingStopped { recording });
        Ok(())
    }

    async fn dial_request(&self, request: DialRequest) -> Result<String, LiveError> {
        let conference: Conference = self
            .inner
            .store
            .get(&request.conference_uid)
            .await
            .map_err(|_| LiveError::NotFound("conference"))?;
        if conference.status == tutti_api::model::ConferenceStatus::Cancel {
            return Err(LiveError::Refused("the conference is cancelled".into()));
        }
        if !conference.place_call {
            return Err(LiveError::Refused(
                "outbound calls are disabled for this conference".into(),
            ));
        }
        let caller = Caller {
            name: request.name.clone().unwrap_or_default(),
            ..Caller::new("", Direction::Outbound, request.role, Time::now())
        };
        let uid = self.dial(conference, caller, request.number.clone()).await?;
        if request
            .remote_command
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("!LeaveRecording"))
        {
            // Recording starts once the conference has a live call; it may not yet.
            if let Err(e) = self.recording_start(request.conference_uid.clone(), None).await {
                tracing::info!(error = %e, "!LeaveRecording: no recording started yet");
            }
        }
        Ok(uid)
    }

    async fn hang_up_caller(&self, caller_uid: String) -> Result<(), LiveError> {
        let control = self.state().callers.get(&caller_uid).map(|c| c.control.clone());
        let control = control.ok_or(LiveError::NotFound("caller"))?;
        control.hangup().await.map_err(|e| LiveError::Unavailable(e.to_string()))
    }

    async fn close(&self, call_uid: String) -> Result<(), LiveError> {
        let controls: Vec<_> = {
            let state = self.state();
            let conference = state
                .conferences
                .iter()
                .find(|(_, c)| c.call_uid == call_uid)
                .map(|(uid, _)| uid.clone())
                .ok_or(LiveError::NotFound("call"))?;
            state
                .callers
                .values()
                .filter(|c| c.conference_uid == conference)
                .map(|c| c.control.clone())
                .collect()
        };
        for control in controls {
            let _ = control.hangup().await;
        }
        Ok(())
    }
}

impl LiveControl for Engine {
    fn update_caller(&self, caller_uid: String, update: CallerUpdate) -> LiveFuture<'_, ()> {
        Box::pin(self.update(caller_uid, update))
    }

    fn drop_caller(&self, caller_uid: String) -> LiveFuture<'_, ()> {
        Box::pin(self.hang_up_caller(caller_uid))
    }

    fn move_caller(&self, caller_uid: String, conference_uid: String) -> LiveFuture<'_, ()> {
        Box::pin(async move { self.relocate(&caller_uid, &conference_uid).await })
    }

    fn conference_changed(&self, _conference_uid: String) -> LiveFuture<'_, ()> {
        // Entry settings (PINs, beep, lock, limits) are read from the store at
        // every admission, so nothing live needs reloading.
        Box::pin(async { Ok(()) })
    }

    fn play(&self, request: PlayRequest) -> LiveFuture<'_, ()> {
        Box::pin(self.play_request(request))
    }

    fn stop_playback(&self, target: Target) -> LiveFuture<'_, ()> {
        Box::pin(async move {
            let (room, target) = self.resolve_target(&target)?;
            room.stop(target).await.map_err(|e| LiveError::Unavailable(e.to_string()))
        })
    }

    fn dial(&self, request: DialRequest) -> LiveFuture<'_, String> {
        Box::pin(self.dial_request(request))
    }

    fn start_recording(
        &self,
        conference_uid: String,
        caller_uid: Option<String>,
    ) -> LiveFuture<'_, String> {
        Box::pin(self.recording_start(conference_uid, caller_uid))
    }

    fn stop_recording(&self, recording_uid: String) -> LiveFuture<'_, ()> {
        Box::pin(self.recording_stop(recording_uid))
    }

    fn close_call(&self, call_uid: String) -> LiveFuture<'_, ()> {
        Box::pin(self.close(call_uid))
    }
}
