//! Queries the TCP 4011 facade needs: who is live in a conference now, and how
//! many, for LISTUSER, LISTCONF and MUTEALL/DTMFALL.

use super::{Result, Store, trusted};
use crate::model::{Caller, Record};

impl Store {
    /// Callers connected now to a live call session of the conference, in order
    /// of arrival.
    pub async fn active_callers_of_conference(&self, conference_uid: &str) -> Result<Vec<Caller>> {
        let columns: Vec<String> = Caller::COLUMNS.iter().map(|c| format!("c.{c}")).collect();
        let sql = format!(
            "SELECT {} FROM callers c JOIN calls k ON k.uid = c.call_uid \
             WHERE k.conference_uid = ? AND k.status = 'ACTIVE' AND c.active = 1 \
             ORDER BY c.start_time, c.uid",
            columns.join(", ")
        );
        Ok(sqlx::query_as(trusted(sql)).bind(conference_uid).fetch_all(&self.pool).await?)
    }

    /// For every conference with anyone connected now, the number of callers
    /// connected (conference UID, count).
    pub async fn active_member_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT k.conference_uid, COUNT(*) FROM callers c JOIN calls k ON k.uid = c.call_uid \
             WHERE k.status = 'ACTIVE' AND c.active = 1 GROUP BY k.conference_uid",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The number of callers connected now to the conference's live session(s).
    pub async fn active_member_count(&self, conference_uid: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM callers c JOIN calls k ON k.uid = c.call_uid \
             WHERE k.conference_uid = ? AND k.status = 'ACTIVE' AND c.active = 1",
        )
        .bind(conference_uid)
        .fetch_one(&self.pool)
        .await?)
    }
}
