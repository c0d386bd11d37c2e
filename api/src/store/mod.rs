//! The SQLite store of the domain model. One pool, WAL mode, foreign keys on,
//! migrations embedded and run at open. Generic row operations work on any
//! [`Record`]; the submodules add the operations that span rows or tables.
//!
//! Nothing on the real-time media path awaits the store: the call engine writes
//! here from its control tasks only.

mod accounts;
mod calls;
mod conferences;
mod control_queries;
mod fields;
mod misc;
mod owners;
mod views;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Sqlite};

use crate::model::Record;

pub use fields::{CALLER_LIVE_COLUMNS, CallFlag, CallText, CallerDetails};
pub use misc::Counts;
pub use owners::Owner;
pub use views::ConferenceView;

/// Why a store operation failed, by cause: the object is missing, the request
/// collides with stored data or breaks a rule, or the database itself failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row of that kind (the table name) with that key.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is already taken; names the columns (e.g. `persons.pin`).
    #[error("already in use: {0}")]
    Conflict(String),
    /// A reference to a missing object, or a value outside its allowed range.
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            let msg = db.message();
            if db.is_unique_violation() {
                let cols = msg.strip_prefix("UNIQUE constraint failed: ").unwrap_or(msg);
                return StoreError::Conflict(cols.to_owned());
            }
            if db.is_foreign_key_violation() {
                return StoreError::Invalid("reference to an object that does not exist".into());
            }
            if db.is_check_violation() {
                return StoreError::Invalid(msg.to_owned());
            }
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How many connections a file database gets; SQLite serialises writers anyway,
/// readers gain from a few.
const FILE_POOL_SIZE: u32 = 8;
/// How long a writer waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Each pooled connection's page cache, in KiB (SQLite's `cache_size` takes a
/// negative number as KiB). SQLite's default, 2 MiB, made a long-running
/// server's memory grow with its database file: up to 16 MiB over the eight
/// connections, and most of the RSS growth the soak measured. The live
/// queries read through partial indexes, and the rest of the file is in the
/// kernel's page cache anyway.
const CACHE_KIB: u32 = 256;

/// The database handle. Cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`,
    /// `sqlite::memory:`) and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // Each connection to an in-memory database is a new, empty database.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // An in-memory database lives in its page cache: no limit there.
        let options =
            if in_memory { options } else { options.pragma("cache_size", format!("-{CACHE_KIB}")) };
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { FILE_POOL_SIZE })
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded migrations that have not been applied yet.
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Waits for running queries and closes every connection (checkpointing WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Inserts a new row.
    pub async fn insert<R: Record>(&self, record: &R) -> Result<()> {
        insert_with(&self.pool, record).await
    }

    /// The row with this UID, or `NotFound`.
    pub async fn get<R: Record>(&self, uid: &str) -> Result<R> {
        self.find(uid).await?.ok_or(StoreError::NotFound(R::TABLE))
    }

    /// The row with this UID, if any.
    pub async fn find<R: Record>(&self, uid: &str) -> Result<Option<R>> {
        let sql = format!("SELECT {} FROM {} WHERE uid = ?", R::COLUMNS.join(", "), R::TABLE);
        Ok(sqlx::query_as::<_, R>(trusted(sql)).bind(uid).fetch_optional(&self.pool).await?)
    }

    /// Writes every field of an existing row.
    pub async fn update<R: Record>(&self, record: &R) -> Result<()> {
        let sets: Vec<String> = R::COLUMNS.iter().map(|c| format!("{c} = ?")).collect();
        let sql = format!("UPDATE {} SET {} WHERE uid = ?", R::TABLE, sets.join(", "));
        let query = record.bind_columns(sqlx::query(trusted(sql))).bind(record.uid());
        let done = query.execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(R::TABLE));
        }
        Ok(())
    }

    /// Deletes a row and, through the schema's cascades, what belongs to it.
    pub async fn delete<R: Record>(&self, uid: &str) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE uid = ?", R::TABLE);
        let done = sqlx::query(trusted(sql)).bind(uid).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(R::TABLE));
        }
        Ok(())
    }

    /// Rows whose `column` equals `value`, in `order` (both are compile-time
    /// column names, never user input).
    async fn list_where<R: Record>(
        &self,
        column: &'static str,
        value: &str,
        order: &'static str,
    ) -> Result<Vec<R>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {column} = ? ORDER BY {order}",
            R::COLUMNS.join(", "),
            R::TABLE
        );
        Ok(sqlx::query_as::<_, R>(trusted(sql)).bind(value).fetch_all(&self.pool).await?)
    }

    /// The first row whose `column` equals `value` (a unique column).
    async fn find_where<R: Record>(&self, column: &'static str, value: &str) -> Result<Option<R>> {
        let sql = format!("SELECT {} FROM {} WHERE {column} = ?", R::COLUMNS.join(", "), R::TABLE);
        Ok(sqlx::query_as::<_, R>(trusted(sql)).bind(value).fetch_optional(&self.pool).await?)
    }
}

async fn insert_with<'c, E, R>(executor: E, record: &R) -> Result<()>
where
    E: Executor<'c, Database = Sqlite>,
    R: Record,
{
    let marks = vec!["?"; R::COLUMNS.len()].join(", ");
    let sql = format!("INSERT INTO {} ({}) VALUES ({marks})", R::TABLE, R::COLUMNS.join(", "));
    record.bind_columns(sqlx::query(trusted(sql))).execute(executor).await?;
    Ok(())
}

/// Marks SQL text that is assembled only from compile-time table and column names
/// ([`Record`] constants and literals), never from input; values are always bound.
fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}
