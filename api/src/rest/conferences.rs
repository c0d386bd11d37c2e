//! `/api/v1/conferences`: rooms with the document's properties. [`FIELDS`]
//! is the one description of a room's JSON: requests are checked against it
//! and `/openapi.json` is made from it.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Customer, Page, Refusal, guarded, json_object};
use crate::model::Conference;
use crate::ops::{Ops, OpsError, Scope};

/// The member limit a room has while its `max_members` is null: the
/// document's default.
pub const DEFAULT_MAX_MEMBERS: i64 = 100;
/// The largest `max_members` accepted.
pub const MAX_MAX_MEMBERS: i64 = 10_000;

/// A JSON type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Boolean,
    Integer,
    String,
}

impl Ty {
    pub fn as_str(self) -> &'static str {
        match self {
            Ty::Boolean => "boolean",
            Ty::Integer => "integer",
            Ty::String => "string",
        }
    }
}

/// One field of a room's JSON.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub nullable: bool,
    /// Written by the server only; may be sent back unchanged.
    pub read_only: bool,
    /// Its value in a new room (writable fields), as JSON text.
    pub default: &'static str,
    pub doc: &'static str,
}

const fn field(
    name: &'static str,
    ty: Ty,
    nullable: bool,
    default: &'static str,
    doc: &'static str,
) -> Field {
    Field { name, ty, nullable, read_only: false, default, doc }
}

const fn read_only(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field { name, ty, nullable: false, read_only: true, default: "null", doc }
}

pub const FIELDS: &[Field] = &[
    read_only("id", Ty::String, "The room's id (the conference UID of the other interfaces)"),
    field(
        "number",
        Ty::String,
        false,
        "null",
        "Required. What callers dial: 1 to 47 letters, digits, '+', '-', '_'; unique",
    ),
    field("name", Ty::String, false, "\"\"", "A label, at most 4096 bytes"),
    field(
        "announce_caller_name",
        Ty::Boolean,
        false,
        "false",
        "Callers say their name on entry, and the room hears it",
    ),
    field(
        "enter_sound",
        Ty::Integer,
        true,
        "null",
        "A sound id: what the room hears when someone enters (else a beep)",
    ),
    field(
        "max_members",
        Ty::Integer,
        true,
        "null",
        "1 to 10000 participants; null means the default, 100",
    ),
    field("pin", Ty::String, true, "null", "Digits (at most 32) callers must type to enter"),
    field(
        "moderator_pin",
        Ty::String,
        true,
        "null",
        "Digits that make a caller a moderator; needs `pin`, and differs from it",
    ),
    field(
        "mute_non_moderator",
        Ty::Boolean,
        false,
        "false",
        "Everyone but moderators enters muted, and only moderators may use *1",
    ),
    field(
        "music_on_hold_sound",
        Ty::Integer,
        true,
        "null",
        "A sound id: what a caller alone hears (else the bundled music)",
    ),
    field("record_enabled", Ty::Boolean, false, "false", "The room is recorded"),
    read_only("locked", Ty::Boolean, "*92 locked the room (*93 unlocks it)"),
    read_only("entry_notifications", Ty::Boolean, "Entry sounds play (*94 off, *95 on)"),
    read_only("members", Ty::Integer, "Callers connected now"),
    read_only("created_at", Ty::String, "RFC 3339, UTC"),
    read_only("updated_at", Ty::String, "RFC 3339, UTC"),
];

/// A room as JSON.
pub fn render(c: &Conference, members: i64) -> Value {
    json!({
        "id": c.uid,
        "number": c.dial_in_number,
        "name": c.name,
        "announce_caller_name": c.announce_caller_name,
        "enter_sound": c.enter_sound,
        "max_members": c.max_members,
        "pin": c.participant_pin,
        "moderator_pin": c.moderator_pin,
        "mute_non_moderator": c.mute_non_moderator,
        "music_on_hold_sound": c.music_on_hold_sound,
        "record_enabled": c.recording,
        "locked": c.locked,
        "entry_notifications": c.entry_notifications,
        "members": members,
        "created_at": c.created_at.to_string(),
        "updated_at": c.updated_at.to_string(),
    })
}

