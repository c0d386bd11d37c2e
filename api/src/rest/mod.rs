//! The PBX conference REST resource (`/api/v1`), from
//! `004_914209d085eb1ecc.txt`: conference rooms with the document's
//! properties, the sounds they play, their live members and their recordings,
//! as JSON resources. A translator over the operations layer, like every other
//! interface; docs/api-rest.md is its user's page.
//!
//! - Bearer authentication with a customer's API key; a customer sees only
//!   its own resources (another's id is 404).
//! - JSON bodies, checked field by field against [`conferences::FIELDS`]:
//!   unknown fields, wrong types and bad values answer 422 naming the field.
//! - Errors are `{"error": "...", "field": "..."}` with the status the
//!   document's "predictable REST" implies (400, 401, 404, 405, 409, 413,
//!   415, 422, 503).

pub mod conferences;
pub mod members;
pub mod openapi;
pub mod recordings;
pub mod sounds;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Map, Value, json};

use crate::http::params::BodyError;
use crate::ops::{Conflict, Kind, Ops, OpsError, Scope};

/// The largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// The most items a list answers at once, and how many by default.
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 100;

/// Routes `/api/v1/*`.
pub fn router() -> Router<Ops> {
    let routes: [(&str, MethodRouter<Ops>); 12] = [
        ("/api/v1/conferences", get(conferences::list).post(conferences::create)),
        (
            "/api/v1/conferences/{id}",
            get(conferences::show)
                .patch(conferences::patch)
                .put(conferences::put)
                .delete(conferences::delete),
        ),
        ("/api/v1/conferences/{id}/members", get(members::list)),
        ("/api/v1/conferences/{id}/members/{member}/mute", post(members::mute)),
        ("/api/v1/conferences/{id}/members/{member}/unmute", post(members::unmute)),
        ("/api/v1/conferences/{id}/members/{member}/kick", post(members::kick)),
        ("/api/v1/conferences/{id}/invite", post(members::invite)),
        (
            "/api/v1/sounds",
            get(sounds::list)
                .post(sounds::upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        ),
        ("/api/v1/sounds/{id}", get(sounds::show).delete(sounds::delete)),
        ("/api/v1/sounds/{id}/file", get(sounds::file)),
        ("/api/v1/recordings", get(recordings::list)),
        ("/api/v1/recordings/{id}", get(recordings::show).delete(recordings::delete)),
    ];
    let mut router = Router::new();
    for (path, methods) in routes {
        router = router.route(path, methods.fallback(method_not_allowed));
    }
    router.route("/api/v1/recordings/{id}/file", get(recordings::file).fallback(method_not_allowed))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not served at {}", uri.path()),
    )
}

/// An error answer: `{"error", "field"?, ...}` with its status.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    body: Map<String, Value>,
}

impl Refusal {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(error.into()));
        Self { status, body }
    }

    /// A problem with one field (422 unless said otherwise).
    pub fn field(field: &str, error: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, error).with("field", json!(field))
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.body.insert(key.to_owned(), value);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(Value::Object(self.body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tutti\""),
            );
        }
        crate::http::retry_after_lockout(&mut response);
        response
    }
}

/// The REST name of an operations-layer field.
fn field_name(ops_field: &str) -> String {
    match ops_field {
        "dial-in number" => "number".into(),
        "moderator pin" => "moderator_pin".into(),
        "max members" => "max_members".into(),
        "wav-file" => "file".into(),
        other => other.replace([' ', '-'], "_"),
    }
}

impl From<OpsError> for Refusal {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::Invalid { field, reason } => {
                let name = field_name(field);
                Refusal::field(&name, format!("{name}: {reason}"))
            }
            OpsError::NotFound(kind) => {
                let what = match kind {
                    Kind::Caller => "member",
                    Kind::Conference => "conference",
                    other => other.as_str(),
                };
                Refusal::new(StatusCode::NOT_FOUND, format!("no such {what}"))
            }
            OpsError::Conflict(Conflict::NumberInUse) => {
                Refusal::new(StatusCode::CONFLICT, "number: already in use by another room")
                    .with("field", json!("number"))
            }
            OpsError::Conflict(Conflict::SoundInUse(rooms)) => Refusal::new(
                StatusCode::CONFLICT,
                format!("the sound is in use by {}", rooms.join(", ")),
            )
            .with("field", json!("id"))
            .with("rooms", json!(rooms)),
            OpsError::Conflict(Conflict::SoundQuota { quota, used, size }) => Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the sound needs {size} bytes; this account's sounds take {used} of its \
                     {quota}-byte quota: delete some first"
                ),
            )
            .with("quota_bytes", json!(quota))
            .with("used_bytes", json!(used))
            .with("size_bytes", json!(size)),
            OpsError::Unavailable { incident } => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("temporarily unavailable (incident {incident}); retry"),
            ),
            other => Refusal::new(StatusCode::CONFLICT, other.to_string()),
        }
    }
}

impl From<BodyError> for Refusal {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => {
                Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large")
            }
            other => Refusal::bad_request(other.to_string()),
        }
    }
}

/// The customer of the request's bearer key, as the scope of what it asks.
pub struct Customer(pub Scope);

