//! Persons registered for a conference. Each gets a fresh PIN, unique among
//! its customer's persons: a caller dialling the customer's DID keys it, and
//! the PIN picks the person, its conference and its role.

use super::accounts::check_text;
use super::{Conflict, Kind, Ops, OpsError, OpsResult, Scope};
use crate::model::{Person, Role};
use crate::store::StoreError;

/// Digits in a person's PIN.
pub const PIN_DIGITS: usize = 6;
/// Tries when two registrations pick the same free PIN at once.
const PIN_RACE_RETRIES: usize = 5;

/// What a person is registered with; `None` leaves a field empty (or, on
/// update, as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonDetails {
    pub name: Option<String>,
    pub email: Option<String>,
    pub notes: Option<String>,
    pub custom1: Option<String>,
    pub custom2: Option<String>,
    pub role: Option<Role>,
}

impl PersonDetails {
    fn apply(self, person: &mut Person) -> OpsResult<()> {
        for (field, value, slot) in [
            ("name", self.name, &mut person.name),
            ("email", self.email, &mut person.email),
            ("notes", self.notes, &mut person.notes),
            ("custom1", self.custom1, &mut person.custom1),
            ("custom2", self.custom2, &mut person.custom2),
        ] {
            if let Some(value) = value {
                check_text(field, &value)?;
                *slot = value;
            }
        }
        if let Some(role) = self.role {
            person.role = role;
        }
        Ok(())
    }
}

impl Ops {
    /// The person, if the requester owns it.
    pub async fn person(&self, scope: &Scope, uid: &str) -> OpsResult<Person> {
        match self.store.find::<Person>(uid).await? {
            Some(person) if scope.sees(&person.customer_uid) => Ok(person),
            _ => Err(OpsError::NotFound(Kind::Person)),
        }
    }

    /// Registers a person for a conference with a fresh PIN.
    pub async fn add_person(
        &self,
        scope: &Scope,
        conference_uid: &str,
        details: PersonDetails,
    ) -> OpsResult<Person> {
        let conference = self.conference(scope, conference_uid).await?;
        let role = details.role.ok_or_else(|| OpsError::invalid("role", "required"))?;
        for _ in 0..PIN_RACE_RETRIES {
            let pin = self.store.unused_person_pin(&conference.customer_uid, PIN_DIGITS).await?;
            let mut person = Person::new(&conference, pin, role);
            details.clone().apply(&mut person)?;
            match self.store.insert(&person).await {
                Ok(()) => return Ok(person),
                // Another registration took the same PIN a moment ago.
                Err(StoreError::Conflict(columns)) if columns.contains("pin") => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(OpsError::Conflict(Conflict::PinInUse))
    }

    /// Changes a person's name, email, notes, custom fields or role.
    pub async fn update_person(
        &self,
        scope: &Scope,
        uid: &str,
        details: PersonDetails,
    ) -> OpsResult<Person> {
        let mut person = self.person(scope, uid).await?;
        details.apply(&mut person)?;
        self.store.update(&person).await?;
        Ok(person)
    }

    /// Removes a person from its conference. Callers it already made keep their
    /// records (without the link).
    pub async fn remove_person(
        &self,
        scope: &Scope,
        conference_uid: &str,
        uid: &str,
    ) -> OpsResult<Person> {
        let conference = self.conference(scope, conference_uid).await?;
        let person = self.person(scope, uid).await?;
        if person.conference_uid != conference.uid {
            return Err(OpsError::NotFound(Kind::Person));
        }
        self.store.delete::<Person>(&person.uid).await?;
        Ok(person)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Customer;
    use crate::ops::testing::{FakeLive, ops_with};

    #[tokio::test]
    async fn pins_are_six_digits_and_unique_across_the_customer() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let a = ops.new_conference(&Scope::Server, "A").await.expect("new");
        let a = ops.create_conference(&Scope::Server, a).await.expect("a");
        let b = ops.new_conference(&Scope::Server, "B").await.expect("new");
        let b = ops.create_conference(&Scope::Server, b).await.expect("b");
        let mut pins = std::collections::HashSet::new();
        for i in 0..200 {
            let conf = if i % 2 == 0 { &a } else { &b };
            let details = PersonDetails {
                role: Some(Role::Participant),
                name: Some(format!("P{i}")),
                ..Default::default()
            };
            let person = ops.add_person(&Scope::Server, &conf.uid, details).await.expect("added");
            assert_eq!(person.pin.len(), 6);
            assert!(person.pin.chars().all(|c| c.is_ascii_digit()));
            assert!(pins.insert(person.pin), "a PIN was given twice");
        }
    }

    #[tokio::test]
    async fn persons_are_the_owners_and_belong_to_their_conference() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let conf = ops.new_conference(&Scope::Server, "A").await.expect("new");
        let conf = ops.create_conference(&Scope::Server, conf).await.expect("a");
        let other_conf = ops.new_conference(&Scope::Server, "B").await.expect("new");
        let other_conf = ops.create_conference(&Scope::Server, other_conf).await.expect("b");
        let details = PersonDetails {
            role: Some(Role::Presenter),
            email: Some("a@example.com".into()),
            ..Default::default()
        };
        let person = ops.add_person(&Scope::Server, &conf.uid, details).await.expect("added");
        assert!(matches!(
            ops.add_person(&Scope::Server, &conf.uid, PersonDetails::default()).await,
            Err(OpsError::Invalid { field: "role", .. })
        ));
        let stranger = Customer::new("Other");
        ops.store.create_customer(&stranger).await.expect("other");
        let them = Scope::Customer(stranger.uid);
        let change = PersonDetails { notes: Some("x".into()), ..Default::default() };
        assert_eq!(
            ops.update_person(&them, &person.uid, change.clone()).await.map(drop),
            Err(OpsError::NotFound(Kind::Person))
        );
        let updated =
            ops.update_person(&Scope::Server, &person.uid, change).await.expect("updated");
        assert_eq!((updated.notes.as_str(), updated.email.as_str()), ("x", "a@example.com"));
        assert_eq!(
            ops.remove_person(&Scope::Server, &other_conf.uid, &person.uid).await.map(drop),
            Err(OpsError::NotFound(Kind::Person)),
            "not that conference's person"
        );
        ops.remove_person(&Scope::Server, &conf.uid, &person.uid).await.expect("removed");
        assert_eq!(
            ops.person(&Scope::Server, &person.uid).await.map(drop),
            Err(OpsError::NotFound(Kind::Person))
        );
    }
}