/// Checks each given field's name, type and (for read-only ones) value
/// against [`FIELDS`]; `current` is the room as rendered now, if it exists.
fn check_fields(body: &Map<String, Value>, current: Option<&Value>) -> Result<(), Refusal> {
    for (name, value) in body {
        let Some(f) = FIELDS.iter().find(|f| f.name == name) else {
            return Err(Refusal::field(name, format!("{name}: no such field")));
        };
        if f.read_only {
            let same = current.is_some_and(|c| c.get(name) == Some(value));
            if !same {
                return Err(Refusal::field(name, format!("{name}: read-only")));
            }
            continue;
        }
        let fits = match (f.ty, value) {
            (_, Value::Null) => f.nullable,
            (Ty::Boolean, Value::Bool(_)) | (Ty::String, Value::String(_)) => true,
            (Ty::Integer, Value::Number(n)) => n.is_i64(),
            _ => false,
        };
        if !fits {
            let expected = if f.nullable {
                format!("{} or null", f.ty.as_str())
            } else {
                f.ty.as_str().into()
            };
            return Err(Refusal::field(name, format!("{name}: must be {expected}, not {value}")));
        }
    }
    Ok(())
}

/// What a PATCH (`reset` false) or PUT (`reset` true) does to a room: the
/// body checked against [`FIELDS`] (`current` is the room as rendered now, for
/// read-only fields sent back), then its writable fields written into `c`.
/// The handlers' two steps in one, for tests and fuzzing.
pub fn change_room(
    body: &Map<String, Value>,
    current: Option<&Value>,
    c: &mut Conference,
    reset: bool,
) -> Result<(), Refusal> {
    check_fields(body, current)?;
    apply(c, body, reset)
}

/// A PIN as stored: an empty one is none.
fn pin(value: &Value) -> Option<String> {
    value.as_str().map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned)
}

/// Writes the given (already checked) writable fields into `c`; with `reset`
/// (PUT), fields not given return to their defaults first.
fn apply(c: &mut Conference, body: &Map<String, Value>, reset: bool) -> Result<(), Refusal> {
    let given = |name: &str| -> Option<Value> {
        match body.get(name) {
            Some(v) => Some(v.clone()),
            None if reset => FIELDS
                .iter()
                .find(|f| f.name == name && !f.read_only)
                .and_then(|f| serde_json::from_str(f.default).ok()),
            None => None,
        }
    };
    if let Some(v) = given("number") {
        c.dial_in_number = v.as_str().map(|s| s.trim().to_owned());
        if c.dial_in_number.is_none() {
            return Err(Refusal::field("number", "number: is required"));
        }
    }
    if let Some(v) = given("name") {
        let name = v.as_str().unwrap_or_default().to_owned();
        crate::ops::accounts::check_text("name", &name)?;
        c.name = name;
    }
    if let Some(v) = given("announce_caller_name") {
        c.announce_caller_name = v.as_bool().unwrap_or(false);
    }
    if let Some(v) = given("mute_non_moderator") {
        c.mute_non_moderator = v.as_bool().unwrap_or(false);
    }
    if let Some(v) = given("record_enabled") {
        c.recording = v.as_bool().unwrap_or(false);
    }
    if let Some(v) = given("enter_sound") {
        c.enter_sound = v.as_i64();
    }
    if let Some(v) = given("music_on_hold_sound") {
        c.music_on_hold_sound = v.as_i64();
    }
    if let Some(v) = given("max_members") {
        let max = v.as_i64();
        if let Some(n) = max
            && !(1..=MAX_MAX_MEMBERS).contains(&n)
        {
            return Err(Refusal::field(
                "max_members",
                format!("max_members: 1 to {MAX_MAX_MEMBERS}, or null for {DEFAULT_MAX_MEMBERS}"),
            ));
        }
        c.max_members = max;
    }
    if let Some(v) = given("pin") {
        c.participant_pin = pin(&v);
    }
    if let Some(v) = given("moderator_pin") {
        c.moderator_pin = pin(&v);
    }
    Ok(())
}

/// A room's JSON with its members counted now.
async fn rendered(ops: &Ops, c: &Conference) -> Result<Value, Refusal> {
    let members = ops.store.active_member_count(&c.uid).await.map_err(OpsError::from)?;
    Ok(render(c, members))
}

