//! The Conductor's command requests. Each answers whether it was accepted
//! (`TRUE`, or `FALSE,<message>`); what it changed reaches every client as
//! events. Commands over a list of callers apply to each and name the ones
//! they could not change.

use super::Request;
use crate::access::AccessError;
use crate::http::functions::parse_role;
use crate::http::params::{ParamError, parse_bool};
use crate::live::{CallUpdate, CallerUpdate, Target};
use crate::model::{Caller, ObjectType, Role};
use crate::ops::callers::CallerChange;
use crate::ops::calls::{BreakoutField, CallField, NewBreakout, Partial, RoleSetting};
use crate::ops::media::DialOut;
use crate::ops::{Kind, OpsError};
use crate::store::{CallFlag, CallText, CallerDetails};

type Answer = Result<(), AccessError>;

/// The most breakout groups one createBreakout makes.
pub const MAX_BREAKOUTS: i64 = 100;
/// The most callers one list names.
const MAX_LIST: usize = 1000;

pub(super) async fn run(name: &str, r: &Request<'_>) -> Answer {
    match name {
        "createBreakout" => create_breakout(r).await,
        "closeCall" => {
            let call = r.call()?;
            r.ops.close_call(&r.scope, &call.uid).await.map_err(|e| ops(e, "callUID"))
        }
        "updateCall" => update_call(r).await,
        "updateCaller" => {
            let uids = list(r.params.required("UID")?, "UID")?;
            update_callers(r, &uids).await
        }
        "updateActiveCaller" => update_active_callers(r).await,
        "dropCaller" => {
            let call = r.call()?;
            let uid = r.params.required("UID")?.trim().to_owned();
            let done = r.ops.change_callers(&r.scope, &call.uid, &[uid], &CallerChange::Drop).await;
            partial(done.map_err(|e| ops(e, "callUID"))?, "UID")
        }
        "playTone" => play_tone(r).await,
        "updateBreakout" => update_breakout(r).await,
        "updateConferenceSetting" | "updateCallSetting" => update_setting(name, r).await,
        "updateCallerTag" => {
            let call = r.call()?;
            let callers = list(r.params.required("callerUID")?, "callerUID")?;
            let tag = r.params.required_integer("callTagID")?;
            let add = r.params.required("action")?.trim().eq_ignore_ascii_case("add");
            let done = r.ops.tag_callers(&r.scope, &call.uid, &callers, tag, add).await;
            partial(done.map_err(|e| ops(e, "callTagID"))?, "callerUID")
        }
        "createCallTag" => {
            let call = r.call()?;
            let conference_tag = r.params.integer("conferenceTagID")?;
            let value = r.params.get("value").filter(|v| !v.is_empty());
            r.ops
                .create_call_tag(&r.scope, &call.uid, conference_tag, value)
                .await
                .map(drop)
                .map_err(|e| ops(e, "conferenceTagID"))
        }
        "updateCallTag" => {
            let call = r.call()?;
            let tag = r.params.required_integer("callTagID")?;
            let value = r.params.required("value")?;
            r.ops
                .update_call_tag(&r.scope, &call.uid, tag, value)
                .await
                .map(drop)
                .map_err(|e| ops(e, "callTagID"))
        }
        "placeCall" => place_call(r).await,
        "updateCustomValue" => {
            let call = r.call()?;
            let object_type: ObjectType =
                r.params.required("objectType")?.trim().to_ascii_lowercase().parse().map_err(
                    |_| ParamError::new("objectType", "not customer/conference/call/person/caller"),
                )?;
            let uid = r.params.required("objectUID")?.trim();
            let key = r.params.required("customKey")?;
            let value = r.params.get("customValue").unwrap_or_default();
            r.ops
                .set_call_custom_value(call, object_type, uid, key, value)
                .await
                .map_err(|e| ops(e, "objectUID"))
        }
        other => Err(AccessError::code(-4, format!("{other} has no handler"))),
    }
}

/// An operation's refusal as the message after `FALSE,`.
fn ops(e: OpsError, param: &str) -> AccessError {
    AccessError::from_ops(e, param)
}

