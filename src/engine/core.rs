//! The running call engine: its shared state, its background tasks (SIP
//! events to call tasks, leg notices, room events, energy writes) and the media
//! plumbing every call needs (RTP ports, legs, room tasks). What a call does
//! lives beside it (`inbound`, `outbound`, `membership`, `actions`, `sounds`);
//! who is where is the sans-IO [`super::registry`]. The state is behind one mutex that is
//! only held for synchronous steps, never across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tutti_api::Store;
use tutti_api::live::{Event, EventBus, PlaybackMedia, PlaybackState, Target};
use tutti_api::model::EndReason;
use tutti_media::io::{LegHandle, LegIo, LegKey, LegNotice, NOTICE_BACKLOG};
use tutti_media::leg::{Leg, SilenceLimits};
use tutti_media::mixer::MixerConfig;
use tutti_media::ports::PortPool;
use tutti_media::room::{PlaybackId, RoomEvent, RoomHandle};
use tutti_media::wav::Prompt as Audio;
use tutti_sip::sdp::{LocalMedia, MediaDirection, Negotiated};
use tutti_sip::ua::{CallControl, CallId, CallProgress, HangupReason, SipUa, UaEvent};

use super::media::leg_config;
use super::registry::Registry;

/// Room events waiting for the engine.
const ROOM_EVENT_BACKLOG: usize = 4096;
/// How long a stopping server waits for call tasks to finish once every
/// caller's end is recorded.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);
/// Inputs waiting for one call's task.
pub(super) const CALL_INPUT_BACKLOG: usize = 64;
/// How often the callers' energy levels are written to the store, in one
/// transaction: a meter for clients, not worth a write per report.
const ENERGY_FLUSH: Duration = Duration::from_secs(2);

/// What the engine needs from the configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub media_address: IpAddr,
    pub rtp_ports: (u16, u16),
    pub sounds_dir: PathBuf,
    pub recordings_dir: PathBuf,
    /// Bytes of recordings each customer may keep; a recording does not
    /// start once its customer's take this much.
    pub recording_quota_bytes: u64,
    /// Free bytes kept on the recordings' file system: a recording does not
    /// start below it, and a running one stops there (0: none).
    pub recording_min_free_bytes: u64,
    pub tts_dir: PathBuf,
    /// How long a caller's phone may send nothing before it is hung up
    /// (`None`: never).
    pub silence: Option<SilenceLimits>,
    /// Whether a caller alone hears the bundled music when its conference
    /// names no music of its own (`false`: silence).
    pub default_music_on_hold: bool,
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
    /// The phone sent nothing (no RTP, no RTCP) for the silence limit.
    Silent {
        held: bool,
        for_ms: u64,
    },
}

/// What the engine keeps per live conference beside the registry's data.
#[derive(Clone)]
pub(super) struct ConferenceIo {
    pub room: RoomHandle,
    /// What a caller alone in the conference hears.
    pub music_on_hold: Option<Audio>,
    /// The stored sound that music is (`None`: the bundled music).
    pub music_sound: Option<i64>,
}

/// What the engine keeps per live caller beside the registry's data.
pub(super) struct CallerIo {
    /// Steers the leg while the room owns it (re-INVITE, outgoing digits).
    pub leg_handle: LegHandle,
    pub control: CallControl,
    /// The caller's recorded name, for `announce_caller_name`.
    pub name: Option<Audio>,
}

/// What a playback is about, to report it when it ends.
pub struct LivePlayback {
    pub conference_uid: String,
    pub call_uid: String,
    pub target: Target,
    pub media: PlaybackMedia,
    /// Reported to clients (prompts of the engine's own are not).
    pub reported: bool,
}

