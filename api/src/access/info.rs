//! The information requests: the customer, the conference lists, one
//! conference (with or without its child objects), a reservation, an ended
//! call (with or without its callers).

use super::objects;
use super::{AccessError, Request};
use crate::http::envelope::Envelope;
use crate::model::{Call, CallStatus, Conference};
use crate::ops::OpsError;
use crate::rules::schedule::Lists;

type Answer = Result<Envelope, AccessError>;

pub(super) async fn run(name: &str, r: &Request<'_>) -> Answer {
    match name {
        "getCustomer" => {
            let customer = r.ops.customer(&r.scope).await.map_err(|e| store(e, "customer"))?;
            let value = objects::customer(&r.ops.store, &customer).await.map_err(stored)?;
            Ok(Envelope::ok(value))
        }
        "getActiveConference" => list(r, |l| l.active).await,
        "getUpcomingConference" => list(r, |l| l.upcoming).await,
        "getPossibleConference" => list(r, |l| l.possible).await,
        "getExpiredConference" => list(r, |l| l.expired).await,
        "getCanceledConference" => list(r, |l| l.canceled).await,
        "getConference" => {
            // The busiest read: the conference and its lists in one query.
            let uid = r.uid("conferenceUID")?;
            let (conference, view) = r
                .ops
                .conference_with_view(&r.scope, &uid)
                .await
                .map_err(|e| store(e, "conferenceUID"))?;
            Ok(Envelope::ok(objects::conference_of(&conference, view, r.tz)))
        }
        "getConferenceData" => {
            let uid = r.uid("conferenceUID")?;
            let conference =
                r.ops.conference(&r.scope, &uid).await.map_err(|e| store(e, "conferenceUID"))?;
            let value = objects::conference_data(&r.ops.store, &conference, r.tz).await;
            Ok(Envelope::ok(value.map_err(stored)?))
        }
        "getConferenceReservation" => {
            let uid = r.uid("reservationUID")?;
            let (reservation, _) =
                r.ops.reservation(&r.scope, &uid).await.map_err(|e| store(e, "reservationUID"))?;
            Ok(Envelope::ok(objects::reservation(&reservation, r.tz)))
        }
        "getCall" | "getCallData" => {
            let conference_uid = r.uid("conferenceUID")?;
            let call_uid = r.uid("callUID")?;
            let conference: Conference = r
                .ops
                .conference(&r.scope, &conference_uid)
                .await
                .map_err(|e| store(e, "conferenceUID"))?;
            let call: Call =
                r.ops.call(&r.scope, &call_uid).await.map_err(|e| store(e, "callUID"))?;
            if call.conference_uid != conference.uid {
                return Err(AccessError::code(-2, "callUID: no such call in this conference"));
            }
            if call.status == CallStatus::Active {
                return Err(AccessError::general(
                    "the call is in progress: the Conductor API gives live calls",
                ));
            }
            let value = if name == "getCall" {
                objects::call(&r.ops.store, &call, r.ops.settings.events_port, r.tz).await
            } else {
                objects::call_data(&r.ops.store, &call, r.ops.settings.events_port, r.tz).await
            };
            Ok(Envelope::ok(value.map_err(stored)?))
        }
        other => Err(AccessError::code(-4, format!("{other} has no handler"))),
    }
}

/// The conferences on one of the lists.
async fn list(r: &Request<'_>, on: fn(&Lists) -> bool) -> Answer {
    let all = r.ops.conference_lists(&r.scope).await.map_err(|e| store(e, "customer"))?;
    let mut items = Vec::new();
    for (conference, _) in all.iter().filter(|(_, l)| on(l)) {
        items.push(objects::conference(&r.ops.store, conference, r.tz).await.map_err(stored)?);
    }
    Ok(Envelope::list("conference", items))
}

fn store(e: OpsError, param: &str) -> AccessError {
    AccessError::from_ops(e, param)
}

/// A store failure while building an answer.
pub(super) fn stored(e: crate::store::StoreError) -> AccessError {
    AccessError::from_ops(e.into(), "")
}
