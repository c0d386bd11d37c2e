//! Incoming calls from SIPp against an in-process `SipUa` (needs `sipp`, Debian
//! package sip-tester). Each test runs one scenario from scripts/sipp/.

mod common;

use std::time::Duration;

use common::{Harness, Seen, config};
use tutti_sip::sdp::MediaDirection;

fn hung_up(reason: &'static str) -> impl Fn(&[Seen]) -> bool {
    move |s| s.iter().any(|e| matches!(e, Seen::Hangup(_, r) if r == reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_call_with_bye_from_sipp() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("uac_call.xml", &["-s", "answer1", "-m", "1"]).await, 0);
    h.wait_for("remote BYE", hung_up("RemoteBye")).await;
    assert!(h.seen().iter().any(|e| matches!(e, Seen::Answered(_))));
    assert_eq!(h.ua.active_calls(), 0);
    assert_eq!(h.ua.dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_call() {
    let h = Harness::start(config()).await;
    let target = h.ua.tcp_addr().to_string();
    assert_eq!(
        h.sipp_to("uac_call.xml", &target, &["-t", "t1", "-s", "answer", "-m", "1"]).await,
        0
    );
    h.wait_for("remote BYE", hung_up("RemoteBye")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_hangs_up() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("uac_server_hangup.xml", &["-s", "hangup", "-m", "1"]).await, 0);
    h.wait_for("local hangup", hung_up("Local")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_answer_gets_200_and_487_with_the_dialog_tag() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("uac_cancel.xml", &["-s", "ring", "-m", "1"]).await, 0);
    h.wait_for("cancel", hung_up("Cancelled")).await;
    assert_eq!(h.ua.dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_offer_answer_comes_in_the_ack() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("uac_late_offer.xml", &["-s", "answer", "-m", "1"]).await, 0);
    h.wait_for("remote BYE", hung_up("RemoteBye")).await;
    let seen = h.seen();
    assert!(seen.iter().any(|e| matches!(e, Seen::Incoming { late_offer: true, .. })));
    assert!(seen.iter().any(|e| matches!(e, Seen::Media(_, MediaDirection::SendRecv))), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_hold_and_resume() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("uac_reinvite_hold.xml", &["-s", "answer", "-m", "1"]).await, 0);
    h.wait_for("remote BYE", hung_up("RemoteBye")).await;
    let media: Vec<MediaDirection> = h
        .seen()
        .iter()
        .filter_map(|e| if let Seen::Media(_, d) = e { Some(*d) } else { None })
        .collect();
    assert_eq!(media, vec![MediaDirection::RecvOnly, MediaDirection::SendRecv]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_dtmf_and_update_refresh() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("uac_info_dtmf.xml", &["-s", "answer", "-m", "1"]).await, 0);
    h.wait_for("remote BYE", hung_up("RemoteBye")).await;
    let digits: String = h
        .seen()
        .iter()
        .filter_map(|e| if let Seen::Dtmf(_, d) = e { Some(*d) } else { None })
        .collect();
    assert_eq!(digits, "1#");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_keepalive() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("options.xml", &["-s", "tutti", "-m", "1"]).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_invite_gets_400() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("uac_malformed.xml", &["-s", "answer", "-m", "1"]).await, 0);
    assert!(h.seen().is_empty(), "{:?}", h.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ack_makes_us_retransmit_the_200() {
    let h = Harness::start(config()).await;
    assert_eq!(h.sipp("uac_lost_ack.xml", &["-s", "answer", "-m", "1"]).await, 0);
    h.wait_for("remote BYE", hung_up("RemoteBye")).await;
    let log = h.messages("uac_lost_ack.xml");
    let invite_200s = log
        .split("-----------------------------------------------")
        .filter(|m| {
            m.contains("received") && m.contains("SIP/2.0 200 OK") && m.contains("INVITE\r\n")
        })
        .count();
    // At 0 s, then 0.5 s and 1.5 s (T1, 2*T1) before the ACK at 1.7 s.
    assert!(invite_200s >= 3, "the 200 was not retransmitted:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ack_at_all_ends_in_bye() {
    let mut cfg = config();
    // 64*T1 = 3.2 s instead of 32 s.
    cfg.t1 = Duration::from_millis(50);
    let h = Harness::start(cfg).await;
    assert_eq!(h.sipp("uac_no_ack.xml", &["-s", "answer", "-m", "1"]).await, 0);
    h.wait_for("ACK timeout", hung_up("AckTimeout")).await;
    assert_eq!(h.ua.dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_bye_to_confirmed_calls() {
    let h = Harness::start(config()).await;
    let ua = h.ua.clone();
    let seen = h.seen.clone();
    let stopper = tokio::spawn(async move {
        for _ in 0..250 {
            if seen
                .lock()
                .map(|s| s.iter().any(|e| matches!(e, Seen::Answered(_))))
                .unwrap_or(false)
            {
                ua.shutdown().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(h.sipp("uac_server_hangup.xml", &["-s", "answer", "-m", "1"]).await, 0);
    stopper.await.ok();
    h.wait_for("local hangup", hung_up("Local")).await;
}
