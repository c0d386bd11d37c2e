//! The engine's side of `tutti_api::live::LiveControl`: what the operations
//! layer may ask of live calls. Each method checks its target, acts on the room
//! and the signalling, writes only live fields, and leaves the outcome to events.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tutti_api::live::{
    CallUpdate, CallerField, CallerUpdate, ConvertedSound, DialRequest, Event, LiveControl,
    LiveFuture, Media, PlayRequest, PlaybackMedia, PlaybackState, Target,
};
use tutti_api::model::{Caller, Conference, Direction, EndReason, Recording};
use tutti_api::ops::catalog::bytes_on_disk;
use tutti_api::ops::{Conflict, Kind, OpsError, OpsResult};
use tutti_api::{Time, secret};
use tutti_media::mixer::VolumeStep;
use tutti_media::record::{RecordLimits, free_bytes};
use tutti_media::room::{MemberChange, PlayTarget, RoomError, RoomHandle};
use tutti_media::source::FrameSource;
use tutti_media::tts::{Speech, Tts};
use tutti_media::wav::Player;

use super::core::{Engine, LivePlayback, State};
use super::outbound::OnAnswer;
use super::sounds::read_sound;

/// A change to apply to a live caller's record.
type CallerChange = Box<dyn FnOnce(&mut Caller) + Send>;

/// A room that failed to do what it was asked: logged, reported as unavailable.
fn room_failed(e: RoomError) -> OpsError {
    OpsError::internal("room command failed", e)
}

/// Where a target plays: the room, the place in it, its conference and call.
struct Resolved {
    room: RoomHandle,
    place: PlayTarget,
    conference_uid: String,
    call_uid: String,
}

/// Bytes of its customer's quota a recording needs left to start: 64 KiB,
/// about 4 s of an 8 kHz room and 0.7 s at 48 kHz.
const MIN_RECORDING_ROOM: u64 = 64 * 1024;

impl Engine {
    /// The room a target plays in, and where in it.
    fn resolve_target(&self, target: &Target) -> OpsResult<Resolved> {
        let state = self.state();
        match target {
            Target::Caller(uid) => {
                let live = state.live.callers.get(uid).ok_or(OpsError::NotFound(Kind::Caller))?;
                let conf = state
                    .live
                    .conferences
                    .get(&live.conference_uid)
                    .ok_or(OpsError::NotFound(Kind::Call))?;
                Ok(Resolved {
                    room: conf.io.room.clone(),
                    place: PlayTarget::Member(live.leg),
                    conference_uid: live.conference_uid.clone(),
                    call_uid: conf.call_uid.clone(),
                })
            }
            Target::Conference(uid) => {
                let conf = state.live.conferences.get(uid).ok_or(OpsError::NotFound(Kind::Call))?;
                Ok(Resolved {
                    room: conf.io.room.clone(),
                    place: PlayTarget::Room,
                    conference_uid: uid.clone(),
                    call_uid: conf.call_uid.clone(),
                })
            }
        }
    }

    async fn source_for(
        &self,
        media: &Media,
        looped: bool,
    ) -> OpsResult<(Box<dyn FrameSource>, PlaybackMedia)> {
        match media {
            Media::File { path, name } => {
                let prompt = read_sound(path.clone())
                    .await
                    .map_err(|reason| OpsError::invalid("wav-file", reason))?;
                Ok((Box::new(Player::new(prompt, looped)), PlaybackMedia::File(name.clone())))
            }
            Media::Tts(text) => {
                let tts = Tts::new(self.inner.config.tts_dir.clone());
                let prompt = tts
                    .prompt(Speech::new(text.clone()), 16_000)
                    .await
                    .map_err(|e| OpsError::internal("text-to-speech failed", e))?;
                Ok((Box::new(Player::new(prompt, looped)), PlaybackMedia::Tts))
            }
        }
    }

    async fn play_request(&self, request: PlayRequest) -> OpsResult<()> {
        let resolved = self.resolve_target(&request.target)?;
        let (source, label) = self.source_for(&request.media, request.looped).await?;
        let id = self.next_id();
        self.state().playbacks.insert(
            id,
            LivePlayback {
                conference_uid: resolved.conference_uid.clone(),
                call_uid: resolved.call_uid.clone(),
                target: request.target.clone(),
                media: label.clone(),
                reported: true,
            },
        );
        resolved.room.play(id, resolved.place, source).await.map_err(room_failed)?;
        self.inner.events.publish(Event::Playback {
            conference_uid: resolved.conference_uid,
            call_uid: resolved.call_uid,
            target: request.target,
            media: label,
            state: PlaybackState::Playing,
        });
        Ok(())
    }

