//! The domain's rules as pure functions of stored objects and the clock: who may
//! enter a conference now ([`admission`]), and what status a conference and its
//! reservations have at a given time ([`schedule`]). The operations layer, the
//! call engine and the scheduler all decide through these, so each rule exists
//! once.

pub mod admission;
pub mod schedule;

pub use admission::{Admission, admit};
