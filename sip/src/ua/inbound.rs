//! A new incoming INVITE: the checks before a dialog exists (offer, session timer,
//! capacity), the dialog, the [`IncomingCall`] for the engine, and the call's task up
//! to the answer (ringing, answer, reject, redirect, CANCEL).

use std::sync::Arc;
use std::time::Instant;

use ezk_sdp_types::SessionDescription;
use rsipstack::dialog::dialog::DialogState;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tracing::{Instrument, debug};

use super::call::{Call, allows_update, hangup_reason};
use super::events::CallCommand;
use super::refusal::Refusal;
use super::{HangupReason, IncomingCall, Link, Shared, UaError, UaEvent, headers, refuse, reply};
use crate::sdp::{self, LocalMedia, MediaDirection, Negotiated, SdpError};
use crate::session_timer::{self, Role, SessionTimer, TimerResponse, UasDecision};

/// Headers handed to the engine with an incoming call (besides From/To/URI).
const ENGINE_HEADERS: [&str; 7] = [
    "P-Asserted-Identity",
    "Remote-Party-ID",
    "Diversion",
    "History-Info",
    "Subject",
    "User-Agent",
    "Organization",
];

/// Handles a new (out-of-dialog) INVITE transaction until the call ends.
pub(super) async fn start(shared: Arc<Shared>, mut tx: Transaction) {
    // RFC 3261 section 8.1.1.8: an INVITE must carry a Contact; without one there is
    // no remote target for the dialog.
    if tx.original.contact_header().is_err() {
        let refusal = Refusal::new(400, "Missing Contact", "an INVITE needs a Contact header");
        refuse(&shared, &mut tx, &refusal, vec![]).await;
        return;
    }
    if let Err(content_type) = sdp_or_no_body(&tx) {
        // Multipart bodies (SDP plus ISUP, ...) are not supported yet.
        let accept = vec![Header::Accept(super::ACCEPT.into())];
        let detail = if content_type.is_empty() {
            "a body without Content-Type is not supported; send application/sdp".to_owned()
        } else {
            format!("a body of type {content_type} is not supported; send application/sdp")
        };
        let refusal = Refusal::new(415, "Unsupported Media Type", detail);
        refuse(&shared, &mut tx, &refusal, accept).await;
        return;
    }
    let offer = match read_offer(&tx) {
        Ok(offer) => offer,
        Err(e) => {
            refuse(&shared, &mut tx, &sdp_refusal(&e), vec![]).await;
            return;
        }
    };
    // Refuse an offer we cannot answer before the engine sees the call; the engine's
    // own answer later uses its real media address and port.
    if let Some(offer) = &offer {
        let probe = LocalMedia {
            address: shared.config.media_address,
            rtp_port: 9,
            session_id: 0,
            session_version: 0,
            direction: MediaDirection::SendRecv,
        };
        if let Err(e) = sdp::answer(offer, &shared.config.media_policy, &probe) {
            refuse(&shared, &mut tx, &sdp_refusal(&e), vec![]).await;
            return;
        }
    }
    let timer_request = match headers::timer_request(&tx.original) {
        Ok(timer_request) => timer_request,
        Err(e) => {
            let refusal = Refusal::new(400, "Bad Session Timer", e.to_string());
            refuse(&shared, &mut tx, &refusal, vec![]).await;
            return;
        }
    };
    let timer_response =
        match session_timer::uas_decide(&shared.config.session_timer, &timer_request) {
            UasDecision::Reject { min_se } => {
                let min_se = vec![Header::MinSE(min_se.to_string().into())];
                reply(&mut tx, StatusCode::from(422), min_se).await;
                return;
            }
            UasDecision::Accept(response) => response,
        };
    let Some((control, commands)) = shared.new_call() else {
        let retry = Header::RetryAfter(shared.config.retry_after_secs.to_string().into());
        reply(&mut tx, StatusCode::ServiceUnavailable, vec![retry]).await;
        return;
    };
    let id = control.id;
    let sip_call_id =
        tx.original.call_id_header().map(|c| c.value().to_owned()).unwrap_or_default();
    let link = Link::of(tx.connection.as_ref());
    let (state_sender, states) = shared.dialogs.new_dialog_state_channel();
    let contact = shared.contact(None, link);
    let dialog =
        match shared.dialogs.get_or_create_server_invite(&tx, state_sender, None, Some(contact)) {
            Ok(dialog) => dialog,
            Err(e) => {
                debug!(error = %e, "no dialog for the INVITE");
                shared.end_call(id);
                reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
                return;
            }
        };
    shared.tags.insert(&sip_call_id, &dialog.id().local_tag);

    let incoming = describe(&tx, offer.clone(), control);
    // The INVITE server transaction (100 Trying, CANCEL, the ACK, 2xx retransmission)
    // runs in its own task; the dialog reports to this one through `states`.
    let mut driver = dialog.clone();
    tokio::spawn(
        async move {
            if let Err(e) = driver.handle(&mut tx).await {
                debug!(error = %e, "INVITE transaction ended with an error");
            }
        }
        .in_current_span(),
    );
    debug!(call = %id, "incoming call");
    shared.emit(UaEvent::IncomingCall(Box::new(incoming))).await;

    let mut call = Call::new(shared, id, sip_call_id, dialog, states, commands);
    call.peer_allows_update = allows_update(call.dialog.initial_request().headers.iter());
    let reason = match before_answer(&mut call, offer, timer_response).await {
        Some(reason) => reason,
        None => call.run_confirmed().await,
    };
    call.finish(reason).await;
}

