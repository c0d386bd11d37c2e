//! Live callers: their settings with an audio effect (through the call engine,
//! which alone writes those), their descriptive fields (stored here), dropping
//! and moving them, and who is connected now.

use super::{Kind, Ops, OpsError, OpsResult, Scope};
use crate::live::{CallQuality, CallerField, CallerUpdate, Event};
use crate::model::Caller;
use crate::store::CallerDetails;

/// The longest descriptive text accepted (tag, notes, data, custom1/2, name).
pub const MAX_TEXT_LEN: usize = 4096;

impl Ops {
    /// The callers connected now to the conference's live call session, in
    /// order of arrival.
    pub async fn live_callers(
        &self,
        scope: &Scope,
        conference_uid: &str,
    ) -> OpsResult<Vec<Caller>> {
        let conference = self.conference(scope, conference_uid).await?;
        Ok(self.store.active_callers_of_conference(&conference.uid).await?)
    }

    /// One caller connected now to the conference's live call session.
    pub async fn live_caller(
        &self,
        scope: &Scope,
        conference_uid: &str,
        caller_uid: &str,
    ) -> OpsResult<Caller> {
        self.live_callers(scope, conference_uid)
            .await?
            .into_iter()
            .find(|c| c.uid == caller_uid)
            .ok_or(OpsError::NotFound(Kind::Caller))
    }

    /// The callers of a conference that are talking now.
    pub async fn talking(&self, scope: &Scope, conference_uid: &str) -> OpsResult<Vec<String>> {
        let conference = self.conference(scope, conference_uid).await?;
        Ok(self.live.talking(&conference.uid))
    }

    /// A live caller's media quality; `caller` comes from a call that already
    /// checked the scope.
    pub fn quality_of(&self, caller: &Caller) -> Option<CallQuality> {
        self.live.caller_quality(&caller.uid)
    }

    /// Changes one live caller's mute, deaf, mike, volume, breakout, role, ...
    pub async fn update_caller(
        &self,
        scope: &Scope,
        caller_uid: &str,
        update: CallerUpdate,
    ) -> OpsResult<()> {
        check_update(&update)?;
        if !matches!(scope, Scope::Server) {
            self.caller_owner(scope, caller_uid).await?;
        }
        self.live.update_caller(caller_uid.to_owned(), update).await
    }

