//! The seam between the operations layer and live calls. Operations ask for
//! changes to live calls through [`LiveControl`], which the call engine (src/)
//! implements; every state change comes back as one [`Event`] on the
//! [`EventBus`], which each facade renders in its own format. Commands never
//! travel as events: a lagging subscriber may miss an event, never a command.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::model::{Breakout, CallTag, Caller, Conference, Recording, Role};
use crate::ops::OpsError;

/// What a [`LiveControl`] method answers: the operations layer's error, so a
/// refusal keeps its real reason (locked, full, not started, ...) all the way to
/// the client.
pub type LiveResult<T> = Result<T, OpsError>;
/// The future a [`LiveControl`] method returns; boxed so the trait stays
/// object-safe (facades hold an `Arc<dyn LiveControl>`).
pub type LiveFuture<'a, T> = Pin<Box<dyn Future<Output = LiveResult<T>> + Send + 'a>>;

/// Who a playback or an action is aimed at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", content = "uid", rename_all = "lowercase")]
pub enum Target {
    /// One caller (by caller UID).
    Caller(String),
    /// Everyone in a conference (by conference UID).
    Conference(String),
}

/// What to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// A WAV file, already resolved to a path inside `<data-dir>/sounds/`;
    /// `name` is what the client called it, for the playback events.
    File { path: PathBuf, name: String },
    /// Text to speak through text-to-speech.
    Tts(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayRequest {
    pub target: Target,
    pub media: Media,
    /// Repeat until stopped.
    pub looped: bool,
}

/// A change to one live caller that affects what is heard or allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerUpdate {
    Mute(bool),
    Deaf(bool),
    /// May speak in the main room.
    Mike(bool),
    /// May use keys 1 and 2 to mute and unmute.
    DtmfAllowed(bool),
    ListenOnly(bool),
    /// Volume steps, -4 (quietest) to +4 (loudest), 0 unchanged.
    VolumeIn(i64),
    VolumeOut(i64),
    /// Into a breakout (by UID) or back to the main room.
    Breakout(Option<String>),
    Role(Role),
    /// 0 (none) to 5.
    Attention(i64),
}

/// An outbound call to place and join to a conference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRequest {
    pub conference_uid: String,
    /// A telephone number (sent through the outbound proxy) or a SIP URI.
    pub number: String,
    pub name: Option<String>,
    pub role: Role,
    /// TCP 4011 remote-command, e.g. `!LeaveRecording`.
    pub remote_command: Option<String>,
}

/// The remote-command that records the conference once the callee is in.
pub const LEAVE_RECORDING: &str = "!LeaveRecording";

impl DialRequest {
    /// Whether the conference is to be recorded once the callee has joined (the
    /// TCP 4011 `!LeaveRecording` remote-command). The engine starts that one
    /// recording; nobody else does.
    pub fn records_conference(&self) -> bool {
        self.remote_command
            .as_deref()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(LEAVE_RECORDING))
    }
}

/// A change to a live call session's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallUpdate {
    /// The green room on (presenters wait apart) or off (the call goes live).
    GreenRoom(bool),
    /// Whether talking events are sent for this call.
    TalkingEvents(bool),
}

impl CallUpdate {
    /// The MaestroConference name of the field, as [`Event::CallUpdated`] carries it.
    pub fn field(self) -> &'static str {
        match self {
            CallUpdate::GreenRoom(_) => "greenroom",
            CallUpdate::TalkingEvents(_) => "talking",
        }
    }
}

