//! Conferences: create, change, delete and read, with the rules every
//! interface shares: ownership, the dial-in number's uniqueness, sane settings,
//! and live calls ended before their conference goes.

use std::collections::HashMap;

use super::{Kind, Ops, OpsError, OpsResult, Scope};
use crate::live::Event;
use crate::model::{CallStatus, Conference, Customer};
use crate::store::StoreError;
use crate::time::Time;

/// The longest dial-in number or PIN accepted.
pub const MAX_NUMBER_LEN: usize = 32;
/// The longest dial-in number: an Aculab conference name (fewer than 48).
pub const MAX_DIAL_IN_LEN: usize = 47;

impl Ops {
    /// The customer that owns what `scope` creates: the customer itself, or for
    /// the server's operator the control customer.
    pub async fn creating_customer(&self, scope: &Scope) -> OpsResult<Customer> {
        let found = match scope {
            Scope::Customer(uid) => self.store.find::<Customer>(uid).await?,
            Scope::Server => match &self.settings.control_customer {
                Some(uid) => self.store.find::<Customer>(uid).await?,
                None => match self.store.default_customer().await {
                    Ok(customer) => Some(customer),
                    Err(StoreError::NotFound(_)) => None,
                    Err(e) => return Err(e.into()),
                },
            },
        };
        found.ok_or(OpsError::NotFound(Kind::Customer))
    }

    /// A new, unsaved conference owned by the requester's customer, with that
    /// customer's defaults; fill it in and give it to [`Ops::create_conference`].
    pub async fn new_conference(&self, scope: &Scope, name: &str) -> OpsResult<Conference> {
        let customer = self.creating_customer(scope).await?;
        Ok(Conference::new(&customer, name))
    }

    /// Stores a new conference and announces it.
    pub async fn create_conference(
        &self,
        scope: &Scope,
        conference: Conference,
    ) -> OpsResult<Conference> {
        if !scope.sees(&conference.customer_uid) {
            return Err(OpsError::NotFound(Kind::Customer));
        }
        validate(&conference)?;
        self.check_conference_sounds(&conference).await?;
        self.store.create_conference(&conference).await?;
        tracing::info!(conference = %conference.uid, "conference created");
        self.events.publish(Event::ConferenceCreated { conference: conference.clone() });
        Ok(conference)
    }

    /// Changes a conference's settings with `change`, checks the result, stores
    /// it, has live calls apply it and announces it.
    pub async fn modify_conference(
        &self,
        scope: &Scope,
        uid: &str,
        change: impl FnOnce(&mut Conference) -> OpsResult<()>,
    ) -> OpsResult<Conference> {
        let before = self.conference(scope, uid).await?;
        let mut conference = before.clone();
        change(&mut conference)?;
        // What identifies a conference is not a setting.
        conference.uid = before.uid;
        conference.customer_uid = before.customer_uid;
        conference.created_at = before.created_at;
        conference.security_token = before.security_token;
        validate(&conference)?;
        if (conference.enter_sound, conference.music_on_hold_sound)
            != (before.enter_sound, before.music_on_hold_sound)
        {
            self.check_conference_sounds(&conference).await?;
        }
        conference.updated_at = Time::now();
        self.store.update_conference(&conference).await?;
        match self.live.conference_changed(conference.uid.clone()).await {
            // Not live: the stored settings apply when it next starts.
            Ok(()) | Err(OpsError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, conference = %conference.uid, "change not applied live");
            }
        }
        self.events.publish(Event::ConferenceModified { conference: conference.clone() });
        Ok(conference)
    }

    /// Ends the conference's live calls (its callers are hung up), then deletes
    /// it with everything it owns (its recordings' files too), and announces it.
    pub async fn delete_conference(&self, scope: &Scope, uid: &str) -> OpsResult<Conference> {
        let conference = self.conference(scope, uid).await?;
        for call in self.store.calls_of(&conference.uid).await? {
            if call.status != CallStatus::Active {
                continue;
            }
            match self.live.close_call(call.uid.clone()).await {
                Ok(()) | Err(OpsError::NotFound(_)) => {}
                Err(e) => tracing::warn!(error = %e, call = %call.uid, "call not closed"),
            }
        }
        let recordings = self.store.recordings_of(&conference.uid).await?;
        self.store.delete::<Conference>(&conference.uid).await?;
        let mut freed = 0u64;
        for recording in &recordings {
            let dir = &self.settings.recordings_dir;
            freed += super::catalog::remove_recording_file(dir, recording).await;
        }
        self.live.recording_bytes_freed(&conference.customer_uid, freed);
        tracing::info!(conference = %conference.uid, "conference deleted");
        self.events.publish(Event::ConferenceDeleted { conference: conference.clone() });
        Ok(conference)
    }

    /// The conferences the requester sees, oldest first.
    pub async fn conferences(&self, scope: &Scope) -> OpsResult<Vec<Conference>> {
        let customer = match scope {
            Scope::Server => None,
            Scope::Customer(uid) => Some(uid.as_str()),
        };
        Ok(self.store.list_conferences(customer).await?)
    }

    /// Callers connected now, by conference UID, for the conferences the
    /// requester sees (absent: nobody).
    pub async fn member_counts(&self, scope: &Scope) -> OpsResult<HashMap<String, i64>> {
        let counts = self.store.active_member_counts().await?;
        if let Scope::Server = scope {
            return Ok(counts.into_iter().collect());
        }
        let mine: std::collections::HashSet<String> =
            self.conferences(scope).await?.into_iter().map(|c| c.uid).collect();
        Ok(counts.into_iter().filter(|(uid, _)| mine.contains(uid)).collect())
    }
}

