//! `/_test/clock`, served only when the server runs with `--test-clock`: reads
//! and moves the wall clock every schedule rule follows (see
//! [`crate::time::Time::enable_test_clock`]), so end-to-end tests of
//! reservations minutes or hours ahead run in seconds. Never for production.
//!
//! - `GET /_test/clock`: `{"now": "<RFC 3339>"}`.
//! - `POST /_test/clock` with `at=<RFC 3339>` or `advance=<seconds>` (may be
//!   negative), and `frozen=true` to stop the clock there (default: it runs on).

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::params::{Params, parse_bool};
use crate::live::Event;
use crate::ops::Ops;
use crate::time::Time;

pub fn router() -> Router<Ops> {
    Router::new().route("/_test/clock", get(read).post(set))
}

async fn read() -> Response {
    axum::Json(json!({"now": Time::now().to_string()})).into_response()
}

fn refuse(message: String) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": message}))).into_response()
}

async fn set(
    State(ops): State<Ops>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = match Params::read(query.as_deref(), &headers, body).await {
        Ok(p) => p,
        Err(e) => return refuse(e.to_string()),
    };
    let frozen = match params.get("frozen").map(|v| parse_bool("frozen", v)).transpose() {
        Ok(f) => f.unwrap_or(false),
        Err(e) => return refuse(e.to_string()),
    };
    let at = match (params.get("at"), params.get("advance")) {
        (Some(at), None) => match at.parse::<Time>() {
            Ok(at) => at,
            Err(e) => return refuse(format!("at: {e}")),
        },
        (None, Some(seconds)) => match seconds.trim().parse::<i64>() {
            Ok(s) => match Time::from_unix_millis(Time::now().unix_millis() + s * 1000) {
                Some(at) => at,
                None => return refuse("advance: out of range".into()),
            },
            Err(_) => return refuse(format!("advance: {seconds:?} is not a number of seconds")),
        },
        _ => return refuse("give at (RFC 3339) or advance (seconds)".into()),
    };
    if !Time::set_test_clock(at, frozen) {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "the test clock is off"})))
            .into_response();
    }
    tracing::warn!(now = %at, frozen, "test clock moved");
    ops.events.publish(Event::ClockChanged);
    axum::Json(json!({"now": Time::now().to_string()})).into_response()
}
