//! A leg watching for a peer that has gone silent (a phone that vanished
//! without a BYE), on a simulated clock: reported once after the active limit,
//! the longer limit while the peer holds the call, and forgotten as soon as
//! anything arrives again.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tutti_media::leg::{Leg, LegConfig, Output, SilenceLimits};

const A: &str = "127.0.0.1:40000";
const B: &str = "127.0.0.1:40002";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn config(remote: &str) -> LegConfig {
    common::pcmu_leg(addr(remote))
}

const LIMITS: SilenceLimits =
    SilenceLimits { active: Duration::from_secs(60), held: Duration::from_secs(600) };

/// Runs every timeout due up to `until` and returns the silences reported.
fn run_until(leg: &mut Leg, until: Instant) -> Vec<(bool, u64)> {
    let mut silences = Vec::new();
    loop {
        let due = leg.poll_timeout();
        if due > until {
            break;
        }
        leg.handle_timeout(due);
        while let Some(output) = leg.poll_output() {
            if let Output::Silent { held, for_ms } = output {
                silences.push((held, for_ms));
            }
        }
    }
    silences
}

/// One packet from `tx` into `rx` at `now`.
fn packet(tx: &mut Leg, rx: &mut Leg, now: Instant) {
    let (mut scratch, mut buf) = ([0u8; 1500], [0u8; 1500]);
    let (_, n) = tx
        .encode_and_write(&[0i16; 160], true, &mut scratch, &mut buf)
        .expect("send")
        .expect("sent");
    rx.handle_datagram(now, addr(A), &buf[..n], false);
}

#[test]
fn a_silent_peer_is_reported_once_after_the_limit() {
    let t0 = Instant::now();
    let mut phone = Leg::new(config(B), t0).expect("phone");
    let mut leg = Leg::new(config(A), t0).expect("leg");
    assert!(run_until(&mut leg, t0 + Duration::from_secs(3600)).is_empty(), "not watched");

    leg.set_silence_limits(Some(LIMITS), t0);
    packet(&mut phone, &mut leg, t0 + Duration::from_secs(30));
    assert!(run_until(&mut leg, t0 + Duration::from_secs(89)).is_empty(), "heard at 30 s");
    let silences = run_until(&mut leg, t0 + Duration::from_secs(600));
    assert_eq!(silences, vec![(false, 60_000)], "once, 60 s after the last packet");

    // The peer comes back: the count starts again.
    packet(&mut phone, &mut leg, t0 + Duration::from_secs(700));
    assert_eq!(run_until(&mut leg, t0 + Duration::from_secs(761)), vec![(false, 60_000)]);
}

#[test]
fn a_held_call_has_the_longer_limit_and_resuming_starts_afresh() {
    let t0 = Instant::now();
    let mut leg = Leg::new(config(A), t0).expect("leg");
    leg.set_silence_limits(Some(LIMITS), t0);
    // The peer puts the call on hold after 10 s and sends nothing.
    leg.set_sending(false, t0 + Duration::from_secs(10));
    assert!(run_until(&mut leg, t0 + Duration::from_secs(600)).is_empty(), "held is exempt");
    // Resumed after 9 minutes: a full active limit from the resume.
    leg.set_sending(true, t0 + Duration::from_secs(550));
    assert!(run_until(&mut leg, t0 + Duration::from_secs(609)).is_empty());
    assert_eq!(run_until(&mut leg, t0 + Duration::from_secs(700)), vec![(false, 60_000)]);

    let mut held = Leg::new(config(A), t0).expect("leg");
    held.set_silence_limits(Some(LIMITS), t0);
    held.set_sending(false, t0);
    assert_eq!(run_until(&mut held, t0 + Duration::from_secs(3600)), vec![(true, 600_000)]);
}
