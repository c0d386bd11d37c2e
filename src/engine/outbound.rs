//! Outbound calls (TCP 4011 CALLUSER, the keypad's `*8`, the APIs' dial-out):
//! a seat in the conference from the moment the call is placed, progress
//! events until it is answered, then a member like any other. A call placed
//! with the `!LeaveRecording` remote-command starts the conference's one
//! recording once the callee is in.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;
use tutti_api::live::{Event, OutboundProgress};
use tutti_api::model::{Caller, Conference};
use tutti_api::ops::{Conflict, OpsError, OpsResult};
use tutti_sip::ua::{CallId, CallProgress, PlaceCall};

use super::core::{CALL_INPUT_BACKLOG, CallInput, Engine};
use super::membership::Seat;

/// What to do once an outbound callee has joined.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct OnAnswer {
    /// Record the conference (unless a recording already runs).
    pub record_conference: bool,
}

impl Engine {
    /// Places an outbound call that joins `conference` as `caller` once answered;
    /// returns at once with the caller's UID (progress follows as events). The
    /// conference's admission rules decide first, and a seat is held while it
    /// rings. Boxed with an explicit `Send`: a dialled call runs the keypad,
    /// whose `*8` dials again, and the compiler cannot see through that cycle.
    pub(super) fn dial(
        &self,
        conference: Conference,
        caller: Caller,
        target: String,
        then: OnAnswer,
    ) -> Pin<Box<dyn Future<Output = OpsResult<String>> + Send + '_>> {
        Box::pin(self.dial_inner(conference, caller, target, then))
    }

    async fn dial_inner(
        &self,
        conference: Conference,
        mut caller: Caller,
        target: String,
        then: OnAnswer,
    ) -> OpsResult<String> {
        let seat = self.admission(&conference).await.map_err(|r| r.into_ops_error())?;
        let (sockets, local) =
            self.bind_media().await.map_err(|e| OpsError::internal("no RTP port", e))?;
        let place = PlaceCall {
            target: target.clone(),
            from_user: conference.dial_in_number.clone(),
            from_display_name: Some(conference.name.clone()).filter(|n| !n.is_empty()),
            local,
            headers: Vec::new(),
        };
        let (tx, rx) = mpsc::channel(CALL_INPUT_BACKLOG);
        let call = self
            .inner
            .ua
            .place_call(place)
            .await
            .map_err(|e| OpsError::invalid("number", e.to_string()))?;
        self.state().calls.insert(call, tx);
        caller.ani = target;
        let caller_uid = caller.uid.clone();
        // The INVITE is on its way. The UA's own Presenting may beat the inbox
        // registration above, so it is reported from here; later progress needs a
        // network round trip.
        self.report_outbound(&conference.uid, &caller_uid, OutboundProgress::Presenting);
        let task = self.clone().outbound(call, conference, caller, sockets, rx, seat, then);
        tokio::spawn(task);
        Ok(caller_uid)
    }

    /// Publishes outbound progress, with the call session the callee joins.
    fn report_outbound(&self, conference_uid: &str, caller_uid: &str, progress: OutboundProgress) {
        let call_uid =
            self.state().live.conferences.get(conference_uid).map(|c| c.call_uid.clone());
        self.inner.events.publish(Event::Outbound {
            conference_uid: conference_uid.to_owned(),
            call_uid,
            caller_uid: caller_uid.to_owned(),
            progress,
        });
    }

    /// One outbound call: progress events until answered, then a member.
    #[allow(clippy::too_many_arguments)]
    async fn outbound(
        self,
        call: CallId,
        conference: Conference,
        caller: Caller,
        sockets: tutti_media::ports::RtpSockets,
        mut inputs: mpsc::Receiver<CallInput>,
        seat: Seat,
        then: OnAnswer,
    ) {
        let caller_uid = caller.uid.clone();
        let report = |progress| self.report_outbound(&conference.uid, &caller_uid, progress);
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
                Some(CallInput::Hangup(_) | CallInput::Silent { .. }) | None => {
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
                        self.join(&conference, caller, leg, control, Some(seat), None).await.ok()
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
                if then.record_conference {
                    match self.recording_start(conference.uid.clone(), None).await {
                        Ok(_) | Err(OpsError::Conflict(Conflict::AlreadyRecording)) => {}
                        Err(e) => tracing::warn!(error = %e, "!LeaveRecording: not recorded"),
                    }
                }
                let reason = self.in_conference(&uid, &mut inputs).await;
                self.leave(&uid, reason).await;
            }
            None => {
                self.state().legs.retain(|_, (leg_call, _)| *leg_call != call);
                let _ = self.inner.ua.hangup(call).await;
            }
        }
        self.state().calls.remove(&call);
    }
}
