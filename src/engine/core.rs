//! The running call engine: it takes calls from the SIP user agent, decides by
//! the dial plan, answers with a media leg, joins the leg to its conference's
//! room, keeps the store's call sessions and callers true, and publishes every
//! change on the event bus. Live state lives in one table behind a mutex that is
//! only held for synchronous steps, never across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tutti_api::control::sounds::resolve_wav;
use tutti_api::live::{CallerField, Event, EventBus, PlaybackMedia, PlaybackState, Target};
use tutti_api::model::{
    Call, CallStatus, Caller, Conference, ConferenceStatus, Direction, Role, RoleFlags,
};
use tutti_api::{Store, Time};
use tutti_media::io::{LegHandle, LegIo, LegKey, LegNotice, NOTICE_BACKLOG};
use tutti_media::leg::Leg;
use tutti_media::mixer::MixerConfig;
use tutti_media::ports::PortPool;
use tutti_media::room::{MemberChange, PlayTarget, PlaybackId, RoomEvent, RoomHandle};
use tutti_media::source::FrameSource;
use tutti_media::tone::Tone;
use tutti_media::wav::{self, Player, Prompt as Audio};
use tutti_sip::sdp::{LocalMedia, MediaDirection, Negotiated};
use tutti_sip::ua::{
    CallControl, CallId, CallProgress, HangupReason, IncomingCall, PlaceCall, SipUa, UaEvent,
};

use super::dialplan::{self, Admission};
use super::ivr::{PinAction, PinConfig, PinEntry, Prompt};
use super::keypad::{KeyAction, Keypad, KeypadConfig, Standing};
use super::media::leg_config;
use super::prompts::{self, PromptName};

/// How long a late-offer call may take to send its answer in the ACK.
const LATE_ANSWER_TIMEOUT: Duration = Duration::from_secs(32);
/// Room events waiting for the engine.
const ROOM_EVENT_BACKLOG: usize = 4096;
/// Silence after a last prompt before hanging up, so its end is not cut.
const PROMPT_TAIL_MS: u64 = 300;
/// How long a stopping server waits for calls to record their end.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// Inputs waiting for one call's task.
const CALL_INPUT_BACKLOG: usize = 64;

/// What the engine needs from the configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub media_address: IpAddr,
    pub rtp_ports: (u16, u16),
    pub sounds_dir: PathBuf,
    pub recordings_dir: PathBuf,
    pub tts_dir: PathBuf,
}

/// Something that happened to a call, for its task.
#[derive(Debug)]
pub(super) enum CallInput {
    /// The ACK for our 2xx arrived: the dialog is confirmed.
    Answered,
    Digit(char),
    MediaChanged(Negotiated),
    Progress(CallProgress),
    Hangup(HangupReason),
}

/// A caller in a conference.
pub(super) struct LiveCaller {
    pub caller: Caller,
    pub conference_uid: String,
    pub leg: LegKey,
    /// Steers the leg while the room owns it (re-INVITE, outgoing digits).
    pub leg_handle: LegHandle,
    pub control: CallControl,
    /// The caller's recorded name, for `announce_caller_name`.
    pub name: Option<Audio>,
    /// Waiting in the green room (see engine/rooms.rs).
    pub green: bool,
    /// The UID of this caller's own recording, while one runs.
    pub recording: Option<String>,
}

/// A conference with people in it.
pub(super) struct LiveConference {
    pub room: RoomHandle,
    pub call_uid: String,
    pub members: usize,
    /// Callers between `open_conference` and becoming members (or giving up):
    /// the session must not close under them.
    pub pending: usize,
    /// What a caller alone in the conference hears.
    pub music_on_hold: Option<Audio>,
    /// The lone caller's leg and the music's playback, while it plays.
    pub music_playing: Option<(LegKey, PlaybackId)>,
    /// The call's green room is on (see engine/rooms.rs).
    pub green_room: bool,
    /// The room's numbers for the call's breakout groups, by breakout UID.
    pub breakouts: HashMap<String, tutti_media::mixer::BreakoutId>,
}

/// What a playback is about, to report it when it ends.
pub struct LivePlayback {
    pub target: Target,
    pub media: PlaybackMedia,
    /// Reported to clients (prompts of the engine's own are not).
    pub reported: bool,
}

#[derive(Default)]
pub(super) struct State {
    pub conferences: HashMap<String, LiveConference>,
    /// Callers in conferences, by caller UID.
    pub callers: HashMap<String, LiveCaller>,
    /// Every call's task, by SIP call.
    pub calls: HashMap<CallId, mpsc::Sender<CallInput>>,
    /// Callers admitted to a conference and not yet joined, by conference UID.
    pub seats: HashMap<String, usize>,
    /// Which call a leg belongs to, and its caller once joined.
    pub legs: HashMap<LegKey, (CallId, Option<String>)>,
    pub playbacks: HashMap<PlaybackId, LivePlayback>,
}

