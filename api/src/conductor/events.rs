//! The Conductor's events: every state change of a call, from any interface,
//! the keypad or the system, as the document's `{source, name, target}`, where
//! `target` is the changed object's current state.
//!
//! One [`Hub`] task reads the event bus, turns each event into the document's
//! events (at most once per event, and only for calls someone watches: a
//! store read for the target's current state, then one JSON and one XML text)
//! and hands them to the call's subscribers through a bounded broadcast
//! channel. Publishing never waits, so nothing a subscriber does can slow the
//! mixer, the engine or another subscriber: one that falls
//! [`SUBSCRIBER_BACKLOG`] events behind, or whose connection takes longer
//! than [`SEND_TIMEOUT`] to accept an event, is dropped with a logged reason,
//! and resynchronises after reconnecting with getCallData.
//!
//! Transports: a WebSocket (`/_conference/events`), Server-Sent Events
//! (`/_conference/events/sse`), and the XMLSocket port ([`super::socket`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::access::{AccessError, objects};
use crate::http::Peer;
use crate::http::envelope::{Envelope, Format, write_element};
use crate::http::params::Params;
use crate::live::{CallerField, Event};
use crate::model::{Breakout, Call, CallStatus, Caller};
use crate::ops::{Kind, Ops, OpsError};

/// Events a subscriber may fall behind before it is dropped.
pub const SUBSCRIBER_BACKLOG: usize = 1024;
/// How long one event may take to be accepted by a subscriber's connection.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle WebSocket is pinged (and an SSE stream sent a comment),
/// so a dead subscriber is noticed and proxies keep the stream open.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// One event as the document shapes it, rendered once for every subscriber.
#[derive(Debug)]
pub struct Rendered {
    pub source: &'static str,
    pub name: &'static str,
    pub json: String,
    pub xml: String,
}

impl Rendered {
    fn new(source: &'static str, name: &'static str, target: Value) -> Self {
        let json = json!({"source": source, "name": name, "target": target}).to_string();
        let mut xml = format!("<event><source>{source}</source><name>{name}</name>");
        write_element(&mut xml, "target", &target);
        xml.push_str("</event>");
        Self { source, name, json, xml }
    }

    /// The text in the subscriber's format.
    pub fn text(&self, format: Format) -> &str {
        match format {
            Format::Json => &self.json,
            Format::Xml => &self.xml,
        }
    }
}

/// The per-call fan-out of rendered events. Cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Default)]
struct HubInner {
    calls: Mutex<HashMap<String, broadcast::Sender<Arc<Rendered>>>>,
    closed: AtomicBool,
    /// Subscribers dropped for falling behind or not accepting events.
    dropped: AtomicU64,
}

/// A subscription to one call's events.
pub struct Subscription {
    pub call_uid: String,
    receiver: broadcast::Receiver<Arc<Rendered>>,
}

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The call ended (its last event was delivered), or the server stops.
    Closed,
    /// The subscriber fell this many events behind.
    Lagged(u64),
}

impl Subscription {
    /// The next event, or why there is none.
    pub async fn next(&mut self) -> Result<Arc<Rendered>, End> {
        match self.receiver.recv().await {
            Ok(event) => Ok(event),
            Err(RecvError::Closed) => Err(End::Closed),
            Err(RecvError::Lagged(n)) => Err(End::Lagged(n)),
        }
    }
}

impl Hub {
    /// A hub fed from `ops`'s event bus by its own task.
    pub fn start(ops: Ops) -> Self {
        let hub = Self::default();
        let mut events = ops.events.subscribe();
        let feeder = hub.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => feeder.dispatch(&ops, &event).await,
                    Err(RecvError::Lagged(n)) => tracing::warn!(
                        missed = n,
                        "conductor events: fell behind the event bus; subscribers miss these and resync with getCallData"
                    ),
                    Err(RecvError::Closed) => break,
                }
                if feeder.inner.closed.load(Ordering::Relaxed) {
                    break;
                }
            }
        });
        hub
    }

    /// Subscribes to a call's events from now on; `None` once the hub closed.
    pub fn subscribe(&self, call_uid: &str) -> Option<Subscription> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return None;
        }
        let mut calls = self.inner.calls.lock().unwrap_or_else(|p| p.into_inner());
        // Forget calls nobody watches any more.
        if calls.len() > 64 {
            calls.retain(|_, sender| sender.receiver_count() > 0);
        }
        let sender = calls
            .entry(call_uid.to_owned())
            .or_insert_with(|| broadcast::channel(SUBSCRIBER_BACKLOG).0);
        Some(Subscription { call_uid: call_uid.to_owned(), receiver: sender.subscribe() })
    }

    /// Ends every subscription (the server stops) and refuses new ones.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Subscribers dropped so far for being too slow.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    pub(super) fn count_dropped(&self) {
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The sender of a call someone watches.
    fn watched(&self, call_uid: &str) -> Option<broadcast::Sender<Arc<Rendered>>> {
        let calls = self.inner.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.get(call_uid).filter(|s| s.receiver_count() > 0).cloned()
    }

    fn forget(&self, call_uid: &str) {
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(call_uid);
    }

    async fn dispatch(&self, ops: &Ops, event: &Event) {
        let Some(call_uid) = call_of(event) else { return };
        let Some(sender) = self.watched(call_uid) else {
            if matches!(event, Event::CallEnded { .. }) {
                self.forget(call_uid);
            }
            return;
        };
        match render(ops, event).await {
            Ok(rendered) => {
                for one in rendered {
                    // An error only means the last subscriber just left.
                    let _ = sender.send(Arc::new(one));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, call = call_uid, "conductor events: an event not rendered")
            }
        }
        if matches!(event, Event::CallEnded { .. }) {
            // Subscribers get what is queued, then the end.
            self.forget(call_uid);
        }
    }
}

