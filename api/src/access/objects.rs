//! The MaestroConference objects (Customer, Conference, Reservation, Person,
//! Call, Caller, CallTag, ConferenceTag, RoleFlag, CustomValue, Audio) as the
//! documents name their fields, built from the domain model. The Conductor API
//! shows the same objects.
//!
//! Choices where the documents are vague or contradict themselves: times are
//! `yyyy.MM.dd HH:mm:ss` in `--timezone` and `null` when absent; a Customer's
//! `ID` is its UID (the document says Integer; tutti's UIDs are text), and it
//! is also given as `UID`; where an object lists `custom` twice (a Text and a
//! CustomValue[]), `custom` is the list of key/value pairs and the text is
//! `customText`; a Reservation's size is `estimateCaller` as the document
//! spells it and `estimatedCallers` as its parameter does; a reserved
//! conference's `scheduledStartTime`/`scheduledEndTime` are its first
//! reservation's start and its last one's end.

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::http::params::format_time;
use crate::model::{
    Breakout, Call, CallTag, Caller, Conference, ConferenceTag, Customer, ObjectType, Person,
    Reservation, Role, RoleFlags,
};
use crate::store::{ConferenceView, Result, Store};
use crate::time::Time;

fn time(t: Option<Time>, tz: &TimeZone) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_time(t, tz)))
}

async fn custom(store: &Store, kind: ObjectType, uid: &str) -> Result<Value> {
    let values = store.custom_values(kind, uid).await?;
    Ok(values.into_iter().map(|(key, value)| json!({"key": key, "value": value})).collect())
}

pub fn role_flag(f: &RoleFlags) -> Value {
    json!({"role": f.role.as_str(), "mike": f.mike, "mute": f.mute, "deaf": f.deaf})
}

/// The role settings of the roles MaestroConference knows (the PBX's
/// MODERATOR is not one of them).
fn role_flags(flags: &[RoleFlags]) -> Vec<Value> {
    flags
        .iter()
        .filter(|f| super::functions::ROLES.contains(&f.role.as_str()))
        .map(role_flag)
        .collect()
}

/// An Audio clip: the document's `UID`, `Name` and `Value` (the file, relative
/// to the sounds directory), with `ID` and `name` as `/_access` showed them.
pub fn audio(id: i64, name: &str, file: &str) -> Value {
    json!({"UID": id.to_string(), "Name": name, "Value": file, "ID": id, "name": name})
}

pub fn conference_tag(t: &ConferenceTag) -> Value {
    json!({"ID": t.id, "value": t.value})
}

pub fn call_tag(t: &CallTag) -> Value {
    json!({"ID": t.id, "value": t.value, "conferenceTagId": t.conference_tag_id})
}

pub async fn customer(store: &Store, c: &Customer) -> Result<Value> {
    Ok(json!({
        "ID": c.uid,
        "UID": c.uid,
        "name": c.name,
        "status": c.status.as_str(),
        "DID": c.did.clone().unwrap_or_default(),
        "recording": c.recording,
        "greenroom": c.greenroom,
        "contactEmails": c.contact_emails,
        "backgroundMusic": c.background_music,
        "placeCall": c.place_call,
        "affiliateCode": c.affiliate_code,
        "reminder": c.reminder,
        "preCall": c.pre_call,
        "postCall": c.post_call,
        "banner": c.banner,
        "callerInterface": c.caller_interface,
        "regComment": c.reg_comment,
        "maxCallers": c.max_callers,
        "inboundList": [],
        "custom": custom(store, ObjectType::Customer, &c.uid).await?,
    }))
}

pub fn reservation(r: &Reservation, tz: &TimeZone) -> Value {
    json!({
        "UID": r.uid,
        "conferenceUID": r.conference_uid,
        "estimateCaller": r.estimated_callers,
        "estimatedCallers": r.estimated_callers,
        "startTime": time(Some(r.start_time), tz),
        "endTime": time(r.end_time(), tz),
        "duration": r.duration_minutes,
        "state": r.state.as_str(),
    })
}

pub async fn person(store: &Store, p: &Person) -> Result<Value> {
    let tags: Vec<Value> = store.person_tags(&p.uid).await?.iter().map(conference_tag).collect();
    Ok(json!({
        "UID": p.uid,
        "conferenceUID": p.conference_uid,
        "name": p.name,
        "ANI": p.ani,
        "PIN": p.pin,
        "role": p.role.as_str(),
        "email": p.email,
        "notes": p.notes,
        "custom1": p.custom1,
        "custom2": p.custom2,
        "tags": tags,
        "custom": custom(store, ObjectType::Person, &p.uid).await?,
        "inboundAccess": 0,
        "swAutoLoginUrl": "",
    }))
}

