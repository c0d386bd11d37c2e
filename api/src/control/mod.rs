//! The SpliceCom "Conference Control Interface" on TCP port 4011: a line protocol
//! for third-party programs to create and steer conferences and to receive their
//! events. docs/control-protocol.md is the user's description; this is the map.
//!
//! - [`codec`]: bytes to lines (LF or CR LF, at most [`codec::MAX_LINE`] bytes) and
//!   lines to fields (commas, `"..."` with `""` inside, typographic `“...”`).
//! - [`command`]: fields to a typed [`command::Command`]; [`schedule`] reads and
//!   writes `<date>`, `<start>`, `<end>`.
//! - [`session`]: one connection's login state, and the translation of each
//!   command into one call of the operations layer ([`crate::ops`]), where every
//!   rule lives.
//! - [`events`]: bus events as event lines; [`error`]: every failure as its line.
//! - [`guard`]: failed LOGINs counted per client address, and lockouts.
//! - `server`: the tokio listener, a thin shell around the above.
//!
//! Choices where the document is vague: `<cn>` is the conference's dial-in number
//! (digits, unique); `<conf-guid>` is the conference UID, `<call-guid>` and
//! `<user-guid>` a caller UID; flags take 0/1, true/false, on/off, yes/no; free-text
//! answer fields are always in double quotes with `""` for a quote; STOPWAV answers
//! `STOPWAV,OK` (the document's `0OK` is a typo); dates are read and written in the
//! server's time zone. NEWCONF creates the conference for the control customer
//! (`--control-customer`, by default the default customer); every other command
//! sees every conference, as the server's operator does.

pub mod codec;
pub mod command;
pub mod error;
pub mod events;
pub mod guard;
pub mod schedule;
mod server;
pub mod session;

pub use server::{
    MAX_CONNECTIONS, MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_ADDRESS, ServeLimits, serve,
    serve_with,
};
