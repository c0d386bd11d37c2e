//! Aculab-style conference web services (`/conference_*`), from
//! `002_85e267f127526696.txt`: book a conference by name for a time, extend
//! or remove the booking, list conferences, and list, mute, unmute, keypad-lock
//! and eject their participants. A translator over the operations layer
//! (`ops::booked` holds the document's rules).
//!
//! - GET and POST alike; parameters from the query string or a form (or JSON)
//!   body; extra parameters are ignored.
//! - HTTP basic authentication: the customer's UID as the username,
//!   optionally after a cloud id and a slash (`1-2-0/<uid>`), its API key as
//!   the password. Otherwise 401 with `WWW-Authenticate: Basic realm="tutti"`.
//! - Answers are the document's JSON; errors `{"error": "..."}` with 400 (a
//!   parameter, naming it), 401, 404 (an unknown name or token), 409 (the
//!   conference is not in the state the function needs), 503 (retry).

pub mod functions;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::http::params::Params;
use crate::model::{Caller, Customer, ReservationState};
use crate::ops::booked::{Booked, Booking, Named};
use crate::ops::{Ops, OpsError, Scope};
use crate::time::Time;

/// Routes the seven web services.
pub fn router() -> Router<Ops> {
    let mut router = Router::new();
    for f in functions::FUNCTIONS {
        let name = f.name;
        router = router.route(
            &format!("/{name}"),
            any(move |state, method, peer, query, headers, body| {
                handle(name, state, method, peer, query, headers, body)
            }),
        );
    }
    router
}

/// A refusal: status and message.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl Refusal {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.0, axum::Json(json!({"error": self.1}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tutti\""),
            );
        }
        crate::http::retry_after_lockout(&mut response);
        response
    }
}

impl From<OpsError> for Refusal {
    fn from(e: OpsError) -> Self {
        let status = match &e {
            OpsError::Invalid { .. } => StatusCode::BAD_REQUEST,
            OpsError::NotFound(_) => StatusCode::NOT_FOUND,
            OpsError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            OpsError::NotAllowed(_) | OpsError::Conflict(_) | OpsError::Reservation(_) => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::CONFLICT,
        };
        let message = match e {
            OpsError::Invalid { field, reason } => format!("{field}: {reason}"),
            OpsError::NotFound(kind) => match kind {
                crate::ops::Kind::Reservation => "reservation_token: no such reservation".into(),
                crate::ops::Kind::Caller => "participant_id: no such participant".into(),
                _ => "conference_name: no such conference".into(),
            },
            other => other.to_string(),
        };
        Self(status, message)
    }
}

async fn handle(
    name: &'static str,
    State(ops): State<Ops>,
    method: Method,
    peer: crate::http::Peer,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::GET && method != Method::POST {
        return Refusal(StatusCode::METHOD_NOT_ALLOWED, format!("{name}: use GET or POST"))
            .into_response();
    }
    let customer = match authenticate(&ops, peer, &headers).await {
        Ok(customer) => customer,
        Err(refusal) => return refusal.into_response(),
    };
    let params = match Params::read(query.as_deref(), &headers, body).await {
        Ok(params) => params,
        Err(e) => return Refusal::bad(e.to_string()).into_response(),
    };
    let scope = Scope::Customer(customer.uid);
    // Its own task: a panic (a bug) is answered, and the server goes on.
    let answered = tokio::spawn(async move { answer(name, &ops, &scope, &params).await }).await;
    match answered {
        Ok(Ok(value)) => axum::Json(value).into_response(),
        Ok(Err(refusal)) => refusal.into_response(),
        Err(e) => {
            tracing::error!(error = %e, function = name, "aculab: a function failed unexpectedly");
            Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected failure; the server logged it".into(),
            )
            .into_response()
        }
    }
}

