//! One call's task once its INVITE is answered: in-dialog requests (re-INVITE and
//! UPDATE offers, INFO DTMF, OPTIONS, BYE), the session timer, and the engine's
//! hangup. Shared by incoming and outgoing calls.

use std::sync::Arc;
use std::time::Instant;

use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle,
};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Request, StatusCode};
use rsipstack::transaction::key::TransactionRole;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::dtmf_info::{InfoBody, parse_info};
use super::events::CallCommand;
use super::inbound::sdp_refusal;
use super::refusal::{Refusal, warning_header};
use super::{CallId, HangupReason, Shared, UaError, UaEvent, headers};
use crate::sdp::{self, LocalMedia, Negotiated, PendingOffer};
use crate::session_timer::{self, Role, SessionTimer, TimerAction, UacNegotiator, UasDecision};

/// A session refresh we sent, as it came back: the new agreement, and for a refresh
/// by re-INVITE our offer with the peer's answer body.
struct RefreshResult {
    agreed: Option<session_timer::Negotiated>,
    answer: Option<(PendingOffer, Vec<u8>)>,
}

/// The state of one call, owned by its task.
pub(crate) struct Call {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: CallId,
    pub(crate) sip_call_id: String,
    pub(crate) dialog: InviteDialog,
    pub(crate) states: DialogStateReceiver,
    pub(crate) commands: mpsc::Receiver<CallCommand>,
    /// Our side of the media session, once the engine has given it.
    pub(crate) local: Option<LocalMedia>,
    pub(crate) negotiated: Option<Negotiated>,
    /// Our offer sent in a 2xx, with the CSeq of the INVITE it answers: its answer
    /// comes in that INVITE's ACK.
    pub(crate) pending_offer: Option<(PendingOffer, u32)>,
    pub(crate) timer: Option<SessionTimer>,
    /// Emit `Answered` when the ACK arrives (incoming calls).
    pub(crate) announce_ack: bool,
    /// The peer's Allow lists UPDATE: refresh with UPDATE, else with re-INVITE.
    pub(crate) peer_allows_update: bool,
    refresh_tx: mpsc::Sender<RefreshResult>,
    refresh_rx: mpsc::Receiver<RefreshResult>,
}

