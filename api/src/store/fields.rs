//! Writes of a few columns, split by who owns them. The call engine owns a
//! caller's live columns ([`CALLER_LIVE_COLUMNS`]) and writes only those; the
//! operations layer owns the descriptive ones ([`CallerDetails`]). Neither ever
//! writes a whole row it read earlier, so neither reverts the other's change.

use super::{Result, Store, StoreError, trusted};
use crate::model::Caller;

/// The caller columns the call engine writes, in the order they are bound.
pub const CALLER_LIVE_COLUMNS: &[&str] = &[
    "call_uid",
    "role",
    "breakout_uid",
    "breakout_time",
    "mike",
    "mute",
    "deaf",
    "dtmf_allowed",
    "listen_only",
    "active",
    "attention",
    "attention_time",
    "volume_in",
    "volume_out",
    "end_time",
    "end_reason",
];

/// Descriptive caller fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerDetails {
    pub name: Option<String>,
    pub tag: Option<String>,
    pub data: Option<String>,
    pub notes: Option<String>,
    pub custom1: Option<String>,
    pub custom2: Option<String>,
}

impl CallerDetails {
    fn columns(&self) -> Vec<(&'static str, &str)> {
        [
            ("name", &self.name),
            ("tag", &self.tag),
            ("data", &self.data),
            ("notes", &self.notes),
            ("custom1", &self.custom1),
            ("custom2", &self.custom2),
        ]
        .into_iter()
        .filter_map(|(column, value)| value.as_deref().map(|v| (column, v)))
        .collect()
    }
}

/// A call session's switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFlag {
    /// Applied live by the call engine.
    GreenRoom,
    /// Applied live by the call engine.
    Talking,
    Entryway,
    BackgroundMusic,
    EnableFeedback,
    EnableBroadcast,
}

impl CallFlag {
    fn column(self) -> &'static str {
        match self {
            CallFlag::GreenRoom => "greenroom",
            CallFlag::Talking => "talking",
            CallFlag::Entryway => "entryway",
            CallFlag::BackgroundMusic => "background_music",
            CallFlag::EnableFeedback => "enable_feedback",
            CallFlag::EnableBroadcast => "enable_broadcast",
        }
    }
}

/// A call session's descriptive text fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallText {
    Name,
    Notes,
    Data,
    Custom,
    Link,
    Message,
    Feedback,
}

impl CallText {
    fn column(self) -> &'static str {
        match self {
            CallText::Name => "name",
            CallText::Notes => "notes",
            CallText::Data => "data",
            CallText::Custom => "custom",
            CallText::Link => "link",
            CallText::Message => "message",
            CallText::Feedback => "feedback",
        }
    }
}

