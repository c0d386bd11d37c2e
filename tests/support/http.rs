//! A plain HTTP/1.1 client for the tests: GET with a query, POST with a form or
//! JSON body, the status, headers and body back. One connection per request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use tutti_api::http::envelope::{Node, parse_xml};

/// An answer: status, lower-case header names with their values, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn xml(&self) -> Node {
        parse_xml(&self.body).unwrap_or_else(|e| panic!("not XML ({e}): {}", self.body))
    }
}

/// `pairs` as `application/x-www-form-urlencoded` text.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Answer {
    request_with(addr, method, path, &[], body)
}

/// A request with extra header lines (`("Authorization", "Basic ...")`).
pub fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Answer {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    request_on(stream, addr, method, path, headers, body)
}

/// [`request_with`] from the loopback address `from` (any of 127.0.0.0/8).
pub fn request_from(
    from: [u8; 4],
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((from, 0))).expect("bind the source address");
        socket.connect(addr).await.expect("connect")
    });
    let stream = stream.into_std().expect("a std stream");
    stream.set_nonblocking(false).expect("blocking");
    request_on(stream, addr, method, path, headers, body)
}

fn request_on(
    mut stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Answer {
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some((content_type, bytes)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    if let Some((_, bytes)) = body {
        // A server may answer (413) before reading everything.
        let _ = stream.write_all(bytes);
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) =
        text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

pub fn get(addr: SocketAddr, path: &str, pairs: &[(&str, &str)]) -> Answer {
    request(addr, "GET", &format!("{path}?{}", form(pairs)), None)
}

pub fn post(addr: SocketAddr, path: &str, pairs: &[(&str, &str)]) -> Answer {
    let body = form(pairs);
    request(addr, "POST", path, Some(("application/x-www-form-urlencoded", body.as_bytes())))
}

pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Answer {
    let text = body.to_string();
    request(addr, "POST", path, Some(("application/json", text.as_bytes())))
}

/// A REST id as it goes into a path.
pub fn id_of(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not an id: {other}"),
    }
}

/// A PBX REST request (`/api/v1` + `path`) with a Bearer key.
pub fn rest(addr: SocketAddr, key: &str, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let auth = format!("Bearer {key}");
    let text = body.map(Value::to_string).unwrap_or_default();
    let body = body.map(|_| ("application/json", text.as_bytes()));
    request_with(addr, method, &format!("/api/v1{path}"), &[("Authorization", &auth)], body)
}
