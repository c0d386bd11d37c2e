//! tutti-sip: SIP signalling for tutti on top of rsipstack, plus SDP offer/answer,
//! server-side digest and session timers. It knows nothing of conferences; the call
//! engine in the `tutti` package drives it through the small API exported here.
//!
//! The pieces tutti adds to rsipstack are sans-IO: no sockets and no clocks inside.
//! Time is passed in and randomness can be supplied, so tests drive them
//! deterministically. Input from the network never panics; it yields a typed error.
//!
//! - [`sdp`]: offer/answer (RFC 3264) from an offer and a policy to an answer and the
//!   negotiated stream (codec, payload types, addresses, SRTP keys) for the media layer.
//! - [`digest`]: server-side digest authentication with stateless nonces and
//!   nonce-count replay protection.
//! - [`session_timer`]: RFC 4028 session-timer negotiation and refresh/expiry deadlines.

#![forbid(unsafe_code)]

pub mod digest;
pub mod sdp;
pub mod session_timer;
pub mod ua;