impl FromRequestParts<Ops> for Customer {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, ops: &Ops) -> Result<Self, Refusal> {
        let unauthorized = |why: &str| Refusal::new(StatusCode::UNAUTHORIZED, why.to_owned());
        let value =
            parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(
                || unauthorized("an Authorization: Bearer <API key> header is required"),
            )?;
        let key = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer <API key>"))?;
        let peer = crate::http::Peer::of(parts);
        let checked = ops.guarded(peer.0, "rest", ops.authenticate_key(key)).await;
        let checked = checked.map_err(|_| {
            Refusal::new(StatusCode::TOO_MANY_REQUESTS, crate::ops::sources::LOCKED_OUT.to_owned())
        })?;
        match checked {
            Ok(customer) => Ok(Customer(Scope::Customer(customer.uid))),
            Err(OpsError::NotFound(_)) => {
                tracing::info!("rest: wrong API key");
                Err(unauthorized("wrong API key"))
            }
            Err(e @ OpsError::Unavailable { .. }) => Err(e.into()),
            Err(e) => Err(unauthorized(&e.to_string())),
        }
    }
}

/// `?limit=&offset=` of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Page {
    /// From a query string; other parameters are left to the caller.
    pub fn from_query(query: Option<&str>) -> Result<Self, Refusal> {
        let mut page = Page { limit: DEFAULT_LIMIT, offset: 0 };
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let parsed = || {
                value.parse::<usize>().map_err(|_| {
                    Refusal::bad_request(format!("{name}: {value:?} is not a whole number"))
                        .with("field", json!(name))
                })
            };
            match name.as_ref() {
                "limit" => {
                    page.limit = parsed()?;
                    if !(1..=MAX_LIMIT).contains(&page.limit) {
                        return Err(Refusal::bad_request(format!(
                            "limit: 1 to {MAX_LIMIT}, not {}",
                            page.limit
                        ))
                        .with("field", json!("limit")));
                    }
                }
                "offset" => page.offset = parsed()?,
                _ => {}
            }
        }
        Ok(page)
    }

    /// The page of `items`, as `{"items", "total", "limit", "offset"}`.
    pub fn answer(self, items: Vec<Value>) -> Value {
        let total = items.len();
        let items: Vec<Value> = items.into_iter().skip(self.offset).take(self.limit).collect();
        json!({"items": items, "total": total, "limit": self.limit, "offset": self.offset})
    }
}

/// A JSON object body of at most [`MAX_JSON_BODY`] bytes.
pub async fn json_object(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Map<String, Value>, Refusal> {
    let bytes = crate::http::params::read_body(headers, body, MAX_JSON_BODY).await.map_err(
        |e| match e {
            BodyError::TooLarge => Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the JSON body is larger than {MAX_JSON_BODY} bytes"),
            ),
            other => other.into(),
        },
    )?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::bad_request("the body must be a JSON object")),
        Err(e) => Err(Refusal::bad_request(format!("the body is not valid JSON: {e}"))),
    }
}

/// A path id that must be an integer (sounds).
pub fn integer_id(id: &str) -> Result<i64, Refusal> {
    id.parse::<i64>().map_err(|_| Refusal::new(StatusCode::NOT_FOUND, "no such sound"))
}

/// Runs an operation in its own task, so a panic (a bug) is answered with 500
/// and logged while the server goes on.
pub async fn guarded<F>(what: &'static str, work: F) -> Result<Response, Refusal>
where
    F: Future<Output = Result<Response, Refusal>> + Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, operation = what, "rest: an operation failed unexpectedly");
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected failure; the server logged it",
            ))
        }
    }
}

/// A file as an `audio/wav` answer.
pub async fn wav_file(path: std::path::PathBuf) -> Result<Response, Refusal> {
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok((
            [(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"))],
            axum::body::Body::from(bytes),
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Refusal::new(StatusCode::NOT_FOUND, "the file is missing"))
        }
        Err(e) => Err(OpsError::internal("rest: file not read", e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked_and_cut() {
        assert_eq!(Page::from_query(None).unwrap(), Page { limit: 100, offset: 0 });
        let page = Page::from_query(Some("limit=2&offset=1&other=x")).unwrap();
        let items: Vec<Value> = (0..4).map(|n| json!(n)).collect();
        assert_eq!(
            page.answer(items),
            json!({"items": [1, 2], "total": 4, "limit": 2, "offset": 1})
        );
        for bad in ["limit=0", "limit=1001", "limit=abc", "offset=-1", "limit="] {
            let refusal = Page::from_query(Some(bad)).expect_err(bad);
            assert_eq!(refusal.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn operation_errors_name_the_rest_field() {
        let r = Refusal::from(OpsError::invalid("dial-in number", "too long"));
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["field"], "number");
        let r = Refusal::from(OpsError::Conflict(Conflict::SoundInUse(vec!["4001".into()])));
        assert_eq!((r.status, &r.body["rooms"]), (StatusCode::CONFLICT, &json!(["4001"])));
        let r = Refusal::from(OpsError::NotFound(Kind::Caller));
        assert_eq!((r.status, &r.body["error"]), (StatusCode::NOT_FOUND, &json!("no such member")));
    }
}