pub struct Inner {
    pub(super) store: Store,
    pub(super) events: EventBus,
    pub(super) ua: SipUa,
    pub(super) ports: PortPool,
    pub(super) config: EngineConfig,
    state: Mutex<State>,
    next_id: AtomicU64,
    notices: mpsc::Sender<LegNotice>,
    pub(super) room_events: mpsc::Sender<RoomEvent>,
    /// Background tasks that use the store, stopped by [`Engine::shutdown`].
    pub(super) tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// The call engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("RTP ports: {0}")]
    Ports(#[from] tutti_media::ports::PortError),
}

impl Engine {
    /// Starts the engine's tasks around a running user agent and its events.
    pub fn start(
        config: EngineConfig,
        store: Store,
        events: EventBus,
        ua: SipUa,
        ua_events: mpsc::Receiver<UaEvent>,
    ) -> Result<Self, EngineError> {
        let ports = PortPool::new(config.rtp_ports.0, config.rtp_ports.1)?;
        let (notices, notices_rx) = mpsc::channel(NOTICE_BACKLOG);
        let (room_events, room_events_rx) = mpsc::channel(ROOM_EVENT_BACKLOG);
        let engine = Self {
            inner: Arc::new(Inner {
                store,
                events,
                ua,
                ports,
                config,
                state: Mutex::new(State::default()),
                next_id: AtomicU64::new(1),
                notices,
                room_events,
                tasks: Mutex::new(Vec::new()),
            }),
        };
        tokio::spawn(engine.clone().ua_loop(ua_events));
        tokio::spawn(engine.clone().notice_loop(notices_rx));
        tokio::spawn(engine.clone().room_event_loop(room_events_rx));
        let watch = tokio::spawn(engine.clone().breakout_watch());
        engine.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(watch.abort_handle());
        Ok(engine)
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held is a bug; the table is still usable and
        // calls in progress should not die with it.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Callers connected now.
    pub fn live_callers(&self) -> usize {
        self.state().callers.len()
    }

    /// Stops the background tasks (the scheduler), hangs up every call (BYE to
    /// confirmed dialogs) and waits until each
    /// call's task has recorded its end in the store, for at most 5 seconds.
    pub async fn shutdown(&self) {
        for task in self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        self.inner.ua.shutdown().await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
        while !self.state().calls.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    calls = self.state().calls.len(),
                    "calls still ending after {SHUTDOWN_WAIT:?}"
                );
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn ua_loop(self, mut ua_events: mpsc::Receiver<UaEvent>) {
        while let Some(event) = ua_events.recv().await {
            match event {
                UaEvent::IncomingCall(incoming) => {
                    let (tx, rx) = mpsc::channel(CALL_INPUT_BACKLOG);
                    self.state().calls.insert(incoming.call, tx);
                    tokio::spawn(self.clone().inbound(*incoming, rx));
                }
                UaEvent::Dtmf { call, digit } => self.to_call(call, CallInput::Digit(digit)),
                UaEvent::MediaChanged { call, negotiated } => {
                    self.to_call(call, CallInput::MediaChanged(negotiated));
                }
                UaEvent::Hangup { call, reason } => self.to_call(call, CallInput::Hangup(reason)),
                UaEvent::Progress { call, state } => self.to_call(call, CallInput::Progress(state)),
                UaEvent::Answered { call } => self.to_call(call, CallInput::Answered),
            }
        }
    }

    fn to_call(&self, call: CallId, input: CallInput) {
        let tx = self.state().calls.get(&call).cloned();
        if let Some(tx) = tx
            && tx.try_send(input).is_err()
        {
            tracing::warn!(%call, "call task behind or gone: input dropped");
        }
    }

    async fn notice_loop(self, mut notices: mpsc::Receiver<LegNotice>) {
        while let Some(notice) = notices.recv().await {
            let (leg, input) = match notice {
                LegNotice::Digit { leg, digit } => (leg, CallInput::Digit(digit)),
                LegNotice::RemoteBye { leg } => (leg, CallInput::Hangup(HangupReason::RemoteBye)),
            };
            let call = self.state().legs.get(&leg).map(|(call, _)| *call);
            if let Some(call) = call {
                self.to_call(call, input);
            }
        }
    }

    async fn room_event_loop(self, mut room_events: mpsc::Receiver<RoomEvent>) {
        while let Some(event) = room_events.recv().await {
            match event {
                RoomEvent::Talking { key, talking } => {
                    let who = {
                        let state = self.state();
                        state.legs.get(&key).and_then(|(_, caller)| caller.clone()).and_then(
                            |uid| state.callers.get(&uid).map(|c| (uid, c.conference_uid.clone())),
                        )
                    };
                    if let Some((caller_uid, conference_uid)) = who {
                        self.inner.events.publish(Event::Talking {
                            conference_uid,
                            caller_uid,
                            talking,
                        });
                    }
                }
                RoomEvent::PlaybackDone { id, .. } => {
                    // Music on hold stopped from outside (STOPWAV to the caller):
                    // forget it, and start it again if the caller is still alone.
                    let music_of = {
                        let mut state = self.state();
                        state
                            .conferences
                            .iter_mut()
                            .find(|(_, c)| c.music_playing.is_some_and(|(_, m)| m == id))
                            .map(|(uid, c)| {
                                c.music_playing = None;
                                uid.clone()
                            })
                    };
                    if let Some(conference_uid) = music_of {
                        self.update_music_on_hold(&conference_uid);
                    }
                    let playback = self.state().playbacks.remove(&id);
                    if let Some(p) = playback.filter(|p| p.reported) {
                        self.inner.events.publish(Event::Playback {
                            target: p.target,
                            media: p.media,
                            state: PlaybackState::Done,
                        });
                    }
                }
            }
        }
    }

    /// An RTP/RTCP port pair and our side of the SDP for it. Both ports are
    /// bound before negotiation, since rtcp-mux is only known after it.
    async fn bind_media(
        &self,
    ) -> Result<(tutti_media::ports::RtpSockets, LocalMedia), tutti_media::ports::PortError> {
        let sockets = self.inner.ports.bind(self.inner.config.media_address, false).await?;
        let local = LocalMedia {
            address: self.inner.config.media_address,
            rtp_port: sockets.rtp_port(),
            session_id: rand::random::<u32>().into(),
            session_version: 1,
            direction: MediaDirection::SendRecv,
        };
        Ok((sockets, local))
    }

    /// Starts the media leg of `call` for the negotiated stream.
    fn start_leg(
        &self,
        call: CallId,
        negotiated: &Negotiated,
        mut sockets: tutti_media::ports::RtpSockets,
    ) -> Result<LegIo, tutti_media::leg::LegError> {
        if negotiated.rtcp_mux {
            sockets.rtcp = None;
        }
        let key = self.next_id();
        let leg =
            Leg::new(leg_config(negotiated, format!("leg{key}@tutti")), std::time::Instant::now())?;
        let leg = LegIo::spawn(key, leg, sockets, self.inner.notices.clone());
        self.state().legs.insert(key, (call, None));
        Ok(leg)
    }

    /// Whether `conference` admits one more caller now, as a SIP refusal if not.
    /// An admitted caller holds a [`Seat`] until it joins (or gives up), so
    /// callers answered at the same moment cannot overfill the conference.
    pub(super) async fn admission(&self, conference: &Conference) -> Result<Seat, Refusal> {
        let reservations = self
            .inner
            .store
            .reservations_of(&conference.uid)
            .await
            .map_err(|_| Refusal::Status(500))?;
        let mut state = self.state();
        let members = state.conferences.get(&conference.uid).map_or(0, |c| c.members);
        let seated = state.seats.get(&conference.uid).copied().unwrap_or(0);
        match dialplan::admit(conference, &reservations, Time::now(), members + seated) {
            Admission::Admit => {
                *state.seats.entry(conference.uid.clone()).or_default() += 1;
                Ok(Seat { engine: self.clone(), conference_uid: Some(conference.uid.clone()) })
            }
            Admission::Divert(target) => Err(Refusal::Redirect(target)),
            refused => Err(Refusal::Status(refused.sip_status().unwrap_or(480))),
        }
    }

    /// The conference, role and person a PIN gives, if any.
    async fn check_pin(
        &self,
        check: &PinCheck,
        pin: &str,
    ) -> Option<(Conference, Role, Option<String>)> {
        match check {
            PinCheck::Conference(conference) => dialplan::role_for_pin(conference, pin)
                .map(|role| ((**conference).clone(), role, None)),
            PinCheck::Customer(customer) => {
                let store = &self.inner.store;
                let person = store.person_by_pin(&customer.uid, pin).await.ok().flatten()?;
                let conference = store.get::<Conference>(&person.conference_uid).await.ok()?;
                Some((conference, person.role, Some(person.uid)))
            }
        }
    }

    /// PIN entry for an answered caller, alone in a room of its own: the prompt,
    /// digits until `#` or a pause, three tries (src/engine/ivr.rs). Gives the
    /// leg back with what the PIN opened, or `None` after goodbye or hang-up.
    async fn pin_entry(
        &self,
        leg: LegIo,
        check: &PinCheck,
        inputs: &mut mpsc::Receiver<CallInput>,
    ) -> Option<(Conference, Role, Option<String>, String, LegIo)> {
        let key = leg.key();
        let room = self.new_room().ok()?;
        room.join(leg).await.ok()?;
        let (mut entry, first) = PinEntry::start(PinConfig::default(), std::time::Instant::now());
        let mut action = Some(first);
        let found = loop {
            match action.take() {
                Some(PinAction::Play(prompt)) => {
                    let name = match prompt {
                        Prompt::EnterPin => PromptName::EnterPin,
                        Prompt::WrongPin => PromptName::WrongPin,
                        Prompt::Goodbye => PromptName::Goodbye,
                    };
                    let _ = room.stop(PlayTarget::Member(key)).await;
                    self.play_prompt(&room, key, name).await;
                }
                Some(PinAction::StopPrompt) => {
                    let _ = room.stop(PlayTarget::Member(key)).await;
                }
                Some(PinAction::Check(pin)) => match self.check_pin(check, &pin).await {
                    Some(opened) => break Some((opened, pin)),
                    None => {
                        tracing::info!(leg = key, "wrong PIN");
                        action = entry.handle_verdict(std::time::Instant::now(), false);
                        continue;
                    }
                },
                Some(PinAction::Goodbye) => {
                    let _ = room.stop(PlayTarget::Member(key)).await;
                    let ms = self.play_prompt(&room, key, PromptName::Goodbye).await;
                    tokio::time::sleep(Duration::from_millis(ms + PROMPT_TAIL_MS)).await;
                    break None;
                }
                None => {}
            }
            let deadline = entry.poll_timeout();
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(CallInput::Digit(digit)) => {
                        action = entry.handle_digit(std::time::Instant::now(), digit);
                    }
                    Some(CallInput::Hangup(_)) | None => break None,
                    Some(_) => {}
                },
                () = sleep_until_option(deadline) => {
                    action = entry.handle_timeout(std::time::Instant::now());
                }
            }
        };
        let leg = room.leave(key).await.ok().flatten()?;
        let ((conference, role, person_uid), pin) = found?;
        Some((conference, role, person_uid, pin, leg))
    }

