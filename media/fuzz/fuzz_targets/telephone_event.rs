//! Fuzzes the RFC 4733 telephone-event parser and the receive state machine.
//!
//! Run from media/: `cargo +nightly fuzz run telephone_event`.
//! Checks: parsing never panics; whatever parses re-encodes to the same block (the
//! reserved bit cleared); the receiver, fed packets cut from the input, never panics
//! and reports every `Started` digit at most once before its `Ended`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_media::dtmf::{DtmfEvent, DtmfReceiver, PAYLOAD_LEN, TelephoneEvent};

/// Bytes of one simulated packet: 2 time step, 4 timestamp, 1 marker, 4 payload.
const RECORD_LEN: usize = 2 + 4 + 1 + PAYLOAD_LEN;
/// The R bit, which receivers ignore and senders write as zero.
const RESERVED_BIT: u8 = 0x40;

fuzz_target!(|data: &[u8]| {
    match TelephoneEvent::parse(data) {
        Ok(event) => {
            let bytes = event.to_bytes().expect("a parsed volume is at most 63");
            assert_eq!(bytes[0], data[0]);
            assert_eq!(bytes[1], data[1] & !RESERVED_BIT);
            assert_eq!(bytes[2..], data[2..PAYLOAD_LEN]);
        }
        Err(_) => assert!(data.len() < PAYLOAD_LEN),
    }

    let mut receiver = DtmfReceiver::default();
    let mut now = 0u64;
    let mut open = false;
    for record in data.chunks(RECORD_LEN) {
        let [s0, s1, t0, t1, t2, t3, marker, payload @ ..] = record else {
            // A short tail: feed what there is as a (probably malformed) payload.
            let _ = receiver.handle_packet(now, 0, false, record);
            continue;
        };
        now += u64::from(u16::from_be_bytes([*s0, *s1]));
        let timestamp = u32::from_be_bytes([*t0, *t1, *t2, *t3]);
        let _ = receiver.handle_packet(now, timestamp, marker & 1 == 1, payload);
        receiver.handle_timeout(now);
        while let Some(event) = receiver.poll_event() {
            match event {
                DtmfEvent::Started { .. } => {
                    assert!(!open, "a press started before the previous one ended");
                    open = true;
                }
                DtmfEvent::Ended { .. } => {
                    assert!(open, "an end without a start");
                    open = false;
                }
            }
        }
    }
});
