//! Which conference (and so which customer) a live object belongs to, so the
//! operations layer can answer another customer's UID exactly as an unknown one.

use super::{Result, Store};

/// The conference an object belongs to and the customer that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub conference_uid: String,
    pub customer_uid: String,
}

impl Store {
    pub async fn owner_of_call(&self, call_uid: &str) -> Result<Option<Owner>> {
        self.owner("SELECT f.uid, f.customer_uid FROM calls k JOIN conferences f ON f.uid = k.conference_uid WHERE k.uid = ?", call_uid).await
    }

    pub async fn owner_of_caller(&self, caller_uid: &str) -> Result<Option<Owner>> {
        self.owner("SELECT f.uid, f.customer_uid FROM callers c JOIN calls k ON k.uid = c.call_uid JOIN conferences f ON f.uid = k.conference_uid WHERE c.uid = ?", caller_uid).await
    }

    pub async fn owner_of_breakout(&self, breakout_uid: &str) -> Result<Option<Owner>> {
        self.owner("SELECT f.uid, f.customer_uid FROM breakouts b JOIN calls k ON k.uid = b.call_uid JOIN conferences f ON f.uid = k.conference_uid WHERE b.uid = ?", breakout_uid).await
    }

    pub async fn owner_of_recording(&self, recording_uid: &str) -> Result<Option<Owner>> {
        self.owner("SELECT f.uid, f.customer_uid FROM recordings r JOIN conferences f ON f.uid = r.conference_uid WHERE r.uid = ?", recording_uid).await
    }

    async fn owner(&self, sql: &'static str, uid: &str) -> Result<Option<Owner>> {
        let row: Option<(String, String)> =
            sqlx::query_as(sql).bind(uid).fetch_optional(&self.pool).await?;
        Ok(row.map(|(conference_uid, customer_uid)| Owner { conference_uid, customer_uid }))
    }
}
