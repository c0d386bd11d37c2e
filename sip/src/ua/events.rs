//! What the user agent tells the call engine ([`UaEvent`]) and the handles the engine
//! answers incoming calls with. Plain Rust types: the engine never sees rsipstack.

use std::fmt;

use tokio::sync::{mpsc, oneshot};

use super::UaError;
use ezk_sdp_types::SessionDescription;

use crate::sdp::{LocalMedia, Negotiated};

/// Our own identifier of one call (one INVITE dialog), unique for the life of a
/// [`super::SipUa`]. Not the SIP Call-ID, which the peer may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Progress of a call we placed; these map 1:1 to TCP 4011 CALLUSER events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallProgress {
    /// The INVITE was sent.
    Presenting,
    /// 180 or 183 arrived.
    Ringing,
    /// 2xx arrived and was acknowledged.
    Connected,
    /// 486, 600 or 603.
    Busy,
    /// Anything else: another final status, ring timeout, transport error.
    Failed(String),
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupReason {
    /// The peer sent BYE.
    RemoteBye,
    /// The caller cancelled before we answered.
    Cancelled,
    /// No refresh arrived within the session interval (RFC 4028).
    SessionExpired,
    /// No ACK came for our 2xx within 64*T1; we sent BYE.
    AckTimeout,
    /// The engine hung up (or the UA shut down).
    Local,
    /// The engine rejected or redirected the incoming call.
    Rejected(u16),
    /// An outbound call did not connect (see the preceding `Progress` event).
    NotConnected,
    /// Signalling failed (transport error, unexpected stack error).
    Error(String),
}

/// Events from the user agent to the call engine. Every call ends with exactly one
/// `Hangup`.
#[derive(Debug)]
pub enum UaEvent {
    /// A new INVITE: answer it through [`IncomingCall`]'s methods. Boxed: it is
    /// much larger than the other events.
    IncomingCall(Box<IncomingCall>),
    /// An incoming call we answered is confirmed (ACK received).
    Answered {
        /// The call.
        call: CallId,
    },
    /// Progress of a call we placed.
    Progress {
        /// The call.
        call: CallId,
        /// Its new state.
        state: CallProgress,
    },
    /// A DTMF digit from SIP INFO (RFC 4733 digits come from the media layer).
    Dtmf {
        /// The call.
        call: CallId,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
    },
    /// The media session changed: hold/resume, codec change, new address, or the
    /// answer of a late offer (from the ACK) or of a call we placed.
    MediaChanged {
        /// The call.
        call: CallId,
        /// The stream now in force.
        negotiated: Negotiated,
    },
    /// The call ended.
    Hangup {
        /// The call.
        call: CallId,
        /// Why.
        reason: HangupReason,
    },
}

/// Commands from the engine to a call's task.
#[derive(Debug)]
pub(crate) enum CallCommand {
    Ringing,
    EarlyMedia { local: LocalMedia, reply: oneshot::Sender<Result<Negotiated, UaError>> },
    Answer { local: LocalMedia, reply: oneshot::Sender<Result<Option<Negotiated>, UaError>> },
    Reject { status: u16 },
    Redirect { uri: String },
    Hangup,
}

/// The engine's handle on one call: hang up, and for incoming calls, answer.
#[derive(Debug, Clone)]
pub struct CallControl {
    pub(crate) id: CallId,
    pub(crate) commands: mpsc::Sender<CallCommand>,
}

impl CallControl {
    /// The call this handle controls.
    pub fn id(&self) -> CallId {
        self.id
    }

    async fn send(&self, command: CallCommand) -> Result<(), UaError> {
        self.commands.send(command).await.map_err(|_| UaError::CallGone(self.id))
    }

    /// Sends 180 Ringing.
    pub async fn ringing(&self) -> Result<(), UaError> {
        self.send(CallCommand::Ringing).await
    }

    /// Sends 183 Session Progress with our SDP answer, for an announcement
    /// before a final refusal (early media, RFC 3960's gateway model). Needs an
    /// offer in the INVITE; the media then flows until the call is rejected or
    /// answered (a later answer repeats the same SDP).
    pub async fn early_media(&self, local: LocalMedia) -> Result<Negotiated, UaError> {
        let (reply, rx) = oneshot::channel();
        self.send(CallCommand::EarlyMedia { local, reply }).await?;
        rx.await.map_err(|_| UaError::CallGone(self.id))?
    }

    /// Answers with 200 OK. With an offer in the INVITE the 200 carries our answer and
    /// the negotiated stream is returned. For a late offer (INVITE without SDP) the
    /// 200 carries our offer, `None` is returned, and the stream arrives as
    /// [`UaEvent::MediaChanged`] when the ACK brings the answer. An offer that cannot
    /// be answered is rejected with the matching status (488, ...) and an error
    /// returned.
    pub async fn answer(&self, local: LocalMedia) -> Result<Option<Negotiated>, UaError> {
        let (reply, rx) = oneshot::channel();
        self.send(CallCommand::Answer { local, reply }).await?;
        rx.await.map_err(|_| UaError::CallGone(self.id))?
    }

    /// Rejects with a final status (403, 404, 480, 486, 488, 503, ...).
    pub async fn reject(&self, status: u16) -> Result<(), UaError> {
        self.send(CallCommand::Reject { status }).await
    }

    /// Redirects with 302 Moved Temporarily to `uri`.
    pub async fn redirect(&self, uri: impl Into<String>) -> Result<(), UaError> {
        self.send(CallCommand::Redirect { uri: uri.into() }).await
    }

    /// Hangs up: BYE when confirmed, CANCEL while ringing out, 480 before answering.
    pub async fn hangup(&self) -> Result<(), UaError> {
        self.send(CallCommand::Hangup).await
    }
}

/// A new incoming call, as the engine needs it.
#[derive(Debug)]
pub struct IncomingCall {
    /// Our id of the call.
    pub call: CallId,
    /// The SIP Call-ID (for logs and CDRs).
    pub sip_call_id: String,
    /// The user part of the request URI: the number dialled.
    pub request_user: String,
    /// The whole request URI.
    pub request_uri: String,
    /// The From URI.
    pub from_uri: String,
    /// The From user part, if any.
    pub from_user: Option<String>,
    /// The From display name, if any.
    pub from_display_name: Option<String>,
    /// The To URI.
    pub to_uri: String,
    /// Headers the engine may care about (P-Asserted-Identity, Diversion, ...), as
    /// (name, value), in message order.
    pub headers: Vec<(String, String)>,
    /// The parsed SDP offer, or `None` for a late offer.
    pub offer: Option<SessionDescription>,
    /// Where the INVITE came from.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// Answer, reject, redirect or hang up through this.
    pub control: CallControl,
}

impl IncomingCall {
    /// Sends 180 Ringing.
    pub async fn ringing(&self) -> Result<(), UaError> {
        self.control.ringing().await
    }

    /// See [`CallControl::answer`].
    pub async fn answer(&self, local: LocalMedia) -> Result<Option<Negotiated>, UaError> {
        self.control.answer(local).await
    }

    /// See [`CallControl::early_media`].
    pub async fn early_media(&self, local: LocalMedia) -> Result<Negotiated, UaError> {
        self.control.early_media(local).await
    }

    /// See [`CallControl::reject`].
    pub async fn reject(&self, status: u16) -> Result<(), UaError> {
        self.control.reject(status).await
    }

    /// See [`CallControl::redirect`].
    pub async fn redirect(&self, uri: impl Into<String>) -> Result<(), UaError> {
        self.control.redirect(uri).await
    }
}
