//! A request's parameters, wherever the client put them: the query string, and
//! a form (`application/x-www-form-urlencoded`) or JSON object body. Values are
//! text; the typed readers say which parameter is wrong and why. A body larger
//! than [`MAX_BODY`] is refused before it is read in full.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, header};

use crate::time::Time;

/// The largest request body read.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a request's parameters cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("the request body cannot be read: {0}")]
    Unreadable(String),
    #[error("the JSON body is not an object of parameters: {0}")]
    Json(String),
}

/// A parameter that is missing or does not hold what it should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct ParamError {
    pub name: String,
    pub reason: String,
}

impl ParamError {
    pub fn new(name: &str, reason: impl Into<String>) -> Self {
        Self { name: name.to_owned(), reason: reason.into() }
    }
}

/// Reads a whole request body of at most `limit` bytes; a larger one (by its
/// Content-Length, or as it arrives) is refused before it is read in full.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, BodyError> {
    if let Some(length) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok())
        && length.parse::<usize>().is_ok_and(|n| n > limit)
    {
        return Err(BodyError::TooLarge);
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit exceeded"))
            || e.to_string().contains("length limit exceeded")
        {
            BodyError::TooLarge
        } else {
            BodyError::Unreadable(e.to_string())
        }
    })
}

/// The parameters of one request; a body's value wins over the query string's
/// for the same name, and the first of repeated names counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Reads the query string and the body.
    pub async fn read(
        query: Option<&str>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Self, BodyError> {
        let mut params = Self::default();
        if let Some(query) = query {
            params.add_form(query.as_bytes(), false);
        }
        let bytes = read_body(headers, body, MAX_BODY).await?;
        if bytes.is_empty() {
            return Ok(params);
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            params.add_json(&bytes)?;
        } else {
            // Forms, and clients that send a form without saying so.
            params.add_form(&bytes, true);
        }
        Ok(params)
    }

    /// Parameters given directly (tests, and facades that build them).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut params = Self::default();
        for (name, value) in pairs {
            params.values.entry(name.to_owned()).or_insert_with(|| value.to_owned());
        }
        params
    }

    /// The parameters of a query string (the event streams take no body).
    pub fn from_query(query: &str) -> Self {
        let mut params = Self::default();
        params.add_form(query.as_bytes(), true);
        params
    }

    fn add_form(&mut self, bytes: &[u8], overrides: bool) {
        let mut seen = std::collections::HashSet::new();
        for (name, value) in form_urlencoded::parse(bytes) {
            let name = name.into_owned();
            if !seen.insert(name.clone()) {
                continue;
            }
            if overrides || !self.values.contains_key(&name) {
                self.values.insert(name, value.into_owned());
            }
        }
    }

    fn add_json(&mut self, bytes: &[u8]) -> Result<(), BodyError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| BodyError::Json(e.to_string()))?;
        let serde_json::Value::Object(object) = value else {
            return Err(BodyError::Json("expected an object".into()));
        };
        for (name, value) in object {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => continue,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(BodyError::Json(format!("{name}: {other} is not a plain value")));
                }
            };
            self.values.insert(name, text);
        }
        Ok(())
    }

    /// The value as sent, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether a value was sent (empty counts).
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A value that must be there and not be blank.
    pub fn required(&self, name: &str) -> Result<&str, ParamError> {
        match self.get(name).map(str::trim) {
            Some(value) if !value.is_empty() => Ok(value),
            Some(_) => Err(ParamError::new(name, "must not be empty")),
            None => Err(ParamError::new(name, "is required")),
        }
    }

    /// An optional boolean: `true`/`false`/`1`/`0` (any case).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ParamError> {
        self.get(name).map(|v| parse_bool(name, v)).transpose()
    }

    /// An optional whole number.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ParamError> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ParamError::new(name, format!("{v:?} is not a whole number")))
            })
            .transpose()
    }

    /// A whole number that must be there.
    pub fn required_integer(&self, name: &str) -> Result<i64, ParamError> {
        self.required(name)?;
        self.integer(name).map(|v| v.unwrap_or_default())
    }

    /// An optional point in time (see [`parse_time`]).
    pub fn time(&self, name: &str, tz: &jiff::tz::TimeZone) -> Result<Option<Time>, ParamError> {
        self.get(name)
            .map(|v| parse_time(v, tz).map_err(|reason| ParamError::new(name, reason)))
            .transpose()
    }
}

/// `true`/`false`/`1`/`0`, in any case.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, ParamError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ParamError::new(name, format!("{value:?} is not true, false, 1 or 0"))),
    }
}

/// The MaestroConference date-time format, `yyyy.MM.dd HH:mm:ss`.
const DOCUMENT_FORMAT: &str = "%Y.%m.%d %H:%M:%S";

