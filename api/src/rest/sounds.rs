//! `/api/v1/sounds`: WAV files rooms play as `enter_sound` and
//! `music_on_hold_sound`. Uploaded as `multipart/form-data` (a `file` part and
//! an optional `name` part) or as a raw `audio/wav` body with `?name=`.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Customer, Page, Refusal, guarded, integer_id};
use crate::http::params::BodyError;
use crate::ops::Ops;
use crate::ops::catalog::SoundInfo;

/// The largest sound file accepted.
pub const MAX_SOUND_BYTES: usize = 10 * 1024 * 1024;
/// Room for the multipart framing and the `name` part around the file.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// A sound as JSON.
pub fn render(s: &SoundInfo) -> Value {
    json!({
        "id": s.sound.id,
        "name": s.sound.name,
        "duration_ms": s.duration_ms,
        "sample_rate": s.sample_rate,
        "size": s.size,
        "shared": s.sound.customer_uid.is_none(),
        "created_at": s.sound.created_at.to_string(),
    })
}

pub async fn list(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let page = Page::from_query(query.as_deref())?;
    let items = ops.sounds(&scope).await?.iter().map(render).collect();
    Ok(axum::Json(page.answer(items)).into_response())
}

pub async fn show(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let info = ops.sound_info(&scope, integer_id(&id)?).await?;
    Ok(axum::Json(render(&info)).into_response())
}

pub async fn file(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let path = ops.sound_file(&scope, integer_id(&id)?).await?;
    super::wav_file(path).await
}

pub async fn delete(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let id = integer_id(&id)?;
    guarded("delete sound", async move {
        ops.delete_sound(&scope, id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

fn too_large() -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("a sound file may have at most {MAX_SOUND_BYTES} bytes"),
    )
}

/// The `file` and `name` parts of a multipart upload.
async fn multipart_parts(request: Request) -> Result<(Vec<u8>, Option<String>), Refusal> {
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| Refusal::bad_request(format!("malformed multipart body: {e}")))?;
    let (mut file, mut name, mut file_name) = (None, None, None);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(Refusal::bad_request(format!("malformed multipart body: {e}"))),
        };
        match field.name() {
            Some("file") => {
                file_name = field.file_name().map(str::to_owned);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| Refusal::bad_request(format!("file: unreadable part: {e}")))?;
                if bytes.len() > MAX_SOUND_BYTES {
                    return Err(too_large());
                }
                file = Some(bytes.to_vec());
            }
            Some("name") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| Refusal::field("name", format!("name: not text: {e}")))?;
                name = Some(text);
            }
            // Other parts are ignored, as unknown query parameters are.
            _ => {}
        }
    }
    let file =
        file.ok_or_else(|| Refusal::field("file", "file: a part named `file` is required"))?;
    Ok((file, name.or(file_name)))
}

pub async fn upload(
    State(ops): State<Ops>,
    Customer(scope): Customer,
    request: Request,
) -> Result<Response, Refusal> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let (parts, body) = request.into_parts();
    let (bytes, name) = match media_type.as_str() {
        "multipart/form-data" => {
            let limit = MAX_SOUND_BYTES + MULTIPART_OVERHEAD;
            let bytes =
                crate::http::params::read_body(&parts.headers, body, limit).await.map_err(|e| {
                    match e {
                        BodyError::TooLarge => too_large(),
                        other => other.into(),
                    }
                })?;
            multipart_parts(Request::from_parts(parts, Body::from(bytes))).await?
        }
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => {
            let bytes = crate::http::params::read_body(&parts.headers, body, MAX_SOUND_BYTES)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge => too_large(),
                    other => other.into(),
                })?;
            let name = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.into_owned());
            (bytes.to_vec(), name)
        }
        other => {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "upload a sound as multipart/form-data (a `file` part) or audio/wav, not {:?}",
                    if other.is_empty() { "no Content-Type" } else { other }
                ),
            ));
        }
    };
    let name = name.ok_or_else(|| Refusal::field("name", "name: is required"))?;
    guarded("upload sound", async move {
        let info = ops.upload_sound(&scope, &name, bytes).await?;
        let mut response = (StatusCode::CREATED, axum::Json(render(&info))).into_response();
        if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/sounds/{}", info.sound.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    })
    .await
}
