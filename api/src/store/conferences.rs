//! Conferences with their role settings, reservations, tags and persons.

use super::{Result, Store, StoreError, insert_with, trusted};
use crate::Time;
use crate::model::{
    Conference, ConferenceStatus, ConferenceTag, Person, Record, Reservation, ReservationState,
    Role, RoleFlags,
};
use crate::secret;

/// How many random PINs to try before giving up on finding a free one.
const PIN_ATTEMPTS: usize = 32;

impl Store {
    /// Stores a new conference with the default entry settings for every role.
    /// Its dial-in number may not be a customer's DID (the dial plan would be
    /// ambiguous).
    pub async fn create_conference(&self, conference: &Conference) -> Result<()> {
        self.check_dial_in_number(conference).await?;
        let mut tx = self.pool.begin().await?;
        insert_with(&mut *tx, conference).await?;
        for role in Role::ALL {
            let flags = RoleFlags::default_for(*role);
            sqlx::query(
                "INSERT INTO conference_role_settings (conference_uid, role, mike, mute, deaf) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&conference.uid)
            .bind(flags.role)
            .bind(flags.mike)
            .bind(flags.mute)
            .bind(flags.deaf)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes every field of a conference, checking its dial-in number as
    /// [`Store::create_conference`] does.
    pub async fn update_conference(&self, conference: &Conference) -> Result<()> {
        self.check_dial_in_number(conference).await?;
        self.update(conference).await
    }

    async fn check_dial_in_number(&self, conference: &Conference) -> Result<()> {
        if let Some(number) = &conference.dial_in_number
            && self.customer_by_did(number).await?.is_some()
        {
            return Err(StoreError::Conflict("conferences.dial_in_number".into()));
        }
        Ok(())
    }

    /// Moves a conference's status from `from` (any but CANCEL when `None`) to
    /// `to`, touching no other field, so a change of settings made meanwhile is
    /// kept. Returns whether it moved (false: another status, or no such
    /// conference).
    pub async fn set_conference_status(
        &self,
        uid: &str,
        from: Option<ConferenceStatus>,
        to: ConferenceStatus,
        at: Time,
    ) -> Result<bool> {
        let done = match from {
            Some(from) => sqlx::query(
                "UPDATE conferences SET status = ?, updated_at = ? WHERE uid = ? AND status = ?",
            )
            .bind(to)
            .bind(at)
            .bind(uid)
            .bind(from),
            None => sqlx::query(
                "UPDATE conferences SET status = ?, updated_at = ? \
                 WHERE uid = ? AND status != 'CANCEL'",
            )
            .bind(to)
            .bind(at)
            .bind(uid),
        }
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a reservation's state from `from` to `to`, touching nothing else.
    pub async fn set_reservation_state(
        &self,
        uid: &str,
        from: ReservationState,
        to: ReservationState,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE reservations SET state = ? WHERE uid = ? AND state = ?")
            .bind(to)
            .bind(uid)
            .bind(from)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Conferences of one customer, or of all customers, oldest first.
    pub async fn list_conferences(&self, customer_uid: Option<&str>) -> Result<Vec<Conference>> {
        match customer_uid {
            Some(uid) => self.list_where("customer_uid", uid, "created_at, uid").await,
            None => {
                let sql = format!(
                    "SELECT {} FROM conferences ORDER BY created_at, uid",
                    Conference::COLUMNS.join(", ")
                );
                Ok(sqlx::query_as(trusted(sql)).fetch_all(&self.pool).await?)
            }
        }
    }

    /// The conference callers reach by dialling `number`.
    pub async fn conference_by_number(&self, number: &str) -> Result<Option<Conference>> {
        self.find_where("dial_in_number", number).await
    }

    /// The conference whose security token is `token`.
    pub async fn conference_by_token(&self, token: &str) -> Result<Option<Conference>> {
        self.find_where("security_token", token).await
    }

    /// Entry settings of every role at conference level, in role order.
    pub async fn conference_role_settings(&self, conference_uid: &str) -> Result<Vec<RoleFlags>> {
        let mut flags: Vec<RoleFlags> = sqlx::query_as(
            "SELECT role, mike, mute, deaf FROM conference_role_settings WHERE conference_uid = ?",
        )
        .bind(conference_uid)
        .fetch_all(&self.pool)
        .await?;
        flags.sort_by_key(|f| Role::ALL.iter().position(|r| *r == f.role));
        Ok(flags)
    }

    /// Sets one role's entry settings at conference level.
    pub async fn set_conference_role_settings(
        &self,
        conference_uid: &str,
        flags: RoleFlags,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO conference_role_settings (conference_uid, role, mike, mute, deaf) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (conference_uid, role) DO UPDATE SET \
             mike = excluded.mike, mute = excluded.mute, deaf = excluded.deaf",
        )
        .bind(conference_uid)
        .bind(flags.role)
        .bind(flags.mike)
        .bind(flags.mute)
        .bind(flags.deaf)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reservations of a conference, earliest first.
    pub async fn reservations_of(&self, conference_uid: &str) -> Result<Vec<Reservation>> {
        self.list_where("conference_uid", conference_uid, "start_time, uid").await
    }

    /// The reservation with this Aculab reservation token.
    pub async fn reservation_by_token(&self, token: &str) -> Result<Option<Reservation>> {
        self.find_where("token", token).await
    }

    pub async fn add_conference_tag(
        &self,
        conference_uid: &str,
        value: &str,
    ) -> Result<ConferenceTag> {
        Ok(sqlx::query_as(
            "INSERT INTO conference_tags (conference_uid, value) VALUES (?, ?) \
             RETURNING id, conference_uid, value",
        )
        .bind(conference_uid)
        .bind(value)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn conference_tags(&self, conference_uid: &str) -> Result<Vec<ConferenceTag>> {
        Ok(sqlx::query_as(
            "SELECT id, conference_uid, value FROM conference_tags \
             WHERE conference_uid = ? ORDER BY id",
        )
        .bind(conference_uid)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn update_conference_tag(&self, id: i64, value: &str) -> Result<()> {
        let done = sqlx::query("UPDATE conference_tags SET value = ? WHERE id = ?")
            .bind(value)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("conference_tags"));
        }
        Ok(())
    }

    pub async fn delete_conference_tag(&self, id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM conference_tags WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("conference_tags"));
        }
        Ok(())
    }

    /// Persons registered for a conference, oldest first.
    pub async fn persons_of(&self, conference_uid: &str) -> Result<Vec<Person>> {
        self.list_where("conference_uid", conference_uid, "created_at, uid").await
    }

    /// The person of this customer whose PIN is `pin`.
    pub async fn person_by_pin(&self, customer_uid: &str, pin: &str) -> Result<Option<Person>> {
        let sql = format!(
            "SELECT {} FROM persons WHERE customer_uid = ? AND pin = ?",
            Person::COLUMNS.join(", ")
        );
        Ok(sqlx::query_as(trusted(sql))
            .bind(customer_uid)
            .bind(pin)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A random `digits`-digit PIN that no person of the customer holds yet.
    pub async fn unused_person_pin(&self, customer_uid: &str, digits: usize) -> Result<String> {
        for _ in 0..PIN_ATTEMPTS {
            let pin = secret::new_pin(digits);
            if self.person_by_pin(customer_uid, &pin).await?.is_none() {
                return Ok(pin);
            }
        }
        Err(StoreError::Conflict(format!("no free {digits}-digit PIN found")))
    }

    /// Replaces the set of conference tags a person carries. Every tag must belong
    /// to the person's conference.
    pub async fn set_person_tags(&self, person_uid: &str, tag_ids: &[i64]) -> Result<()> {
        let person: Person = self.get(person_uid).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM person_tags WHERE person_uid = ?")
            .bind(person_uid)
            .execute(&mut *tx)
            .await?;
        for id in tag_ids {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT conference_uid FROM conference_tags WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owner.as_deref() != Some(person.conference_uid.as_str()) {
                return Err(StoreError::Invalid(format!("tag {id} is not in this conference")));
            }
            sqlx::query("INSERT OR IGNORE INTO person_tags (person_uid, tag_id) VALUES (?, ?)")
                .bind(person_uid)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn person_tags(&self, person_uid: &str) -> Result<Vec<ConferenceTag>> {
        Ok(sqlx::query_as(
            "SELECT t.id, t.conference_uid, t.value FROM conference_tags t \
             JOIN person_tags p ON p.tag_id = t.id WHERE p.person_uid = ? ORDER BY t.id",
        )
        .bind(person_uid)
        .fetch_all(&self.pool)
        .await?)
    }
}