/// The rules a stored conference keeps, whoever wrote it.
pub fn validate(c: &Conference) -> OpsResult<()> {
    if let Some(number) = &c.dial_in_number {
        let ok = !number.is_empty()
            && number.len() <= MAX_DIAL_IN_LEN
            && number.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '+' | '_' | '-'));
        if !ok {
            return Err(OpsError::invalid(
                "dial-in number",
                "1 to 47 letters, digits, '+', '-' or '_'",
            ));
        }
    }
    for (field, pin) in [("pin", &c.participant_pin), ("moderator pin", &c.moderator_pin)] {
        if let Some(pin) = pin
            && (pin.len() > MAX_NUMBER_LEN || !pin.chars().all(|ch| ch.is_ascii_digit()))
        {
            return Err(OpsError::invalid(field, "digits only, at most 32"));
        }
    }
    let has = |pin: &Option<String>| pin.as_deref().is_some_and(|p| !p.is_empty());
    if has(&c.moderator_pin) && !has(&c.participant_pin) {
        return Err(OpsError::invalid("moderator pin", "needs a participant pin"));
    }
    if has(&c.moderator_pin) && c.moderator_pin == c.participant_pin {
        return Err(OpsError::invalid("moderator pin", "must differ from the participant pin"));
    }
    if c.max_members.is_some_and(|max| max < 1) {
        return Err(OpsError::invalid("max members", "at least 1"));
    }
    if c.default_max_members.is_some_and(|max| max < 1) {
        return Err(OpsError::invalid("default max members", "at least 1"));
    }
    if let (Some(start), Some(end)) = (c.scheduled_start, c.scheduled_end)
        && end <= start
    {
        return Err(OpsError::invalid("end", "must come after the start"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{FakeLive, ops_with};

    #[tokio::test]
    async fn conferences_are_created_for_the_requester_and_hidden_from_others() {
        let (ops, live, _dir) = ops_with(FakeLive::default()).await;
        let acme = ops.creating_customer(&Scope::Server).await.expect("default customer");
        let other = Customer::new("Other");
        ops.store.create_customer(&other).await.expect("customer");
        let mut conf = ops.new_conference(&Scope::Server, "Weekly").await.expect("new");
        conf.dial_in_number = Some("4001".into());
        let conf = ops.create_conference(&Scope::Server, conf).await.expect("created");
        assert_eq!(conf.customer_uid, acme.uid);

        let them = Scope::Customer(other.uid.clone());
        assert_eq!(
            ops.conference(&them, &conf.uid).await,
            Err(OpsError::NotFound(Kind::Conference))
        );
        assert_eq!(
            ops.modify_conference(&them, &conf.uid, |c| {
                c.locked = true;
                Ok(())
            })
            .await,
            Err(OpsError::NotFound(Kind::Conference))
        );
        assert_eq!(
            ops.delete_conference(&them, &conf.uid).await.map(|_| ()),
            Err(OpsError::NotFound(Kind::Conference))
        );
        assert!(ops.conferences(&them).await.expect("list").is_empty());
        let mine = Scope::Customer(acme.uid.clone());
        assert_eq!(ops.conferences(&mine).await.expect("list").len(), 1);
        // Creating a conference for someone else is refused.
        let mut foreign = Conference::new(&acme, "x");
        foreign.dial_in_number = Some("4002".into());
        assert!(ops.create_conference(&them, foreign).await.is_err());
        assert!(live.calls().is_empty(), "nothing live was asked: {:?}", live.calls());
    }

    #[tokio::test]
    async fn numbers_are_unique_and_settings_are_checked() {
        let (ops, live, _dir) = ops_with(FakeLive::default()).await;
        let mut a = ops.new_conference(&Scope::Server, "A").await.expect("new");
        a.dial_in_number = Some("4001".into());
        let a = ops.create_conference(&Scope::Server, a).await.expect("a");
        let mut b = ops.new_conference(&Scope::Server, "B").await.expect("new");
        b.dial_in_number = Some("4001".into());
        assert_eq!(
            ops.create_conference(&Scope::Server, b).await,
            Err(OpsError::Conflict(crate::ops::Conflict::NumberInUse))
        );
        type Change = fn(&mut Conference);
        let bad: [(&str, Change); 5] = [
            ("max members", |c| c.max_members = Some(0)),
            ("pin", |c| c.participant_pin = Some("12a".into())),
            ("moderator pin", |c| c.moderator_pin = Some("99".into())),
            ("dial-in number", |c| c.dial_in_number = Some("40 01".into())),
            ("end", |c| {
                c.scheduled_start = Some("2026-01-01T10:00:00Z".parse().expect("t"));
                c.scheduled_end = Some("2026-01-01T09:00:00Z".parse().expect("t"));
            }),
        ];
        for (field, change) in bad {
            let result = ops
                .modify_conference(&Scope::Server, &a.uid, |c| {
                    change(c);
                    Ok(())
                })
                .await;
            assert!(
                matches!(&result, Err(OpsError::Invalid { field: f, .. }) if *f == field),
                "{field}: {result:?}"
            );
        }
        let locked = ops
            .modify_conference(&Scope::Server, &a.uid, |c| {
                c.locked = true;
                c.uid = "hijack".into();
                Ok(())
            })
            .await
            .expect("locked");
        assert_eq!(locked.uid, a.uid, "the UID is not a setting");
        assert!(ops.store.get::<Conference>(&a.uid).await.expect("stored").locked);
        assert_eq!(live.calls(), vec![format!("conference_changed {}", a.uid)]);
    }
}