#[derive(Default)]
pub(super) struct State {
    /// Who is in which conference.
    pub live: Registry<ConferenceIo, CallerIo>,
    /// Every call's task, by SIP call.
    pub calls: HashMap<CallId, mpsc::Sender<CallInput>>,
    /// Which call a leg belongs to, and its caller once joined.
    pub legs: HashMap<LegKey, (CallId, Option<String>)>,
    pub playbacks: HashMap<PlaybackId, LivePlayback>,
    /// Energy levels reported since the last write, by caller UID.
    pub energy: HashMap<String, i64>,
    /// The recording budget each customer's running recordings share (bytes
    /// of its quota left), by customer UID; held by the recorders, so it
    /// lives exactly as long as one of them runs.
    pub recording_budgets: HashMap<String, std::sync::Weak<std::sync::atomic::AtomicU64>>,
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
    /// Wrong PINs across calls (src/engine/pin_guard.rs).
    pub(super) pin_guard: super::pin_guard::PinGuard,
    /// Held while a conference's call session is being opened, so two callers
    /// arriving at once make one session row, never a second that is then
    /// deleted (an API could see it in between).
    pub(super) opening: tokio::sync::Mutex<()>,
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
                pin_guard: Default::default(),
                opening: tokio::sync::Mutex::new(()),
            }),
        };
        tokio::spawn(engine.clone().ua_loop(ua_events));
        tokio::spawn(engine.clone().notice_loop(notices_rx));
        tokio::spawn(engine.clone().room_event_loop(room_events_rx));
        let energy = tokio::spawn(engine.clone().energy_writer());
        engine.background(energy.abort_handle());
        Ok(engine)
    }

    /// Keeps a background task that uses the store, to stop it at shutdown.
    pub(super) fn background(&self, task: tokio::task::AbortHandle) {
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
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
        self.state().live.callers.len()
    }

    /// Stops the background tasks (the scheduler), records every caller's end
    /// (reason: shutdown), hangs up every call (BYE to confirmed dialogs) and
    /// gives the call tasks a moment to finish. A vanished phone never answers
    /// its BYE; its end is recorded all the same, so nothing is left open.
    pub async fn shutdown(&self) {
        for task in self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        let callers: Vec<String> = self.state().live.callers.keys().cloned().collect();
        for caller in callers {
            self.leave(&caller, EndReason::Shutdown).await;
        }
        self.inner.ua.shutdown().await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
        while !self.state().calls.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                // Recorded already; only their signalling is unfinished.
                tracing::debug!(
                    calls = self.state().calls.len(),
                    "call signalling unfinished at exit"
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

    pub(super) fn to_call(&self, call: CallId, input: CallInput) {
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
                LegNotice::Silent { leg, held, for_ms } => {
                    (leg, CallInput::Silent { held, for_ms })
                }
            };
            let call = self.state().legs.get(&leg).map(|(call, _)| *call);
            if let Some(call) = call {
                self.to_call(call, input);
            }
        }
    }

    /// The caller a leg carries, with its conference and call session.
    fn caller_of_leg(&self, key: LegKey) -> Option<(String, String, String, bool)> {
        let state = self.state();
        let uid = state.legs.get(&key)?.1.clone()?;
        let live = state.live.callers.get(&uid)?;
        let talking = state.live.conferences.get(&live.conference_uid)?.talking_events;
        Some((uid, live.conference_uid.clone(), live.caller.call_uid.clone(), talking))
    }

    async fn room_event_loop(self, mut room_events: mpsc::Receiver<RoomEvent>) {
        while let Some(event) = room_events.recv().await {
            match event {
                RoomEvent::Talking { key, talking } => {
                    {
                        let mut state = self.state();
                        let uid = state.legs.get(&key).and_then(|(_, c)| c.clone());
                        if let Some(live) = uid.and_then(|uid| state.live.callers.get_mut(&uid)) {
                            live.talking = talking;
                        }
                    }
                    if let Some((caller_uid, conference_uid, call_uid, true)) =
                        self.caller_of_leg(key)
                    {
                        self.inner.events.publish(Event::Talking {
                            conference_uid,
                            call_uid,
                            caller_uid,
                            talking,
                        });
                    }
                }
                RoomEvent::Energy { key, level } => {
                    let mut state = self.state();
                    let Some(uid) = state.legs.get(&key).and_then(|(_, c)| c.clone()) else {
                        continue;
                    };
                    if let Some(live) = state.live.callers.get_mut(&uid) {
                        live.caller.energy = i64::from(level);
                        state.energy.insert(uid, i64::from(level));
                    }
                }
                RoomEvent::RecordingEnded { path } => self.recording_ended_in_room(&path).await,
                RoomEvent::PlaybackDone { id, .. } => {
                    // Music on hold stopped from outside (STOPWAV to the caller):
                    // forget it, and start it again if the caller is still alone.
                    let music_of = self.state().live.music_ended(id);
                    if let Some(conference_uid) = music_of {
                        self.update_music_on_hold(&conference_uid);
                    }
                    let playback = self.state().playbacks.remove(&id);
                    if let Some(p) = playback.filter(|p| p.reported) {
                        self.inner.events.publish(Event::Playback {
                            conference_uid: p.conference_uid,
                            call_uid: p.call_uid,
                            target: p.target,
                            media: p.media,
                            state: PlaybackState::Done,
                        });
                    }
                }
            }
        }
    }

    /// Writes the energy levels reported since the last pass, in one
    /// transaction, every [`ENERGY_FLUSH`].
    async fn energy_writer(self) {
        let mut every = tokio::time::interval(ENERGY_FLUSH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let levels: Vec<(String, i64)> = self.state().energy.drain().collect();
            if let Err(e) = self.inner.store.set_caller_energies(&levels).await {
                tracing::warn!(error = %e, callers = levels.len(), "energy levels not stored");
            }
        }
    }

    /// An RTP/RTCP port pair and our side of the SDP for it. Both ports are
    /// bound before negotiation, since rtcp-mux is only known after it.
    pub(super) async fn bind_media(
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
    pub(super) fn start_leg(
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
        leg.handle().set_silence_limits(self.inner.config.silence);
        self.state().legs.insert(key, (call, None));
        Ok(leg)
    }

    /// A room task of its own: a conference's, or a caller's alone (PIN entry,
    /// name recording, announcements).
    pub(super) fn new_room(&self) -> Result<RoomHandle, tutti_media::room::RoomError> {
        RoomHandle::spawn(MixerConfig::default(), self.inner.room_events.clone())
    }
}

pub(super) async fn sleep_until_option(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
