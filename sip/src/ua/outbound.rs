//! Calls we place: the target (a SIP URI directly, a number through the outbound
//! proxy), the INVITE with our offer and session-timer request, digest retry (by
//! rsipstack), progress events, the ring timeout and its CANCEL.

use std::sync::Arc;
use std::time::Instant;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Header, StatusCode, Uri};
use tracing::{Instrument, debug, info_span};

use super::call::{Call, allows_update, finish};
use super::events::CallCommand;
use super::{
    CallId, CallProgress, HangupReason, Link, Shared, SipConfig, UaError, UaEvent, headers,
    host_port,
};
use crate::sdp::{self, LocalMedia};
use crate::session_timer::{Role, SessionTimer, UacNegotiator};

/// A call for the UA to place.
#[derive(Debug, Clone)]
pub struct PlaceCall {
    /// `sip:user@host[:port][;transport=tcp]`, or a number (digits, `+`, `*`, `#`)
    /// dialled through the outbound proxy.
    pub target: String,
    /// The user part of our From (defaults to `tutti`).
    pub from_user: Option<String>,
    /// The From display name.
    pub from_display_name: Option<String>,
    /// Our media: where we receive, and the SDP session id.
    pub local: LocalMedia,
    /// Extra headers for the INVITE, as (name, value).
    pub headers: Vec<(String, String)>,
}

/// Starts the call's task and returns its id at once.
pub(super) async fn place(shared: Arc<Shared>, call: PlaceCall) -> Result<CallId, UaError> {
    let callee = resolve_target(&shared.config, &call.target)?;
    let (control, commands) = shared.new_call().ok_or(UaError::TooManyCalls)?;
    let id = control.id;
    let span = info_span!("sip", call = %id, target = %callee, call_id = tracing::field::Empty);
    tokio::spawn(run(shared, id, commands, callee, call).instrument(span));
    Ok(id)
}

/// The Request-URI for a target.
pub(crate) fn resolve_target(config: &SipConfig, target: &str) -> Result<Uri, UaError> {
    let target = target.trim();
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        return Uri::try_from(target).map_err(|_| UaError::InvalidTarget(target.to_owned()));
    }
    let dialable = !target.is_empty()
        && target.len() <= 64
        && target.bytes().all(|b| b.is_ascii_alphanumeric() || b"+*#-._".contains(&b));
    if !dialable {
        return Err(UaError::InvalidTarget(target.to_owned()));
    }
    let proxy = config.outbound_proxy.as_deref().ok_or(UaError::NoOutboundProxy)?;
    let proxy = proxy.trim();
    let proxy_uri = if proxy.to_ascii_lowercase().starts_with("sip:") {
        proxy.to_owned()
    } else {
        format!("sip:{proxy}")
    };
    let mut uri =
        Uri::try_from(proxy_uri.as_str()).map_err(|_| UaError::InvalidTarget(proxy.to_owned()))?;
    // rsipstack escapes what a user part may not hold (`#` becomes %23) on output.
    uri.auth = Some(rsipstack::sip::Auth { user: target.to_owned(), password: None });
    Ok(uri)
}

fn is_tcp(uri: &Uri) -> bool {
    uri.to_string().to_ascii_lowercase().contains("transport=tcp")
}