    /// Plays one of the engine's prompts to one member; returns its length in ms.
    pub(super) async fn play_prompt(
        &self,
        room: &RoomHandle,
        key: LegKey,
        name: PromptName,
    ) -> u64 {
        match prompts::load(name, &self.inner.config.sounds_dir) {
            Ok(prompt) => {
                let ms = prompt.duration_ms();
                let player: Box<dyn tutti_media::source::FrameSource> =
                    Box::new(Player::new(prompt, false));
                self.play_internal(room, PlayTarget::Member(key), Some(player)).await;
                ms
            }
            Err(e) => {
                tracing::error!(prompt = name.file_name(), error = %e, "prompt unusable");
                0
            }
        }
    }

    /// Tells a caller why it cannot enter before refusing it: the prompt in
    /// early media (183 Session Progress with our SDP), then `status`. A caller
    /// without an offer in its INVITE, or one that cannot take early media, gets
    /// the status alone; one that cancels meanwhile gets nothing more.
    async fn announce_then_reject(
        &self,
        incoming: &IncomingCall,
        inputs: &mut mpsc::Receiver<CallInput>,
        prompt: PromptName,
        status: u16,
    ) {
        let early = match (&incoming.offer, self.bind_media().await) {
            (Some(_), Ok((sockets, local))) => match incoming.early_media(local).await {
                Ok(negotiated) => self.start_leg(incoming.call, &negotiated, sockets).ok(),
                Err(e) => {
                    tracing::debug!(error = %e, "no early media");
                    None
                }
            },
            _ => None,
        };
        if let Some(leg) = early {
            let key = leg.key();
            if !self.say_alone(leg, prompt, inputs).await {
                tracing::debug!("caller gone during the announcement");
            }
            self.state().legs.remove(&key);
        }
        // Harmless on a dialog that already ended (a CANCEL); needed after an
        // RTCP BYE, which ends the leg but not the INVITE transaction.
        let _ = incoming.reject(status).await;
    }

    /// Plays a prompt to a caller alone in a room of its own, to its end; then
    /// the leg is let go. `false` when the caller hung up first.
    async fn say_alone(
        &self,
        leg: LegIo,
        prompt: PromptName,
        inputs: &mut mpsc::Receiver<CallInput>,
    ) -> bool {
        let key = leg.key();
        let Ok(room) = self.new_room() else { return true };
        if room.join(leg).await.is_err() {
            return true;
        }
        let ms = self.play_prompt(&room, key, prompt).await;
        let present = super::announce::wait_unless_hangup(inputs, ms + PROMPT_TAIL_MS).await;
        let _ = room.leave(key).await;
        present
    }

    /// A room task of its own: a conference's, or a caller's alone (PIN entry,
    /// name recording, announcements).
    pub(super) fn new_room(&self) -> Result<RoomHandle, tutti_media::room::RoomError> {
        RoomHandle::spawn(MixerConfig::default(), self.inner.room_events.clone())
    }