/// The call session an event is about, if it is one the Conductor shows.
fn call_of(event: &Event) -> Option<&str> {
    match event {
        Event::CallStarted { call_uid, .. }
        | Event::CallUpdated { call_uid, .. }
        | Event::CallEnded { call_uid, .. }
        | Event::Talking { call_uid, .. } => Some(call_uid),
        Event::CallerJoined { caller, .. }
        | Event::CallerLeft { caller, .. }
        | Event::CallerUpdated { caller, .. } => Some(&caller.call_uid),
        Event::BreakoutCreated { breakout, .. } | Event::BreakoutUpdated { breakout, .. } => {
            Some(&breakout.call_uid)
        }
        Event::TagUpdated { tag, .. } => Some(&tag.call_uid),
        _ => None,
    }
}

/// The document's events for one bus event, with their targets' current state.
async fn render(ops: &Ops, event: &Event) -> Result<Vec<Rendered>, crate::store::StoreError> {
    let store = &ops.store;
    let tz = &ops.settings.timezone;
    let port = ops.settings.events_port;
    let call_target = |call: Call| async move { objects::call(store, &call, port, tz).await };
    Ok(match event {
        Event::CallStarted { call_uid, .. } | Event::CallUpdated { call_uid, .. } => {
            let call = store.get::<Call>(call_uid).await?;
            vec![Rendered::new("CALL", "UPDATE", call_target(call).await?)]
        }
        Event::CallEnded { call_uid, .. } => {
            let mut call = store.get::<Call>(call_uid).await?;
            call.status = CallStatus::Closed;
            vec![Rendered::new("CALL", "UPDATE", call_target(call).await?)]
        }
        Event::CallerJoined { caller, .. } => {
            vec![Rendered::new("CALL", "NEWCALLER", objects::caller(store, caller, tz).await?)]
        }
        Event::CallerLeft { caller, .. } => {
            let mut caller = caller.clone();
            caller.active = false;
            vec![Rendered::new("CALLER", "UPDATE", objects::caller(store, &caller, tz).await?)]
        }
        Event::CallerUpdated { caller, field, .. } => {
            let name = match field {
                CallerField::Mute => "MUTE",
                CallerField::Deaf => "DEAF",
                CallerField::Mike => "MIKE",
                CallerField::Breakout => "BREAKOUT",
                CallerField::Attention => "ATTENTION",
                CallerField::Role
                | CallerField::DtmfAllowed
                | CallerField::ListenOnly
                | CallerField::Volume
                | CallerField::Other => "UPDATE",
            };
            vec![Rendered::new("CALLER", name, objects::caller(store, caller, tz).await?)]
        }
        Event::Talking { caller_uid, talking, .. } => {
            let Some(caller) = store.find::<Caller>(caller_uid).await? else { return Ok(vec![]) };
            let mut target = objects::caller(store, &caller, tz).await?;
            if let Value::Object(fields) = &mut target {
                fields.insert("talking".into(), Value::Bool(*talking));
            }
            vec![Rendered::new("CALLER", "TALKING", target)]
        }
        Event::BreakoutCreated { breakout, .. } => {
            let target = breakout_target(ops, breakout).await?;
            vec![
                Rendered::new("CALL", "NEWBREAKOUT", target.clone()),
                Rendered::new("CONFERENCE", "NEWBREAKOUT", target),
            ]
        }
        Event::BreakoutUpdated { breakout, .. } => {
            vec![Rendered::new("BREAKOUT", "UPDATE", breakout_target(ops, breakout).await?)]
        }
        Event::TagUpdated { tag, .. } => {
            vec![Rendered::new("TAG", "UPDATE", objects::call_tag(tag))]
        }
        _ => vec![],
    })
}

