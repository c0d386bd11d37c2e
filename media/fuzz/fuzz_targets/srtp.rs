//! SRTP and SRTCP from the network, as arbitrary bytes: unprotecting never
//! panics and accepts nothing a key holder did not protect (a forged or
//! damaged packet is rejected); anything protected with the peer's key comes
//! back byte for byte.
//!
//! Run: `cd media/fuzz && cargo +nightly fuzz run srtp`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_media::rtp::{SrtpSession, SrtpSuite};

const ALICE: [u8; 30] = [7; 30];
const BOB: [u8; 30] = [42; 30];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else { return };
    let suite = if selector & 1 == 0 {
        SrtpSuite::AesCm128HmacSha1_80
    } else {
        SrtpSuite::AesCm128HmacSha1_32
    };
    let (Ok(mut alice), Ok(mut bob)) =
        (SrtpSession::new(suite, &ALICE, &BOB), SrtpSession::new(suite, &BOB, &ALICE))
    else {
        return;
    };
    // Whatever arrives unprotected: rejected (the tag cannot match by chance
    // often enough for a fuzzer to find it), and no panic.
    let _ = bob.unprotect_rtp(packet);
    let _ = bob.unprotect_rtcp(packet);
    // What Alice protects, Bob reads back unchanged.
    if selector & 2 == 0 {
        if let Ok(protected) = alice.protect_rtp(packet) {
            let clear = bob.unprotect_rtp(&protected).expect("Bob reads Alice's SRTP");
            assert_eq!(clear, packet);
            // Replayed: refused.
            assert!(bob.unprotect_rtp(&protected).is_err(), "a replay is refused");
        }
    } else if let Ok(protected) = alice.protect_rtcp(packet) {
        let clear = bob.unprotect_rtcp(&protected).expect("Bob reads Alice's SRTCP");
        assert_eq!(clear, packet);
    }
});