/// A conference with its related UIDs (getConference).
pub async fn conference(store: &Store, c: &Conference, tz: &TimeZone) -> Result<Value> {
    let (c, view) = store
        .conference_with_view(&c.uid)
        .await?
        .ok_or(crate::store::StoreError::NotFound("conferences"))?;
    Ok(conference_of(&c, view, tz))
}

/// A conference with its related UIDs, from the conference and its view.
pub fn conference_of(c: &Conference, view: ConferenceView, tz: &TimeZone) -> Value {
    let place_call = view.customer_place_call;
    let active: Vec<&String> = view.calls.iter().filter(|(_, a)| *a).map(|(uid, _)| uid).collect();
    let listed: Vec<&String> = if active.is_empty() {
        view.calls.iter().map(|(uid, _)| uid).collect()
    } else {
        active.clone()
    };
    let (start, end) = if c.reserved {
        let first = view.reservations.iter().map(|(_, start, _)| *start).min();
        let last = view
            .reservations
            .iter()
            .filter_map(|(_, start, minutes)| minutes.map(|m| start.plus_minutes(m)))
            .max();
        (first, last)
    } else {
        (c.scheduled_start, c.scheduled_end)
    };
    let did = c.dial_in_number.clone().or(view.customer_did).unwrap_or_default();
    let sounds: Vec<Value> =
        view.sounds.iter().map(|(id, name, file)| audio(*id, name, file)).collect();
    let tags: Vec<Value> = view.tags.iter().map(conference_tag).collect();
    let custom: Vec<Value> =
        view.custom.iter().map(|(key, value)| json!({"key": key, "value": value})).collect();
    json!({
        "UID": c.uid,
        "name": c.name,
        "scheduledStartTime": time(start, tz),
        "scheduledEndTime": time(end, tz),
        "customer": c.customer_uid,
        "status": c.status.as_str(),
        "data": c.data,
        "persons": view.persons,
        "audio": sounds,
        "DID": did,
        "recording": c.recording,
        "greenroom": c.greenroom,
        "notes": c.notes,
        "activeCallUID": active.first(),
        "mainCallUID": active.first().copied().or(view.calls.last().map(|(uid, _)| uid)),
        "largeCall": c.large_call,
        "placeCall": place_call,
        "tags": tags,
        "setting": role_flags(&view.settings),
        "customText": c.custom,
        "reservations": view.reservations.iter().map(|(uid, _, _)| uid).collect::<Vec<_>>(),
        "reserved": c.reserved,
        "backgroundMusic": c.background_music,
        "custom": custom,
        "securityToken": c.security_token,
        "calls": listed,
        "contactEmail": c.contact_email,
        "registerText": c.register_text,
        "reminder": c.reminder,
        "preCall": c.pre_call,
        "postCall": c.post_call,
        "banner": c.banner,
        "callerInterface": c.caller_interface,
        "regComment": c.reg_comment,
    })
}

/// A conference with its child objects (getConferenceData): persons,
/// settings, reservations and customer in full.
pub async fn conference_data(store: &Store, c: &Conference, tz: &TimeZone) -> Result<Value> {
    let mut value = conference(store, c, tz).await?;
    let mut persons = Vec::new();
    for p in store.persons_of(&c.uid).await? {
        persons.push(person(store, &p).await?);
    }
    let reservations: Vec<Value> =
        store.reservations_of(&c.uid).await?.iter().map(|r| reservation(r, tz)).collect();
    let customer = match store.find::<Customer>(&c.customer_uid).await? {
        Some(k) => customer(store, &k).await?,
        None => Value::Null,
    };
    if let Value::Object(fields) = &mut value {
        fields.insert("persons".into(), Value::Array(persons));
        fields.insert("reservations".into(), Value::Array(reservations));
        fields.insert("customer".into(), customer);
    }
    Ok(value)
}

pub async fn caller(store: &Store, c: &Caller, tz: &TimeZone) -> Result<Value> {
    Ok(json!({
        "UID": c.uid,
        "callUID": c.call_uid,
        "name": c.name,
        "ANI": c.ani,
        "PIN": c.pin,
        "DID": c.did,
        "direction": c.direction.as_str(),
        "startTime": time(Some(c.start_time), tz),
        "endTime": time(c.end_time, tz),
        "endReason": c.end_reason.map(|r| r.as_str()),
        "role": c.role.as_str(),
        "breakout": c.breakout_uid,
        "breakoutTime": time(c.breakout_time, tz),
        "mic": c.mike,
        "mute": c.mute,
        "deaf": c.deaf,
        "active": c.active,
        "tag": if c.tag.is_empty() { c.ani.clone() } else { c.tag.clone() },
        "attention": c.attention,
        "attentionTime": time(c.attention_time, tz),
        "data": c.data,
        "notes": c.notes,
        "custom1": c.custom1,
        "custom2": c.custom2,
        "personUID": c.person_uid,
        "volume_in": c.volume_in,
        "volume_out": c.volume_out,
        "energy": c.energy,
        "custom": custom(store, ObjectType::Caller, &c.uid).await?,
    }))
}

