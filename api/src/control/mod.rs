//! The SpliceCom "Conference Control Interface" on TCP port 4011: a line protocol
//! for third-party programs to create and steer conferences and to receive their
//! events. docs/control-protocol.md is the user's description; this is the map.
//!
//! - [`codec`]: bytes to lines (LF or CR LF, at most [`codec::MAX_LINE`] bytes) and
//!   lines to fields (commas, `"..."` with `""` inside, typographic `“...”`).
//! - [`command`]: fields to a typed [`command::Command`]; [`schedule`] reads and
//!   writes `<date>`, `<start>`, `<end>`; [`sounds`] keeps WAV names inside the
//!   sounds directory.
//! - [`session`]: one connection's login state, and the one place where a command
//!   is applied to the store and to live calls through [`LiveControl`].
//! - [`events`]: bus events as event lines; [`error`]: every failure as its line.
//! - `server`: the tokio listener, a thin shell around the above.
//!
//! Choices where the document is vague: `<cn>` is the conference's dial-in number
//! (digits, unique); `<conf-guid>` is the conference UID, `<call-guid>` and
//! `<user-guid>` a caller UID; flags take 0/1, true/false, on/off, yes/no; free-text
//! answer fields are always in double quotes with `""` for a quote; STOPWAV answers
//! `STOPWAV,OK` (the document's `0OK` is a typo); dates are read and written in the
//! server's time zone. NEWCONF creates the conference for the default customer.

pub mod codec;
pub mod command;
pub mod error;
pub mod events;
pub mod schedule;
mod server;
pub mod session;
pub mod sounds;

use std::path::PathBuf;
use std::sync::Arc;

use crate::live::{EventBus, LiveControl};
use crate::store::Store;

pub use server::{MAX_CONNECTIONS, serve};

/// What the control server works with; built once by the server's start-up.
#[derive(Clone)]
pub struct ControlContext {
    pub store: Store,
    pub live: Arc<dyn LiveControl>,
    pub events: EventBus,
    /// `<data-dir>/sounds/`: where PLAYWAV names are looked up.
    pub sounds_dir: PathBuf,
    /// The zone `<date>`, `<start>` and `<end>` are written in.
    pub timezone: jiff::tz::TimeZone,
}

impl std::fmt::Debug for ControlContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlContext")
            .field("sounds_dir", &self.sounds_dir)
            .field("timezone", &self.timezone.iana_name())
            .finish_non_exhaustive()
    }
}
