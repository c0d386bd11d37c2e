//! tutti-api: the domain model and its SQLite store, and the outward facades
//! (HTTP today; TCP 4011, /_access, /_conference, /conference_* and /api/v1 as they
//! are built). It knows nothing of SIP or RTP.

pub mod control;
pub mod http;
pub mod live;
pub mod model;
pub mod secret;
pub mod store;
pub mod time;

pub use store::{Store, StoreError};
pub use time::Time;
