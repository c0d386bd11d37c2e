//! Call sessions (a live run of a conference) and their breakout groups: the
//! settings the engine applies live, closing a call, creating groups.

use super::callers::MAX_TEXT_LEN;
use super::{Kind, Ops, OpsError, OpsResult, Scope};
use crate::live::{CallUpdate, Event};
use crate::model::{Breakout, Call, CallStatus};

impl Ops {
    /// The stored call session, if the requester may see it.
    pub async fn call(&self, scope: &Scope, call_uid: &str) -> OpsResult<Call> {
        self.call_owner(scope, call_uid).await?;
        Ok(self.store.get::<Call>(call_uid).await?)
    }

    /// A call session that is still running.
    async fn running_call(&self, scope: &Scope, call_uid: &str) -> OpsResult<Call> {
        let call = self.call(scope, call_uid).await?;
        if call.status != CallStatus::Active {
            return Err(OpsError::Ended(Kind::Call));
        }
        Ok(call)
    }

    /// Ends a call session: every caller is hung up.
    pub async fn close_call(&self, scope: &Scope, call_uid: &str) -> OpsResult<()> {
        self.running_call(scope, call_uid).await?;
        self.live.close_call(call_uid.to_owned()).await
    }

    /// Turns a running call's green room or talking events on or off.
    pub async fn update_call(
        &self,
        scope: &Scope,
        call_uid: &str,
        update: CallUpdate,
    ) -> OpsResult<()> {
        self.running_call(scope, call_uid).await?;
        self.live.update_call(call_uid.to_owned(), update).await
    }

    /// Creates a breakout group in a running call and announces it.
    pub async fn create_breakout(
        &self,
        scope: &Scope,
        call_uid: &str,
        name: &str,
    ) -> OpsResult<Breakout> {
        if name.len() > MAX_TEXT_LEN {
            return Err(OpsError::invalid("name", format!("longer than {MAX_TEXT_LEN} bytes")));
        }
        let call = self.running_call(scope, call_uid).await?;
        let breakout = Breakout::new(&call.uid, name);
        self.store.insert(&breakout).await?;
        self.events.publish(Event::BreakoutCreated {
            conference_uid: call.conference_uid,
            breakout: breakout.clone(),
        });
        Ok(breakout)
    }

    /// Makes a breakout private (it does not hear the main room) or open.
    pub async fn set_breakout_private(
        &self,
        scope: &Scope,
        breakout_uid: &str,
        private: bool,
    ) -> OpsResult<()> {
        let owner = self.store.owner_of_breakout(breakout_uid).await?;
        self.visible(scope, owner, Kind::Breakout)?;
        self.live.set_breakout_private(breakout_uid.to_owned(), private).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Conference, Customer};
    use crate::ops::testing::{FakeLive, ops_with};
    use crate::time::Time;

    #[tokio::test]
    async fn breakouts_belong_to_running_calls_of_the_requester() {
        let (ops, live, _dir) = ops_with(FakeLive::default()).await;
        let acme = ops.creating_customer(&Scope::Server).await.expect("customer");
        let conference = Conference::new(&acme, "Weekly");
        ops.store.create_conference(&conference).await.expect("conference");
        let call = Call::new(&conference, Time::now());
        ops.store.start_call(&call).await.expect("call");
        let mut events = ops.events.subscribe();

        let mine = Scope::Customer(acme.uid.clone());
        let group = ops.create_breakout(&mine, &call.uid, "Table 1").await.expect("breakout");
        match &*events.recv().await.expect("event") {
            Event::BreakoutCreated { conference_uid, breakout } => {
                assert_eq!(conference_uid, &conference.uid);
                assert_eq!(breakout, &group);
            }
            other => panic!("{other:?}"),
        }
        ops.set_breakout_private(&mine, &group.uid, true).await.expect("private");
        ops.update_call(&mine, &call.uid, CallUpdate::GreenRoom(true)).await.expect("green");
        assert_eq!(
            live.calls(),
            vec![
                format!("set_breakout_private {} true", group.uid),
                format!("update_call {} GreenRoom(true)", call.uid),
            ]
        );

        let other = Customer::new("Other");
        ops.store.create_customer(&other).await.expect("other");
        let them = Scope::Customer(other.uid);
        assert_eq!(
            ops.create_breakout(&them, &call.uid, "x").await,
            Err(OpsError::NotFound(Kind::Call))
        );
        assert_eq!(
            ops.set_breakout_private(&them, &group.uid, false).await,
            Err(OpsError::NotFound(Kind::Breakout))
        );

        let mut ended = ops.store.get::<Call>(&call.uid).await.expect("call");
        ended.status = CallStatus::Closed;
        ops.store.update(&ended).await.expect("closed");
        assert_eq!(
            ops.create_breakout(&mine, &call.uid, "late").await,
            Err(OpsError::Ended(Kind::Call))
        );
        assert_eq!(ops.close_call(&mine, &call.uid).await, Err(OpsError::Ended(Kind::Call)));
    }
}