impl Call {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: CallId,
        sip_call_id: String,
        dialog: InviteDialog,
        states: DialogStateReceiver,
        commands: mpsc::Receiver<CallCommand>,
    ) -> Self {
        let (refresh_tx, refresh_rx) = mpsc::channel(1);
        Call {
            shared,
            id,
            sip_call_id,
            dialog,
            states,
            commands,
            local: None,
            negotiated: None,
            pending_offer: None,
            timer: None,
            announce_ack: false,
            peer_allows_update: false,
            refresh_tx,
            refresh_rx,
        }
    }

    /// Our local media for the next SDP we send, with the next `o=` version.
    fn next_local(&mut self) -> Option<LocalMedia> {
        let local = self.local.as_mut()?;
        local.session_version += 1;
        Some(local.clone())
    }

    /// Runs the established call until it ends, and says why.
    pub(crate) async fn run_confirmed(&mut self) -> HangupReason {
        loop {
            let deadline = self.timer.as_ref().and_then(SessionTimer::poll_timeout);
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                state = self.states.recv() => {
                    let Some(state) = state else {
                        return HangupReason::Error("dialog state channel closed".into());
                    };
                    if let Some(reason) = self.on_state(state).await {
                        return reason;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(CallCommand::Hangup) | None => {
                        if let Err(e) = self.dialog.bye().await {
                            debug!(error = %e, "BYE failed");
                        }
                        return HangupReason::Local;
                    }
                    Some(CallCommand::Answer { reply, .. }) => {
                        reply.send(Err(UaError::WrongState(self.id))).ok();
                    }
                    Some(other) => debug!(?other, "command ignored on an answered call"),
                },
                Some(result) = self.refresh_rx.recv() => self.on_refreshed(result).await,
                () = sleep => {
                    let action = self.timer.as_mut().and_then(|t| t.handle_timeout(Instant::now()));
                    match action {
                        Some(TimerAction::Refresh) => self.send_refresh(),
                        Some(TimerAction::Expire) => {
                            info!("session timer expired");
                            let reason = "SIP;cause=408;text=\"Session expired\"".to_owned();
                            self.dialog.bye_with_reason(reason).await.ok();
                            return HangupReason::SessionExpired;
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// Reacts to a dialog state change; `Some` when the call is over.
    pub(crate) async fn on_state(&mut self, state: DialogState) -> Option<HangupReason> {
        match state {
            DialogState::Confirmed(..) => {
                self.on_confirmed().await;
                None
            }
            DialogState::Updated(_, req, handle) => {
                self.on_modify(req, handle).await;
                None
            }
            DialogState::Info(_, req, handle) => {
                self.on_info(req, handle).await;
                None
            }
            DialogState::Options(_, _, handle) => {
                handle.respond(StatusCode::OK, Some(headers::capabilities()), None).await.ok();
                None
            }
            DialogState::Notify(_, _, handle)
            | DialogState::Refer(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Publish(_, _, handle) => {
                // A dropped handle is answered only after 64*T1: always answer.
                let allow = vec![Header::Allow(super::ALLOW.into())];
                handle.respond(StatusCode::MethodNotAllowed, Some(allow), None).await.ok();
                None
            }
            DialogState::Terminated(_, reason) => Some(hangup_reason(&reason, self.dialog.role())),
            _ => None,
        }
    }

    async fn on_confirmed(&mut self) {
        if let Some((pending, cseq)) = self.pending_offer.take() {
            let ack = self.dialog.last_remote_ack();
            let ack_cseq = ack.as_ref().and_then(|a| a.cseq_header().ok()?.seq().ok());
            match ack {
                Some(ack) if ack_cseq == Some(cseq) => {
                    let result = std::str::from_utf8(&ack.body)
                        .map_err(|_| sdp::SdpError::Malformed("ACK body is not UTF-8".into()))
                        .and_then(|text| sdp::apply_answer_str(&pending, text));
                    match result {
                        Ok(negotiated) => self.media_changed(negotiated).await,
                        // The offer in our 2xx stays unanswered: the session cannot
                        // work; RFC 3261 section 13.2.2.4 says end it.
                        Err(e) => {
                            warn!(error = %e, "no usable answer in the ACK; hanging up");
                            self.dialog.bye().await.ok();
                        }
                    }
                }
                // A Confirmed from another request before our ACK: keep waiting.
                _ => self.pending_offer = Some((pending, cseq)),
            }
        }
        if std::mem::take(&mut self.announce_ack) {
            self.shared.emit(UaEvent::Answered { call: self.id }).await;
        }
    }

    async fn media_changed(&mut self, negotiated: Negotiated) {
        if self.negotiated.as_ref() == Some(&negotiated) {
            return;
        }
        self.negotiated = Some(negotiated.clone());
        self.shared.emit(UaEvent::MediaChanged { call: self.id, negotiated }).await;
    }

    /// A re-INVITE or UPDATE: a new offer (hold, resume, codec change, new address),
    /// a session refresh, or an offerless re-INVITE asking for our offer.
    async fn on_modify(&mut self, req: Request, handle: TransactionHandle) {
        let timer_request = match headers::timer_request(&req) {
            Ok(timer_request) => timer_request,
            Err(e) => {
                let refusal = Refusal::new(400, "Bad Session Timer", e.to_string());
                self.refuse(&req, &handle, &refusal, vec![]).await;
                return;
            }
        };
        let timer_response =
            match session_timer::uas_decide(&self.shared.config.session_timer, &timer_request) {
                UasDecision::Reject { min_se } => {
                    let min_se = vec![Header::MinSE(min_se.to_string().into())];
                    handle.respond(StatusCode::from(422), Some(min_se), None).await.ok();
                    return;
                }
                UasDecision::Accept(response) => response,
            };
        let mut response_headers = headers::timer_response_headers(timer_response.as_ref());
        let mut body = None;
        let mut new_media = None;
        if !req.body.is_empty() {
            let Some(local) = self.next_local() else {
                handle.reply(StatusCode::from(491)).await.ok();
                return;
            };
            let answer = std::str::from_utf8(&req.body)
                .map_err(|_| sdp::SdpError::Malformed("body is not UTF-8".into()))
                .and_then(|text| sdp::answer_str(text, &self.shared.config.media_policy, &local));
            match answer {
                Ok(answer) => {
                    body = Some(answer.sdp.to_string().into_bytes());
                    new_media = Some(answer.negotiated);
                }
                Err(e) => {
                    // The old session stays in force (RFC 3261 section 14.2).
                    self.refuse(&req, &handle, &sdp_refusal(&e), vec![]).await;
                    return;
                }
            }
        } else if req.method == Method::Invite {
            let Some(local) = self.next_local() else {
                handle.reply(StatusCode::from(491)).await.ok();
                return;
            };
            let offer = sdp::offer(&self.shared.config.media_policy, &local);
            body = Some(offer.sdp.to_string().into_bytes());
            let cseq = req.cseq_header().ok().and_then(|c| c.seq().ok()).unwrap_or_default();
            self.pending_offer = Some((offer.pending, cseq));
        }
        if body.is_some() {
            response_headers.push(headers::content_type_sdp());
        }
        if let Err(e) = handle.respond(StatusCode::OK, Some(response_headers), body).await {
            debug!(error = %e, "could not answer the re-offer");
            return;
        }
        if let Some(response) = timer_response {
            let now = Instant::now();
            match self.timer.as_mut() {
                Some(timer) => timer.handle_refresh(now, response.negotiated(), Role::Uas),
                None => self.timer = Some(SessionTimer::new(now, response.negotiated(), Role::Uas)),
            }
        }
        if let Some(negotiated) = new_media {
            self.media_changed(negotiated).await;
        }
    }

    /// Refuses an in-dialog request with a Warning naming the problem, and logs it
    /// (the call's span names the SIP Call-ID).
    async fn refuse(
        &self,
        req: &Request,
        handle: &TransactionHandle,
        refusal: &Refusal,
        mut response_headers: Vec<Header>,
    ) {
        self.shared.refusals.log(None, &req.method.to_string(), refusal);
        response_headers.push(warning_header(&self.shared.warn_agent, &refusal.detail));
        handle.respond(refusal.status_code(), Some(response_headers), None).await.ok();
    }

    async fn on_info(&mut self, req: Request, handle: TransactionHandle) {
        let content_type = headers::first(req.headers.iter(), "Content-Type");
        match parse_info(content_type.as_deref(), &req.body) {
            InfoBody::Digit(digit) => {
                handle.reply(StatusCode::OK).await.ok();
                debug!(%digit, "DTMF by INFO");
                self.shared.emit(UaEvent::Dtmf { call: self.id, digit }).await;
            }
            InfoBody::Empty => {
                handle.reply(StatusCode::OK).await.ok();
            }
            InfoBody::BadDigit => {
                let detail = "the DTMF body carries no digit (0-9, *, #, A-D)";
                let refusal = Refusal::new(400, "No DTMF Digit", detail);
                self.refuse(&req, &handle, &refusal, vec![]).await;
            }
            InfoBody::Unsupported => {
                let accept = vec![Header::Accept(super::ACCEPT.into())];
                handle.respond(StatusCode::UnsupportedMediaType, Some(accept), None).await.ok();
            }
        }
    }

    /// Sends a session refresh in the background (RFC 4028 section 7.4): UPDATE
    /// without a body when the peer allows UPDATE, else a re-INVITE with a fresh offer
    /// (every UA takes re-INVITE). The outcome comes back on `refresh_rx`.
    fn send_refresh(&mut self) {
        let config = self.shared.config.session_timer;
        let negotiator = match &self.timer {
            Some(timer) => {
                let current = u32::try_from(timer.interval().as_secs()).unwrap_or(u32::MAX);
                UacNegotiator::refresh(config, current)
            }
            None => UacNegotiator::new(config),
        };
        let mut request_headers = headers::timer_request_headers(&negotiator.request());
        request_headers.push(Header::Supported(super::SUPPORTED.into()));
        let offer = if self.peer_allows_update {
            None
        } else {
            self.next_local().map(|local| sdp::offer(&self.shared.config.media_policy, &local))
        };
        let dialog = self.dialog.clone();
        let results = self.refresh_tx.clone();
        tokio::spawn(async move {
            let response = match &offer {
                None => dialog.update(Some(request_headers), None).await,
                Some(offer) => {
                    request_headers.push(headers::content_type_sdp());
                    let body = offer.sdp.to_string().into_bytes();
                    dialog.reinvite(Some(request_headers), Some(body)).await
                }
            };
            let failed = RefreshResult { agreed: None, answer: None };
            let result = match response {
                Ok(Some(resp))
                    if resp.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful =>
                {
                    RefreshResult {
                        agreed: negotiator.handle_2xx(headers::response_session_expires(&resp)),
                        answer: offer.map(|o| (o.pending, resp.body)),
                    }
                }
                Ok(other) => {
                    debug!(status = ?other.map(|r| r.status_code), "session refresh refused");
                    failed
                }
                Err(e) => {
                    debug!(error = %e, "session refresh failed");
                    failed
                }
            };
            results.send(result).await.ok();
        });
    }

    async fn on_refreshed(&mut self, result: RefreshResult) {
        match (result.agreed, self.timer.as_mut()) {
            (Some(agreed), Some(timer)) => timer.handle_refresh(Instant::now(), agreed, Role::Uac),
            _ => warn!("session refresh failed; the session expires unless the peer refreshes"),
        }
        if let Some((pending, body)) = result.answer {
            let answer = std::str::from_utf8(&body)
                .map_err(|_| sdp::SdpError::Malformed("answer is not UTF-8".into()))
                .and_then(|text| sdp::apply_answer_str(&pending, text));
            match answer {
                Ok(negotiated) => self.media_changed(negotiated).await,
                Err(e) => warn!(error = %e, "unusable answer to our refresh re-INVITE"),
            }
        }
    }

    /// Forgets the call everywhere and tells the engine it ended.
    pub(crate) async fn finish(self, reason: HangupReason) {
        finish(&self.shared, self.id, &self.sip_call_id, Some(&self.dialog), reason).await;
    }
}

/// Whether an Allow header list names UPDATE.
pub(crate) fn allows_update<'a>(headers: impl IntoIterator<Item = &'a Header>) -> bool {
    headers::values(headers, "Allow").iter().any(|m| m.eq_ignore_ascii_case("UPDATE"))
}

/// Cleanup shared by calls that got a dialog and calls that did not.
pub(crate) async fn finish(
    shared: &Shared,
    id: CallId,
    sip_call_id: &str,
    dialog: Option<&InviteDialog>,
    reason: HangupReason,
) {
    if let Some(dialog) = dialog {
        shared.dialogs.remove_dialog(&dialog.id());
    }
    // The final response (487, 302) may still be queued in its transaction task:
    // keep the fix-up entries until it has surely gone out.
    let (tags, redirects) = (shared.tags.clone(), shared.redirects.clone());
    let (linger, key) = (shared.config.t1 * 64, sip_call_id.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(linger).await;
        tags.remove(&key);
        redirects.remove(&key);
    });
    shared.end_call(id);
    info!(call = %id, ?reason, "call ended");
    shared.emit(UaEvent::Hangup { call: id, reason }).await;
}

/// rsipstack's termination reason, named from our side.
pub(crate) fn hangup_reason(reason: &TerminatedReason, role: TransactionRole) -> HangupReason {
    let we_are_uas = role == TransactionRole::Server;
    match reason {
        TerminatedReason::UacBye if we_are_uas => HangupReason::RemoteBye,
        TerminatedReason::UasBye if !we_are_uas => HangupReason::RemoteBye,
        TerminatedReason::UacBye | TerminatedReason::UasBye => HangupReason::Local,
        TerminatedReason::UacCancel => HangupReason::Cancelled,
        TerminatedReason::Timeout if we_are_uas => HangupReason::AckTimeout,
        TerminatedReason::UasDecline => HangupReason::Rejected(603),
        other => HangupReason::Error(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_is_named_from_our_side() {
        let uas = TransactionRole::Server;
        let uac = TransactionRole::Client;
        assert_eq!(hangup_reason(&TerminatedReason::UacBye, uas), HangupReason::RemoteBye);
        assert_eq!(hangup_reason(&TerminatedReason::UasBye, uac), HangupReason::RemoteBye);
        assert_eq!(hangup_reason(&TerminatedReason::UasBye, uas), HangupReason::Local);
        assert_eq!(hangup_reason(&TerminatedReason::UacCancel, uas), HangupReason::Cancelled);
        assert_eq!(hangup_reason(&TerminatedReason::Timeout, uas), HangupReason::AckTimeout);
    }
}