/// A point in time as the MaestroConference documents write it,
/// `yyyy.MM.dd HH:mm:ss` in the server's `--timezone` (also with `-` or `/`
/// between the date's parts, a `T` between date and time, and without seconds),
/// or ISO 8601 with an offset (`2026-12-01T10:00:00+01:00`, `...Z`).
pub fn parse_time(value: &str, tz: &jiff::tz::TimeZone) -> Result<Time, String> {
    let text = value.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(Time::from_timestamp(ts));
    }
    let normal: String = text
        .chars()
        .enumerate()
        .map(|(i, c)| match (i, c) {
            (4 | 7, '.' | '/') => '-',
            (10, 'T' | 't') => ' ',
            _ => c,
        })
        .collect();
    let with_seconds = if normal.len() == 16 { format!("{normal}:00") } else { normal };
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", &with_seconds)
        .map_err(|_| format!("{value:?} is not a date and time (yyyy.MM.dd HH:mm:ss)"))?;
    let zoned = civil.to_zoned(tz.clone()).map_err(|e| format!("{value:?}: {e}"))?;
    Ok(Time::from_timestamp(zoned.timestamp()))
}

/// A point in time as the MaestroConference documents write it, in `tz`.
pub fn format_time(time: Time, tz: &jiff::tz::TimeZone) -> String {
    time.timestamp().to_zoned(tz.clone()).strftime(DOCUMENT_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::UTC
    }

    #[test]
    fn times_in_the_documents_format_and_iso_8601() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").expect("tz");
        let want: Time = "2026-07-01T08:30:00Z".parse().expect("time");
        for text in [
            "2026.07.01 10:30:00",
            "2026-07-01 10:30:00",
            "2026/07/01 10:30",
            "2026-07-01T10:30:00",
        ] {
            assert_eq!(parse_time(text, &berlin), Ok(want), "{text}");
        }
        assert_eq!(parse_time("2026-07-01T08:30:00Z", &berlin), Ok(want));
        assert_eq!(parse_time("2026-07-01T10:30:00+02:00", &utc()), Ok(want));
        for bad in [
            "",
            "tomorrow",
            "2026.13.01 10:00:00",
            "2026.02.30 10:00:00",
            "2026.07.01 25:00:00",
            "2026.07.01",
        ] {
            assert!(parse_time(bad, &utc()).is_err(), "{bad:?}");
        }
        assert_eq!(format_time(want, &berlin), "2026.07.01 10:30:00");
    }

    #[test]
    fn booleans_and_numbers() {
        let p = Params::from_pairs([
            ("a", "TRUE"),
            ("b", "0"),
            ("c", "yes"),
            ("n", " 42 "),
            ("x", "4.2"),
        ]);
        assert_eq!(p.boolean("a"), Ok(Some(true)));
        assert_eq!(p.boolean("b"), Ok(Some(false)));
        assert!(p.boolean("c").is_err());
        assert_eq!(p.boolean("missing"), Ok(None));
        assert_eq!(p.integer("n"), Ok(Some(42)));
        assert_eq!(p.integer("x").map_err(|e| e.name), Err("x".to_owned()));
        assert_eq!(p.required("missing").map_err(|e| e.reason), Err("is required".to_owned()));
    }

    #[tokio::test]
    async fn query_form_and_json_bodies() {
        let mut headers = HeaderMap::new();
        headers
            .insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().expect("h"));
        let body = Body::from("name=A%26B+%3Cc%3E&role=PARTICIPANT&name=ignored");
        let p = Params::read(Some("type=json&role=OPERATOR"), &headers, body).await.expect("read");
        assert_eq!(p.get("name"), Some("A&B <c>"));
        assert_eq!(p.get("role"), Some("PARTICIPANT"), "the body wins");
        assert_eq!(p.get("type"), Some("json"));

        headers.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().expect("h"));
        let body =
            Body::from(r#"{"estimatedCallers": 12, "recording": true, "name": "ü", "skip": null}"#);
        let p = Params::read(None, &headers, body).await.expect("json");
        assert_eq!(p.get("estimatedCallers"), Some("12"));
        assert_eq!(p.get("recording"), Some("true"));
        assert_eq!(p.get("name"), Some("ü"));
        assert!(!p.has("skip"));
        let nested = Params::read(None, &headers, Body::from(r#"{"a": [1]}"#)).await;
        assert!(matches!(nested, Err(BodyError::Json(_))));
        let big = Params::read(None, &headers, Body::from(vec![b' '; MAX_BODY + 1])).await;
        assert_eq!(big, Err(BodyError::TooLarge));
    }
}
