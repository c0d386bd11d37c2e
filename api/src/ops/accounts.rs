//! Customers (the accounts that own conferences): authentication by API key,
//! their settings, and the custom key/values every object may carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::callers::MAX_TEXT_LEN;
use super::{Kind, Ops, OpsError, OpsResult, Scope};
use crate::model::{
    Call, CallStatus, Caller, Conference, Customer, CustomerStatus, ObjectType, Person,
};
use crate::secret;

/// The longest custom key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// How long a verified customer and key are trusted without asking the store
/// again. A key rotated from the command line (another process) stops working
/// within this time; a status change takes effect within it.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries kept at most; the cache is emptied when it fills.
const AUTH_CACHE_SIZE: usize = 10_000;

/// Recently verified customers, by UID, with the hash of the key that
/// unlocked them: every API request authenticates, and most repeat.
#[derive(Debug, Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<String, (String, Customer, Instant)>>,
}

impl AuthCache {
    fn get(&self, uid: &str, key_hash: &str, now: Instant) -> Option<Customer> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (hash, customer, at) = entries.get(uid)?;
        let fresh = now.saturating_duration_since(*at) < AUTH_CACHE_TTL;
        let same: bool = hash.as_bytes().ct_eq(key_hash.as_bytes()).into();
        (fresh && same).then(|| customer.clone())
    }

    fn put(&self, uid: &str, key_hash: String, customer: &Customer, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= AUTH_CACHE_SIZE {
            entries.clear();
        }
        entries.insert(uid.to_owned(), (key_hash, customer.clone(), now));
    }

    /// Drops what is remembered of `uid`, after its record changed here.
    fn forget(&self, uid: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(uid);
    }
}

impl Ops {
    /// The customer whose API key `key` is, if its status lets it work. A wrong
    /// key and an unknown customer look the same.
    pub async fn authenticate(&self, customer_uid: &str, key: &str) -> OpsResult<Customer> {
        let key_hash = secret::hash_api_key(key);
        let now = Instant::now();
        let cached = self.auth_cache.get(customer_uid, &key_hash, now);
        let customer = match cached {
            Some(customer) => customer,
            None => {
                let found = self.store.authenticate_customer(customer_uid, key).await?;
                let customer = found.ok_or(OpsError::NotFound(Kind::Customer))?;
                self.auth_cache.put(customer_uid, key_hash, &customer, now);
                customer
            }
        };
        match customer.status {
            CustomerStatus::Active => Ok(customer),
            CustomerStatus::Suspend | CustomerStatus::Hold => {
                Err(OpsError::NotAllowed("the account is suspended"))
            }
            CustomerStatus::Closed => Err(OpsError::NotAllowed("the account is closed")),
        }
    }

    /// The customer whose API key is `key` alone (Bearer authentication), if
    /// its account is active.
    pub async fn authenticate_key(&self, key: &str) -> OpsResult<Customer> {
        let customer =
            self.store.customer_by_api_key(key).await?.ok_or(OpsError::NotFound(Kind::Customer))?;
        match customer.status {
            CustomerStatus::Active => Ok(customer),
            CustomerStatus::Suspend | CustomerStatus::Hold => {
                Err(OpsError::NotAllowed("the account is suspended"))
            }
            CustomerStatus::Closed => Err(OpsError::NotAllowed("the account is closed")),
        }
    }

    /// The requester's own customer record.
    pub async fn customer(&self, scope: &Scope) -> OpsResult<Customer> {
        match scope {
            Scope::Customer(uid) => {
                self.store.find(uid).await?.ok_or(OpsError::NotFound(Kind::Customer))
            }
            Scope::Server => Err(OpsError::NotFound(Kind::Customer)),
        }
    }

    /// Changes the requester's customer settings with `change`, checks and
    /// stores them.
    pub async fn modify_customer(
        &self,
        scope: &Scope,
        change: impl FnOnce(&mut Customer) -> OpsResult<()>,
    ) -> OpsResult<Customer> {
        let before = self.customer(scope).await?;
        let mut customer = before.clone();
        change(&mut customer)?;
        customer.uid = before.uid;
        customer.created_at = before.created_at;
        customer.status = before.status;
        for (field, text) in [
            ("contactEmails", &customer.contact_emails),
            ("affiliateCode", &customer.affiliate_code),
            ("preCall", &customer.pre_call),
            ("postCall", &customer.post_call),
            ("banner", &customer.banner),
            ("callerInterface", &customer.caller_interface),
            ("regComment", &customer.reg_comment),
        ] {
            check_text(field, text)?;
        }
        self.store.update(&customer).await?;
        // The next request must see the new defaults, not the cached record.
        self.auth_cache.forget(&customer.uid);
        Ok(customer)
    }