impl Store {
    /// Writes a caller's live columns from `caller`, and nothing else.
    pub async fn update_caller_live(&self, caller: &Caller) -> Result<()> {
        let sets: Vec<String> = CALLER_LIVE_COLUMNS.iter().map(|c| format!("{c} = ?")).collect();
        let sql = format!("UPDATE callers SET {} WHERE uid = ?", sets.join(", "));
        let done = sqlx::query(trusted(sql))
            .bind(&caller.call_uid)
            .bind(caller.role)
            .bind(&caller.breakout_uid)
            .bind(caller.breakout_time)
            .bind(caller.mike)
            .bind(caller.mute)
            .bind(caller.deaf)
            .bind(caller.dtmf_allowed)
            .bind(caller.listen_only)
            .bind(caller.active)
            .bind(caller.attention)
            .bind(caller.attention_time)
            .bind(caller.volume_in)
            .bind(caller.volume_out)
            .bind(caller.end_time)
            .bind(caller.end_reason)
            .bind(&caller.uid)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("callers"));
        }
        Ok(())
    }

    /// Writes callers' energy levels in one transaction (the engine batches them).
    pub async fn set_caller_energies(&self, levels: &[(String, i64)]) -> Result<()> {
        if levels.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (uid, energy) in levels {
            sqlx::query("UPDATE callers SET energy = ? WHERE uid = ?")
                .bind(energy)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Changes a caller's descriptive fields; returns the caller as stored after.
    pub async fn update_caller_details(
        &self,
        uid: &str,
        details: &CallerDetails,
    ) -> Result<Caller> {
        let columns = details.columns();
        if !columns.is_empty() {
            let sets: Vec<String> = columns.iter().map(|(c, _)| format!("{c} = ?")).collect();
            let sql = format!("UPDATE callers SET {} WHERE uid = ?", sets.join(", "));
            let mut query = sqlx::query(trusted(sql));
            for (_, value) in &columns {
                query = query.bind(*value);
            }
            let done = query.bind(uid).execute(&self.pool).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("callers"));
            }
        }
        self.get(uid).await
    }

    /// Sets one of a call session's live switches.
    pub async fn set_call_flag(&self, call_uid: &str, flag: CallFlag, on: bool) -> Result<()> {
        let sql = format!("UPDATE calls SET {} = ? WHERE uid = ?", flag.column());
        let done = sqlx::query(trusted(sql)).bind(on).bind(call_uid).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("calls"));
        }
        Ok(())
    }

    /// Sets one of a call session's text fields, or with `append`, adds to it
    /// (on a new line when it has text already).
    pub async fn set_call_text(
        &self,
        call_uid: &str,
        field: CallText,
        value: &str,
        append: bool,
    ) -> Result<()> {
        let column = field.column();
        let sql = if append {
            format!(
                "UPDATE calls SET {column} = CASE WHEN {column} = '' THEN ?1 \
                 ELSE {column} || char(10) || ?1 END WHERE uid = ?2"
            )
        } else {
            format!("UPDATE calls SET {column} = ?1 WHERE uid = ?2")
        };
        let done = sqlx::query(trusted(sql)).bind(value).bind(call_uid).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("calls"));
        }
        Ok(())
    }

    /// Records the end of a call session: CLOSED, with its end time, touching
    /// nothing else.
    pub async fn end_call(&self, call_uid: &str, at: crate::time::Time) -> Result<()> {
        sqlx::query("UPDATE calls SET status = 'CLOSED', actual_end = ? WHERE uid = ?")
            .bind(at)
            .bind(call_uid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds to a caller's notes (on a new line when they have text already).
    pub async fn append_caller_note(&self, uid: &str, text: &str) -> Result<Caller> {
        let done = sqlx::query(
            "UPDATE callers SET notes = CASE WHEN notes = '' THEN ?1 \
             ELSE notes || char(10) || ?1 END WHERE uid = ?2",
        )
        .bind(text)
        .bind(uid)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("callers"));
        }
        self.get(uid).await
    }

    /// Changes a breakout's name, data or attention flag (`None` leaves one as
    /// it is); returns the breakout as stored after.
    pub async fn set_breakout_details(
        &self,
        uid: &str,
        name: Option<&str>,
        data: Option<&str>,
        attention: Option<(bool, Option<crate::time::Time>)>,
    ) -> Result<crate::model::Breakout> {
        let (attention, attention_time) = match attention {
            Some((on, at)) => (Some(on), at),
            None => (None, None),
        };
        let done = sqlx::query(
            "UPDATE breakouts SET name = COALESCE(?1, name), data = COALESCE(?2, data), \
             attention = COALESCE(?3, attention), \
             attention_time = CASE WHEN ?3 IS NULL THEN attention_time ELSE ?4 END \
             WHERE uid = ?5",
        )
        .bind(name)
        .bind(data)
        .bind(attention)
        .bind(attention_time)
        .bind(uid)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("breakouts"));
        }
        self.get(uid).await
    }

    /// Marks a breakout private or open.
    pub async fn set_breakout_private(&self, uid: &str, private: bool) -> Result<()> {
        let done = sqlx::query("UPDATE breakouts SET private = ? WHERE uid = ?")
            .bind(private)
            .bind(uid)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("breakouts"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Call, Conference, Customer, Direction, Role};
    use crate::time::Time;

    async fn store_with_caller() -> (Store, Caller) {
        let store = Store::open("sqlite::memory:").await.expect("store");
        let customer = Customer::new("Acme");
        store.create_customer(&customer).await.expect("customer");
        let conference = Conference::new(&customer, "Weekly");
        store.create_conference(&conference).await.expect("conference");
        let call = Call::new(&conference, Time::now());
        store.start_call(&call).await.expect("call");
        let caller = Caller::new(&call.uid, Direction::Inbound, Role::Participant, Time::now());
        store.insert(&caller).await.expect("caller");
        (store, caller)
    }

    #[tokio::test]
    async fn live_and_descriptive_writes_do_not_revert_each_other() {
        let (store, stale) = store_with_caller().await;
        let details = CallerDetails {
            tag: Some("vip".into()),
            notes: Some("asked about <billing> & \"refunds\"".into()),
            custom1: Some("α".into()),
            ..CallerDetails::default()
        };
        let after = store.update_caller_details(&stale.uid, &details).await.expect("details");
        assert_eq!(after.tag, "vip");
        // The engine's copy is older than the details and writes a mute.
        let mut live = stale.clone();
        live.mute = true;
        store.update_caller_live(&live).await.expect("live");
        let stored: Caller = store.get(&stale.uid).await.expect("caller");
        assert!(stored.mute);
        assert_eq!(stored.tag, "vip");
        assert_eq!(stored.notes, "asked about <billing> & \"refunds\"");
        assert_eq!(stored.custom1, "α");
        store.set_caller_energies(&[(stale.uid.clone(), 1234)]).await.expect("energy");
        let stored: Caller = store.get(&stale.uid).await.expect("caller");
        assert_eq!(stored.energy, 1234);
        assert!(stored.mute);
    }

    #[tokio::test]
    async fn missing_rows_are_not_found() {
        let (store, mut caller) = store_with_caller().await;
        caller.uid = "nobody".into();
        assert!(matches!(
            store.update_caller_live(&caller).await,
            Err(StoreError::NotFound("callers"))
        ));
        let details = CallerDetails { tag: Some("x".into()), ..CallerDetails::default() };
        assert!(matches!(
            store.update_caller_details("nobody", &details).await,
            Err(StoreError::NotFound("callers"))
        ));
        assert!(matches!(
            store.set_call_flag("nobody", CallFlag::GreenRoom, true).await,
            Err(StoreError::NotFound("calls"))
        ));
    }
}
