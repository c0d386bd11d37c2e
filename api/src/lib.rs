//! tutti-api: the domain model and its SQLite store, its rules ([`rules`]), the
//! operations layer every interface calls ([`ops`]), the seam to live calls
//! ([`live`]), and the outward facades (TCP 4011 in [`control`], HTTP in [`http`]).
//! It knows nothing of SIP or RTP.

pub mod access;
pub mod aculab;
pub mod conductor;
pub mod control;
pub mod http;
pub mod live;
pub mod model;
pub mod ops;
pub mod rest;
pub mod rules;
pub mod secret;
pub mod store;
pub mod time;

pub use store::{Store, StoreError};
pub use time::Time;