/// A partial failure: the UIDs not changed, each with its reason.
fn partial(done: Partial, param: &str) -> Answer {
    if done.failed.is_empty() {
        return Ok(());
    }
    let failed: Vec<String> = done
        .failed
        .iter()
        .map(|(uid, e)| match e {
            OpsError::NotFound(kind) => format!("{uid} (no such {kind} in this call)"),
            other => format!("{uid} ({other})"),
        })
        .collect();
    Err(AccessError::code(-2, format!("{param}: not applied to {}", failed.join(", "))))
}

/// A comma-separated list of UIDs, without blanks and repeats.
fn list(text: &str, param: &str) -> Result<Vec<String>, AccessError> {
    let mut uids: Vec<String> = Vec::new();
    for uid in text.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        if !uids.iter().any(|u| u == uid) {
            uids.push(uid.to_owned());
        }
    }
    if uids.len() > MAX_LIST {
        return Err(ParamError::new(param, format!("at most {MAX_LIST} UIDs")).into());
    }
    Ok(uids)
}

/// The `value` parameter as a boolean (required).
fn flag(r: &Request<'_>) -> Result<bool, AccessError> {
    let value = r.params.required("value")?;
    Ok(parse_bool("value", value)?)
}

/// The `value` parameter as text (absent: empty).
fn text(r: &Request<'_>) -> String {
    r.params.get("value").unwrap_or_default().to_owned()
}

/// The `value` parameter as an integer within `range`.
fn number(r: &Request<'_>, range: std::ops::RangeInclusive<i64>) -> Result<i64, AccessError> {
    let value = r.params.required_integer("value")?;
    if !range.contains(&value) {
        return Err(ParamError::new(
            "value",
            format!("{value} is not from {} to {}", range.start(), range.end()),
        )
        .into());
    }
    Ok(value)
}

async fn create_breakout(r: &Request<'_>) -> Answer {
    let call = r.call()?;
    let params = &r.params;
    let group = |suffix: &str| -> Result<NewBreakout, AccessError> {
        let key = |name: &str| format!("{name}{suffix}");
        let private = match params.get(&key("private")) {
            Some(v) => parse_bool(&key("private"), v)?,
            None => false,
        };
        let callers = match params.get(&key("callers")) {
            Some(text) => list(text, &key("callers"))?,
            None if suffix.is_empty() => Vec::new(),
            None => return Err(ParamError::new(&key("callers"), "is required").into()),
        };
        Ok(NewBreakout {
            uid: params.get(&key("breakoutUID")).map(|u| u.trim().to_owned()),
            name: params.get(&key("name")).unwrap_or_default().to_owned(),
            private,
            callers,
        })
    };
    let groups = match params.integer("count")? {
        None => vec![group("")?],
        Some(count) if (1..=MAX_BREAKOUTS).contains(&count) => {
            (1..=count).map(|n| group(&n.to_string())).collect::<Result<Vec<_>, _>>()?
        }
        Some(count) => {
            return Err(ParamError::new(
                "count",
                format!("{count} is not from 1 to {MAX_BREAKOUTS}"),
            )
            .into());
        }
    };
    let (_, done) =
        r.ops.create_breakouts(&r.scope, &call.uid, groups).await.map_err(|e| ops(e, "callUID"))?;
    partial(done, "callers")
}

