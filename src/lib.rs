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
    Store::open(&settings.database).await.map_err(|e| {
        format!("cannot open database {}: {e}{}", settings.database, writable_hint(settings)).into()
    })
}

/// Added to a database error: why the database cannot be written, when that
/// is the reason (SQLite opens a read-only file and fails at the first write).
pub fn writable_hint(settings: &Settings) -> String {
    not_writable(&settings.database)
        .map(|why| format!(" ({why}; tutti needs to write its database)"))
        .unwrap_or_default()
}

/// Why a file database cannot be written, when that is the reason: the file
/// or its directory (where SQLite keeps its write-ahead log) is read-only.
fn not_writable(database: &str) -> Option<String> {
    let path = std::path::Path::new(database.strip_prefix("sqlite://")?.split('?').next()?);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().append(true).open(path)
    {
        return Some(format!("{} is not writable: {e}", path.display()));
    }
    let probe = dir.join(format!(".tutti-write-test-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!("directory {} is not writable: {e}", dir.display())),
    }
}
