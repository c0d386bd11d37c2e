//! The call engine: the only place that knows SIP calls, media legs and
//! conferences at once. Its decision logic is sans-IO ([`registry`],
//! [`dialplan`], [`ivr`], [`keypad`]); the tokio tasks that drive it are thin
//! shells around them, split by concern: [`core`] (state and background
//! tasks), `inbound` and `outbound` calls, `membership` (admission, join,
//! leave), `actions` (keys), `sounds`, `rooms` (breakouts, green room, moves)
//! and [`live`] (the `LiveControl` the operations layer calls).

mod actions;
mod announce;
pub mod core;
pub mod dialplan;
mod inbound;
pub mod ivr;
pub mod keypad;
pub mod live;
pub mod media;
mod membership;
mod outbound;
mod pin_guard;
pub mod prompts;
pub mod registry;
mod rooms;
mod scheduler;
mod sounds;
