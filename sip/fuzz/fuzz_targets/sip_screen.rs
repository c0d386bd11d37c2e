//! Fuzzes what a UDP datagram meets before rsipstack's transactions: tutti-sip's screen
//! (rsipstack's parser, the header checks, the hand-built 400/501/513) and the INFO
//! DTMF body parser. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_sip::ua::dtmf_info::parse_info;
use tutti_sip::ua::screen::{Screen, Verdict};

fuzz_target!(|data: &[u8]| {
    for (truncated, max_size) in [(false, 8191), (false, 64), (true, 8191)] {
        let screen = Screen { max_size, agent: "127.0.0.1:5060".into() };
        if let Verdict::Refuse { response: Some(bytes), .. } = screen.check(data, truncated) {
            // Whatever we answer must itself be a SIP response.
            assert!(bytes.starts_with(b"SIP/2.0 "), "not a response");
        }
    }
    let _ = parse_info(Some("application/dtmf-relay"), data);
    let _ = parse_info(Some("application/dtmf"), data);
});