/// Whether the body is SDP (or absent); `Err` with the Content-Type if not.
fn sdp_or_no_body(tx: &Transaction) -> Result<(), String> {
    if tx.original.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let content_type =
        headers::first(tx.original.headers.iter(), "Content-Type").unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/sdp") { Ok(()) } else { Err(content_type) }
}

/// The refusal of an offer that cannot be used; the detail says why (no common
/// codec, no usable crypto, a parse error).
pub(super) fn sdp_refusal(e: &SdpError) -> Refusal {
    let status = e.sip_status();
    let reason = match status {
        400 => "Malformed SDP",
        413 => "Request Entity Too Large",
        _ => "Not Acceptable Here",
    };
    Refusal::new(status, reason, e.to_string())
}

/// The offer in the INVITE body, `None` for a late offer.
fn read_offer(tx: &Transaction) -> Result<Option<SessionDescription>, SdpError> {
    let body = &tx.original.body;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text =
        std::str::from_utf8(body).map_err(|_| SdpError::Malformed("SDP is not UTF-8".into()))?;
    sdp::parse(text).map(Some)
}

/// What the engine learns of an INVITE.
fn describe(
    tx: &Transaction,
    offer: Option<SessionDescription>,
    control: super::CallControl,
) -> IncomingCall {
    let req = &tx.original;
    let from = req.from_header().ok().and_then(|f| f.typed().ok());
    let to_uri = req
        .to_header()
        .ok()
        .and_then(|t| t.typed().ok())
        .map(|t| t.uri.to_string())
        .unwrap_or_default();
    let selected = req
        .headers
        .iter()
        .filter(|h| {
            let name = h.name();
            ENGINE_HEADERS.iter().any(|n| n.eq_ignore_ascii_case(name))
                || name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-"))
        })
        .map(|h| (h.name().to_owned(), h.value().to_owned()))
        .collect();
    IncomingCall {
        call: control.id,
        sip_call_id: req.call_id_header().map(|c| c.value().to_owned()).unwrap_or_default(),
        request_user: req.uri.user().unwrap_or_default().to_owned(),
        request_uri: req.uri.to_string(),
        from_uri: from.as_ref().map(|f| f.uri.to_string()).unwrap_or_default(),
        from_user: from.as_ref().and_then(|f| f.uri.user().map(str::to_owned)),
        from_display_name: from
            .as_ref()
            .and_then(|f| f.display_name.clone())
            .filter(|n| !n.is_empty()),
        to_uri,
        headers: selected,
        offer,
        remote_addr: tx
            .connection
            .as_ref()
            .and_then(|c| c.get_remote_addr())
            .and_then(|a| a.get_socketaddr().ok()),
        control,
    }
}