    /// The most callers one reservation of this customer may be booked for.
    pub fn caller_limit(&self, customer: &Customer) -> i64 {
        customer
            .max_callers
            .unwrap_or_else(|| i64::try_from(self.settings.max_calls).unwrap_or(i64::MAX))
    }

    /// Sets (or, with an empty value, removes) a custom value on an object the
    /// requester owns. Live calls and callers are the Conductor's business and
    /// are refused.
    pub async fn set_custom_value(
        &self,
        scope: &Scope,
        object_type: ObjectType,
        object_uid: &str,
        key: &str,
        value: &str,
    ) -> OpsResult<()> {
        check_custom(key, value)?;
        let kind = kind_of(object_type);
        let owner = match object_type {
            ObjectType::Customer => match scope {
                Scope::Customer(uid) if uid == object_uid => Some(uid.clone()),
                Scope::Server => self.store.find::<Customer>(object_uid).await?.map(|c| c.uid),
                Scope::Customer(_) => None,
            },
            ObjectType::Conference => {
                self.store.find::<Conference>(object_uid).await?.map(|c| c.customer_uid)
            }
            ObjectType::Person => {
                self.store.find::<Person>(object_uid).await?.map(|p| p.customer_uid)
            }
            ObjectType::Call => {
                let call = self.store.find::<Call>(object_uid).await?;
                if call.as_ref().is_some_and(|c| c.status == CallStatus::Active) {
                    self.call_owner(scope, object_uid).await?;
                    return Err(OpsError::NotAllowed(
                        "the call is in progress; the Conductor API steers live calls",
                    ));
                }
                self.store.owner_of_call(object_uid).await?.map(|o| o.customer_uid)
            }
            ObjectType::Caller => {
                let caller = self.store.find::<Caller>(object_uid).await?;
                if caller.as_ref().is_some_and(|c| c.active) {
                    self.caller_owner(scope, object_uid).await?;
                    return Err(OpsError::NotAllowed(
                        "the caller is connected; the Conductor API steers live callers",
                    ));
                }
                self.store.owner_of_caller(object_uid).await?.map(|o| o.customer_uid)
            }
        };
        match owner {
            Some(owner) if scope.sees(&owner) => {}
            _ => return Err(OpsError::NotFound(kind)),
        }
        self.store.set_custom_value(object_type, object_uid, key.trim(), value).await?;
        Ok(())
    }
}

