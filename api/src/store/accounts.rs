//! Customers with their hashed API keys, and server-wide secrets such as the
//! TCP 4011 control password.

use super::{Result, Store, StoreError, insert_with, trusted};
use crate::model::{Customer, Record};
use crate::secret;

const CONTROL_PASSWORD_KEY: &str = "control_password_hash";
const DEFAULT_CUSTOMER_KEY: &str = "default_customer_uid";
/// The name the default customer is made with.
pub const DEFAULT_CUSTOMER_NAME: &str = "default";

impl Store {
    /// Stores a new customer and issues its API key, which is returned once and
    /// kept only as a hash.
    pub async fn create_customer(&self, customer: &Customer) -> Result<String> {
        let key = secret::new_api_key();
        let mut tx = self.pool.begin().await?;
        insert_with(&mut *tx, customer).await?;
        sqlx::query("UPDATE customers SET api_key_hash = ? WHERE uid = ?")
            .bind(secret::hash_api_key(&key))
            .bind(&customer.uid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Replaces a customer's API key; the old key stops working at once.
    pub async fn rotate_api_key(&self, customer_uid: &str) -> Result<String> {
        let key = secret::new_api_key();
        let done = sqlx::query("UPDATE customers SET api_key_hash = ? WHERE uid = ?")
            .bind(secret::hash_api_key(&key))
            .bind(customer_uid)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(Customer::TABLE));
        }
        Ok(key)
    }

    /// The customer, if `key` is its current API key. Unknown customers and wrong
    /// keys look the same to the caller.
    pub async fn authenticate_customer(&self, uid: &str, key: &str) -> Result<Option<Customer>> {
        // One query: the key's hash with the row it unlocks.
        let sql = format!(
            "SELECT {}, api_key_hash FROM customers WHERE uid = ?",
            Customer::COLUMNS.join(", ")
        );
        let row: Option<sqlx::sqlite::SqliteRow> =
            sqlx::query(trusted(sql)).bind(uid).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let hash: String = sqlx::Row::try_get(&row, "api_key_hash")?;
        if !secret::verify_api_key(key, &hash) {
            return Ok(None);
        }
        Ok(Some(<Customer as sqlx::FromRow<sqlx::sqlite::SqliteRow>>::from_row(&row)?))
    }

    /// The customer whose API key is `key` (Bearer authentication, where no
    /// UID comes with the key). Keys are 190 random bits, so the lookup by their
    /// hash reveals nothing a guesser could use.
    pub async fn customer_by_api_key(&self, key: &str) -> Result<Option<Customer>> {
        if key.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {} FROM customers WHERE api_key_hash = ?",
            Customer::COLUMNS.join(", ")
        );
        Ok(sqlx::query_as(trusted(sql))
            .bind(secret::hash_api_key(key))
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn list_customers(&self) -> Result<Vec<Customer>> {
        let sql = format!(
            "SELECT {} FROM customers ORDER BY created_at, uid",
            Customer::COLUMNS.join(", ")
        );
        Ok(sqlx::query_as(trusted(sql)).fetch_all(&self.pool).await?)
    }

    /// The default customer: made on the server's first start, it owns what
    /// interfaces without customers create (TCP 4011) unless
    /// `--control-customer` names another. A database from before it was
    /// recorded has its oldest customer named "default" as the default.
    pub async fn default_customer(&self) -> Result<Customer> {
        match self.setting(DEFAULT_CUSTOMER_KEY).await? {
            Some(uid) => self.get(&uid).await,
            None => self
                .oldest_named(DEFAULT_CUSTOMER_NAME)
                .await?
                .ok_or(StoreError::NotFound(Customer::TABLE)),
        }
    }

    /// The default customer, made now if there is none (or it was deleted);
    /// with its API key when it was just made.
    pub async fn ensure_default_customer(&self) -> Result<(Customer, Option<String>)> {
        let (customer, key) = match self.default_customer().await {
            Ok(customer) => (customer, None),
            Err(StoreError::NotFound(_)) => {
                let customer = Customer::new(DEFAULT_CUSTOMER_NAME);
                let key = self.create_customer(&customer).await?;
                (customer, Some(key))
            }
            Err(e) => return Err(e),
        };
        self.set_setting(DEFAULT_CUSTOMER_KEY, &customer.uid).await?;
        Ok((customer, key))
    }

    /// The oldest customer called `name` (names are unique since
    /// [`Store::customer_named`] checks; older databases may repeat them).
    async fn oldest_named(&self, name: &str) -> Result<Option<Customer>> {
        let sql = format!(
            "SELECT {} FROM customers WHERE name = ? ORDER BY created_at, uid LIMIT 1",
            Customer::COLUMNS.join(", ")
        );
        Ok(sqlx::query_as(trusted(sql)).bind(name).fetch_optional(&self.pool).await?)
    }

    /// The customer called `name`, ignoring case and surrounding spaces.
    pub async fn customer_named(&self, name: &str) -> Result<Option<Customer>> {
        let sql = format!(
            "SELECT {} FROM customers WHERE lower(trim(name)) = lower(trim(?)) \
             ORDER BY created_at, uid LIMIT 1",
            Customer::COLUMNS.join(", ")
        );
        Ok(sqlx::query_as(trusted(sql)).bind(name).fetch_optional(&self.pool).await?)
    }

    /// The customer whose inbound number is `did`.
    pub async fn customer_by_did(&self, did: &str) -> Result<Option<Customer>> {
        self.find_where("did", did).await
    }

    /// Stores the hash of the TCP 4011 control password, replacing any other.
    pub async fn set_control_password(&self, password: &str) -> Result<()> {
        self.set_setting(CONTROL_PASSWORD_KEY, &secret::hash_password(password)).await
    }

    /// Whether a control password has been stored.
    pub async fn has_control_password(&self) -> Result<bool> {
        Ok(self.setting(CONTROL_PASSWORD_KEY).await?.is_some())
    }

    /// Whether `password` is the control password (false when none is set).
    pub async fn verify_control_password(&self, password: &str) -> Result<bool> {
        let stored = self.setting(CONTROL_PASSWORD_KEY).await?;
        // Argon2 is deliberately slow: keep it off the async worker threads.
        let password = password.to_owned();
        let verified = tokio::task::spawn_blocking(move || {
            stored.is_some_and(|hash| secret::verify_password(&password, &hash))
        })
        .await
        .unwrap_or(false);
        Ok(verified)
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM server_settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO server_settings (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
