//! The operations layer: every domain operation any interface offers, as one
//! typed function with every rule inside it (ownership by customer, admission,
//! limits, locks, schedule, roles). Interfaces are translators: they parse their
//! wire format, call one operation, and render its answer or its [`OpsError`] in
//! their own shape. Outcomes that take time (a call answered, a playback done)
//! reach every interface as events on the bus.
//!
//! - [`conferences`]: create, change, delete, read conferences.
//! - [`callers`]: live callers' settings and descriptive fields, drop, move.
//! - [`calls`]: call sessions and their breakout groups.
//! - [`media`]: playbacks, recordings, outbound calls.
//! - [`accounts`]: customers, their settings and custom values.
//! - [`reservations`]: reserved and reservationless conferences, their
//!   reservations, cancelling, and which list a conference is on.
//! - [`persons`]: persons registered for a conference, with their PINs.
//! - [`sounds`]: WAV names resolved inside the sounds directory.
//! - [`catalog`]: uploaded sounds and recordings, the files customers keep here.

pub mod accounts;
pub mod booked;
pub mod callers;
pub mod calls;
pub mod catalog;
pub mod conferences;
mod error;
pub mod media;
pub mod persons;
pub mod reservations;
pub mod sounds;
pub mod sources;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use error::{Conflict, Kind, OpsError, OpsResult, ReservationRule};

use crate::live::{EventBus, LiveControl};
use crate::model::Conference;
use crate::store::{Owner, Store};

/// Who is asking. The scope decides which objects exist for the requester: an
/// object of another customer is answered exactly as an unknown one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The operator of the whole server (TCP 4011, the command line).
    Server,
    /// One customer (the HTTP APIs, by their API key or token).
    Customer(String),
}

impl Scope {
    /// Whether the requester may see what `customer_uid` owns.
    pub fn sees(&self, customer_uid: &str) -> bool {
        match self {
            Scope::Server => true,
            Scope::Customer(uid) => uid == customer_uid,
        }
    }
}

/// Settings the operations need, fixed at start.
#[derive(Debug, Clone)]
pub struct OpsSettings {
    /// `<data-dir>/sounds/`: where client-named WAV files are looked up.
    pub sounds_dir: PathBuf,
    /// `<data-dir>/recordings/`: where recordings are written.
    pub recordings_dir: PathBuf,
    /// The zone of times a protocol gives without one, and writes back.
    pub timezone: jiff::tz::TimeZone,
    /// The customer that owns conferences created through interfaces without
    /// customers (TCP 4011); `None`: the oldest customer.
    pub control_customer: Option<String>,
    /// The server's `--max-calls`: the most callers a reservation may be booked
    /// for when the customer has no limit of its own.
    pub max_calls: usize,
    /// When the server started, for `/healthz`.
    pub started: Instant,
    pub version: &'static str,
    /// The port of the Conductor's XMLSocket event stream (`--events-listen`),
    /// which the Call object advertises as `socketXML`; 0 when there is none.
    pub events_port: u16,
    /// Bytes of uploaded sounds (as stored) each customer may keep
    /// (`--sound-quota-mib`).
    pub sound_quota_bytes: u64,
    /// Wrong HTTP credentials from one address within ten minutes that lock
    /// it out of every HTTP interface for five (`--http-auth-failures`; 0: no
    /// lockout).
    pub http_auth_failures: usize,
}

/// `--sound-quota-mib`'s default, 256 MiB: about 4.6 hours of 8 kHz sound
/// per customer.
pub const DEFAULT_SOUND_QUOTA_BYTES: u64 = 256 * 1024 * 1024;

/// What every interface works with: the store, the live seam, the event bus and
/// the settings. Cheap to clone; one instance is shared by TCP 4011 and HTTP.
#[derive(Clone)]
pub struct Ops {
    pub store: Store,
    pub live: Arc<dyn LiveControl>,
    pub events: EventBus,
    pub settings: Arc<OpsSettings>,
    auth_cache: Arc<accounts::AuthCache>,
    /// Wrong HTTP credentials per source address.
    auth_guard: Arc<sources::AuthGuard>,
    /// Held from an upload's quota check until its row is stored, so that two
    /// uploads at once cannot both fit in the room left for one.
    uploads: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Ops {
    pub fn new(
        store: Store,
        live: Arc<dyn LiveControl>,
        events: EventBus,
        settings: OpsSettings,
    ) -> Self {
        let auth_cache = Arc::default();
        let auth_guard = Arc::new(sources::AuthGuard::new(settings.http_auth_failures));
        let uploads = Arc::default();
        let settings = Arc::new(settings);
        Self { store, live, events, settings, auth_cache, auth_guard, uploads }
    }

    /// An object's owner, if the requester may see it; otherwise `kind` not found.
    fn visible(&self, scope: &Scope, owner: Option<Owner>, kind: Kind) -> OpsResult<Owner> {
        match owner {
            Some(owner) if scope.sees(&owner.customer_uid) => Ok(owner),
            _ => Err(OpsError::NotFound(kind)),
        }
    }

    /// The stored conference, if the requester may see it.
    pub async fn conference(&self, scope: &Scope, uid: &str) -> OpsResult<Conference> {
        match self.store.find::<Conference>(uid).await? {
            Some(c) if scope.sees(&c.customer_uid) => Ok(c),
            _ => Err(OpsError::NotFound(Kind::Conference)),
        }
    }

    /// The conference with everything its answer lists, in one read, if the
    /// requester may see it.
    pub async fn conference_with_view(
        &self,
        scope: &Scope,
        uid: &str,
    ) -> OpsResult<(Conference, crate::store::ConferenceView)> {
        match self.store.conference_with_view(uid).await? {
            Some((c, view)) if scope.sees(&c.customer_uid) => Ok((c, view)),
            _ => Err(OpsError::NotFound(Kind::Conference)),
        }
    }

    /// Checks that the requester may act on this caller; returns its owner.
    pub async fn caller_owner(&self, scope: &Scope, caller_uid: &str) -> OpsResult<Owner> {
        let owner = self.store.owner_of_caller(caller_uid).await?;
        self.visible(scope, owner, Kind::Caller)
    }

    /// Checks that the requester may act on this call session; returns its owner.
    pub async fn call_owner(&self, scope: &Scope, call_uid: &str) -> OpsResult<Owner> {
        let owner = self.store.owner_of_call(call_uid).await?;
        self.visible(scope, owner, Kind::Call)
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;
