//! The command requests: customer settings, creating conferences (with their
//! reservations), reservations, persons, cancelling and changing conferences,
//! custom values.

use super::info::stored;
use super::objects;
use super::{AccessError, Request, parse_role};
use crate::http::envelope::Envelope;
use crate::http::params::{ParamError, parse_bool};
use crate::model::{Conference, ObjectType};
use crate::ops::persons::PersonDetails;
use crate::ops::reservations::{ReservationChange, ReservationRequest};
use crate::ops::{Kind, OpsError, ReservationRule};
use crate::time::Time;

type Answer = Result<Envelope, AccessError>;

pub(super) async fn run(name: &str, r: &Request<'_>) -> Answer {
    match name {
        "updateCustomer" => update_customer(r).await,
        "createConferenceReservationless" => create_reservationless(r).await,
        "createConferenceReserved" => create_reserved(r).await,
        "addConferenceReservation" => add_reservation(r).await,
        "addPerson" => add_person(r).await,
        "updatePerson" => update_person(r).await,
        "removePerson" => remove_person(r).await,
        "updateConferenceReservation" => update_reservation(r).await,
        "removeConferenceReservation" => remove_reservation(r).await,
        "cancelConference" => cancel_conference(r).await,
        "updateConference" => update_conference(r).await,
        "updateCustomValue" => update_custom_value(r).await,
        other => Err(AccessError::code(-4, format!("{other} has no handler"))),
    }
}

/// The `value` parameter as a boolean.
fn flag(r: &Request<'_>) -> Result<bool, AccessError> {
    Ok(parse_bool("value", r.params.get("value").unwrap_or_default())?)
}

/// The `value` parameter as text (it may be empty).
fn value(r: &Request<'_>) -> String {
    r.params.get("value").unwrap_or_default().to_owned()
}

/// A reservation rule broken, as this function numbers it; other errors as usual.
fn numbered(e: OpsError, param: &str, codes: &[(ReservationRule, i64)]) -> AccessError {
    if let OpsError::Reservation(rule) = &e
        && let Some((_, code)) = codes.iter().find(|(r, _)| r == rule)
    {
        return AccessError::code(*code, e.to_string());
    }
    AccessError::from_ops(e, param)
}

const RESERVATION_CODES: &[(ReservationRule, i64)] = &[
    (ReservationRule::StartOverlaps, 1),
    (ReservationRule::RunsIntoAnother, 2),
    (ReservationRule::EstimateOutOfRange, 3),
    (ReservationRule::Reservationless, 4),
];

async fn update_customer(r: &Request<'_>) -> Answer {
    let field = r.params.required("field")?.to_owned();
    let value = value(r);
    let flag = match field.as_str() {
        "greenroom" | "recording" | "reminder" | "backgroundMusic" => Some(flag(r)?),
        _ => None,
    };
    let customer = r
        .ops
        .modify_customer(&r.scope, |c| {
            match (field.as_str(), flag) {
                ("greenroom", Some(on)) => c.greenroom = on,
                ("recording", Some(on)) => c.recording = on,
                ("reminder", Some(on)) => c.reminder = on,
                ("backgroundMusic", Some(on)) => c.background_music = on,
                ("contactEmail", _) => c.contact_emails = value,
                ("affiliateCode", _) => c.affiliate_code = value,
                ("preCall", _) => c.pre_call = value,
                ("postCall", _) => c.post_call = value,
                ("banner", _) => c.banner = value,
                ("callerInterface", _) => c.caller_interface = value,
                ("regComment", _) => c.reg_comment = value,
                _ => return Err(OpsError::invalid("field", "not a customer field")),
            }
            Ok(())
        })
        .await
        .map_err(|e| AccessError::from_ops(e, "value"))?;
    Ok(Envelope::ok(objects::customer(&r.ops.store, &customer).await.map_err(stored)?))
}

/// A new conference of the customer with the request's optional settings.
fn new_conference(r: &Request<'_>) -> Result<Conference, AccessError> {
    let name = match r.text("name").map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        Some(name) => name,
        None => r.customer.name.clone(),
    };
    let mut conference = Conference::new(&r.customer, name);
    if let Some(emails) = r.text("contactEmail") {
        conference.contact_email = emails;
    }
    if let Some(on) = r.boolean("greenroom")? {
        conference.greenroom = on;
    }
    if let Some(on) = r.boolean("recording")? {
        conference.recording = on;
    }
    if let Some(on) = r.boolean("backgroundMusic")? {
        conference.background_music = on;
    }
    Ok(conference)
}

async fn conference_answer(r: &Request<'_>, conference: &Conference) -> Answer {
    let value = objects::conference(&r.ops.store, conference, r.tz).await.map_err(stored)?;
    Ok(Envelope::ok(value))
}