impl Ops {
    /// Sets (or, with an empty value, removes) a custom value of a running
    /// call's own objects: its conference, the call, the conference's persons
    /// and the call's callers (the Conductor's updateCustomValue). Anything
    /// else answers as unknown; the customer is the management API's.
    pub async fn set_call_custom_value(
        &self,
        call: &Call,
        object_type: ObjectType,
        object_uid: &str,
        key: &str,
        value: &str,
    ) -> OpsResult<()> {
        check_custom(key, value)?;
        let belongs = match object_type {
            ObjectType::Customer => {
                return Err(OpsError::NotAllowed(
                    "a customer's custom values are set through the management API",
                ));
            }
            ObjectType::Conference => object_uid == call.conference_uid,
            ObjectType::Call => object_uid == call.uid,
            ObjectType::Person => self
                .store
                .find::<Person>(object_uid)
                .await?
                .is_some_and(|p| p.conference_uid == call.conference_uid),
            ObjectType::Caller => {
                self.store.find::<Caller>(object_uid).await?.is_some_and(|c| c.call_uid == call.uid)
            }
        };
        if !belongs {
            return Err(OpsError::NotFound(kind_of(object_type)));
        }
        self.store.set_custom_value(object_type, object_uid, key.trim(), value).await?;
        // Objects the call's clients watch are announced.
        match object_type {
            ObjectType::Call => self.events.publish(crate::live::Event::CallUpdated {
                conference_uid: call.conference_uid.clone(),
                call_uid: call.uid.clone(),
                field: "custom".into(),
            }),
            ObjectType::Caller => {
                let caller = self.store.get::<Caller>(object_uid).await?;
                self.events.publish(crate::live::Event::CallerUpdated {
                    conference_uid: call.conference_uid.clone(),
                    caller,
                    field: crate::live::CallerField::Other,
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// A custom key and value within bounds.
fn check_custom(key: &str, value: &str) -> OpsResult<()> {
    if key.trim().is_empty() || key.len() > MAX_KEY_LEN {
        return Err(OpsError::invalid("customKey", format!("1 to {MAX_KEY_LEN} bytes")));
    }
    check_text("customValue", value)
}

fn kind_of(object_type: ObjectType) -> Kind {
    match object_type {
        ObjectType::Customer => Kind::Customer,
        ObjectType::Conference => Kind::Conference,
        ObjectType::Call => Kind::Call,
        ObjectType::Caller => Kind::Caller,
        ObjectType::Person => Kind::Person,
    }
}

/// A descriptive text field within bounds.
pub fn check_text(field: &'static str, text: &str) -> OpsResult<()> {
    if text.len() > MAX_TEXT_LEN {
        return Err(OpsError::invalid(field, format!("longer than {MAX_TEXT_LEN} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, Role};
    use crate::ops::testing::{FakeLive, ops_with};
    use crate::time::Time;

    #[tokio::test]
    async fn custom_values_belong_to_the_owner_and_not_to_live_calls() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let acme = ops.creating_customer(&Scope::Server).await.expect("customer");
        let mine = Scope::Customer(acme.uid.clone());
        let other = Customer::new("Other");
        ops.store.create_customer(&other).await.expect("other");
        let them = Scope::Customer(other.uid.clone());
        let conf = Conference::new(&acme, "Weekly");
        ops.store.create_conference(&conf).await.expect("conference");

        ops.set_custom_value(
            &mine,
            ObjectType::Conference,
            &conf.uid,
            "RESELLER_INFO_URL",
            "https://x/?a=1&b=<2>",
        )
        .await
        .expect("set");
        let values =
            ops.store.custom_values(ObjectType::Conference, &conf.uid).await.expect("values");
        assert_eq!(
            values,
            vec![("RESELLER_INFO_URL".to_owned(), "https://x/?a=1&b=<2>".to_owned())]
        );
        assert_eq!(
            ops.set_custom_value(&them, ObjectType::Conference, &conf.uid, "k", "v").await,
            Err(OpsError::NotFound(Kind::Conference))
        );
        assert_eq!(
            ops.set_custom_value(&mine, ObjectType::Customer, &other.uid, "k", "v").await,
            Err(OpsError::NotFound(Kind::Customer))
        );
        ops.set_custom_value(&mine, ObjectType::Conference, &conf.uid, "RESELLER_INFO_URL", "")
            .await
            .expect("an empty value removes");
        assert!(
            ops.store.custom_values(ObjectType::Conference, &conf.uid).await.expect("v").is_empty()
        );

        let call = Call::new(&conf, Time::now());
        ops.store.start_call(&call).await.expect("call");
        let caller = Caller::new(&call.uid, Direction::Inbound, Role::Participant, Time::now());
        ops.store.insert(&caller).await.expect("caller");
        for (kind, uid) in [(ObjectType::Call, &call.uid), (ObjectType::Caller, &caller.uid)] {
            let result = ops.set_custom_value(&mine, kind, uid, "k", "v").await;
            assert!(matches!(result, Err(OpsError::NotAllowed(_))), "{kind:?}: {result:?}");
            let result = ops.set_custom_value(&them, kind, uid, "k", "v").await;
            assert!(matches!(result, Err(OpsError::NotFound(_))), "another customer's {kind:?}");
        }
        assert!(matches!(
            ops.set_custom_value(&mine, ObjectType::Conference, &conf.uid, " ", "v").await,
            Err(OpsError::Invalid { field: "customKey", .. })
        ));
    }

    #[tokio::test]
    async fn a_suspended_customer_cannot_authenticate() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let customer = Customer::new("Acme");
        let key = ops.store.create_customer(&customer).await.expect("customer");
        assert_eq!(
            ops.authenticate(&customer.uid, &key).await.map(|c| c.uid),
            Ok(customer.uid.clone())
        );
        assert_eq!(
            ops.authenticate(&customer.uid, "wrong").await.map(drop),
            Err(OpsError::NotFound(Kind::Customer))
        );
        // A suspended customer is refused (one verified moments ago is trusted
        // for AUTH_CACHE_TTL; this one was not).
        let mut suspended = Customer::new("Suspended");
        suspended.status = CustomerStatus::Suspend;
        let other_key = ops.store.create_customer(&suspended).await.expect("customer");
        assert!(matches!(
            ops.authenticate(&suspended.uid, &other_key).await,
            Err(OpsError::NotAllowed(_))
        ));
        // A rotated key works at once.
        let fresh = ops.store.rotate_api_key(&customer.uid).await.expect("rotate");
        assert!(ops.authenticate(&customer.uid, &fresh).await.is_ok());
    }

    #[tokio::test]
    async fn a_settings_change_is_seen_by_the_next_request() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let customer = Customer::new("Acme");
        let key = ops.store.create_customer(&customer).await.expect("customer");
        let before = ops.authenticate(&customer.uid, &key).await.expect("auth");
        assert!(!before.greenroom);
        let scope = Scope::Customer(customer.uid.clone());
        ops.modify_customer(&scope, |c| {
            c.greenroom = true;
            Ok(())
        })
        .await
        .expect("modify");
        let after = ops.authenticate(&customer.uid, &key).await.expect("auth");
        assert!(after.greenroom, "not the record cached before the change");
    }
}