async fn update_call(r: &Request<'_>) -> Answer {
    let call = r.call()?;
    let field = r.params.required("field")?.trim();
    let text_field =
        |field: CallText, append: bool| CallField::Text { field, value: text(r), append };
    let change = match field {
        "name" => text_field(CallText::Name, false),
        "notes" => text_field(CallText::Notes, false),
        "note" => text_field(CallText::Notes, true),
        "data" => text_field(CallText::Data, false),
        "custom" => text_field(CallText::Custom, false),
        "link" => text_field(CallText::Link, false),
        "message" => text_field(CallText::Message, false),
        "feedback" => text_field(CallText::Feedback, false),
        "talking" => CallField::Live(CallUpdate::TalkingEvents(flag(r)?)),
        "greenroom" => CallField::Live(CallUpdate::GreenRoom(flag(r)?)),
        "entryway" => CallField::Flag(CallFlag::Entryway, flag(r)?),
        "backgroundMusic" => CallField::Flag(CallFlag::BackgroundMusic, flag(r)?),
        "enableFeedback" => CallField::Flag(CallFlag::EnableFeedback, flag(r)?),
        "enableBroadcast" => CallField::Flag(CallFlag::EnableBroadcast, flag(r)?),
        other => {
            return Err(ParamError::new("field", format!("{other:?} is not a Call field")).into());
        }
    };
    r.ops
        .update_call_field(&r.scope, &call.uid, change)
        .await
        .map(drop)
        .map_err(|e| ops(e, "callUID"))
}

/// updateCaller's and updateActiveCaller's `field` and `value` as a change.
fn caller_change(r: &Request<'_>) -> Result<CallerChange, AccessError> {
    let field = r.params.required("field")?.trim();
    let details = |set: fn(&mut CallerDetails, String)| {
        let mut details = CallerDetails::default();
        set(&mut details, text(r));
        CallerChange::Details(details)
    };
    Ok(match field {
        "mike" => CallerChange::Live(CallerUpdate::Mike(flag(r)?)),
        "mute" => CallerChange::Live(CallerUpdate::Mute(flag(r)?)),
        "deaf" => CallerChange::Live(CallerUpdate::Deaf(flag(r)?)),
        "attention" => {
            // A level 0-5; true and false are taken as 1 and 0.
            let value = r.params.required("value")?;
            let level = match parse_bool("value", value) {
                Ok(on) if !value.trim().chars().all(|c| c.is_ascii_digit()) => i64::from(on),
                _ => number(r, 0..=5)?,
            };
            CallerChange::Live(CallerUpdate::Attention(level))
        }
        "breakout" => {
            // Empty (or the main room's names) moves the caller back.
            let target = text(r).trim().to_owned();
            let main = target.is_empty() || target == "0" || target.eq_ignore_ascii_case("main");
            CallerChange::Live(CallerUpdate::Breakout((!main).then_some(target)))
        }
        "role" => {
            let role = parse_role("value", r.params.required("value")?)?;
            CallerChange::Live(CallerUpdate::Role(role))
        }
        "volume_in" => CallerChange::Live(CallerUpdate::VolumeIn(number(r, -4..=4)?)),
        "volume_out" => CallerChange::Live(CallerUpdate::VolumeOut(number(r, -4..=4)?)),
        "energy" => CallerChange::Energy(number(r, 0..=crate::ops::callers::MAX_ENERGY)?),
        "active" => CallerChange::Drop,
        "note" => CallerChange::AppendNote(text(r)),
        "tag" => details(|d, v| d.tag = Some(v)),
        "data" => details(|d, v| d.data = Some(v)),
        "notes" => details(|d, v| d.notes = Some(v)),
        "custom1" => details(|d, v| d.custom1 = Some(v)),
        "custom2" => details(|d, v| d.custom2 = Some(v)),
        other => {
            return Err(ParamError::new("field", format!("{other:?} is not a Caller field")).into());
        }
    })
}

async fn update_callers(r: &Request<'_>, uids: &[String]) -> Answer {
    let call = r.call()?;
    let change = caller_change(r)?;
    if uids.is_empty() {
        return Err(ParamError::new("UID", "names no caller").into());
    }
    let done = r.ops.change_callers(&r.scope, &call.uid, uids, &change).await;
    partial(done.map_err(|e| ops(e, "callUID"))?, "UID")
}

