//! Call sessions with their callers, breakouts, call tags and recordings: what a
//! live call writes and what history queries read after it.

use super::{Result, Store, StoreError, insert_with};
use crate::model::{Breakout, Call, CallTag, Caller, Record, Recording, Role, RoleFlags};
use crate::time::Time;

impl Store {
    /// Stores a new call session whose role settings start as a copy of its
    /// conference's (MaestroConference: "loads from conference when call is created").
    pub async fn start_call(&self, call: &Call) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_with(&mut *tx, call).await?;
        sqlx::query(
            "INSERT INTO call_role_settings (call_uid, role, mike, mute, deaf) \
             SELECT ?, role, mike, mute, deaf FROM conference_role_settings \
             WHERE conference_uid = ?",
        )
        .bind(&call.uid)
        .bind(&call.conference_uid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Entry settings of every role for this call session, in role order.
    pub async fn call_role_settings(&self, call_uid: &str) -> Result<Vec<RoleFlags>> {
        let mut flags: Vec<RoleFlags> = sqlx::query_as(
            "SELECT role, mike, mute, deaf FROM call_role_settings WHERE call_uid = ?",
        )
        .bind(call_uid)
        .fetch_all(&self.pool)
        .await?;
        flags.sort_by_key(|f| Role::ALL.iter().position(|r| *r == f.role));
        Ok(flags)
    }

    /// Sets one role's entry settings for this call only.
    pub async fn set_call_role_settings(&self, call_uid: &str, flags: RoleFlags) -> Result<()> {
        sqlx::query(
            "INSERT INTO call_role_settings (call_uid, role, mike, mute, deaf) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (call_uid, role) DO UPDATE SET \
             mike = excluded.mike, mute = excluded.mute, deaf = excluded.deaf",
        )
        .bind(call_uid)
        .bind(flags.role)
        .bind(flags.mike)
        .bind(flags.mute)
        .bind(flags.deaf)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Call sessions of a conference, oldest first.
    pub async fn calls_of(&self, conference_uid: &str) -> Result<Vec<Call>> {
        self.list_where("conference_uid", conference_uid, "actual_start, uid").await
    }

    /// Callers of a call session, in order of arrival.
    pub async fn callers_of(&self, call_uid: &str) -> Result<Vec<Caller>> {
        self.list_where("call_uid", call_uid, "start_time, uid").await
    }

    /// Breakouts of a call session, oldest first.
    pub async fn breakouts_of(&self, call_uid: &str) -> Result<Vec<Breakout>> {
        self.list_where("call_uid", call_uid, "created_at, uid").await
    }

    /// Recordings of a conference, oldest first.
    pub async fn recordings_of(&self, conference_uid: &str) -> Result<Vec<Recording>> {
        self.list_where("conference_uid", conference_uid, "started_at, uid").await
    }

    /// Recordings of a customer's conferences (every customer's for `None`),
    /// optionally of one conference, oldest first.
    pub async fn recordings_for(
        &self,
        customer_uid: Option<&str>,
        conference_uid: Option<&str>,
    ) -> Result<Vec<Recording>> {
        let columns: Vec<String> = Recording::COLUMNS.iter().map(|c| format!("r.{c}")).collect();
        let sql = format!(
            "SELECT {} FROM recordings r JOIN conferences f ON f.uid = r.conference_uid \
             WHERE (?1 IS NULL OR f.customer_uid = ?1) AND (?2 IS NULL OR r.conference_uid = ?2) \
             ORDER BY r.started_at, r.uid",
            columns.join(", ")
        );
        Ok(sqlx::query_as(super::trusted(sql))
            .bind(customer_uid)
            .bind(conference_uid)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Adds a call tag, optionally derived from a conference tag.
    pub async fn add_call_tag(
        &self,
        call_uid: &str,
        value: &str,
        conference_tag_id: Option<i64>,
    ) -> Result<CallTag> {
        Ok(sqlx::query_as(
            "INSERT INTO call_tags (call_uid, value, conference_tag_id) VALUES (?, ?, ?) \
             RETURNING id, call_uid, value, conference_tag_id",
        )
        .bind(call_uid)
        .bind(value)
        .bind(conference_tag_id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn call_tags(&self, call_uid: &str) -> Result<Vec<CallTag>> {
        Ok(sqlx::query_as(
            "SELECT id, call_uid, value, conference_tag_id FROM call_tags \
             WHERE call_uid = ? ORDER BY id",
        )
        .bind(call_uid)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn update_call_tag(&self, id: i64, value: &str) -> Result<()> {
        let done = sqlx::query("UPDATE call_tags SET value = ? WHERE id = ?")
            .bind(value)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("call_tags"));
        }
        Ok(())
    }

    /// Relates (or, with `tagged == false`, unrelates) a caller and a call tag of
    /// the same call session.
    pub async fn set_caller_tag(
        &self,
        caller_uid: &str,
        call_tag_id: i64,
        tagged: bool,
    ) -> Result<()> {
        if !tagged {
            sqlx::query("DELETE FROM caller_tags WHERE caller_uid = ? AND call_tag_id = ?")
                .bind(caller_uid)
                .bind(call_tag_id)
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        let done = sqlx::query(
            "INSERT OR IGNORE INTO caller_tags (caller_uid, call_tag_id) \
             SELECT c.uid, t.id FROM callers c JOIN call_tags t ON t.call_uid = c.call_uid \
             WHERE c.uid = ? AND t.id = ?",
        )
        .bind(caller_uid)
        .bind(call_tag_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 && !self.caller_has_tag(caller_uid, call_tag_id).await? {
            return Err(StoreError::Invalid(format!(
                "caller {caller_uid} and call tag {call_tag_id} are not in the same call"
            )));
        }
        Ok(())
    }

    async fn caller_has_tag(&self, caller_uid: &str, call_tag_id: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM caller_tags WHERE caller_uid = ? AND call_tag_id = ?",
        )
        .bind(caller_uid)
        .bind(call_tag_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    pub async fn caller_tags(&self, caller_uid: &str) -> Result<Vec<CallTag>> {
        Ok(sqlx::query_as(
            "SELECT t.id, t.call_uid, t.value, t.conference_tag_id FROM call_tags t \
             JOIN caller_tags c ON c.call_tag_id = t.id WHERE c.caller_uid = ? ORDER BY t.id",
        )
        .bind(caller_uid)
        .fetch_all(&self.pool)
        .await?)
    }

    /// After a restart no SIP dialog survives, so sessions the store still shows as
    /// live are closed at `now`: callers inactive, calls CLOSED, ACTIVE conferences
    /// IDLE. Returns how many callers were closed.
    pub async fn close_stale_sessions(&self, now: Time) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let callers = sqlx::query(
            "UPDATE callers SET active = 0, end_time = ?, end_reason = 'server-restart' \
             WHERE active = 1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE calls SET status = 'CLOSED', actual_end = ? WHERE status = 'ACTIVE'")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE conferences SET status = 'IDLE', updated_at = ? WHERE status = 'ACTIVE'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(callers)
    }
}