/// The customer of the request's basic credentials.
async fn authenticate(
    ops: &Ops,
    peer: crate::http::Peer,
    headers: &HeaderMap,
) -> Result<Customer, Refusal> {
    let unauthorized = |why: &str| Refusal(StatusCode::UNAUTHORIZED, why.to_owned());
    let value =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            unauthorized("basic authentication required: your customer UID and API key")
        })?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(|| unauthorized("basic authentication required"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unauthorized("malformed basic credentials"))?;
    let (user, key) =
        decoded.split_once(':').ok_or_else(|| unauthorized("malformed basic credentials"))?;
    // `1-2-0/bob@example.com`: the cloud id is not tutti's business.
    let uid = user.rsplit('/').next().unwrap_or(user);
    let checked = ops.guarded(peer.0, "aculab", ops.authenticate(uid, key)).await;
    let checked = checked.map_err(|_| {
        Refusal(StatusCode::TOO_MANY_REQUESTS, crate::ops::sources::LOCKED_OUT.to_owned())
    })?;
    match checked {
        Ok(customer) => Ok(customer),
        Err(OpsError::Unavailable { incident }) => Err(OpsError::Unavailable { incident }.into()),
        Err(OpsError::NotFound(_)) => {
            tracing::info!(user = uid, "aculab: wrong credentials");
            Err(unauthorized("wrong username or API key"))
        }
        Err(e) => Err(unauthorized(&e.to_string())),
    }
}

/// A required parameter, non-empty.
fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, Refusal> {
    match params.get(name).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Refusal::bad(format!("{name}: is required"))),
    }
}

/// A whole number parameter (digits only).
fn number(params: &Params, name: &str) -> Result<i64, Refusal> {
    let text = required(params, name)?;
    if !text.chars().all(|c| c.is_ascii_digit()) || text.len() > 9 {
        return Err(Refusal::bad(format!("{name}: {text:?} is not a whole number")));
    }
    text.parse().map_err(|_| Refusal::bad(format!("{name}: {text:?} is not a whole number")))
}

/// `true` or `false`.
fn flag(params: &Params, name: &str) -> Result<Option<bool>, Refusal> {
    match params.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v == "true" => Ok(Some(true)),
        Some(v) if v == "false" => Ok(Some(false)),
        Some(v) => Err(Refusal::bad(format!("{name}: {v:?} is not 'true' or 'false'"))),
    }
}

/// A start time, UTC: `YYYY-MM-DD_hh:mm:ss` or `YYYY-MM-DD-hh-mm`.
pub fn parse_start(text: &str) -> Result<Time, String> {
    let bad = || format!("{text:?} is not YYYY-MM-DD_hh:mm:ss or YYYY-MM-DD-hh-mm (UTC)");
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i16> {
        let part = text.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    let (hour, minute, second) = match b.len() {
        19 if b[10] == b'_' && b[13] == b':' && b[16] == b':' => (11, 14, Some(17)),
        16 if b[10] == b'-' && b[13] == b'-' => (11, 14, None),
        _ => return Err(bad()),
    };
    if b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let field = |at: usize, len: usize| digits(at..at + len).ok_or_else(bad);
    let year = field(0, 4)?;
    let month = field(5, 2)?;
    let day = field(8, 2)?;
    let hh = field(hour, 2)?;
    let mm = field(minute, 2)?;
    let ss = match second {
        Some(at) => field(at, 2)?,
        None => 0,
    };
    let datetime = jiff::civil::DateTime::new(
        year,
        i8::try_from(month).map_err(|_| bad())?,
        i8::try_from(day).map_err(|_| bad())?,
        i8::try_from(hh).map_err(|_| bad())?,
        i8::try_from(mm).map_err(|_| bad())?,
        i8::try_from(ss).map_err(|_| bad())?,
        0,
    )
    .map_err(|e| format!("{text:?}: {e}"))?;
    let timestamp =
        datetime.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| e.to_string())?.timestamp();
    Ok(Time::from_timestamp(timestamp))
}

/// A time as the document writes it: `YYYY-MM-DD-hh-mm` and `YYYY-MM-DD_hh:mm:ss`, UTC.
fn written(t: Time) -> (String, String) {
    let dt = t.timestamp().to_zoned(jiff::tz::TimeZone::UTC).datetime();
    (dt.strftime("%Y-%m-%d-%H-%M").to_string(), dt.strftime("%Y-%m-%d_%H:%M:%S").to_string())
}

/// How the request names its conference: the token if given, else the name.
fn named(params: &Params) -> Result<Named<'_>, Refusal> {
    let token = params.get("reservation_token").map(str::trim).filter(|t| !t.is_empty());
    let name = params.get("conference_name").map(str::trim).filter(|n| !n.is_empty());
    match (token, name) {
        (Some(token), _) => Ok(Named::Token(token)),
        (None, Some(name)) => Ok(Named::Name(name)),
        (None, None) => Err(Refusal::bad("conference_name: is required (or reservation_token)")),
    }
}

