//! The one error type of every operation, by cause. Each interface maps it to
//! its own wire shape (`<CMD>,ERROR,"..."`, `FALSE,...`, a numbered code, an HTTP
//! status). Database failures never reach a client: they are logged with an
//! incident number, and the client gets only that number.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::store::StoreError;

/// What kind of object an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Customer,
    Conference,
    Reservation,
    Person,
    /// A call session (MaestroConference "Call"): a live run of a conference.
    Call,
    Caller,
    Breakout,
    Tag,
    Recording,
    Sound,
    /// A file named by a client (a WAV to play).
    File,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Conference => "conference",
            Kind::Reservation => "reservation",
            Kind::Person => "person",
            Kind::Call => "call",
            Kind::Caller => "caller",
            Kind::Breakout => "breakout",
            Kind::Tag => "tag",
            Kind::Recording => "recording",
            Kind::Sound => "sound",
            Kind::File => "file",
        }
    }

    /// The kind stored in `table`, for the store's not-found errors.
    fn of_table(table: &str) -> Option<Kind> {
        Some(match table {
            "customers" | "customer" => Kind::Customer,
            "conferences" | "conference" => Kind::Conference,
            "reservations" => Kind::Reservation,
            "persons" | "person" => Kind::Person,
            "calls" | "call" => Kind::Call,
            "callers" | "caller" => Kind::Caller,
            "breakouts" => Kind::Breakout,
            "conference_tags" | "call_tags" => Kind::Tag,
            "recordings" => Kind::Recording,
            "sounds" => Kind::Sound,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that collides with what exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("the dial-in number is already in use")]
    NumberInUse,
    #[error("the PIN is already in use")]
    PinInUse,
    #[error("a recording is already running")]
    AlreadyRecording,
    #[error("the caller is already in that conference")]
    AlreadyThere,
    /// A sound that rooms still use: their numbers (or names).
    #[error("the sound is in use by {}", .0.join(", "))]
    SoundInUse(Vec<String>),
    #[error("the recording is still running")]
    StillRecording,
    /// An upload that would take a customer's sounds past its quota: the
    /// quota, the bytes its sounds take now and the bytes this one needs.
    #[error(
        "the customer's sounds take {used} of its {quota} bytes and this one needs {size}: \
         delete some first"
    )]
    SoundQuota { quota: u64, used: u64, size: u64 },
    /// A recording that would start while a customer's recordings already
    /// take its quota: the quota and the bytes they take.
    #[error("the customer's recordings take {used} of its {quota} bytes: delete some first")]
    RecordingQuota { quota: u64, used: u64 },
    /// A recording that would start while the recordings' file system has
    /// less free space than the server keeps free: what is free, and the floor.
    #[error("the recordings' disk has {free} bytes free, below the {floor} kept free")]
    RecordingDiskLow { free: u64, floor: u64 },
    /// Another unique value; names the stored columns.
    #[error("already in use: {0}")]
    InUse(String),
}

/// A reservation rule that was broken (MaestroConference numbers each one per
/// function; other interfaces word them their own way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReservationRule {
    #[error("the start falls inside another reservation")]
    StartOverlaps,
    #[error("the reservation runs into another one")]
    RunsIntoAnother,
    #[error("the estimated number of callers is out of range")]
    EstimateOutOfRange,
    #[error("the conference is reservationless")]
    Reservationless,
    #[error("the conference's last reservation cannot be removed")]
    LastOne,
    #[error("the reservation is already past")]
    Past,
    #[error("the reservation is running now")]
    Running,
    #[error("none of the reservations given is valid")]
    NoneValid,
}

/// Why an operation was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    /// No object of that kind with that UID, or none the requester may see.
    #[error("{0} not found")]
    NotFound(Kind),
    /// A parameter that does not hold what it should: which one, and why.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the conference is locked")]
    Locked,
    #[error("the conference is full")]
    Full,
    /// A reserved conference outside its reservations, before the next one.
    #[error("the conference has not started")]
    NotStarted,
    /// Over for good: a conference closed or cancelled, a call or recording
    /// that has ended.
    #[error("the {0} has ended")]
    Ended(Kind),
    #[error("{0}")]
    Conflict(Conflict),
    #[error("{0}")]
    Reservation(ReservationRule),
    /// Understood, but a setting forbids it (outbound calls disabled, ...).
    #[error("{0}")]
    NotAllowed(&'static str),
    /// Something the operation needs failed (database, room task, SIP
    /// transport, text-to-speech program); the details are in the log under
    /// this incident number.
    #[error("temporarily unavailable (incident {incident})")]
    Unavailable { incident: u64 },
}

pub type OpsResult<T> = Result<T, OpsError>;

static NEXT_INCIDENT: AtomicU64 = AtomicU64::new(1);

impl OpsError {
    /// A bad parameter.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        OpsError::Invalid { field, reason: reason.into() }
    }

    /// Logs an internal failure with a new incident number and returns the
    /// error a client may see.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        let incident = NEXT_INCIDENT.fetch_add(1, Ordering::Relaxed);
        tracing::error!(incident, %error, "{context}");
        OpsError::Unavailable { incident }
    }
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(table) => match Kind::of_table(table) {
                Some(kind) => OpsError::NotFound(kind),
                None => OpsError::internal("store: not found in an unknown table", table),
            },
            StoreError::Conflict(columns) if columns.contains("dial_in_number") => {
                OpsError::Conflict(Conflict::NumberInUse)
            }
            StoreError::Conflict(columns) if columns.contains("pin") => {
                OpsError::Conflict(Conflict::PinInUse)
            }
            StoreError::Conflict(columns) => OpsError::Conflict(Conflict::InUse(columns)),
            StoreError::Invalid(reason) => OpsError::Invalid { field: "value", reason },
            e @ (StoreError::Database(_) | StoreError::Migrate(_)) => {
                OpsError::internal("store failed", e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_become_incidents_without_their_text() {
        let e = OpsError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        let OpsError::Unavailable { incident } = e else { panic!("{e:?}") };
        let text = OpsError::Unavailable { incident }.to_string();
        assert!(!text.contains("pool"), "{text}");
        assert!(text.contains(&incident.to_string()));
    }

    #[test]
    fn store_errors_keep_their_kind() {
        assert_eq!(
            OpsError::from(StoreError::NotFound("callers")),
            OpsError::NotFound(Kind::Caller)
        );
        assert_eq!(
            OpsError::from(StoreError::Conflict("conferences.dial_in_number".into())),
            OpsError::Conflict(Conflict::NumberInUse)
        );
        assert_eq!(OpsError::NotFound(Kind::Breakout).to_string(), "breakout not found");
        assert_eq!(OpsError::Ended(Kind::Recording).to_string(), "the recording has ended");
    }
}