async fn run(
    shared: Arc<Shared>,
    id: CallId,
    mut commands: tokio::sync::mpsc::Receiver<CallCommand>,
    callee: Uri,
    call: PlaceCall,
) {
    let config = &shared.config;
    // Outbound calls go over UDP or TCP; TLS is for callers reaching us.
    let link = if is_tcp(&callee) { Link::Tcp } else { Link::Udp };
    let from_user = call.from_user.clone().unwrap_or_else(|| "tutti".to_owned());
    let contact = shared.contact(Some(&from_user), link);
    let our_addr = shared.advertised_addr(link);
    let caller = Uri::try_from(format!("sip:{from_user}@{}", host_port(our_addr)).as_str())
        .unwrap_or_default();
    let offer = sdp::offer(&config.media_policy, &call.local);
    let mut negotiator = UacNegotiator::new(config.session_timer);
    let credential = config.outbound_username.clone().map(|username| Credential {
        username,
        password: config.outbound_password.clone().unwrap_or_default(),
        realm: None,
        auth_username: None,
    });
    let ring_deadline = tokio::time::Instant::now() + config.ring_timeout;
    let (mut rang, mut cancelled, mut timed_out) = (false, false, false);
    let mut sip_call_id = String::new();
    // One INVITE, or a second one when a 422 asks for a longer session interval
    // (RFC 4028 section 7.1); rsipstack retries 401/407 itself.
    let (dialog, states, response) = loop {
        let mut invite_headers = headers::timer_request_headers(&negotiator.request());
        invite_headers.push(Header::Supported(super::SUPPORTED.into()));
        invite_headers.push(Header::Allow(super::ALLOW.into()));
        invite_headers
            .extend(call.headers.iter().map(|(n, v)| Header::Other(n.clone(), v.clone())));
        let option = InviteOption {
            caller_display_name: call.from_display_name.clone(),
            caller: caller.clone(),
            callee: callee.clone(),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.sdp.to_string().into_bytes()),
            contact: contact.clone(),
            credential: credential.clone(),
            headers: Some(invite_headers),
            // A retry keeps the Call-ID, like rsipstack's own retry after 401/407.
            call_id: (!sip_call_id.is_empty()).then(|| sip_call_id.clone()),
            ..Default::default()
        };
        let (state_sender, mut states) = shared.dialogs.new_dialog_state_channel();
        let (dialog, mut invite) = match shared.dialogs.do_invite_async(option, state_sender) {
            Ok(started) => started,
            Err(e) => {
                let reason = format!("cannot send INVITE: {e}");
                shared
                    .emit(UaEvent::Progress { call: id, state: CallProgress::Failed(reason) })
                    .await;
                finish(&shared, id, &sip_call_id, None, HangupReason::NotConnected).await;
                return;
            }
        };
        if sip_call_id.is_empty() {
            sip_call_id = dialog.id().call_id.clone();
            tracing::Span::current().record("call_id", sip_call_id.as_str());
            shared.emit(UaEvent::Progress { call: id, state: CallProgress::Presenting }).await;
        }

        let mut states_open = true;
        let outcome = loop {
            // States first: a 180 queued just before the final response must be
            // reported as Ringing before Connected.
            tokio::select! {
                biased;
                state = states.recv(), if states_open => match state {
                    Some(DialogState::Early(..)) if !rang => {
                        rang = true;
                        shared.emit(UaEvent::Progress { call: id, state: CallProgress::Ringing }).await;
                    }
                    Some(_) => {}
                    // Only the INVITE task's result matters from here.
                    None => states_open = false,
                },
                result = &mut invite => break result,
                command = commands.recv(), if !cancelled => match command {
                    Some(CallCommand::Hangup) | None => {
                        cancelled = true;
                        dialog.cancel().await.ok();
                    }
                    Some(CallCommand::Answer { reply, .. }) => {
                        reply.send(Err(UaError::WrongState(id))).ok();
                    }
                    Some(other) => debug!(?other, "command ignored on an outgoing call"),
                },
                () = tokio::time::sleep_until(ring_deadline), if !cancelled => {
                    debug!("ring timeout; cancelling");
                    cancelled = true;
                    timed_out = true;
                    dialog.cancel().await.ok();
                }
            }
        };

        // The final response can complete the INVITE while its 180 still waits
        // on the state channel.
        while let Ok(state) = states.try_recv() {
            if matches!(state, DialogState::Early(..)) && !rang {
                rang = true;
                shared.emit(UaEvent::Progress { call: id, state: CallProgress::Ringing }).await;
            }
        }

        let response = match outcome {
            Ok(Ok((_, response))) => response,
            Ok(Err(e)) => {
                let state = CallProgress::Failed(format!("INVITE failed: {e}"));
                shared.emit(UaEvent::Progress { call: id, state }).await;
                finish(&shared, id, &sip_call_id, Some(&dialog), HangupReason::NotConnected).await;
                return;
            }
            Err(e) => {
                let state = CallProgress::Failed(format!("INVITE task failed: {e}"));
                shared.emit(UaEvent::Progress { call: id, state }).await;
                finish(&shared, id, &sip_call_id, Some(&dialog), HangupReason::NotConnected).await;
                return;
            }
        };
        let too_brief = response.as_ref().filter(|r| u16::from(r.status_code.clone()) == 422);
        if let Some(resp) = too_brief
            && !cancelled
        {
            let min_se = headers::first(resp.headers.iter(), "Min-SE")
                .and_then(|v| crate::session_timer::parse_min_se(&v).ok());
            if negotiator.handle_422(min_se).is_ok() {
                debug!(?min_se, "422: retrying with a longer session interval");
                continue;
            }
        }
        break (dialog, states, response);
    };

    let connected = response.as_ref().is_some_and(|r| r.status_code == StatusCode::OK)
        && !matches!(dialog.state(), DialogState::Terminated(..));
    let status = response.as_ref().map(|r| u16::from(r.status_code.clone()));
    let Some(response) = response.filter(|_| connected) else {
        let state = match status {
            _ if timed_out => CallProgress::Failed("no answer".into()),
            Some(486 | 600 | 603) => CallProgress::Busy,
            _ if cancelled => CallProgress::Failed("cancelled".into()),
            Some(code) => CallProgress::Failed(format!("{code}")),
            None => CallProgress::Failed("no response".into()),
        };
        shared.emit(UaEvent::Progress { call: id, state }).await;
        finish(&shared, id, &sip_call_id, Some(&dialog), HangupReason::NotConnected).await;
        return;
    };

    let mut established = Call::new(shared.clone(), id, sip_call_id, dialog, states, commands);
    established.local = Some(call.local);
    established.peer_allows_update = allows_update(response.headers.iter());
    shared.emit(UaEvent::Progress { call: id, state: CallProgress::Connected }).await;
    let answer = std::str::from_utf8(&response.body)
        .map_err(|_| sdp::SdpError::Malformed("answer is not UTF-8".into()))
        .and_then(|text| sdp::apply_answer_str(&offer.pending, text));
    match answer {
        Ok(negotiated) => {
            established.negotiated = Some(negotiated.clone());
            shared.emit(UaEvent::MediaChanged { call: id, negotiated }).await;
        }
        Err(e) => {
            // Without an answer there is no session (RFC 3264 section 5).
            debug!(error = %e, "unusable answer in the 2xx; hanging up");
            established.dialog.bye().await.ok();
            established.finish(HangupReason::Error(format!("unusable SDP answer: {e}"))).await;
            return;
        }
    }
    if let Some(agreed) = negotiator.handle_2xx(headers::response_session_expires(&response)) {
        established.timer = Some(SessionTimer::new(Instant::now(), agreed, Role::Uac));
    }
    let reason = established.run_confirmed().await;
    established.finish(reason).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(proxy: Option<&str>) -> SipConfig {
        let mut c = SipConfig::new(
            "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            [127, 0, 0, 1].into(),
        );
        c.outbound_proxy = proxy.map(str::to_owned);
        c
    }

    #[test]
    fn sip_uri_targets_go_direct() {
        let uri = resolve_target(&config(None), "sip:alice@192.0.2.1:5070").map(|u| u.to_string());
        assert_eq!(uri.ok().as_deref(), Some("sip:alice@192.0.2.1:5070"));
    }

    #[test]
    fn numbers_go_through_the_proxy() {
        let uri = resolve_target(&config(Some("192.0.2.9:5080;transport=tcp")), "+4930123#")
            .map(|u| u.to_string().to_ascii_lowercase());
        assert_eq!(uri.ok().as_deref(), Some("sip:+4930123%23@192.0.2.9:5080;transport=tcp"));
        assert!(matches!(resolve_target(&config(None), "123"), Err(UaError::NoOutboundProxy)));
        assert!(matches!(
            resolve_target(&config(Some("192.0.2.9")), "12 3"),
            Err(UaError::InvalidTarget(_))
        ));
    }
}
