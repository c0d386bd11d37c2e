//! The `tutti` package: the server binary's configuration and life cycle, and the
//! call engine that joins SIP calls (tutti-sip) to media legs and mixers
//! (tutti-media) and to the domain model and facades (tutti-api).

pub mod config;
pub mod engine;
pub mod server;
pub mod tls;

use tutti_api::Store;

use crate::config::Settings;

/// Errors that end a command, printed as one line.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the configured database, creating the data directory first.
pub async fn open_store(settings: &Settings) -> Result<Store, BoxError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        format!("cannot create data directory {}: {e}", settings.data_dir.display())
    })?;
    Store::open(&settings.database)
        .await
        .map_err(|e| format!("cannot open database {}: {e}", settings.database).into())
}
