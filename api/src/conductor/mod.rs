//! The MaestroConference "Conductor API" (`/_conference/<function>`), from
//! `001_446d28f15bc0f4ee.txt`: live control of a call (breakouts, microphones,
//! hands, dial-out, tags) and its event streams. A translator over the
//! operations layer, as `/_access` is: information requests answer in the same
//! envelope (JSON or XML, `type`, default XML); commands answer `text/plain`
//! `TRUE`, or `FALSE,<message>`: the command was (not) accepted, and its outcome
//! arrives as events on every client's stream ([`events`]).
//!
//! Authentication: the conference's `securityToken` (the Conference object of
//! `/_access` carries it) with `conferenceUID` or `callUID`. A token of another
//! conference gets FALSE (commands) or code -1 (information) and no data.
//! Objects of another call answer as unknown ones.

mod commands;
pub mod events;
pub mod functions;
mod info;
pub mod socket;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::access::AccessError;
use crate::http::Peer;
use crate::http::envelope::{Envelope, Format, read_request};
use crate::http::functions::check;
use crate::http::params::Params;
use crate::model::{Call, Conference};
use crate::ops::{Ops, OpsError, Scope};

/// Routes `/_conference/<function>` and the event streams.
pub fn router() -> Router<Ops> {
    Router::new()
        .route("/_conference/events", get(events::websocket))
        .route("/_conference/events/sse", get(events::sse))
        .route("/_conference/{function}", any(handle))
}

/// One authenticated request, as a function sees it.
pub(crate) struct Request<'a> {
    pub ops: &'a Ops,
    pub scope: Scope,
    pub conference: Conference,
    /// The call named by `callUID`, if the request named one.
    pub call: Option<Call>,
    pub params: Params,
    pub tz: &'a jiff::tz::TimeZone,
}

impl Request<'_> {
    /// The call the request names (its functions all take `callUID`).
    pub fn call(&self) -> Result<&Call, AccessError> {
        self.call.as_ref().ok_or_else(|| AccessError::code(-2, "callUID: is required"))
    }
}

/// A command's answer: `TRUE` or `FALSE,<message>`.
fn plain(result: Result<(), String>) -> Response {
    let body = match result {
        Ok(()) => "TRUE".to_owned(),
        Err(message) => format!("FALSE,{}", message.replace(['\r', '\n'], " ")),
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// The conference and call a request's token opens.
pub async fn authenticate(
    ops: &Ops,
    peer: Peer,
    params: &Params,
) -> Result<(Conference, Option<Call>), AccessError> {
    let token = params.required("securityToken")?;
    let conference_uid = params.get("conferenceUID").filter(|v| !v.trim().is_empty());
    let call_uid = params.get("callUID").filter(|v| !v.trim().is_empty());
    let checked = ops.conference_by_token(token, conference_uid, call_uid);
    let checked = ops.guarded(peer.0, "conductor", checked).await;
    match checked.map_err(|_| AccessError::general(crate::ops::sources::LOCKED_OUT))? {
        Ok(found) => Ok(found),
        Err(OpsError::Invalid { field, reason }) => {
            Err(AccessError::code(-2, format!("{field}: {reason}")))
        }
        Err(OpsError::Unavailable { incident }) => {
            Err(AccessError::from_ops(OpsError::Unavailable { incident }, ""))
        }
        Err(_) => {
            tracing::info!(
                conference = conference_uid,
                call = call_uid,
                "conductor: wrong security token"
            );
            Err(AccessError::general("invalid security token for this conference or call"))
        }
    }
}

async fn handle(
    State(ops): State<Ops>,
    Path(name): Path<String>,
    method: Method,
    peer: Peer,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (params, format) = match read_request(query.as_deref(), &headers, body).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let Some(function) = functions::find(&name) else {
        return Envelope::error(-1, format!("unknown function {name:?}"))
            .with_status(StatusCode::NOT_FOUND)
            .render(format);
    };
    let ops2 = ops.clone();
    // Its own task: a panic (a bug) is answered, and the server goes on.
    let answered =
        tokio::spawn(async move { answer(&ops2, function, &method, peer, params).await }).await;
    match answered {
        Ok(Answer::Info(envelope)) => envelope.render(format),
        Ok(Answer::Command(result)) => plain(result),
        Err(e) => {
            tracing::error!(error = %e, function = %name, "conductor: a function failed unexpectedly");
            if function.command {
                plain(Err("unexpected failure; the server logged it".into()))
            } else {
                Envelope::error(-4, "unexpected failure; the server logged it").render(format)
            }
        }
    }
}

enum Answer {
    Info(Envelope),
    Command(Result<(), String>),
}

async fn answer(
    ops: &Ops,
    function: &functions::Function,
    method: &Method,
    peer: Peer,
    params: Params,
) -> Answer {
    let fail = |e: AccessError| {
        if function.command {
            Answer::Command(Err(e.message))
        } else {
            Answer::Info(Envelope::error(e.code, e.message))
        }
    };
    if function.command && *method != Method::POST {
        return fail(AccessError::general(format!(
            "{} is a command: send it by POST",
            function.name
        )));
    }
    if let Some(t) = params.get("type")
        && Format::parse(t).is_none()
    {
        return fail(AccessError::code(-2, format!("type: {t:?} is not json or xml")));
    }
    let (conference, call) = match authenticate(ops, peer, &params).await {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    if let Err(e) = check(function, &params, |f, p| f.name == "createBreakout" && p == "callers") {
        return fail(e.into());
    }
    let request = Request {
        ops,
        scope: Scope::Customer(conference.customer_uid.clone()),
        conference,
        call,
        params,
        tz: &ops.settings.timezone,
    };
    if function.command {
        Answer::Command(commands::run(function.name, &request).await.map_err(|e| e.message))
    } else {
        match info::run(function.name, &request).await {
            Ok(envelope) => Answer::Info(envelope),
            Err(e) => Answer::Info(Envelope::error(e.code, e.message)),
        }
    }
}
