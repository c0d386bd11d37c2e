//! The Conductor's information requests: a breakout or caller of the call, the
//! conference, the call (with or without its callers and breakouts), the
//! customer. Answered in the `/_access` envelope, with the same objects.

use super::Request;
use crate::access::AccessError;
use crate::access::objects;
use crate::http::envelope::Envelope;
use crate::model::{Breakout, Caller, Customer};
use crate::ops::OpsError;

type Answer = Result<Envelope, AccessError>;

fn stored(e: crate::store::StoreError) -> AccessError {
    AccessError::from_ops(e.into(), "")
}

pub(super) async fn run(name: &str, r: &Request<'_>) -> Answer {
    let store = &r.ops.store;
    match name {
        "getBreakout" => {
            let call = r.call()?;
            let uid = r.params.required("UID")?;
            let breakout = store.find::<Breakout>(uid).await.map_err(stored)?;
            let breakout = breakout
                .filter(|b| b.call_uid == call.uid)
                .ok_or_else(|| AccessError::code(-2, "UID: no such breakout in this call"))?;
            Ok(Envelope::ok(objects::breakout(store, &breakout, r.tz).await.map_err(stored)?))
        }
        "getCaller" => {
            let call = r.call()?;
            let uid = r.params.required("UID")?;
            let caller = store.find::<Caller>(uid).await.map_err(stored)?;
            let caller = caller
                .filter(|c| c.call_uid == call.uid)
                .ok_or_else(|| AccessError::code(-2, "UID: no such caller in this call"))?;
            Ok(Envelope::ok(objects::caller(store, &caller, r.tz).await.map_err(stored)?))
        }
        "getConference" => {
            let (conference, view) = r
                .ops
                .conference_with_view(&r.scope, &r.conference.uid)
                .await
                .map_err(|e| AccessError::from_ops(e, "conferenceUID"))?;
            Ok(Envelope::ok(objects::conference_of(&conference, view, r.tz)))
        }
        "getConferenceData" => {
            let value =
                objects::conference_data(store, &r.conference, r.tz).await.map_err(stored)?;
            Ok(Envelope::ok(value))
        }
        "getCall" | "getCallData" => {
            let call = store.get(&r.call()?.uid).await.map_err(stored)?;
            let value = if name == "getCall" {
                objects::call(store, &call, r.ops.settings.events_port, r.tz).await
            } else {
                objects::call_data(store, &call, r.ops.settings.events_port, r.tz).await
            };
            Ok(Envelope::ok(value.map_err(stored)?))
        }
        "getCustomer" => {
            let customer: Customer =
                store.find(&r.conference.customer_uid).await.map_err(stored)?.ok_or_else(|| {
                    AccessError::from_ops(
                        OpsError::NotFound(crate::ops::Kind::Customer),
                        "conferenceUID",
                    )
                })?;
            Ok(Envelope::ok(objects::customer(store, &customer).await.map_err(stored)?))
        }
        other => Err(AccessError::code(-4, format!("{other} has no handler"))),
    }
}