    /// One incoming call, from INVITE to hang-up.
    async fn inbound(self, incoming: IncomingCall, mut inputs: mpsc::Receiver<CallInput>) {
        let call = incoming.call;
        let outcome = self.admit_and_join(&incoming, &mut inputs).await;
        let joined = match outcome {
            Ok(joined) => Some(joined),
            Err(Refusal::Status(status)) => {
                tracing::info!(%call, user = %incoming.request_user, from = %incoming.from_uri, status, "call refused");
                let _ = incoming.reject(status).await;
                None
            }
            Err(Refusal::Redirect(target)) => {
                tracing::info!(%call, user = %incoming.request_user, %target, "call diverted");
                let _ = incoming.redirect(target).await;
                None
            }
            Err(Refusal::Announce { prompt, status }) => {
                tracing::info!(%call, user = %incoming.request_user, status, "call refused after an announcement");
                self.announce_then_reject(&incoming, &mut inputs, prompt, status).await;
                None
            }
            Err(Refusal::HangUp) => {
                let _ = incoming.control.hangup().await;
                None
            }
            Err(Refusal::Gone) => None,
        };
        if let Some(caller_uid) = joined {
            self.in_conference(&caller_uid, &mut inputs).await;
            self.leave(&caller_uid).await;
            let _ = incoming.control.hangup().await;
        }
        self.state().calls.remove(&call);
    }

    /// A joined caller's life: digits through the keypad map, media changes,
    /// until hang-up.
    async fn in_conference(&self, caller_uid: &str, inputs: &mut mpsc::Receiver<CallInput>) {
        let mut keypad = Keypad::new(KeypadConfig::default());
        loop {
            let deadline = keypad.poll_timeout();
            let input = tokio::select! {
                input = inputs.recv() => input,
                () = sleep_until_option(deadline) => {
                    if let Some(action) = keypad.handle_timeout(std::time::Instant::now()) {
                        self.key_action(caller_uid, action).await;
                    }
                    continue;
                }
            };
            match input {
                None => break,
                Some(CallInput::Hangup(reason)) => {
                    tracing::info!(caller = %caller_uid, ?reason, "hang-up");
                    break;
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
                    self.media_changed(caller_uid, &negotiated)
                }
                Some(CallInput::Progress(_) | CallInput::Answered) => {}
            }
        }
    }

