//! `/api/v1/conferences/{id}/members` and `/invite`: a room's live callers,
//! muted, unmuted and hung up as the keypad or TCP 4011 would, and callees
//! dialled into it.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Customer, Page, Refusal, guarded, json_object};
use crate::live::{CallQuality, CallerUpdate};
use crate::model::{Caller, Role};
use crate::ops::media::DialOut;
use crate::ops::{Ops, Scope};

/// A member as JSON, with its media quality while it is connected.
pub fn render(c: &Caller, talking: bool, quality: Option<CallQuality>) -> Value {
    json!({
        "id": c.uid,
        "number": c.ani,
        "name": c.name,
        "role": c.role.to_string().to_ascii_lowercase(),
        "muted": c.mute,
        "talking": talking,
        "joined_at": c.start_time.to_string(),
        "quality": quality,
    })
}

pub async fn list(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, Refusal> {
    let page = Page::from_query(query.as_deref())?;
    let callers = ops.live_callers(&scope, &id).await?;
    let talking = ops.talking(&scope, &id).await?;
    let items =
        callers.iter().map(|c| render(c, talking.contains(&c.uid), ops.quality_of(c))).collect();
    Ok(axum::Json(page.answer(items)).into_response())
}

async fn set_mute(ops: Ops, scope: Scope, id: String, member: String, mute: bool) -> Response {
    let answer = guarded("mute member", async move {
        ops.live_caller(&scope, &id, &member).await?;
        ops.update_caller(&scope, &member, CallerUpdate::Mute(mute)).await?;
        let caller = ops.live_caller(&scope, &id, &member).await?;
        let talking = ops.talking(&scope, &id).await?.contains(&caller.uid);
        Ok(axum::Json(render(&caller, talking, ops.quality_of(&caller))).into_response())
    })
    .await;
    answer.unwrap_or_else(IntoResponse::into_response)
}

pub async fn mute(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path((id, member)): Path<(String, String)>,
) -> Response {
    set_mute(ops, scope, id, member, true).await
}

pub async fn unmute(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path((id, member)): Path<(String, String)>,
) -> Response {
    set_mute(ops, scope, id, member, false).await
}

pub async fn kick(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path((id, member)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    guarded("kick member", async move {
        ops.live_caller(&scope, &id, &member).await?;
        ops.drop_caller(&scope, &member).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

pub async fn invite(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let body = json_object(&headers, body).await?;
    if let Some(unknown) = body.keys().find(|k| !matches!(k.as_str(), "number" | "name")) {
        return Err(Refusal::field(unknown, format!("{unknown}: no such field")));
    }
    let number = match body.get("number") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_owned(),
        Some(Value::String(_)) | None => {
            return Err(Refusal::field("number", "number: is required"));
        }
        Some(other) => {
            return Err(Refusal::field("number", format!("number: must be string, not {other}")));
        }
    };
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(other) => {
            return Err(Refusal::field("name", format!("name: must be string, not {other}")));
        }
    };
    guarded("invite", async move {
        let request = DialOut {
            conference_uid: id,
            number,
            name,
            role: Role::Participant,
            remote_command: None,
        };
        let caller = ops.dial_out(&scope, request).await?;
        Ok((StatusCode::ACCEPTED, axum::Json(json!({"id": caller}))).into_response())
    })
    .await
}
