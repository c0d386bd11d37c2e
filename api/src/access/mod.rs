//! The MaestroConference "Conference Management API" (`/_access/<function>`),
//! from `003_4b1c4ee2ca2345a0.txt`: customers, reservationless and reserved
//! conferences, their reservations, persons with their PINs, call history and
//! custom values. A translator over the operations layer: each request is
//! authenticated, checked against [`functions::FUNCTIONS`], turned into one
//! operation, and its answer or error rendered in the document's envelope
//! (`http::envelope`), as JSON or XML (`type`, default XML).
//!
//! Transport: information requests by GET with a query string, commands by
//! POST with a form body; parameters are read from the query string and a form
//! or JSON object body alike, and information requests also answer POST (the
//! document's PHP sample posts everything). A command sent by GET is refused
//! (HTTP 405, code -1). Every enveloped answer is HTTP 200 with its `code`;
//! an unknown function is HTTP 404 (code -1), a body over 1 MiB HTTP 413.
//!
//! Errors: -1 general (a refusal that is no parameter's fault, wrong
//! credentials), -2 a parameter (named, with why), -3 the store or call engine
//! unavailable (with an incident number; retry), -4 an unexpected failure;
//! each function's own numbered codes as the document lists them. An object
//! of another customer is answered exactly as an unknown one. The choices
//! where the document is vague are in docs/api-access.md.

mod commands;
pub mod functions;
mod info;
pub mod objects;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;

use crate::http::Peer;
use crate::http::envelope::{Envelope, Format, read_request};
use crate::http::functions::check;
use crate::http::params::{ParamError, Params};
use crate::model::{Customer, Role};
use crate::ops::{Kind, Ops, OpsError, Scope};

/// Routes `/_access/<function>`.
pub fn router() -> Router<Ops> {
    Router::new().route("/_access/{function}", any(handle))
}

/// Why a request failed, as the envelope carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessError {
    pub code: i64,
    pub message: String,
}

impl AccessError {
    pub fn general(message: impl Into<String>) -> Self {
        Self { code: -1, message: message.into() }
    }

    pub fn code(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// An operation's error, with `param` named when it is about the object
    /// that parameter names.
    pub fn from_ops(e: OpsError, param: &str) -> Self {
        match e {
            OpsError::NotFound(kind) => Self::code(-2, format!("{param}: no such {kind}")),
            OpsError::Invalid { field, reason } => Self::code(-2, format!("{field}: {reason}")),
            OpsError::Unavailable { incident } => Self::code(
                -3,
                format!("the server could not complete the request (incident {incident}); retry"),
            ),
            other => Self::general(other.to_string()),
        }
    }
}

impl From<ParamError> for AccessError {
    fn from(e: ParamError) -> Self {
        Self::code(-2, e.to_string())
    }
}

/// One authenticated request, as a function sees it.
pub(crate) struct Request<'a> {
    pub ops: &'a Ops,
    pub scope: Scope,
    pub customer: Customer,
    pub params: Params,
    pub tz: &'a jiff::tz::TimeZone,
}

impl Request<'_> {
    /// A required UID parameter.
    pub fn uid(&self, name: &str) -> Result<String, AccessError> {
        Ok(self.params.required(name)?.to_owned())
    }

    /// An optional text parameter, as sent.
    pub fn text(&self, name: &str) -> Option<String> {
        self.params.get(name).map(str::to_owned)
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, AccessError> {
        Ok(self.params.boolean(name)?)
    }

    pub fn role(&self, name: &str) -> Result<Role, AccessError> {
        parse_role(name, self.params.required(name)?)
    }
}

/// A MaestroConference role (PARTICIPANT, PRESENTER, ASSISTANT, OPERATOR).
pub fn parse_role(name: &str, text: &str) -> Result<Role, AccessError> {
    Ok(crate::http::functions::parse_role(name, text)?)
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
    // Its own task: a panic (a bug) is answered -4 instead of dropping the
    // connection, and the server goes on.
    let envelope =
        match tokio::spawn(async move { answer(&ops, &name, &method, peer, params).await }).await {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::error!(error = %e, "access: a function failed unexpectedly");
                Envelope::error(-4, "unexpected failure; the server logged it")
            }
        };
    envelope.render(format)
}

async fn answer(ops: &Ops, name: &str, method: &Method, peer: Peer, params: Params) -> Envelope {
    let Some(function) = functions::find(name) else {
        return Envelope::error(-1, format!("unknown function {name:?}"))
            .with_status(StatusCode::NOT_FOUND);
    };
    if function.command && *method != Method::POST {
        return Envelope::error(-1, format!("{name} is a command: send it by POST"))
            .with_status(StatusCode::METHOD_NOT_ALLOWED);
    }
    if *method != Method::GET && *method != Method::POST {
        return Envelope::error(-1, format!("{name}: use GET or POST"))
            .with_status(StatusCode::METHOD_NOT_ALLOWED);
    }
    if let Some(t) = params.get("type")
        && Format::parse(t).is_none()
    {
        return Envelope::error(-2, format!("type: {t:?} is not json or xml"));
    }
    let customer = match authenticate(ops, peer, &params).await {
        Ok(customer) => customer,
        Err(e) => return Envelope::error(e.code, e.message),
    };
    if let Err(e) = check(function, &params, |f, p| {
        // createConferenceReserved's numbered parameters are checked by count.
        f.name == "createConferenceReserved" && p.ends_with('1')
    }) {
        return Envelope::error(-2, e.to_string());
    }
    let request = Request {
        ops,
        scope: Scope::Customer(customer.uid.clone()),
        customer,
        params,
        tz: &ops.settings.timezone,
    };
    let result = if function.command {
        commands::run(function.name, &request).await
    } else {
        info::run(function.name, &request).await
    };
    match result {
        Ok(envelope) => envelope,
        Err(e) => {
            if e.code == -3 || e.code == -4 {
                tracing::warn!(function = name, code = e.code, message = %e.message, "access: failed");
            }
            Envelope::error(e.code, e.message)
        }
    }
}

/// The customer and key of the request.
async fn authenticate(ops: &Ops, peer: Peer, params: &Params) -> Result<Customer, AccessError> {
    let uid = params.required("customer")?;
    let key = params.required("key")?;
    let checked = ops.guarded(peer.0, "access", ops.authenticate(uid, key)).await;
    let checked = checked.map_err(|_| AccessError::general(crate::ops::sources::LOCKED_OUT))?;
    match checked {
        Ok(customer) => Ok(customer),
        Err(OpsError::NotFound(Kind::Customer)) => {
            tracing::info!(customer = uid, "access: wrong customer or key");
            Err(AccessError::general("invalid customer or key"))
        }
        Err(e) => Err(AccessError::from_ops(e, "customer")),
    }
}