/// A breakout's current state (the event's snapshot may predate its callers).
async fn breakout_target(
    ops: &Ops,
    breakout: &Breakout,
) -> Result<Value, crate::store::StoreError> {
    let current =
        ops.store.find::<Breakout>(&breakout.uid).await?.unwrap_or_else(|| breakout.clone());
    objects::breakout(&ops.store, &current, &ops.settings.timezone).await
}

/// A subscription request's parameters, checked: the call and the format.
pub async fn open(
    ops: &Ops,
    hub: &Hub,
    peer: Peer,
    params: &Params,
) -> Result<(Subscription, Format), AccessError> {
    let format = match params.get("type") {
        None => Format::default(),
        Some(t) => Format::parse(t)
            .ok_or_else(|| AccessError::code(-2, format!("type: {t:?} is not json or xml")))?,
    };
    let call_uid = params.required("callUID")?.trim();
    let token = params.required("securityToken")?;
    let checked = ops.guarded(
        peer.0,
        "conductor events",
        ops.conference_by_token(token, None, Some(call_uid)),
    );
    let checked =
        checked.await.map_err(|_| AccessError::general(crate::ops::sources::LOCKED_OUT))?;
    let call = match checked {
        Ok((_, Some(call))) => call,
        Ok((_, None)) => return Err(AccessError::code(-2, "callUID: is required")),
        Err(OpsError::Unavailable { incident }) => {
            return Err(AccessError::from_ops(OpsError::Unavailable { incident }, ""));
        }
        Err(_) => {
            tracing::info!(call = call_uid, "conductor events: wrong security token");
            return Err(AccessError::general("invalid security token for this call"));
        }
    };
    if call.status != CallStatus::Active {
        return Err(AccessError::from_ops(OpsError::Ended(Kind::Call), "callUID"));
    }
    let subscription =
        hub.subscribe(&call.uid).ok_or_else(|| AccessError::general("the server is stopping"))?;
    Ok((subscription, format))
}

/// A refusal before any streaming: the envelope, with 403 for a bad token.
fn refuse(e: AccessError, format: Format) -> Response {
    let status = if e.code == -1 { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
    Envelope::error(e.code, e.message).with_status(status).render(format)
}

fn requested_format(params: &Params) -> Format {
    params.get("type").and_then(Format::parse).unwrap_or_default()
}

/// `/_conference/events`: the call's events over a WebSocket, one text
/// message per event.
pub async fn websocket(
    State(ops): State<Ops>,
    Extension(hub): Extension<Hub>,
    peer: Peer,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let params = Params::from_query(query.as_deref().unwrap_or_default());
    let (subscription, format) = match open(&ops, &hub, peer, &params).await {
        Ok(opened) => opened,
        Err(e) => return refuse(e, requested_format(&params)),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(e) => {
            let message = format!("{e}; Server-Sent Events are at /_conference/events/sse");
            return refuse(AccessError::code(-2, message), format);
        }
    };
    upgrade.on_upgrade(move |socket| stream_websocket(socket, subscription, format, hub))
}

async fn stream_websocket(
    mut socket: WebSocket,
    mut subscription: Subscription,
    format: Format,
    hub: Hub,
) {
    let call = subscription.call_uid.clone();
    tracing::debug!(%call, "conductor events: WebSocket subscriber");
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.reset();
    let reason = loop {
        let message = tokio::select! {
            next = subscription.next() => match next {
                Ok(event) => Message::Text(event.text(format).into()),
                Err(End::Closed) => {
                    let frame = CloseFrame { code: 1000, reason: "the call ended".into() };
                    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
                    break None;
                }
                Err(End::Lagged(n)) => {
                    hub.count_dropped();
                    let frame = CloseFrame {
                        code: 1008,
                        reason: "fell behind; reconnect and resync with getCallData".into(),
                    };
                    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
                    break Some(format!("fell {n} events behind"));
                }
            },
            received = socket.recv() => match received {
                // The client's own messages (and pongs) need no answer.
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(_)) => continue,
                Some(Err(e)) => break Some(format!("connection failed: {e}")),
            },
            _ = keepalive.tick() => Message::Ping(Default::default()),
        };
        match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Some(format!("send failed: {e}")),
            Err(_) => {
                hub.count_dropped();
                break Some(format!("did not accept an event within {SEND_TIMEOUT:?}"));
            }
        }
    };
    match reason {
        Some(reason) => {
            tracing::info!(%call, reason, "conductor events: WebSocket subscriber dropped")
        }
        None => tracing::debug!(%call, "conductor events: WebSocket subscriber left"),
    }
}

