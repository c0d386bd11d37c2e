//! Custom key/values on any object, uploaded sounds, and the counts behind
//! `/metrics`.

use serde::Serialize;

use super::{Result, Store, StoreError, trusted};
use crate::model::{ObjectType, Sound};
use crate::time::Time;

/// Stored totals that `/metrics` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub customers: i64,
    pub conferences: i64,
    /// Call sessions in progress.
    pub active_calls: i64,
    /// Callers connected to a call session in progress.
    pub active_callers: i64,
}

impl Store {
    /// Sets a custom value on an object; an empty value removes the key (as
    /// updateCustomValue specifies).
    pub async fn set_custom_value(
        &self,
        object_type: ObjectType,
        object_uid: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        if key.is_empty() {
            return Err(StoreError::Invalid("custom key is empty".into()));
        }
        if value.is_empty() {
            sqlx::query(
                "DELETE FROM custom_values WHERE object_type = ? AND object_uid = ? AND key = ?",
            )
            .bind(object_type)
            .bind(object_uid)
            .bind(key)
            .execute(&self.pool)
            .await?;
            return Ok(());
        }
        if !self.object_exists(object_type, object_uid).await? {
            return Err(StoreError::NotFound(object_type.as_str()));
        }
        sqlx::query(
            "INSERT INTO custom_values (object_type, object_uid, key, value) VALUES (?, ?, ?, ?) \
             ON CONFLICT (object_type, object_uid, key) DO UPDATE SET value = excluded.value",
        )
        .bind(object_type)
        .bind(object_uid)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The custom key/values of an object, by key.
    pub async fn custom_values(
        &self,
        object_type: ObjectType,
        object_uid: &str,
    ) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT key, value FROM custom_values WHERE object_type = ? AND object_uid = ? \
             ORDER BY key",
        )
        .bind(object_type)
        .bind(object_uid)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn object_exists(&self, object_type: ObjectType, uid: &str) -> Result<bool> {
        let table = match object_type {
            ObjectType::Customer => "customers",
            ObjectType::Conference => "conferences",
            ObjectType::Call => "calls",
            ObjectType::Caller => "callers",
            ObjectType::Person => "persons",
        };
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE uid = ?");
        let n: i64 = sqlx::query_scalar(trusted(sql)).bind(uid).fetch_one(&self.pool).await?;
        Ok(n > 0)
    }

    /// Records an uploaded sound file and gives it its integer id.
    pub async fn add_sound(
        &self,
        customer_uid: Option<&str>,
        name: &str,
        file_name: &str,
    ) -> Result<Sound> {
        Ok(sqlx::query_as(
            "INSERT INTO sounds (customer_uid, name, file_name, created_at) VALUES (?, ?, ?, ?) \
             RETURNING id, customer_uid, name, file_name, created_at",
        )
        .bind(customer_uid)
        .bind(name)
        .bind(file_name)
        .bind(Time::now())
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn sound(&self, id: i64) -> Result<Sound> {
        sqlx::query_as(
            "SELECT id, customer_uid, name, file_name, created_at FROM sounds WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("sounds"))
    }

    /// Sounds a customer may use: its own and the shared ones.
    pub async fn sounds_for(&self, customer_uid: &str) -> Result<Vec<Sound>> {
        Ok(sqlx::query_as(
            "SELECT id, customer_uid, name, file_name, created_at FROM sounds \
             WHERE customer_uid IS NULL OR customer_uid = ? ORDER BY id",
        )
        .bind(customer_uid)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The conferences that play a sound (as enter sound or music on hold):
    /// their dial-in numbers, or names where they have none.
    pub async fn rooms_using_sound(&self, id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(dial_in_number, name) FROM conferences \
             WHERE enter_sound = ? OR music_on_hold_sound = ? ORDER BY created_at, uid",
        )
        .bind(id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn delete_sound(&self, id: i64) -> Result<()> {
        let done =
            sqlx::query("DELETE FROM sounds WHERE id = ?").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("sounds"));
        }
        Ok(())
    }

    pub async fn counts(&self) -> Result<Counts> {
        let (customers, conferences, active_calls, active_callers) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM conferences), \
             (SELECT COUNT(*) FROM calls WHERE status = 'ACTIVE'), \
             (SELECT COUNT(*) FROM callers WHERE active = 1)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Counts { customers, conferences, active_calls, active_callers })
    }
}