fn created(c: &Conference, body: Value) -> Response {
    let location = format!("/api/v1/conferences/{}", c.uid);
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub async fn list(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let page = Page::from_query(query.as_deref())?;
    let rooms = ops.conferences(&scope).await?;
    let counts = ops.member_counts(&scope).await?;
    let items = rooms.iter().map(|c| render(c, counts.get(&c.uid).copied().unwrap_or(0))).collect();
    Ok(axum::Json(page.answer(items)).into_response())
}

pub async fn create(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let body = json_object(&headers, body).await?;
    check_fields(&body, None)?;
    if !body.get("number").is_some_and(Value::is_string) {
        return Err(Refusal::field("number", "number: is required"));
    }
    guarded("create conference", async move {
        let mut c = ops.new_conference(&scope, "").await?;
        c.default_max_members = Some(DEFAULT_MAX_MEMBERS);
        apply(&mut c, &body, true)?;
        let c = ops.create_conference(&scope, c).await?;
        Ok(created(&c, render(&c, 0)))
    })
    .await
}

pub async fn show(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let c = ops.conference(&scope, &id).await?;
    Ok(axum::Json(rendered(&ops, &c).await?).into_response())
}

async fn change(
    ops: Ops,
    scope: Scope,
    id: String,
    headers: HeaderMap,
    body: Body,
    reset: bool,
) -> Result<Response, Refusal> {
    let body = json_object(&headers, body).await?;
    let before = ops.conference(&scope, &id).await?;
    check_fields(&body, Some(&rendered(&ops, &before).await?))?;
    if reset && !body.get("number").is_some_and(Value::is_string) {
        return Err(Refusal::field("number", "number: is required"));
    }
    guarded("change conference", async move {
        // The REST checks run inside the change, on the stored room.
        let mut refusal = None;
        let changed = ops
            .modify_conference(&scope, &id, |c| {
                if let Err(r) = apply(c, &body, reset) {
                    refusal = Some(r);
                    return Err(OpsError::invalid("request", "refused"));
                }
                Ok(())
            })
            .await;
        if let Some(r) = refusal {
            return Err(r);
        }
        let c = changed?;
        Ok(axum::Json(rendered(&ops, &c).await?).into_response())
    })
    .await
}

pub async fn patch(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    change(ops, scope, id, headers, body, false).await
}

pub async fn put(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    change(ops, scope, id, headers, body, true).await
}

pub async fn delete(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    guarded("delete conference", async move {
        ops.delete_conference(&scope, &id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Customer as Account;

    #[test]
    fn every_rendered_field_is_described_and_defaults_parse() {
        let c = Conference::new(&Account::new("Acme"), "");
        let rendered = render(&c, 0);
        let keys: Vec<&String> = rendered.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), FIELDS.len());
        for f in FIELDS {
            assert!(rendered.get(f.name).is_some(), "{} rendered", f.name);
            assert!(serde_json::from_str::<Value>(f.default).is_ok(), "{} default", f.name);
        }
    }

    #[test]
    fn fields_are_checked_by_name_type_and_read_only_value() {
        let mut c = Conference::new(&Account::new("Acme"), "");
        c.dial_in_number = Some("4001".into());
        let now = render(&c, 0);
        let body = |v: Value| v.as_object().expect("object").clone();
        let field_of = |r: Refusal| r.body["field"].as_str().map(str::to_owned);
        assert!(check_fields(&body(json!({"number": "4001", "pin": null})), None).is_ok());
        for (bad, name) in [
            (json!({"colour": "red"}), "colour"),
            (json!({"max_members": "ten"}), "max_members"),
            (json!({"max_members": 1.5}), "max_members"),
            (json!({"announce_caller_name": "yes"}), "announce_caller_name"),
            (json!({"pin": 1234}), "pin"),
            (json!({"number": null}), "number"),
            (json!({"locked": true}), "locked"),
        ] {
            let refusal = check_fields(&body(bad.clone()), Some(&now)).expect_err("refused");
            assert_eq!(field_of(refusal).as_deref(), Some(name), "{bad}");
        }
        // Read-only fields sent back unchanged pass.
        assert!(check_fields(&body(now.clone()), Some(&now)).is_ok());
    }

    #[test]
    fn put_resets_what_it_does_not_give() {
        let mut c = Conference::new(&Account::new("Acme"), "");
        c.dial_in_number = Some("4001".into());
        c.mute_non_moderator = true;
        c.participant_pin = Some("1234".into());
        let body = json!({"number": "4002", "max_members": 20});
        apply(&mut c, body.as_object().expect("object"), true).expect("applied");
        assert_eq!(c.dial_in_number.as_deref(), Some("4002"));
        assert_eq!(c.max_members, Some(20));
        assert!(!c.mute_non_moderator);
        assert_eq!(c.participant_pin, None);
        let refused = apply(&mut c, json!({"max_members": 0}).as_object().expect("o"), false);
        assert!(refused.is_err());
    }
}
