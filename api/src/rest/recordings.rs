//! `/api/v1/recordings`: the recordings of the customer's rooms (rooms with
//! `record_enabled`, and recordings started through the other interfaces).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Customer, Page, Refusal, guarded};
use crate::ops::Ops;
use crate::ops::catalog::RecordingInfo;

/// A recording as JSON.
pub fn render(r: &RecordingInfo) -> Value {
    json!({
        "id": r.recording.uid,
        "conference_id": r.recording.conference_uid,
        "room": r.room,
        "member_id": r.recording.caller_uid,
        "started_at": r.recording.started_at.to_string(),
        "ended_at": r.recording.ended_at.map(|t| t.to_string()),
        "duration_ms": r.duration_ms,
        "size": r.size,
    })
}

pub async fn list(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let page = Page::from_query(query.as_deref())?;
    let conference = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "conference_id")
        .map(|(_, v)| v.into_owned());
    let items = ops.recordings(&scope, conference.as_deref()).await?.iter().map(render).collect();
    Ok(axum::Json(page.answer(items)).into_response())
}

pub async fn show(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    Ok(axum::Json(render(&ops.recording(&scope, &id).await?)).into_response())
}

pub async fn file(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let path = ops.recording_file(&scope, &id).await?;
    super::wav_file(path).await
}

pub async fn delete(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    guarded("delete recording", async move {
        ops.delete_recording(&scope, &id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}
