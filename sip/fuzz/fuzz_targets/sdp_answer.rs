//! Fuzzes the SDP path a peer controls: parsing an offer, answering it, re-parsing our
//! own answer, and applying an answer to one of our offers. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_sip::sdp::{self, LocalMedia, MediaDirection, MediaPolicy, SrtpPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let local = LocalMedia {
        address: std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
        rtp_port: 40000,
        session_id: 1,
        session_version: 1,
        direction: MediaDirection::SendRecv,
    };
    let policies = [
        MediaPolicy::default(),
        MediaPolicy { srtp: SrtpPolicy::Required, ..MediaPolicy::default() },
    ];
    for policy in &policies {
        if let Ok(answer) = sdp::answer_str(text, policy, &local) {
            // Whatever we answer must be SDP we can read back.
            let rendered = answer.sdp.to_string();
            assert!(sdp::parse(&rendered).is_ok(), "unparseable answer: {rendered}");
        }
        let offer = sdp::offer(policy, &local);
        let _ = sdp::apply_answer_str(&offer.pending, text);
    }
});
