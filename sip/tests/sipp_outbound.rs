//! Calls tutti places, answered (or not) by SIPp in UAS mode (needs `sipp`, Debian
//! package sip-tester). Each test runs one scenario from scripts/sipp/.

mod common;

use std::time::Duration;

use common::{Harness, Seen, config, free_udp_port, local_media};
use tutti_sip::sdp::MediaDirection;
use tutti_sip::ua::{CallId, PlaceCall, SipConfig};

fn place(target: String) -> PlaceCall {
    PlaceCall {
        target,
        from_user: Some("conference".into()),
        from_display_name: Some("Tutti Conference".into()),
        local: local_media(41000),
        headers: vec![],
    }
}

fn progress(h: &Harness, call: CallId) -> Vec<String> {
    h.seen()
        .iter()
        .filter_map(|e| match e {
            Seen::Progress(c, p) if *c == call => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn ended(call: CallId) -> impl Fn(&[Seen]) -> bool {
    move |s| s.iter().any(|e| matches!(e, Seen::Hangup(c, _) if *c == call))
}

/// Starts SIPp as UAS on a free port, places `call` to it once SIPp listens, runs
/// `during` on the call id, and returns SIPp's exit code and the call.
async fn against_uas<F, Fut>(
    h: &Harness,
    scenario: &str,
    port: u16,
    call: PlaceCall,
    during: F,
) -> (i32, CallId)
where
    F: FnOnce(CallId) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let port_arg = port.to_string();
    let args = ["-p", port_arg.as_str(), "-m", "1"];
    let sipp = h.sipp_to(scenario, "", &args);
    let dial = async {
        // SIPp needs a moment to bind before the INVITE arrives.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let id = h.ua.place_call(call).await.expect("call placed");
        during(id).await;
        id
    };
    tokio::join!(sipp, dial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_call_answered_by_sipp_then_we_hang_up() {
    let h = &Harness::start(config()).await;
    let port = free_udp_port();
    let target = format!("sip:guest@127.0.0.1:{port}");
    let (code, id) = against_uas(h, "uas_answer.xml", port, place(target), |id| async move {
        h.wait_for("connected", |s| {
            s.iter().any(|e| matches!(e, Seen::Progress(c, p) if *c == id && p == "Connected"))
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.ua.hangup(id).await.expect("hangup");
    })
    .await;
    assert_eq!(code, 0);
    h.wait_for("hangup", ended(id)).await;
    assert_eq!(progress(h, id), ["Presenting", "Ringing", "Connected"]);
    assert!(h.seen().contains(&Seen::Media(id, MediaDirection::SendRecv)));
    assert!(h.seen().contains(&Seen::Hangup(id, "Local".into())));
    assert_eq!(h.ua.dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_call_to_a_busy_callee() {
    let h = Harness::start(config()).await;
    let port = free_udp_port();
    let target = format!("sip:busy@127.0.0.1:{port}");
    let (code, id) = against_uas(&h, "uas_busy.xml", port, place(target), |_| async {}).await;
    assert_eq!(code, 0);
    h.wait_for("hangup", ended(id)).await;
    assert_eq!(progress(&h, id), ["Presenting", "Busy"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_placed_call_is_cancelled_after_the_ring_timeout() {
    let mut cfg = config();
    cfg.ring_timeout = Duration::from_secs(1);
    let h = Harness::start(cfg).await;
    let port = free_udp_port();
    let target = format!("sip:sleepy@127.0.0.1:{port}");
    let (code, id) = against_uas(&h, "uas_noanswer.xml", port, place(target), |_| async {}).await;
    assert_eq!(code, 0);
    h.wait_for("hangup", ended(id)).await;
    assert_eq!(progress(&h, id), ["Presenting", "Ringing", "Failed(\"no answer\")"]);
    assert_eq!(h.ua.dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_dialled_through_the_proxy_with_digest_auth() {
    let port = free_udp_port();
    let mut cfg: SipConfig = config();
    cfg.outbound_proxy = Some(format!("127.0.0.1:{port}"));
    cfg.outbound_username = Some("alice".into());
    cfg.outbound_password = Some("secret".into());
    let h = &Harness::start(cfg).await;
    let (code, id) =
        against_uas(h, "uas_auth.xml", port, place("5551234".into()), |id| async move {
            h.wait_for("connected", |s| {
                s.iter().any(|e| matches!(e, Seen::Progress(c, p) if *c == id && p == "Connected"))
            })
            .await;
            h.ua.hangup(id).await.expect("hangup");
        })
        .await;
    assert_eq!(code, 0);
    h.wait_for("hangup", ended(id)).await;
    assert_eq!(progress(h, id), ["Presenting", "Ringing", "Connected"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_call_over_tcp() {
    let h = &Harness::start(config()).await;
    let port = free_tcp_port();
    let target = format!("sip:guest@127.0.0.1:{port};transport=tcp");
    let port_arg = port.to_string();
    let args = ["-t", "t1", "-p", port_arg.as_str(), "-m", "1"];
    let sipp = h.sipp_to("uas_answer.xml", "", &args);
    let dial = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let id = h.ua.place_call(place(target)).await.expect("call placed");
        h.wait_for("connected", |s| {
            s.iter().any(|e| matches!(e, Seen::Progress(c, p) if *c == id && p == "Connected"))
        })
        .await;
        h.ua.hangup(id).await.expect("hangup");
        id
    };
    let (code, id) = tokio::join!(sipp, dial);
    assert_eq!(code, 0);
    h.wait_for("hangup", ended(id)).await;
}

fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_call_retries_after_422_with_the_larger_interval() {
    let h = &Harness::start(config()).await;
    let port = free_udp_port();
    let target = format!("sip:guest@127.0.0.1:{port}");
    let (code, id) = against_uas(h, "uas_422.xml", port, place(target), |id| async move {
        h.wait_for("connected", |s| {
            s.iter().any(|e| matches!(e, Seen::Progress(c, p) if *c == id && p == "Connected"))
        })
        .await;
        h.ua.hangup(id).await.expect("hangup");
    })
    .await;
    assert_eq!(code, 0);
    h.wait_for("hangup", ended(id)).await;
    assert_eq!(progress(h, id), ["Presenting", "Ringing", "Connected"]);
}
