//! The MaestroConference answer envelope, shared by the management API
//! (`/_access`) and the Conductor's information requests:
//! `{"message":"","value":...,"code":"0"}` in JSON, or
//! `<document><value>...</value><code>0</code><message></message></document>`
//! in XML. The value is built once as JSON and written as XML by one small
//! writer: objects become elements, a list becomes repeated elements (a
//! top-level list is named by its item, `<value><conference>..</conference>
//! <conference>..</conference></value>`), text is escaped, and characters XML
//! cannot carry are replaced, so no stored text can break the document.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Reads a request's parameters (query string, form or JSON body) and the
/// format it asks for (`type`). A body that cannot be read is answered at once
/// with code -2 (HTTP 413 when too large), in the format the query string asks for.
pub async fn read_request(
    query: Option<&str>,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<(super::params::Params, Format), Response> {
    use super::params::{BodyError, Params};
    match Params::read(query, headers, body).await {
        Ok(params) => {
            let format = params.get("type").and_then(Format::parse).unwrap_or_default();
            Ok((params, format))
        }
        Err(e) => {
            let format = query
                .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "type"))
                .and_then(|(_, v)| Format::parse(&v))
                .unwrap_or_default();
            let status = match e {
                BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::OK,
            };
            Err(Envelope::error(-2, e.to_string()).with_status(status).render(format))
        }
    }
}

/// Which rendering the client asked for (`type=json` or `type=xml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    Json,
    #[default]
    Xml,
}

impl Format {
    /// `json` or `xml` in any case; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            _ => None,
        }
    }
}

/// One answer: a value (code 0) or an error code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub code: i64,
    pub message: String,
    pub value: Value,
    /// The element name of each item when `value` is a list (XML only).
    pub item: &'static str,
    pub status: StatusCode,
}

impl Envelope {
    pub fn ok(value: Value) -> Self {
        Self { code: 0, message: String::new(), value, item: "item", status: StatusCode::OK }
    }

    /// A list whose items are `item` elements in XML.
    pub fn list(item: &'static str, items: Vec<Value>) -> Self {
        Self { item, ..Self::ok(Value::Array(items)) }
    }

    pub fn error(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            value: Value::String(String::new()),
            ..Self::ok(Value::Null)
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn render(&self, format: Format) -> Response {
        let (body, content_type) = match format {
            Format::Json => (self.json(), "application/json; charset=utf-8"),
            Format::Xml => (self.xml(), "application/xml; charset=utf-8"),
        };
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    pub fn json(&self) -> String {
        /// The document's order, borrowing the value rather than copying it.
        #[derive(serde::Serialize)]
        struct Json<'a> {
            message: &'a str,
            value: &'a Value,
            code: String,
        }
        let document =
            Json { message: &self.message, value: &self.value, code: self.code.to_string() };
        serde_json::to_string(&document).unwrap_or_else(|e| {
            tracing::error!(error = %e, "envelope not rendered");
            r#"{"message":"rendering failed","value":"","code":"-4"}"#.to_owned()
        })
    }

    pub fn xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><document>");
        match &self.value {
            Value::Array(items) => {
                out.push_str("<value>");
                for item in items {
                    write_element(&mut out, self.item, item);
                }
                out.push_str("</value>");
            }
            value => write_element(&mut out, "value", value),
        }
        let _ = write!(out, "<code>{}</code>", self.code);
        write_element(&mut out, "message", &Value::String(self.message.clone()));
        out.push_str("</document>");
        out
    }
}

/// `value` as the element `name`; a list as repeated `name` elements.
pub fn write_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                write_element(out, name, item);
            }
        }
        Value::Object(fields) => {
            let _ = write!(out, "<{name}>");
            for (key, field) in fields {
                write_element(out, key, field);
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Null => {
            let _ = write!(out, "<{name}/>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<{name}>{b}</{name}>");
        }
        Value::Number(n) => {
            let _ = write!(out, "<{name}>{n}</{name}>");
        }
        Value::String(text) => {
            let _ = write!(out, "<{name}>{}</{name}>", escape(text));
        }
    }
}

/// Text safe inside an XML element: markup escaped, characters XML 1.0 cannot
/// carry (most control characters) replaced by U+FFFD.
pub fn escape(text: &str) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    };
    let clean: std::borrow::Cow<'_, str> = if text.chars().all(allowed) {
        text.into()
    } else {
        text.chars().map(|c| if allowed(c) { c } else { '\u{FFFD}' }).collect::<String>().into()
    };
    quick_xml::escape::escape(clean.as_ref()).into_owned()
}

/// An XML element read back: its name, its own text, its child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child called `name` (empty when absent).
    pub fn text_of(&self, name: &str) -> &str {
        self.child(name).map_or("", |c| c.text.as_str())
    }
}

/// Parses an XML document into its root element (for clients of the XML
/// answers, and the tests: XML is parsed, never compared as text).
pub fn parse_xml(xml: &str) -> Result<Node, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = AsRef::<str>::as_ref(&e.name()).to_owned();
                stack.push(Node { name, ..Node::default() });
            }
            Event::Empty(e) => {
                let name = AsRef::<str>::as_ref(&e.name()).to_owned();
                let node = Node { name, ..Node::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("an end without a start")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(t) => {
                let raw = t.into_inner();
                let text = quick_xml::escape::unescape(&raw).map_err(|e| e.to_string())?;
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.into_inner();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity &{name};"))?
                            .to_owned()
                    }
                };
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&resolved);
                }
            }
            Event::Eof => return Err("the document ends early".into()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every element named `name`, in document order.
    fn texts(xml: &str, name: &str) -> Vec<String> {
        fn walk(node: &Node, name: &str, out: &mut Vec<String>) {
            if node.name == name {
                out.push(node.text.clone());
            }
            for child in &node.children {
                walk(child, name, out);
            }
        }
        let root = parse_xml(xml).expect("well-formed XML");
        let mut out = Vec::new();
        walk(&root, name, &mut out);
        out
    }

    #[test]
    fn json_has_the_documents_shape_with_code_as_text() {
        let e = Envelope::ok(serde_json::json!({"UID": "x", "PIN": "123456"}));
        let v: Value = serde_json::from_str(&e.json()).expect("json");
        assert_eq!(v["code"], "0");
        assert_eq!(v["message"], "");
        assert_eq!(v["value"]["PIN"], "123456");
        let v: Value = serde_json::from_str(&Envelope::error(-2, "conference: is required").json())
            .expect("json");
        assert_eq!(
            (v["code"].as_str(), v["message"].as_str()),
            (Some("-2"), Some("conference: is required"))
        );
    }

    #[test]
    fn xml_lists_repeat_and_hostile_text_stays_text() {
        let hostile = "a<b>&\"c\" 'd' \u{1}\u{0} é ; DROP TABLE x;--";
        let e = Envelope::list(
            "conference",
            vec![
                serde_json::json!({"UID": "1", "name": hostile, "persons": ["p1", "p2"], "recording": true}),
                serde_json::json!({"UID": "2", "name": "two", "persons": [], "data": null}),
            ],
        );
        let xml = e.xml();
        assert_eq!(texts(&xml, "UID"), ["1", "2"]);
        assert_eq!(texts(&xml, "persons"), ["p1", "p2"]);
        assert_eq!(texts(&xml, "recording"), ["true"]);
        assert_eq!(texts(&xml, "code"), ["0"]);
        assert_eq!(texts(&xml, "name")[0], "a<b>&\"c\" 'd' \u{FFFD}\u{FFFD} é ; DROP TABLE x;--");
        assert_eq!(texts(&xml, "conference").len(), 2);
    }
}
