//! Whole HTTP requests through the real router of every interface (the
//! `/_access` and Conductor function APIs, Aculab, the PBX REST resource,
//! OpenAPI, health), over a real SQLite store and the operations' engine
//! stand-in: query strings, form, JSON and multipart bodies, and basic and
//! bearer credentials go through the same extractors and checks a client's
//! do. Bad input must get an answer that says so, never a panic and never a
//! 500 (a 500 means a request reached a state no rule caught).
//!
//! Input: a request written as text, `METHOD target`, header lines, an empty
//! line, the body. In the head, `$KEY` is the default customer's API key,
//! `$UID` its uid and `$BASIC` the base64 of `uid:key`, so that mutations keep
//! reaching the code behind authentication.
//!
//! Run: `cd api/fuzz && cargo +nightly fuzz run http_router`

#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use tutti_api::http::router;
use tutti_api::ops::testing::{FakeLive, ops_with};

struct Site {
    runtime: Runtime,
    router: Router,
    uid: String,
    key: String,
    _dir: tempfile::TempDir,
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (router, uid, key, dir) = runtime.block_on(async {
            let (ops, _live, dir) = ops_with(FakeLive::default()).await;
            let customer = ops.store.list_customers().await.expect("customers").remove(0);
            let key = ops.store.rotate_api_key(&customer.uid).await.expect("key");
            let hub = tutti_api::conductor::events::Hub::start(ops.clone());
            (router(ops, hub), customer.uid, key, dir)
        });
        Site { runtime, router, uid, key, _dir: dir }
    })
}

/// The request `data` describes, or `None` where hyper would have refused it
/// before any interface saw it (a bad method, target or header).
fn request(site: &Site, data: &[u8]) -> Option<Request<Body>> {
    let split = data.windows(2).position(|w| w == b"\n\n").unwrap_or(data.len());
    let head = std::str::from_utf8(&data[..split]).ok()?;
    let body = data.get(split + 2..).unwrap_or_default().to_vec();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", site.uid, site.key));
    let head = head.replace("$KEY", &site.key).replace("$UID", &site.uid).replace("$BASIC", &basic);
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut builder = Request::builder().method(method).uri(target);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        builder = builder.header(name.trim(), value.trim());
    }
    builder.body(Body::from(body)).ok()
}

fuzz_target!(|data: &[u8]| {
    let site = site();
    let Some(request) = request(site, data) else { return };
    let shown = format!("{} {}", request.method(), request.uri());
    let response =
        site.runtime.block_on(site.router.clone().oneshot(request)).expect("infallible");
    assert_ne!(response.status().as_u16(), 500, "a 500 for {shown}");
});