async fn update_active_callers(r: &Request<'_>) -> Answer {
    let call = r.call()?;
    let role: Option<Role> = match r.params.get("role") {
        Some(text) => Some(parse_role("role", text)?),
        None => None,
    };
    let change = caller_change(r)?;
    let callers = r.ops.store.callers_of(&call.uid).await.map_err(|e| ops(e.into(), ""))?;
    let uids: Vec<String> = callers
        .into_iter()
        .filter(|c: &Caller| c.active && role.is_none_or(|role| c.role == role))
        .map(|c| c.uid)
        .collect();
    if uids.is_empty() {
        return Ok(());
    }
    let done = r.ops.change_callers(&r.scope, &call.uid, &uids, &change).await;
    partial(done.map_err(|e| ops(e, "callUID"))?, "UID")
}

async fn play_tone(r: &Request<'_>) -> Answer {
    let call = r.call()?;
    let tone = r.params.required("tone")?.trim();
    let id: i64 = tone.parse().map_err(|_| {
        ParamError::new("tone", format!("{tone:?} is not the UID of an Audio clip"))
    })?;
    let target = Target::Conference(call.conference_uid.clone());
    if call.status != crate::model::CallStatus::Active {
        return Err(ops(OpsError::Ended(Kind::Call), "callUID"));
    }
    r.ops.play_sound(&r.scope, target, id).await.map_err(|e| ops(e, "tone"))
}

async fn update_breakout(r: &Request<'_>) -> Answer {
    let call = r.call()?;
    let uid = r.params.required("UID")?.trim();
    let breakout =
        r.ops.store.find::<crate::model::Breakout>(uid).await.map_err(|e| ops(e.into(), ""))?;
    if breakout.is_none_or(|b| b.call_uid != call.uid) {
        return Err(ops(OpsError::NotFound(Kind::Breakout), "UID"));
    }
    let field = match r.params.required("field")?.trim() {
        "name" => BreakoutField::Name(text(r)),
        "data" => BreakoutField::Data(text(r)),
        "attention" => BreakoutField::Attention(flag(r)?),
        "private" => BreakoutField::Private(flag(r)?),
        "callers" => {
            let callers = list(r.params.required("value")?, "value")?;
            BreakoutField::ToggleCallers(callers)
        }
        other => {
            return Err(
                ParamError::new("field", format!("{other:?} is not a Breakout field")).into()
            );
        }
    };
    let (_, done) = r.ops.update_breakout(&r.scope, uid, field).await.map_err(|e| ops(e, "UID"))?;
    partial(done, "value")
}

async fn update_setting(name: &str, r: &Request<'_>) -> Answer {
    let role = parse_role("role", r.params.required("role")?)?;
    if role == Role::Operator {
        return Err(ParamError::new("role", "OPERATOR has no entry settings").into());
    }
    let setting = match r.params.required("setting")?.trim() {
        "mike" => RoleSetting::Mike,
        "mute" => RoleSetting::Mute,
        "deaf" => RoleSetting::Deaf,
        other => {
            return Err(
                ParamError::new("setting", format!("{other:?} is not mike, mute or deaf")).into()
            );
        }
    };
    let on = flag(r)?;
    let call = if name == "updateCallSetting" { Some(r.call()?.uid.as_str()) } else { None };
    r.ops
        .set_role_setting(&r.scope, &r.conference.uid, call, role, setting, on)
        .await
        .map(drop)
        .map_err(|e| ops(e, if call.is_some() { "callUID" } else { "conferenceUID" }))
}

async fn place_call(r: &Request<'_>) -> Answer {
    let call = r.call()?;
    if call.status != crate::model::CallStatus::Active {
        return Err(ops(OpsError::Ended(Kind::Call), "callUID"));
    }
    let role = parse_role("role", r.params.required("role")?)?;
    let number = r.params.required("number")?.trim().to_owned();
    let name = r.params.get("name").map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    if name.as_ref().is_some_and(|n| n.len() > crate::ops::callers::MAX_TEXT_LEN) {
        return Err(ParamError::new("name", "too long").into());
    }
    let request = DialOut {
        conference_uid: call.conference_uid.clone(),
        number,
        name,
        role,
        remote_command: None,
    };
    r.ops.dial_out(&r.scope, request).await.map(drop).map_err(|e| ops(e, "number"))
}