/// Waits for the engine's decision. `None` once answered (the caller goes on with the
/// established call); `Some` when the call ended before that.
async fn before_answer(
    call: &mut Call,
    offer: Option<SessionDescription>,
    timer: Option<TimerResponse>,
) -> Option<HangupReason> {
    let deadline = tokio::time::Instant::now() + call.shared.config.answer_timeout;
    loop {
        // Dialog states first: a CANCEL that already ended the dialog must win
        // over an answer the engine sent at the same moment.
        tokio::select! {
            biased;
            state = call.states.recv() => match state {
                Some(DialogState::Terminated(_, reason)) => {
                    return Some(hangup_reason(&reason, call.dialog.role()));
                }
                Some(_) => {}
                None => return Some(HangupReason::Error("dialog state channel closed".into())),
            },
            () = tokio::time::sleep_until(deadline) => {
                debug!("the engine did not answer in time");
                call.dialog.reject(Some(StatusCode::TemporarilyUnavailable), None).ok();
                return Some(HangupReason::Rejected(480));
            }
            command = call.commands.recv() => match command {
                Some(CallCommand::Ringing) => {
                    if let Err(e) = call.dialog.ringing(None, None) {
                        debug!(error = %e, "180 failed");
                    }
                }
                Some(CallCommand::EarlyMedia { local, reply }) => {
                    // As for Answer: a CANCEL queued meanwhile ends the call here.
                    if let Some(reason) = ended_meanwhile(call) {
                        reply.send(Err(UaError::CallGone(call.id))).ok();
                        return Some(reason);
                    }
                    reply.send(early_media(call, offer.as_ref(), local)).ok();
                }
                Some(CallCommand::Answer { local, reply }) => {
                    // The CANCEL may have landed while the engine decided: never
                    // answer a dialog that has ended (accept() would not say so).
                    if let Some(reason) = ended_meanwhile(call) {
                        reply.send(Err(UaError::CallGone(call.id))).ok();
                        return Some(reason);
                    }
                    match answer(call, offer.as_ref(), local, timer) {
                        Ok(negotiated) => {
                            reply.send(Ok(negotiated)).ok();
                            return None;
                        }
                        Err(e) => {
                            let status = match &e {
                                UaError::Sdp(e) => e.sip_status(),
                                _ => 500,
                            };
                            call.dialog.reject(Some(StatusCode::from(status)), None).ok();
                            reply.send(Err(e)).ok();
                            return Some(HangupReason::Rejected(status));
                        }
                    }
                }
                Some(CallCommand::Reject { status }) => {
                    // Only final non-2xx statuses can reject.
                    let status = if (300..700).contains(&status) { status } else { 480 };
                    call.dialog.reject(Some(StatusCode::from(status)), None).ok();
                    return Some(HangupReason::Rejected(status));
                }
                Some(CallCommand::Redirect { uri }) => {
                    call.shared.redirects.insert(&call.sip_call_id, &uri);
                    call.dialog.reject(Some(StatusCode::MovedTemporarily), None).ok();
                    return Some(HangupReason::Rejected(302));
                }
                Some(CallCommand::Hangup) | None => {
                    call.dialog.reject(Some(StatusCode::TemporarilyUnavailable), None).ok();
                    return Some(HangupReason::Local);
                }
            },
        }
    }
}

/// A termination already queued on the dialog's state channel, if any.
fn ended_meanwhile(call: &mut Call) -> Option<HangupReason> {
    loop {
        match call.states.try_recv() {
            Ok(DialogState::Terminated(_, reason)) => {
                return Some(hangup_reason(&reason, call.dialog.role()));
            }
            Ok(_) => {}
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return None,
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                return Some(HangupReason::Error("dialog state channel closed".into()));
            }
        }
    }
}

/// Sends 183 Session Progress with our answer to the INVITE's offer.
fn early_media(
    call: &mut Call,
    offer: Option<&SessionDescription>,
    local: LocalMedia,
) -> Result<Negotiated, UaError> {
    // A late offer has nothing to answer before the 200.
    let offer = offer.ok_or(UaError::WrongState(call.id))?;
    let answer = sdp::answer(offer, &call.shared.config.media_policy, &local)?;
    let response_headers = vec![headers::content_type_sdp()];
    call.dialog.ringing(Some(response_headers), Some(answer.sdp.to_string().into_bytes()))?;
    Ok(answer.negotiated)
}

/// Sends the 200: our answer, or our offer for a late offer.
fn answer(
    call: &mut Call,
    offer: Option<&SessionDescription>,
    local: LocalMedia,
    timer: Option<TimerResponse>,
) -> Result<Option<Negotiated>, UaError> {
    let policy = &call.shared.config.media_policy;
    let mut response_headers = headers::timer_response_headers(timer.as_ref());
    response_headers.push(headers::content_type_sdp());
    response_headers.push(Header::Allow(super::ALLOW.into()));
    response_headers.push(Header::Supported(super::SUPPORTED.into()));
    let (body, negotiated) = match offer {
        Some(offer) => {
            let answer = sdp::answer(offer, policy, &local)?;
            (answer.sdp.to_string(), Some(answer.negotiated))
        }
        None => {
            let ours = sdp::offer(policy, &local);
            let cseq = call.dialog.initial_request().cseq_header().ok().and_then(|c| c.seq().ok());
            call.pending_offer = Some((ours.pending, cseq.unwrap_or_default()));
            (ours.sdp.to_string(), None)
        }
    };
    call.dialog.accept(Some(response_headers), Some(body.into_bytes()))?;
    call.local = Some(local);
    call.negotiated = negotiated.clone();
    call.announce_ack = true;
    if let Some(timer) = timer {
        call.timer = Some(SessionTimer::new(Instant::now(), timer.negotiated(), Role::Uas));
    }
    Ok(negotiated)
}