    /// Applies `update` to every caller connected now to the conference. Callers
    /// that leave meanwhile are skipped; any other refusal is the answer, after
    /// the others were changed.
    pub async fn update_everyone(
        &self,
        scope: &Scope,
        conference_uid: &str,
        update: CallerUpdate,
    ) -> OpsResult<()> {
        check_update(&update)?;
        let mut first_error = None;
        for caller in self.live_callers(scope, conference_uid).await? {
            match self.live.update_caller(caller.uid.clone(), update.clone()).await {
                Ok(()) | Err(OpsError::NotFound(Kind::Caller)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, caller = %caller.uid, "caller not updated");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Changes a caller's descriptive fields (live or past) and announces it.
    pub async fn set_caller_details(
        &self,
        scope: &Scope,
        caller_uid: &str,
        details: &CallerDetails,
    ) -> OpsResult<Caller> {
        for (field, value) in [
            ("name", &details.name),
            ("tag", &details.tag),
            ("data", &details.data),
            ("notes", &details.notes),
            ("custom1", &details.custom1),
            ("custom2", &details.custom2),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > MAX_TEXT_LEN) {
                return Err(OpsError::invalid(field, format!("longer than {MAX_TEXT_LEN} bytes")));
            }
        }
        let owner = self.caller_owner(scope, caller_uid).await?;
        let caller = self.store.update_caller_details(caller_uid, details).await?;
        self.events.publish(Event::CallerUpdated {
            conference_uid: owner.conference_uid,
            caller: caller.clone(),
            field: CallerField::Other,
        });
        Ok(caller)
    }

    /// Hangs up on a caller: it leaves the room, the lists and the events at
    /// once; the signalling finishes in the background.
    pub async fn drop_caller(&self, scope: &Scope, caller_uid: &str) -> OpsResult<()> {
        if !matches!(scope, Scope::Server) {
            self.caller_owner(scope, caller_uid).await?;
        }
        self.live.drop_caller(caller_uid.to_owned()).await
    }

    /// Moves a live caller into another conference, whose admission rules apply.
    pub async fn move_caller(
        &self,
        scope: &Scope,
        caller_uid: &str,
        conference_uid: &str,
    ) -> OpsResult<()> {
        let target = self.conference(scope, conference_uid).await?;
        if !matches!(scope, Scope::Server) {
            self.caller_owner(scope, caller_uid).await?;
        }
        self.live.move_caller(caller_uid.to_owned(), target.uid).await
    }
}

/// The ranges every interface's caller changes keep.
fn check_update(update: &CallerUpdate) -> OpsResult<()> {
    match update {
        CallerUpdate::VolumeIn(step) | CallerUpdate::VolumeOut(step)
            if !(-4..=4).contains(step) =>
        {
            Err(OpsError::invalid("volume", "from -4 to 4"))
        }
        CallerUpdate::Attention(level) if !(0..=5).contains(level) => {
            Err(OpsError::invalid("attention", "from 0 to 5"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Call, Conference, Customer, Direction, Role};
    use crate::ops::testing::{FakeLive, ops_with};
    use crate::time::Time;

    /// A live call of a conference of `customer`, with one caller.
    async fn live_caller(ops: &Ops, customer: &Customer) -> (Conference, Caller) {
        let conference = Conference::new(customer, "Weekly");
        ops.store.create_conference(&conference).await.expect("conference");
        let call = Call::new(&conference, Time::now());
        ops.store.start_call(&call).await.expect("call");
        let caller = Caller::new(&call.uid, Direction::Inbound, Role::Participant, Time::now());
        ops.store.insert(&caller).await.expect("caller");
        (conference, caller)
    }

    #[tokio::test]
    async fn another_customers_caller_is_unknown_and_untouched() {
        let (ops, live, _dir) = ops_with(FakeLive::default()).await;
        let acme = ops.creating_customer(&Scope::Server).await.expect("customer");
        let (conference, caller) = live_caller(&ops, &acme).await;
        live.add_caller(&caller.uid);
        let other = Customer::new("Other");
        ops.store.create_customer(&other).await.expect("other");
        let them = Scope::Customer(other.uid.clone());
        let not_found = Err(OpsError::NotFound(Kind::Caller));
        assert_eq!(
            ops.update_caller(&them, &caller.uid, CallerUpdate::Mute(true)).await,
            not_found
        );
        assert_eq!(ops.drop_caller(&them, &caller.uid).await, not_found);
        let details = CallerDetails { tag: Some("x".into()), ..CallerDetails::default() };
        assert_eq!(ops.set_caller_details(&them, &caller.uid, &details).await.map(drop), not_found);
        assert_eq!(
            ops.live_callers(&them, &conference.uid).await.map(drop),
            Err(OpsError::NotFound(Kind::Conference))
        );
        assert!(live.calls().is_empty(), "the engine was asked: {:?}", live.calls());

        let mine = Scope::Customer(acme.uid.clone());
        ops.update_caller(&mine, &caller.uid, CallerUpdate::Mute(true)).await.expect("mute");
        assert_eq!(live.calls(), vec![format!("update_caller {} Mute(true)", caller.uid)]);
    }

    #[tokio::test]
    async fn ranges_are_checked_before_the_engine_is_asked() {
        let (ops, live, _dir) = ops_with(FakeLive::default()).await;
        for update in
            [CallerUpdate::VolumeIn(5), CallerUpdate::VolumeOut(-5), CallerUpdate::Attention(6)]
        {
            let result = ops.update_caller(&Scope::Server, "anyone", update).await;
            assert!(matches!(result, Err(OpsError::Invalid { .. })), "{result:?}");
        }
        assert!(live.calls().is_empty());
    }

    #[tokio::test]
    async fn details_are_stored_and_announced() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let acme = ops.creating_customer(&Scope::Server).await.expect("customer");
        let (conference, caller) = live_caller(&ops, &acme).await;
        let mut events = ops.events.subscribe();
        let details = CallerDetails {
            notes: Some("<b>&amp; 'quoted' \"text\"; DROP TABLE callers;--".into()),
            custom2: Some("ünïcode".into()),
            ..CallerDetails::default()
        };
        let stored =
            ops.set_caller_details(&Scope::Server, &caller.uid, &details).await.expect("set");
        assert_eq!(stored.notes, "<b>&amp; 'quoted' \"text\"; DROP TABLE callers;--");
        assert_eq!(stored.custom2, "ünïcode");
        let event = events.recv().await.expect("event");
        match &*event {
            Event::CallerUpdated { conference_uid, caller, field: CallerField::Other } => {
                assert_eq!(conference_uid, &conference.uid);
                assert_eq!(caller.custom2, "ünïcode");
            }
            other => panic!("{other:?}"),
        }
        let long =
            CallerDetails { tag: Some("x".repeat(MAX_TEXT_LEN + 1)), ..CallerDetails::default() };
        assert!(matches!(
            ops.set_caller_details(&Scope::Server, &caller.uid, &long).await,
            Err(OpsError::Invalid { field: "tag", .. })
        ));
    }
}

/// What a Conductor-style client changes about one caller (updateCaller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerChange {
    /// A setting the call engine applies (mike, mute, deaf, volume, ...).
    Live(CallerUpdate),
    /// Descriptive fields.
    Details(CallerDetails),
    /// Text added to the notes on a new line.
    AppendNote(String),
    /// Hang up (the document's `active`, and dropCaller).
    Drop,
    /// A level written by a client; the mixer's next measurement (once a
    /// second while the caller's leg runs) replaces it.
    Energy(i64),
}

/// The highest energy level: the RMS of a full-scale 16-bit signal.
pub const MAX_ENERGY: i64 = 32767;

impl Ops {
    /// Changes callers of one call; a caller of another call, or unknown, is
    /// reported while the others are changed (the document's partial failure).
    pub async fn change_callers(
        &self,
        scope: &Scope,
        call_uid: &str,
        caller_uids: &[String],
        change: &CallerChange,
    ) -> OpsResult<super::calls::Partial> {
        let call = self.call(scope, call_uid).await?;
        let mut partial = super::calls::Partial::default();
        for uid in caller_uids {
            if let Err(e) = self.change_caller(&call, uid, change).await {
                partial.failed.push((uid.clone(), e));
            }
        }
        Ok(partial)
    }

    async fn change_caller(
        &self,
        call: &crate::model::Call,
        uid: &str,
        change: &CallerChange,
    ) -> OpsResult<()> {
        let caller = match self.store.find::<Caller>(uid).await? {
            Some(c) if c.call_uid == call.uid => c,
            _ => return Err(OpsError::NotFound(Kind::Caller)),
        };
        match change {
            CallerChange::Live(update) => {
                check_update(update)?;
                if !caller.active {
                    return Err(OpsError::Ended(Kind::Caller));
                }
                self.live.update_caller(caller.uid, update.clone()).await
            }
            CallerChange::Drop => {
                if !caller.active {
                    return Err(OpsError::Ended(Kind::Caller));
                }
                self.live.drop_caller(caller.uid).await
            }
            CallerChange::Details(details) => {
                self.set_caller_details(&Scope::Server, &caller.uid, details).await.map(drop)
            }
            CallerChange::Energy(level) => {
                if !(0..=MAX_ENERGY).contains(level) {
                    return Err(OpsError::invalid("value", format!("from 0 to {MAX_ENERGY}")));
                }
                self.store.set_caller_energies(&[(caller.uid.clone(), *level)]).await?;
                let caller = self.store.get::<Caller>(&caller.uid).await?;
                self.events.publish(Event::CallerUpdated {
                    conference_uid: call.conference_uid.clone(),
                    caller,
                    field: CallerField::Other,
                });
                Ok(())
            }
            CallerChange::AppendNote(text) => {
                if text.len() > MAX_TEXT_LEN {
                    return Err(OpsError::invalid(
                        "value",
                        format!("longer than {MAX_TEXT_LEN} bytes"),
                    ));
                }
                let caller = self.store.append_caller_note(&caller.uid, text).await?;
                self.events.publish(Event::CallerUpdated {
                    conference_uid: call.conference_uid.clone(),
                    caller,
                    field: CallerField::Other,
                });
                Ok(())
            }
        }
    }
}