/// What the operations layer may ask of live calls. Implemented by the call
/// engine; every method returns once the request is accepted (outcomes arrive as
/// events). The engine alone writes a caller's live fields (mute, deaf, mike,
/// volume, breakout, role, attention, active, energy); the descriptive ones (tag,
/// notes, data, custom) are the operations layer's.
pub trait LiveControl: Send + Sync + 'static {
    fn update_caller(&self, caller_uid: String, update: CallerUpdate) -> LiveFuture<'_, ()>;
    /// Hang up on a caller.
    fn drop_caller(&self, caller_uid: String) -> LiveFuture<'_, ()>;
    /// Move a live caller into another conference.
    fn move_caller(&self, caller_uid: String, conference_uid: String) -> LiveFuture<'_, ()>;
    /// The conference's stored settings changed (lock, beep, pins, ...): apply them.
    fn conference_changed(&self, conference_uid: String) -> LiveFuture<'_, ()>;
    fn play(&self, request: PlayRequest) -> LiveFuture<'_, ()>;
    fn stop_playback(&self, target: Target) -> LiveFuture<'_, ()>;
    /// Places an outbound call; returns the new caller's UID at once, progress
    /// follows as [`Event::Outbound`].
    fn dial(&self, request: DialRequest) -> LiveFuture<'_, String>;
    /// Starts recording a conference, or one caller of it; returns the recording UID.
    fn start_recording(
        &self,
        conference_uid: String,
        caller_uid: Option<String>,
    ) -> LiveFuture<'_, String>;
    fn stop_recording(&self, recording_uid: String) -> LiveFuture<'_, ()>;
    /// Ends a call session: every caller is hung up.
    fn close_call(&self, call_uid: String) -> LiveFuture<'_, ()>;
    /// Changes a live call session's settings (green room, talking events); the
    /// engine stores the field and announces it with [`Event::CallUpdated`].
    fn update_call(&self, call_uid: String, update: CallUpdate) -> LiveFuture<'_, ()>;
    /// Makes a breakout group private (it does not hear the main room) or
    /// open; the engine stores the flag, applies it to the room and announces
    /// it with [`Event::BreakoutUpdated`].
    fn set_breakout_private(&self, breakout_uid: String, private: bool) -> LiveFuture<'_, ()>;
    /// Checks an uploaded sound file and converts it to what the engine plays;
    /// refusals are [`OpsError::Invalid`] on `file`. Not available by default.
    fn convert_sound(&self, bytes: Vec<u8>) -> LiveFuture<'_, ConvertedSound> {
        let _ = bytes;
        Box::pin(async { Err(OpsError::NotAllowed("sound uploads need the call engine")) })
    }
    /// The callers of the conference that are talking now (the room hears
    /// speech from them), whether or not talking events are on. None by default.
    fn talking(&self, conference_uid: &str) -> Vec<String> {
        let _ = conference_uid;
        Vec::new()
    }
    /// How a connected caller's audio reaches tutti: loss, jitter and round
    /// trip from its RTP and RTCP, and the estimated MOS. `None` for a caller
    /// not connected (and by default).
    fn caller_quality(&self, caller_uid: &str) -> Option<CallQuality> {
        let _ = caller_uid;
        None
    }
    /// A stored recording of `customer_uid` was deleted and its file freed
    /// `bytes`: the customer's recordings running now may take them (they
    /// draw on one budget, the quota less what is on disk). Nothing by
    /// default.
    fn recording_bytes_freed(&self, customer_uid: &str, bytes: u64) {
        let _ = (customer_uid, bytes);
    }
    /// Appends the live side's own figures to `/metrics` (Prometheus text);
    /// nothing by default.
    fn render_metrics(&self, out: &mut String) {
        let _ = out;
    }
}

/// One caller's media quality as tutti receives it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CallQuality {
    /// RTP packets received from the caller.
    pub packets_received: u64,
    /// Of those expected, the share that never came, in percent.
    pub loss_percent: f64,
    /// Interarrival jitter (RFC 3550), in milliseconds.
    pub jitter_ms: f64,
    /// Round trip from RTCP reports, in milliseconds, once known.
    pub rtt_ms: Option<f64>,
    /// Estimated listening quality, 1.0 to 4.5 (ITU-T G.107 E-model).
    pub mos: f64,
}

/// An uploaded sound as the engine will play it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedSound {
    /// A WAV file: 16-bit mono PCM at `sample_rate`.
    pub wav: Vec<u8>,
    pub sample_rate: u32,
    pub duration_ms: u64,
    /// What was uploaded (`pcm16`, `pcm8`, `alaw`, `ulaw`).
    pub encoding: &'static str,
}

/// Outbound call progress, named as TCP 4011 CALLUSER events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutboundProgress {
    Presenting,
    Ringing,
    Connected,
    Busy,
    Failed,
}

impl OutboundProgress {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Presenting => "Presenting",
            Self::Ringing => "Ringing",
            Self::Connected => "Connected",
            Self::Busy => "Busy",
            Self::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PlaybackState {
    Playing,
    Done,
}

/// What a playback event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PlaybackMedia {
    /// The WAV file name as the client gave it.
    File(String),
    Tts,
}

/// Which caller field an [`Event::CallerUpdated`] is about (MaestroConference
/// raises a distinct event for some of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CallerField {
    Mute,
    Deaf,
    Mike,
    Breakout,
    Attention,
    Role,
    DtmfAllowed,
    ListenOnly,
    Volume,
    /// Fields without audio effect: tag, data, notes, custom1/2, ...
    Other,
}