/// A breakout group with the UIDs of the callers in it now. `assistedGroup`
/// says whether a presenter, assistant or operator is among them.
pub async fn breakout(store: &Store, b: &Breakout, tz: &TimeZone) -> Result<Value> {
    let members: Vec<Caller> = store
        .callers_of(&b.call_uid)
        .await?
        .into_iter()
        .filter(|c| c.active && c.breakout_uid.as_deref() == Some(b.uid.as_str()))
        .collect();
    Ok(breakout_of(b, &members, tz))
}

/// A breakout group, given the callers in it.
pub fn breakout_of(b: &Breakout, members: &[Caller], tz: &TimeZone) -> Value {
    let assisted = members.iter().any(|c| c.role != Role::Participant);
    let caller_attention =
        members.iter().filter(|c| c.attention > 0).filter_map(|c| c.attention_time).min();
    let attention_time = match (b.attention_time, caller_attention) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    };
    json!({
        "UID": b.uid,
        "callUID": b.call_uid,
        "name": b.name,
        "callers": members.iter().map(|c| c.uid.as_str()).collect::<Vec<_>>(),
        "attention": b.attention || caller_attention.is_some(),
        "attentionTime": time(attention_time, tz),
        "lastAssistedTime": if assisted { Value::Null } else { time(b.last_assisted_time, tz) },
        "assistedGroup": assisted,
        "data": b.data,
        "private": b.private,
    })
}

/// A call session (getCall): callers and breakouts as UIDs. `socket_xml` is
/// the port of the XMLSocket event stream (`--events-listen`), 0 without one.
pub async fn call(store: &Store, k: &Call, socket_xml: u16, tz: &TimeZone) -> Result<Value> {
    let callers: Vec<String> = store.callers_of(&k.uid).await?.into_iter().map(|c| c.uid).collect();
    let breakouts: Vec<String> =
        store.breakouts_of(&k.uid).await?.into_iter().map(|b| b.uid).collect();
    let tags: Vec<Value> = store.call_tags(&k.uid).await?.iter().map(call_tag).collect();
    let settings: Vec<Value> =
        store.call_role_settings(&k.uid).await?.iter().map(role_flag).collect();
    Ok(json!({
        "UID": k.uid,
        "name": k.name,
        "actualStartTime": time(Some(k.actual_start), tz),
        "actualEndTime": time(k.actual_end, tz),
        "status": k.status.as_str(),
        "notes": k.notes,
        "conferenceUID": k.conference_uid,
        "socketXML": socket_xml,
        "callers": callers,
        "breakouts": breakouts,
        "data": k.data,
        "server": "tutti",
        "serverConferenceUID": k.conference_uid,
        "currentTime": time(Some(Time::now()), tz),
        "talking": k.talking,
        "greenroom": k.greenroom,
        "tags": tags,
        "settings": settings,
        "customText": k.custom,
        "backgroundMusic": k.background_music,
        "entryway": k.entryway,
        "link": k.link,
        "message": k.message,
        "feedback": k.feedback,
        "enableFeedback": k.enable_feedback,
        "enableBroadcast": k.enable_broadcast,
        "custom": custom(store, ObjectType::Call, &k.uid).await?,
    }))
}

/// A call session with its callers and breakouts in full (getCallData): what
/// a client reconnecting to the events needs to start over.
pub async fn call_data(store: &Store, k: &Call, socket_xml: u16, tz: &TimeZone) -> Result<Value> {
    let mut value = call(store, k, socket_xml, tz).await?;
    let all = store.callers_of(&k.uid).await?;
    let mut callers = Vec::new();
    for c in &all {
        callers.push(caller(store, c, tz).await?);
    }
    let active: Vec<Caller> = all.into_iter().filter(|c| c.active).collect();
    let breakouts: Vec<Value> = store
        .breakouts_of(&k.uid)
        .await?
        .iter()
        .map(|b| {
            let members: Vec<Caller> = active
                .iter()
                .filter(|c| c.breakout_uid.as_deref() == Some(b.uid.as_str()))
                .cloned()
                .collect();
            breakout_of(b, &members, tz)
        })
        .collect();
    if let Value::Object(fields) = &mut value {
        fields.insert("callers".into(), Value::Array(callers));
        fields.insert("breakouts".into(), Value::Array(breakouts));
    }
    Ok(value)
}
