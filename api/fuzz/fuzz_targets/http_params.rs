//! What the HTTP interfaces read from a client, as arbitrary text: query
//! strings and form bodies, the Aculab start times, the XMLSocket's first
//! document, XML read back by the envelope's parser, roles and booleans. None
//! may panic; a start time that parses must render back in the document's
//! formats, and text the envelope escapes must parse back to itself.
//!
//! Run: `cd api/fuzz && cargo +nightly fuzz run http_params`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_api::aculab::parse_start;
use tutti_api::conductor::socket::parse_request;
use tutti_api::http::envelope::{escape, parse_xml};
use tutti_api::http::functions::parse_role;
use tutti_api::http::params::{Params, parse_bool};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let params = Params::from_query(text);
    for name in ["type", "UID", "value", "start_time", "callUID"] {
        if let Some(value) = params.get(name) {
            let _ = parse_bool(name, value);
            let _ = parse_role(name, value);
            let _ = params.integer(name);
        }
    }
    if let Ok(start) = parse_start(text) {
        // A start that parses is a real UTC minute or second.
        assert!(start.unix_millis() % 1000 == 0);
    }
    let _ = parse_request(text);
    let _ = parse_xml(text);
    let wrapped = format!("<a>{}</a>", escape(text));
    let node = parse_xml(&wrapped).expect("escaped text is well-formed XML");
    assert_eq!(node.name, "a");
});