    async fn update(&self, caller_uid: String, update: CallerUpdate) -> OpsResult<()> {
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
                    return Err(OpsError::invalid("attention", "from 0 to 5"));
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
                let volume = VolumeStep::new(step)
                    .map_err(|e| OpsError::invalid("volume", e.to_string()))?;
                let inbound = matches!(update, CallerUpdate::VolumeIn(_));
                let resolved = self.resolve_target(&Target::Caller(caller_uid.clone()))?;
                if let PlayTarget::Member(leg) = resolved.place {
                    let change = if inbound {
                        MemberChange::VolumeIn(volume)
                    } else {
                        MemberChange::VolumeOut(volume)
                    };
                    resolved.room.change(leg, change).await.map_err(room_failed)?;
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
            .ok_or(OpsError::NotFound(Kind::Caller))
    }

    /// What a new recording of `conference_uid` may take: the bytes left of
    /// its customer's quota and the server's floor of free disk space, or why
    /// it may not start. The quota counts the files of the customer's stored
    /// recordings, running ones as far as written: recordings running at once
    /// draw on one budget, which deleted recordings give their bytes back to
    /// ([`LiveControl::recording_bytes_freed`]).
    async fn recording_limits(&self, conference_uid: &str) -> OpsResult<RecordLimits> {
        let config = &self.inner.config;
        let floor = config.recording_min_free_bytes;
        if floor > 0 {
            let dir = config.recordings_dir.clone();
            let free = tokio::task::spawn_blocking(move || free_bytes(&dir)).await;
            // A file system that cannot tell is left to the recorder's own check.
            if let Ok(Ok(free)) = free
                && free < floor
            {
                tracing::warn!(free, floor, "recording not started: the disk is nearly full");
                return Err(OpsError::Conflict(Conflict::RecordingDiskLow { free, floor }));
            }
        }
        let quota = config.recording_quota_bytes;
        let store = &self.inner.store;
        let conference = store
            .find::<Conference>(conference_uid)
            .await?
            .ok_or(OpsError::NotFound(Kind::Conference))?;
        let customer = conference.customer_uid;
        // While any recording of the customer runs, they all draw on one
        // budget, so recordings running at once cannot pass the quota
        // together. Without one, the quota less the files on disk starts it.
        let running = live_budget(&self.state(), &customer);
        let budget = match running {
            Some(budget) => budget,
            None => {
                let recordings = store.recordings_for(Some(&customer), None).await?;
                let names: Vec<&str> = recordings.iter().map(|r| r.file_name.as_str()).collect();
                let used = bytes_on_disk(&config.recordings_dir, &names).await;
                let mut state = self.state();
                state.recording_budgets.retain(|_, b| b.strong_count() > 0);
                // Another start may have made one meanwhile: share it.
                live_budget(&state, &customer).unwrap_or_else(|| {
                    let fresh = Arc::new(AtomicU64::new(quota.saturating_sub(used)));
                    state.recording_budgets.insert(customer.clone(), Arc::downgrade(&fresh));
                    fresh
                })
            }
        };
        let left = budget.load(Ordering::Acquire);
        // Less than this left would make a recording that ends within seconds.
        if left < MIN_RECORDING_ROOM {
            let used = quota.saturating_sub(left);
            tracing::info!(customer = %customer, used, quota, "recording over quota");
            return Err(OpsError::Conflict(Conflict::RecordingQuota { quota, used }));
        }
        Ok(RecordLimits { min_free_bytes: floor, budget: Some(budget) })
    }

    /// Starts recording a conference's room, or one caller of it. One room
    /// recording and one recording per caller at a time.
    pub(super) async fn recording_start(
        &self,
        conference_uid: String,
        caller_uid: Option<String>,
    ) -> OpsResult<String> {
        let limits = self.recording_limits(&conference_uid).await?;
        let uid = secret::new_uid();
        let (room, call_uid, leg) = {
            let mut state = self.state();
            let leg = match &caller_uid {
                Some(caller) => {
                    let live =
                        state.live.callers.get(caller).ok_or(OpsError::NotFound(Kind::Caller))?;
                    if live.conference_uid != conference_uid {
                        return Err(OpsError::invalid("caller", "not in this conference"));
                    }
                    if live.recording.is_some() {
                        return Err(OpsError::Conflict(Conflict::AlreadyRecording));
                    }
                    Some(live.leg)
                }
                None => None,
            };
            let live = state
                .live
                .conferences
                .get_mut(&conference_uid)
                .ok_or(OpsError::NotFound(Kind::Call))?;
            if leg.is_none() {
                if live.recording.is_some() {
                    return Err(OpsError::Conflict(Conflict::AlreadyRecording));
                }
                // Claimed now, so two requests at once cannot both start one.
                live.recording = Some(uid.clone());
            }
            let found = (live.io.room.clone(), live.call_uid.clone(), leg);
            if let Some(caller) = &caller_uid
                && let Some(live) = state.live.callers.get_mut(caller)
            {
                live.recording = Some(uid.clone());
            }
            found
        };
        let name = match &caller_uid {
            Some(caller) => format!("{conference_uid}-{caller}-{uid}"),
            None => format!("{conference_uid}-{uid}"),
        };
        let dir = self.inner.config.recordings_dir.clone();
        let started = match leg {
            Some(leg) => room.record_member(leg, dir, name.clone(), limits).await,
            None => room.record(dir, name.clone(), limits).await,
        };
        if let Err(e) = started {
            self.forget_recording(&uid, caller_uid.as_deref());
            return Err(match e {
                RoomError::AlreadyRecording => OpsError::Conflict(Conflict::AlreadyRecording),
                RoomError::UnknownMember(_) => OpsError::NotFound(Kind::Caller),
                other => room_failed(other),
            });
        }
        let recording = Recording {
            uid: uid.clone(),
            conference_uid,
            call_uid: Some(call_uid),
            caller_uid: caller_uid.clone(),
            file_name: format!("{name}.wav"),
            started_at: Time::now(),
            ended_at: None,
        };
        self.inner.store.insert(&recording).await?;
        tracing::info!(recording = %uid, conference = %recording.conference_uid, "recording started");
        self.inner.events.publish(Event::RecordingStarted { recording });
        Ok(uid)
    }

    /// Starts the room recording a conference with `recording` on (the PBX's
    /// `record_enabled`) has, once per call session: a recording stopped
    /// through an interface is not started again by the next caller.
    pub(super) async fn record_automatically(&self, conference_uid: &str) {
        let due = {
            let mut state = self.state();
            match state.live.conferences.get_mut(conference_uid) {
                Some(live) if !live.auto_recorded && live.recording.is_none() => {
                    live.auto_recorded = true;
                    true
                }
                _ => false,
            }
        };
        if !due {
            return;
        }
        match self.recording_start(conference_uid.to_owned(), None).await {
            Ok(uid) => {
                tracing::info!(conference = conference_uid, recording = %uid, "recording the room (record_enabled)");
            }
            Err(e) => {
                tracing::warn!(conference = conference_uid, error = %e, "automatic recording not started");
            }
        }
    }

    /// A live conference's stored settings changed: music on hold is loaded
    /// again, and its automatic recording follows its `recording` setting.
    async fn apply_conference_change(&self, conference_uid: String) -> OpsResult<()> {
        let Some(conference) = self.inner.store.find::<Conference>(&conference_uid).await? else {
            return Ok(());
        };
        let music_changed = match self.state().live.conferences.get(&conference_uid) {
            None => return Ok(()),
            Some(live) => live.io.music_sound != conference.music_on_hold_sound,
        };
        let music = match music_changed {
            true => Some(self.music_on_hold(&conference).await),
            false => None,
        };
        let (stop, music_stopped) = {
            let mut state = self.state();
            let Some(live) = state.live.conferences.get_mut(&conference_uid) else { return Ok(()) };
            // New music: whoever hears the old one hears the new one at once.
            let mut music_stopped = None;
            if let Some(music) = music {
                live.io.music_on_hold = music;
                live.io.music_sound = conference.music_on_hold_sound;
                if let Some((_, playing)) = live.music_playing.take() {
                    music_stopped = Some((live.io.room.clone(), playing));
                }
            }
            let stop = if conference.recording {
                // Turned on again: the next start counts as the automatic one.
                if live.recording.is_none() {
                    live.auto_recorded = false;
                }
                None
            } else if live.auto_recorded {
                live.auto_recorded = false;
                live.recording.clone()
            } else {
                None
            };
            (stop, music_stopped)
        };
        if let Some((room, playing)) = music_stopped {
            let _ = room.try_stop_playback(playing);
            self.update_music_on_hold(&conference_uid);
        }
        if conference.recording {
            self.record_automatically(&conference_uid).await;
        } else if let Some(recording) = stop {
            tracing::info!(conference = %conference_uid, %recording, "record_enabled off: recording stopped");
            self.recording_stop(recording).await?;
        }
        Ok(())
    }

    /// Forgets a recording's claim on its room or caller.
    fn forget_recording(&self, recording_uid: &str, caller_uid: Option<&str>) {
        let mut state = self.state();
        if let Some(live) = caller_uid.and_then(|c| state.live.callers.get_mut(c))
            && live.recording.as_deref() == Some(recording_uid)
        {
            live.recording = None;
        }
        for conf in state.live.conferences.values_mut() {
            if conf.recording.as_deref() == Some(recording_uid) {
                conf.recording = None;
            }
        }
    }

    /// A recording the room ended by itself (its limits, a write error): the
    /// conference or caller no longer records, and its end is stored. The
    /// file's name ends with the recording's uid ([`Self::recording_start`]);
    /// a file no live recording owns (a caller's spoken name) is not ours.
    pub(super) async fn recording_ended_in_room(&self, path: &std::path::Path) {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { return };
        let owner = {
            let state = self.state();
            let rooms = state.live.conferences.values().map(|c| (c.recording.as_deref(), None));
            let callers = state
                .live
                .callers
                .iter()
                .map(|(uid, c)| (c.recording.as_deref(), Some(uid.as_str())));
            rooms.chain(callers).find_map(|(recording, caller)| {
                recording
                    .filter(|uid| stem.ends_with(uid))
                    .map(|uid| (uid.to_owned(), caller.map(str::to_owned)))
            })
        };
        let Some((uid, caller)) = owner else { return };
        tracing::info!(recording = %uid, "recording ended by itself; the call goes on");
        self.forget_recording(&uid, caller.as_deref());
        self.recording_ended(&uid).await;
    }

    async fn recording_stop(&self, recording_uid: String) -> OpsResult<()> {
        let store = &self.inner.store;
        let mut recording: Recording =
            store.find(&recording_uid).await?.ok_or(OpsError::NotFound(Kind::Recording))?;
        if recording.ended_at.is_some() {
            return Err(OpsError::Ended(Kind::Recording));
        }
        let (room, leg) = {
            let state = self.state();
            let room = state
                .live
                .conferences
                .get(&recording.conference_uid)
                .map(|c| c.io.room.clone())
                .ok_or(OpsError::NotFound(Kind::Call))?;
            let leg = match &recording.caller_uid {
                Some(caller) => Some(
                    state.live.callers.get(caller).ok_or(OpsError::NotFound(Kind::Caller))?.leg,
                ),
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
            Err(e) => return Err(room_failed(e)),
        }
        self.forget_recording(&recording_uid, recording.caller_uid.as_deref());
        recording.ended_at = Some(Time::now());
        store.update(&recording).await?;
        self.inner.events.publish(Event::RecordingStopped { recording });
        Ok(())
    }

    async fn dial_request(&self, request: DialRequest) -> OpsResult<String> {
        let conference: Conference = self
            .inner
            .store
            .find(&request.conference_uid)
            .await?
            .ok_or(OpsError::NotFound(Kind::Conference))?;
        let caller = Caller {
            name: request.name.clone().unwrap_or_default(),
            ..Caller::new("", Direction::Outbound, request.role, Time::now())
        };
        let then = OnAnswer { record_conference: request.records_conference() };
        self.dial(conference, caller, request.number.clone(), then).await
    }

    /// Hangs up on a caller: it leaves the room, the lists and the events at
    /// once; the BYE transaction (which a vanished phone makes last 32 s)
    /// finishes in the background.
    async fn hang_up_caller(&self, caller_uid: String) -> OpsResult<()> {
        let control = self.state().live.callers.get(&caller_uid).map(|c| c.io.control.clone());
        let control = control.ok_or(OpsError::NotFound(Kind::Caller))?;
        self.leave(&caller_uid, EndReason::Dropped).await;
        tokio::spawn(async move {
            if let Err(e) = control.hangup().await {
                tracing::debug!(error = %e, "hang-up signalling failed");
            }
        });
        Ok(())
    }

    async fn close(&self, call_uid: String) -> OpsResult<()> {
        let callers: Vec<String> = {
            let state = self.state();
            let conference =
                state.live.conference_of_call(&call_uid).ok_or(OpsError::NotFound(Kind::Call))?;
            state.live.callers_in(conference).map(|(uid, _)| uid.clone()).collect()
        };
        for caller in callers {
            // A caller gone meanwhile is no failure here.
            let _ = self.hang_up_caller(caller).await;
        }
        Ok(())
    }
}

impl LiveControl for Engine {
    fn recording_bytes_freed(&self, customer_uid: &str, bytes: u64) {
        if let Some(budget) = live_budget(&self.state(), customer_uid) {
            let _ = budget.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                Some(left.saturating_add(bytes))
            });
            tracing::debug!(customer = customer_uid, bytes, "recording budget given back");
        }
    }