/// One state change. Events carry snapshots of the objects they concern, so a
/// facade can render them without a database round trip.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event")]
pub enum Event {
    ConferenceCreated {
        conference: Conference,
    },
    ConferenceModified {
        conference: Conference,
    },
    /// The schedule moved a conference's status (SCHED, ACTIVE, IDLE, CLOSED):
    /// no setting changed, so TCP 4011 (whose MODCONF carries settings) does not
    /// show it.
    ConferenceStatus {
        conference: Conference,
    },
    ConferenceDeleted {
        conference: Conference,
    },
    CallStarted {
        conference_uid: String,
        call_uid: String,
    },
    /// A call session setting changed; `field` is its MaestroConference name
    /// (`greenroom`, `talking`, `notes`, ...).
    CallUpdated {
        conference_uid: String,
        call_uid: String,
        field: String,
    },
    CallEnded {
        conference_uid: String,
        call_uid: String,
    },
    CallerJoined {
        conference_uid: String,
        caller: Caller,
    },
    CallerLeft {
        conference_uid: String,
        caller: Caller,
    },
    CallerUpdated {
        conference_uid: String,
        caller: Caller,
        field: CallerField,
    },
    /// Sent only while the call's talking events are on ([`CallUpdate::TalkingEvents`]).
    Talking {
        conference_uid: String,
        call_uid: String,
        caller_uid: String,
        talking: bool,
    },
    Digit {
        conference_uid: String,
        call_uid: String,
        caller_uid: String,
        digit: char,
    },
    Playback {
        conference_uid: String,
        call_uid: String,
        target: Target,
        media: PlaybackMedia,
        state: PlaybackState,
    },
    /// Outbound call progress; `call_uid` is the session the callee joins,
    /// `None` until the conference has one.
    Outbound {
        conference_uid: String,
        call_uid: Option<String>,
        caller_uid: String,
        progress: OutboundProgress,
    },
    RecordingStarted {
        recording: Recording,
    },
    RecordingStopped {
        recording: Recording,
    },
    BreakoutCreated {
        conference_uid: String,
        breakout: Breakout,
    },
    BreakoutUpdated {
        conference_uid: String,
        breakout: Breakout,
    },
    TagUpdated {
        conference_uid: String,
        tag: CallTag,
    },
    /// The wall clock was moved (the test clock, `--test-clock`): everything
    /// computed from it is recomputed.
    ClockChanged,
}

/// How many events a subscriber may fall behind before it starts missing the
/// oldest ones. A slow subscriber never blocks a publisher.
pub const EVENT_BACKLOG: usize = 4096;

/// The broadcast bus every state change goes through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        Self { sender: broadcast::channel(EVENT_BACKLOG).0 }
    }

    /// Publishes an event to every current subscriber; never waits.
    pub fn publish(&self, event: Event) {
        // An error only means nobody is subscribed right now.
        let _ = self.sender.send(Arc::new(event));
    }

    /// A receiver of every event published from now on. A receiver that falls
    /// more than [`EVENT_BACKLOG`] events behind gets `RecvError::Lagged` and
    /// continues with the oldest event still kept.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit(d: char) -> Event {
        Event::Digit {
            conference_uid: "c".into(),
            call_uid: "s".into(),
            caller_uid: "u".into(),
            digit: d,
        }
    }

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_order() {
        let bus = EventBus::new();
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(digit('1'));
        bus.publish(digit('#'));
        for rx in [&mut a, &mut b] {
            assert_eq!(*rx.recv().await.expect("first"), digit('1'));
            assert_eq!(*rx.recv().await.expect("second"), digit('#'));
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_instead_of_blocking_the_publisher() {
        let bus = EventBus::new();
        let mut slow = bus.subscribe();
        for _ in 0..EVENT_BACKLOG + 10 {
            bus.publish(digit('5'));
        }
        assert!(matches!(slow.recv().await, Err(broadcast::error::RecvError::Lagged(10))));
        assert_eq!(*slow.recv().await.expect("continues"), digit('5'));
    }

    #[test]
    fn publishing_without_subscribers_is_fine() {
        EventBus::new().publish(digit('0'));
    }

    #[test]
    fn events_serialise_with_their_name() {
        let json = serde_json::to_value(digit('7')).expect("json");
        assert_eq!(json["event"], "Digit");
        assert_eq!(json["digit"], "7");
    }
}