async fn create_reservationless(r: &Request<'_>) -> Answer {
    let conference = new_conference(r)?;
    let estimated = r.params.required_integer("estimatedCallers")?;
    let (conference, _) =
        r.ops.create_reservationless(&r.scope, conference, estimated).await.map_err(|e| {
            numbered(e, "estimatedCallers", &[(ReservationRule::EstimateOutOfRange, 3)])
        })?;
    conference_answer(r, &conference).await
}

async fn create_reserved(r: &Request<'_>) -> Answer {
    let conference = new_conference(r)?;
    let count = r.params.required_integer("reservationCount")?;
    if !(1..=100).contains(&count) {
        return Err(ParamError::new("reservationCount", "from 1 to 100").into());
    }
    // Numbered from 1 as the document's examples suggest; from 0 is accepted too.
    let first = if r.params.has("estimatedCallers0") || r.params.has("startDate0") { 0 } else { 1 };
    let mut requests = Vec::new();
    let mut unreadable = Vec::new();
    for i in first..first + count {
        let item = (|| -> Result<ReservationRequest, ParamError> {
            let estimated = r.params.required_integer(&format!("estimatedCallers{i}"))?;
            let name = format!("startDate{i}");
            r.params.required(&name)?;
            let start = r.params.time(&name, r.tz)?.unwrap_or_else(Time::now);
            let duration = r.params.required_integer(&format!("duration{i}"))?;
            Ok(ReservationRequest {
                start,
                duration_minutes: duration,
                estimated_callers: estimated,
            })
        })();
        match item {
            Ok(request) => requests.push((i, request)),
            Err(e) => unreadable.push(format!("reservation {i}: {e}")),
        }
    }
    let valid: Vec<ReservationRequest> = requests.iter().map(|(_, q)| *q).collect();
    let result = if valid.is_empty() {
        Err(OpsError::Reservation(ReservationRule::NoneValid))
    } else {
        r.ops.create_reserved(&r.scope, conference, &valid).await
    };
    let (conference, _, skipped) = result.map_err(|e| match e {
        OpsError::Reservation(ReservationRule::NoneValid) => {
            let mut why = vec!["no valid reservation was found".to_owned()];
            why.extend(unreadable.iter().cloned());
            AccessError::code(1, why.join("; "))
        }
        other => AccessError::from_ops(other, "reservationCount"),
    })?;
    let mut envelope = conference_answer(r, &conference).await?;
    let mut notes = unreadable;
    notes.extend(
        skipped.iter().map(|(index, e)| format!("reservation {}: {e}", requests[*index].0)),
    );
    if !notes.is_empty() {
        envelope.message = format!("skipped {}", notes.join("; "));
    }
    Ok(envelope)
}

async fn add_reservation(r: &Request<'_>) -> Answer {
    let conference = r.uid("conference")?;
    let request = ReservationRequest {
        start: r.params.time("startDate", r.tz)?.unwrap_or_else(Time::now),
        duration_minutes: r.params.required_integer("duration")?,
        estimated_callers: r.params.required_integer("estimatedCallers")?,
    };
    let reservation = r
        .ops
        .add_reservation(&r.scope, &conference, request)
        .await
        .map_err(|e| numbered(e, "conference", RESERVATION_CODES))?;
    Ok(Envelope::ok(objects::reservation(&reservation, r.tz)))
}

async fn update_reservation(r: &Request<'_>) -> Answer {
    let uid = r.uid("reservationUID")?;
    let change = ReservationChange {
        start: r.params.time("startDate", r.tz)?,
        duration_minutes: r.params.integer("duration")?,
        estimated_callers: r.params.integer("estimatedCallers")?,
    };
    let reservation = r
        .ops
        .update_reservation(&r.scope, &uid, change)
        .await
        .map_err(|e| numbered(e, "reservationUID", RESERVATION_CODES))?;
    Ok(Envelope::ok(objects::reservation(&reservation, r.tz)))
}

async fn remove_reservation(r: &Request<'_>) -> Answer {
    let uid = r.uid("reservationUID")?;
    let codes = [
        (ReservationRule::Reservationless, 1),
        (ReservationRule::LastOne, 2),
        (ReservationRule::Past, 3),
        (ReservationRule::Running, 4),
    ];
    let reservation = r
        .ops
        .remove_reservation(&r.scope, &uid)
        .await
        .map_err(|e| numbered(e, "reservationUID", &codes))?;
    Ok(Envelope::ok(objects::reservation(&reservation, r.tz)))
}

fn person_details(r: &Request<'_>) -> PersonDetails {
    PersonDetails {
        name: r.text("name"),
        email: r.text("email"),
        notes: r.text("notes"),
        custom1: r.text("custom1"),
        custom2: r.text("custom2"),
        role: None,
    }
}

async fn add_person(r: &Request<'_>) -> Answer {
    let conference = r.uid("conference")?;
    let details = PersonDetails { role: Some(r.role("role")?), ..person_details(r) };
    let person = r
        .ops
        .add_person(&r.scope, &conference, details)
        .await
        .map_err(|e| AccessError::from_ops(e, "conference"))?;
    Ok(Envelope::ok(objects::person(&r.ops.store, &person).await.map_err(stored)?))
}