    fn update_caller(&self, caller_uid: String, update: CallerUpdate) -> LiveFuture<'_, ()> {
        Box::pin(self.update(caller_uid, update))
    }

    fn drop_caller(&self, caller_uid: String) -> LiveFuture<'_, ()> {
        Box::pin(self.hang_up_caller(caller_uid))
    }

    fn move_caller(&self, caller_uid: String, conference_uid: String) -> LiveFuture<'_, ()> {
        Box::pin(async move { self.relocate(&caller_uid, &conference_uid).await })
    }

    fn conference_changed(&self, conference_uid: String) -> LiveFuture<'_, ()> {
        // Entry settings (PINs, beep, lock, limits, entry sound) are read from
        // the store at every admission; music on hold and the automatic
        // recording are the live session's.
        Box::pin(self.apply_conference_change(conference_uid))
    }

    fn convert_sound(&self, bytes: Vec<u8>) -> LiveFuture<'_, ConvertedSound> {
        Box::pin(async move {
            let converted =
                tokio::task::spawn_blocking(move || tutti_media::wav::convert_upload(&bytes))
                    .await
                    .map_err(|e| OpsError::internal("sound conversion failed", e))?;
            let upload = converted.map_err(|e| OpsError::invalid("file", e.0))?;
            Ok(ConvertedSound {
                wav: upload.wav,
                sample_rate: upload.sample_rate,
                duration_ms: upload.duration_ms,
                encoding: upload.encoding,
            })
        })
    }

    fn talking(&self, conference_uid: &str) -> Vec<String> {
        let state = self.state();
        state
            .live
            .callers
            .iter()
            .filter(|(_, live)| live.talking && live.conference_uid == conference_uid)
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    fn play(&self, request: PlayRequest) -> LiveFuture<'_, ()> {
        Box::pin(self.play_request(request))
    }

    fn stop_playback(&self, target: Target) -> LiveFuture<'_, ()> {
        Box::pin(async move {
            let resolved = self.resolve_target(&target)?;
            resolved.room.stop(resolved.place).await.map_err(room_failed)
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

    fn update_call(&self, call_uid: String, update: CallUpdate) -> LiveFuture<'_, ()> {
        Box::pin(self.call_update(call_uid, update))
    }

    fn set_breakout_private(&self, breakout_uid: String, private: bool) -> LiveFuture<'_, ()> {
        Box::pin(async move { self.breakout_private(&breakout_uid, private).await })
    }

    fn caller_quality(&self, caller_uid: &str) -> Option<tutti_api::live::CallQuality> {
        let state = self.state();
        let live = state.live.callers.get(caller_uid)?;
        Some(super::media::quality(&live.io.leg_handle))
    }

    fn render_metrics(&self, out: &mut String) {
        tutti_media::timing::TICKS.snapshot().render_prometheus(out);
        tutti_media::timing::TICK_WORK.snapshot().render_prometheus_duration(out);
        tutti_media::timing::render_split_ticks(out);
        tutti_media::counters::MEDIA.render_prometheus(out);
        let sip = self.inner.ua.stats();
        let (engine_calls, live_callers) = {
            let state = self.state();
            (state.calls.len(), state.live.callers.len())
        };
        let tasks = tokio::runtime::Handle::try_current()
            .map(|handle| handle.metrics().num_alive_tasks())
            .unwrap_or(0);
        let gauges: [(&str, &str, usize); 8] = [
            ("tutti_sip_calls", "SIP calls the user agent holds, both directions.", sip.calls),
            ("tutti_sip_dialogs", "SIP dialogs in the stack's dialog layer.", sip.dialogs),
            ("tutti_sip_transactions", "SIP transactions running.", sip.transactions),
            (
                "tutti_sip_finished_transactions",
                "Finished SIP transactions kept to answer retransmissions.",
                sip.finished_transactions,
            ),
            ("tutti_sip_waiting_ack", "2xx answers waiting for their ACK.", sip.waiting_ack),
            ("tutti_engine_calls", "Calls the call engine is running.", engine_calls),
            ("tutti_live_callers", "Callers connected to a room.", live_callers),
            ("tutti_runtime_tasks", "Tasks alive in the async runtime.", tasks),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
    }
}

/// The budget a customer's running recordings share, if one of them runs.
fn live_budget(state: &State, customer_uid: &str) -> Option<Arc<AtomicU64>> {
    state.recording_budgets.get(customer_uid).and_then(Weak::upgrade)
}
