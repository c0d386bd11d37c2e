//! What a PBX REST client sends for a room: any JSON, checked against the
//! room's field table and applied as PATCH and PUT, then the stored rules.
//! Nothing panics, and a room that passes comes back unchanged when its own
//! rendering is PUT again (what a client that GETs, edits and PUTs relies on).
//! The list parameters (`?limit=&offset=`) are fed the same bytes.
//!
//! Run: `cd api/fuzz && cargo +nightly fuzz run rest_body`

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tutti_api::model::{Conference, Customer};
use tutti_api::ops::conferences::validate;
use tutti_api::rest::Page;
use tutti_api::rest::conferences::{change_room, render};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Page::from_query(Some(text));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else { return };
    let mut room = Conference::new(&Customer::new("fuzz"), "");
    room.dial_in_number = Some("4001".into());
    let before = render(&room, 0);
    let mut patched = room.clone();
    let _ = change_room(&body, Some(&before), &mut patched, false);
    let mut put = room.clone();
    if change_room(&body, Some(&before), &mut put, true).is_err() || validate(&put).is_err() {
        return;
    }
    let shown = render(&put, 0);
    let Value::Object(again) = shown.clone() else { panic!("a room renders as an object") };
    let mut round = put.clone();
    change_room(&again, Some(&shown), &mut round, true).expect("a room's own rendering PUTs");
    assert_eq!(round, put, "PUT of a GET changes nothing");
});