/// One conference as Conference List shows it.
fn listed(b: &Booked) -> Value {
    let name = b.conference.dial_in_number.clone().unwrap_or_default();
    match &b.reservation {
        Some(r) => {
            let (start_time, start_datetime) = written(r.start_time);
            let mut v = json!({
                "reservation_token": r.token,
                "conference_name": name,
                "max_participants": b.max_participants,
                "start_time": start_time,
                "start_datetime": start_datetime,
                "duration": r.duration_minutes,
                "status": b.state.as_str(),
            });
            if let Some(divert) = &r.divert {
                v["divert"] = json!(divert);
            }
            v
        }
        None => json!({
            "conference_name": name,
            "max_participants": b.max_participants,
            "status": b.state.as_str(),
        }),
    }
}

fn participant(c: &Caller) -> Value {
    json!({"participant_id": c.uid, "muted": c.mute, "dtmf_enabled": c.dtmf_allowed})
}

async fn answer(name: &str, ops: &Ops, scope: &Scope, params: &Params) -> Result<Value, Refusal> {
    match name {
        "conference_reservation_create" => {
            let conference_name = required(params, "conference_name")?.to_owned();
            let max_participants = number(params, "max_participants")?;
            let start = parse_start(required(params, "start_time")?)
                .map_err(|e| Refusal::bad(format!("start_time: {e}")))?;
            let duration_minutes = number(params, "duration")?;
            let divert =
                params.get("divert").map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
            let booking = Booking {
                name: conference_name,
                max_participants,
                start,
                duration_minutes,
                divert,
            };
            let (_, reservation) = ops.book(scope, booking).await?;
            Ok(json!({"reservation_token": reservation.token}))
        }
        "conference_reservation_modify" => {
            let token = required(params, "reservation_token")?;
            let minutes = number(params, "duration")?;
            ops.extend_booking(scope, token, minutes).await?;
            Ok(json!({"extended": true}))
        }
        "conference_reservation_remove" => {
            let token = required(params, "reservation_token")?;
            ops.cancel_booking(scope, token).await?;
            Ok(json!({"removed": true}))
        }
        "conference_list" => {
            let all = ops.bookings(scope).await?;
            // Conferences callers reach by name; the others have no Aculab name.
            Ok(Value::Array(
                all.iter().filter(|b| b.conference.dial_in_number.is_some()).map(listed).collect(),
            ))
        }
        "conference_participant_list" => {
            let (state, callers) = ops.participants(scope, named(params)?).await?;
            let listed: Vec<Value> = match state {
                ReservationState::Active | ReservationState::Holding => {
                    callers.iter().map(participant).collect()
                }
                _ => Vec::new(),
            };
            Ok(json!({"status": state.as_str(), "participants": listed}))
        }
        "conference_participant_set_options" => {
            let by = named(params)?;
            let id = required(params, "participant_id")?;
            let muted = flag(params, "muted")?;
            let dtmf = flag(params, "dtmf_enabled")?;
            if muted.is_none() && dtmf.is_none() {
                return Err(Refusal::bad(
                    "muted or dtmf_enabled: give at least one ('true' or 'false')",
                ));
            }
            ops.set_participant_options(scope, by, id, muted, dtmf).await?;
            Ok(json!({"options_set": true}))
        }
        "conference_participant_eject" => {
            let by = named(params)?;
            let id = required(params, "participant_id")?;
            ops.eject_participant(scope, by, id).await?;
            Ok(json!({"ejected": true}))
        }
        other => Err(Refusal(StatusCode::NOT_FOUND, format!("no such service: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_in_both_formats_and_nothing_else() {
        let t = |s: &str| parse_start(s).map(|t| t.to_string());
        assert_eq!(t("2026-12-01_10:15:30"), Ok("2026-12-01T10:15:30.000Z".into()));
        assert_eq!(t("2026-12-01-10-15"), Ok("2026-12-01T10:15:00.000Z".into()));
        for bad in [
            "2026-13-01_10:00:00",
            "2026-12-01 10:00",
            "2026-12-01_10:00",
            "",
            "2026-02-30-10-00",
            "2026-12-01_24:00:00",
            "2026-12-01-1a-00",
            "2026-12-01T10:00:00Z",
            "+026-12-01-10-00",
        ] {
            assert!(parse_start(bad).is_err(), "{bad:?}");
        }
        let (short, long) = written(parse_start("2019-06-20_15:15:00").expect("time"));
        assert_eq!((short.as_str(), long.as_str()), ("2019-06-20-15-15", "2019-06-20_15:15:00"));
    }
}