/// `/_conference/events/sse`: the call's events as Server-Sent Events, one
/// `data:` per event, numbered by `id:`.
pub async fn sse(
    State(ops): State<Ops>,
    Extension(hub): Extension<Hub>,
    peer: Peer,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_query(query.as_deref().unwrap_or_default());
    let (subscription, format) = match open(&ops, &hub, peer, &params).await {
        Ok(opened) => opened,
        Err(e) => return refuse(e, requested_format(&params)),
    };
    let state = (subscription, 0_u64, false, hub);
    let stream = futures_util::stream::unfold(state, move |(mut sub, id, done, hub)| async move {
        if done {
            return None;
        }
        let event = match sub.next().await {
            Ok(event) => sse::Event::default().id(id.to_string()).data(event.text(format)),
            Err(End::Closed) => return None,
            Err(End::Lagged(n)) => {
                hub.count_dropped();
                tracing::info!(call = %sub.call_uid, reason = %format!("fell {n} events behind"), "conductor events: SSE subscriber dropped");
                let last = sse::Event::default()
                    .event("error")
                    .data("fell behind; reconnect and resync with getCallData");
                return Some((Ok::<_, Infallible>(last), (sub, id, true, hub)));
            }
        };
        Some((Ok(event), (sub, id + 1, false, hub)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEPALIVE)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Conference, Customer};
    use crate::ops::testing::{FakeLive, ops_with};
    use crate::time::Time;

    async fn a_call(ops: &Ops) -> Call {
        let customer = Customer::new("Acme");
        ops.store.create_customer(&customer).await.expect("customer");
        let conference = Conference::new(&customer, "Weekly");
        ops.store.create_conference(&conference).await.expect("conference");
        let call = Call::new(&conference, Time::now());
        ops.store.start_call(&call).await.expect("call");
        call
    }

    fn updated(call: &Call) -> Event {
        Event::CallUpdated {
            conference_uid: call.conference_uid.clone(),
            call_uid: call.uid.clone(),
            field: "notes".into(),
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_while_the_others_go_on() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let call = a_call(&ops).await;
        let hub = Hub::start(ops.clone());
        let mut slow = hub.subscribe(&call.uid).expect("subscribe");
        let mut quick = hub.subscribe(&call.uid).expect("subscribe");
        let total = SUBSCRIBER_BACKLOG + 50;
        let reader = tokio::spawn(async move {
            for n in 0..total {
                let event = quick.next().await.unwrap_or_else(|e| panic!("event {n}: {e:?}"));
                assert_eq!((event.source, event.name), ("CALL", "UPDATE"));
            }
            quick
        });
        for _ in 0..total {
            ops.events.publish(updated(&call));
        }
        let mut quick = reader.await.expect("the quick subscriber kept up");
        assert!(matches!(slow.next().await, Err(End::Lagged(n)) if n >= 50));

        // The call's end is delivered, then the stream ends.
        ops.events.publish(Event::CallEnded {
            conference_uid: call.conference_uid.clone(),
            call_uid: call.uid.clone(),
        });
        let last = quick.next().await.expect("the end");
        let target: Value = serde_json::from_str(&last.json).expect("json");
        assert_eq!(target["target"]["status"], "CLOSED");
        assert_eq!(quick.next().await.map(drop), Err(End::Closed));
    }

    #[tokio::test]
    async fn events_of_calls_nobody_watches_are_not_rendered_and_close_ends_all() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let call = a_call(&ops).await;
        let hub = Hub::start(ops.clone());
        // Nobody watches: nothing is kept for the call.
        ops.events.publish(updated(&call));
        tokio::task::yield_now().await;
        assert!(hub.watched(&call.uid).is_none());
        let mut watcher = hub.subscribe(&call.uid).expect("subscribe");
        ops.events.publish(updated(&call));
        let event = watcher.next().await.expect("event");
        let xml = crate::http::envelope::parse_xml(&event.xml).expect("xml");
        assert_eq!((xml.text_of("source"), xml.text_of("name")), ("CALL", "UPDATE"));
        assert_eq!(xml.child("target").expect("target").text_of("UID"), call.uid);
        hub.close();
        assert_eq!(watcher.next().await.map(drop), Err(End::Closed));
        assert!(hub.subscribe(&call.uid).is_none(), "closed for new subscribers");
    }
}
