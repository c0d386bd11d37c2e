//! The call engine: the only place that knows SIP calls, media legs and
//! conferences at once. Its decision logic is sans-IO and lives in the
//! submodules; the tokio tasks that drive it are thin shells around them.

mod announce;
pub mod core;
pub mod dialplan;
pub mod ivr;
pub mod keypad;
pub mod live;
pub mod media;
pub mod prompts;
mod rooms;
pub mod schedule;
mod scheduler;
