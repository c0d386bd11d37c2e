//! SIP INFO bodies carrying DTMF, as phones send them: any content type and
//! body must read as a digit, a bad digit, nothing, or unsupported, never a
//! panic; a digit is always one a keypad has.
//!
//! Run: `cd sip/fuzz && cargo +nightly fuzz run dtmf_info`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_sip::ua::dtmf_info::{InfoBody, parse_info};

const TYPES: [Option<&str>; 5] = [
    Some("application/dtmf-relay"),
    Some("application/dtmf"),
    Some("Application/DTMF-Relay; charset=utf-8"),
    Some("text/plain"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    // The first byte picks a content type, or (from 5 on) gives one of its own.
    let own;
    let content_type = match TYPES.get(usize::from(selector)) {
        Some(known) => *known,
        None => {
            let split = usize::from(selector).min(body.len());
            own = String::from_utf8_lossy(&body[..split]).into_owned();
            Some(own.as_str())
        }
    };
    if let InfoBody::Digit(digit) = parse_info(content_type, body) {
        assert!(matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D'), "{digit:?}");
    }
});
