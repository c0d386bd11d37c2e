//! Two tutti user agents calling each other in-process: our UAC against our UAS,
//! including the session-timer headers each side writes and reads.

mod common;

use common::{Harness, Seen, config, local_media};
use tutti_sip::ua::PlaceCall;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutti_calls_tutti_and_hangs_up() {
    let callee = Harness::start(config()).await;
    let caller = Harness::start(config()).await;
    let target = format!("sip:answer-me@{}", callee.ua.udp_addr());
    let call = PlaceCall {
        target,
        from_user: Some("room7".into()),
        from_display_name: None,
        local: local_media(42000),
        headers: vec![("X-Conference".into(), "7".into())],
    };
    let id = caller.ua.place_call(call).await.expect("placed");
    caller
        .wait_for("connected", |s| {
            s.iter().any(|e| matches!(e, Seen::Progress(c, p) if *c == id && p == "Connected"))
        })
        .await;
    callee.wait_for("answered", |s| s.iter().any(|e| matches!(e, Seen::Answered(_)))).await;
    caller.ua.hangup(id).await.expect("hangup");
    callee
        .wait_for("remote BYE", |s| {
            s.iter().any(|e| matches!(e, Seen::Hangup(_, r) if r == "RemoteBye"))
        })
        .await;
    caller.wait_for("local hangup", |s| s.contains(&Seen::Hangup(id, "Local".into()))).await;
    assert_eq!(caller.ua.active_calls(), 0);
    assert_eq!(callee.ua.active_calls(), 0);
    assert_eq!(caller.ua.dialogs(), 0);
    assert_eq!(callee.ua.dialogs(), 0);
}