    /// Places an outbound call that joins `conference` as `caller` once answered;
    /// returns at once with the caller's UID (progress follows as events).
    /// Boxed with an explicit `Send`: a dialled call runs the keypad, whose
    /// `*8` dials again, and the compiler cannot see through that cycle.
    pub(super) fn dial(
        &self,
        conference: Conference,
        caller: Caller,
        target: String,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<String, tutti_api::live::LiveError>>
                + Send
                + '_,
        >,
    > {
        Box::pin(self.dial_inner(conference, caller, target))
    }

    async fn dial_inner(
        &self,
        conference: Conference,
        mut caller: Caller,
        target: String,
    ) -> Result<String, tutti_api::live::LiveError> {
        use tutti_api::live::LiveError;
        let (sockets, local) =
            self.bind_media().await.map_err(|e| LiveError::Unavailable(e.to_string()))?;
        let place = PlaceCall {
            target: target.clone(),
            from_user: conference.dial_in_number.clone(),
            from_display_name: Some(conference.name.clone()).filter(|n| !n.is_empty()),
            local,
            headers: Vec::new(),
        };
        let (tx, rx) = mpsc::channel(CALL_INPUT_BACKLOG);
        let call =
            self.inner.ua.place_call(place).await.map_err(|e| LiveError::Invalid(e.to_string()))?;
        self.state().calls.insert(call, tx);
        caller.ani = target;
        let caller_uid = caller.uid.clone();
        // The INVITE is on its way. The UA's own Presenting may beat the inbox
        // registration above, so it is reported from here; later progress needs a
        // network round trip.
        self.inner.events.publish(Event::Outbound {
            conference_uid: conference.uid.clone(),
            caller_uid: caller_uid.clone(),
            progress: tutti_api::live::OutboundProgress::Presenting,
        });
        tokio::spawn(self.clone().outbound(call, conference, caller, sockets, rx));
        Ok(caller_uid)
    }

    /// One outbound call: progress events until answered, then a member.
    async fn outbound(
        self,
        call: CallId,
        conference: Conference,
        caller: Caller,
        sockets: tutti_media::ports::RtpSockets,
        mut inputs: mpsc::Receiver<CallInput>,
    ) {
        use tutti_api::live::OutboundProgress;
        let caller_uid = caller.uid.clone();
        let report = |progress| {
            self.inner.events.publish(Event::Outbound {
                conference_uid: conference.uid.clone(),
                caller_uid: caller_uid.clone(),
                progress,
            });
        };
        let (mut connected, mut negotiated) = (false, None);
        while !(connected && negotiated.is_some()) {
            match inputs.recv().await {
                Some(CallInput::Progress(progress)) => match progress {
                    CallProgress::Presenting => {}
                    CallProgress::Ringing => report(OutboundProgress::Ringing),
                    CallProgress::Connected => {
                        report(OutboundProgress::Connected);
                        connected = true;
                    }
                    CallProgress::Busy => {
                        report(OutboundProgress::Busy);
                        break;
                    }
                    CallProgress::Failed(reason) => {
                        tracing::info!(%call, %reason, "outbound call failed");
                        report(OutboundProgress::Failed);
                        break;
                    }
                },
                Some(CallInput::MediaChanged(n)) => negotiated = Some(n),
                Some(CallInput::Hangup(_)) | None => {
                    if !connected {
                        report(OutboundProgress::Failed);
                    }
                    break;
                }
                Some(CallInput::Digit(_) | CallInput::Answered) => {}
            }
        }
        let joined = match (connected, negotiated) {
            (true, Some(negotiated)) => match self.start_leg(call, &negotiated, sockets) {
                Ok(leg) => match self.inner.ua.call(call) {
                    Some(control) => {
                        self.join(&conference, caller, leg, control, None, None).await.ok()
                    }
                    None => None,
                },
                Err(e) => {
                    tracing::error!(error = %e, "leg setup failed");
                    None
                }
            },
            _ => None,
        };
        match joined {
            Some(uid) => {
                self.in_conference(&uid, &mut inputs).await;
                self.leave(&uid).await;
            }
            None => {
                self.state().legs.retain(|_, (leg_call, _)| *leg_call != call);
                let _ = self.inner.ua.hangup(call).await;
            }
        }
        self.state().calls.remove(&call);
    }

    /// Decides whether the call may enter, answers it and joins it to its
    /// conference; returns the new caller's UID.
    async fn admit_and_join(
        &self,
        incoming: &IncomingCall,
        inputs: &mut mpsc::Receiver<CallInput>,
    ) -> Result<String, Refusal> {
        let store = &self.inner.store;
        let dialled =
            dialplan::parse_user_part(&incoming.request_user).ok_or(Refusal::Status(404))?;
        let entry = match store.conference_by_number(&dialled.number).await {
            Ok(Some(conference)) => match dialled.pin.as_deref() {
                _ if !dialplan::needs_pin(&conference) => Entry::Known {
                    conference: Box::new(conference),
                    role: Role::Participant,
                    person_uid: None,
                },
                Some(pin) => {
                    let role =
                        dialplan::role_for_pin(&conference, pin).ok_or(Refusal::Status(403))?;
                    Entry::Known { conference: Box::new(conference), role, person_uid: None }
                }
                None => Entry::AskPin(PinCheck::Conference(Box::new(conference))),
            },
            Ok(None) => {
                let customer = store
                    .customer_by_did(&dialled.number)
                    .await
                    .map_err(|_| Refusal::Status(500))?
                    .ok_or(Refusal::Status(404))?;
                match dialled.pin.as_deref() {
                    Some(pin) => {
                        let (conference, role, person_uid) = self
                            .check_pin(&PinCheck::Customer(Box::new(customer)), pin)
                            .await
                            .ok_or(Refusal::Status(403))?;
                        Entry::Known { conference: Box::new(conference), role, person_uid }
                    }
                    None => Entry::AskPin(PinCheck::Customer(Box::new(customer))),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "dial plan lookup failed");
                return Err(Refusal::Status(500));
            }
        };
        // While the conference is known the caller can still be refused with a
        // SIP status; a DID caller's conference is only known after the PIN.
        let known = match &entry {
            Entry::Known { conference, .. } => Some(&**conference),
            Entry::AskPin(PinCheck::Conference(conference)) => Some(&**conference),
            Entry::AskPin(PinCheck::Customer(_)) => None,
        };
        // A caller about to enter keeps its seat; one about to type a PIN only
        // learns now whether the conference would take it.
        let mut seat = match known {
            Some(conference) => Some(self.admission(conference).await.map_err(|refusal| {
                match refusal {
                    // Locked: say so in early media, then 403.
                    Refusal::Status(403) => {
                        Refusal::Announce { prompt: PromptName::Locked, status: 403 }
                    }
                    other => other,
                }
            })?),
            None => None,
        };
        if matches!(entry, Entry::AskPin(_)) {
            seat = None;
        }

        // Answer with a media leg.
        let (sockets, local) = self.bind_media().await.map_err(|e| {
            tracing::error!(error = %e, "no RTP port");
            Refusal::Status(503)
        })?;
        let negotiated = match incoming.answer(local).await {
            Ok(Some(negotiated)) => {
                // A CANCEL can end the INVITE transaction while our 200 is
                // queued, and then no 200 ever leaves: only the ACK proves the
                // caller is here.
                if !wait_for_ack(inputs).await {
                    return Err(Refusal::Gone);
                }
                negotiated
            }
            // A late offer: the answer comes in the ACK itself.
            Ok(None) => wait_for_late_answer(inputs).await.ok_or(Refusal::Gone)?,
            Err(e) => {
                tracing::info!(error = %e, "answer failed");
                return Err(Refusal::Gone);
            }
        };
        let leg = self.start_leg(incoming.call, &negotiated, sockets).map_err(|e| {
            tracing::error!(error = %e, "leg setup failed");
            Refusal::Gone
        })?;
        let key = leg.key();
        let (conference, role, person_uid, pin, leg) = match entry {
            Entry::Known { conference, role, person_uid } => {
                (*conference, role, person_uid, dialled.pin.clone().unwrap_or_default(), leg)
            }
            Entry::AskPin(check) => {
                let Some((conference, role, person_uid, pin, leg)) =
                    self.pin_entry(leg, &check, inputs).await
                else {
                    self.state().legs.remove(&key);
                    return Err(Refusal::HangUp);
                };
                match self.admission(&conference).await {
                    Ok(admitted) => seat = Some(admitted),
                    Err(refusal) => {
                        // Answered already: say why, then hang up.
                        let prompt = match refusal {
                            Refusal::Status(403) => PromptName::Locked,
                            _ => PromptName::Goodbye,
                        };
                        self.say_alone(leg, prompt, inputs).await;
                        self.state().legs.remove(&key);
                        return Err(Refusal::HangUp);
                    }
                }
                (conference, role, person_uid, pin, leg)
            }
        };

        let (leg, spoken_name) = if conference.announce_caller_name {
            match self.record_name(leg, inputs).await {
                Some(recorded) => recorded,
                None => {
                    self.state().legs.remove(&key);
                    return Err(Refusal::HangUp);
                }
            }
        } else {
            (leg, None)
        };
        let caller = Caller {
            person_uid,
            name: incoming.from_display_name.clone().unwrap_or_default(),
            ani: incoming.from_user.clone().unwrap_or_default(),
            did: dialled.number.clone(),
            pin,
            ..Caller::new("", Direction::Inbound, role, Time::now())
        };
        let control = incoming.control.clone();
        match self.join(&conference, caller, leg, control, seat, spoken_name).await {
            Ok(uid) => Ok(uid),
            Err(e) => {
                tracing::error!(error = %e, "joining the conference failed; hanging up");
                self.state().legs.remove(&key);
                // Answered already: the caller must get a BYE.
                Err(Refusal::HangUp)
            }
        }
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
        let joined = self.join_opened(conference, caller, &room, leg, control, seat, spoken_name);
        match joined.await {
            Ok(uid) => Ok(uid),
            Err(e) => {
                self.abandon(&conference.uid).await;
                Err(e)
            }
        }
    }

    /// The rest of [`Engine::join`], once the conference is open and counts the
    /// caller as pending. Fails only before the caller becomes a member.
    #[allow(clippy::too_many_arguments)]
    async fn join_opened(
        &self,
        conference: &Conference,
        mut caller: Caller,
        room: &RoomHandle,
        leg: LegIo,
        control: CallControl,
        seat: Option<Seat>,
        spoken_name: Option<Audio>,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let store = &self.inner.store;
        let call_uid = caller.call_uid.clone();
        let flags = store
            .call_role_settings(&call_uid)
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
        let leg_handle = leg.handle();
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
        {
            let mut state = self.state();
            let green = Engine::enter_green_room(&state, &conference.uid, key, caller.role);
            entered(&mut state, &conference.uid);
            if let Some(seat) = seat {
                seat.release(&mut state);
            }
            if let Some(entry) = state.legs.get_mut(&key) {
                entry.1 = Some(caller_uid.clone());
            }
            state.callers.insert(
                caller_uid.clone(),
                LiveCaller {
                    caller: caller.clone(),
                    conference_uid: conference.uid.clone(),
                    leg: key,
                    leg_handle,
                    control,
                    name: spoken_name.clone(),
                    green,
                    recording: None,
                },
            );
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
    /// caller counts as pending until [`entered`] or [`Engine::abandon`].
    pub(super) async fn open_conference(
        &self,
        conference: &Conference,
    ) -> Result<(RoomHandle, String), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(live) = self.state().conferences.get_mut(&conference.uid) {
            live.pending += 1;
            return Ok((live.room.clone(), live.call_uid.clone()));
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
        // Two callers may arrive at once: the first one to get here wins.
        let (room, call_uid, won) = {
            let mut state = self.state();
            match state.conferences.get_mut(&conference.uid) {
                Some(live) => {
                    live.pending += 1;
                    (live.room.clone(), live.call_uid.clone(), false)
                }
                None => {
                    state.conferences.insert(
                        conference.uid.clone(),
                        LiveConference {
                            room: room.clone(),
                            call_uid: call.uid.clone(),
                            members: 0,
                            pending: 1,
                            music_on_hold,
                            music_playing: None,
                            green_room: call.greenroom,
                            breakouts: HashMap::new(),
                        },
                    );
                    (room, call.uid.clone(), true)
                }
            }
        };
        if won {
            self.inner.events.publish(Event::CallStarted {
                conference_uid: conference.uid.clone(),
                call_uid: call.uid.clone(),
            });
        } else {
            let _ = store.delete::<Call>(&call.uid).await;
        }
        Ok((room, call_uid))
    }

    /// A caller leaves: out of the room, stored as ended, announced; the last one
    /// out closes the call session.
    pub(super) async fn leave(&self, caller_uid: &str) {
        let (live, room, last) = {
            let mut state = self.state();
            let Some(live) = state.callers.remove(caller_uid) else { return };
            state.legs.remove(&live.leg);
            // A session that ended and started again under the same conference
            // is not this caller's.
            let (room, last) = match state.conferences.get_mut(&live.conference_uid) {
                Some(conf) if conf.call_uid == live.caller.call_uid => {
                    conf.members = conf.members.saturating_sub(1);
                    (Some(conf.room.clone()), conf.members == 0 && conf.pending == 0)
                }
                _ => (None, false),
            };
            (live, room, last)
        };
        if let Some(room) = &room {
            let _ = room.leave(live.leg).await;
            if let Some(name) = live.name.as_ref().filter(|_| !last) {
                let settings = self.inner.store.find::<Conference>(&live.conference_uid).await;
                if let Ok(Some(c)) = settings
                    && c.announce_caller_name
                    && c.entry_notifications
                {
                    self.announce(room, name, false, 0).await;
                }
            }
        }
        self.update_music_on_hold(&live.conference_uid);
        if let Some(recording_uid) = &live.recording {
            // The room finalised the file as the caller left.
            self.recording_ended(recording_uid).await;
        }
        let mut caller = live.caller;
        caller.active = false;
        caller.end_time = Some(Time::now());
        if let Err(e) = self.inner.store.update(&caller).await {
            tracing::error!(error = %e, caller = %caller_uid, "could not store the caller's end");
        }
        tracing::info!(conference = %live.conference_uid, caller = %caller_uid, "caller left");
        self.inner
            .events
            .publish(Event::CallerLeft { conference_uid: live.conference_uid.clone(), caller });
        if last {
            self.close_session(&live.conference_uid).await;
        }
    }

    /// A stored sound (the PBX's `enter_sound`, `music_on_hold_sound`), read
    /// from `<data-dir>/sounds/`.
    async fn stored_sound(&self, id: i64) -> Result<Audio, String> {
        let sound = self.inner.store.sound(id).await.map_err(|e| e.to_string())?;
        // The same resolution PLAYWAV uses: plain relative names, and the file
        // (after symbolic links) inside the sounds directory.
        let path = resolve_wav(&self.inner.config.sounds_dir, &sound.file_name)
            .await
            .map_err(|e| format!("{:?}: {e}", sound.file_name))?;
        // File reading and conversion off the runtime: a long sound must not
        // hold up the tasks that mix.
        tokio::task::spawn_blocking(move || {
            let audio = wav::read(&path).map_err(|e| e.to_string())?;
            let rate = audio.sample_rate;
            Audio::from_audio(audio, rate).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The conference's music on hold: its `music_on_hold_sound` when that is
    /// set and readable, else the bundled one (replaceable in `<data-dir>/sounds/`).
    async fn music_on_hold(&self, conference: &Conference) -> Option<Audio> {
        if let Some(id) = conference.music_on_hold_sound {
            match self.stored_sound(id).await {
                Ok(prompt) => return Some(prompt),
                Err(e) => tracing::warn!(
                    conference = %conference.uid, sound = id, error = %e,
                    "music on hold unusable; playing the default"
                ),
            }
        }
        match prompts::load(PromptName::MusicOnHold, &self.inner.config.sounds_dir) {
            Ok(prompt) => Some(prompt),
            Err(e) => {
                tracing::error!(error = %e, "default music on hold unusable");
                None
            }
        }
    }

    /// What the room hears when someone enters: the conference's `enter_sound`
    /// when set and readable, else the entry beep.
    /// Also says how long it lasts, in ms.
    async fn entry_sound(&self, conference: &Conference) -> (Option<Box<dyn FrameSource>>, u64) {
        if let Some(id) = conference.enter_sound {
            match self.stored_sound(id).await {
                Ok(sound) => {
                    let ms = sound.duration_ms();
                    return (Some(Box::new(Player::new(sound, false))), ms);
                }
                Err(e) => tracing::warn!(
                    conference = %conference.uid, sound = id, error = %e,
                    "enter sound unusable; beeping instead"
                ),
            }
        }
        (entry_beep(), u64::from(tutti_media::tone::BEEP_NOTE_MS) * 2)
    }

    /// Plays the music on hold to a caller alone in the conference's main room,
    /// and stops it when someone joins it or the caller leaves. The room commands are queued
    /// while the table is locked, so two callers joining and leaving at once
    /// cannot leave music playing to a caller who is no longer alone.
    pub(super) fn update_music_on_hold(&self, conference_uid: &str) {
        let mut guard = self.state();
        let state = &mut *guard;
        if !state.conferences.contains_key(conference_uid) {
            return;
        }
        // Alone in the main room: callers in the green room or a breakout are
        // out of earshot (a participant waiting for the call to go live hears
        // music).
        let mut main_room = state.callers.values().filter(|c| {
            c.conference_uid == conference_uid && !c.green && c.caller.breakout_uid.is_none()
        });
        let alone = match (main_room.next(), main_room.next()) {
            (Some(only), None) => Some(only.leg),
            _ => None,
        };
        let Some(conf) = state.conferences.get_mut(conference_uid) else { return };
        if conf.music_playing.map(|(leg, _)| leg) == alone {
            return;
        }
        if let Some((_, id)) = conf.music_playing.take() {
            let _ = conf.room.try_stop_playback(id);
        }
        if let (Some(leg), Some(prompt)) = (alone, conf.music_on_hold.clone()) {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let player = Box::new(Player::new(prompt, true));
            match conf.room.try_play(id, PlayTarget::Member(leg), player) {
                Ok(()) => {
                    conf.music_playing = Some((leg, id));
                    state.playbacks.insert(
                        id,
                        LivePlayback {
                            target: Target::Conference(conference_uid.to_owned()),
                            media: PlaybackMedia::Tts,
                            reported: false,
                        },
                    );
                }
                Err(e) => tracing::warn!(error = %e, "music on hold not started"),
            }
        }
    }

    /// Stores and announces the end of a recording the room already finished.
    pub(super) async fn recording_ended(&self, recording_uid: &str) {
        let store = &self.inner.store;
        let Ok(Some(mut recording)) =
            store.find::<tutti_api::model::Recording>(recording_uid).await
        else {
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

    /// A pending caller gave up before becoming a member (join failed, hung up
    /// mid-move): the session closes if that left it empty.
    pub(super) async fn abandon(&self, conference_uid: &str) {
        if let Some(conf) = self.state().conferences.get_mut(conference_uid) {
            conf.pending = conf.pending.saturating_sub(1);
        }
        self.close_session(conference_uid).await;
    }

    /// Ends a conference's live call session once nobody is left.
    pub(super) async fn close_session(&self, conference_uid: &str) {
        let live = {
            let mut state = self.state();
            match state.conferences.get(conference_uid) {
                Some(conf) if conf.members == 0 && conf.pending == 0 => {
                    state.conferences.remove(conference_uid)
                }
                _ => None,
            }
        };
        let Some(live) = live else { return };
        let store = &self.inner.store;
        // The room ended with its last caller, and with it any recording.
        for recording in store.recordings_of(conference_uid).await.unwrap_or_default() {
            if recording.ended_at.is_none() {
                self.recording_ended(&recording.uid).await;
            }
        }
        let now = Time::now();
        if let Ok(mut call) = store.get::<Call>(&live.call_uid).await {
            call.status = CallStatus::Closed;
            call.actual_end = Some(now);
            let _ = store.update(&call).await;
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

    /// Reports a digit to the facades and says what the keypad needs to know
    /// about the caller; `None` when the caller is gone.
    async fn digit(&self, caller_uid: &str, digit: char) -> Option<Standing> {
        let (conference_uid, caller) = {
            let state = self.state();
            let live = state.callers.get(caller_uid)?;
            (live.conference_uid.clone(), live.caller.clone())
        };
        tracing::debug!(caller = %caller_uid, %digit, "digit");
        self.inner.events.publish(Event::Digit {
            conference_uid: conference_uid.clone(),
            caller_uid: caller_uid.to_owned(),
            digit,
        });
        let mute_non_moderator = self
            .inner
            .store
            .get::<Conference>(&conference_uid)
            .await
            .map(|c| c.mute_non_moderator)
            .unwrap_or(false);
        Some(Standing {
            moderator: is_moderator(caller.role),
            dtmf_allowed: caller.dtmf_allowed,
            mute_non_moderator,
        })
    }

    async fn key_action(&self, caller_uid: &str, action: KeyAction) {
        let Some(conference_uid) =
            self.state().callers.get(caller_uid).map(|c| c.conference_uid.clone())
        else {
            return;
        };
        tracing::info!(caller = %caller_uid, ?action, "keypad");
        match action {
            KeyAction::MuteSelf => self.mute(caller_uid, Some(true)).await,
            KeyAction::UnmuteSelf => self.mute(caller_uid, Some(false)).await,
            KeyAction::ToggleMic => self.mute(caller_uid, None).await,
            KeyAction::ToggleHand => {
                let _ = self
                    .set_caller(caller_uid, CallerField::Attention, |c| {
                        c.attention = if c.attention > 0 { 0 } else { 1 };
                        c.attention_time = (c.attention > 0).then(Time::now);
                    })
                    .await;
            }
            KeyAction::MuteAll | KeyAction::UnmuteAll => {
                let mute = action == KeyAction::MuteAll;
                let others: Vec<String> = self
                    .state()
                    .callers
                    .iter()
                    .filter(|(_, c)| {
                        c.conference_uid == conference_uid && !is_moderator(c.caller.role)
                    })
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in others {
                    self.mute(&uid, Some(mute)).await;
                }
            }
            KeyAction::Lock
            | KeyAction::Unlock
            | KeyAction::NotificationsOff
            | KeyAction::NotificationsOn => {
                self.modify_conference(&conference_uid, |c| match action {
                    KeyAction::Lock => c.locked = true,
                    KeyAction::Unlock => c.locked = false,
                    KeyAction::NotificationsOff => c.entry_notifications = false,
                    _ => c.entry_notifications = true,
                })
                .await;
            }
            KeyAction::Invite(number) => {
                let Ok(conference) = self.inner.store.get::<Conference>(&conference_uid).await
                else {
                    return;
                };
                let callee = Caller::new("", Direction::Outbound, Role::Participant, Time::now());
                if let Err(e) = self.dial(conference, callee, number).await {
                    tracing::info!(error = %e, "*8 invitation failed");
                }
            }
            KeyAction::InvitePrompt => {
                let found = {
                    let state = self.state();
                    let leg = state.callers.get(caller_uid).map(|c| c.leg);
                    leg.zip(state.conferences.get(&conference_uid).map(|c| c.room.clone()))
                };
                if let Some((leg, room)) = found {
                    self.play_prompt(&room, leg, PromptName::Invite).await;
                }
            }
            KeyAction::InviteCancelled | KeyAction::Denied(_) => {}
        }
    }

    /// Mutes (`Some(true)`), unmutes or toggles (`None`) a caller.
    async fn mute(&self, caller_uid: &str, mute: Option<bool>) {
        let _ = self
            .set_caller(caller_uid, CallerField::Mute, |c| c.mute = mute.unwrap_or(!c.mute))
            .await;
    }

    /// Changes a stored conference setting and announces it.
    async fn modify_conference(&self, conference_uid: &str, change: impl FnOnce(&mut Conference)) {
        let store = &self.inner.store;
        let Ok(mut conference) = store.get::<Conference>(conference_uid).await else { return };
        change(&mut conference);
        conference.updated_at = Time::now();
        match store.update(&conference).await {
            Ok(()) => self.inner.events.publish(Event::ConferenceModified { conference }),
            Err(e) => tracing::error!(error = %e, "conference change not stored"),
        }
    }

    fn media_changed(&self, caller_uid: &str, negotiated: &Negotiated) {
        let handle = self.state().callers.get(caller_uid).map(|c| c.leg_handle.clone());
        let Some(handle) = handle else { return };
        let sending =
            matches!(negotiated.direction, MediaDirection::SendRecv | MediaDirection::SendOnly);
        let rtcp = (!negotiated.rtcp_mux).then_some(negotiated.remote_rtcp);
        handle.update_remote(negotiated.remote_rtp, rtcp, sending);
        tracing::info!(caller = %caller_uid, remote = %negotiated.remote_rtp, sending, "media changed");
    }

    /// Changes a live caller: the room applies what affects audio, the store keeps
    /// it, the bus announces it.
    pub(super) async fn set_caller(
        &self,
        caller_uid: &str,
        field: CallerField,
        change: impl FnOnce(&mut Caller),
    ) -> Option<Caller> {
        let (caller, conference_uid, leg, room) = {
            let mut state = self.state();
            let live = state.callers.get_mut(caller_uid)?;
            change(&mut live.caller);
            let snapshot = (live.caller.clone(), live.conference_uid.clone(), live.leg);
            let room = state.conferences.get(&snapshot.1).map(|c| c.room.clone());
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
        if let Err(e) = self.inner.store.update(&caller).await {
            tracing::error!(error = %e, caller = %caller_uid, "could not store the caller change");
        }
        self.inner.events.publish(Event::CallerUpdated {
            conference_uid,
            caller: caller.clone(),
            field,
        });
        Some(caller)
    }

    /// Plays one of the engine's own sounds (beeps, prompts): not reported.
    pub(super) async fn play_internal(
        &self,
        room: &RoomHandle,
        target: PlayTarget,
        source: Option<Box<dyn tutti_media::source::FrameSource>>,
    ) {
        let Some(source) = source else { return };
        let id = self.next_id();
        self.state().playbacks.insert(
            id,
            LivePlayback {
                target: Target::Conference(String::new()),
                media: PlaybackMedia::Tts,
                reported: false,
            },
        );
        let _ = room.play(id, target, source).await;
    }
}

/// A pending caller of an open conference becomes a member.
pub(super) fn entered(state: &mut State, conference_uid: &str) {
    if let Some(conf) = state.conferences.get_mut(conference_uid) {
        conf.pending = conf.pending.saturating_sub(1);
        conf.members += 1;
    }
}

/// A place in a conference kept for an admitted caller until it joins; given
/// back when dropped.
pub(super) struct Seat {
    engine: Engine,
    /// `None` once released.
    conference_uid: Option<String>,
}

impl Seat {
    /// Gives the seat back with the table already locked (a joined caller now
    /// counts as a member instead).
    pub(super) fn release(mut self, state: &mut State) {
        if let Some(uid) = self.conference_uid.take() {
            release_seat(state, &uid);
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(uid) = self.conference_uid.take() {
            release_seat(&mut self.engine.state(), &uid);
        }
    }
}

fn release_seat(state: &mut State, conference_uid: &str) {
    if let Some(seated) = state.seats.get_mut(conference_uid) {
        *seated = seated.saturating_sub(1);
        if *seated == 0 {
            state.seats.remove(conference_uid);
        }
    }
}

/// How a call enters: straight to a conference, or through PIN entry.
enum Entry {
    Known { conference: Box<Conference>, role: Role, person_uid: Option<String> },
    AskPin(PinCheck),
}

/// What a PIN typed at the prompt is checked against.
enum PinCheck {
    /// The conference's participant and moderator PINs.
    Conference(Box<Conference>),
    /// The PINs of the customer's persons (its DID was dialled).
    Customer(Box<tutti_api::model::Customer>),
}

/// Who may use the moderator keys: the PBX moderator and MaestroConference
/// operators.
fn is_moderator(role: Role) -> bool {
    matches!(role, Role::Moderator | Role::Operator)
}

async fn sleep_until_option(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

fn entry_beep() -> Option<Box<dyn FrameSource>> {
    // The room converts the tone's rate to its own.
    Tone::entry_beep(8000).ok().map(|t| Box::new(t) as Box<dyn FrameSource>)
}

/// Why a call was not joined.
pub(super) enum Refusal {
    Status(u16),
    Redirect(String),
    /// A prompt in early media (183), then the status.
    Announce {
        prompt: PromptName,
        status: u16,
    },
    /// Refused after it was answered (PIN entry failed, conference refused the
    /// DID caller): hang up.
    HangUp,
    /// The call ended or failed on the way; nothing more to send.
    Gone,
}

impl Refusal {
    /// The refusal as an API error, for a caller moved in by a facade.
    pub(super) fn as_live_error(&self) -> tutti_api::live::LiveError {
        use tutti_api::live::LiveError;
        match self {
            Refusal::Status(403) | Refusal::Announce { status: 403, .. } => {
                LiveError::Refused("conference is locked".into())
            }
            Refusal::Status(486) => LiveError::Refused("conference is full".into()),
            Refusal::Redirect(_) => LiveError::Refused("conference has not started".into()),
            Refusal::Status(480) => LiveError::Refused("conference is not available".into()),
            Refusal::Status(status) | Refusal::Announce { status, .. } => {
                LiveError::Unavailable(format!("conference refused the caller ({status})"))
            }
            Refusal::HangUp | Refusal::Gone => LiveError::NotFound("caller"),
        }
    }
}

async fn wait_for_late_answer(inputs: &mut mpsc::Receiver<CallInput>) -> Option<Negotiated> {
    let wait = async {
        while let Some(input) = inputs.recv().await {
            match input {
                CallInput::MediaChanged(negotiated) => return Some(negotiated),
                CallInput::Hangup(_) => return None,
                CallInput::Answered | CallInput::Digit(_) | CallInput::Progress(_) => {}
            }
        }
        None
    };
    tokio::time::timeout(LATE_ANSWER_TIMEOUT, wait).await.ok().flatten()
}

/// Waits for the ACK of our 2xx (true), or for the call to end first (false).
/// The user agent gives up and hangs up after 64*T1 without an ACK, so this
/// ends either way.
async fn wait_for_ack(inputs: &mut mpsc::Receiver<CallInput>) -> bool {
    while let Some(input) = inputs.recv().await {
        match input {
            CallInput::Answered => return true,
            CallInput::Hangup(_) => return false,
            CallInput::MediaChanged(_) | CallInput::Digit(_) | CallInput::Progress(_) => {}
        }
    }
    false
}
