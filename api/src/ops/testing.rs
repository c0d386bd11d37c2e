//! A stand-in for the call engine, for the operations' unit tests: it records
//! every request, knows the live callers a test registers, and answers as the
//! engine would for unknown ones.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Kind, Ops, OpsError, OpsSettings};
use crate::live::{
    CallUpdate, CallerUpdate, DialRequest, EventBus, LiveControl, LiveFuture, LiveResult,
    PlayRequest, Target,
};
use crate::model::Customer;
use crate::store::Store;

#[derive(Default)]
pub struct FakeLive {
    calls: Mutex<Vec<String>>,
    callers: Mutex<HashSet<String>>,
}

impl FakeLive {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }

    pub fn add_caller(&self, uid: &str) {
        self.callers.lock().expect("lock").insert(uid.to_owned());
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("lock").push(call);
    }

    fn knows(&self, caller: &str) -> LiveResult<()> {
        if self.callers.lock().expect("lock").contains(caller) {
            Ok(())
        } else {
            Err(OpsError::NotFound(Kind::Caller))
        }
    }
}

fn ready<'a, T: Send + 'a>(result: LiveResult<T>) -> LiveFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl LiveControl for FakeLive {
    fn update_caller(&self, caller_uid: String, update: CallerUpdate) -> LiveFuture<'_, ()> {
        self.record(format!("update_caller {caller_uid} {update:?}"));
        ready(self.knows(&caller_uid))
    }

    fn drop_caller(&self, caller_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("drop_caller {caller_uid}"));
        ready(self.knows(&caller_uid))
    }

    fn move_caller(&self, caller_uid: String, conference_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("move_caller {caller_uid} {conference_uid}"));
        ready(self.knows(&caller_uid))
    }

    fn conference_changed(&self, conference_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("conference_changed {conference_uid}"));
        ready(Ok(()))
    }

    fn play(&self, request: PlayRequest) -> LiveFuture<'_, ()> {
        self.record(format!("play {:?} {:?}", request.target, request.media));
        match &request.target {
            Target::Caller(uid) => ready(self.knows(uid)),
            Target::Conference(_) => ready(Ok(())),
        }
    }

    fn stop_playback(&self, target: Target) -> LiveFuture<'_, ()> {
        self.record(format!("stop_playback {target:?}"));
        ready(Ok(()))
    }

    fn dial(&self, request: DialRequest) -> LiveFuture<'_, String> {
        self.record(format!(
            "dial {} {} record={}",
            request.conference_uid,
            request.number,
            request.records_conference()
        ));
        ready(Ok("out-1".into()))
    }

    fn start_recording(
        &self,
        conference_uid: String,
        caller_uid: Option<String>,
    ) -> LiveFuture<'_, String> {
        self.record(format!("start_recording {conference_uid} {caller_uid:?}"));
        ready(Ok("rec-1".into()))
    }

    fn stop_recording(&self, recording_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("stop_recording {recording_uid}"));
        ready(Ok(()))
    }

    fn close_call(&self, call_uid: String) -> LiveFuture<'_, ()> {
        self.record(format!("close_call {call_uid}"));
        ready(Ok(()))
    }

    fn update_call(&self, call_uid: String, update: CallUpdate) -> LiveFuture<'_, ()> {
        self.record(format!("update_call {call_uid} {update:?}"));
        ready(Ok(()))
    }

    fn set_breakout_private(&self, breakout_uid: String, private: bool) -> LiveFuture<'_, ()> {
        self.record(format!("set_breakout_private {breakout_uid} {private}"));
        ready(Ok(()))
    }

    fn recording_bytes_freed(&self, customer_uid: &str, bytes: u64) {
        self.record(format!("recording_bytes_freed {customer_uid} {bytes}"));
    }
}

/// Operations over a fresh SQLite file with one customer (the default) and
/// `live` as the engine. Keep the directory while the store is in use.
pub async fn ops_with(live: FakeLive) -> (Ops, Arc<FakeLive>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("tutti.db").display());
    let store = Store::open(&url).await.expect("store");
    store.create_customer(&Customer::new("default")).await.expect("customer");
    let sounds_dir = dir.path().join("sounds");
    std::fs::create_dir_all(&sounds_dir).expect("sounds dir");
    let live = Arc::new(live);
    let ops = Ops::new(
        store,
        live.clone(),
        EventBus::new(),
        OpsSettings {
            sounds_dir,
            recordings_dir: dir.path().join("recordings"),
            timezone: jiff::tz::TimeZone::UTC,
            control_customer: None,
            max_calls: 500,
            started: Instant::now(),
            version: "test",
            events_port: 0,
            sound_quota_bytes: super::DEFAULT_SOUND_QUOTA_BYTES,
            http_auth_failures: super::sources::DEFAULT_HTTP_AUTH_FAILURES,
        },
    );
    (ops, live, dir)
}