async fn update_person(r: &Request<'_>) -> Answer {
    let uid = r.uid("person")?;
    let field = r.params.required("field")?;
    let text = Some(value(r));
    let details = match field {
        "name" => PersonDetails { name: text, ..PersonDetails::default() },
        "email" => PersonDetails { email: text, ..PersonDetails::default() },
        "notes" => PersonDetails { notes: text, ..PersonDetails::default() },
        "custom1" => PersonDetails { custom1: text, ..PersonDetails::default() },
        "custom2" => PersonDetails { custom2: text, ..PersonDetails::default() },
        "role" => PersonDetails {
            role: Some(parse_role("value", &value(r))?),
            ..PersonDetails::default()
        },
        _ => return Err(ParamError::new("field", "not a person field").into()),
    };
    let person = r
        .ops
        .update_person(&r.scope, &uid, details)
        .await
        .map_err(|e| AccessError::from_ops(e, "person"))?;
    Ok(Envelope::ok(objects::person(&r.ops.store, &person).await.map_err(stored)?))
}

async fn remove_person(r: &Request<'_>) -> Answer {
    let conference = r.uid("conference")?;
    let uid = r.uid("person")?;
    let person = r.ops.remove_person(&r.scope, &conference, &uid).await.map_err(|e| match e {
        OpsError::NotFound(Kind::Conference) => AccessError::from_ops(e, "conference"),
        other => AccessError::from_ops(other, "person"),
    })?;
    Ok(Envelope::ok(objects::person(&r.ops.store, &person).await.map_err(stored)?))
}

async fn cancel_conference(r: &Request<'_>) -> Answer {
    let uid = r.uid("conference")?;
    let conference = r.ops.cancel_conference(&r.scope, &uid).await.map_err(|e| match e {
        OpsError::NotFound(_) | OpsError::Ended(_) => {
            AccessError::code(1, "conference does not exist or is invalid (already cancelled)")
        }
        other => AccessError::from_ops(other, "conference"),
    })?;
    conference_answer(r, &conference).await
}

async fn update_conference(r: &Request<'_>) -> Answer {
    let uid = r.uid("conference")?;
    let field = r.params.required("field")?.to_owned();
    if !super::functions::CONFERENCE_FIELDS.contains(&field.as_str()) {
        // The conference is checked first: code 1 before code 2.
        r.ops
            .conference(&r.scope, &uid)
            .await
            .map_err(|_| AccessError::code(1, "conference does not exist or is invalid"))?;
        return Err(AccessError::code(2, format!("field {field:?} is not valid")));
    }
    let value = value(r);
    let flag = match field.as_str() {
        "recording" | "greenroom" | "reminder" | "backgroundMusic" => Some(flag(r)?),
        _ => None,
    };
    let conference = r
        .ops
        .modify_conference(&r.scope, &uid, |c| {
            match (field.as_str(), flag) {
                ("recording", Some(on)) => c.recording = on,
                ("greenroom", Some(on)) => c.greenroom = on,
                ("reminder", Some(on)) => c.reminder = on,
                ("backgroundMusic", Some(on)) => c.background_music = on,
                ("contactEmail", _) => c.contact_email = value,
                ("registerText", _) => c.register_text = value,
                ("notes", _) => c.notes = value,
                ("callerInterface", _) => c.caller_interface = value,
                ("preCall", _) => c.pre_call = value,
                ("postCall", _) => c.post_call = value,
                ("banner", _) => c.banner = value,
                ("regComment", _) => c.reg_comment = value,
                _ => return Err(OpsError::invalid("field", "not a conference field")),
            }
            Ok(())
        })
        .await
        .map_err(|e| match e {
            OpsError::NotFound(_) => {
                AccessError::code(1, "conference does not exist or is invalid")
            }
            other => AccessError::from_ops(other, "value"),
        })?;
    conference_answer(r, &conference).await
}

async fn update_custom_value(r: &Request<'_>) -> Answer {
    let kind: ObjectType = r
        .params
        .required("objectType")?
        .parse()
        .map_err(|_| ParamError::new("objectType", "not an object type"))?;
    let uid = r.uid("objectUID")?;
    let key = r.params.required("customKey")?.to_owned();
    let value = r.params.get("customValue").unwrap_or_default().to_owned();
    r.ops
        .set_custom_value(&r.scope, kind, &uid, &key, &value)
        .await
        .map_err(|e| AccessError::from_ops(e, "objectUID"))?;
    let values = r.ops.store.custom_values(kind, &uid).await.map_err(stored)?;
    let items = values
        .into_iter()
        .map(|(key, value)| serde_json::json!({"key": key, "value": value}))
        .collect();
    Ok(Envelope::list("custom", items))
}
